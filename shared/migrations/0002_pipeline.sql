-- The event pipeline's system of record: recent events, firings, deliveries and every
-- delivery attempt. Every table carries tenant_id and every query filters on it.

-- Recent events, as evaluate-events saw them. Ids are the client's (text); one per tenant.
-- Retention and archival to S3 come later: the index on received_at is for that job.
CREATE TABLE events (
    tenant_id           uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id                  text NOT NULL,
    type                text NOT NULL,
    source              text,
    subject             text,
    time                timestamptz NOT NULL,
    -- NULL when the event has no data (JSON null included).
    data                jsonb,
    -- When ingest-events accepted it: also the clock the cooldowns run on.
    received_at         timestamptz NOT NULL,
    evaluated_at        timestamptz NOT NULL DEFAULT now(),
    -- Every enabled trigger whose pattern matched, fired or not (cooldown).
    matched_trigger_ids uuid[] NOT NULL DEFAULT '{}',
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX events_received_at ON events (received_at);
CREATE INDEX events_tenant_received_at ON events (tenant_id, received_at DESC);

-- One row per (trigger, event) that fired. The unique constraint is what makes a redelivered
-- SQS message fire at most once. No foreign key to triggers or events: a firing stays in the
-- audit trail after its trigger is deleted or its event archived, so it keeps the trigger's
-- name and version as they were.
CREATE TABLE firings (
    id              uuid PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    trigger_id      uuid NOT NULL,
    event_id        text NOT NULL,
    trigger_name    text NOT NULL,
    trigger_version bigint NOT NULL,
    matched_at      timestamptz NOT NULL,
    -- Why it fired, for conditions that have reasons (thresholds, AI verdicts; later).
    reasons         jsonb NOT NULL DEFAULT '[]',
    UNIQUE (trigger_id, event_id)
);
CREATE INDEX firings_tenant_matched ON firings (tenant_id, matched_at DESC, id DESC);
CREATE INDEX firings_tenant_trigger_matched ON firings (tenant_id, trigger_id, matched_at DESC, id DESC);
CREATE INDEX firings_tenant_event ON firings (tenant_id, event_id);

-- One webhook delivery per (firing, action). deliver-webhooks cannot reach Postgres: it reports
-- each attempt to the delivery-results queue and record-deliveries writes the rows below.
CREATE TABLE deliveries (
    id                 uuid PRIMARY KEY,
    tenant_id          uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    firing_id          uuid NOT NULL REFERENCES firings (id) ON DELETE CASCADE,
    trigger_id         uuid NOT NULL,
    action_id          uuid NOT NULL,
    url                text NOT NULL,
    status             text NOT NULL DEFAULT 'pending'
                       CHECK (status IN ('pending', 'delivered', 'failed', 'disabled')),
    -- Bumped by every retry through the API; results of older generations change nothing.
    generation         integer NOT NULL DEFAULT 1 CHECK (generation >= 1),
    attempt_count      integer NOT NULL DEFAULT 0,
    last_attempt_at    timestamptz,
    last_status_code   integer,
    next_attempt_at    timestamptz,
    -- Why the delivery failed or was disabled.
    final_reason       text,
    -- Who may put the delivery on the queue: set when a message is about to be sent, so that
    -- two evaluations of one event never both send it, and a crashed sender's claim goes stale.
    enqueue_claimed_at timestamptz,
    -- When the message reached the queue.
    enqueued_at        timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (firing_id, action_id)
);
CREATE INDEX deliveries_tenant_firing ON deliveries (tenant_id, firing_id);

-- Every attempt, as deliver-webhooks reported it; ids come from deliver-webhooks, so a result
-- message that arrives twice is recorded once.
CREATE TABLE delivery_attempts (
    id               uuid PRIMARY KEY,
    tenant_id        uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    delivery_id      uuid NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    generation       integer NOT NULL,
    attempt          integer NOT NULL,
    started_at       timestamptz NOT NULL,
    latency_ms       bigint NOT NULL,
    status_code      integer,
    error_kind       text,
    error            text,
    response_snippet text,
    remote_addr      text,
    -- What deliver-webhooks decided: delivered, retrying, failed or disabled.
    outcome          text NOT NULL CHECK (outcome IN ('delivered', 'retrying', 'failed', 'disabled')),
    next_attempt_at  timestamptz,
    recorded_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX delivery_attempts_delivery ON delivery_attempts (delivery_id, started_at, id);
