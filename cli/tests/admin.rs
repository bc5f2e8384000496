//! The operator commands, run as a real binary against a fresh database per test.

use std::process::Command;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::Value;
use sqlx::PgPool;
use triggeriq::dynamodb::SigningSecretStore;
use triggeriq::kms::Sealer;
use triggeriq::postgres::api_keys;
use triggeriq::tenant::{Scope, Scopes, TenantId};
use triggeriq::testing::moto;

/// The URL of the test's own database (sqlx::test made it from DATABASE_URL).
fn url_of(pool: &PgPool) -> String {
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL");
    let database = pool
        .connect_options()
        .get_database()
        .expect("database name")
        .to_owned();
    let (server, _) = base.rsplit_once('/').expect("a URL with a database");
    format!("{server}/{database}")
}

fn triggeriq(pool: &PgPool, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_triggeriq"))
        .args(args)
        .env("DATABASE_URL", url_of(pool))
        .env_remove("TABLE_NAME")
        .output()
        .expect("run triggeriq");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `triggeriq` with the stack's table and signing key in moto: TABLE_NAME, SIGNING_KEY_ID
/// (unless `key` is empty), the emulator's endpoint and dummy credentials, as an operator's
/// shell (or `make dev`'s) would set them.
fn triggeriq_with_table(
    pool: &PgPool,
    table: &str,
    key: &str,
    args: &[&str],
) -> (bool, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_triggeriq"));
    if key.is_empty() {
        command.env_remove("SIGNING_KEY_ID");
    } else {
        command.env("SIGNING_KEY_ID", key);
    }
    let out = command
        .args(args)
        .env("DATABASE_URL", url_of(pool))
        .env("TABLE_NAME", table)
        .env("AWS_ENDPOINT_URL", moto::endpoint())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env_remove("AWS_PROFILE")
        .output()
        .expect("run triggeriq");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn tenant_create_prints_a_tenant_and_a_working_key(pool: PgPool) {
    let (ok, out, err) = triggeriq(&pool, &["tenant", "create", "Acme", "--json"]);
    assert!(ok, "{err}");
    let created = json(&out);
    let key = created["api_key"].as_str().expect("key");
    assert!(triggeriq::tenant::looks_like_api_key(key), "{key}");
    let owner = api_keys::authenticate(&pool, key)
        .await
        .expect("query")
        .expect("the key works");
    assert_eq!(
        owner.tenant_id.to_string(),
        created["tenant_id"].as_str().expect("tenant id")
    );

    let (ok, out, _) = triggeriq(&pool, &["tenant", "list"]);
    assert!(ok);
    assert!(out.contains("Acme"), "{out}");
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn api_keys_can_be_created_listed_and_revoked(pool: PgPool) {
    let (_, out, _) = triggeriq(&pool, &["tenant", "create", "Acme", "--json"]);
    let tenant = json(&out)["tenant_id"].as_str().expect("tenant").to_owned();
    let (ok, out, err) = triggeriq(
        &pool,
        &[
            "api-key", "create", "--tenant", &tenant, "--name", "ci", "--scope", "read", "--json",
        ],
    );
    assert!(ok, "{err}");
    let created = json(&out);
    let key = created["api_key"].as_str().expect("key").to_owned();
    let key_id = created["api_key_id"].as_str().expect("id").to_owned();

    let (ok, out, _) = triggeriq(&pool, &["api-key", "list", "--tenant", &tenant, "--json"]);
    assert!(ok);
    let listed = json(&out);
    assert_eq!(listed.as_array().map(Vec::len), Some(2));
    assert!(!out.contains(&key), "listings never show a key");

    let (ok, _, err) = triggeriq(&pool, &["api-key", "revoke", "--tenant", &tenant, &key_id]);
    assert!(ok, "{err}");
    assert_eq!(
        api_keys::authenticate(&pool, &key).await.expect("query"),
        None
    );
    let (ok, _, err) = triggeriq(&pool, &["api-key", "revoke", "--tenant", &tenant, &key_id]);
    assert!(!ok, "revoking twice is an error");
    assert!(err.contains("no active key"), "{err}");
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn a_key_cannot_be_revoked_through_another_tenant(pool: PgPool) {
    let (_, a, _) = triggeriq(&pool, &["tenant", "create", "A", "--json"]);
    let (_, b, _) = triggeriq(&pool, &["tenant", "create", "B", "--json"]);
    let (a, b) = (json(&a), json(&b));
    let (ok, _, _) = triggeriq(
        &pool,
        &[
            "api-key",
            "revoke",
            "--tenant",
            b["tenant_id"].as_str().expect("b"),
            a["api_key_id"].as_str().expect("a"),
        ],
    );
    assert!(!ok);
    let key = a["api_key"].as_str().expect("key");
    let owner = api_keys::authenticate(&pool, key)
        .await
        .expect("query")
        .expect("still valid");
    assert_eq!(
        owner.tenant_id,
        TenantId::parse(a["tenant_id"].as_str().expect("a")).expect("uuid")
    );
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn bad_input_is_a_clear_error_not_a_panic(pool: PgPool) {
    let (ok, _, err) = triggeriq(&pool, &["tenant", "create", "  "]);
    assert!(!ok);
    assert!(err.contains("1 to 200 characters"), "{err}");
    let (ok, _, err) = triggeriq(&pool, &["api-key", "create", "--tenant", "not-a-uuid"]);
    assert!(!ok);
    assert!(err.contains("invalid value"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn a_chosen_api_key_is_stored_for_the_new_tenant(pool: PgPool) {
    let key = "tiq_DEMO-local-development-key-0000000000000000";
    let tenant = "0190f0a0-0000-7000-8000-000000000001";
    let (ok, out, err) = triggeriq(
        &pool,
        &[
            "tenant",
            "create",
            "Demo",
            "--id",
            tenant,
            "--api-key",
            key,
            "--json",
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(json(&out)["api_key"], key);
    let owner = api_keys::authenticate(&pool, key)
        .await
        .expect("query")
        .expect("the key works");
    assert_eq!(owner.tenant_id.to_string(), tenant);
}

#[test]
fn a_chosen_api_key_must_look_like_a_tiq_key() {
    for bad in [
        "sk_live_123",
        "tiq_short",
        &format!("tiq_{}", "!".repeat(43)),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_triggeriq"))
            .args(["tenant", "create", "demo", "--api-key", bad])
            // Nothing listens here: reaching for the database would be a connection error.
            .env("DATABASE_URL", "postgres://nobody:nothing@127.0.0.1:1/none")
            .output()
            .expect("run triggeriq");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{bad} was accepted");
        assert!(
            stderr.contains("--api-key") && stderr.contains("tiq_"),
            "{stderr}"
        );
    }
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn key_scopes_are_chosen_with_scope_flags_and_stored(pool: PgPool) {
    // tenant create: the first key has every scope unless told otherwise.
    let (ok, out, err) = triggeriq(&pool, &["tenant", "create", "Acme", "--json"]);
    assert!(ok, "{err}");
    let created = json(&out);
    assert_eq!(
        created["scopes"],
        serde_json::json!(["ingest", "read", "admin"])
    );
    let tenant = created["tenant_id"].as_str().expect("tenant").to_owned();
    let owner = api_keys::authenticate(&pool, created["api_key"].as_str().expect("key"))
        .await
        .expect("query")
        .expect("works");
    assert_eq!(owner.scopes, Scopes::ALL);

    let (ok, out, err) = triggeriq(
        &pool,
        &["tenant", "create", "Narrow", "--scope", "read", "--json"],
    );
    assert!(ok, "{err}");
    let narrow = json(&out);
    assert_eq!(narrow["scopes"], serde_json::json!(["read"]));

    // api-key create: --scope is required, repeatable and comma-separated.
    let (ok, _, err) = triggeriq(&pool, &["api-key", "create", "--tenant", &tenant]);
    assert!(!ok, "a key without --scope was made");
    assert!(err.contains("--scope is required"), "{err}");
    for (args, expected) in [
        (vec!["--scope", "ingest"], Scopes::NONE.with(Scope::Ingest)),
        (
            vec!["--scope", "ingest,read"],
            Scopes::NONE.with(Scope::Ingest).with(Scope::Read),
        ),
        (
            vec!["--scope", "admin", "--scope", "read"],
            Scopes::NONE.with(Scope::Read).with(Scope::Admin),
        ),
    ] {
        let mut all = vec!["api-key", "create", "--tenant", tenant.as_str(), "--json"];
        all.extend(args.iter().copied());
        let (ok, out, err) = triggeriq(&pool, &all);
        assert!(ok, "{args:?}: {err}");
        let key = json(&out)["api_key"].as_str().expect("key").to_owned();
        let owner = api_keys::authenticate(&pool, &key)
            .await
            .expect("query")
            .expect("works");
        assert_eq!(owner.scopes, expected, "{args:?}");
    }
    for bad in ["write", "Admin", "read,,x", ""] {
        let (ok, _, err) = triggeriq(
            &pool,
            &["api-key", "create", "--tenant", &tenant, "--scope", bad],
        );
        assert!(!ok, "--scope {bad:?} was accepted");
        assert!(!err.contains("panicked"), "{err}");
    }
    let (ok, out, _) = triggeriq(&pool, &["api-key", "list", "--tenant", &tenant, "--json"]);
    assert!(ok);
    let listed = json(&out);
    assert_eq!(listed[1]["scopes"], serde_json::json!(["ingest"]));
    let (ok, out, _) = triggeriq(&pool, &["api-key", "list", "--tenant", &tenant]);
    assert!(ok);
    assert!(
        out.contains("ingest,read,admin") && out.contains("read,admin"),
        "{out}"
    );
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn a_suspended_tenants_keys_stop_working_until_it_is_resumed(pool: PgPool) {
    let (_, a, _) = triggeriq(&pool, &["tenant", "create", "A", "--json"]);
    let (_, b, _) = triggeriq(&pool, &["tenant", "create", "B", "--json"]);
    let (a, b) = (json(&a), json(&b));
    let id = a["tenant_id"].as_str().expect("id");
    let key_a = a["api_key"].as_str().expect("key");
    let key_b = b["api_key"].as_str().expect("key");

    let (ok, out, err) = triggeriq(&pool, &["tenant", "suspend", id]);
    assert!(ok, "{err}");
    assert!(out.contains("suspended"), "{out}");
    assert!(err.contains("60 s"), "says when it takes effect: {err}");
    assert_eq!(
        api_keys::authenticate(&pool, key_a).await.expect("query"),
        None
    );
    assert!(
        api_keys::authenticate(&pool, key_b)
            .await
            .expect("query")
            .is_some()
    );
    let (ok, out, _) = triggeriq(&pool, &["tenant", "list"]);
    assert!(ok);
    assert!(
        out.lines()
            .any(|l| l.starts_with(id) && l.contains("suspended")),
        "{out}"
    );
    let (ok, out, _) = triggeriq(&pool, &["tenant", "suspend", id]);
    assert!(ok && out.contains("already"), "{out}");

    let (ok, _, err) = triggeriq(&pool, &["tenant", "resume", id]);
    assert!(ok, "{err}");
    assert!(
        api_keys::authenticate(&pool, key_a)
            .await
            .expect("query")
            .is_some()
    );

    let unknown = TenantId::new().to_string();
    let (ok, _, err) = triggeriq(&pool, &["tenant", "suspend", &unknown]);
    assert!(!ok);
    assert!(err.contains("no tenant"), "{err}");
    let (ok, _, err) = triggeriq(&pool, &["tenant", "resume", "not-a-uuid"]);
    assert!(!ok);
    assert!(err.contains("invalid value"), "{err}");
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn tenant_create_makes_and_prints_the_first_signing_secret_once(pool: PgPool) {
    let clients = moto::clients().await;
    let table = moto::table(&clients).await;
    let key = moto::kms_key(&clients).await;
    let store = SigningSecretStore::new(table.clone(), Sealer::new(clients.kms.clone(), &key));

    let (ok, out, err) = triggeriq_with_table(
        &pool,
        table.name(),
        &key,
        &["tenant", "create", "Acme", "--json"],
    );
    assert!(ok, "{err}");
    let created = json(&out);
    let secret = created["signing_secret"]
        .as_str()
        .expect("a signing secret");
    assert!(secret.starts_with("whsec_"), "{secret}");
    let tenant = TenantId::parse(created["tenant_id"].as_str().expect("id")).expect("uuid");
    let stored = store
        .get(tenant)
        .await
        .expect("read")
        .expect("stored for the tenant");
    assert_eq!(stored.current.expose(), secret);
    assert!(stored.previous.is_empty());
    assert!(err.contains("receivers"), "says to configure it: {err}");

    // The text output shows it next to the key, once.
    let (ok, out, err) =
        triggeriq_with_table(&pool, table.name(), &key, &["tenant", "create", "Beta"]);
    assert!(ok, "{err}");
    let line = out
        .lines()
        .find(|l| l.starts_with("signing_secret"))
        .unwrap_or_else(|| panic!("no signing_secret line: {out}"));
    let shown = line.split_whitespace().nth(1).expect("the secret");
    assert!(shown.starts_with("whsec_"), "{line}");
    assert_eq!(out.matches("whsec_").count(), 1, "{out}");
    assert!(out.contains("api_key "), "{out}");
    let beta = out
        .lines()
        .find_map(|l| l.strip_prefix("tenant_id"))
        .map(|id| TenantId::parse(id.trim()).expect("uuid"))
        .expect("tenant_id line");
    let stored = store.get(beta).await.expect("read").expect("stored");
    assert_eq!(stored.current.expose(), shown);
    assert_ne!(shown, secret, "each tenant its own secret");
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn without_table_name_tenant_create_says_no_secret_was_made_and_still_creates_the_tenant(
    pool: PgPool,
) {
    let (ok, out, err) = triggeriq(&pool, &["tenant", "create", "Acme", "--json"]);
    assert!(ok, "{err}");
    let created = json(&out);
    assert!(created["signing_secret"].is_null(), "{out}");
    assert!(
        err.contains("No signing secret was created")
            && err.contains("TABLE_NAME")
            && err.contains("GET /v1/signing-secret"),
        "{err}"
    );
    let key = created["api_key"].as_str().expect("key");
    assert!(
        api_keys::authenticate(&pool, key)
            .await
            .expect("query")
            .is_some()
    );
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn when_dynamodb_fails_tenant_create_creates_nothing(pool: PgPool) {
    let missing = moto::unique("no-such-table");
    let key = moto::kms_key(&moto::clients().await).await;
    let (ok, out, err) = triggeriq_with_table(
        &pool,
        &missing,
        &key,
        &["tenant", "create", "Acme", "--json"],
    );
    assert!(!ok, "created without its secret: {out}");
    assert!(err.contains("nothing was created"), "{err}");
    let (ok, out, _) = triggeriq(&pool, &["tenant", "list", "--json"]);
    assert!(ok);
    assert_eq!(
        json(&out),
        serde_json::json!([]),
        "the tenant was rolled back"
    );
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn with_a_table_but_no_signing_key_tenant_create_refuses_and_creates_nothing(pool: PgPool) {
    let clients = moto::clients().await;
    let table = moto::table(&clients).await;
    let (ok, out, err) =
        triggeriq_with_table(&pool, table.name(), "", &["tenant", "create", "Acme"]);
    assert!(!ok, "{out}");
    assert!(err.contains("SIGNING_KEY_ID"), "names the setting: {err}");
    let (ok, out, _) = triggeriq(&pool, &["tenant", "list", "--json"]);
    assert!(ok);
    assert_eq!(json(&out), serde_json::json!([]));
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn seal_secrets_seals_clear_secrets_unchanged_and_gives_every_tenant_one(pool: PgPool) {
    let clients = moto::clients().await;
    let table = moto::table(&clients).await;
    let key = moto::kms_key(&clients).await;
    let store = SigningSecretStore::new(table.clone(), Sealer::new(clients.kms.clone(), &key));
    let create = |name: &'static str| {
        let pool = pool.clone();
        async move {
            triggeriq::postgres::tenants::create(&pool, TenantId::new(), name)
                .await
                .expect("tenant")
                .id
        }
    };
    // Stored in clear by an earlier version; no secret at all; already sealed.
    let clear = create("Clear").await;
    let legacy = triggeriq::webhook::signing::SigningSecret::generate();
    clients
        .dynamodb
        .put_item()
        .table_name(table.name())
        .item("pk", AttributeValue::S(format!("SIGNING#{clear}")))
        .item("sk", AttributeValue::S("SIGNING".into()))
        .item("current", AttributeValue::S(legacy.expose().into()))
        .item("current_since", AttributeValue::N("1700000000".into()))
        .item("previous", AttributeValue::L(vec![]))
        .item("version", AttributeValue::N("1".into()))
        .send()
        .await
        .expect("put");
    let none = create("None").await;
    let sealed = create("Sealed").await;
    let sealed_secret = store
        .get_or_create(sealed, chrono::Utc::now())
        .await
        .expect("made")
        .current;

    let (ok, out, err) =
        triggeriq_with_table(&pool, table.name(), &key, &["tenant", "seal-secrets"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("3 tenants: 1 sealed now, 1 given their first secret, 1 already sealed"),
        "{out}"
    );
    for t in [clear, none, sealed] {
        assert_eq!(store.is_clear(t).await.expect("read"), Some(false), "{t}");
    }
    let read = |t| {
        let store = store.clone();
        async move { store.get(t).await.expect("read").expect("secret").current }
    };
    assert_eq!(read(clear).await, legacy, "the same secret, sealed");
    assert_eq!(read(sealed).await, sealed_secret, "left as it was");

    // Again: nothing left to do.
    let (ok, out, err) =
        triggeriq_with_table(&pool, table.name(), &key, &["tenant", "seal-secrets"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("0 sealed now, 0 given their first secret, 3 already sealed"),
        "{out}"
    );
}
