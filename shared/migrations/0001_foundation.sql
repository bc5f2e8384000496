-- Tenants, their API keys and their triggers.
-- Every table below carries tenant_id and every query filters on it.

CREATE TABLE tenants (
    id          uuid PRIMARY KEY,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    -- Bumped in the same transaction as every change to the tenant's triggers, so
    -- a per-container cache of compiled triggers can tell cheaply whether it is stale.
    trigger_revision bigint NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Only a SHA-256 of each key is stored: keys carry 256 bits of randomness,
-- so a fast hash is enough, and lookup by hash keeps authorization one index probe.
CREATE TABLE api_keys (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name        text NOT NULL DEFAULT '',
    key_hash    bytea NOT NULL UNIQUE,
    -- The first characters of the key, shown in listings so people can tell keys apart.
    key_prefix  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id, created_at);

CREATE TABLE triggers (
    -- UUIDv7: time-ordered, so the primary key doubles as the pagination order.
    id               uuid PRIMARY KEY,
    tenant_id        uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name             text NOT NULL,
    description      text NOT NULL DEFAULT '',
    enabled          boolean NOT NULL DEFAULT true,
    pattern          jsonb NOT NULL,
    condition        jsonb NOT NULL,
    cooldown_seconds bigint CHECK (cooldown_seconds > 0),
    actions          jsonb NOT NULL,
    version          bigint NOT NULL DEFAULT 1,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX triggers_tenant ON triggers (tenant_id, id);
CREATE INDEX triggers_tenant_enabled ON triggers (tenant_id, enabled, id);
