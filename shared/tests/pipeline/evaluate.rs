//! evaluate-events: at most one firing per (trigger, event) however often SQS delivers,
//! deliveries queued once and never lost, cooldowns, the trigger cache, poison messages.

use std::time::Duration;

use serde_json::{Value, json};
use sqlx::PgPool;
use triggeriq::api::{events as event_routes, ingest};
use triggeriq::consumers::evaluate;
use triggeriq::consumers::process_batch;
use triggeriq::delivery::DeliveryStatus;
use triggeriq::dynamodb::{CooldownLock, Table};
use triggeriq::event::EventId;
use triggeriq::ids::Generation;
use triggeriq::pipeline::messages::EventMessage;
use triggeriq::postgres::{deliveries, events, firings, tenants, triggers};
use triggeriq::s3::ClaimCheck;
use triggeriq::tenant::TenantId;
use triggeriq::trigger::{BodyKind, TriggerBody, TriggerId, TriggerLimits};

use super::harness::{DEMO_TENANT, Req, Stack, call, failures, sample, sqs_event, sqs_sample};

fn payment_trigger(url: &str, cooldown: Option<&str>) -> Value {
    let mut body = json!({
        "name": "Payment failed",
        "pattern": {"type": ["payment.failed"]},
        "actions": [{"url": url}]
    });
    if let Some(c) = cooldown {
        body["cooldown"] = json!(c);
    }
    body
}

/// Ingests `events` for `tenant` and takes their messages off the events queue.
async fn ingested(
    stack: &Stack,
    tenant: TenantId,
    events: Value,
) -> Vec<aws_sdk_sqs::types::Message> {
    let count = events["events"].as_array().map_or(1, Vec::len);
    let answer = call(
        &stack.ingest(),
        ingest::ingest,
        Req::new("ingest-events", tenant).body(&events),
    )
    .await;
    assert_eq!(answer.body["accepted"], count, "{}", answer.body);
    stack.take(&stack.events_queue, count).await
}

async fn message_of(stack: &Stack, m: &aws_sdk_sqs::types::Message) -> EventMessage {
    let inner = ClaimCheck::new(stack.clients.s3.clone(), &stack.bucket)
        .unwrap(m.body().unwrap())
        .await
        .unwrap();
    EventMessage::parse(&inner).unwrap()
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(sql)
        .fetch_one(pool)
        .await
        .expect(sql)
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn one_message_processed_three_times_twice_concurrently_fires_once_with_one_delivery(
    pool: PgPool,
) {
    let stack = Stack::new(pool.clone()).await;
    let t = stack.tenant().await;
    let trigger = stack
        .trigger(
            t,
            payment_trigger("https://hooks.example.com/a", Some("1m")),
        )
        .await;
    let messages = ingested(&stack, t, sample_body("ingest-events")).await;
    let evaluator = stack.evaluator();

    let first = process_batch(
        &evaluator,
        sqs_event(&messages),
        evaluate::CONCURRENCY,
        evaluate::handle,
    )
    .await;
    assert!(failures(first).is_empty());
    // SQS delivers the batch again, to two containers at once.
    let (a, b) = (stack.evaluator(), stack.evaluator());
    let (ra, rb) = tokio::join!(
        process_batch(
            &a,
            sqs_event(&messages),
            evaluate::CONCURRENCY,
            evaluate::handle
        ),
        process_batch(
            &b,
            sqs_event(&messages),
            evaluate::CONCURRENCY,
            evaluate::handle
        ),
    );
    assert!(failures(ra).is_empty());
    assert!(failures(rb).is_empty());

    let fired = firings::for_event(&pool, t, &EventId::new("evt_demo_0001"))
        .await
        .unwrap();
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].trigger.id, trigger.id);
    assert_eq!(fired[0].trigger.name, "Payment failed");
    assert_eq!(count(&pool, "SELECT count(*) FROM firings").await, 1);
    assert_eq!(count(&pool, "SELECT count(*) FROM deliveries").await, 1);
    assert_eq!(count(&pool, "SELECT count(*) FROM events").await, 2);
    let kept = events::get(&pool, t, "evt_demo_0001")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept.matched_trigger_ids, vec![trigger.id]);
    let other = events::get(&pool, t, "evt_demo_0002")
        .await
        .unwrap()
        .unwrap();
    assert!(other.matched_trigger_ids.is_empty());
    assert_eq!(stack.take(&stack.deliveries_queue, 1).await.len(), 1);
}

fn sample_body(name: &str) -> Value {
    serde_json::from_str(sample(name)["body"].as_str().unwrap()).unwrap()
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn the_sample_message_fires_the_demo_trigger_and_get_event_shows_it(pool: PgPool) {
    let stack = Stack::new(pool.clone()).await;
    let demo = TenantId::parse(DEMO_TENANT).unwrap();
    tenants::create(&pool, demo, "Demo").await.unwrap();
    // The trigger of the create-trigger sample (amount > 0, one-minute cooldown).
    let body = sample_body("create-trigger");
    let parsed = TriggerBody::parse(&body, BodyKind::Create, &TriggerLimits::default()).unwrap();
    let trigger = triggers::create_with_id(
        &pool,
        demo,
        TriggerId(uuid::Uuid::parse_str("0190f0a0-0000-7000-8000-0000000000f1").unwrap()),
        &parsed.spec,
        (&TriggerLimits::default()).into(),
    )
    .await
    .unwrap();

    let evaluator = stack.evaluator();
    let event: aws_lambda_events::sqs::SqsEvent =
        serde_json::from_value(sample("evaluate-events")).unwrap();
    let response = process_batch(&evaluator, event, evaluate::CONCURRENCY, evaluate::handle).await;
    assert!(failures(response).is_empty());

    let answer = call(
        &stack.reads(),
        event_routes::get,
        Req::new("get-event", demo),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["id"], "evt_demo_0001");
    assert_eq!(answer.body["data"]["amount"], 120);
    assert_eq!(answer.body["time"], "2026-11-25T19:00:00Z");
    assert_eq!(answer.body["received_at"], "2026-11-25T19:00:00.250Z");
    assert_eq!(
        answer.body["matched_trigger_ids"],
        json!([trigger.id.to_string()])
    );
    assert_eq!(
        answer.body["firings"][0]["trigger"]["id"],
        trigger.id.to_string()
    );
    assert_eq!(answer.body["firings"][0]["trigger"]["version"], 1);

    let message = stack.take(&stack.deliveries_queue, 1).await;
    assert_eq!(message.len(), 1);
    let delivery =
        triggeriq::pipeline::messages::DeliveryMessage::parse(message[0].body().unwrap()).unwrap();
    assert_eq!(delivery.tenant_id, demo);
    assert_eq!(delivery.url, "https://hooks.example.com/triggeriq");
    assert_eq!(
        (delivery.key.generation, delivery.attempt),
        (Generation::FIRST, 1)
    );
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn a_delivery_that_missed_the_queue_after_the_commit_is_queued_by_the_redelivery(
    pool: PgPool,
) {
    let stack = Stack::new(pool.clone()).await;
    let t = stack.tenant().await;
    stack
        .trigger(t, payment_trigger("https://hooks.example.com/a", None))
        .await;
    let messages = ingested(
        &stack,
        t,
        json!({"id": "p-1", "type": "payment.failed", "data": {"amount": 5}}),
    )
    .await;
    // The deliveries queue is unreachable for the first evaluation.
    let mut broken = stack.evaluate_config();
    broken.deliveries_queue_url = format!(
        "{}/123456789012/no-such-queue",
        triggeriq::testing::moto::endpoint()
    );
    let failed = process_batch(
        &stack.evaluator_with(broken),
        sqs_event(&messages),
        evaluate::CONCURRENCY,
        evaluate::handle,
    )
    .await;
    assert_eq!(failures(failed).len(), 1, "the message must come back");
    let fired = firings::for_event(&pool, t, &EventId::new("p-1"))
        .await
        .unwrap();
    assert_eq!(fired.len(), 1, "the firing is committed");
    let pending = deliveries::for_firing(&pool, t, fired[0].id).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].status, DeliveryStatus::Pending);

    let evaluator = stack.evaluator();
    for _ in 0..2 {
        let again = process_batch(
            &evaluator,
            sqs_event(&messages),
            evaluate::CONCURRENCY,
            evaluate::handle,
        )
        .await;
        assert!(failures(again).is_empty());
    }
    let queued = stack.take(&stack.deliveries_queue, 1).await;
    assert_eq!(queued.len(), 1, "sent once by the redelivery, not again");
    let delivery =
        triggeriq::pipeline::messages::DeliveryMessage::parse(queued[0].body().unwrap()).unwrap();
    assert_eq!(delivery.key.delivery_id, pending[0].id);
    assert_eq!(count(&pool, "SELECT count(*) FROM firings").await, 1);
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn a_cooldown_stops_later_events_but_never_the_redelivery_of_its_own(pool: PgPool) {
    let stack = Stack::new(pool.clone()).await;
    let t = stack.tenant().await;
    let hourly = stack
        .trigger(
            t,
            payment_trigger("https://hooks.example.com/a", Some("1h")),
        )
        .await;
    let evaluator = stack.evaluator();

    let a = ingested(&stack, t, json!({"id": "a", "type": "payment.failed"})).await;
    let a = message_of(&stack, &a[0]).await;
    let first = evaluator.evaluate(&a).await.unwrap();
    assert_eq!(first.fired.len(), 1);

    let b = ingested(&stack, t, json!({"id": "b", "type": "payment.failed"})).await;
    let b = message_of(&stack, &b[0]).await;
    let second = evaluator.evaluate(&b).await.unwrap();
    assert!(second.fired.is_empty());
    assert_eq!(second.cooling_down, vec![hourly.id]);
    let shown = call(
        &stack.reads(),
        event_routes::get,
        Req::new("get-event", t).id("b"),
    )
    .await;
    // "Cooling down until when": a's firing took the hour's cooldown at a's receipt.
    let until = (a.received_at + chrono::Duration::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    assert_eq!(
        shown.body["matched"],
        json!([{"trigger_id": hourly.id, "outcome": "cooling_down", "until": until}])
    );
    let kept = events::get(&pool, t, "b").await.unwrap().unwrap();
    assert_eq!(
        kept.matched_trigger_ids,
        vec![hourly.id],
        "matched, though it did not fire"
    );

    // A's redelivery neither fires again nor is refused by A's own cooldown.
    let redelivered = evaluator.evaluate(&a).await.unwrap();
    assert!(redelivered.fired.is_empty() && redelivered.cooling_down.is_empty());
    // B's redelivery gets B's answer again.
    let b_again = evaluator.evaluate(&b).await.unwrap();
    assert_eq!(b_again.cooling_down, vec![hourly.id]);

    // An evaluation of C took the cooldown of another trigger and died before committing
    // its firing: C's redelivery still fires it.
    let daily = stack
        .trigger(
            t,
            json!({"name": "Daily", "pattern": {"type": ["payment.failed"]}, "cooldown": "24h",
                   "actions": [{"url": "https://hooks.example.com/b"}]}),
        )
        .await;
    let c = ingested(&stack, t, json!({"id": "c", "type": "payment.failed"})).await;
    let c = message_of(&stack, &c[0]).await;
    let locks = CooldownLock::new(Table::new(stack.clients.dynamodb.clone(), &stack.table));
    assert!(
        locks
            .try_acquire_for(
                t,
                daily.id,
                &EventId::new("c"),
                Duration::from_secs(86_400),
                c.received_at
            )
            .await
            .unwrap()
            .granted()
    );
    let c_result = evaluator.evaluate(&c).await.unwrap();
    let fired_for_c = firings::for_event(&pool, t, &EventId::new("c"))
        .await
        .unwrap();
    assert_eq!(fired_for_c.len(), 1);
    assert_eq!(fired_for_c[0].trigger.id, daily.id);
    assert_eq!(c_result.cooling_down, vec![hourly.id]);
    assert_eq!(count(&pool, "SELECT count(*) FROM firings").await, 2);
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn trigger_changes_reach_the_cache_within_its_bound(pool: PgPool) {
    let stack = Stack::new(pool.clone()).await;
    let t = stack.tenant().await;
    let trigger = stack
        .trigger(t, payment_trigger("https://hooks.example.com/a", None))
        .await;
    let mut config = stack.evaluate_config();
    // Long enough that a loaded machine still evaluates k-2 inside it (300 ms was not, once,
    // with a release build running beside the tests), short enough to wait out.
    config.trigger_cache_max_age = Duration::from_secs(3);
    let evaluator = stack.evaluator_with(config);
    let messages = ingested(
        &stack,
        t,
        json!({"events": [
            {"id": "k-1", "type": "payment.failed"},
            {"id": "k-2", "type": "payment.failed"},
            {"id": "k-3", "type": "payment.failed"}
        ]}),
    )
    .await;
    let mut by_id = std::collections::HashMap::new();
    for m in &messages {
        let message = message_of(&stack, m).await;
        by_id.insert(message.event.id.clone(), message);
    }

    assert_eq!(
        evaluator.evaluate(&by_id["k-1"]).await.unwrap().fired.len(),
        1
    );
    triggers::delete(&pool, t, trigger.id, None).await.unwrap();
    // Within the bound the compiled set may still be the old one…
    let stale = evaluator.evaluate(&by_id["k-2"]).await.unwrap();
    assert_eq!(stale.matched, vec![trigger.id], "served from the cache");
    // …and after it, the revision moved and the deleted trigger is gone.
    tokio::time::sleep(Duration::from_millis(3_100)).await;
    let fresh = evaluator.evaluate(&by_id["k-3"]).await.unwrap();
    assert!(fresh.matched.is_empty(), "{fresh:?}");
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn poison_messages_fail_on_their_own_and_the_rest_of_the_batch_passes(pool: PgPool) {
    let stack = Stack::new(pool.clone()).await;
    let t = stack.tenant().await;
    let good = ingested(&stack, t, json!({"id": "fine", "type": "x"})).await;
    let good_body = good[0].body().unwrap().to_owned();
    let mut newer: Value = serde_json::from_str(&good_body).unwrap();
    newer["inline"]["v"] = json!(2);
    let mut stranger: Value = serde_json::from_str(&good_body).unwrap();
    stranger["inline"]["tenant_id"] = json!(TenantId::new().to_string());
    let event = sqs_sample(
        "evaluate-events",
        &[
            "not json".to_owned(),
            newer.to_string(),
            good_body,
            stranger.to_string(),
            json!({"v": 1, "s3": {"bucket": stack.bucket, "key": "claims/none.json", "size": 3, "sha256": "00"}}).to_string(),
        ],
    );

    let response = process_batch(
        &stack.evaluator(),
        event,
        evaluate::CONCURRENCY,
        evaluate::handle,
    )
    .await;

    assert_eq!(
        failures(response),
        [
            "evaluate-events-0",
            "evaluate-events-1",
            "evaluate-events-3",
            "evaluate-events-4"
        ]
    );
    assert!(events::get(&pool, t, "fine").await.unwrap().is_some());
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn a_cloudevents_batch_is_matched_on_its_extensions_and_kept_and_delivered_as_sent(
    pool: PgPool,
) {
    let stack = Stack::new(pool.clone()).await;
    let t = stack.tenant().await;
    stack
        .trigger(
            t,
            json!({"name": "EU payments", "pattern": {"type": ["payment.failed"], "region": ["eu"]},
                   "actions": [{"url": "https://hooks.example.com/a"}]}),
        )
        .await;
    let body = r#"[{"specversion": "1.0", "id": "ce-1", "type": "payment.failed",
                    "source": "/billing", "region": "eu", "datacontenttype": "application/json",
                    "data": {"amount": 18446744073709551616, "exact": 1.50}},
                   {"specversion": "1.0", "id": "ce-2", "type": "payment.failed",
                    "source": "/billing", "region": "us"}]"#;
    let answer = call(
        &stack.ingest(),
        ingest::ingest,
        Req::new("ingest-events", t)
            .raw_body(body)
            .header("content-type", "application/cloudevents-batch+json"),
    )
    .await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    assert_eq!(answer.body["accepted"], 2, "{}", answer.body);

    let evaluator = stack.evaluator();
    let mut fired = 0;
    for m in stack.take(&stack.events_queue, 2).await {
        fired += evaluator
            .evaluate(&message_of(&stack, &m).await)
            .await
            .unwrap()
            .fired
            .len();
    }
    assert_eq!(fired, 1, "only the event whose extension matches fires");

    // The webhook body carries the event as sent: its extensions, its exact numbers.
    let queued = stack.take(&stack.deliveries_queue, 1).await;
    let delivery =
        triggeriq::pipeline::messages::DeliveryMessage::parse(queued[0].body().unwrap()).unwrap();
    let webhook = delivery.body.get();
    for kept in [
        r#""region":"eu""#,
        r#""specversion":"1.0""#,
        "18446744073709551616",
        r#""exact": 1.50"#,
    ] {
        assert!(webhook.contains(kept), "{kept} in {webhook}");
    }
    // And so does the API.
    let got = call(
        &stack.reads(),
        event_routes::get,
        Req::new("get-event", t).id("ce-1"),
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert!(got.text.contains("18446744073709551616"), "{}", got.text);
    assert_eq!(got.body["region"], "eu");
    assert_eq!(got.body["datacontenttype"], "application/json");
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn an_id_reused_after_the_window_is_not_evaluated_and_the_event_says_so(pool: PgPool) {
    let stack = Stack::new(pool.clone()).await;
    let t = stack.tenant().await;
    stack
        .trigger(t, payment_trigger("https://hooks.example.com/a", None))
        .await;
    let first = ingested(&stack, t, json!({"id": "r-1", "type": "payment.failed"})).await;
    let first = message_of(&stack, &first[0]).await;
    let evaluator = stack.evaluator();
    assert_eq!(evaluator.evaluate(&first).await.unwrap().fired.len(), 1);

    // The same id, a day and an hour later: ingest no longer remembers it.
    let later = EventMessage::new(
        t,
        first.received_at + chrono::Duration::hours(25),
        first.event.clone(),
    );
    let outcome = evaluator.evaluate(&later).await.unwrap();
    assert!(outcome.reused_id && outcome.fired.is_empty());
    // Redelivered: noted once.
    evaluator.evaluate(&later).await.unwrap();

    let got = call(
        &stack.reads(),
        event_routes::get,
        Req::new("get-event", t).id("r-1"),
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(
        got.body["later_receipts"],
        json!([{"received_at": triggeriq::event::format_time(&later.received_at), "outcome": "not_evaluated"}])
    );
    assert_eq!(count(&pool, "SELECT count(*) FROM firings").await, 1);
}

fn failing_payments(customer_events: &[(&str, &str, u32)]) -> Value {
    let events: Vec<Value> = customer_events
        .iter()
        .map(|(id, customer, minute)| {
            json!({"id": id, "type": "payment.failed",
                   "time": format!("2026-04-01T09:{minute:02}:00Z"),
                   "data": {"customer": customer}})
        })
        .collect();
    json!({ "events": events })
}

fn three_in_an_hour() -> Value {
    json!({
        "name": "Payments failing",
        "pattern": {"type": ["payment.failed"]},
        "condition": {"kind": "threshold", "count": 3, "within": "1h",
                      "group_by": ["$.data.customer"]},
        "actions": [{"url": "https://hooks.example.com/a"}]
    })
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn three_failed_payments_of_one_customer_within_an_hour_fire_once_each_time_however_delivered(
    pool: PgPool,
) {
    let stack = Stack::new(pool.clone()).await;
    let t = stack.tenant().await;
    let trigger = stack.trigger(t, three_in_an_hour()).await;
    let messages = ingested(
        &stack,
        t,
        failing_payments(&[
            ("a1", "A", 0),
            ("b1", "B", 1),
            ("a2", "A", 5),
            ("a3", "A", 10),
            ("b2", "B", 12),
            ("a4", "A", 20),
            ("a5", "A", 30),
            ("a6", "A", 40),
            ("a7", "A", 50),
        ]),
    )
    .await;
    // Two containers take the whole batch at once, then SQS delivers it once more.
    let (x, y) = (stack.evaluator(), stack.evaluator());
    let (rx, ry) = tokio::join!(
        process_batch(
            &x,
            sqs_event(&messages),
            evaluate::CONCURRENCY,
            evaluate::handle
        ),
        process_batch(
            &y,
            sqs_event(&messages),
            evaluate::CONCURRENCY,
            evaluate::handle
        ),
    );
    assert!(failures(rx).is_empty());
    assert!(failures(ry).is_empty());
    let again = process_batch(
        &x,
        sqs_event(&messages),
        evaluate::CONCURRENCY,
        evaluate::handle,
    )
    .await;
    assert!(failures(again).is_empty());

    let listed = firings::list(&pool, t, &Default::default(), 50)
        .await
        .unwrap();
    assert_eq!(
        listed.len(),
        2,
        "seven of A's: two crossings; two of B's: none"
    );
    let mut counted = std::collections::HashSet::new();
    for firing in &listed {
        assert_eq!(firing.trigger.id, trigger.id);
        assert_eq!(firing.reasons["condition"], "threshold");
        assert_eq!(firing.reasons["group"], json!(["A"]));
        assert_eq!(firing.reasons["within"], "1h");
        let ids = firing.reasons["event_ids"].as_array().unwrap();
        assert!(ids.len() >= 3, "{}", firing.reasons);
        assert!(
            ids.contains(&json!(firing.event_id.as_str())),
            "the firer is in its span"
        );
        for id in ids {
            assert!(counted.insert(id.clone()), "{id} counted twice");
        }
    }
    assert_eq!(count(&pool, "SELECT count(*) FROM deliveries").await, 2);
    assert_eq!(stack.take(&stack.deliveries_queue, 2).await.len(), 2);
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn a_threshold_keeps_its_window_through_an_action_change_and_restarts_with_a_new_condition(
    pool: PgPool,
) {
    let stack = Stack::new(pool.clone()).await;
    let t = stack.tenant().await;
    let trigger = stack.trigger(t, three_in_an_hour()).await;
    let mut config = stack.evaluate_config();
    config.trigger_cache_max_age = Duration::ZERO;
    let evaluator = stack.evaluator_with(config);
    let messages = ingested(
        &stack,
        t,
        failing_payments(&[
            ("a1", "A", 0),
            ("a2", "A", 1),
            ("a3", "A", 2),
            ("a4", "A", 3),
            ("a5", "A", 4),
            ("a6", "A", 5),
        ]),
    )
    .await;
    let mut by_id = std::collections::HashMap::new();
    for m in &messages {
        let message = message_of(&stack, m).await;
        by_id.insert(message.event.id.as_str().to_owned(), message);
    }
    let limits = TriggerLimits::default();
    let replace = |body: Value, version: i64| {
        let pool = pool.clone();
        let limits = limits.clone();
        async move {
            let parsed = TriggerBody::parse(&body, BodyKind::Replace, &limits).unwrap();
            triggers::replace(
                &pool,
                t,
                trigger.id,
                &parsed.spec,
                version,
                (&limits).into(),
            )
            .await
            .unwrap()
        }
    };
    for id in ["a1", "a2"] {
        let done = evaluator.evaluate(&by_id[id]).await.unwrap();
        assert!(done.fired.is_empty() && done.in_progress == vec![trigger.id]);
    }
    // A rename and a new webhook (as when deliver-webhooks disables an action after a 410):
    // a new version, the same condition version, the same window.
    let mut body = three_in_an_hour();
    body["name"] = json!("Payments failing, renamed");
    body["actions"] = json!([{"url": "https://hooks.example.com/b"}]);
    let renamed = replace(body.clone(), trigger.version).await;
    assert_eq!(
        evaluator.evaluate(&by_id["a3"]).await.unwrap().fired.len(),
        1,
        "a1, a2 and a3 within the hour"
    );
    // A new condition starts afresh.
    body["condition"]["within"] = json!("2h");
    replace(body, renamed.version).await;
    for id in ["a4", "a5"] {
        assert!(
            evaluator
                .evaluate(&by_id[id])
                .await
                .unwrap()
                .fired
                .is_empty()
        );
    }
    assert_eq!(
        evaluator.evaluate(&by_id["a6"]).await.unwrap().fired.len(),
        1,
        "the third since the condition changed"
    );
    let fired = firings::list(&pool, t, &Default::default(), 10)
        .await
        .unwrap();
    let spans: Vec<&Value> = fired.iter().map(|f| &f.reasons["event_ids"]).collect();
    assert!(spans.contains(&&json!(["a1", "a2", "a3"])), "{spans:?}");
    assert!(spans.contains(&&json!(["a4", "a5", "a6"])), "{spans:?}");
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn a_threshold_firing_written_to_its_window_is_recorded_by_the_redelivery_after_a_crash(
    pool: PgPool,
) {
    use triggeriq::condition::Condition;
    use triggeriq::dynamodb::WindowStore;
    use triggeriq::pipeline::conditions::{Conditions, Outcome};

    let stack = Stack::new(pool.clone()).await;
    let t = stack.tenant().await;
    stack.trigger(t, three_in_an_hour()).await;
    let evaluator = stack.evaluator();
    let messages = ingested(
        &stack,
        t,
        failing_payments(&[("a1", "A", 0), ("a2", "A", 5), ("a3", "A", 10)]),
    )
    .await;
    let mut parsed = Vec::new();
    for m in &messages {
        parsed.push(message_of(&stack, m).await);
    }
    parsed.sort_by(|a, b| a.event.id.as_str().cmp(b.event.id.as_str()));
    for m in &parsed[..2] {
        let e = evaluator.evaluate(m).await.unwrap();
        assert_eq!(e.in_progress.len(), 1, "{e:?}");
    }
    // "Why didn't it fire?": the event says how far the condition is.
    let answer = call(
        &stack.reads(),
        event_routes::get,
        Req::new("get-event", t).id("a2"),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        answer.body["matched"][0]["outcome"], "in_progress",
        "{}",
        answer.body
    );
    assert_eq!(
        answer.body["matched"][0]["progress"],
        json!({"reached": 2, "of": 3, "within": "1h"})
    );
    // The first evaluation of a3 writes the firing to the window, then dies before Postgres.
    let pool_ref = evaluator.db.pool().await.unwrap();
    let compiled = evaluator.cache.get(pool_ref, t).await.unwrap().unwrap();
    let event = &parsed[2].event;
    let bytes = serde_json::to_vec(event).unwrap();
    let matched = compiled.matching(&bytes).unwrap();
    let Condition::Threshold(threshold) = &matched[0].condition else {
        panic!("a threshold trigger");
    };
    let table = Table::new(stack.clients.dynamodb.clone(), &stack.table);
    let conditions = Conditions::new(WindowStore::new(table.clone()), CooldownLock::new(table));
    let document = serde_json::to_value(event).unwrap();
    let died = conditions
        .windowed(
            t,
            matched[0],
            triggeriq::condition::Windowed::Threshold(threshold),
            event,
            &document,
            parsed[2].received_at,
        )
        .await
        .unwrap();
    let Outcome::Fire(reason) = died else {
        panic!("the third fires: {died:?}");
    };
    assert_eq!(count(&pool, "SELECT count(*) FROM firings").await, 0);

    // SQS delivers a3 again: the firing is recorded, with the reason the window kept.
    let redelivered = evaluator.evaluate(&parsed[2]).await.unwrap();
    assert_eq!(redelivered.fired.len(), 1);
    let fired = firings::for_event(&pool, t, &EventId::new("a3"))
        .await
        .unwrap();
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].reasons, reason);
    assert_eq!(reason["event_ids"], json!(["a1", "a2", "a3"]));
    // And once more: still one firing, one delivery.
    let third = evaluator.evaluate(&parsed[2]).await.unwrap();
    assert!(third.fired.is_empty());
    assert_eq!(count(&pool, "SELECT count(*) FROM firings").await, 1);
    assert_eq!(count(&pool, "SELECT count(*) FROM deliveries").await, 1);
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn a_sequence_completes_by_event_time_even_when_its_second_step_arrives_first(pool: PgPool) {
    let stack = Stack::new(pool.clone()).await;
    let t = stack.tenant().await;
    let trigger = stack
        .trigger(
            t,
            json!({
                "name": "Trial then limit",
                "pattern": {"source": ["app"]},
                "condition": {"kind": "sequence", "within": "7d", "group_by": ["$.data.account"],
                              "steps": [{"type": ["trial.started"]}, {"type": ["usage.limit_hit"]}]},
                "actions": [{"url": "https://hooks.example.com/a"}]
            }),
        )
        .await;
    let evaluator = stack.evaluator();
    let event = |id: &str, kind: &str, day: u32, account: &str| {
        json!({"id": id, "type": kind, "source": "app",
               "time": format!("2026-04-{day:02}T09:00:00Z"), "data": {"account": account}})
    };
    // The limit (April 5) arrives before the trial start (April 1) of account A; B only hits
    // its limit; a step event from another source is filtered out by the trigger's pattern.
    for body in [
        event("limit-a", "usage.limit_hit", 5, "A"),
        event("limit-b", "usage.limit_hit", 5, "B"),
        json!({"id": "trial-b-elsewhere", "type": "trial.started", "source": "crm",
               "time": "2026-04-01T09:00:00Z", "data": {"account": "B"}}),
        event("trial-a", "trial.started", 1, "A"),
    ] {
        let m = ingested(&stack, t, body).await;
        let m = message_of(&stack, &m[0]).await;
        evaluator.evaluate(&m).await.unwrap();
        // Each delivered twice: a redelivery changes nothing.
        evaluator.evaluate(&m).await.unwrap();
    }
    let listed = firings::list(&pool, t, &Default::default(), 10)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    let firing = &listed[0];
    assert_eq!(firing.trigger.id, trigger.id);
    assert_eq!(
        firing.event_id.as_str(),
        "trial-a",
        "the event that completed it"
    );
    assert_eq!(firing.reasons["condition"], "sequence");
    assert_eq!(firing.reasons["group"], json!(["A"]));
    assert_eq!(firing.reasons["event_ids"], json!(["trial-a", "limit-a"]));
    assert_eq!(
        firing.reasons["steps"][1]["time"],
        "2026-04-05T09:00:00.000Z"
    );
    // B waits for its first step, and says so.
    let shown = call(
        &stack.reads(),
        event_routes::get,
        Req::new("get-event", t).id("limit-b"),
    )
    .await;
    assert_eq!(
        shown.body["matched"][0]["outcome"], "in_progress",
        "{}",
        shown.body
    );
    assert_eq!(
        shown.body["matched"][0]["progress"]["steps_seen"],
        json!([2])
    );
}
