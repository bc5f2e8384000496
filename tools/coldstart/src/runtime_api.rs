//! A minimal stand-in for the Lambda Runtime API on 127.0.0.1, and the trap listener that catches
//! network calls a function makes while it initialises.
//!
//! One cold start is one "run": the harness opens it with the event to hand out, spawns the
//! bootstrap, and the stand-in records when the first `next` arrives and when the invocation is
//! answered (`response`, `error`) or init fails (`init/error`). Every later `next` of the run is
//! held until the run ends, the way Lambda freezes an idle sandbox. Timestamps are taken inside the
//! handlers, so how quickly the harness notices a change does not affect the figures.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::sockets;

/// How the first invocation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `POST /runtime/invocation/{id}/response`, with the response body.
    Response { body: String },
    /// `POST /runtime/invocation/{id}/error`: the function answered with an error.
    Error { error_type: String, message: String },
    /// `POST /runtime/init/error`: the function failed before asking for work.
    InitError { error_type: String, message: String },
}

impl Outcome {
    /// A short label for the table: `response`, `error: <type>`, `init error: <type>`.
    pub fn label(&self) -> String {
        match self {
            Outcome::Response { .. } => "response".to_owned(),
            Outcome::Error { error_type, .. } => format!("error: {error_type}"),
            Outcome::InitError { error_type, .. } => format!("init error: {error_type}"),
        }
    }
}

/// What the stand-in saw during one run.
#[derive(Debug, Clone)]
pub struct RunRecord {
    /// The request id handed out with the event.
    pub request_id: String,
    /// The bootstrap's process id, set right after spawning it.
    pub pid: Option<u32>,
    /// When the first `GET .../invocation/next` arrived.
    pub first_next: Option<Instant>,
    /// How many `next` requests arrived (the second one means "done, idle").
    pub next_requests: u32,
    /// When the first invocation was answered (or init failed), and how.
    pub done: Option<(Instant, Outcome)>,
    /// Sockets the bootstrap had open to anything but this stand-in when it first asked for work.
    pub sockets_at_first_next: Vec<String>,
}

struct Current {
    record: RunRecord,
    function_arn: String,
    event: Bytes,
}

struct Inner {
    addr: SocketAddr,
    current: Mutex<Option<Current>>,
    /// Bumped when a run ends; held `next` requests wait for it.
    generation: watch::Sender<u64>,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Option<Current>> {
        // A poisoned lock only means a handler panicked mid-update; the record is still readable.
        self.current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The Runtime API stand-in, serving on 127.0.0.1 until dropped with the runtime.
#[derive(Clone)]
pub struct RuntimeApi {
    inner: Arc<Inner>,
}

impl RuntimeApi {
    /// Binds 127.0.0.1 on a free port and serves in the background (needs a tokio runtime).
    pub async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the Runtime API stand-in on 127.0.0.1")?;
        let addr = listener.local_addr()?;
        let (generation, _) = watch::channel(0);
        let inner = Arc::new(Inner {
            addr,
            current: Mutex::new(None),
            generation,
        });
        let router = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(invocation_response),
            )
            .route(
                "/2018-06-01/runtime/invocation/{id}/error",
                post(invocation_error),
            )
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(inner.clone());
        tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, router).await {
                eprintln!("coldstart: the Runtime API stand-in stopped: {error}");
            }
        });
        Ok(Self { inner })
    }

    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        self.inner.addr.to_string()
    }

    /// The port the stand-in listens on.
    pub fn port(&self) -> u16 {
        self.inner.addr.port()
    }

    /// Opens a run: the next `next` request gets `event` for `function_name`.
    pub fn begin(&self, request_id: &str, function_name: &str, event: Bytes) {
        let current = Current {
            record: RunRecord {
                request_id: request_id.to_owned(),
                pid: None,
                first_next: None,
                next_requests: 0,
                done: None,
                sockets_at_first_next: Vec::new(),
            },
            function_arn: format!("arn:aws:lambda:us-east-1:123456789012:function:{function_name}"),
            event,
        };
        *self.inner.lock() = Some(current);
    }

    /// Tells the stand-in which process the run's requests come from (for the socket check).
    pub fn set_pid(&self, pid: u32) {
        if let Some(current) = self.inner.lock().as_mut() {
            current.record.pid = Some(pid);
        }
    }

    /// A copy of what the run has recorded so far.
    pub fn snapshot(&self) -> Option<RunRecord> {
        self.inner.lock().as_ref().map(|c| c.record.clone())
    }

    /// Closes the run and releases its held `next` requests.
    pub fn end(&self) -> Option<RunRecord> {
        let record = self.inner.lock().take().map(|c| c.record);
        self.inner.generation.send_modify(|g| *g += 1);
        record
    }
}

async fn next(State(api): State<Arc<Inner>>) -> Response {
    let now = Instant::now();
    // Decide under the lock, await outside it (a held std guard would make the handler !Send).
    let first = {
        let mut guard = api.lock();
        let Some(current) = guard.as_mut() else {
            return (StatusCode::SERVICE_UNAVAILABLE, "no run open").into_response();
        };
        current.record.next_requests += 1;
        if current.record.next_requests > 1 {
            // Subscribing under the lock means `end` cannot slip in unnoticed.
            Err(api.generation.subscribe())
        } else {
            current.record.first_next = Some(now);
            if let Some(pid) = current.record.pid {
                current.record.sockets_at_first_next =
                    sockets::foreign_sockets(pid, api.addr.port());
            }
            Ok((
                current.record.request_id.clone(),
                current.function_arn.clone(),
                current.event.clone(),
            ))
        }
    };
    let (request_id, arn, event) = match first {
        Ok(work) => work,
        Err(mut generation) => {
            // Done with the first invocation: hold this request like an idle, frozen sandbox.
            let _ = generation.changed().await;
            return (StatusCode::GONE, "run ended").into_response();
        }
    };
    let deadline_ms = SystemTime::now()
        .checked_add(Duration::from_secs(30))
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_millis())
        .unwrap_or_default();
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .header("lambda-runtime-aws-request-id", request_id)
        .header("lambda-runtime-deadline-ms", deadline_ms.to_string())
        .header("lambda-runtime-invoked-function-arn", arn)
        .header(
            "lambda-runtime-trace-id",
            "Root=1-6745ca00-0123456789abcdef01234567;Parent=0123456789abcdef;Sampled=0",
        )
        .body(Body::from(event))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn finish(api: &Inner, request_id: Option<&str>, outcome: Outcome) -> Response {
    let now = Instant::now();
    let mut guard = api.lock();
    let Some(current) = guard.as_mut() else {
        return (StatusCode::BAD_REQUEST, "no run open").into_response();
    };
    if request_id.is_some_and(|id| id != current.record.request_id) {
        return (StatusCode::BAD_REQUEST, "unknown request id").into_response();
    }
    if current.record.done.is_none() {
        current.record.done = Some((now, outcome));
    }
    (StatusCode::ACCEPTED, "{\"status\":\"OK\"}").into_response()
}

async fn invocation_response(
    State(api): State<Arc<Inner>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let body = String::from_utf8_lossy(&body).into_owned();
    finish(&api, Some(&id), Outcome::Response { body })
}

/// `errorType` and `errorMessage` of a Runtime API error document (or the raw body).
fn error_fields(body: &[u8]) -> (String, String) {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(doc) => (
            doc["errorType"].as_str().unwrap_or("(none)").to_owned(),
            doc["errorMessage"].as_str().unwrap_or("").to_owned(),
        ),
        Err(_) => (
            "(not JSON)".to_owned(),
            String::from_utf8_lossy(body).into_owned(),
        ),
    }
}

async fn invocation_error(
    State(api): State<Arc<Inner>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let (error_type, message) = error_fields(&body);
    finish(
        &api,
        Some(&id),
        Outcome::Error {
            error_type,
            message,
        },
    )
}

async fn init_error(State(api): State<Arc<Inner>>, body: Bytes) -> Response {
    let (error_type, message) = error_fields(&body);
    finish(
        &api,
        None,
        Outcome::InitError {
            error_type,
            message,
        },
    )
}

/// A listener that every endpoint a function might call during init points at (AWS endpoints,
/// IMDS, the database): it records when each connection arrives and closes it at once, so a
/// call fails fast instead of waiting on a timeout.
#[derive(Clone)]
pub struct Trap {
    addr: SocketAddr,
    hits: Arc<Mutex<Vec<Instant>>>,
}

impl Trap {
    /// Binds 127.0.0.1 on a free port and accepts in the background (needs a tokio runtime).
    pub async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the trap listener on 127.0.0.1")?;
        let addr = listener.local_addr()?;
        let hits = Arc::new(Mutex::new(Vec::new()));
        let recorded = hits.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let now = Instant::now();
                recorded
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .push(now);
                drop(stream);
            }
        });
        Ok(Self { addr, hits })
    }

    /// The port every trapped endpoint points at.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Forgets earlier connections and returns them.
    pub fn take(&self) -> Vec<Instant> {
        std::mem::take(&mut *self.hits.lock().unwrap_or_else(|p| p.into_inner()))
    }
}
