//! `POST /v1/triggers/test` (test-trigger): a trigger over a list of events on a simulated
//! clock, answered with the firings and their reasons, stored nowhere; every hostile body a 4xx
//! naming its path, and every request's work bounded.

use serde_json::{Value, json};
use sqlx::PgPool;
use triggeriq::api::trials::{self, TrialApi};
use triggeriq::api::{Gate, events as event_routes, firings, routes};
use triggeriq::config::ApiConfig;
use triggeriq::tenant::TenantId;
use triggeriq::testing::requests::{Answer, call, call_gated};
use triggeriq::wiring::Clients;

use super::harness::{Req, Stack};

/// The route as a deployment with the default limits builds it: no clients at all (the
/// rate-limit table is the gate's, not the handler's).
fn api() -> TrialApi {
    api_with(ApiConfig::default())
}

fn api_with(config: ApiConfig) -> TrialApi {
    TrialApi::new(config, &Clients::new()).expect("needs no clients")
}

fn trigger(condition: Value) -> Value {
    json!({"name": "t", "pattern": {"type": ["payment.failed"]}, "condition": condition,
           "actions": [{"url": "https://hooks.example.com/a"}]})
}

fn failed(id: &str, time: &str) -> Value {
    json!({"id": id, "type": "payment.failed", "time": time, "data": {"customer": "A"}})
}

async fn trial(api: &TrialApi, body: &Value) -> Answer {
    call(
        api,
        trials::test,
        Req::new("test-trigger", TenantId::new()).body(body),
    )
    .await
}

async fn raw(api: &TrialApi, text: &str) -> Answer {
    call(
        api,
        trials::test,
        Req::new("test-trigger", TenantId::new()).raw_body(text),
    )
    .await
}

fn assert_refused(got: &Answer, status: u16, path: &str) {
    assert_eq!(got.status, status, "{}", got.body);
    let paths = got.error_paths();
    assert!(
        paths.iter().any(|p| p.starts_with(path)),
        "{path} not in {paths:?}"
    );
}

#[tokio::test]
async fn a_threshold_of_three_over_four_events_fires_once_with_its_reason() {
    // The sample: three failures of cus_1 and one of cus_2 within an hour.
    let got = call(
        &api(),
        trials::test,
        Req::new("test-trigger", TenantId::new()),
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.body["truncated"], false);
    let firings = got.body["firings"].as_array().expect("firings");
    assert_eq!(firings.len(), 1, "{}", got.body);
    let firing = &firings[0];
    assert_eq!(firing["time"], "2026-11-25T09:30:00Z");
    assert_eq!(firing["group"], json!(["cus_1"]));
    assert_eq!(firing["event_ids"], json!(["evt_1", "evt_2", "evt_4"]));
    assert_eq!(firing["reason"]["condition"], "threshold");
    assert_eq!(firing["reason"]["event_ids"], firing["event_ids"]);
}

#[tokio::test]
async fn a_debounce_fires_when_its_burst_has_been_quiet_once_until_lets_the_clock_run() {
    let mut body = json!({
        "trigger": trigger(json!({"kind": "debounce", "quiet": "5m"})),
        "events": [failed("e1", "2026-04-01T09:00:00Z"), failed("e2", "2026-04-01T09:02:00Z")],
    });
    let stopped = trial(&api(), &body).await;
    assert_eq!(stopped.status, 200, "{}", stopped.body);
    assert_eq!(
        stopped.body,
        json!({"firings": [], "truncated": false}),
        "the clock stops at the last event"
    );
    body["until"] = json!("10m");
    let got = trial(&api(), &body).await;
    assert_eq!(got.status, 200, "{}", got.body);
    let firings = got.body["firings"].as_array().expect("firings");
    assert_eq!(firings.len(), 1, "{}", got.body);
    assert_eq!(
        firings[0]["time"], "2026-04-01T09:07:00Z",
        "quiet 5 m after e2"
    );
    assert_eq!(firings[0]["event_ids"], json!(["e2"]));
    assert_eq!(firings[0]["reason"]["because"], "quiet");
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn a_trial_stores_nothing_and_needs_no_database(pool: PgPool) {
    let stack = Stack::new(pool).await;
    let t = stack.tenant().await;
    let got = call(&api(), trials::test, Req::new("test-trigger", t)).await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.body["firings"].as_array().map(Vec::len), Some(1));
    let listed = call(&stack.reads(), firings::list, Req::new("list-firings", t)).await;
    assert_eq!(listed.body["items"], json!([]), "no firing was recorded");
    let event = call(
        &stack.reads(),
        event_routes::get,
        Req::new("get-event", t).id("evt_1"),
    )
    .await;
    assert_eq!(event.status, 404, "no event was kept: {}", event.body);
    for table in [
        "events",
        "firings",
        "deliveries",
        "condition_timers",
        "triggers",
    ] {
        let rows: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&stack.pool)
            .await
            .expect("count");
        assert_eq!(rows, 0, "{table}");
    }
}

#[tokio::test]
async fn a_key_without_the_read_scope_is_refused_before_anything_runs() {
    let gate = Gate {
        route: routes::by_function("test-trigger").expect("in the route table"),
        throttle: None,
    };
    let t = TenantId::new();
    for scopes in ["ingest", "admin", "ingest admin"] {
        let got = call_gated(
            &gate,
            &api(),
            trials::test,
            Req::new("test-trigger", t).scopes(scopes),
        )
        .await;
        assert_eq!(got.status, 403, "{scopes}: {}", got.body);
        assert_eq!(
            got.body["type"],
            "https://triggeriq.dev/problems/missing-scope"
        );
    }
    let read = call_gated(
        &gate,
        &api(),
        trials::test,
        Req::new("test-trigger", t).scopes("read"),
    )
    .await;
    assert_eq!(read.status, 200, "{}", read.body);
}

#[tokio::test]
async fn nul_in_an_event_or_in_the_trigger_is_refused_with_its_path() {
    let api = api();
    let event = r#"{"trigger": {"name": "t", "pattern": {"type": ["a"]}, "actions": [{"url": "https://hooks.example.com/a"}]},
                    "events": [{"type": "a", "time": "2026-04-01T09:00:00Z", "data": {"k": "x\u0000y"}}]}"#;
    assert_refused(&raw(&api, event).await, 422, "$.events[0].data.k");
    let in_trigger = r#"{"trigger": {"name": "t\u0000", "pattern": {"type": ["a"]}, "actions": [{"url": "https://hooks.example.com/a"}]},
                         "events": []}"#;
    assert_refused(&raw(&api, in_trigger).await, 422, "$.trigger.name");
}

#[tokio::test]
async fn a_key_twice_is_refused_with_its_path() {
    let api = api();
    let twice_in_event = r#"{"trigger": {"name": "t", "pattern": {"type": ["a"]}, "actions": [{"url": "https://hooks.example.com/a"}]},
                             "events": [{"type": "a", "type": "b", "time": "2026-04-01T09:00:00Z"}]}"#;
    assert_refused(&raw(&api, twice_in_event).await, 422, "$.events[0].type");
    let twice_at_the_top = r#"{"trigger": {"name": "t", "pattern": {"type": ["a"]}, "actions": [{"url": "https://hooks.example.com/a"}]},
                               "events": [], "events": [{"type": "a", "time": "2026-04-01T09:00:00Z"}]}"#;
    assert_refused(&raw(&api, twice_at_the_top).await, 422, "$.events");
}

#[tokio::test]
async fn more_events_than_the_limit_or_a_body_over_the_size_limit_is_refused_unread() {
    let api = api();
    let event = json!({"type": "payment.failed", "time": "2026-04-01T09:00:00Z"});
    let body =
        json!({"trigger": trigger(json!({"kind": "every"})), "events": vec![event.clone(); 1001]});
    let got = trial(&api, &body).await;
    assert_refused(&got, 422, "$.events");
    assert!(
        got.body["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("at most 1000")),
        "{}",
        got.body
    );
    let at_the_limit =
        json!({"trigger": trigger(json!({"kind": "every"})), "events": vec![event; 1000]});
    let got = trial(&api, &at_the_limit).await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.body["firings"].as_array().map(Vec::len), Some(1000));

    let big = json!({"trigger": trigger(json!({"kind": "every"})),
                     "events": [{"type": "payment.failed", "time": "2026-04-01T09:00:00Z",
                                 "data": "x".repeat(300 * 1024)}]});
    let got = trial(&api, &big).await;
    assert_eq!(got.status, 413, "{}", got.body);
}

/// An object nested `levels` deep (`{"a": {"a": ... {}}}`), the outermost being level 1.
fn nested(levels: usize) -> Value {
    (1..levels).fold(json!({}), |inner, _| json!({ "a": inner }))
}

#[tokio::test]
async fn an_event_may_nest_as_deep_as_ingest_allows_and_no_deeper() {
    let api = api();
    let body = |data_levels: usize| {
        json!({"trigger": trigger(json!({"kind": "every"})),
               "events": [{"type": "payment.failed", "time": "2026-04-01T09:00:00Z",
                           "data": nested(data_levels)}]})
    };
    // The event is level 1, its data level 2: 99 levels of data make an event of 100.
    let deepest = trial(&api, &body(99)).await;
    assert_eq!(deepest.status, 200, "{}", deepest.body);
    let deeper = trial(&api, &body(100)).await;
    assert_refused(&deeper, 422, "$.events[0].data.a");
    assert!(deeper.text.contains("nested too deeply"), "{}", deeper.body);
}

#[tokio::test]
async fn an_event_without_its_time_is_refused_at_its_path() {
    let body = json!({"trigger": trigger(json!({"kind": "every"})),
                      "events": [failed("a", "2026-04-01T09:00:00Z"),
                                 {"id": "b", "type": "payment.failed"},
                                 {"id": "c", "type": "payment.failed", "time": "yesterday"}]});
    let got = trial(&api(), &body).await;
    assert_eq!(got.status, 422, "{}", got.body);
    assert_eq!(
        got.error_paths(),
        ["$.events[1].time", "$.events[2].time"],
        "{}",
        got.body
    );
}

#[tokio::test]
async fn an_invalid_trigger_or_until_is_refused_with_paths_under_trigger() {
    let api = api();
    let body = json!({
        "trigger": trigger(json!({"kind": "threshold", "count": 0, "within": "1h"})),
        "events": [],
        "until": "31d",
        "extra": true,
    });
    let got = trial(&api, &body).await;
    assert_eq!(got.status, 422, "{}", got.body);
    assert_eq!(
        got.error_paths(),
        ["$.extra", "$.trigger.condition.count", "$.until"],
        "{}",
        got.body
    );
    let got = trial(
        &api,
        &json!({"trigger": "no", "events": "no", "until": "soon"}),
    )
    .await;
    assert_eq!(
        got.error_paths(),
        ["$.events", "$.trigger", "$.until"],
        "{}",
        got.body
    );
}

#[tokio::test]
async fn the_trigger_is_held_to_the_deployments_minimum_timer() {
    let body = json!({
        "trigger": trigger(json!({"kind": "absence", "every": "10s"})),
        "events": [failed("a", "2026-04-01T09:00:00Z")],
        "until": "1m",
    });
    let got = trial(&api(), &body).await;
    assert_refused(&got, 422, "$.trigger.condition.every");
    // Where the deployment allows seconds (the local stack), the same trial runs.
    let mut local = ApiConfig::default();
    local.triggers.condition.min_timer = std::time::Duration::from_secs(1);
    let got = trial(&api_with(local), &body).await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.body["firings"][0]["reason"]["state"], "down");
}

#[tokio::test]
async fn a_trial_stops_at_a_thousand_firings_and_says_it_was_truncated() {
    // A device that sends a heartbeat every 5 minutes under an absence of one minute goes down
    // and recovers at every heartbeat; 30 days of clock after the last add its last `down`:
    // 1,999 firings, of which the first 1,000 are answered.
    let heartbeats: Vec<Value> = (0..1000)
        .map(|i| {
            let at = chrono::DateTime::parse_from_rfc3339("2026-04-01T00:00:00Z").expect("time")
                + chrono::Duration::minutes(5 * i);
            json!({"id": format!("hb{i}"), "type": "heartbeat", "time": at.to_rfc3339()})
        })
        .collect();
    let body = json!({
        "trigger": {"name": "t", "pattern": {"type": ["heartbeat"]},
                    "condition": {"kind": "absence", "every": "60s"},
                    "actions": [{"url": "https://hooks.example.com/a"}]},
        "events": heartbeats,
        "until": "30d",
    });
    let got = trial(&api(), &body).await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.body["truncated"], true);
    let firings = got.body["firings"].as_array().expect("firings");
    assert_eq!(firings.len(), 1000);
    assert_eq!(firings[0]["time"], "2026-04-01T00:01:00Z");
    assert_eq!(firings[0]["reason"]["state"], "down");
    assert_eq!(firings[1]["reason"]["state"], "recovered");
    // The 1,000th is the recovery at hb500; hb500's `down` is the one too many, and the
    // heartbeats after it were never run.
    assert_eq!(firings[999]["event_ids"], json!(["hb500"]));
}

/// The costliest pattern the limits allow (1,024 `$or` clauses of 16 values) against events
/// with long arrays: each comparison is a step of test-pattern's allowance (10 million), and
/// one event takes about 2.3 million.
fn costly(events: usize) -> Value {
    let alternatives: Vec<Value> = ["a", "b", "c", "d"]
        .iter()
        .map(|k| json!({ *k: [0] }))
        .collect();
    let mut data = serde_json::Map::new();
    for field in ["a", "b", "c", "d", "e"] {
        data.insert(field.into(), json!({"$or": alternatives}));
    }
    data.insert("z".into(), json!(vec![0; 11]));
    // Every clause's `$or` fields match, so each of them goes on to compare `z`.
    let each = json!({"a": 0, "b": 0, "c": 0, "d": 0});
    let event = json!({"type": "t", "time": "2026-04-01T09:00:00Z",
                       "data": {"a": each, "b": each, "c": each, "d": each, "e": each,
                                "z": vec![1; 200]}});
    json!({
        "trigger": {"name": "t", "pattern": {"data": data},
                    "actions": [{"url": "https://hooks.example.com/a"}]},
        "events": vec![event; events],
    })
}

#[tokio::test]
async fn matching_the_pattern_draws_on_one_allowance_for_all_the_events() {
    let api = api();
    let one = trial(&api, &costly(1)).await;
    assert_eq!(
        one.status, 200,
        "one event is within the allowance: {}",
        one.body
    );
    let many = trial(&api, &costly(10)).await;
    assert_refused(&many, 422, "$.trigger.pattern");
    assert!(many.text.contains("too expensive"), "{}", many.body);
}
