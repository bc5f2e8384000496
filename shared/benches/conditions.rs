//! `cargo bench -p triggeriq --features aws,postgres,lambda,test-support --bench conditions`
//! (`make bench-conditions`): figures for docs/conditions.md, printed, never asserted.
//!
//! - Per windowed kind (threshold count / sum / distinct, sequence, and threshold with a
//!   cooldown): DynamoDB requests per matched event, counted by an interceptor on the client,
//!   and the time per event, against moto at `MOTO_ENDPOINT` (moto's time is not DynamoDB's;
//!   the request count is the figure that carries over).
//! - Debounce and absence: Postgres statements per matched event (by construction, shown) and
//!   the time per event through `pipeline::timers::on_event`, one transaction each.
//! - evaluate-timers over `BENCH_DUE_DEADLINES` (default 10,000) due absence deadlines in one
//!   run: time, firings, deliveries sent to moto's SQS; the Postgres statements the run sent
//!   (counted from sqlx's per-statement `sqlx::query` events, with the time each took) and its
//!   SQS and S3 requests (counted by an interceptor, with the time at least one was in flight).
//!   Meanwhile the queue is purged every `BENCH_PURGE_MS` (default 100; 0: never), standing in
//!   for deliver-webhooks, which keeps the real queue short: moto counts every message of the
//!   queue on each message sent, so a backlog of thousands makes each `SendMessageBatch` cost
//!   seconds there, which SQS does not.
//!
//! Needs `DATABASE_URL` (a scratch database is created and dropped) and `MOTO_ENDPOINT`.
//! `BENCH_ONLY_TIMERS_RUN=1` runs the last part only.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::config::interceptors::{
    BeforeDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use chrono::Utc;
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use triggeriq::config::EvaluateConfig;
use triggeriq::dynamodb::{CooldownLock, Table, WindowStore};
use triggeriq::event::Event;
use triggeriq::ids::{TenantId, TriggerId};
use triggeriq::pipeline::conditions::Conditions;
use triggeriq::pipeline::timers::{self, TimerRunner};
use triggeriq::pipeline::trigger_cache::CompiledTrigger;
use triggeriq::postgres::{Database, tenants};
use triggeriq::testing::moto;
use triggeriq::wiring::Clients;

/// Counts the requests a DynamoDB client sends (retries included).
#[derive(Debug, Clone, Default)]
struct Counter(Arc<AtomicUsize>);

impl Intercept for Counter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    fn read_before_transmit(
        &self,
        _: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// SQS and S3 requests by operation, and how long at least one was in flight.
#[derive(Debug, Clone, Default)]
struct Calls(Arc<Mutex<CallLog>>);

#[derive(Debug, Default)]
struct CallLog {
    by_operation: BTreeMap<String, usize>,
    in_flight: usize,
    busy_since: Option<Instant>,
    busy: Duration,
}

impl Calls {
    fn snapshot(&self) -> (BTreeMap<String, usize>, Duration) {
        self.0
            .lock()
            .map(|log| (log.by_operation.clone(), log.busy))
            .unwrap_or_default()
    }
}

impl Intercept for Calls {
    fn name(&self) -> &'static str {
        "CallCounter"
    }

    fn read_before_transmit(
        &self,
        _: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let operation = cfg.load::<Metadata>().map_or_else(
            || "?".to_owned(),
            |m| format!("{} {}", m.service(), m.name()),
        );
        if let Ok(mut log) = self.0.lock() {
            *log.by_operation.entry(operation).or_default() += 1;
            if log.in_flight == 0 {
                log.busy_since = Some(Instant::now());
            }
            log.in_flight += 1;
        }
        Ok(())
    }

    fn read_after_transmit(
        &self,
        _: &BeforeDeserializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        if let Ok(mut log) = self.0.lock() {
            log.in_flight = log.in_flight.saturating_sub(1);
            if log.in_flight == 0
                && let Some(since) = log.busy_since.take()
            {
                log.busy += since.elapsed();
            }
        }
        Ok(())
    }
}

/// The statements sqlx ran, by their first words, with their count and the time they took.
/// sqlx emits one `sqlx::query` event per statement it runs (BEGIN and COMMIT included); this
/// subscriber listens to nothing else.
#[derive(Clone, Default)]
struct Statements(Arc<Mutex<BTreeMap<String, (usize, Duration)>>>);

impl Statements {
    fn snapshot(&self) -> BTreeMap<String, (usize, Duration)> {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

#[derive(Default)]
struct StatementFields {
    summary: String,
    elapsed_secs: f64,
}

impl tracing::field::Visit for StatementFields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "summary" {
            value.clone_into(&mut self.summary);
        }
    }

    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        if field.name() == "elapsed_secs" {
            self.elapsed_secs = value;
        }
    }

    fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
}

impl tracing::Subscriber for Statements {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        metadata.target() == "sqlx::query"
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let mut fields = StatementFields::default();
        event.record(&mut fields);
        if let Ok(mut by_kind) = self.0.lock() {
            let entry = by_kind.entry(fields.summary).or_default();
            entry.0 += 1;
            entry.1 += Duration::from_secs_f64(fields.elapsed_secs.max(0.0));
        }
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn compiled(condition: Value, cooldown: Option<Duration>) -> CompiledTrigger {
    CompiledTrigger {
        id: TriggerId::new(),
        name: "bench".into(),
        version: 1,
        condition_version: 1,
        condition: serde_json::from_value(condition).expect("condition"),
        cooldown,
        actions: Vec::new(),
    }
}

fn event(i: usize, kind: &str) -> (Event, Value) {
    let time = Utc::now() + chrono::Duration::seconds(i as i64);
    let event: Event = serde_json::from_value(json!({
        "id": format!("evt-{i:06}"), "type": kind, "time": time.to_rfc3339(),
        "data": {"customer": format!("c{}", i % 10), "amount": 10 + i % 7, "ip": format!("10.0.0.{}", i % 13)}
    }))
    .expect("event");
    let document = serde_json::to_value(&event).expect("json");
    (event, document)
}

async fn windowed_kinds() {
    let clients = moto::clients().await;
    let table = moto::table(&clients).await;
    let counter = Counter::default();
    let counted = aws_sdk_dynamodb::Client::from_conf(
        clients
            .dynamodb
            .config()
            .to_builder()
            .interceptor(counter.clone())
            .build(),
    );
    let table = Table::new(counted, table.name());
    let conditions = Conditions::new(WindowStore::new(table.clone()), CooldownLock::new(table));
    let by = json!(["$.data.customer"]);
    let kinds = [
        (
            "threshold count 3 / 1h",
            json!({"kind": "threshold", "count": 3, "within": "1h", "group_by": by}),
            None,
        ),
        (
            "threshold count 3 / 1h, cooldown 1m",
            json!({"kind": "threshold", "count": 3, "within": "1h", "group_by": by}),
            Some(Duration::from_secs(60)),
        ),
        (
            "threshold sum >= 100 / 1d",
            json!({"kind": "threshold", "sum": "$.data.amount", "at_least": 100, "within": "1d", "group_by": by}),
            None,
        ),
        (
            "threshold distinct ip >= 5 / 10m",
            json!({"kind": "threshold", "distinct": "$.data.ip", "at_least": 5, "within": "10m", "group_by": by}),
            None,
        ),
        (
            "sequence of 2 steps / 1d",
            json!({"kind": "sequence", "within": "1d", "group_by": by,
            "steps": [{"data": {"amount": [{"numeric": ["<", 13]}]}}, {"data": {"amount": [{"numeric": [">=", 13]}]}}]}),
            None,
        ),
    ];
    let tenant = TenantId::new();
    println!(
        "| condition | events | firings | DynamoDB requests per matched event | ms per event (moto) |"
    );
    println!("|---|---:|---:|---:|---:|");
    for (name, condition, cooldown) in kinds {
        let trigger = compiled(condition, cooldown);
        let windowed = trigger.condition.windowed().expect("windowed");
        let events = 300;
        let before = counter.0.load(Ordering::Relaxed);
        let started = Instant::now();
        let mut fired = 0;
        for i in 0..events {
            let (ev, doc) = event(i, "t");
            let outcome = conditions
                .windowed(tenant, &trigger, windowed, &ev, &doc, Utc::now())
                .await
                .expect("store");
            fired += usize::from(matches!(
                outcome,
                triggeriq::pipeline::conditions::Outcome::Fire(_)
            ));
        }
        let elapsed = started.elapsed();
        let requests = counter.0.load(Ordering::Relaxed) - before;
        println!(
            "| {name} | {events} | {fired} | {:.2} | {:.2} |",
            requests as f64 / events as f64,
            elapsed.as_secs_f64() * 1000.0 / events as f64
        );
    }
}

async fn scratch_pool(url: &str) -> (PgPool, PgPool, String) {
    let scratch = format!("triggeriq_bench_conditions_{}", std::process::id());
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .expect("connect");
    sqlx::query(&format!("CREATE DATABASE {scratch}"))
        .execute(&admin)
        .await
        .expect("create database");
    let base = url.rsplit_once('/').map_or(url, |(b, _)| b);
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect(&format!("{base}/{scratch}"))
        .await
        .expect("connect scratch");
    triggeriq::MIGRATOR.run(&pool).await.expect("migrate");
    (admin, pool, scratch)
}

async fn insert_trigger(pool: &PgPool, tenant: TenantId, condition: &Value) -> TriggerId {
    let id = TriggerId::new();
    sqlx::query(
        "INSERT INTO triggers (id, tenant_id, name, pattern, condition, cooldown_seconds, actions)
         VALUES ($1, $2, 'bench', '{\"type\": [\"hb\"]}', $3, NULL, $4)",
    )
    .bind(id.0)
    .bind(tenant.as_uuid())
    .bind(condition)
    .bind(json!([{"id": uuid::Uuid::now_v7(), "type": "webhook", "url": "https://hooks.example.com/b", "enabled": true}]))
    .execute(pool)
    .await
    .expect("trigger");
    id
}

async fn timer_kinds(pool: &PgPool) {
    let tenant = TenantId::new();
    tenants::create(pool, tenant, "Bench")
        .await
        .expect("tenant");
    println!();
    println!(
        "| condition | events | Postgres statements per matched event | ms per event (one transaction each) |"
    );
    println!("|---|---:|---:|---:|");
    for (name, condition) in [
        (
            "debounce quiet 5m",
            json!({"kind": "debounce", "quiet": "5m", "group_by": ["$.data.customer"]}),
        ),
        (
            "absence every 10m",
            json!({"kind": "absence", "every": "10m", "group_by": ["$.data.customer"]}),
        ),
    ] {
        let id = insert_trigger(pool, tenant, &condition).await;
        let trigger = CompiledTrigger {
            id,
            ..compiled(condition, None)
        };
        let events = 1000;
        let started = Instant::now();
        for i in 0..events {
            let (ev, doc) = event(i, "hb");
            let mut tx = pool.begin().await.expect("begin");
            timers::on_event(&mut tx, tenant, &trigger, &ev, &doc, Utc::now())
                .await
                .expect("timer");
            tx.commit().await.expect("commit");
        }
        println!(
            "| {name} | {events} | 3 (insert-if-missing, SELECT … FOR UPDATE, UPDATE) | {:.3} |",
            started.elapsed().as_secs_f64() * 1000.0 / events as f64
        );
    }
}

async fn timers_run(pool: &PgPool, statements: &Statements) {
    let due_count: i64 = env_number("BENCH_DUE_DEADLINES", 10_000);
    let purge_every = Duration::from_millis(env_number("BENCH_PURGE_MS", 100));
    let tenant = TenantId::new();
    tenants::create(pool, tenant, "Bench timers")
        .await
        .expect("tenant");
    let condition = json!({"kind": "absence", "every": "1m", "group_by": ["$.data.device"]});
    let trigger = insert_trigger(pool, tenant, &condition).await;
    let seen = Utc::now() - chrono::Duration::minutes(10);
    sqlx::query(
        "INSERT INTO events (tenant_id, id, type, time, received_at, matched_trigger_ids)
         SELECT $1, 'hb-' || g, 'hb', $2, $2, ARRAY[$3::uuid] FROM generate_series(1, $4) g",
    )
    .bind(tenant.as_uuid())
    .bind(seen)
    .bind(trigger.0)
    .bind(due_count)
    .execute(pool)
    .await
    .expect("events");
    sqlx::query(
        "INSERT INTO condition_timers (tenant_id, trigger_id, condition_version, group_key, group_values, state, due_at)
         SELECT $1, $2, 1, '[' || g || ']', jsonb_build_array(g),
                jsonb_build_object('kind', 'absence', 'down', false,
                                   'last', jsonb_build_object('id', 'hb-' || g, 'at', $3::timestamptz)),
                $3::timestamptz + interval '1 minute'
         FROM generate_series(1, $4) g",
    )
    .bind(tenant.as_uuid())
    .bind(trigger.0)
    .bind(seen)
    .bind(due_count)
    .execute(pool)
    .await
    .expect("timers");
    sqlx::query("ANALYZE").execute(pool).await.expect("analyze");
    let mut clients = moto::clients().await;
    let config = EvaluateConfig {
        table_name: "unused".into(),
        bucket_name: moto::bucket(&clients).await,
        deliveries_queue_url: moto::queue(&clients).await,
        trigger_cache_max_age: Duration::from_secs(5),
    };
    // The runner's SQS and S3 requests are counted; the purges go through the plain client.
    let plain_sqs = clients.sqs.clone();
    let calls = Calls::default();
    clients.sqs = aws_sdk_sqs::Client::from_conf(
        clients
            .sqs
            .config()
            .to_builder()
            .interceptor(calls.clone())
            .build(),
    )
    .into();
    clients.s3 = aws_sdk_s3::Client::from_conf(
        clients
            .s3
            .config()
            .to_builder()
            .interceptor(calls.clone())
            .build(),
    )
    .into();
    let wiring = Clients::new()
        .with_database(Database::from_pool(pool.clone()))
        .with_aws(clients);
    let runner = TimerRunner::new(config.clone(), &wiring).expect("runner");
    let stop = Arc::new(AtomicBool::new(false));
    let purger = (!purge_every.is_zero()).then(|| {
        let (stop, queue) = (stop.clone(), config.deliveries_queue_url.clone());
        tokio::spawn(async move {
            let mut purges = 0usize;
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(purge_every).await;
                if plain_sqs
                    .purge_queue()
                    .queue_url(&queue)
                    .send()
                    .await
                    .is_ok()
                {
                    purges += 1;
                }
            }
            purges
        })
    });
    let statements_before = statements.snapshot();
    let started = Instant::now();
    let run = runner.run(Utc::now()).await.expect("run");
    let elapsed = started.elapsed();
    let statements_after = statements.snapshot();
    stop.store(true, Ordering::Relaxed);
    let purges = match purger {
        Some(purger) => purger.await.unwrap_or(0),
        None => 0,
    };
    let (operations, sqs_busy) = calls.snapshot();

    let mut by_kind: Vec<(String, usize, Duration)> = statements_after
        .into_iter()
        .map(|(kind, (n, t))| {
            let (n0, t0) = statements_before.get(&kind).copied().unwrap_or_default();
            (kind, n - n0, t.saturating_sub(t0))
        })
        .filter(|(_, n, _)| *n > 0)
        .collect();
    by_kind.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let commits = by_kind
        .iter()
        .find(|(kind, _, _)| kind == "COMMIT")
        .map_or(0, |(_, n, _)| *n);
    // sqlx does not log BEGIN (it is not sent as a query), but it is a round trip of its own:
    // one per transaction, and the run's transactions all commit.
    let statement_count = commits + by_kind.iter().map(|(_, n, _)| n).sum::<usize>();
    let statement_time: Duration = by_kind.iter().map(|(_, _, t)| *t).sum();
    let requests: usize = operations.values().sum();
    let per = |x: f64| x / due_count.max(1) as f64;
    println!();
    println!(
        "evaluate-timers, one run over {due_count} due absence deadlines: {:.1} s \
         ({:.3} ms per deadline); due {}, fired {}, dropped {}, deliveries sent {}",
        elapsed.as_secs_f64(),
        per(elapsed.as_secs_f64() * 1000.0),
        run.due,
        run.fired,
        run.dropped,
        run.enqueued
    );
    println!(
        "  Postgres: {statement_count} statements ({:.3} per deadline; {commits} BEGIN among \
         them, not timed), {commits} transactions committed, {:.1} s in statements ({:.3} ms \
         per deadline)",
        per(statement_count as f64),
        statement_time.as_secs_f64(),
        per(statement_time.as_secs_f64() * 1000.0)
    );
    for (kind, n, t) in &by_kind {
        println!(
            "    {n:>7} × {kind} ({:.1} s, {:.3} ms each)",
            t.as_secs_f64(),
            t.as_secs_f64() * 1000.0 / *n as f64
        );
    }
    println!(
        "  SQS and S3 (moto): {requests} requests ({:.3} per deadline), {:.1} s with one in \
         flight ({:.3} ms per deadline); queue purged {purges} times meanwhile",
        per(requests as f64),
        sqs_busy.as_secs_f64(),
        per(sqs_busy.as_secs_f64() * 1000.0)
    );
    for (operation, n) in &operations {
        println!("    {n:>7} × {operation}");
    }
    println!(
        "  the rest (the runner's own work, waits between calls): {:.1} s",
        elapsed
            .saturating_sub(statement_time)
            .saturating_sub(sqs_busy)
            .as_secs_f64()
    );
}

fn main() {
    let (Ok(url), Ok(_)) = (
        std::env::var("DATABASE_URL"),
        std::env::var("MOTO_ENDPOINT"),
    ) else {
        eprintln!("conditions bench skipped: set DATABASE_URL and MOTO_ENDPOINT");
        return;
    };
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let statements = Statements::default();
    tracing::subscriber::set_global_default(statements.clone()).expect("subscriber");
    let only_timers_run = std::env::var("BENCH_ONLY_TIMERS_RUN").is_ok_and(|v| v == "1");
    runtime.block_on(async {
        if !only_timers_run {
            windowed_kinds().await;
        }
        let (admin, pool, scratch) = scratch_pool(&url).await;
        if !only_timers_run {
            timer_kinds(&pool).await;
        }
        timers_run(&pool, &statements).await;
        pool.close().await;
        // FORCE: a closed pool's backends may not have exited yet, and a plain DROP would then
        // fail (silently here) and leave the scratch database behind.
        let _ = sqlx::query(&format!("DROP DATABASE {scratch} WITH (FORCE)"))
            .execute(&admin)
            .await;
    });
}
