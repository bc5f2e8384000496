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

/// The pipeline (ingest → evaluate → deliver) is in this checkout.
fn pipeline_present() -> bool {
    let missing: Vec<&str> = [
        "ingest-events",
        "evaluate-events",
        "deliver-webhooks",
        "rotate-signing-secret",
    ]
    .into_iter()
    .filter(|f| !repo().join("functions").join(f).is_dir())
    .collect();
    if !missing.is_empty() {
        eprintln!("SKIPPED: the pipeline functions {missing:?} are not in this checkout yet");
    }
    missing.is_empty()
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
    let mut request = client().request(method, format!("{}{path}", api()));
    if let Some(k) = key {
        request = request.bearer_auth(k);
    }
    if let Some(b) = body {
        request = request
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let response = request.send().await.expect("the API answers");
    let status = response.status().as_u16();
    let bytes = response.bytes().await.expect("a body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// One webhook as received.
#[derive(Clone)]
struct Arrival {
    at: Instant,
    headers: HeaderMap,
    body: Bytes,
}

/// This test's receiver: `/hook/{name}` records every delivery; a name can be told to answer
/// 500 a number of times first.
#[derive(Default)]
struct Hooks {
    arrivals: Mutex<HashMap<String, Vec<Arrival>>>,
    failures: Mutex<HashMap<String, usize>>,
}

async fn hook(
    State(hooks): State<Arc<Hooks>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let arrival = Arrival {
        at: Instant::now(),
        headers,
        body,
    };
    hooks
        .arrivals
        .lock()
        .expect("arrivals")
        .entry(name.clone())
        .or_default()
        .push(arrival);
    let mut failures = hooks.failures.lock().expect("failures");
    match failures.get_mut(&name) {
        Some(n) if *n > 0 => {
            *n -= 1;
            StatusCode::INTERNAL_SERVER_ERROR
        }
        _ => StatusCode::NO_CONTENT,
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

#[tokio::test]
#[ignore = "needs the local stack: make e2e"]
async fn a_matching_event_brings_a_signed_webhook_within_10_seconds() {
    if !pipeline_present() {
        return;
    }
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

#[tokio::test]
#[ignore = "needs the local stack: make e2e"]
async fn a_receiver_that_fails_at_first_gets_the_webhook_again() {
    if !pipeline_present() {
        return;
    }
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
    if !pipeline_present() {
        return;
    }
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

/// 1,000 events at 50 per second, one per request: how long from the 202 to the webhook.
/// Prints p50 and p99 (goal: p99 ≤ 300 ms); asserts only that every webhook arrives.
#[tokio::test]
#[ignore = "needs the local stack: make e2e"]
async fn latency_report() {
    if !pipeline_present() {
        return;
    }
    const EVENTS: usize = 1000;
    const PER_SECOND: u64 = 50;
    let (hooks, base) = receiver().await;
    let (_, key) = tenant();
    create_trigger(&key, "e2e.latency", &format!("{base}/latency")).await;
    let run = uuid::Uuid::new_v4().simple().to_string();
    let accepted: Arc<Mutex<HashMap<usize, Instant>>> = Arc::default();
    let mut sends = tokio::task::JoinSet::new();
    let mut tick = tokio::time::interval(Duration::from_millis(1000 / PER_SECOND));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for seq in 0..EVENTS {
        tick.tick().await;
        let (key, run, accepted) = (key.clone(), run.clone(), accepted.clone());
        sends.spawn(async move {
            let event = json!({"id": format!("lat-{run}-{seq}-"), "type": "e2e.latency", "source": "e2e", "data": {"seq": seq}});
            let (status, _) = send_event(&key, event).await;
            if status == 202 {
                accepted.lock().expect("accepted").insert(seq, Instant::now());
            }
        });
    }
    while sends.join_next().await.is_some() {}
    let accepted = accepted.lock().expect("accepted").clone();
    let got = hooks
        .wait_for("latency", accepted.len(), Duration::from_secs(60))
        .await;
    let marker = format!("lat-{run}-");
    let mut latencies: Vec<Duration> = got
        .iter()
        .filter_map(|a| {
            let text = String::from_utf8_lossy(&a.body);
            let start = text.find(&marker)? + marker.len();
            let seq: usize = text[start..].split('-').next()?.parse().ok()?;
            Some(a.at.saturating_duration_since(*accepted.get(&seq)?))
        })
        .collect();
    latencies.sort();
    let pct = |p: f64| {
        latencies[((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1]
    };
    assert!(!latencies.is_empty(), "no webhook arrived");
    println!(
        "end-to-end latency (event accepted → webhook received), {} of {EVENTS} events at {PER_SECOND}/s: p50 {} ms, p99 {} ms, max {} ms (goal p99 ≤ 300 ms)",
        latencies.len(),
        pct(0.50).as_millis(),
        pct(0.99).as_millis(),
        latencies.last().map_or(0, Duration::as_millis),
    );
    assert_eq!(accepted.len(), EVENTS, "every event is accepted");
    assert_eq!(
        latencies.len(),
        EVENTS,
        "every accepted event brings its webhook"
    );
}
