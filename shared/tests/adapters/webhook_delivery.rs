//! Webhook delivery end to end: a receiver on 127.0.0.1 that checks
//! signatures with the independent `standardwebhooks` crate, the SSRF guard
//! in front of the client, and the retry decisions taken on real outcomes.
//!
//! Network rule for these tests: every connection goes to 127.0.0.1. The
//! guard's refusals of the other address classes (private, link-local,
//! metadata, CGNAT, multicast…) are tested where no connection can be made
//! at all (`check_url` and the resolver, also in the unit tests of
//! `webhook::ssrf`), so that a regression in the guard can never send a
//! packet to a non-local address from a test run.

use std::collections::VecDeque;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::Utc;
use triggeriq::webhook::ssrf::{AddressClass, CheckedHost, Lookup, check_url};
use triggeriq::webhook::{
    AddressPolicy, AttemptErrorKind, GuardedResolver, RetryPolicy, SigningSecret, SsrfError, Step,
    TargetPolicy, WebhookClient, WebhookClientConfig, WebhookRequest,
};

// ---------------------------------------------------------------- receiver

#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: HeaderMap,
    body: Bytes,
    /// For each secret the receiver knows: did the signature verify with it?
    verified: Vec<bool>,
}

#[derive(Clone)]
struct Receiver {
    address: SocketAddr,
    log: Arc<Mutex<Vec<Received>>>,
}

#[derive(Clone)]
struct ReceiverState {
    secrets: Vec<String>,
    log: Arc<Mutex<Vec<Received>>>,
    /// Statuses `/flaky` answers in turn (then 200).
    script: Arc<Mutex<VecDeque<u16>>>,
}

impl Receiver {
    /// A receiver that knows `secrets` (the tenant's configuration on its side).
    async fn start(secrets: &[&SigningSecret], script: &[u16]) -> Self {
        let log = Arc::new(Mutex::new(Vec::new()));
        let state = ReceiverState {
            secrets: secrets.iter().map(|s| s.expose().to_owned()).collect(),
            log: log.clone(),
            script: Arc::new(Mutex::new(script.iter().copied().collect())),
        };
        let app = Router::new().fallback(receive).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { address, log }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    fn received(&self) -> Vec<Received> {
        self.log.lock().unwrap().clone()
    }
}

async fn receive(
    State(state): State<ReceiverState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let verified: Vec<bool> = state
        .secrets
        .iter()
        .map(|secret| {
            standardwebhooks::Webhook::new(secret)
                .and_then(|hook| hook.verify(&body, &headers))
                .is_ok()
        })
        .collect();
    let path = uri.path().to_owned();
    state.log.lock().unwrap().push(Received {
        path: path.clone(),
        headers: headers.clone(),
        body: body.clone(),
        verified: verified.clone(),
    });
    if !verified.iter().any(|ok| *ok) {
        return (StatusCode::UNAUTHORIZED, "bad signature").into_response();
    }
    match path.as_str() {
        "/ok" => StatusCode::NO_CONTENT.into_response(),
        "/error" => (StatusCode::INTERNAL_SERVER_ERROR, "database is down").into_response(),
        "/busy" => (
            StatusCode::SERVICE_UNAVAILABLE,
            [("retry-after", "120")],
            "busy",
        )
            .into_response(),
        "/gone" => (StatusCode::GONE, "this endpoint was removed").into_response(),
        "/redirect" => (StatusCode::FOUND, [("location", "/ok")]).into_response(),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            StatusCode::OK.into_response()
        }
        "/big" => {
            // 1023 ASCII bytes, then a 3-byte character across the 1 KiB mark.
            let text = format!("{}€{}", "a".repeat(1023), "b".repeat(4000));
            (StatusCode::OK, text).into_response()
        }
        "/flaky" => {
            let next = state.script.lock().unwrap().pop_front().unwrap_or(200);
            (
                StatusCode::from_u16(next).unwrap(),
                format!("answer {next}"),
            )
                .into_response()
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

// ---------------------------------------------------------------- helpers

fn dev_client() -> WebhookClient {
    WebhookClient::new(WebhookClientConfig {
        targets: TargetPolicy::local_development(),
        ..WebhookClientConfig::default()
    })
    .unwrap()
}

fn strict_client() -> WebhookClient {
    WebhookClient::new(WebhookClientConfig::default()).unwrap()
}

fn request(url: String, secrets: &[&SigningSecret]) -> WebhookRequest {
    WebhookRequest {
        url,
        msg_id: "msg_2b7c1f0e".to_owned(),
        body: Bytes::from_static(
            br#"{"type":"trigger.fired","data":{"trigger_id":"trg_1","count":3}}"#,
        ),
        secrets: secrets.iter().map(|s| (*s).clone()).collect(),
    }
}

/// Answers chosen names with chosen addresses, and counts the lookups.
struct FakeDns {
    answers: Vec<(&'static str, Vec<IpAddr>)>,
    lookups: AtomicUsize,
}

impl FakeDns {
    fn new(answers: &[(&'static str, &[&str])]) -> Arc<Self> {
        Arc::new(Self {
            answers: answers
                .iter()
                .map(|(name, addrs)| (*name, addrs.iter().map(|a| a.parse().unwrap()).collect()))
                .collect(),
            lookups: AtomicUsize::new(0),
        })
    }
}

impl Lookup for FakeDns {
    fn lookup<'a>(
        &'a self,
        host: &'a str,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send + 'a>> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        let found = self
            .answers
            .iter()
            .find(|(name, _)| *name == host)
            .map(|(_, a)| a.clone());
        Box::pin(async move {
            found.ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "NXDOMAIN"))
        })
    }
}

// ---------------------------------------------------------------- delivery and signatures

#[tokio::test]
async fn a_delivered_webhook_verifies_with_the_standard_webhooks_library() {
    let secret = SigningSecret::generate();
    let receiver = Receiver::start(&[&secret], &[]).await;
    let req = request(receiver.url("/ok"), &[&secret]);

    let outcome = dev_client().deliver(&req).await;

    assert_eq!(outcome.status, Some(204), "{outcome:?}");
    assert!(outcome.is_success());
    assert_eq!(outcome.error, None);
    assert_eq!(outcome.remote_addr, Some(receiver.address));
    let got = receiver.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].verified, vec![true]);
    assert_eq!(got[0].body, req.body);
    assert_eq!(got[0].headers["webhook-id"], "msg_2b7c1f0e");
    assert_eq!(got[0].headers["content-type"], "application/json");
    let timestamp: i64 = got[0].headers["webhook-timestamp"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((timestamp - Utc::now().timestamp()).abs() < 60);
}

#[tokio::test]
async fn during_rotation_receivers_with_the_old_or_the_new_secret_both_verify() {
    let old = SigningSecret::generate();
    let new = SigningSecret::generate();
    // The receiver tries each secret on its own, as two differently configured receivers would.
    let receiver = Receiver::start(&[&old, &new], &[]).await;

    let outcome = dev_client()
        .deliver(&request(receiver.url("/ok"), &[&new, &old]))
        .await;

    assert_eq!(outcome.status, Some(204));
    let got = receiver.received();
    assert_eq!(got[0].verified, vec![true, true]);
    let header = got[0].headers["webhook-signature"].to_str().unwrap();
    assert_eq!(header.split(' ').count(), 2, "{header}");
    assert!(header.split(' ').all(|s| s.starts_with("v1,")));
}

#[tokio::test]
async fn a_receiver_with_another_secret_rejects_the_webhook() {
    let ours = SigningSecret::generate();
    let theirs = SigningSecret::generate();
    let receiver = Receiver::start(&[&theirs], &[]).await;

    let outcome = dev_client()
        .deliver(&request(receiver.url("/ok"), &[&ours]))
        .await;

    assert_eq!(outcome.status, Some(401));
    assert_eq!(receiver.received()[0].verified, vec![false]);
    assert!(matches!(
        RetryPolicy::default().next_step(1, &outcome, Utc::now()),
        Step::Retry { .. }
    ));
}

#[tokio::test]
async fn the_webhook_id_is_stable_across_attempts() {
    let secret = SigningSecret::generate();
    let receiver = Receiver::start(&[&secret], &[500]).await;
    let req = request(receiver.url("/flaky"), &[&secret]);
    let client = dev_client();

    assert_eq!(client.deliver(&req).await.status, Some(500));
    assert_eq!(client.deliver(&req).await.status, Some(200));

    let got = receiver.received();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].headers["webhook-id"], got[1].headers["webhook-id"]);
    assert!(got.iter().all(|r| r.verified == vec![true]));
}

#[tokio::test]
async fn no_secret_means_nothing_is_sent() {
    let receiver = Receiver::start(&[], &[]).await;
    let outcome = dev_client()
        .deliver(&request(receiver.url("/ok"), &[]))
        .await;
    assert_eq!(
        outcome.error.map(|e| e.kind),
        Some(AttemptErrorKind::Unsigned)
    );
    assert!(receiver.received().is_empty());
}

// ---------------------------------------------------------------- outcomes

#[tokio::test]
async fn failures_are_recorded_with_status_and_body_snippet() {
    let secret = SigningSecret::generate();
    let receiver = Receiver::start(&[&secret], &[]).await;

    let outcome = dev_client()
        .deliver(&request(receiver.url("/error"), &[&secret]))
        .await;

    assert_eq!(outcome.status, Some(500));
    assert_eq!(
        outcome.response_snippet.as_deref(),
        Some("database is down")
    );
    assert_eq!(outcome.error, None);
    assert!(outcome.latency > Duration::ZERO);
    // The record serializes for the delivery log.
    let json = serde_json::to_value(&outcome).unwrap();
    assert_eq!(json["status"], 500);
}

#[tokio::test]
async fn retry_after_is_read_and_honoured() {
    let secret = SigningSecret::generate();
    let receiver = Receiver::start(&[&secret], &[]).await;

    let outcome = dev_client()
        .deliver(&request(receiver.url("/busy"), &[&secret]))
        .await;

    assert_eq!(outcome.status, Some(503));
    assert_eq!(outcome.retry_after, Some(Duration::from_secs(120)));
    let now = Utc::now();
    match RetryPolicy::default().next_step(1, &outcome, now) {
        // The schedule says ~5 s; the receiver asked for 120 s.
        Step::Retry { attempt: 2, at } => assert!(at - now >= chrono::Duration::seconds(120)),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn gone_disables_the_action() {
    let secret = SigningSecret::generate();
    let receiver = Receiver::start(&[&secret], &[]).await;
    let outcome = dev_client()
        .deliver(&request(receiver.url("/gone"), &[&secret]))
        .await;
    assert_eq!(outcome.status, Some(410));
    assert_eq!(
        outcome.response_snippet.as_deref(),
        Some("this endpoint was removed")
    );
    assert!(matches!(
        RetryPolicy::default().next_step(4, &outcome, Utc::now()),
        Step::Disable { .. }
    ));
}

#[tokio::test]
async fn the_body_snippet_is_the_first_kilobyte_as_valid_utf8() {
    let secret = SigningSecret::generate();
    let receiver = Receiver::start(&[&secret], &[]).await;
    let outcome = dev_client()
        .deliver(&request(receiver.url("/big"), &[&secret]))
        .await;
    assert_eq!(outcome.status, Some(200));
    // The euro sign straddles byte 1024, so it is dropped rather than mangled.
    assert_eq!(outcome.response_snippet, Some("a".repeat(1023)));
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let secret = SigningSecret::generate();
    let receiver = Receiver::start(&[&secret], &[]).await;
    let outcome = dev_client()
        .deliver(&request(receiver.url("/redirect"), &[&secret]))
        .await;
    assert_eq!(outcome.status, Some(302));
    assert!(!outcome.is_success());
    let paths: Vec<String> = receiver.received().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, vec!["/redirect"]);
}

#[tokio::test]
async fn a_slow_receiver_times_out() {
    let secret = SigningSecret::generate();
    let receiver = Receiver::start(&[&secret], &[]).await;
    let client = WebhookClient::new(WebhookClientConfig {
        targets: TargetPolicy::local_development(),
        timeout: Duration::from_millis(300),
        ..WebhookClientConfig::default()
    })
    .unwrap();

    let outcome = client
        .deliver(&request(receiver.url("/slow"), &[&secret]))
        .await;

    assert_eq!(outcome.status, None);
    assert_eq!(
        outcome.error.as_ref().map(|e| e.kind),
        Some(AttemptErrorKind::Timeout),
        "{outcome:?}"
    );
    assert!(matches!(
        RetryPolicy::default().next_step(1, &outcome, Utc::now()),
        Step::Retry { .. }
    ));
}

#[tokio::test]
async fn a_closed_port_is_a_connect_error() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let secret = SigningSecret::generate();
    let outcome = dev_client()
        .deliver(&request(format!("http://127.0.0.1:{port}/ok"), &[&secret]))
        .await;
    assert_eq!(
        outcome.error.as_ref().map(|e| e.kind),
        Some(AttemptErrorKind::Connect),
        "{outcome:?}"
    );
    // What the OS said stays in the log: tenants learn the kind, in fixed words.
    assert_eq!(
        outcome.error.map(|e| e.message).as_deref(),
        Some("could not connect")
    );
}

/// A service that is not HTTP answers with its banner: the stored error says only that the
/// answer was not HTTP, so webhooks cannot be used to read banners.
#[tokio::test]
async fn a_service_that_is_not_http_is_reported_without_its_banner() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = [0u8; 1024];
                let _ = socket.read(&mut buffer).await;
                let _ = socket
                    .write_all(b"SSH-2.0-OpenSSH_9.6 internal-build-host-7\r\n+OK redis ready\r\n")
                    .await;
                let _ = socket.shutdown().await;
            });
        }
    });
    let secret = SigningSecret::generate();
    let outcome = dev_client()
        .deliver(&request(format!("http://{address}/ok"), &[&secret]))
        .await;
    assert_eq!(outcome.status, None, "{outcome:?}");
    assert_eq!(outcome.response_snippet, None);
    let error = outcome.error.expect("an error");
    assert_eq!(error.kind, AttemptErrorKind::Request, "{error}");
    assert_eq!(error.message, "the answer was not HTTP");
    let stored = serde_json::to_string(&error).unwrap();
    for leak in ["SSH", "OpenSSH", "internal-build-host", "redis", "os error"] {
        assert!(!stored.contains(leak), "{stored}");
    }
}

#[tokio::test]
async fn https_to_a_certificate_from_an_unknown_root_is_a_connect_error() {
    // It would answer 204 to anyone who accepted its self-signed certificate.
    let (address, mut handshakes) =
        triggeriq::testing::tls_server::untrusted_tls_server(b"HTTP/1.1 204 No Content\r\n\r\n")
            .await;
    let secret = SigningSecret::generate();
    let outcome = dev_client()
        .deliver(&request(format!("https://{address}/ok"), &[&secret]))
        .await;
    assert_eq!(
        outcome.error.as_ref().map(|e| e.kind),
        Some(AttemptErrorKind::Connect),
        "{outcome:?}"
    );
    assert_eq!(outcome.status, None, "{outcome:?}");
    assert_eq!(
        outcome.error.as_ref().map(|e| e.message.as_str()),
        Some("the receiver's TLS certificate was not accepted")
    );
    let handshake = handshakes.recv().await.expect("the client connected");
    assert!(handshake.is_err(), "the handshake succeeded");
}

#[tokio::test]
async fn a_delivery_loop_retries_until_the_receiver_accepts() {
    let secret = SigningSecret::generate();
    let receiver = Receiver::start(&[&secret], &[500, 429]).await;
    let req = request(receiver.url("/flaky"), &[&secret]);
    let client = dev_client();
    let policy = RetryPolicy::default();

    let mut attempt = 1;
    let mut steps = Vec::new();
    loop {
        let outcome = client.deliver(&req).await;
        let step = policy.next_step(attempt, &outcome, Utc::now());
        steps.push(step.clone());
        match step {
            // A consumer would re-queue with `not_before = at`; here we go at once.
            Step::Retry { attempt: next, .. } => attempt = next,
            _ => break,
        }
    }
    assert_eq!(steps.len(), 3);
    assert!(matches!(steps[0], Step::Retry { attempt: 2, .. }));
    assert!(matches!(steps[1], Step::Retry { attempt: 3, .. }));
    assert_eq!(steps[2], Step::Delivered);
}

// ---------------------------------------------------------------- SSRF guard

#[tokio::test]
async fn the_default_policy_refuses_local_receivers_without_connecting() {
    let secret = SigningSecret::generate();
    let receiver = Receiver::start(&[&secret], &[]).await;
    let port = receiver.address.port();
    let client = strict_client();
    for url in [
        format!("http://127.0.0.1:{port}/ok"),
        format!("http://localhost:{port}/ok"),
        format!("http://[::1]:{port}/ok"),
        format!("http://[::ffff:127.0.0.1]:{port}/ok"),
        format!("http://[::ffff:7f00:1]:{port}/ok"),
        format!("http://2130706433:{port}/ok"),
        format!("http://0x7f.0.0.1:{port}/ok"),
        format!("http://127.1:{port}/ok"),
        format!("http://0.0.0.0:{port}/ok"),
        format!("http://[::]:{port}/ok"),
    ] {
        let outcome = client.deliver(&request(url.clone(), &[&secret])).await;
        assert_eq!(outcome.status, None, "{url}");
        assert_eq!(
            outcome.error.as_ref().map(|e| e.kind),
            Some(AttemptErrorKind::Refused),
            "{url}: {outcome:?}"
        );
        assert!(
            matches!(
                RetryPolicy::default().next_step(1, &outcome, Utc::now()),
                Step::Disable { .. }
            ),
            "{url}"
        );
    }
    assert!(
        receiver.received().is_empty(),
        "nothing may reach a refused target"
    );
}

#[tokio::test]
async fn a_name_resolving_to_a_refused_address_is_refused_at_connect_time() {
    let secret = SigningSecret::generate();
    let receiver = Receiver::start(&[&secret], &[]).await;
    let port = receiver.address.port();
    let dns = FakeDns::new(&[
        ("loopback.test", &["127.0.0.1"]),
        ("mapped.test", &["::ffff:127.0.0.1"]),
        ("unspecified.test", &["0.0.0.0"]),
        ("six.test", &["::1"]),
    ]);
    // Plain http on the receiver's port is allowed here, so that only the addresses can refuse.
    let config = WebhookClientConfig {
        targets: TargetPolicy::new(AddressPolicy::strict(), true, Some(vec![port])),
        ..WebhookClientConfig::default()
    };
    let client = WebhookClient::with_lookup(config, dns.clone()).unwrap();
    for host in [
        "loopback.test",
        "mapped.test",
        "unspecified.test",
        "six.test",
    ] {
        let outcome = client
            .deliver(&request(format!("http://{host}:{port}/ok"), &[&secret]))
            .await;
        let error = outcome
            .error
            .unwrap_or_else(|| panic!("{host} was not refused"));
        assert_eq!(error.kind, AttemptErrorKind::Refused, "{host}: {error}");
        assert!(error.message.contains(host), "{error}");
    }
    assert!(receiver.received().is_empty());
    assert!(dns.lookups.load(Ordering::SeqCst) >= 4);
}

#[tokio::test]
async fn the_connection_goes_to_the_address_the_guard_checked() {
    // `receiver.test` exists only in our resolver; reaching the receiver
    // proves the client connected to the address the guard handed it.
    let secret = SigningSecret::generate();
    let receiver = Receiver::start(&[&secret], &[]).await;
    let dns = FakeDns::new(&[("receiver.test", &["127.0.0.1"])]);
    // A name other than `localhost` keeps the port rule, even in local development.
    let config = WebhookClientConfig {
        targets: TargetPolicy::new(
            AddressPolicy::local_development(),
            true,
            Some(vec![receiver.address.port()]),
        ),
        ..WebhookClientConfig::default()
    };
    let client = WebhookClient::with_lookup(config, dns.clone()).unwrap();
    let url = format!("http://receiver.test:{}/ok", receiver.address.port());

    let outcome = client.deliver(&request(url, &[&secret])).await;

    assert_eq!(outcome.status, Some(204), "{outcome:?}");
    assert_eq!(outcome.remote_addr, Some(receiver.address));
    assert_eq!(
        dns.lookups.load(Ordering::SeqCst),
        1,
        "one lookup, no second resolution"
    );
}

#[tokio::test]
async fn a_failed_lookup_is_retried_not_disabled() {
    let secret = SigningSecret::generate();
    let client =
        WebhookClient::with_lookup(WebhookClientConfig::default(), FakeDns::new(&[])).unwrap();
    let outcome = client
        .deliver(&request("https://nowhere.test/hook".to_owned(), &[&secret]))
        .await;
    assert_eq!(
        outcome.error.as_ref().map(|e| e.kind),
        Some(AttemptErrorKind::Dns),
        "{outcome:?}"
    );
    assert!(matches!(
        RetryPolicy::default().next_step(1, &outcome, Utc::now()),
        Step::Retry { .. }
    ));
}

#[tokio::test]
async fn ports_outside_the_allowed_ones_are_refused_before_any_connection() {
    let secret = SigningSecret::generate();
    // Refused before a request is built: no packet leaves for these addresses.
    for url in [
        "https://1.1.1.1:22/hook",
        "https://hooks.example.com:6379/hook",
        "https://hooks.example.com:80/hook",
    ] {
        let outcome = strict_client()
            .deliver(&request(url.to_owned(), &[&secret]))
            .await;
        let error = outcome.error.unwrap_or_else(|| panic!("{url} was allowed"));
        assert_eq!(error.kind, AttemptErrorKind::Refused, "{url}: {error}");
        assert!(error.message.contains("443, 8443"), "{error}");
        assert!(matches!(
            RetryPolicy::default().next_step(1, &request_outcome(&error), Utc::now()),
            Step::Disable { .. }
        ));
    }
}

/// The local stack's policy reaches receivers on this machine only: a private address, or a
/// name that resolves to one, is refused before any connection.
#[tokio::test]
async fn local_development_reaches_loopback_only() {
    let secret = SigningSecret::generate();
    let dns = FakeDns::new(&[("lan.test", &["192.168.1.20"]), ("vpc.test", &["10.0.0.8"])]);
    let config = WebhookClientConfig {
        targets: TargetPolicy::new(AddressPolicy::local_development(), true, Some(vec![8080])),
        ..WebhookClientConfig::default()
    };
    let client = WebhookClient::with_lookup(config, dns).unwrap();
    for url in [
        "http://10.0.0.1:8080/hook",
        "http://192.168.1.20:8080/hook",
        "http://172.16.0.1:8080/hook",
        "http://169.254.169.254:8080/latest",
        "http://lan.test:8080/hook",
        "http://vpc.test:8080/hook",
    ] {
        let outcome = client.deliver(&request(url.to_owned(), &[&secret])).await;
        assert_eq!(
            outcome.error.as_ref().map(|e| e.kind),
            Some(AttemptErrorKind::Refused),
            "{url}: {outcome:?}"
        );
    }
}

fn request_outcome(error: &triggeriq::webhook::AttemptError) -> triggeriq::webhook::AttemptOutcome {
    triggeriq::webhook::AttemptOutcome {
        started_at: Utc::now(),
        latency: Duration::ZERO,
        status: None,
        error: Some(error.clone()),
        response_snippet: None,
        retry_after: None,
        remote_addr: None,
    }
}

#[tokio::test]
async fn invalid_targets_disable_the_action() {
    let secret = SigningSecret::generate();
    for url in ["ftp://example.com/x", "not a url", "file:///etc/passwd"] {
        let outcome = strict_client()
            .deliver(&request(url.to_owned(), &[&secret]))
            .await;
        assert_eq!(
            outcome.error.as_ref().map(|e| e.kind),
            Some(AttemptErrorKind::InvalidTarget),
            "{url}"
        );
        assert!(matches!(
            RetryPolicy::default().next_step(1, &outcome, Utc::now()),
            Step::Disable { .. }
        ));
    }
}

/// Every target class named by the issue, as a literal and behind a name:
/// refused before any connection could be attempted.
#[tokio::test]
async fn every_ssrf_target_class_is_refused_as_literal_and_by_name() {
    let targets: &[(&str, &str, AddressClass)] = &[
        ("loopback", "127.0.0.1", AddressClass::Loopback),
        ("loopback6", "::1", AddressClass::Loopback),
        ("private10", "10.1.2.3", AddressClass::Private),
        ("private172", "172.16.5.4", AddressClass::Private),
        ("private192", "192.168.0.10", AddressClass::Private),
        ("ula", "fd12:3456::1", AddressClass::UniqueLocal),
        ("linklocal", "169.254.1.1", AddressClass::LinkLocal),
        ("linklocal6", "fe80::1", AddressClass::LinkLocal),
        ("cgnat", "100.64.0.1", AddressClass::SharedAddressSpace),
        ("multicast", "224.0.0.1", AddressClass::Multicast),
        ("multicast6", "ff02::1", AddressClass::Multicast),
        ("unspecified", "0.0.0.0", AddressClass::Unspecified),
        ("unspecified6", "::", AddressClass::Unspecified),
        ("imds", "169.254.169.254", AddressClass::CloudMetadata),
        ("imds6", "fd00:ec2::254", AddressClass::CloudMetadata),
        (
            "mapped-imds",
            "::ffff:169.254.169.254",
            AddressClass::CloudMetadata,
        ),
        ("mapped-private", "::ffff:10.0.0.1", AddressClass::Private),
        (
            "mapped-loopback",
            "::ffff:127.0.0.1",
            AddressClass::Loopback,
        ),
        (
            "mapped-cgnat",
            "::ffff:100.64.0.1",
            AddressClass::SharedAddressSpace,
        ),
        (
            "mapped-linklocal",
            "::ffff:169.254.9.9",
            AddressClass::LinkLocal,
        ),
        (
            "mapped-multicast",
            "::ffff:239.1.1.1",
            AddressClass::Multicast,
        ),
        (
            "mapped-unspecified",
            "::ffff:0.0.0.0",
            AddressClass::Unspecified,
        ),
        (
            "nat64-imds",
            "64:ff9b::a9fe:a9fe",
            AddressClass::CloudMetadata,
        ),
        (
            "sixtofour-imds",
            "2002:a9fe:a9fe::1",
            AddressClass::CloudMetadata,
        ),
    ];
    let strict = AddressPolicy::strict();
    for (name, address, class) in targets {
        let ip: IpAddr = address.parse().unwrap();
        let literal = match ip {
            IpAddr::V4(v4) => format!("https://{v4}/hook"),
            IpAddr::V6(v6) => format!("https://[{v6}]/hook"),
        };
        match check_url(&strict, &literal) {
            Err(SsrfError::Refused(refusal)) => assert_eq!(refusal.class, *class, "{literal}"),
            other => panic!("{literal}: {other:?}"),
        }

        let host: &'static str = Box::leak(format!("{name}.evil.test").into_boxed_str());
        let resolver = GuardedResolver::with_lookup(strict, FakeDns::new(&[(host, &[address])]));
        let (_, checked) = check_url(&strict, &format!("https://{host}/hook")).unwrap();
        assert_eq!(checked, CheckedHost::Name(host.to_owned()));
        match resolver.resolve(host).await {
            Err(SsrfError::AllAddressesRefused { refusals, .. }) => {
                assert_eq!(refusals[0].class, *class, "{host} → {address}");
            }
            other => panic!("{host} → {address}: {other:?}"),
        }
    }
}
