//! The pipeline under test: a fresh Postgres database (from `#[sqlx::test]`), fresh moto
//! resources (table, bucket, four queues), every function's state built over them, the
//! samples in `events/`, and a webhook receiver on 127.0.0.1.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lambda_events::sqs::SqsEvent;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response as AxumResponse};
use bytes::Bytes;
use serde_json::{Value, json};
use sqlx::PgPool;
use triggeriq::api::firings::ReadApi;
use triggeriq::api::signing::SigningApi;
use triggeriq::aws::AwsClients;
use triggeriq::config::pipeline::EVENT_CLAIM_THRESHOLD;
use triggeriq::config::{
    DeliverConfig, EvaluateConfig, IngestConfig, RecordConfig, RetryDeliveryConfig, SigningConfig,
};
use triggeriq::consumers::{self, process_batch};
use triggeriq::dynamodb::{SigningSecretStore, Table};
use triggeriq::event::EventLimits;
use triggeriq::kms::Sealer;
use triggeriq::pipeline::deliver::Deliverer;
use triggeriq::pipeline::evaluate::Evaluator;
use triggeriq::pipeline::ingest::Ingestor;
use triggeriq::pipeline::record::Recorder;
use triggeriq::pipeline::redeliver::Redeliverer;
use triggeriq::postgres::{Database, tenants, triggers};
use triggeriq::tenant::TenantId;
use triggeriq::testing::moto;
use triggeriq::trigger::{BodyKind, Trigger, TriggerBody, TriggerLimits};
use triggeriq::webhook::{RetryPolicy, TargetPolicy};
use triggeriq::wiring::Clients;

pub const DEMO_TENANT: &str = "0190f0a0-0000-7000-8000-000000000001";

// ------------------------------------------------------------------ the stack

/// A pool on `pool`'s database whose connections act as `triggeriq_app` (`SET ROLE`, as the
/// functions' login role would).
pub fn as_app_role(pool: &PgPool) -> PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .idle_timeout(Some(Duration::from_secs(1)))
        .after_connect(|conn, _| {
            Box::pin(async move {
                sqlx::query("SET ROLE triggeriq_app")
                    .execute(conn)
                    .await
                    .map(|_| ())
            })
        })
        .connect_lazy_with((*pool.connect_options()).clone())
}

pub struct Stack {
    /// The test database as its owner: what the test sets up and inspects with.
    pub pool: PgPool,
    /// The same database as `triggeriq_app`, the functions' role (migration 0007): every
    /// function state is built over it, so a grant a function lacks fails its tests.
    pub app_pool: PgPool,
    pub clients: AwsClients,
    pub table: String,
    pub bucket: String,
    pub events_queue: String,
    pub deliveries_queue: String,
    pub results_queue: String,
    pub dead_letters: String,
    /// The KMS key the signing secrets are sealed with.
    pub signing_key: String,
}

impl Stack {
    pub async fn new(pool: PgPool) -> Self {
        let clients = moto::clients().await;
        let table = moto::table(&clients).await.name().to_owned();
        let bucket = moto::bucket(&clients).await;
        let events_queue = moto::queue(&clients).await;
        let deliveries_queue = moto::queue(&clients).await;
        let results_queue = moto::queue(&clients).await;
        let dead_letters = moto::queue(&clients).await;
        let signing_key = moto::kms_key(&clients).await;
        let app_pool = as_app_role(&pool);
        Self {
            app_pool,
            signing_key,
            pool,
            clients,
            table,
            bucket,
            events_queue,
            deliveries_queue,
            results_queue,
            dead_letters,
        }
    }

    pub fn ingest_config(&self) -> IngestConfig {
        IngestConfig {
            table_name: self.table.clone(),
            bucket_name: self.bucket.clone(),
            events_queue_url: self.events_queue.clone(),
            limits: EventLimits::default(),
            idempotency_ttl: Duration::from_secs(24 * 3600),
            claim_check_threshold: EVENT_CLAIM_THRESHOLD,
            rate_per_second: 1000.0,
            rate_burst: 5000,
            budget: Duration::from_secs(8),
        }
    }

    /// The stack's clients: this test's database and moto.
    pub fn wiring(&self) -> Clients {
        self.wiring_with(&self.clients)
    }

    /// This test's database with other AWS clients (mocks that fail on demand).
    pub fn wiring_with(&self, aws: &AwsClients) -> Clients {
        Clients::new()
            .with_database(Database::from_pool(self.app_pool.clone()))
            .with_aws(aws.clone())
    }

    pub fn ingest(&self) -> Ingestor {
        self.ingest_with(&self.clients, self.ingest_config())
    }

    pub fn ingest_with(&self, clients: &AwsClients, config: IngestConfig) -> Ingestor {
        Ingestor::new(config, &self.wiring_with(clients)).expect("ingestor")
    }

    pub fn evaluate_config(&self) -> EvaluateConfig {
        EvaluateConfig {
            table_name: self.table.clone(),
            bucket_name: self.bucket.clone(),
            deliveries_queue_url: self.deliveries_queue.clone(),
            // Every event sees trigger changes at once.
            trigger_cache_max_age: Duration::ZERO,
        }
    }

    pub fn timers(&self) -> triggeriq::pipeline::timers::TimerRunner {
        triggeriq::pipeline::timers::TimerRunner::new(self.evaluate_config(), &self.wiring())
            .expect("timer runner")
    }

    pub fn evaluator(&self) -> Evaluator {
        self.evaluator_with(self.evaluate_config())
    }

    pub fn evaluator_with(&self, config: EvaluateConfig) -> Evaluator {
        Evaluator::new(config, &self.wiring()).expect("evaluator")
    }

    /// A deliverer whose retries wait `schedule` (no jitter), allowed to reach 127.0.0.1.
    pub fn deliverer(&self, schedule: &[Duration]) -> Deliverer {
        let config = DeliverConfig {
            table_name: self.table.clone(),
            signing_key_id: self.signing_key.clone(),
            bucket_name: self.bucket.clone(),
            results_queue_url: self.results_queue.clone(),
            targets: TargetPolicy::local_development(),
            timeout: Duration::from_secs(15),
            retry: RetryPolicy {
                schedule: schedule.to_vec(),
                jitter: 0.0,
                ..RetryPolicy::default()
            },
        };
        Deliverer::new(config, &self.wiring()).expect("deliverer")
    }

    pub fn recorder(&self) -> Recorder {
        let config = RecordConfig {
            deliveries_queue_url: self.deliveries_queue.clone(),
            results_queue_url: self.results_queue.clone(),
        };
        Recorder::new(config, &self.wiring()).expect("recorder")
    }

    pub fn reads(&self) -> ReadApi {
        ReadApi::new(&self.wiring()).expect("read routes")
    }

    pub fn retry_api(&self) -> Redeliverer {
        let config = RetryDeliveryConfig {
            bucket_name: self.bucket.clone(),
            deliveries_queue_url: self.deliveries_queue.clone(),
        };
        Redeliverer::new(config, &self.wiring()).expect("redeliverer")
    }

    pub fn signing(&self) -> SigningApi {
        let config = SigningConfig {
            table_name: self.table.clone(),
            signing_key_id: self.signing_key.clone(),
        };
        SigningApi::new(config, &self.wiring()).expect("signing route")
    }

    pub fn secrets(&self) -> SigningSecretStore {
        SigningSecretStore::new(
            Table::new(self.clients.dynamodb.clone(), &self.table),
            Sealer::new(self.clients.kms.clone(), &self.signing_key),
        )
    }

    /// A tenant with its first signing secret, as `triggeriq tenant create` makes one.
    pub async fn tenant(&self) -> TenantId {
        let id = self.tenant_without_secret().await;
        self.secrets()
            .get_or_create(id, chrono::Utc::now())
            .await
            .expect("first signing secret");
        id
    }

    /// A tenant created before `tenant create` made the first signing secret.
    pub async fn tenant_without_secret(&self) -> TenantId {
        tenants::create(&self.pool, TenantId::new(), "Acme")
            .await
            .expect("tenant")
            .id
    }

    /// A trigger from a create body (the local stack's targets: the receiver on 127.0.0.1).
    pub async fn trigger(&self, tenant: TenantId, body: Value) -> Trigger {
        let limits = TriggerLimits {
            webhook_targets: TargetPolicy::local_development(),
            ..TriggerLimits::default()
        };
        let parsed = TriggerBody::parse(&body, BodyKind::Create, &limits).expect("valid trigger");
        triggers::create(&self.pool, tenant, &parsed.spec, (&limits).into())
            .await
            .expect("trigger")
    }

    /// Receives (and deletes) the messages on `queue`: waits until `expected` arrived or a
    /// few seconds passed, then looks once more so that extra messages are seen too.
    pub async fn take(&self, queue: &str, expected: usize) -> Vec<aws_sdk_sqs::types::Message> {
        let mut taken = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut extra_look = true;
        loop {
            let reached = taken.len() >= expected;
            if reached && !extra_look {
                break;
            }
            if !reached && Instant::now() > deadline {
                break;
            }
            if reached {
                extra_look = false;
            }
            let out = self
                .clients
                .sqs
                .receive_message()
                .queue_url(queue)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await
                .expect("receive");
            for message in out.messages() {
                if let Some(handle) = message.receipt_handle() {
                    self.clients
                        .sqs
                        .delete_message()
                        .queue_url(queue)
                        .receipt_handle(handle)
                        .send()
                        .await
                        .expect("delete");
                }
                taken.push(message.clone());
            }
        }
        taken
    }

    /// Evaluates every message now on the events queue; returns the batch failures.
    pub async fn evaluate_all(&self, evaluator: &Evaluator, expected: usize) -> Vec<String> {
        let messages = self.take(&self.events_queue, expected).await;
        assert_eq!(messages.len(), expected, "messages on the events queue");
        failures(
            process_batch(
                evaluator,
                sqs_event(&messages),
                consumers::evaluate::CONCURRENCY,
                consumers::evaluate::handle,
            )
            .await,
        )
    }

    /// Runs deliver-webhooks over `messages` (taken from the deliveries queue); none may fail.
    pub async fn deliver(&self, deliverer: &Deliverer, messages: &[aws_sdk_sqs::types::Message]) {
        let failed = failures(
            process_batch(
                deliverer,
                sqs_event(messages),
                consumers::deliver::CONCURRENCY,
                consumers::deliver::handle,
            )
            .await,
        );
        assert!(failed.is_empty(), "deliver-webhooks failed {failed:?}");
    }

    /// Runs deliver-webhooks and record-deliveries until both their queues stay empty: attempts,
    /// their reports, and the retries record-deliveries releases when they are due (messages
    /// still delayed on a queue are not waited for).
    pub async fn deliver_all(&self, deliverer: &Deliverer, recorder: &Recorder) {
        for _ in 0..30 {
            let messages = self.take(&self.deliveries_queue, 0).await;
            if !messages.is_empty() {
                self.deliver(deliverer, &messages).await;
            }
            let recorded = self.record_now(recorder).await;
            if messages.is_empty() && recorded == 0 {
                break;
            }
        }
    }

    /// Runs record-deliveries over what is on its queue now; how many messages it took.
    pub async fn record_now(&self, recorder: &Recorder) -> usize {
        let results = self.take(&self.results_queue, 0).await;
        if !results.is_empty() {
            let failed = failures(
                process_batch(
                    recorder,
                    sqs_event(&results),
                    consumers::record::CONCURRENCY,
                    consumers::record::handle,
                )
                .await,
            );
            assert!(failed.is_empty(), "record-deliveries failed {failed:?}");
        }
        results.len()
    }

    /// Runs record-deliveries over every result now on its queue.
    pub async fn record_all(&self, recorder: &Recorder) {
        let results = self.take(&self.results_queue, 1).await;
        if results.is_empty() {
            return;
        }
        let failed = failures(
            process_batch(
                recorder,
                sqs_event(&results),
                consumers::record::CONCURRENCY,
                consumers::record::handle,
            )
            .await,
        );
        assert!(failed.is_empty(), "record-deliveries failed {failed:?}");
    }
}

/// The SQS event Lambda would hand over for these messages.
pub fn sqs_event(messages: &[aws_sdk_sqs::types::Message]) -> SqsEvent {
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            json!({
                "messageId": m.message_id(),
                "receiptHandle": m.receipt_handle(),
                "body": m.body(),
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": m.md5_of_body().unwrap_or_default(),
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:test",
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).expect("an SQS event")
}

/// A sample SQS event with the body of record `i` replaced.
pub fn sqs_sample(name: &str, bodies: &[String]) -> SqsEvent {
    let mut event = sample(name);
    let template = event["Records"][0].clone();
    event["Records"] = Value::Array(
        bodies
            .iter()
            .enumerate()
            .map(|(i, body)| {
                let mut record = template.clone();
                record["messageId"] = json!(format!("{name}-{i}"));
                record["body"] = json!(body);
                record
            })
            .collect(),
    );
    serde_json::from_value(event).expect("an SQS event")
}

pub fn failures(response: aws_lambda_events::sqs::SqsBatchResponse) -> Vec<String> {
    let mut ids: Vec<String> = response
        .batch_item_failures
        .into_iter()
        .map(|f| f.item_identifier)
        .collect();
    ids.sort();
    ids
}

// ------------------------------------------------------------------ routes

pub use triggeriq::testing::requests::{Req, call, sample};

// ------------------------------------------------------------------ receiver

#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Whether the signature verified (with the `standardwebhooks` crate) under a known secret.
    pub verified: bool,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON webhook body")
    }
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

#[derive(Clone)]
struct ReceiverState {
    secrets: Arc<Mutex<Vec<String>>>,
    log: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<VecDeque<u16>>>,
}

/// A webhook receiver on 127.0.0.1. `/hook` answers the scripted statuses in turn, then 204;
/// `/gone` answers 410, `/error` always 500, `/busy` 503 with `Retry-After: 120`, `/nul` 200
/// with NUL bytes in its body. Unverifiable webhooks get 401.
pub struct Receiver {
    pub address: SocketAddr,
    secrets: Arc<Mutex<Vec<String>>>,
    log: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    pub async fn start(script: &[u16]) -> Self {
        let state = ReceiverState {
            secrets: Arc::new(Mutex::new(Vec::new())),
            log: Arc::new(Mutex::new(Vec::new())),
            script: Arc::new(Mutex::new(script.iter().copied().collect())),
        };
        let (secrets, log) = (state.secrets.clone(), state.log.clone());
        let app = Router::new().fallback(receive).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            address,
            secrets,
            log,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// The secrets the receiver verifies with (as its operator configured them).
    pub fn trust(&self, secret: &str) {
        self.secrets.lock().unwrap().push(secret.to_owned());
    }

    pub fn received(&self) -> Vec<Received> {
        self.log.lock().unwrap().clone()
    }
}

async fn receive(
    State(state): State<ReceiverState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> AxumResponse {
    let secrets = state.secrets.lock().unwrap().clone();
    let verified = secrets.iter().any(|secret| {
        standardwebhooks::Webhook::new(secret)
            .and_then(|hook| hook.verify(&body, &headers))
            .is_ok()
    });
    let path = uri.path().to_owned();
    state.log.lock().unwrap().push(Received {
        path: path.clone(),
        headers,
        body,
        verified,
    });
    if !verified {
        return (StatusCode::UNAUTHORIZED, "bad signature").into_response();
    }
    match path.as_str() {
        "/hook" => {
            let next = state.script.lock().unwrap().pop_front().unwrap_or(204);
            (
                StatusCode::from_u16(next).unwrap(),
                format!("answer {next}"),
            )
                .into_response()
        }
        "/gone" => (StatusCode::GONE, "this endpoint was removed").into_response(),
        "/busy" => (
            StatusCode::SERVICE_UNAVAILABLE,
            [("retry-after", "120")],
            "busy",
        )
            .into_response(),
        "/error" => (StatusCode::INTERNAL_SERVER_ERROR, "database is down").into_response(),
        // What Postgres cannot store: NUL bytes, and other control characters.
        "/nul" => (StatusCode::OK, "ok\0\0 \x1b[31mred\x7f").into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}
