//! Deadline conditions through evaluate-events and evaluate-timers against Postgres: a burst
//! fires once when it is over, a silent group fires once down and once recovered, overlapping
//! and crashed runs fire each deadline once, a late run catches up, and updating a trigger
//! drops its deadlines; a `then_not` fires for the step event nothing followed; a batch over
//! two tenants records and sends each firing once, each with its own event.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::PgPool;
use triggeriq::consumers::{evaluate, process_batch};
use triggeriq::pipeline::messages::{DeliveryMessage, EventMessage};
use triggeriq::postgres::firings;
use triggeriq::s3::ClaimCheck;
use triggeriq::tenant::TenantId;

use super::harness::{Stack, failures, sqs_event};

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(sql)
        .fetch_one(pool)
        .await
        .expect(sql)
}

fn trigger(condition: Value) -> Value {
    json!({
        "name": "Timed",
        "pattern": {"type": ["heartbeat", "error"]},
        "condition": condition,
        "actions": [{"url": "https://hooks.example.com/t"}]
    })
}

/// Ingests `events` and evaluates them all; answers when the last was received.
async fn send(stack: &Stack, t: TenantId, events: Value) -> DateTime<Utc> {
    let count = events.as_array().map_or(1, Vec::len);
    let answer = super::harness::call(
        &stack.ingest(),
        triggeriq::api::ingest::ingest,
        super::harness::Req::new("ingest-events", t).body(&json!({ "events": events })),
    )
    .await;
    assert_eq!(answer.body["accepted"], count, "{}", answer.body);
    let messages = stack.take(&stack.events_queue, count).await;
    let response = process_batch(
        &stack.evaluator(),
        sqs_event(&messages),
        evaluate::CONCURRENCY,
        evaluate::handle,
    )
    .await;
    assert!(failures(response).is_empty());
    let mut latest = DateTime::<Utc>::MIN_UTC;
    for m in &messages {
        let inner = ClaimCheck::new(stack.clients.s3.clone(), &stack.bucket)
            .unwrap(m.body().unwrap())
            .await
            .unwrap();
        latest = latest.max(EventMessage::parse(&inner).unwrap().received_at);
    }
    latest
}

fn minutes(n: i64) -> chrono::Duration {
    chrono::Duration::minutes(n)
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn a_burst_of_errors_fires_once_when_it_is_over_with_every_event_id(pool: PgPool) {
    let stack = Stack::new(pool.clone()).await;
    let t = stack.tenant().await;
    let trigger = stack
        .trigger(
            t,
            trigger(json!({"kind": "debounce", "quiet": "5m", "deliver": "all",
                           "group_by": ["$.subject"]})),
        )
        .await;
    let last = send(
        &stack,
        t,
        json!([
            {"id": "e1", "type": "error", "subject": "checkout"},
            {"id": "e2", "type": "error", "subject": "checkout"},
            {"id": "e3", "type": "error", "subject": "checkout"},
            {"id": "x1", "type": "error", "subject": "search"},
            {"id": "none", "type": "error"}
        ]),
    )
    .await;
    assert_eq!(
        count(&pool, "SELECT count(*) FROM condition_timers").await,
        2,
        "two groups; no subject: no group"
    );
    let runner = stack.timers();
    let early = runner.run(last + minutes(4)).await.unwrap();
    assert_eq!(early.fired, 0, "not quiet for 5 minutes yet");
    let run = runner.run(last + minutes(6)).await.unwrap();
    assert_eq!((run.due, run.fired, run.enqueued), (2, 2, 2));
    let listed = firings::list(&pool, t, &Default::default(), 10)
        .await
        .unwrap();
    let checkout = listed
        .iter()
        .find(|f| f.reasons["group"] == json!(["checkout"]))
        .expect("checkout fired");
    assert_eq!(checkout.trigger.id, trigger.id);
    assert_eq!(checkout.reasons["condition"], "debounce");
    assert_eq!(checkout.reasons["event_count"], 3);
    let mut ids: Vec<String> = checkout.reasons["event_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    assert_eq!(ids, ["e1", "e2", "e3"]);
    assert_eq!(
        count(&pool, "SELECT count(*) FROM condition_timers").await,
        0
    );
    let queued = stack.take(&stack.deliveries_queue, 2).await;
    assert_eq!(queued.len(), 2);
    // Nothing more, however often the schedule runs.
    let later = runner.run(last + minutes(60)).await.unwrap();
    assert_eq!(later.fired, 0);
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn a_silent_device_fires_down_once_and_recovered_when_it_comes_back(pool: PgPool) {
    let stack = Stack::new(pool.clone()).await;
    let t = stack.tenant().await;
    stack
        .trigger(
            t,
            trigger(json!({"kind": "absence", "every": "10m", "grace": "2m",
                           "group_by": ["$.data.device"]})),
        )
        .await;
    let seen = send(
        &stack,
        t,
        json!([{"id": "hb1", "type": "heartbeat", "data": {"device": "d-1"}}]),
    )
    .await;
    let runner = stack.timers();
    assert_eq!(
        runner.run(seen + minutes(11)).await.unwrap().fired,
        0,
        "within grace"
    );
    let down = runner.run(seen + minutes(13)).await.unwrap();
    assert_eq!(down.fired, 1);
    assert_eq!(
        runner.run(seen + minutes(60)).await.unwrap().fired,
        0,
        "down once"
    );
    let fired = firings::list(&pool, t, &Default::default(), 10)
        .await
        .unwrap();
    assert_eq!(fired[0].reasons["state"], "down");
    assert_eq!(fired[0].event_id.as_str(), "hb1");

    send(
        &stack,
        t,
        json!([{"id": "hb2", "type": "heartbeat", "data": {"device": "d-1"}}]),
    )
    .await;
    let fired = firings::list(&pool, t, &Default::default(), 10)
        .await
        .unwrap();
    assert_eq!(fired.len(), 2);
    let recovered = fired
        .iter()
        .find(|f| f.reasons["state"] == "recovered")
        .expect("recovered");
    assert_eq!(recovered.event_id.as_str(), "hb2");
    assert_eq!(stack.take(&stack.deliveries_queue, 2).await.len(), 2);
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn a_cart_without_a_checkout_within_the_hour_fires_and_one_checked_out_even_first_does_not(
    pool: PgPool,
) {
    let stack = Stack::new(pool.clone()).await;
    let t = stack.tenant().await;
    stack
        .trigger(
            t,
            json!({
                "name": "Abandoned cart",
                "pattern": {"source": ["shop"]},
                "condition": {"kind": "sequence", "steps": [{"type": ["cart.created"]}],
                              "then_not": {"type": ["checkout.completed"]},
                              "within": "1h", "group_by": ["$.data.cart"]},
                "actions": [{"url": "https://hooks.example.com/t"}]
            }),
        )
        .await;
    let base = Utc::now() - minutes(1);
    let at = |s: i64| (base + chrono::Duration::seconds(s)).to_rfc3339();
    // Cart 2's checkout is evaluated before its cart (SQS does not order); cart 1 has none.
    send(
        &stack,
        t,
        json!([{"id": "k2", "source": "shop", "type": "checkout.completed", "time": at(30),
                "data": {"cart": 2}}]),
    )
    .await;
    let seen = send(
        &stack,
        t,
        json!([
            {"id": "c1", "source": "shop", "type": "cart.created", "time": at(10), "data": {"cart": 1}},
            {"id": "c2", "source": "shop", "type": "cart.created", "time": at(20), "data": {"cart": 2}}
        ]),
    )
    .await;
    let runner = stack.timers();
    assert_eq!(runner.run(seen + minutes(59)).await.unwrap().fired, 0);
    assert_eq!(runner.run(seen + minutes(61)).await.unwrap().fired, 1);
    assert_eq!(runner.run(seen + minutes(180)).await.unwrap().fired, 0);
    let fired = firings::list(&pool, t, &Default::default(), 10)
        .await
        .unwrap();
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].event_id.as_str(), "c1");
    assert_eq!(fired[0].reasons["state"], "not_followed");
    assert_eq!(fired[0].reasons["group"], json!([1]));
    assert_eq!(stack.take(&stack.deliveries_queue, 1).await.len(), 1);
    assert_eq!(
        count(&pool, "SELECT count(*) FROM condition_timers").await,
        0,
        "the remembered checkout is forgotten after the hour"
    );
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn overlapping_runs_and_a_run_that_dies_fire_each_deadline_once(pool: PgPool) {
    let stack = Stack::new(pool.clone()).await;
    let t = stack.tenant().await;
    stack
        .trigger(
            t,
            trigger(json!({"kind": "absence", "every": "1m", "group_by": ["$.data.device"]})),
        )
        .await;
    let events: Vec<Value> = (0..40)
        .map(|i| json!({"id": format!("hb{i}"), "type": "heartbeat", "data": {"device": i}}))
        .collect();
    let seen = send(&stack, t, Value::Array(events)).await;
    let due_at = seen + minutes(2);

    // A run takes ten rows and dies before committing: its locks hold them meanwhile.
    let mut dying = pool.begin().await.unwrap();
    let held = triggeriq::postgres::timers::due(&mut dying, due_at, 10)
        .await
        .unwrap();
    assert_eq!(held.len(), 10);
    let (a, b) = (stack.timers(), stack.timers());
    let (ra, rb) = tokio::join!(a.run(due_at), b.run(due_at));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(
        ra.fired + rb.fired,
        30,
        "two runs share the thirty rows not held: {ra:?} {rb:?}"
    );
    // It dies: its transaction ends without a commit. (A plain drop would queue the rollback
    // on the connection, and the next run could still find the rows locked.)
    dying.rollback().await.unwrap();
    // The next run (late, as after an outage) takes what the dead run left.
    let late = stack.timers().run(due_at + minutes(30)).await.unwrap();
    assert_eq!(late.fired, 10);
    assert_eq!(count(&pool, "SELECT count(*) FROM firings").await, 40);
    assert_eq!(
        count(&pool, "SELECT count(DISTINCT event_id) FROM firings").await,
        40
    );
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn an_evaluation_redelivered_changes_a_timer_once(pool: PgPool) {
    let stack = Stack::new(pool.clone()).await;
    let t = stack.tenant().await;
    stack
        .trigger(
            t,
            trigger(json!({"kind": "debounce", "quiet": "5m", "deliver": "all"})),
        )
        .await;
    let answer = super::harness::call(
        &stack.ingest(),
        triggeriq::api::ingest::ingest,
        super::harness::Req::new("ingest-events", t).body(
            &json!({"events": [{"id": "e1", "type": "error"}, {"id": "e2", "type": "error"}]}),
        ),
    )
    .await;
    assert_eq!(answer.body["accepted"], 2);
    let messages = stack.take(&stack.events_queue, 2).await;
    for _ in 0..3 {
        let response = process_batch(
            &stack.evaluator(),
            sqs_event(&messages),
            evaluate::CONCURRENCY,
            evaluate::handle,
        )
        .await;
        assert!(failures(response).is_empty());
    }
    let state: Value = sqlx::query_scalar("SELECT state FROM condition_timers")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(state["count"], 2, "{state}");
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn updating_or_deleting_a_trigger_drops_its_deadlines(pool: PgPool) {
    let stack = Stack::new(pool.clone()).await;
    let t = stack.tenant().await;
    let body = trigger(json!({"kind": "absence", "every": "10m"}));
    let kept = stack.trigger(t, body.clone()).await;
    let dropped = stack.trigger(t, body.clone()).await;
    send(&stack, t, json!([{"id": "hb", "type": "heartbeat"}])).await;
    assert_eq!(
        count(&pool, "SELECT count(*) FROM condition_timers").await,
        2
    );

    let limits = triggeriq::trigger::TriggerLimits::default();
    let parsed = triggeriq::trigger::TriggerBody::parse(
        &json!({"name": "Renamed", "pattern": {"type": ["heartbeat"]},
                "condition": {"kind": "absence", "every": "20m"},
                "actions": [{"url": "https://hooks.example.com/t"}]}),
        triggeriq::trigger::BodyKind::Replace,
        &limits,
    )
    .unwrap();
    triggeriq::postgres::triggers::replace(
        &pool,
        t,
        kept.id,
        &parsed.spec,
        kept.version,
        (&limits).into(),
    )
    .await
    .unwrap();
    triggeriq::postgres::triggers::delete(&pool, t, dropped.id, None)
        .await
        .unwrap();
    assert_eq!(
        count(&pool, "SELECT count(*) FROM condition_timers").await,
        0
    );
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn a_delivery_that_never_reached_the_queue_is_swept_once_its_claim_is_stale(pool: PgPool) {
    let stack = Stack::new(pool.clone()).await;
    let t = stack.tenant().await;
    stack
        .trigger(
            t,
            json!({"name": "Every", "pattern": {"type": ["error"]},
                   "actions": [{"url": "https://hooks.example.com/t"}]}),
        )
        .await;
    send(&stack, t, json!([{"id": "e1", "type": "error"}])).await;
    assert_eq!(stack.take(&stack.deliveries_queue, 1).await.len(), 1);
    // As if the sender had died between its commit and its send: claimed, never enqueued.
    sqlx::query("UPDATE deliveries SET enqueued_at = NULL, enqueue_claimed_at = now()")
        .execute(&pool)
        .await
        .unwrap();
    let runner = stack.timers();
    assert_eq!(
        runner.run(Utc::now()).await.unwrap().enqueued,
        0,
        "a fresh claim is its sender's"
    );
    let swept = runner.run(Utc::now() + minutes(3)).await.unwrap();
    assert_eq!(swept.enqueued, 1);
    assert_eq!(stack.take(&stack.deliveries_queue, 1).await.len(), 1);
    assert_eq!(
        runner.run(Utc::now() + minutes(10)).await.unwrap().enqueued,
        0,
        "sent once"
    );
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn one_batch_over_two_tenants_fires_each_deadline_once_and_sends_each_with_its_event(
    pool: PgPool,
) {
    let stack = Stack::new(pool.clone()).await;
    let (a, b) = (stack.tenant().await, stack.tenant().await);
    let absence = trigger(json!({"kind": "absence", "every": "1m", "group_by": ["$.data.device"]}));
    let of_a = stack.trigger(a, absence.clone()).await;
    stack.trigger(b, absence).await;
    let heartbeats = |prefix: &str| {
        Value::Array(
            (0..3)
                .map(|i| json!({"id": format!("{prefix}{i}"), "type": "heartbeat", "data": {"device": i}}))
                .collect(),
        )
    };
    send(&stack, a, heartbeats("a")).await;
    let seen = send(&stack, b, heartbeats("b")).await;
    // One of the six deadlines has its firing recorded already (by whatever got there first):
    // the batch, which records the others in one statement, must neither record nor send it
    // again, and must still move its row on.
    sqlx::query(
        "INSERT INTO firings (id, tenant_id, trigger_id, event_id, trigger_name, trigger_version,
                              matched_at, occasion)
         VALUES ($1, $2, $3, 'a0', 'Timed', $4, now(), 'down')",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(a.as_uuid())
    .bind(of_a.id.0)
    .bind(of_a.version)
    .execute(&pool)
    .await
    .unwrap();

    let run = stack.timers().run(seen + minutes(2)).await.unwrap();
    assert_eq!((run.due, run.fired, run.enqueued), (6, 5, 5), "{run:?}");
    assert_eq!(count(&pool, "SELECT count(*) FROM firings").await, 6);
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM condition_timers WHERE state->>'down' = 'true' AND due_at IS NULL"
        )
        .await,
        6,
        "every row moved on, the one whose firing existed too"
    );
    let queued = stack.take(&stack.deliveries_queue, 5).await;
    assert_eq!(queued.len(), 5);
    let mut sent = Vec::new();
    for message in &queued {
        let delivery = DeliveryMessage::parse(message.body().unwrap()).unwrap();
        let firing = firings::get(&pool, delivery.tenant_id, delivery.key.firing_id)
            .await
            .unwrap()
            .expect("the delivery's firing, of the message's tenant");
        let body = ClaimCheck::new(stack.clients.s3.clone(), &stack.bucket)
            .unwrap(delivery.body.get())
            .await
            .unwrap();
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            body["data"]["event"]["id"],
            firing.event_id.as_str(),
            "each firing is sent with its own event"
        );
        sent.push(firing.event_id.as_str().to_owned());
    }
    sent.sort();
    assert_eq!(sent, ["a1", "a2", "b0", "b1", "b2"]);
}
