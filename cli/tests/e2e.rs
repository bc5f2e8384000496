//! End to end, against a running local stack (`make e2e` starts one with scripts/dev.sh —
//! the code path of `make dev` — on ports of its own, runs these, and stops it):
//! a tenant made with the CLI, triggers made through the API behind the real authorizer,
//! events posted to the API, and webhooks received by this test's own receiver, which
//! verifies them with the `standardwebhooks` crate (not TriggerIQ's signing code).
//!
//! Ignored in plain `cargo test`: they need the stack. `TRIGGERIQ_E2E_API` names it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use bytes::Bytes;
use serde_json::{Value, json};

fn api() -> String {
    std::env::var("TRIGGERIQ_E2E_API")
        .expect("TRIGGERIQ_E2E_API is not set: run these with `make e2e`, which starts the stack")
}

fn repo() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("HTTP client")
}

/// A fresh tenant made with the CLI, as an operator would: (tenant id, API key).
fn tenant() -> (String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_triggeriq"))
        .args([
            "tenant",
            "create",
            &format!("e2e {}", uuid::Uuid::new_v4()),
            "--json",
        ])
        .output()
        .expect("triggeriq tenant create");
    assert!(
        out.status.success(),
        "tenant create failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON from tenant create");
    (
        v["tenant_id"].as_str().expect("tenant_id").to_owned(),
        v["api_key"].as_str().expect("api_key").to_owned(),
    )
}

async fn call(
    method: reqwest::Method,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    // A 429 did nothing (every route is limited per tenant): wait as told and send it again,
    // as a client should, so the tests' bursts of reads are slowed, never failed.
    for _ in 0..30 {
        let mut request = client().request(method.clone(), format!("{}{path}", api()));
        if let Some(k) = key {
            request = request.bearer_auth(k);
        }
        if let Some(b) = &body {
            request = request
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let response = request.send().await.expect("the API answers");
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let bytes = response.bytes().await.expect("a body");
        if status == 429 {
            tokio::time::sleep(Duration::from_secs(retry_after.unwrap_or(1).clamp(1, 5))).await;
            continue;
        }
        return (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        );
    }
    panic!("{method} {path} was rate limited 30 times in a row");
}

/// One webhook as received.
#[derive(Clone)]
struct Arrival {
    at: Instant,
    headers: HeaderMap,
    body: Bytes,
    /// Whether the receiver answered 2xx.
    answered_ok: bool,
}

/// This test's receiver: `/hook/{name}` records every delivery; a name can be told to answer
/// 500 a number of times first.
#[derive(Default)]
struct Hooks {
    arrivals: Mutex<HashMap<String, Vec<Arrival>>>,
    failures: Mutex<HashMap<String, usize>>,
    /// Names that answer 500 to every other request.
    alternating: Mutex<std::collections::HashSet<String>>,
}

async fn hook(
    State(hooks): State<Arc<Hooks>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let failing = {
        let mut failures = hooks.failures.lock().expect("failures");
        let alternating = hooks
            .alternating
            .lock()
            .expect("alternating")
            .contains(&name);
        let seen = hooks
            .arrivals
            .lock()
            .expect("arrivals")
            .get(&name)
            .map_or(0, Vec::len);
        match failures.get_mut(&name) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => alternating && seen % 2 == 1,
        }
    };
    hooks
        .arrivals
        .lock()
        .expect("arrivals")
        .entry(name)
        .or_default()
        .push(Arrival {
            at: Instant::now(),
            headers,
            body,
            answered_ok: !failing,
        });
    if failing {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::NO_CONTENT
    }
}

async fn receiver() -> (Arc<Hooks>, String) {
    let hooks = Arc::new(Hooks::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    let app = axum::Router::new()
        .route("/hook/{name}", post(hook))
        .with_state(hooks.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (hooks, format!("http://{addr}/hook"))
}

impl Hooks {
    /// From now on `name` answers 500 to every other request.
    fn alternate(&self, name: &str) {
        self.alternating
            .lock()
            .expect("alternating")
            .insert(name.to_owned());
    }

    fn of(&self, name: &str) -> Vec<Arrival> {
        self.arrivals
            .lock()
            .expect("arrivals")
            .get(name)
            .cloned()
            .unwrap_or_default()
    }

    async fn wait_for(&self, name: &str, count: usize, within: Duration) -> Vec<Arrival> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.of(name);
            if got.len() >= count || Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The tenant's signing secret, from rotating it through the API.
async fn signing_secret(key: &str) -> String {
    let (status, body) = call(
        reqwest::Method::POST,
        "/v1/signing-secret/rotate",
        Some(key),
        None,
    )
    .await;
    assert!(
        (200..300).contains(&status),
        "rotate answered {status}: {body}"
    );
    find_secret(&body).unwrap_or_else(|| panic!("no whsec_ secret in the rotate answer {body}"))
}

fn find_secret(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if s.starts_with("whsec_") => Some(s.clone()),
        Value::Array(a) => a.iter().find_map(find_secret),
        Value::Object(o) => o.values().find_map(find_secret),
        _ => None,
    }
}

async fn create_trigger(key: &str, event_type: &str, url: &str) -> String {
    let body = json!({"name": format!("e2e {event_type}"), "pattern": {"type": [event_type]},
        "actions": [{"type": "webhook", "url": url}]});
    let (status, answer) = call(reqwest::Method::POST, "/v1/triggers", Some(key), Some(body)).await;
    assert_eq!(status, 201, "{answer}");
    answer["id"].as_str().expect("trigger id").to_owned()
}

async fn send_event(key: &str, event: Value) -> (u16, Value) {
    call(
        reqwest::Method::POST,
        "/v1/events",
        Some(key),
        Some(json!({ "events": [event] })),
    )
    .await
}

fn verify(secret: &str, arrival: &Arrival) {
    standardwebhooks::Webhook::new(secret)
        .expect("a usable secret")
        .verify(&arrival.body, &arrival.headers)
        .unwrap_or_else(|e| panic!("webhook signature does not verify: {e}"));
}

#[tokio::test]
#[ignore = "needs the local stack: make e2e"]
async fn triggers_are_managed_through_the_gateway_behind_the_api_key_authorizer() {
    let (_, key) = tenant();
    let (_, other_key) = tenant();
    let (status, body) = call(reqwest::Method::GET, "/v1/triggers", None, None).await;
    assert_eq!((status, body), (401, json!({"message": "Unauthorized"})));
    let forged = format!("tiq_{}", "A".repeat(43));
    let (status, _) = call(reqwest::Method::GET, "/v1/triggers", Some(&forged), None).await;
    assert_eq!(status, 403);

    let id = create_trigger(&key, "e2e.crud", "http://127.0.0.1:9/never").await;
    let path = format!("/v1/triggers/{id}");
    let (status, got) = call(reqwest::Method::GET, &path, Some(&key), None).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["name"], "e2e e2e.crud");
    let (status, list) = call(reqwest::Method::GET, "/v1/triggers", Some(&key), None).await;
    assert_eq!(status, 200);
    assert!(list.to_string().contains(&id), "{list}");

    let mut replacement = got.clone();
    replacement["name"] = json!("renamed");
    let (status, updated) = call(reqwest::Method::PUT, &path, Some(&key), Some(replacement)).await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["name"], "renamed");

    let (status, _) = call(reqwest::Method::GET, &path, Some(&other_key), None).await;
    assert_eq!(status, 404, "another tenant's trigger is not found");
    let (status, problem) = call(
        reqwest::Method::POST,
        "/v1/triggers",
        Some(&key),
        Some(json!({"name": "bad", "pattern": {"type": "not-a-list"}, "actions": []})),
    )
    .await;
    assert!((400..500).contains(&status), "{status} {problem}");
    assert!(problem.to_string().contains("$.pattern"), "{problem}");

    let (status, _) = call(reqwest::Method::DELETE, &path, Some(&key), None).await;
    assert_eq!(status, 204);
    let (status, _) = call(reqwest::Method::GET, &path, Some(&key), None).await;
    assert_eq!(status, 404);
}

/// A trigger drafted through the gateway (the local stack's Bedrock stand-in answers from its
/// table), valid as drafted: `POST /v1/triggers` creates it as it is; the correction path runs
/// too, and a read key may not draft.
#[tokio::test]
#[ignore = "needs the local stack: make e2e"]
async fn a_drafted_trigger_is_valid_and_creates_as_it_is() {
    let (_, key) = tenant();
    let text = "tell me when a customer's payments fail 3 times within an hour";
    let (status, drafted) = call(
        reqwest::Method::POST,
        "/v1/triggers/draft",
        Some(&key),
        Some(json!({"text": text, "example_events": [
            {"id": "evt_1", "type": "payment.failed", "data": {"customer_id": "cus_1"}},
            {"type": "payment.succeeded", "data": {"customer_id": "cus_1"}}]})),
    )
    .await;
    assert_eq!(status, 200, "{drafted}");
    let draft = drafted["draft"].clone();
    assert_eq!(draft["condition"]["kind"], "threshold", "{drafted}");
    assert_eq!(draft["enabled"], false, "{drafted}");
    assert!(drafted["explanation"].is_string(), "{drafted}");
    assert_eq!(
        drafted["example_matches"],
        json!([{"index": 0, "id": "evt_1", "matches": true}, {"index": 1, "matches": false}])
    );
    let (status, created) = call(
        reqwest::Method::POST,
        "/v1/triggers",
        Some(&key),
        Some(draft),
    )
    .await;
    assert_eq!(status, 201, "the draft creates as it is: {created}");
    assert_eq!(created["enabled"], false, "{created}");

    let (status, corrected) = call(
        reqwest::Method::POST,
        "/v1/triggers/draft",
        Some(&key),
        Some(json!({"text": format!("__draft_invalid__ {text}")})),
    )
    .await;
    assert_eq!(status, 200, "corrected once: {corrected}");
    assert!(
        corrected["warnings"]
            .to_string()
            .contains("$.draft.condition.count"),
        "{corrected}"
    );

    let (status, throttled) = call(
        reqwest::Method::POST,
        "/v1/triggers/draft",
        Some(&key),
        Some(json!({"text": "__bedrock_throttle__"})),
    )
    .await;
    assert_eq!(status, 503, "{throttled}");
}

#[tokio::test]
#[ignore = "needs the local stack: make e2e"]
async fn a_matching_event_brings_a_signed_webhook_within_10_seconds() {
    let (hooks, base) = receiver().await;
    let (_, key) = tenant();
    let secret = signing_secret(&key).await;
    create_trigger(&key, "e2e.signed", &format!("{base}/signed")).await;
    let event_id = format!("evt-{}", uuid::Uuid::new_v4());
    let (status, answer) = send_event(
        &key,
        json!({"id": event_id, "type": "e2e.signed", "source": "e2e", "data": {"n": 1}}),
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    assert!(
        answer.to_string().contains(&event_id),
        "per-event results name the event: {answer}"
    );
    let accepted = Instant::now();
    let got = hooks.wait_for("signed", 1, Duration::from_secs(10)).await;
    assert_eq!(
        got.len(),
        1,
        "no webhook within 10 s of the event being accepted"
    );
    verify(&secret, &got[0]);
    assert!(
        String::from_utf8_lossy(&got[0].body).contains(&event_id),
        "the webhook carries the event"
    );
    eprintln!(
        "webhook {} ms after the event was accepted",
        got[0].at.duration_since(accepted).as_millis()
    );
}

/// One trigger of each condition kind over time, on the local stack (which runs
/// evaluate-timers every 2 s for this test and allows deadlines of seconds): a threshold fires
/// on the third event of one customer only, a debounce once after its burst, an absence once
/// when the device goes silent and once when it comes back, a sequence whose steps arrive out
/// of order, and a cart not followed by its checkout; each webhook says why.
#[tokio::test]
#[ignore = "needs the local stack: make e2e"]
async fn conditions_over_time_fire_on_the_local_stack_with_their_reasons() {
    let (hooks, base) = receiver().await;
    let (_, key) = tenant();
    let secret = signing_secret(&key).await;
    let make = |name: &str, event_type: &str, condition: Value| {
        json!({"name": name, "pattern": {"type": [event_type]}, "condition": condition,
               "actions": [{"type": "webhook", "url": format!("{base}/{name}")}]})
    };
    for body in [
        make(
            "threshold",
            "e2e.payment_failed",
            json!({"kind": "threshold", "count": 3, "within": "1h", "group_by": ["$.data.customer"]}),
        ),
        make(
            "debounce",
            "e2e.error",
            json!({"kind": "debounce", "quiet": "3s", "deliver": "all", "group_by": ["$.subject"]}),
        ),
        make(
            "absence",
            "e2e.heartbeat",
            json!({"kind": "absence", "every": "3s", "group_by": ["$.data.device"]}),
        ),
        json!({"name": "sequence", "pattern": {"type": ["e2e.trial_started", "e2e.limit_hit"]},
               "condition": {"kind": "sequence", "within": "1h", "group_by": ["$.data.account"],
                             "steps": [{"type": ["e2e.trial_started"]}, {"type": ["e2e.limit_hit"]}]},
               "actions": [{"type": "webhook", "url": format!("{base}/sequence")}]}),
        json!({"name": "then_not", "pattern": {"type": ["e2e.cart", "e2e.checkout"]},
               "condition": {"kind": "sequence", "within": "3s", "group_by": ["$.data.cart"],
                             "steps": [{"type": ["e2e.cart"]}], "then_not": {"type": ["e2e.checkout"]}},
               "actions": [{"type": "webhook", "url": format!("{base}/then_not")}]}),
    ] {
        let (status, answer) = call(
            reqwest::Method::POST,
            "/v1/triggers",
            Some(&key),
            Some(body),
        )
        .await;
        assert_eq!(status, 201, "{answer}");
    }
    let send = |events: Vec<Value>| {
        let key = key.clone();
        async move {
            let (status, answer) = call(
                reqwest::Method::POST,
                "/v1/events",
                Some(&key),
                Some(json!({ "events": events })),
            )
            .await;
            assert_eq!(status, 202, "{answer}");
        }
    };
    let payment = |id: &str, customer: &str| json!({"id": id, "type": "e2e.payment_failed", "data": {"customer": customer}});
    send(vec![
        payment("p1", "A"),
        payment("p2", "B"),
        payment("p3", "A"),
    ])
    .await;
    send(vec![
        json!({"id": "err1", "type": "e2e.error", "subject": "checkout"}),
        json!({"id": "err2", "type": "e2e.error", "subject": "checkout"}),
        json!({"id": "hb1", "type": "e2e.heartbeat", "data": {"device": "d-1"}}),
    ])
    .await;
    send(vec![payment("p4", "A")]).await;
    // The sequence's second step is sent first (its time is later): order is by event time.
    let at = |seconds: i64| (chrono::Utc::now() + chrono::Duration::seconds(seconds)).to_rfc3339();
    send(vec![
        json!({"id": "lim1", "type": "e2e.limit_hit", "time": at(0), "data": {"account": "acc-1"}}),
        json!({"id": "cart1", "type": "e2e.cart", "data": {"cart": 1}}),
        json!({"id": "cart2", "type": "e2e.cart", "data": {"cart": 2}}),
    ])
    .await;
    send(vec![
        json!({"id": "trial1", "type": "e2e.trial_started", "time": at(-60), "data": {"account": "acc-1"}}),
        json!({"id": "checkout2", "type": "e2e.checkout", "data": {"cart": 2}}),
    ])
    .await;

    let threshold = hooks
        .wait_for("threshold", 1, Duration::from_secs(15))
        .await;
    assert_eq!(threshold.len(), 1, "the third failure of customer A fires");
    verify(&secret, &threshold[0]);
    let body: Value = serde_json::from_slice(&threshold[0].body).expect("JSON");
    assert_eq!(body["data"]["reasons"]["group"], json!(["A"]), "{body}");
    assert_eq!(body["data"]["reasons"]["event_count"], 3, "{body}");

    let debounced = hooks.wait_for("debounce", 1, Duration::from_secs(30)).await;
    assert_eq!(debounced.len(), 1, "the burst fires once it is over");
    let body: Value = serde_json::from_slice(&debounced[0].body).expect("JSON");
    let mut ids: Vec<String> = body["data"]["reasons"]["event_ids"]
        .as_array()
        .expect("ids")
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    ids.sort();
    assert_eq!(ids, ["err1", "err2"], "{body}");

    let sequence = hooks.wait_for("sequence", 1, Duration::from_secs(15)).await;
    assert_eq!(
        sequence.len(),
        1,
        "the trial, then the limit, for one account"
    );
    let body: Value = serde_json::from_slice(&sequence[0].body).expect("JSON");
    assert_eq!(
        body["data"]["reasons"]["event_ids"],
        json!(["trial1", "lim1"]),
        "{body}"
    );

    let abandoned = hooks.wait_for("then_not", 1, Duration::from_secs(30)).await;
    assert_eq!(abandoned.len(), 1, "the cart nobody checked out");
    let body: Value = serde_json::from_slice(&abandoned[0].body).expect("JSON");
    assert_eq!(body["data"]["reasons"]["state"], "not_followed", "{body}");
    assert_eq!(
        body["data"]["reasons"]["event_ids"],
        json!(["cart1"]),
        "{body}"
    );

    let down = hooks.wait_for("absence", 1, Duration::from_secs(30)).await;
    assert_eq!(down.len(), 1, "the silent device fires");
    let body: Value = serde_json::from_slice(&down[0].body).expect("JSON");
    assert_eq!(body["data"]["reasons"]["state"], "down", "{body}");
    send(vec![
        json!({"id": "hb2", "type": "e2e.heartbeat", "data": {"device": "d-1"}}),
    ])
    .await;
    let both = hooks.wait_for("absence", 2, Duration::from_secs(15)).await;
    assert_eq!(both.len(), 2, "and again when it comes back");
    let body: Value = serde_json::from_slice(&both[1].body).expect("JSON");
    assert_eq!(body["data"]["reasons"]["state"], "recovered", "{body}");
    // Nothing more for the threshold (p4 waits for two more) or the burst.
    assert_eq!(
        hooks
            .wait_for("threshold", 2, Duration::from_secs(2))
            .await
            .len(),
        1
    );
    assert_eq!(
        hooks
            .wait_for("debounce", 2, Duration::from_millis(100))
            .await
            .len(),
        1
    );
    assert_eq!(
        hooks
            .wait_for("then_not", 2, Duration::from_millis(100))
            .await
            .len(),
        1,
        "the checked-out cart does not fire"
    );
}

#[tokio::test]
#[ignore = "needs the local stack: make e2e"]
async fn a_receiver_that_fails_at_first_gets_the_webhook_again() {
    let (hooks, base) = receiver().await;
    hooks
        .failures
        .lock()
        .expect("failures")
        .insert("flaky".into(), 1);
    let (_, key) = tenant();
    let secret = signing_secret(&key).await;
    create_trigger(&key, "e2e.flaky", &format!("{base}/flaky")).await;
    let (status, answer) = send_event(&key, json!({"type": "e2e.flaky", "source": "e2e"})).await;
    assert_eq!(status, 202, "{answer}");
    // The first retry comes 5 s (±20 %) after the failed attempt.
    let got = hooks.wait_for("flaky", 2, Duration::from_secs(30)).await;
    assert_eq!(got.len(), 2, "the failed delivery was not retried");
    verify(&secret, &got[1]);
    let id = |a: &Arrival| a.headers.get("webhook-id").cloned();
    assert_eq!(id(&got[0]), id(&got[1]), "a retry keeps its webhook-id");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(hooks.of("flaky").len(), 2, "a 2xx ends the retries");
}

#[tokio::test]
#[ignore = "needs the local stack: make e2e"]
async fn an_event_sent_twice_fires_once() {
    let (hooks, base) = receiver().await;
    let (_, key) = tenant();
    create_trigger(&key, "e2e.dup", &format!("{base}/dup")).await;
    let event =
        json!({"id": format!("dup-{}", uuid::Uuid::new_v4()), "type": "e2e.dup", "source": "e2e"});
    let (status, first) = send_event(&key, event.clone()).await;
    assert_eq!(status, 202, "{first}");
    assert_eq!(
        hooks
            .wait_for("dup", 1, Duration::from_secs(10))
            .await
            .len(),
        1
    );
    let (status, second) = send_event(&key, event).await;
    assert!(
        (200..300).contains(&status),
        "a duplicate is not an error: {status} {second}"
    );
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(hooks.of("dup").len(), 1, "the duplicate fired again");
}

/// 1,000 events offered at 50 per second, one per request, with at most 8 requests in flight
/// (`E2E_LATENCY_EVENTS`, `E2E_LATENCY_RATE`, `E2E_LATENCY_IN_FLIGHT`): how long from sending an
/// event to receiving its webhook. When the stack answers slower than the offered rate, the cap
/// slows the sender instead of piling up requests that time out, and the report says which
/// rate was achieved. Prints p50 and p99 (goal: p99 ≤ 300 ms) — a report of what the local
/// stack sustains on this machine, not a pass mark. It asserts that every accepted event
/// brings its webhook and fires once: load may slow the stack, never lose or double an event.
/// `make e2e` runs it after the other tests, which its load cannot disturb.
#[tokio::test]
#[ignore = "needs the local stack: make e2e"]
async fn latency_report() {
    let setting = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|v| *v > 0)
            .unwrap_or(default)
    };
    let events = setting("E2E_LATENCY_EVENTS", 1000) as usize;
    let per_second = setting("E2E_LATENCY_RATE", 50);
    let in_flight = Arc::new(tokio::sync::Semaphore::new(
        setting("E2E_LATENCY_IN_FLIGHT", 8) as usize,
    ));
    let (hooks, base) = receiver().await;
    let (_, key) = tenant();
    create_trigger(&key, "e2e.latency", &format!("{base}/latency")).await;
    let run = uuid::Uuid::new_v4().simple().to_string();
    // seq → (sent at, status answered)
    let sent: Arc<Mutex<HashMap<usize, (Instant, u16)>>> = Arc::default();
    let mut sends = tokio::task::JoinSet::new();
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / per_second));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let started = Instant::now();
    for seq in 0..events {
        tick.tick().await;
        let permit = in_flight.clone().acquire_owned().await.expect("semaphore");
        let (key, run, sent) = (key.clone(), run.clone(), sent.clone());
        sends.spawn(async move {
            let _permit = permit;
            let event = json!({"id": format!("lat-{run}-{seq}-"), "type": "e2e.latency", "source": "e2e", "data": {"seq": seq}});
            let at = Instant::now();
            let (status, _) = send_event(&key, event).await;
            sent.lock().expect("sent").insert(seq, (at, status));
        });
    }
    while sends.join_next().await.is_some() {}
    let achieved = events as f64 / started.elapsed().as_secs_f64();
    let sent = sent.lock().expect("sent").clone();
    let accepted: HashMap<usize, Instant> = sent
        .iter()
        .filter(|(_, (_, status))| *status == 202)
        .map(|(seq, (at, _))| (*seq, *at))
        .collect();
    let mut refused: Vec<(u16, usize)> = Vec::new();
    for (_, status) in sent.values().filter(|(_, s)| *s != 202) {
        match refused.iter_mut().find(|(s, _)| s == status) {
            Some((_, n)) => *n += 1,
            None => refused.push((*status, 1)),
        }
    }
    refused.sort();
    assert!(!accepted.is_empty(), "no event was accepted: {refused:?}");
    // Requests that timed out may still have been ingested: wait for every accepted event
    // by its sequence number, not for a count of webhooks.
    let marker = format!("lat-{run}-");
    let seq_of = |arrival: &Arrival| {
        let text = String::from_utf8_lossy(&arrival.body);
        let start = text.find(&marker)? + marker.len();
        text[start..].split('-').next()?.parse::<usize>().ok()
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    let got = loop {
        let got = hooks.of("latency");
        let arrived: std::collections::HashSet<usize> = got.iter().filter_map(seq_of).collect();
        if accepted.keys().all(|seq| arrived.contains(seq)) || Instant::now() > deadline {
            break got;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // The first arrival per event counts. A repeat with the same webhook-id is a retry
    // (at-least-once delivery); a second webhook-id would mean the event fired twice.
    let mut seen: HashMap<usize, String> = HashMap::new();
    let mut latencies: Vec<Duration> = Vec::new();
    for arrival in &got {
        let Some(seq) = seq_of(arrival) else {
            continue;
        };
        let id = arrival
            .headers
            .get("webhook-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        if let Some(first) = seen.get(&seq) {
            assert_eq!(first, &id, "event {seq} fired twice");
            continue;
        }
        seen.insert(seq, id);
        if let Some(at) = accepted.get(&seq) {
            latencies.push(arrival.at.saturating_duration_since(*at));
        }
    }
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(
                ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len().max(1)) - 1,
            )
            .map_or(0, Duration::as_millis)
    };
    println!(
        "end-to-end latency (event sent → webhook received), {events} events offered at {per_second}/s, sent at {achieved:.1}/s: \
         {} accepted, refused or timed out by status {refused:?}; over the accepted: p50 {} ms, p99 {} ms, max {} ms (goal p99 ≤ 300 ms)",
        accepted.len(),
        pct(0.50),
        pct(0.99),
        latencies.last().map_or(0, Duration::as_millis),
    );
    assert_eq!(
        latencies.len(),
        accepted.len(),
        "every accepted event brings its webhook"
    );
}

/// `cargo lambda invoke <function> --data-file events/<function>.json` against the stack's
/// `cargo lambda watch`, for every sample: each function answers, none with a 5xx, the
/// authorizer admits the demo key and the queue consumers fail no message. The samples' webhook
/// URL (a public placeholder) is replaced by this test's receiver, where the deliveries
/// sample's webhook must arrive once. delete-trigger goes last: it deletes the demo trigger
/// that other samples name (`make dev` puts it back). The invokes block, so the receiver runs
/// on a second worker thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local stack: make e2e"]
async fn every_function_answers_its_sample_through_cargo_lambda_invoke() {
    const PLACEHOLDER_URL: &str = "https://hooks.example.com/triggeriq";
    let ready =
        std::env::var("TRIGGERIQ_E2E_READY").expect("TRIGGERIQ_E2E_READY: run with make e2e");
    let ready: Value =
        serde_json::from_slice(&std::fs::read(ready).expect("ready file")).expect("ready JSON");
    let watch = reqwest::Url::parse(ready["watch"].as_str().expect("the watch address"))
        .expect("the watch URL");
    let watch_host = watch
        .host_str()
        .expect("a host")
        .trim_matches(['[', ']'])
        .to_owned();
    let watch_port = watch.port().expect("a port").to_string();
    let (hooks, base) = receiver().await;
    let scratch = std::env::temp_dir().join(format!("triggeriq-e2e-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&scratch).expect("temp dir");
    let mut functions: Vec<String> = std::fs::read_dir(repo().join("functions"))
        .expect("functions/")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    functions.sort_by_key(|f| (f == "delete-trigger", f.clone()));
    let mut path = std::ffi::OsString::from(repo().join(".venv/bin"));
    path.push(":");
    path.push(std::env::var_os("PATH").unwrap_or_default());
    for function in &functions {
        // The samples name a public placeholder host; tests talk to 127.0.0.1 only.
        let sample = repo().join("events").join(format!("{function}.json"));
        let text = std::fs::read_to_string(&sample).expect("sample");
        let data = scratch.join(format!("{function}.json"));
        // The deliveries sample's webhook goes to a name of its own: the triggers the other
        // samples create fire too when the evaluate sample runs.
        let hook = if function == "deliver-webhooks" {
            "delivery-sample"
        } else {
            "sample"
        };
        std::fs::write(
            &data,
            text.replace(PLACEHOLDER_URL, &format!("{base}/{hook}")),
        )
        .expect("write the local sample");
        let out = std::process::Command::new("cargo")
            .env("PATH", &path)
            .args([
                "lambda",
                "invoke",
                function,
                "--output-format",
                "json",
                "--color",
                "never",
            ])
            .args([
                "--invoke-address",
                &watch_host,
                "--invoke-port",
                &watch_port,
            ])
            .arg("--data-file")
            .arg(&data)
            .output()
            .expect("cargo lambda invoke");
        assert!(
            out.status.success(),
            "cargo lambda invoke {function} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let answer: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{function} answered no JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        });
        if let Some(status) = answer.get("statusCode") {
            let status = status.as_u64().expect("a numeric statusCode");
            assert!(status < 500, "{function} answered {status}: {answer}");
        } else if function == "authorize-request" {
            assert_eq!(answer["isAuthorized"], true, "{answer}");
        } else if function == "evaluate-timers" {
            assert!(
                answer["due"].is_u64() && answer["fired"].is_u64(),
                "{answer}"
            );
        } else if function == "cognito-pre-token" {
            assert_eq!(
                answer["response"]["claimsAndScopeOverrideDetails"]["accessTokenGeneration"]["claimsToAddOrOverride"]
                    ["tenant_id"],
                "0190f0a0-0000-7000-8000-000000000001",
                "{answer}"
            );
        } else {
            assert_eq!(
                answer["batchItemFailures"],
                json!([]),
                "{function} failed messages of its sample: {answer}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    let arrived = hooks
        .wait_for("delivery-sample", 1, Duration::from_secs(10))
        .await;
    assert_eq!(
        arrived.len(),
        1,
        "the deliveries sample's webhook did not arrive"
    );
}

/// The two curl lines `make dev` prints (create a trigger posting to the demo receiver, send
/// an event that matches it), run as a newcomer would copy them: the demo receiver must print
/// a delivery whose signature it verified.
#[tokio::test]
#[ignore = "needs the local stack: make e2e"]
async fn the_curl_lines_make_dev_prints_bring_a_verified_webhook_to_the_demo_receiver() {
    let log_path =
        std::env::var("TRIGGERIQ_E2E_LOG").expect("TRIGGERIQ_E2E_LOG: run with make e2e");
    let read_log = || std::fs::read_to_string(&log_path).expect("the stack's log");
    let verified = |log: &str| {
        log.lines()
            .filter(|l| l.contains("✓ signature verified"))
            .count()
    };
    // Each printed command starts with "  curl" and continues on lines after a trailing "\".
    let log = read_log();
    let mut commands: Vec<String> = Vec::new();
    let mut lines = log.lines();
    while let Some(line) = lines.next() {
        if !line.trim_start().starts_with("curl ") {
            continue;
        }
        let mut command = line.trim().to_owned();
        while command.ends_with('\\') {
            command.pop();
            command.push_str(lines.next().expect("a continuation line").trim());
        }
        commands.push(command);
    }
    assert_eq!(
        commands.len(),
        2,
        "make dev prints two curl lines: {commands:?}"
    );
    let before = verified(&log);
    for command in &commands {
        let out = std::process::Command::new("bash")
            .args(["-c", command])
            .output()
            .expect("bash runs the curl line");
        assert!(out.status.success(), "{command} failed");
        let answer: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{command} answered no JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        });
        assert!(
            answer.get("id").is_some() || answer["accepted"] == 1,
            "{command} answered {answer}"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while verified(&read_log()) <= before && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        verified(&read_log()) > before,
        "the demo receiver printed no verified webhook within 10 s"
    );
}

/// Waits until `GET /v1/events/{id}` finds each id (it was evaluated), or `within` passes;
/// the ids not found.
async fn wait_evaluated(key: &str, ids: &[String], within: Duration) -> Vec<String> {
    let deadline = Instant::now() + within;
    let mut missing: Vec<String> = ids.to_vec();
    while !missing.is_empty() && Instant::now() < deadline {
        let mut still = Vec::new();
        for id in missing {
            let (status, _) = call(
                reqwest::Method::GET,
                &format!("/v1/events/{id}"),
                Some(key),
                None,
            )
            .await;
            if status != 200 {
                still.push(id);
            }
        }
        missing = still;
        if !missing.is_empty() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    missing
}

#[tokio::test]
#[ignore = "needs the local stack: make e2e"]
async fn the_largest_batch_is_answered_within_the_gateways_timeout_and_every_event_evaluated() {
    let (_, key) = tenant();
    let (hooks, base) = receiver().await;
    create_trigger(&key, "batch.every-tenth", &format!("{base}/tenth")).await;
    // 500 events (the documented maximum), one in ten matching the trigger.
    let ids: Vec<String> = (0..500).map(|i| format!("max-{i}")).collect();
    let events: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let kind = if i % 10 == 0 {
                "batch.every-tenth"
            } else {
                "batch.other"
            };
            json!({"id": id, "type": kind, "data": {"i": i}})
        })
        .collect();
    let started = Instant::now();
    let (status, answer) = call(
        reqwest::Method::POST,
        "/v1/events",
        Some(&key),
        Some(json!({ "events": events })),
    )
    .await;
    let took = started.elapsed();
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["accepted"], 500, "{answer}");
    // The local gateway gives up after 11 s; the answer must come well inside it.
    assert!(
        took < Duration::from_secs(11),
        "the 500-event batch took {took:?}"
    );
    eprintln!("500-event batch answered in {} ms", took.as_millis());

    let missing = wait_evaluated(&key, &ids, Duration::from_secs(240)).await;
    assert!(
        missing.is_empty(),
        "{} events never evaluated: {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    let arrived = hooks.wait_for("tenth", 50, Duration::from_secs(120)).await;
    assert_eq!(arrived.len(), 50, "one webhook per matching event");
    // Sent again, every one is a duplicate.
    let (status, again) = call(
        reqwest::Method::POST,
        "/v1/events",
        Some(&key),
        Some(json!({ "events": ids.iter().map(|id| json!({"id": id, "type": "batch.other"})).collect::<Vec<_>>() })),
    )
    .await;
    assert_eq!(status, 202, "{again}");
    assert_eq!(again["duplicates"], 500, "{again}");
}

#[tokio::test]
#[ignore = "needs the local stack: make e2e"]
async fn an_event_at_the_depth_limit_goes_through_and_one_deeper_is_refused_with_its_path() {
    let (_, key) = tenant();
    let (hooks, base) = receiver().await;
    create_trigger(&key, "deep.event", &format!("{base}/deep")).await;
    // The event object is level 1, "data" holds the other 99 levels.
    let nested = |levels: usize| -> Value {
        let mut value = json!(0);
        for _ in 0..levels - 1 {
            value = json!([value]);
        }
        value
    };
    let (status, answer) = send_event(
        &key,
        json!({"id": "deep-ok", "type": "deep.event", "data": nested(100)}),
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    let arrived = hooks.wait_for("deep", 1, Duration::from_secs(30)).await;
    assert_eq!(
        arrived.len(),
        1,
        "the deepest event allowed is evaluated and delivered"
    );
    let (status, answer) = send_event(
        &key,
        json!({"id": "deep-no", "type": "deep.event", "data": nested(101)}),
    )
    .await;
    assert_eq!(status, 422, "{answer}");
    let path = answer["errors"][0]["path"].as_str().unwrap_or_default();
    assert!(path.starts_with("$.events[0].data["), "{answer}");
}

#[tokio::test]
#[ignore = "needs the local stack: make e2e"]
async fn another_tenants_trigger_firing_and_event_answer_404_through_the_gateway() {
    let (_, key_a) = tenant();
    let (_, key_b) = tenant();
    let (hooks, base) = receiver().await;
    let trigger = create_trigger(&key_a, "tenancy.check", &format!("{base}/tenancy")).await;
    let (status, _) = send_event(&key_a, json!({"id": "tenancy-1", "type": "tenancy.check"})).await;
    assert_eq!(status, 202);
    hooks.wait_for("tenancy", 1, Duration::from_secs(30)).await;
    let (_, firings) = call(reqwest::Method::GET, "/v1/firings", Some(&key_a), None).await;
    let firing = firings["items"][0]["id"]
        .as_str()
        .expect("a firing")
        .to_owned();
    for path in [
        format!("/v1/triggers/{trigger}"),
        format!("/v1/firings/{firing}"),
        "/v1/events/tenancy-1".to_owned(),
    ] {
        let (status, body) = call(reqwest::Method::GET, &path, Some(&key_b), None).await;
        assert_eq!(status, 404, "{path}: {body}");
        let (status, _) = call(reqwest::Method::GET, &path, Some(&key_a), None).await;
        assert_eq!(status, 200, "{path} for its own tenant");
    }
    let (status, _) = call(
        reqwest::Method::DELETE,
        &format!("/v1/triggers/{trigger}"),
        Some(&key_b),
        None,
    )
    .await;
    assert_eq!(status, 404);
}

/// Runs a shell command for the fault injection; says what it did.
fn inject(what: &str, command: &str) {
    let status = std::process::Command::new("bash")
        .args(["-c", command])
        .status()
        .expect("bash");
    eprintln!(
        "fault: {what} ({})",
        if status.success() { "done" } else { "failed" }
    );
}

/// The port of a URL like `http://127.0.0.1:5010`.
fn port_of(url: &str) -> u16 {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.port())
        .expect("a URL with a port")
}

#[tokio::test]
#[ignore = "needs the local stack: make e2e"]
async fn fault_injection_report() {
    let ready = std::env::var("TRIGGERIQ_E2E_READY").expect("TRIGGERIQ_E2E_READY");
    let ready: Value =
        serde_json::from_slice(&std::fs::read(ready).expect("ready file")).expect("ready JSON");
    let moto_port = port_of(ready["aws_endpoint"].as_str().expect("aws_endpoint"));
    let events: usize = std::env::var("E2E_FAULT_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);

    let (_, key) = tenant();
    let (hooks, base) = receiver().await;
    // Every other request to this receiver answers 500.
    hooks.alternate("flaky");
    create_trigger(&key, "fault.load", &format!("{base}/flaky")).await;
    let ids: Vec<String> = (0..events).map(|i| format!("fault-{i}")).collect();

    // The faults, while the events are sent and processed.
    let faults = tokio::spawn(async move {
        let steps: [(u64, &str, String); 5] = [
            (
                2,
                "killed evaluate-events mid-batch",
                "pkill -KILL -f '^/.*/debug/evaluate-events$'".into(),
            ),
            (
                4,
                "killed deliver-webhooks mid-batch",
                "pkill -KILL -f '^/.*/debug/deliver-webhooks$'".into(),
            ),
            (
                6,
                "restarted PostgreSQL",
                "pg_ctlcluster \"$(ls /usr/lib/postgresql | sort -V | tail -n 1)\" main restart"
                    .into(),
            ),
            (
                10,
                "froze moto for 5 s (a restart would lose its in-memory queues and table)",
                format!(
                    "pid=$(ss -ltnpH 'sport = :{moto_port}' | grep -o 'pid=[0-9]*' | head -n 1 | cut -d= -f2); \
                         kill -STOP $pid && sleep 5 && kill -CONT $pid"
                ),
            ),
            (
                16,
                "killed evaluate-events again (as soon as an instance runs)",
                "for _ in $(seq 40); do pkill -KILL -f '^/.*/debug/evaluate-events$' && exit 0; sleep 0.25; done; exit 1".into(),
            ),
        ];
        let started = Instant::now();
        for (at, what, command) in steps {
            tokio::time::sleep_until((started + Duration::from_secs(at)).into()).await;
            tokio::task::spawn_blocking(move || inject(what, &command))
                .await
                .expect("fault");
        }
    });

    // Send in batches of 100, as a client would: a batch that is not answered 202 for every
    // event is sent again (its accepted events then come back as duplicates).
    let mut answered: HashMap<String, String> = HashMap::new();
    for chunk in ids.chunks(100) {
        let mut pending: Vec<&String> = chunk.iter().collect();
        for _ in 0..60 {
            let body = json!({"events": pending.iter().map(|id| json!({"id": id, "type": "fault.load"})).collect::<Vec<_>>()});
            let (status, answer) =
                call(reqwest::Method::POST, "/v1/events", Some(&key), Some(body)).await;
            let mut still = Vec::new();
            for (id, outcome) in pending.iter().zip(
                answer["events"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .chain(std::iter::repeat(Value::Null)),
            ) {
                match outcome["status"].as_str() {
                    Some(s @ ("accepted" | "duplicate")) if status == 202 => {
                        answered
                            .entry((*id).clone())
                            .or_insert_with(|| s.to_owned());
                    }
                    _ => still.push(*id),
                }
            }
            pending = still;
            if pending.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert!(
            pending.is_empty(),
            "{} events never accepted",
            pending.len()
        );
    }
    faults.await.expect("faults");

    let missing = wait_evaluated(&key, &ids, Duration::from_secs(600)).await;
    // Firings of the tenant, every page.
    let mut firings: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/firings?limit=100&cursor={c}"),
            None => "/v1/firings?limit=100".to_owned(),
        };
        let (status, page) = call(reqwest::Method::GET, &path, Some(&key), None).await;
        assert_eq!(status, 200, "{page}");
        firings.extend(page["items"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let fired_events: std::collections::HashSet<&str> = firings
        .iter()
        .filter_map(|f| f["event_id"].as_str())
        .collect();
    let duplicate_firings = firings.len() - fired_events.len();

    // Every firing delivered (the receiver answered 204 once) or visibly failed. The receiver's
    // bodies name their firing; once deliveries stop arriving, the firings still without one
    // are asked for their deliveries' state (all `failed` ends the wait early).
    let firing_ids: Vec<String> = firings
        .iter()
        .filter_map(|f| f["id"].as_str().map(str::to_owned))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut last_count = 0;
    let mut quiet_since = Instant::now();
    let (delivered, failed_visibly, unaccounted) = loop {
        let delivered: std::collections::HashSet<String> = hooks
            .of("flaky")
            .iter()
            .filter(|a| a.answered_ok)
            .filter_map(|a| {
                serde_json::from_slice::<Value>(&a.body)
                    .ok()
                    .and_then(|b| b["data"]["firing_id"].as_str().map(str::to_owned))
            })
            .collect();
        if delivered.len() != last_count {
            last_count = delivered.len();
            quiet_since = Instant::now();
        }
        let remaining: Vec<&String> = firing_ids
            .iter()
            .filter(|id| !delivered.contains(*id))
            .collect();
        let settle = remaining.is_empty()
            || Instant::now() > deadline
            || quiet_since.elapsed() > Duration::from_secs(10);
        if settle {
            let (mut failed, mut open) = (0, 0);
            for id in &remaining {
                let (_, detail) = call(
                    reqwest::Method::GET,
                    &format!("/v1/firings/{id}"),
                    Some(&key),
                    None,
                )
                .await;
                for d in detail["deliveries"].as_array().cloned().unwrap_or_default() {
                    match d["status"].as_str() {
                        Some("failed" | "disabled") => failed += 1,
                        Some("delivered") => {}
                        _ => open += 1,
                    }
                }
            }
            if open == 0 || Instant::now() > deadline {
                break (delivered, failed, open);
            }
            quiet_since = Instant::now();
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let attempts = hooks.of("flaky").len();
    eprintln!(
        "fault injection: {events} events sent, {} accepted, {} evaluated; {} firings ({duplicate_firings} duplicates); \
         {} webhooks delivered, {failed_visibly} failed visibly, {unaccounted} unaccounted; {attempts} attempts at a receiver failing every other request",
        answered.len(),
        events - missing.len(),
        firings.len(),
        delivered.len(),
    );
    assert!(
        missing.is_empty(),
        "{} accepted events never evaluated",
        missing.len()
    );
    assert_eq!(firings.len(), events, "one firing per event");
    assert_eq!(duplicate_firings, 0);
    assert_eq!(unaccounted, 0, "every firing delivered or visibly failed");
}
