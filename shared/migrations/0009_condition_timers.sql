-- Deadline conditions (debounce, absence): one row per (trigger, group) with the group's state
-- and its next deadline. evaluate-events changes a row in the transaction that keeps the event
-- (so an event changes it once, however often SQS delivers it); evaluate-timers takes the due
-- rows with FOR UPDATE SKIP LOCKED (so overlapping runs never take the same row) and fires,
-- changes or deletes each in the transaction that records the firing.
CREATE TABLE condition_timers (
    tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    trigger_id      uuid NOT NULL REFERENCES triggers (id) ON DELETE CASCADE,
    -- A row of another version than the trigger's is stale: updating a trigger resets it.
    trigger_version bigint NOT NULL,
    -- The group's values as one JSON array text (at most 1 KB), and as JSON.
    group_key       text NOT NULL,
    group_values    jsonb NOT NULL,
    -- `null` only for the instant between a new row's insert and its first update.
    state           jsonb NOT NULL,
    due_at          timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (trigger_id, group_key)
);
CREATE INDEX condition_timers_due ON condition_timers (due_at) WHERE due_at IS NOT NULL;
GRANT SELECT, INSERT, UPDATE, DELETE ON condition_timers TO triggeriq_app;

-- A deadline firing is recorded on an event of the group (an absence's last event, a
-- debounce's first or last), so one event may carry two firings of one trigger: a group that
-- came back on it (`recovered`) and went silent after it (`down`). The occasion is part of a
-- firing's identity; every event-driven firing has the empty one.
ALTER TABLE firings ADD COLUMN occasion text NOT NULL DEFAULT '';
ALTER TABLE firings DROP CONSTRAINT firings_trigger_id_event_id_key;
ALTER TABLE firings ADD CONSTRAINT firings_once UNIQUE (trigger_id, event_id, occasion);

-- Deliveries whose message never reached the queue (the sender died, or SQS refused): the
-- sweep of evaluate-timers sends them once their claim is stale.
CREATE INDEX deliveries_unsent ON deliveries (enqueue_claimed_at)
    WHERE enqueued_at IS NULL AND status = 'pending' AND attempt_count = 0;
