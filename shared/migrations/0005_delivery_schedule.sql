-- record-deliveries owns a delivery's retries: deliver-webhooks hands each next attempt back to
-- it, and it releases the attempt to the deliveries queue once, when it is due, after reading
-- the action again (its current URL; no attempt once the action is disabled or deleted).
-- `scheduled_attempt` is the attempt of the current generation last released (or being
-- released, while `enqueued_at` is NULL under a fresh `enqueue_claimed_at`): a retry message for
-- an attempt at or below it is a duplicate and is dropped, so the schedule never forks into two
-- chains. A retry through the API starts it over at 1.
ALTER TABLE deliveries
    ADD COLUMN scheduled_attempt integer NOT NULL DEFAULT 1 CHECK (scheduled_attempt >= 1);
