//! `cargo bench -p triggeriq --features aws,postgres,lambda,test-support --bench conditions`
//! (`make bench-conditions`): figures for docs/conditions.md, printed, never asserted.
//!
//! - Per windowed kind (threshold count / sum / distinct, sequence, and threshold with a
//!   cooldown): DynamoDB requests per matched event, counted by an interceptor on the client,
//!   and the time per event, against moto at `MOTO_ENDPOINT` (moto's time is not DynamoDB's;
//!   the request count is the figure that carries over).
//! - Debounce and absence: Postgres statements per matched event (by construction, shown) and
//!   the time per event through `pipeline::timers::on_event`, one transaction each.
//! - evaluate-timers over 10,000 due absence deadlines in one run: time, firings, deliveries
//!   sent to moto's SQS, transactions.
//!
//! Needs `DATABASE_URL` (a scratch database is created and dropped) and `MOTO_ENDPOINT`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
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

fn compiled(condition: Value, cooldown: Option<Duration>) -> CompiledTrigger {
    CompiledTrigger {
        id: TriggerId::new(),
        name: "bench".into(),
        version: 1,
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

async fn timers_run(pool: &PgPool) {
    // BENCH_DUE_DEADLINES (default 10,000).
    let due_count: i64 = std::env::var("BENCH_DUE_DEADLINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
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
        "INSERT INTO condition_timers (tenant_id, trigger_id, trigger_version, group_key, group_values, state, due_at)
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
    let clients = moto::clients().await;
    let config = EvaluateConfig {
        table_name: "unused".into(),
        bucket_name: moto::bucket(&clients).await,
        deliveries_queue_url: moto::queue(&clients).await,
        trigger_cache_max_age: Duration::from_secs(5),
    };
    let wiring = Clients::new()
        .with_database(Database::from_pool(pool.clone()))
        .with_aws(clients);
    let runner = TimerRunner::new(config, &wiring).expect("runner");
    let commits = |pool: PgPool| async move {
        sqlx::query_scalar::<_, i64>(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()",
        )
        .fetch_one(&pool)
        .await
        .unwrap_or(0)
    };
    let before = commits(pool.clone()).await;
    let started = Instant::now();
    let run = runner.run(Utc::now()).await.expect("run");
    let elapsed = started.elapsed();
    let after = commits(pool.clone()).await;
    println!();
    println!(
        "evaluate-timers, one run over {due_count} due absence deadlines: {:.1} s; due {}, fired {}, \
         deliveries sent {} (moto SQS); {} Postgres transactions committed (pg_stat_database, \
         approximate)",
        elapsed.as_secs_f64(),
        run.due,
        run.fired,
        run.enqueued,
        after - before
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
    runtime.block_on(async {
        windowed_kinds().await;
        let (admin, pool, scratch) = scratch_pool(&url).await;
        timer_kinds(&pool).await;
        timers_run(&pool).await;
        pool.close().await;
        let _ = sqlx::query(&format!("DROP DATABASE {scratch}"))
            .execute(&admin)
            .await;
    });
}
