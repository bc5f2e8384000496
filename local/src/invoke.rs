//! Invoking functions: through cargo lambda watch's local Invoke API
//! (`POST /2015-03-31/functions/<binary>/invocations`), the way API Gateway, the SQS poller
//! and EventBridge invoke them in AWS.
//!
//! The gateway, the pollers and the scheduler take any [`Invoke`], so their tests run against
//! fakes without cargo lambda.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;

/// Why an invocation produced no result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvokeError {
    /// The function ran and returned an error (Lambda's `X-Amz-Function-Error`).
    #[error("{error_type}: {message}")]
    Function { error_type: String, message: String },
    /// No answer within the function's timeout.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The function could not be run at all (watch not answering, binary missing).
    #[error("{0}")]
    Unavailable(String),
}

/// Something that runs a function on an event and returns its result.
pub trait Invoke: Send + Sync + 'static {
    /// Runs `binary` on `payload` (JSON), waiting at most `timeout`.
    fn invoke(
        &self,
        binary: &str,
        payload: Bytes,
        timeout: Duration,
    ) -> impl Future<Output = Result<Bytes, InvokeError>> + Send;
}

/// cargo lambda watch's Invoke API.
pub struct WatchInvoker {
    client: reqwest::Client,
    base: String,
    /// Functions that have answered at least once; before that cargo lambda may still be
    /// compiling them, so the first call gets [`Self::cold_start`] instead of its timeout.
    warm: Mutex<HashSet<String>>,
    cold_start: Duration,
    /// Told when a function did not answer within its timeout: its instance is stuck or was
    /// killed, and cargo lambda watch never replaces a dead instance by itself.
    timed_out: tokio::sync::Notify,
}

impl WatchInvoker {
    /// Invokes through the watch server at `base` (`http://127.0.0.1:9000`).
    pub fn new(base: impl Into<String>, cold_start: Duration) -> anyhow::Result<Self> {
        Ok(Self {
            client: reqwest::Client::builder()
                .no_proxy()
                .pool_idle_timeout(Duration::from_secs(30))
                .build()?,
            base: base.into().trim_end_matches('/').to_owned(),
            warm: Mutex::new(HashSet::new()),
            cold_start,
            timed_out: tokio::sync::Notify::new(),
        })
    }

    /// Waits until an invocation times out.
    pub async fn timed_out(&self) {
        self.timed_out.notified().await;
    }

    /// Forgets which functions answered: after a restart each gets its cold-start allowance
    /// again.
    pub fn forget_warm(&self) {
        if let Ok(mut w) = self.warm.lock() {
            w.clear();
        }
    }

    fn timeout(&self, limit: Duration) -> InvokeError {
        self.timed_out.notify_one();
        InvokeError::Timeout(limit)
    }

    fn is_warm(&self, binary: &str) -> bool {
        self.warm.lock().is_ok_and(|w| w.contains(binary))
    }

    fn mark_warm(&self, binary: &str) {
        if let Ok(mut w) = self.warm.lock() {
            w.insert(binary.to_owned());
        }
    }
}

impl Invoke for WatchInvoker {
    async fn invoke(
        &self,
        binary: &str,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, InvokeError> {
        let limit = if self.is_warm(binary) {
            timeout
        } else {
            timeout.max(self.cold_start)
        };
        let url = format!("{}/2015-03-31/functions/{binary}/invocations", self.base);
        let request = self
            .client
            .post(&url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(payload)
            .send();
        let response = match tokio::time::timeout(limit, request).await {
            Err(_) => return Err(self.timeout(limit)),
            Ok(Err(e)) => {
                return Err(InvokeError::Unavailable(format!(
                    "cargo lambda watch at {} did not answer ({e})",
                    self.base
                )));
            }
            Ok(Ok(r)) => r,
        };
        let status = response.status();
        let function_error = response.headers().contains_key("x-amz-function-error");
        let body = match tokio::time::timeout(limit, response.bytes()).await {
            Err(_) => return Err(self.timeout(limit)),
            Ok(Err(e)) => return Err(InvokeError::Unavailable(format!("reading the result: {e}"))),
            Ok(Ok(b)) => b,
        };
        if status == http::StatusCode::NOT_FOUND {
            return Err(InvokeError::Unavailable(format!(
                "cargo lambda watch has no binary {binary} ({})",
                String::from_utf8_lossy(&body)
            )));
        }
        self.mark_warm(binary);
        if status.is_success() && !function_error {
            return Ok(body);
        }
        Err(function_error_of(&body, status))
    }
}

/// The error a function reported (`{"errorType": ..., "errorMessage": ...}`).
fn function_error_of(body: &[u8], status: http::StatusCode) -> InvokeError {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let field = |name: &str| {
        parsed
            .as_ref()
            .and_then(|v| v.get(name))
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
    };
    InvokeError::Function {
        error_type: field("errorType").unwrap_or_else(|| format!("HTTP {status}")),
        message: field("errorMessage")
            .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(300).collect()),
    }
}

#[cfg(test)]
pub mod fake {
    //! A scripted [`Invoke`] for tests.

    use std::sync::Arc;

    use super::*;

    type Handler =
        dyn Fn(&str, &serde_json::Value) -> Result<serde_json::Value, InvokeError> + Send + Sync;

    /// Answers with a closure and records every call.
    #[derive(Clone)]
    pub struct FakeInvoker {
        handler: Arc<Handler>,
        pub calls: Arc<Mutex<Vec<(String, serde_json::Value)>>>,
    }

    impl FakeInvoker {
        pub fn new(
            handler: impl Fn(&str, &serde_json::Value) -> Result<serde_json::Value, InvokeError>
            + Send
            + Sync
            + 'static,
        ) -> Self {
            Self {
                handler: Arc::new(handler),
                calls: Arc::default(),
            }
        }

        /// Calls made so far to `binary`.
        pub fn calls_to(&self, binary: &str) -> Vec<serde_json::Value> {
            self.calls
                .lock()
                .expect("calls")
                .iter()
                .filter(|(b, _)| b == binary)
                .map(|(_, p)| p.clone())
                .collect()
        }
    }

    impl Invoke for FakeInvoker {
        async fn invoke(
            &self,
            binary: &str,
            payload: Bytes,
            _timeout: Duration,
        ) -> Result<Bytes, InvokeError> {
            let event: serde_json::Value =
                serde_json::from_slice(&payload).expect("events are JSON");
            self.calls
                .lock()
                .expect("calls")
                .push((binary.to_owned(), event.clone()));
            (self.handler)(binary, &event)
                .map(|v| Bytes::from(serde_json::to_vec(&v).expect("JSON")))
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::routing::post;

    use super::*;

    async fn serve(router: Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, router).await });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn results_errors_missing_binaries_and_timeouts_are_told_apart() {
        let router = Router::new().route(
            "/2015-03-31/functions/{name}/invocations",
            post(
                |axum::extract::Path(name): axum::extract::Path<String>, body: Bytes| async move {
                    match name.as_str() {
                        "echo" => (http::StatusCode::OK, body.to_vec()),
                        "fails" => (
                            http::StatusCode::INTERNAL_SERVER_ERROR,
                            br#"{"errorType":"Boom","errorMessage":"it broke"}"#.to_vec(),
                        ),
                        "slow" => {
                            tokio::time::sleep(Duration::from_secs(5)).await;
                            (http::StatusCode::OK, Vec::new())
                        }
                        _ => (
                            http::StatusCode::NOT_FOUND,
                            b"{\"title\":\"Missing function\"}".to_vec(),
                        ),
                    }
                },
            ),
        );
        let base = serve(router).await;
        let invoker = WatchInvoker::new(&base, Duration::from_millis(300)).expect("client");
        let ok = invoker
            .invoke(
                "echo",
                Bytes::from_static(b"{\"a\":1}"),
                Duration::from_secs(5),
            )
            .await;
        assert_eq!(ok, Ok(Bytes::from_static(b"{\"a\":1}")));
        let err = invoker
            .invoke("fails", Bytes::new(), Duration::from_secs(5))
            .await;
        assert_eq!(
            err,
            Err(InvokeError::Function {
                error_type: "Boom".into(),
                message: "it broke".into()
            })
        );
        let err = invoker
            .invoke("nothing", Bytes::new(), Duration::from_secs(5))
            .await;
        assert!(matches!(err, Err(InvokeError::Unavailable(m)) if m.contains("no binary nothing")));
        // Cold: the cold-start allowance (300 ms) is longer than the 100 ms timeout asked for.
        let started = std::time::Instant::now();
        let err = invoker
            .invoke("slow", Bytes::new(), Duration::from_millis(100))
            .await;
        assert_eq!(err, Err(InvokeError::Timeout(Duration::from_millis(300))));
        assert!(started.elapsed() >= Duration::from_millis(300));
    }
}
