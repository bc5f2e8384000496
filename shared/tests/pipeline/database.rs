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
