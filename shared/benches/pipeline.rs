//! `cargo bench -p triggeriq --bench pipeline`
//!
//! Figures for docs/pipeline.md, printed by criterion (no timed assertions anywhere):
//!
//! - `ingest/parse_and_wrap`: the pure CPU of ingest for a batch of 100 events (read and
//!   validate the body, build each queue message and its claim-check envelope), with
//!   `ingest/parse` (reading alone) and `ingest/serde_json_baseline` (serde_json reading the
//!   same body into a `Value` once) to tell this code's cost from the machine's;
//! - `ingest/request`: a whole `Ingestor::ingest` of 100 events, with DynamoDB and SQS
//!   answered in-process by aws-smithy-mocks, so it counts the SDK's own CPU (serialising,
//!   signing, parsing answers: one rate-limit update, 100 conditional puts, 10
//!   `SendMessageBatch`) but no network;
//! - `evaluate/match_1000_triggers`: matching one event against a tenant's 1,000 compiled
//!   triggers, and `evaluate/compile_1000_triggers`, the cache miss;
//! - `evaluate/message_1000_triggers`: a whole `Evaluator::evaluate` per message for a tenant
//!   with 1,000 triggers against the real Postgres at `DATABASE_URL` (a scratch database is
//!   created and dropped), DynamoDB and SQS mocked; skipped without `DATABASE_URL`.
//!
//! Each ingest figure is per request of 100 events: divide by 100 for the time per event.

use std::hint::black_box;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemOutput;
use aws_sdk_dynamodb::operation::put_item::PutItemOutput;
use aws_sdk_dynamodb::operation::update_item::UpdateItemOutput;
use aws_sdk_sqs::operation::send_message_batch::{SendMessageBatchInput, SendMessageBatchOutput};
use aws_sdk_sqs::types::SendMessageBatchResultEntry;
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use chrono::Utc;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Value, json};
use sqlx::postgres::PgPoolOptions;
use triggeriq::aws::AwsClients;
use triggeriq::config::{EvaluateConfig, IngestConfig};
use triggeriq::event::{EventLimits, IngestBody};
use triggeriq::pipeline::evaluate::Evaluator;
use triggeriq::pipeline::ingest::Ingestor;
use triggeriq::pipeline::messages::EventMessage;
use triggeriq::pipeline::trigger_cache::CompiledTriggers;
use triggeriq::postgres::trigger_sets::MatchableTrigger;
use triggeriq::postgres::{Database, tenants};
use triggeriq::s3::ClaimCheck;
use triggeriq::tenant::TenantId;
use triggeriq::trigger::{Action, ActionId, ActionKind, TriggerId, TriggerLimits, WebhookUrl};
use triggeriq::wiring::Clients;

const BATCH: usize = 100;
const TRIGGERS: usize = 1000;

/// A realistic event of about 400 bytes.
fn event(i: usize) -> Value {
    json!({
        "id": format!("evt-{i:08}"),
        "type": "payment.failed",
        "source": "billing",
        "subject": format!("customer/cus_{}", i % 977),
        "time": "2026-05-17T09:30:00.123Z",
        "data": {
            "amount": 1200 + i % 50,
            "currency": "EUR",
            "customer_id": format!("cus_{}", i % 977),
            "attempt": 2,
            "card": {"brand": "visa", "last4": "4242", "country": "DE"},
            "reason": "insufficient_funds",
            "tags": ["retry", "eu", "subscription"]
        }
    })
}

fn batch_body(round: usize) -> Vec<u8> {
    let events: Vec<Value> = (0..BATCH).map(|i| event(round * BATCH + i)).collect();
    serde_json::to_vec(&json!({ "events": events })).unwrap()
}

fn sqs_ok(input: &SendMessageBatchInput) -> SendMessageBatchOutput {
    let mut out = SendMessageBatchOutput::builder()
        .set_successful(Some(Vec::new()))
        .set_failed(Some(Vec::new()));
    for entry in input.entries() {
        out = out.successful(
            SendMessageBatchResultEntry::builder()
                .id(entry.id())
                .message_id(format!("m-{}", entry.id()))
                .md5_of_message_body("0")
                .build()
                .unwrap(),
        );
    }
    out.build().unwrap()
}

/// DynamoDB and SQS answered in-process; S3 unused (events are small).
fn mocked_clients() -> AwsClients {
    let put =
        mock!(aws_sdk_dynamodb::Client::put_item).then_output(|| PutItemOutput::builder().build());
    let update = mock!(aws_sdk_dynamodb::Client::update_item)
        .then_output(|| UpdateItemOutput::builder().build());
    let batch_write = mock!(aws_sdk_dynamodb::Client::batch_write_item)
        .then_output(|| BatchWriteItemOutput::builder().build());
    let send = mock!(aws_sdk_sqs::Client::send_message_batch).then_compute_output(sqs_ok);
    AwsClients {
        dynamodb: mock_client!(
            aws_sdk_dynamodb,
            RuleMode::MatchAny,
            [&put, &update, &batch_write]
        )
        .into(),
        sqs: mock_client!(aws_sdk_sqs, RuleMode::MatchAny, [&send]).into(),
        s3: mock_client!(aws_sdk_s3, RuleMode::MatchAny, []).into(),
        kms: mock_client!(aws_sdk_kms, RuleMode::MatchAny, []).into(),
    }
}

fn ingest_config() -> IngestConfig {
    IngestConfig {
        table_name: "bench".into(),
        bucket_name: "bench".into(),
        events_queue_url: "https://sqs.us-east-1.amazonaws.com/123456789012/events".into(),
        limits: EventLimits::default(),
        idempotency_ttl: Duration::from_secs(86_400),
        claim_check_threshold: 256_000,
        rate_per_second: 1e9,
        rate_burst: 1_000_000,
        budget: Duration::from_secs(8),
    }
}

fn ingest(c: &mut Criterion) {
    let mut group = c.benchmark_group("ingest");
    group.throughput(Throughput::Elements(BATCH as u64));
    let body = batch_body(0);
    let tenant = TenantId::new();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // The claim check's inline path: no S3 call for events of this size.
    let claims = runtime.block_on(async { ClaimCheck::new(mocked_clients().s3, "bench") });
    // Reference for this machine: serde_json reading the same body into a `Value`, once.
    group.bench_function("serde_json_baseline", |b| {
        b.iter(|| black_box(serde_json::from_slice::<Value>(black_box(&body)).unwrap()))
    });
    group.bench_function("parse", |b| {
        b.iter(|| {
            black_box(
                IngestBody::parse(black_box(&body), &EventLimits::default(), Utc::now()).unwrap(),
            )
        })
    });
    group.bench_function("parse_and_wrap", |b| {
        b.iter(|| {
            let now = Utc::now();
            let parsed = IngestBody::parse(black_box(&body), &EventLimits::default(), now).unwrap();
            let mut bytes = 0;
            for item in &parsed.items {
                let event = item.parsed.as_ref().unwrap();
                let text = EventMessage::to_json(tenant, now, event).unwrap();
                let queued = runtime
                    .block_on(claims.wrap(tenant, &event.id, &text, now))
                    .unwrap();
                bytes += queued.body.len();
            }
            black_box(bytes)
        })
    });

    let ingestor = runtime.block_on(async {
        let wiring = Clients::new().with_aws(mocked_clients());
        Ingestor::new(ingest_config(), &wiring).unwrap()
    });
    let bodies: Vec<Vec<u8>> = (0..50).map(batch_body).collect();
    let mut round = 0usize;
    group.bench_function("request", |b| {
        b.iter(|| {
            round += 1;
            let body = &bodies[round % bodies.len()];
            let report = runtime
                .block_on(ingestor.ingest(tenant, body, Utc::now()))
                .unwrap();
            assert_eq!(report.accepted, BATCH);
            black_box(report)
        })
    });
    group.finish();
}

fn trigger_rows(n: usize) -> Vec<MatchableTrigger> {
    let url = WebhookUrl::parse("https://hooks.example.com/t", &TriggerLimits::default()).unwrap();
    (0..n)
        .map(|i| {
            let kind = format!("type.{i}");
            let pattern = match i % 4 {
                0 => json!({"type": [kind]}),
                1 => json!({"type": [kind], "data": {"amount": [{"numeric": [">", i % 100]}]}}),
                2 => json!({"type": [kind], "source": [{"prefix": "bill"}]}),
                _ => json!({"type": [kind], "data": {"currency": [{"anything-but": ["USD", "GBP"]}]}}),
            };
            MatchableTrigger {
                id: TriggerId::new(),
                name: format!("trigger {i}"),
                version: 1,
                condition_version: 1,
                pattern,
                condition: json!({"kind": "every"}),
                cooldown_seconds: (i % 2 == 0).then_some(60),
                actions: vec![Action {
                    id: ActionId::new(),
                    kind: ActionKind::Webhook,
                    url: url.clone(),
                    enabled: true,
                    disabled_reason: None,
                }],
            }
        })
        .collect()
}

/// An event that matches exactly one of [`trigger_rows`]: number 6, a source prefix with a
/// cooldown, so evaluation takes a cooldown lock too.
fn matching_event(i: usize) -> Value {
    let mut e = event(i);
    e["type"] = json!("type.6");
    e
}

fn evaluate(c: &mut Criterion) {
    let mut group = c.benchmark_group("evaluate");
    let tenant = TenantId::new();
    group.bench_function("compile_1000_triggers", |b| {
        b.iter_batched(
            || trigger_rows(TRIGGERS),
            |rows| black_box(CompiledTriggers::compile(tenant, 1, rows)),
            criterion::BatchSize::LargeInput,
        )
    });
    let compiled = CompiledTriggers::compile(tenant, 1, trigger_rows(TRIGGERS));
    let bytes = serde_json::to_vec(&matching_event(1)).unwrap();
    assert_eq!(compiled.matching(&bytes).unwrap().len(), 1);
    group.bench_function("match_1000_triggers", |b| {
        b.iter(|| black_box(compiled.matching(black_box(&bytes)).unwrap().len()))
    });

    let Ok(url) = std::env::var("DATABASE_URL") else {
        eprintln!("evaluate/message_1000_triggers skipped: set DATABASE_URL to a Postgres server");
        group.finish();
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let scratch = format!("triggeriq_bench_{}", std::process::id());
    let (admin, pool) = runtime.block_on(async {
        let admin = PgPoolOptions::new().max_connections(1).connect(&url).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {scratch}"))
            .execute(&admin)
            .await
            .unwrap();
        let base = url.rsplit_once('/').map_or(url.as_str(), |(b, _)| b);
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .connect(&format!("{base}/{scratch}"))
            .await
            .unwrap();
        triggeriq::MIGRATOR.run(&pool).await.unwrap();
        tenants::create(&pool, tenant, "Bench").await.unwrap();
        for row in trigger_rows(TRIGGERS) {
            sqlx::query(
                "INSERT INTO triggers (id, tenant_id, name, pattern, condition, cooldown_seconds, actions)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(row.id.0)
            .bind(tenant.as_uuid())
            .bind(&row.name)
            .bind(&row.pattern)
            .bind(&row.condition)
            .bind(row.cooldown_seconds)
            .bind(sqlx::types::Json(&row.actions))
            .execute(&pool)
            .await
            .unwrap();
        }
        (admin, pool)
    });
    let evaluator = runtime.block_on(async {
        let wiring = Clients::new()
            .with_database(Database::from_pool(pool.clone()))
            .with_aws(mocked_clients());
        let config = EvaluateConfig {
            table_name: "bench".into(),
            bucket_name: "bench".into(),
            deliveries_queue_url: "https://sqs.us-east-1.amazonaws.com/123456789012/deliveries"
                .into(),
            trigger_cache_max_age: Duration::from_secs(5),
        };
        Evaluator::new(config, &wiring).unwrap()
    });
    let mut next = 0usize;
    group.bench_function("message_1000_triggers", |b| {
        b.iter_custom(|iterations| {
            let messages: Vec<EventMessage> = (0..iterations as usize)
                .map(|_| {
                    next += 1;
                    let event = serde_json::from_value(matching_event(next)).unwrap();
                    EventMessage::new(tenant, Utc::now(), event)
                })
                .collect();
            runtime.block_on(async {
                let start = Instant::now();
                for message in &messages {
                    let evaluation = evaluator.evaluate(message).await.unwrap();
                    assert_eq!(evaluation.fired.len(), 1);
                }
                start.elapsed()
            })
        })
    });
    group.finish();
    runtime.block_on(async {
        pool.close().await;
        sqlx::query(&format!("DROP DATABASE {scratch}"))
            .execute(&admin)
            .await
            .unwrap();
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(8));
    targets = ingest, evaluate
}
criterion_main!(benches);
