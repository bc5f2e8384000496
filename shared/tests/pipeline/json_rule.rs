//! One rule for reading JSON, on every route that takes a body: the same hostile input gets
//! the same answer from the trigger routes, the pattern and trigger tests, the trigger draft
//! and ingest (400 for
//! text that is not JSON; 422 with the path for a key twice, U+0000, a number beyond a double,
//! nesting too deep).

use serde_json::json;
use sqlx::PgPool;
use triggeriq::api::drafts::DraftApi;
use triggeriq::api::patterns::PatternApi;
use triggeriq::api::trials::TrialApi;
use triggeriq::api::{drafts, events as event_routes, firings, ingest, patterns, trials, triggers};
use triggeriq::aws::{AwsOptions, bedrock_client, sdk_config};
use triggeriq::config::{ApiConfig, DraftConfig};
use triggeriq::postgres::Database;
use triggeriq::tenant::TenantId;
use triggeriq::testing::requests::Answer;
use triggeriq::wiring::Clients;

use super::harness::{Req, Stack, call};

/// Answers of create-trigger, update-trigger, test-pattern, test-trigger, draft-trigger and
/// ingest-events to `body`.
async fn answers(stack: &Stack, t: TenantId, body: &str) -> Vec<(&'static str, Answer)> {
    let wiring = Clients::new().with_database(Database::from_pool(stack.pool.clone()));
    let trigger_api = triggers::TriggerApi::new(ApiConfig::default(), &wiring).unwrap();
    let pattern_api = PatternApi::new(ApiConfig::default(), &wiring).unwrap();
    let trial_api = TrialApi::new(ApiConfig::default(), &wiring).unwrap();
    // A model nothing listens for: a body the rule refuses never reaches it.
    let draft_api = DraftApi::new(
        ApiConfig::default(),
        DraftConfig {
            table_name: stack.table.clone(),
            model_id: "anthropic.claude-3-5-haiku-20241022-v1:0".into(),
            tokens_per_day: 1000,
        },
        &stack.wiring(),
        bedrock_client(&sdk_config(&AwsOptions::emulator("http://127.0.0.1:1"))),
    )
    .unwrap();
    let with = |req: Req| {
        req.raw_body(body)
            .header("content-type", "application/json")
    };
    vec![
        (
            "create-trigger",
            call(
                &trigger_api,
                triggers::create,
                with(Req::new("create-trigger", t)),
            )
            .await,
        ),
        (
            "update-trigger",
            call(
                &trigger_api,
                triggers::update,
                with(Req::new("update-trigger", t).id(&uuid::Uuid::now_v7().to_string())),
            )
            .await,
        ),
        (
            "test-pattern",
            call(
                &pattern_api,
                patterns::test,
                with(Req::new("test-pattern", t)),
            )
            .await,
        ),
        (
            "test-trigger",
            call(&trial_api, trials::test, with(Req::new("test-trigger", t))).await,
        ),
        (
            "draft-trigger",
            call(
                &draft_api,
                drafts::draft,
                with(Req::new("draft-trigger", t)),
            )
            .await,
        ),
        (
            "ingest-events",
            call(
                &stack.ingest(),
                ingest::ingest,
                with(Req::new("ingest-events", t)),
            )
            .await,
        ),
    ]
}

/// Every route answers `status` and names `path` among its problems.
async fn every_route_answers(stack: &Stack, t: TenantId, body: &str, status: u16, path: &str) {
    for (route, answer) in answers(stack, t, body).await {
        assert_eq!(answer.status, status, "{route}: {}", answer.body);
        if !path.is_empty() {
            let paths = answer.error_paths();
            assert!(
                paths.iter().any(|p| p.starts_with(path)),
                "{route}: {path} not in {paths:?}"
            );
        }
    }
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn every_route_refuses_a_key_sent_twice_with_its_path(pool: PgPool) {
    let stack = Stack::new(pool).await;
    let t = stack.tenant().await;
    every_route_answers(&stack, t, r#"{"type": "a", "type": "b"}"#, 422, "$.type").await;
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn every_route_refuses_nul_in_a_string_with_its_path(pool: PgPool) {
    let stack = Stack::new(pool).await;
    let t = stack.tenant().await;
    every_route_answers(&stack, t, r#"{"type": "pay\u0000ment"}"#, 422, "$.type").await;
    every_route_answers(&stack, t, r#"{"type": "t", "k\u0000": 1}"#, 422, "$[").await;
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn every_route_refuses_a_number_beyond_a_double_with_its_path(pool: PgPool) {
    let stack = Stack::new(pool).await;
    let t = stack.tenant().await;
    every_route_answers(
        &stack,
        t,
        r#"{"type": "t", "data": {"n": 1e400}}"#,
        422,
        "$.data.n",
    )
    .await;
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn every_route_refuses_nesting_too_deep_with_422_and_malformed_text_with_400(pool: PgPool) {
    let stack = Stack::new(pool).await;
    let t = stack.tenant().await;
    let abyss = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    every_route_answers(&stack, t, &abyss, 422, "$[0]").await;
    for (route, answer) in answers(&stack, t, &abyss).await {
        let message = answer.body["errors"][0]["message"]
            .as_str()
            .unwrap_or_default();
        assert!(
            message.contains("nested too deeply"),
            "{route}: {}",
            answer.body
        );
    }
    every_route_answers(&stack, t, r#"{"type": "#, 400, "").await;
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn an_event_id_holding_nul_or_too_long_is_simply_not_found(pool: PgPool) {
    let stack = Stack::new(pool).await;
    let t = stack.tenant().await;
    for id in ["\u{0}".to_owned(), "a\u{0}b".to_owned(), "x".repeat(257)] {
        let got = call(
            &stack.reads(),
            event_routes::get,
            Req::new("get-event", t).id(&id),
        )
        .await;
        assert_eq!(got.status, 404, "{id:?}: {}", got.body);
    }
    // The read routes still answer for a real one.
    let listed = call(&stack.reads(), firings::list, Req::new("list-firings", t)).await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.body["items"], json!([]));
}
