//! The functions' Postgres connections: the time limits every session starts with.

use triggeriq::postgres::{Database, DbConfig};

#[tokio::test]
async fn every_connection_starts_with_a_statement_and_an_idle_transaction_limit() {
    let url = std::env::var("DATABASE_URL").expect("DATABASE_URL");
    let db = Database::connect_lazy(&DbConfig::Url(url)).expect("a pool");
    let pool = db.pool().await.expect("the pool");
    let settings: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT name, setting, source FROM pg_settings
         WHERE name IN ('statement_timeout', 'idle_in_transaction_session_timeout') ORDER BY name",
    )
    .fetch_all(pool)
    .await
    .expect("settings");
    // `client`: set by the startup packet, not by a `SET` (`session`), which would pin the
    // connection to one database connection of RDS Proxy.
    assert_eq!(
        settings,
        [
            (
                "idle_in_transaction_session_timeout".to_owned(),
                "10000".to_owned(),
                "client".to_owned()
            ),
            (
                "statement_timeout".to_owned(),
                "5000".to_owned(),
                "client".to_owned()
            ),
        ]
    );
    // A statement that runs longer is cancelled, as an error the function can report.
    let error = sqlx::query("SELECT pg_sleep(6)")
        .execute(pool)
        .await
        .expect_err("cancelled");
    let code = match &error {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    };
    assert_eq!(code.as_deref(), Some("57014"), "{error}");
}

// ------------------------------------------------------------------ the functions' role

/// The SQLSTATE of a statement run as `triggeriq_app`, or `None` when it succeeded.
async fn as_app(app: &sqlx::PgPool, statement: &str) -> Option<String> {
    match sqlx::query(statement).execute(app).await {
        Ok(_) => None,
        Err(sqlx::Error::Database(db)) => db.code().map(|c| c.into_owned()),
        Err(other) => panic!("{statement}: {other}"),
    }
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn the_functions_role_changes_no_schema_and_writes_only_what_the_functions_write(
    pool: sqlx::PgPool,
) {
    let app = super::harness::as_app_role(&pool);
    let who: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(&app)
        .await
        .expect("who");
    assert_eq!(who, "triggeriq_app");
    let tenant = uuid::Uuid::now_v7();
    sqlx::query("INSERT INTO tenants (id, name) VALUES ($1, 'Acme')")
        .bind(tenant)
        .execute(&pool)
        .await
        .expect("the owner creates a tenant");

    const DENIED: &str = "42501";
    for refused in [
        "CREATE TABLE stash (x text)",
        "ALTER TABLE events ADD COLUMN x text",
        "DROP TABLE delivery_attempts",
        "TRUNCATE events",
        "SELECT * FROM _sqlx_migrations",
        "DELETE FROM _sqlx_migrations",
        "INSERT INTO tenants (id, name) VALUES (gen_random_uuid(), 'Mallory')",
        "UPDATE tenants SET suspended_at = NULL",
        "DELETE FROM tenants",
        "UPDATE api_keys SET revoked_at = NULL",
        "INSERT INTO api_keys (id, tenant_id, key_hash, key_prefix) VALUES (gen_random_uuid(), gen_random_uuid(), 'x', 'x')",
        "DELETE FROM events",
        "UPDATE events SET data = '{}'",
        "DELETE FROM firings",
        "UPDATE firings SET trigger_version = 0",
        "DELETE FROM deliveries",
        "DELETE FROM delivery_attempts",
        "UPDATE delivery_attempts SET status_code = 200",
    ] {
        assert_eq!(
            as_app(&app, refused).await.as_deref(),
            Some(DENIED),
            "allowed to the functions' role: {refused}"
        );
    }
    // What the functions do is allowed (the pipeline tests run every function as this role).
    let bump =
        format!("UPDATE tenants SET trigger_revision = trigger_revision + 1 WHERE id = '{tenant}'");
    for allowed in [
        "SELECT count(*) FROM tenants",
        "SELECT count(*) FROM api_keys",
        bump.as_str(),
        "DELETE FROM triggers",
        "UPDATE events SET reused_at = reused_at",
        "UPDATE deliveries SET status = status",
    ] {
        assert_eq!(as_app(&app, allowed).await, None, "refused: {allowed}");
    }
    app.close().await;
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn every_table_but_the_migrations_is_granted_to_the_functions_role_on_purpose(
    pool: sqlx::PgPool,
) {
    // A table a later migration adds without deciding the role's grants shows up here.
    let unreachable: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
           AND NOT has_table_privilege('triggeriq_app', c.oid, 'SELECT')
           AND NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0
                           AND has_column_privilege('triggeriq_app', c.oid, a.attnum, 'SELECT'))
         ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .expect("tables");
    assert_eq!(unreachable, ["_sqlx_migrations"]);
    let owner_is_app: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                        WHERE n.nspname = 'public' AND pg_get_userbyid(c.relowner) = 'triggeriq_app')",
    )
    .fetch_one(&pool)
    .await
    .expect("owners");
    assert!(!owner_is_app, "the functions' role owns a table");
}
