-- CloudEvents 1.0 attributes beyond the core ones (specversion, datacontenttype, dataschema,
-- data_base64, extension attributes), kept as the client sent them: a JSON object.
ALTER TABLE events ADD COLUMN attributes jsonb NOT NULL DEFAULT '{}';

-- When the same event id came again after the idempotency window: ingest accepted it (the id
-- was no longer remembered), evaluate did not evaluate it again (an event id names one
-- event). Kept so that GET /v1/events/{id} says what became of each receipt; at most 100.
ALTER TABLE events ADD COLUMN reused_at timestamptz[] NOT NULL DEFAULT '{}';
