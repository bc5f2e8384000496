-- The functions' database role, apart from the schema's owner.
--
-- Migrations run as the owner (`triggeriq_owner` in AWS: terraform/README.md; the superuser
-- locally), which owns the schema and every table. The functions log in as `triggeriq_app`,
-- which may read and write exactly the rows they need and change nothing else: no DDL, no
-- TRUNCATE, nothing on _sqlx_migrations, and on tenants and api_keys (which only the operator's
-- CLI writes, as the owner) no more than reading, plus the trigger-set revision.
--
-- Every later migration that adds a table grants triggeriq_app what it needs on it, or nothing
-- (a test lists the tables the role cannot reach, so that choice is never made by accident).

DO $$
BEGIN
  IF current_user = 'triggeriq_app' THEN
    RAISE EXCEPTION 'migrations must run as the schema owner, not as triggeriq_app'
      USING HINT = 'terraform/README.md, "Database roles": create triggeriq_owner, '
                   'REASSIGN OWNED BY triggeriq_app TO triggeriq_owner, then migrate as it';
  END IF;
  -- In AWS the bootstrap creates the role (with LOGIN and its password); locally and in tests
  -- this makes it. Roles belong to the cluster, and the tests migrate many databases at once:
  -- the loser of a race to create it finds it made.
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'triggeriq_app') THEN
    BEGIN
      CREATE ROLE triggeriq_app NOLOGIN;
    EXCEPTION
      WHEN duplicate_object OR unique_violation THEN NULL;
    END;
  END IF;
END
$$;

GRANT USAGE ON SCHEMA public TO triggeriq_app;

-- The authorizer reads keys and tenants; trigger writes bump the tenant's trigger revision.
GRANT SELECT ON tenants, api_keys TO triggeriq_app;
GRANT UPDATE (trigger_revision) ON tenants TO triggeriq_app;

-- Trigger CRUD.
GRANT SELECT, INSERT, UPDATE, DELETE ON triggers TO triggeriq_app;

-- evaluate-events stores events once, and notes a reused id; reads show them.
GRANT SELECT, INSERT ON events TO triggeriq_app;
GRANT UPDATE (reused_at) ON events TO triggeriq_app;

-- Firings and attempts are written once; a delivery's state moves (record, retry, sweep).
GRANT SELECT, INSERT ON firings, delivery_attempts TO triggeriq_app;
GRANT SELECT, INSERT, UPDATE ON deliveries TO triggeriq_app;
