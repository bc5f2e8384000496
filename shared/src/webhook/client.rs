//! The HTTP client that makes one signed webhook attempt.
//!
//! One [`WebhookClient`] is built per Lambda container and reused: it holds a
//! connection pool. Every attempt is a single `POST` with the Standard
//! Webhooks headers, a total time limit (15 s by default, from the first DNS
//! query to the last byte read), rustls for TLS with the compiled-in roots of
//! [`crate::tls`] (no trust store is read at init), and behind the SSRF guard:
//!
//! - the client's DNS resolver is [`GuardedResolver`], so connections go only
//!   to addresses the guard checked (no second lookup can rebind the name);
//! - the target's scheme, port and host are judged by the [`TargetPolicy`] before a request
//!   is built (IP-literal hosts skip DNS, so their address is judged there);
//! - redirects are not followed (a 3xx is a failed attempt, recorded as such)
//!   and no proxy is used, even if `HTTP_PROXY` is set: both would connect
//!   somewhere the guard never saw;
//! - the address actually connected to is recorded in the outcome;
//! - what goes wrong is told in a few fixed words per kind of failure (see [`classify`]):
//!   the stored text never repeats what a TLS stack, a parser or the far end said, so a
//!   webhook cannot be used to read the banner of a service that does not speak HTTP. The
//!   whole chain is logged for operators.
//!
//! The client never retries by itself: the retry schedule belongs to
//! [`super::retry`], which spaces attempts over hours.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;

use super::attempt::{AttemptError, AttemptErrorKind, AttemptOutcome, SNIPPET_BYTES};
use super::signing::{HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, SigningSecret, sign};
use super::ssrf::{GuardedResolver, Lookup, SsrfError, TargetPolicy};

/// Settings of a [`WebhookClient`].
#[derive(Debug, Clone)]
pub struct WebhookClientConfig {
    /// Which targets are allowed: scheme, address, port.
    pub targets: TargetPolicy,
    /// Limit for a whole attempt; a 2xx must arrive within it to count.
    pub timeout: Duration,
    /// Limit for the TCP and TLS connection alone.
    pub connect_timeout: Duration,
    /// The `User-Agent` header.
    pub user_agent: String,
}

impl Default for WebhookClientConfig {
    fn default() -> Self {
        Self {
            targets: TargetPolicy::strict(),
            timeout: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(5),
            user_agent: concat!("TriggerIQ-Webhooks/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

/// The client could not be built (TLS initialisation failed).
#[derive(Debug, thiserror::Error)]
#[error("could not build the webhook HTTP client: {0}")]
pub struct ClientBuildError(#[source] reqwest::Error);

/// One attempt to send: what, where and signed with which secrets.
#[derive(Debug, Clone)]
pub struct WebhookRequest {
    /// The target URL (checked again on every attempt).
    pub url: String,
    /// `webhook-id`: the same on every attempt of one delivery.
    pub msg_id: String,
    /// The exact JSON bytes that are signed and sent.
    pub body: Bytes,
    /// Active signing secrets, current first; one signature each.
    pub secrets: Vec<SigningSecret>,
}

/// Sends signed webhooks behind the SSRF guard.
#[derive(Debug, Clone)]
pub struct WebhookClient {
    http: reqwest::Client,
    targets: TargetPolicy,
}

impl WebhookClient {
    /// A client over the system resolver.
    pub fn new(config: WebhookClientConfig) -> Result<Self, ClientBuildError> {
        let resolver = GuardedResolver::new(config.targets.addresses());
        Self::with_resolver(config, resolver)
    }

    /// A client whose DNS answers come from `lookup` (tests; a caching resolver).
    pub fn with_lookup(
        config: WebhookClientConfig,
        lookup: Arc<dyn Lookup>,
    ) -> Result<Self, ClientBuildError> {
        let resolver = GuardedResolver::with_lookup(config.targets.addresses(), lookup);
        Self::with_resolver(config, resolver)
    }

    fn with_resolver(
        config: WebhookClientConfig,
        resolver: GuardedResolver,
    ) -> Result<Self, ClientBuildError> {
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(crate::tls::client_config())
            .dns_resolver(resolver)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .retry(reqwest::retry::never())
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .user_agent(config.user_agent)
            .build()
            .map_err(ClientBuildError)?;
        Ok(Self {
            http,
            targets: config.targets,
        })
    }

    /// Makes one attempt and reports what happened; never fails otherwise.
    #[tracing::instrument(skip_all, fields(msg_id = %request.msg_id))]
    pub async fn deliver(&self, request: &WebhookRequest) -> AttemptOutcome {
        let started_at = Utc::now();
        let start = Instant::now();
        let mut outcome = AttemptOutcome {
            started_at,
            latency: Duration::ZERO,
            status: None,
            error: None,
            response_snippet: None,
            retry_after: None,
            remote_addr: None,
        };

        let url = match self.targets.check_str(&request.url) {
            Ok((url, _)) => url,
            Err(e) => {
                outcome.error = Some(ssrf_error(&e));
                return outcome;
            }
        };
        let timestamp = started_at.timestamp();
        let Some(signature) = sign(&request.msg_id, timestamp, &request.body, &request.secrets)
        else {
            outcome.error = Some(AttemptError::new(
                AttemptErrorKind::Unsigned,
                "no signing secret: the webhook was not sent",
            ));
            return outcome;
        };

        let sent = self
            .http
            .post(url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(HEADER_ID, &request.msg_id)
            .header(HEADER_TIMESTAMP, timestamp.to_string())
            .header(HEADER_SIGNATURE, signature)
            .body(request.body.clone())
            .send()
            .await;
        outcome.latency = start.elapsed();

        let mut response = match sent {
            Ok(response) => response,
            Err(e) => {
                outcome.error = Some(classify(&e));
                return outcome;
            }
        };
        outcome.status = Some(response.status().as_u16());
        outcome.remote_addr = response.remote_addr();
        if let Some(remote) = outcome.remote_addr {
            // Cannot happen while the resolver and `check_url` guard every
            // connection; if it ever does, make it loud.
            if let Err(refusal) = self.targets.addresses().check(remote.ip()) {
                tracing::error!(%refusal, "webhook connected to a refused address");
            }
        }
        outcome.retry_after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| super::attempt::parse_retry_after(v, Utc::now()));

        let mut snippet = Vec::new();
        while snippet.len() < SNIPPET_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => snippet.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(e) => {
                    tracing::info!(error = %chain(&e), "reading the webhook response failed");
                    outcome.error = Some(AttemptError::new(
                        AttemptErrorKind::Body,
                        "reading the response body failed",
                    ));
                    break;
                }
            }
        }
        snippet.truncate(SNIPPET_BYTES);
        outcome.response_snippet = Some(super::attempt::snippet_from_bytes(&snippet));
        outcome
    }
}

fn ssrf_error(e: &SsrfError) -> AttemptError {
    let kind = match e {
        SsrfError::InvalidUrl(_)
        | SsrfError::UnsupportedScheme(_)
        | SsrfError::MissingHost
        | SsrfError::PlainHttp => AttemptErrorKind::InvalidTarget,
        e if e.is_policy_refusal() => AttemptErrorKind::Refused,
        _ => AttemptErrorKind::Dns,
    };
    // The guard's own texts name the rule, not what a lookup returned (see `ssrf`).
    AttemptError::new(kind, e.to_string())
}

/// A failed request as the tenant sees it: its kind and a fixed text. What the far end sent
/// (a banner, a TLS alert, bytes that are not HTTP) and the OS's error text stay in the log.
fn classify(e: &reqwest::Error) -> AttemptError {
    // The guard's verdict travels inside reqwest's connect error; find it.
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut tls = None;
    let mut not_http = false;
    while let Some(err) = source {
        if let Some(ssrf) = err.downcast_ref::<SsrfError>() {
            return ssrf_error(ssrf);
        }
        if let Some(rustls) = tls_error(err) {
            tls = Some(rustls);
        }
        if err
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_parse)
        {
            not_http = true;
        }
        source = err.source();
    }
    tracing::info!(error = %chain(e), "webhook request failed");
    let (kind, message) = if e.is_timeout() {
        (
            AttemptErrorKind::Timeout,
            "no response within the time limit",
        )
    } else if let Some(tls) = tls {
        let message = match tls {
            rustls::Error::InvalidCertificate(_) => {
                "the receiver's TLS certificate was not accepted"
            }
            _ => "the TLS handshake failed",
        };
        (AttemptErrorKind::Connect, message)
    } else if e.is_connect() {
        (AttemptErrorKind::Connect, "could not connect")
    } else if not_http {
        (AttemptErrorKind::Request, "the answer was not HTTP")
    } else if e.is_body() || e.is_decode() {
        (AttemptErrorKind::Body, "reading the response failed")
    } else {
        (AttemptErrorKind::Request, "the request failed")
    };
    AttemptError::new(kind, message)
}

/// The rustls error inside `err`: rustls reports through `io::Error`s (nested ones, too), whose
/// `source` skips the error they wrap, so each is opened with `get_ref`.
fn tls_error<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut current = err;
    loop {
        if let Some(rustls) = current.downcast_ref::<rustls::Error>() {
            return Some(rustls);
        }
        current = current.downcast_ref::<std::io::Error>()?.get_ref()?;
    }
}

/// The error and its causes, without the URL (which may carry a token): for the log only.
fn chain(e: &reqwest::Error) -> String {
    let mut parts = Vec::new();
    let mut source = std::error::Error::source(e);
    while let Some(err) = source {
        let text = err.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        source = err.source();
    }
    if parts.is_empty() {
        "no cause given".to_owned()
    } else {
        parts.join(": ")
    }
}
