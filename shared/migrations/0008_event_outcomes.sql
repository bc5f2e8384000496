-- What each matched trigger made of an event that it did not fire on: cooling down, a
-- condition counting toward its mark, or the event taking no part (no group). Keyed by trigger
-- id; GET /v1/events/{id} shows it beside the firings, so "why didn't it fire?" is answered
-- where the event is. Events kept before this column have none (`{}`).
ALTER TABLE events ADD COLUMN outcomes jsonb NOT NULL DEFAULT '{}'::jsonb;
