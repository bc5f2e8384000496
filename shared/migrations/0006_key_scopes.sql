-- API key scopes and tenant suspension.
--
-- A key may do only what its scopes allow: `ingest` (POST /v1/events), `read` (the GET routes
-- and POST /v1/patterns/test), `admin` (trigger writes, delivery retries, the signing secret).
-- Keys made before scopes existed keep all three, so nothing that worked stops working; from
-- now on every insert names its scopes (no default: a new key never gets `admin` by accident).
ALTER TABLE api_keys
    ADD COLUMN scopes text[] NOT NULL DEFAULT '{ingest,read,admin}'
        CHECK (cardinality(scopes) >= 1 AND scopes <@ '{ingest,read,admin}'::text[]);
ALTER TABLE api_keys ALTER COLUMN scopes DROP DEFAULT;

-- A suspended tenant's keys are refused by the authorizer (within the authorizer cache's TTL);
-- resuming clears the column. Its data stays as it is.
ALTER TABLE tenants ADD COLUMN suspended_at timestamptz;
