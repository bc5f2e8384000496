//! deliver-webhooks and record-deliveries against a receiver on 127.0.0.1: signatures checked
//! by the `standardwebhooks` crate, retries, 410, an exhausted schedule, the DLQ, retry by
//! API, and a 300 KB event through the claim checks.

use std::time::Duration;

use serde_json::{Value, json};
use sqlx::PgPool;
use triggeriq::api::{
    deliveries as delivery_routes, events as event_routes, firings, ingest, signing,
};
use triggeriq::consumers::{process_batch, record};
use triggeriq::pipeline::deliver::Deliverer;
use triggeriq::pipeline::messages::{DeliveryMessage, ResultsQueueMessage, ScheduledRetry};
use triggeriq::pipeline::record::{Processed, Recorder, Released};
use triggeriq::postgres::{tenants, triggers};
use triggeriq::tenant::TenantId;
use triggeriq::trigger::{BodyKind, TriggerBody, TriggerId, TriggerLimits};
use triggeriq::webhook::TargetPolicy;

use super::harness::{Receiver, Req, Stack, call, failures, sample, sqs_event};
use triggeriq::aws::AwsClients;
use triggeriq::config::RetryDeliveryConfig;
use triggeriq::pipeline::redeliver::Redeliverer;
use triggeriq::testing::requests::Answer;
use triggeriq::testing::{faults, openapi};

const NOW: Duration = Duration::ZERO;

/// Checks a webhook body against `components/schemas/WebhookPayload` of `openapi.yaml`.
fn check_payload(body: &Value) {
    let mut schema = openapi::document().clone();
    schema["$ref"] = json!("#/components/schemas/WebhookPayload");
    schema["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
    let validator = jsonschema::validator_for(&schema).expect("schema");
    let errors: Vec<String> = validator.iter_errors(body).map(|e| e.to_string()).collect();
    assert!(
        errors.is_empty(),
        "webhook body disagrees with openapi.yaml: {errors:?}\n{body:#}"
    );
}

/// A tenant with a trigger on `payment.failed` posting to `url`, and its signing secret.
async fn tenant_with_trigger(
    stack: &Stack,
    url: &str,
) -> (TenantId, triggeriq::trigger::Trigger, String) {
    let t = stack.tenant().await;
    let trigger = stack
        .trigger(
            t,
            json!({"name": "Payment failed", "pattern": {"type": ["payment.failed"]},
                   "actions": [{"url": url}]}),
        )
        .await;
    // The tenant's first secret, made with it, as receivers would configure it.
    let shown = call(
        &stack.signing(),
        signing::get,
        Req::new("get-signing-secret", t),
    )
    .await;
    assert_eq!(shown.status, 200, "{}", shown.body);
    let secret = shown.body["secret"].as_str().unwrap().to_owned();
    (t, trigger, secret)
}

/// One field of every attempt of a delivery (as `GET /v1/firings/{id}` shows it), oldest first.
fn attempt_field(delivery: &Value, field: &str) -> Vec<i64> {
    delivery["attempts"]
        .as_array()
        .expect("attempts")
        .iter()
        .map(|a| a[field].as_i64().expect("a number"))
        .collect()
}

async fn fire(stack: &Stack, t: TenantId, event: Value) {
    let answer = call(
        &stack.ingest(),
        ingest::ingest,
        Req::new("ingest-events", t).body(&event),
    )
    .await;
    assert_eq!(answer.body["accepted"], 1, "{}", answer.body);
    let failed = stack.evaluate_all(&stack.evaluator(), 1).await;
    assert!(failed.is_empty(), "{failed:?}");
}

async fn the_firing(stack: &Stack, t: TenantId, event_id: &str) -> Value {
    let event = call(
        &stack.reads(),
        event_routes::get,
        Req::new("get-event", t).id(event_id),
    )
    .await;
    assert_eq!(event.status, 200, "{}", event.body);
    let firing_id = event.body["firings"][0]["id"]
        .as_str()
        .expect("a firing")
        .to_owned();
    let firing = call(
        &stack.reads(),
        firings::get,
        Req::new("get-firing", t).id(&firing_id),
    )
    .await;
    assert_eq!(firing.status, 200, "{}", firing.body);
    firing.body
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn a_receiver_answering_500_twice_then_2xx_gets_three_signed_attempts_and_is_delivered(
    pool: PgPool,
) {
    let stack = Stack::new(pool.clone()).await;
    let receiver = Receiver::start(&[500, 500]).await;
    let (t, trigger, old_secret) = tenant_with_trigger(&stack, &receiver.url("/hook")).await;
    // The receiver still has the secret from before the latest rotation: during the overlap
    // webhooks carry a signature for each, so it keeps verifying.
    receiver.trust(&old_secret);
    let rotated = call(
        &stack.signing(),
        signing::rotate,
        Req::new("rotate-signing-secret", t),
    )
    .await;
    assert_ne!(rotated.body["secret"].as_str().unwrap(), old_secret);

    fire(
        &stack,
        t,
        json!({"id": "pay-1", "type": "payment.failed", "data": {"amount": 42}}),
    )
    .await;
    stack
        .deliver_all(&stack.deliverer(&[NOW, NOW, NOW]), &stack.recorder())
        .await;

    let received = receiver.received();
    assert_eq!(received.len(), 3);
    assert!(
        received.iter().all(|r| r.verified),
        "every attempt verifies"
    );
    let ids: Vec<&str> = received.iter().map(|r| r.header("webhook-id")).collect();
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "webhook-id is stable: {ids:?}"
    );
    assert_eq!(
        received[0].header("webhook-signature").split(' ').count(),
        2
    );
    let body = received[2].json();
    check_payload(&body);
    assert_eq!(body["type"], "trigger.fired");
    assert_eq!(body["data"]["trigger"]["id"], trigger.id.to_string());
    assert_eq!(body["data"]["trigger"]["name"], "Payment failed");
    assert_eq!(body["data"]["event"]["id"], "pay-1");
    assert_eq!(body["data"]["event"]["data"]["amount"], 42);
    assert_eq!(body["data"]["reasons"], json!([]));
    assert_eq!(
        received[0].body, received[2].body,
        "every attempt sends the same bytes"
    );

    let firing = the_firing(&stack, t, "pay-1").await;
    let delivery = &firing["deliveries"][0];
    assert_eq!(delivery["id"], ids[0]);
    assert_eq!(delivery["status"], "delivered");
    assert_eq!(delivery["attempt_count"], 3);
    assert_eq!(delivery["last_status_code"], 204);
    let attempts = delivery["attempts"].as_array().unwrap();
    assert_eq!(attempt_field(delivery, "status_code"), [500, 500, 204]);
    let outcomes: Vec<&str> = attempts
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["retrying", "retrying", "delivered"]);
    assert_eq!(attempts[0]["response_snippet"], "answer 500");
    assert!(
        attempts
            .iter()
            .all(|a| a["latency_ms"].as_i64().unwrap() >= 0)
    );
    assert!(stack.take(&stack.dead_letters, 0).await.is_empty());
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn a_410_disables_the_action_and_records_why(pool: PgPool) {
    let stack = Stack::new(pool.clone()).await;
    let receiver = Receiver::start(&[]).await;
    let (t, trigger, secret) = tenant_with_trigger(&stack, &receiver.url("/gone")).await;
    receiver.trust(&secret);
    let revision = tenants::trigger_revision(&pool, t).await.unwrap().unwrap();

    fire(&stack, t, json!({"id": "pay-1", "type": "payment.failed"})).await;
    stack
        .deliver_all(&stack.deliverer(&[NOW, NOW]), &stack.recorder())
        .await;

    assert_eq!(receiver.received().len(), 1, "no retry after 410");
    let firing = the_firing(&stack, t, "pay-1").await;
    assert_eq!(firing["deliveries"][0]["status"], "disabled");
    assert!(
        firing["deliveries"][0]["final_reason"]
            .as_str()
            .unwrap()
            .contains("410"),
        "{firing}"
    );
    let after = triggers::get(&pool, t, trigger.id).await.unwrap().unwrap();
    assert!(!after.actions[0].enabled);
    assert!(
        after.actions[0]
            .disabled_reason
            .as_deref()
            .unwrap()
            .contains("410")
    );
    assert_eq!(after.version, trigger.version + 1);
    assert_eq!(
        tenants::trigger_revision(&pool, t).await.unwrap().unwrap(),
        revision + 1
    );
    assert!(stack.take(&stack.dead_letters, 0).await.is_empty());

    // The next matching event fires, but there is no enabled action left to deliver to.
    fire(&stack, t, json!({"id": "pay-2", "type": "payment.failed"})).await;
    assert!(stack.take(&stack.deliveries_queue, 0).await.is_empty());
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn an_exhausted_schedule_fails_the_delivery_outside_the_dlq_and_retry_delivers_it(
    pool: PgPool,
) {
    let stack = Stack::new(pool.clone()).await;
    let receiver = Receiver::start(&[500, 503, 500]).await;
    let (t, _, secret) = tenant_with_trigger(&stack, &receiver.url("/hook")).await;
    receiver.trust(&secret);
    let deliverer = stack.deliverer(&[NOW]);
    let recorder = stack.recorder();

    fire(&stack, t, json!({"id": "pay-1", "type": "payment.failed"})).await;
    stack.deliver_all(&deliverer, &recorder).await;

    let firing = the_firing(&stack, t, "pay-1").await;
    let delivery = &firing["deliveries"][0];
    assert_eq!(delivery["status"], "failed");
    assert!(
        delivery["final_reason"]
            .as_str()
            .unwrap()
            .contains("after 2 attempts"),
        "{delivery}"
    );
    // The failure is in Postgres; the DLQ (which pages operators) holds poison only.
    assert!(stack.take(&stack.dead_letters, 0).await.is_empty());
    assert!(stack.take(&stack.results_queue, 0).await.is_empty());

    let delivery_id = delivery["id"].as_str().unwrap().to_owned();
    let retried = call(
        &stack.retry_api(),
        delivery_routes::retry,
        Req::new("retry-delivery", t).id(&delivery_id),
    )
    .await;
    assert_eq!(retried.status, 202, "{}", retried.body);
    assert_eq!(retried.body["status"], "pending");
    assert_eq!(retried.body["generation"], 2);
    // While it is pending, another retry is refused.
    let busy = call(
        &stack.retry_api(),
        delivery_routes::retry,
        Req::new("retry-delivery", t).id(&delivery_id),
    )
    .await;
    assert_eq!(busy.status, 409, "{}", busy.body);

    stack.deliver_all(&deliverer, &recorder).await;
    let firing = the_firing(&stack, t, "pay-1").await;
    let delivery = &firing["deliveries"][0];
    assert_eq!(delivery["status"], "delivered", "{delivery}");
    assert_eq!(delivery["generation"], 2);
    assert_eq!(delivery["attempt_count"], 4);
    let generations = attempt_field(delivery, "generation");
    assert_eq!(generations, [1, 1, 2, 2]);
    let delivered_again = call(
        &stack.retry_api(),
        delivery_routes::retry,
        Req::new("retry-delivery", t).id(&delivery_id),
    )
    .await;
    assert_eq!(delivered_again.status, 409);
    assert_eq!(receiver.received().len(), 4);
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn a_tenant_that_never_rotated_gets_signed_webhooks_and_a_rotation_makes_them_verifiable(
    pool: PgPool,
) {
    let stack = Stack::new(pool.clone()).await;
    let receiver = Receiver::start(&[]).await;
    let t = stack.tenant().await;
    stack
        .trigger(
            t,
            json!({"name": "P", "pattern": {"type": ["payment.failed"]},
                   "actions": [{"url": receiver.url("/hook")}]}),
        )
        .await;
    fire(&stack, t, json!({"id": "pay-1", "type": "payment.failed"})).await;
    let deliverer = stack.deliverer(&[NOW, NOW]);
    let recorder = stack.recorder();

    // The first webhook is signed with a secret made for the tenant, which the receiver
    // cannot know yet: it refuses it, and the delivery is retried.
    let first = stack.take(&stack.deliveries_queue, 1).await;
    stack.deliver(&deliverer, &first).await;
    stack.record_all(&recorder).await;
    let received = receiver.received();
    assert_eq!(received.len(), 1);
    assert!(received[0].header("webhook-signature").starts_with("v1,"));
    assert!(!received[0].verified);

    // The tenant rotates and configures the receiver with the secret it was shown.
    let rotated = call(
        &stack.signing(),
        signing::rotate,
        Req::new("rotate-signing-secret", t),
    )
    .await;
    receiver.trust(rotated.body["secret"].as_str().unwrap());
    stack.deliver_all(&deliverer, &recorder).await;

    let received = receiver.received();
    assert_eq!(received.len(), 2);
    assert!(received[1].verified);
    assert_eq!(
        received[1].header("webhook-signature").split(' ').count(),
        2
    );
    let firing = the_firing(&stack, t, "pay-1").await;
    let delivery = &firing["deliveries"][0];
    assert_eq!(delivery["status"], "delivered");
    let codes = attempt_field(delivery, "status_code");
    assert_eq!(codes, [401, 204]);
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn a_300_kb_event_travels_through_the_claim_checks_and_arrives_whole(pool: PgPool) {
    let stack = Stack::new(pool.clone()).await;
    let receiver = Receiver::start(&[]).await;
    let (t, _, secret) = tenant_with_trigger(&stack, &receiver.url("/hook")).await;
    receiver.trust(&secret);
    let blob: String = (0..300 * 1024)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let event = json!({"id": "big-1", "type": "payment.failed", "data": {"blob": blob, "n": 1}});

    let answer = call(
        &stack.ingest(),
        ingest::ingest,
        Req::new("ingest-events", t).body(&event),
    )
    .await;
    assert_eq!(answer.body["accepted"], 1, "{}", answer.body);
    let queued = stack.take(&stack.events_queue, 1).await;
    let envelope: Value = serde_json::from_str(queued[0].body().unwrap()).unwrap();
    assert!(envelope["s3"]["key"].is_string(), "the event went to S3");
    assert!(queued[0].body().unwrap().len() < 1024);
    let failed = process_batch(
        &stack.evaluator(),
        sqs_event(&queued),
        triggeriq::consumers::evaluate::CONCURRENCY,
        triggeriq::consumers::evaluate::handle,
    )
    .await;
    assert!(failures(failed).is_empty());

    // The webhook body is as large: it goes to S3 too, and the delivery message stays small.
    let deliveries = stack.take(&stack.deliveries_queue, 1).await;
    let message = DeliveryMessage::parse(deliveries[0].body().unwrap()).unwrap();
    let body_envelope: Value = serde_json::from_str(message.body.get()).unwrap();
    assert!(
        body_envelope["s3"]["key"].is_string(),
        "the webhook body went to S3"
    );
    stack.deliver(&stack.deliverer(&[NOW]), &deliveries).await;
    stack.record_all(&stack.recorder()).await;

    let received = receiver.received();
    assert_eq!(received.len(), 1);
    assert!(received[0].verified);
    let body = received[0].json();
    check_payload(&body);
    assert_eq!(
        body["data"]["event"]["data"]["blob"].as_str(),
        Some(blob.as_str())
    );
    let kept = call(
        &stack.reads(),
        event_routes::get,
        Req::new("get-event", t).id("big-1"),
    )
    .await;
    assert_eq!(kept.body["data"]["blob"].as_str(), Some(blob.as_str()));
    assert_eq!(kept.body["firings"].as_array().unwrap().len(), 1);
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn the_consumer_samples_parse_and_a_result_for_an_unknown_delivery_is_dropped(pool: PgPool) {
    let deliveries = sample("deliver-webhooks");
    for record in deliveries["Records"].as_array().unwrap() {
        DeliveryMessage::parse(record["body"].as_str().unwrap())
            .unwrap_or_else(|e| panic!("events/deliver-webhooks.json: {e}"));
    }
    let results = sample("record-deliveries");
    let kinds: Vec<&str> = results["Records"]
        .as_array()
        .unwrap()
        .iter()
        .map(
            |record| match ResultsQueueMessage::parse(record["body"].as_str().unwrap()) {
                Ok(ResultsQueueMessage::Report(_)) => "report",
                Ok(ResultsQueueMessage::Retry(_)) => "retry",
                Err(e) => panic!("events/record-deliveries.json: {e}"),
            },
        )
        .collect();
    assert_eq!(kinds, ["report", "retry"]);
    let stack = Stack::new(pool).await;
    let event: aws_lambda_events::sqs::SqsEvent = serde_json::from_value(results).unwrap();
    let response = process_batch(
        &stack.recorder(),
        event,
        record::CONCURRENCY,
        record::handle,
    )
    .await;
    assert!(failures(response).is_empty());
    assert!(stack.take(&stack.deliveries_queue, 0).await.is_empty());
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn retry_after_lengthens_the_wait_and_a_message_not_yet_due_only_hops(pool: PgPool) {
    let stack = Stack::new(pool.clone()).await;
    let receiver = Receiver::start(&[]).await;
    let (t, _, secret) = tenant_with_trigger(&stack, &receiver.url("/busy")).await;
    receiver.trust(&secret);
    fire(&stack, t, json!({"id": "pay-1", "type": "payment.failed"})).await;
    let queued = stack.take(&stack.deliveries_queue, 1).await;
    let before = chrono::Utc::now();
    let deliverer = stack.deliverer(&[Duration::from_secs(5)]);
    stack.deliver(&deliverer, &queued).await;
    stack.record_all(&stack.recorder()).await;

    // The receiver asked for 120 s, more than the schedule's 5 s: the wait is 120 s.
    let firing = the_firing(&stack, t, "pay-1").await;
    let delivery = &firing["deliveries"][0];
    assert_eq!(delivery["status"], "pending");
    assert_eq!(delivery["last_status_code"], 503);
    let next: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(delivery["next_attempt_at"].clone()).unwrap();
    let wait = (next - before).num_seconds();
    assert!((119..=125).contains(&wait), "{wait}");
    // The retry waits on the results queue, delayed: nothing to receive anywhere yet.
    assert!(stack.take(&stack.deliveries_queue, 0).await.is_empty());
    assert!(stack.take(&stack.results_queue, 0).await.is_empty());

    // A delivery message whose time has not come is handed to record-deliveries, which holds
    // the waits: no attempt, no report.
    let mut later = DeliveryMessage::parse(queued[0].body().unwrap()).unwrap();
    later.attempt = 2;
    later.not_before = Some(chrono::Utc::now() + chrono::Duration::hours(10));
    let early = super::harness::sqs_sample("deliver-webhooks", &[later.to_json()]);
    let failed = process_batch(
        &deliverer,
        early,
        triggeriq::consumers::deliver::CONCURRENCY,
        triggeriq::consumers::deliver::handle,
    )
    .await;
    assert!(failures(failed).is_empty());
    assert_eq!(receiver.received().len(), 1, "no attempt before its time");
    // record-deliveries re-sends a retry that is not due with at most 15 minutes' delay.
    let hop = stack
        .recorder()
        .process(&ScheduledRetry::to_json(&later))
        .await
        .unwrap();
    assert_eq!(
        hop,
        Processed::Retry(Released::Waiting { delay_seconds: 900 })
    );
    assert!(stack.take(&stack.deliveries_queue, 0).await.is_empty());
    let attributes = stack
        .clients
        .sqs
        .get_queue_attributes()
        .queue_url(&stack.results_queue)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .unwrap();
    let delayed = attributes
        .attributes()
        .and_then(|a| {
            a.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        })
        .cloned();
    assert_eq!(
        delayed.as_deref(),
        Some("3"),
        "the retry, deliver's hand-over and record's hop wait on the results queue"
    );
}

/// The local stack's trigger limits (receivers on 127.0.0.1).
fn local_limits() -> TriggerLimits {
    TriggerLimits {
        webhook_targets: TargetPolicy::local_development(),
        ..TriggerLimits::default()
    }
}

/// The tenant changes the (first) action of a trigger: its URL, whether it is on.
async fn change_action(
    stack: &Stack,
    t: TenantId,
    trigger_id: TriggerId,
    url: &str,
    enabled: bool,
) {
    let current = triggers::get(&stack.pool, t, trigger_id)
        .await
        .unwrap()
        .expect("the trigger");
    let body = json!({
        "name": current.name,
        "pattern": current.pattern,
        "actions": [{"id": current.actions[0].id.to_string(), "url": url, "enabled": enabled}],
    });
    let limits = local_limits();
    let parsed = TriggerBody::parse(&body, BodyKind::Replace, &limits).expect("a valid change");
    triggers::replace(
        &stack.pool,
        t,
        trigger_id,
        &parsed.spec,
        current.version,
        (&limits).into(),
    )
    .await
    .expect("changed");
}

/// Every delivery of the firings of `event_id`, by trigger.
async fn deliveries_by_trigger(stack: &Stack, t: TenantId, event_id: &str) -> Vec<(String, Value)> {
    let event = call(
        &stack.reads(),
        event_routes::get,
        Req::new("get-event", t).id(event_id),
    )
    .await;
    let mut out = Vec::new();
    for firing in event.body["firings"].as_array().expect("firings") {
        let id = firing["id"].as_str().unwrap();
        let got = call(
            &stack.reads(),
            firings::get,
            Req::new("get-firing", t).id(id),
        )
        .await;
        assert_eq!(got.status, 200, "{}", got.body);
        let trigger = got.body["trigger"]["id"].as_str().unwrap().to_owned();
        out.push((trigger, got.body["deliveries"][0].clone()));
    }
    out
}

const WAIT: Duration = Duration::from_secs(3);

/// Makes the first attempt of the `n` deliveries on the queue and records their reports; the
/// next attempts, which wait `WAIT` on the results queue, are taken once due but not released:
/// the test decides what happens between the attempts, then gives them to record-deliveries.
async fn attempt_and_hold_the_retries(
    stack: &Stack,
    deliverer: &Deliverer,
    recorder: &Recorder,
    n: usize,
) -> Vec<String> {
    let queued = stack.take(&stack.deliveries_queue, n).await;
    assert_eq!(queued.len(), n);
    stack.deliver(deliverer, &queued).await;
    let (mut reports, mut retries) = (0, Vec::new());
    while reports < n || retries.len() < n {
        let taken = stack.take(&stack.results_queue, 1).await;
        assert!(
            !taken.is_empty(),
            "{reports} reports, {} retries",
            retries.len()
        );
        for message in taken {
            let body = message.body().unwrap().to_owned();
            if body.contains("\"retry\"") {
                retries.push(body);
            } else {
                recorder.process(&body).await.expect("recorded");
                reports += 1;
            }
        }
    }
    retries
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn a_retry_goes_to_the_url_the_action_has_when_it_is_due(pool: PgPool) {
    let stack = Stack::new(pool.clone()).await;
    let receiver = Receiver::start(&[]).await;
    let (t, trigger, secret) = tenant_with_trigger(&stack, &receiver.url("/error")).await;
    receiver.trust(&secret);
    let (deliverer, recorder) = (stack.deliverer(&[WAIT]), stack.recorder());

    fire(&stack, t, json!({"id": "pay-1", "type": "payment.failed"})).await;
    let retries = attempt_and_hold_the_retries(&stack, &deliverer, &recorder, 1).await;
    // Between the attempts, the tenant points the action at its new endpoint.
    change_action(&stack, t, trigger.id, &receiver.url("/hook"), true).await;
    let released = recorder.process(&retries[0]).await.unwrap();
    assert_eq!(
        released,
        Processed::Retry(Released::Sent {
            url: receiver.url("/hook")
        })
    );
    stack.deliver_all(&deliverer, &recorder).await;

    let paths: Vec<String> = receiver.received().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/error", "/hook"]);
    let delivery = &the_firing(&stack, t, "pay-1").await["deliveries"][0];
    assert_eq!(delivery["status"], "delivered", "{delivery}");
    assert_eq!(delivery["url"], receiver.url("/hook"));
    let codes = attempt_field(delivery, "status_code");
    assert_eq!(codes, [500, 204]);
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn no_attempt_is_made_once_the_action_is_disabled_or_deleted(pool: PgPool) {
    let stack = Stack::new(pool.clone()).await;
    let receiver = Receiver::start(&[]).await;
    let (t, disabled, secret) = tenant_with_trigger(&stack, &receiver.url("/error")).await;
    receiver.trust(&secret);
    let deleted = stack
        .trigger(
            t,
            json!({"name": "Also payment failed", "pattern": {"type": ["payment.failed"]},
                   "actions": [{"url": receiver.url("/error")}]}),
        )
        .await;
    let (deliverer, recorder) = (stack.deliverer(&[WAIT, WAIT]), stack.recorder());

    fire(&stack, t, json!({"id": "pay-1", "type": "payment.failed"})).await;
    let retries = attempt_and_hold_the_retries(&stack, &deliverer, &recorder, 2).await;
    assert_eq!(receiver.received().len(), 2, "one attempt each");
    change_action(&stack, t, disabled.id, &receiver.url("/error"), false).await;
    triggers::delete(&pool, t, deleted.id, None).await.unwrap();
    for retry in &retries {
        let released = recorder.process(retry).await.unwrap();
        assert!(
            matches!(released, Processed::Retry(Released::Ended(_))),
            "{released:?}"
        );
    }
    stack.deliver_all(&deliverer, &recorder).await;

    assert_eq!(receiver.received().len(), 2, "no attempt after the change");
    for (trigger, delivery) in deliveries_by_trigger(&stack, t, "pay-1").await {
        let reason = delivery["final_reason"].as_str().unwrap_or_default();
        if trigger == disabled.id.to_string() {
            assert_eq!(delivery["status"], "disabled", "{delivery}");
            assert!(reason.contains("disabled before attempt 2"), "{reason}");
        } else {
            assert_eq!(delivery["status"], "failed", "{delivery}");
            assert!(
                reason.contains("trigger was deleted before attempt 2"),
                "{reason}"
            );
        }
        assert_eq!(delivery["next_attempt_at"], Value::Null);
    }
    assert!(stack.take(&stack.deliveries_queue, 0).await.is_empty());
    assert!(stack.take(&stack.results_queue, 0).await.is_empty());
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn a_410_from_a_url_the_action_no_longer_has_does_not_disable_it(pool: PgPool) {
    let stack = Stack::new(pool.clone()).await;
    let receiver = Receiver::start(&[]).await;
    let (t, trigger, secret) = tenant_with_trigger(&stack, &receiver.url("/gone")).await;
    receiver.trust(&secret);
    fire(&stack, t, json!({"id": "pay-1", "type": "payment.failed"})).await;
    let queued = stack.take(&stack.deliveries_queue, 1).await;
    stack.deliver(&stack.deliverer(&[NOW]), &queued).await;
    // The old endpoint answered 410; before it is recorded, the tenant moved the action.
    change_action(&stack, t, trigger.id, &receiver.url("/hook"), true).await;
    let revision = tenants::trigger_revision(&pool, t).await.unwrap().unwrap();
    stack.record_now(&stack.recorder()).await;

    let after = triggers::get(&pool, t, trigger.id).await.unwrap().unwrap();
    assert!(after.actions[0].enabled, "the new URL was never asked");
    assert_eq!(after.actions[0].disabled_reason, None);
    assert_eq!(after.actions[0].url.as_str(), receiver.url("/hook"));
    assert_eq!(
        after.version,
        trigger.version + 1,
        "only the tenant's change"
    );
    assert_eq!(
        tenants::trigger_revision(&pool, t).await.unwrap().unwrap(),
        revision
    );
    let delivery = &the_firing(&stack, t, "pay-1").await["deliveries"][0];
    assert_eq!(delivery["status"], "failed", "{delivery}");
    let reason = delivery["final_reason"].as_str().unwrap();
    assert!(
        reason.contains("410") && reason.contains("another URL"),
        "{reason}"
    );

    // As the reason says: a retry sends it to the action's URL now.
    let id = delivery["id"].as_str().unwrap().to_owned();
    let retried = retry(&stack, t, &id).await;
    assert_eq!(retried.status, 202, "{}", retried.body);
    assert_eq!(retried.body["url"], receiver.url("/hook"));
    stack
        .deliver_all(&stack.deliverer(&[NOW]), &stack.recorder())
        .await;
    let paths: Vec<String> = receiver.received().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/gone", "/hook"]);
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn each_scheduled_attempt_is_released_once_and_a_stale_release_is_sent_again(pool: PgPool) {
    let stack = Stack::new(pool.clone()).await;
    let receiver = Receiver::start(&[500, 500, 500]).await;
    let (t, _, secret) = tenant_with_trigger(&stack, &receiver.url("/hook")).await;
    receiver.trust(&secret);
    let (deliverer, recorder) = (stack.deliverer(&[NOW, NOW, NOW]), stack.recorder());
    fire(&stack, t, json!({"id": "pay-1", "type": "payment.failed"})).await;
    let first = stack.take(&stack.deliveries_queue, 1).await;
    stack.deliver(&deliverer, &first).await;
    let results = stack.take(&stack.results_queue, 2).await;
    assert_eq!(results.len(), 2, "the report and the next attempt");
    let (retries, reports): (Vec<String>, Vec<String>) = results
        .iter()
        .map(|m| m.body().unwrap().to_owned())
        .partition(|b| b.contains("\"retry\""));
    let (retry, report) = (&retries[0], &reports[0]);
    recorder.process(report).await.unwrap();

    // Released once, however often its message comes.
    let first_release = recorder.process(retry).await.unwrap();
    assert!(
        matches!(first_release, Processed::Retry(Released::Sent { .. })),
        "{first_release:?}"
    );
    assert_eq!(
        recorder.process(retry).await.unwrap(),
        Processed::Retry(Released::Dropped("this attempt was released already"))
    );
    assert_eq!(stack.take(&stack.deliveries_queue, 1).await.len(), 1);

    // A consumer that claimed the release and died before noting the send: while its claim is
    // fresh the message comes back later; once stale, the attempt is sent again (at least
    // once), and the schedule still goes on as one chain.
    sqlx::query("UPDATE deliveries SET enqueued_at = NULL, enqueue_claimed_at = now()")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(
        recorder.process(retry).await.unwrap(),
        Processed::Retry(Released::Dropped(
            "another consumer is releasing this attempt"
        ))
    );
    sqlx::query("UPDATE deliveries SET enqueue_claimed_at = now() - interval '3 minutes'")
        .execute(&pool)
        .await
        .unwrap();
    assert!(matches!(
        recorder.process(retry).await.unwrap(),
        Processed::Retry(Released::Sent { .. })
    ));
    // Two copies of attempt 2 on the queue: both are made, only one attempt 3 follows.
    let copies = stack.take(&stack.deliveries_queue, 1).await;
    assert_eq!(copies.len(), 1);
    let failed = process_batch(
        &deliverer,
        sqs_event(&[copies[0].clone(), copies[0].clone()]),
        1,
        triggeriq::consumers::deliver::handle,
    )
    .await;
    assert!(failures(failed).is_empty());
    stack.deliver_all(&deliverer, &recorder).await;

    let received = receiver.received();
    let delivery = &the_firing(&stack, t, "pay-1").await["deliveries"][0];
    assert_eq!(delivery["status"], "delivered", "{delivery}");
    let attempts = attempt_field(delivery, "attempt");
    assert_eq!(attempts, [1, 2, 2, 3], "attempt 2 twice, attempt 3 once");
    assert_eq!(received.len(), 4);
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn a_receiver_answering_nul_bytes_is_recorded_not_left_pending(pool: PgPool) {
    let stack = Stack::new(pool.clone()).await;
    let receiver = Receiver::start(&[]).await;
    let (t, _, secret) = tenant_with_trigger(&stack, &receiver.url("/nul")).await;
    receiver.trust(&secret);
    fire(&stack, t, json!({"id": "pay-1", "type": "payment.failed"})).await;
    stack
        .deliver_all(&stack.deliverer(&[NOW]), &stack.recorder())
        .await;

    let delivery = &the_firing(&stack, t, "pay-1").await["deliveries"][0];
    assert_eq!(delivery["status"], "delivered", "{delivery}");
    assert_eq!(
        delivery["attempts"][0]["response_snippet"],
        "ok\\u{0000}\\u{0000} \\u{001b}[31mred\\u{007f}"
    );
    assert!(stack.take(&stack.results_queue, 0).await.is_empty());
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn a_report_postgres_refuses_is_recorded_escaped_not_retried_forever(pool: PgPool) {
    // The fault: a value Postgres refuses whatever its text (a time before 4713 BC).
    let refused = sqlx::query("SELECT $1::timestamptz")
        .bind(chrono::DateTime::<chrono::Utc>::MIN_UTC)
        .execute(&pool)
        .await
        .unwrap_err();
    assert!(triggeriq::postgres::is_invalid_input(&refused), "{refused}");
    let nul = sqlx::query("SELECT $1::text")
        .bind("a\0b")
        .execute(&pool)
        .await
        .unwrap_err();
    assert!(triggeriq::postgres::is_invalid_input(&nul), "{nul}");

    let stack = Stack::new(pool.clone()).await;
    let receiver = Receiver::start(&[]).await;
    let (t, _, secret) = tenant_with_trigger(&stack, &receiver.url("/hook")).await;
    receiver.trust(&secret);
    fire(&stack, t, json!({"id": "pay-1", "type": "payment.failed"})).await;
    stack
        .deliver(
            &stack.deliverer(&[NOW]),
            &stack.take(&stack.deliveries_queue, 1).await,
        )
        .await;
    let reports = stack.take(&stack.results_queue, 1).await;
    let ResultsQueueMessage::Report(mut report) =
        ResultsQueueMessage::parse(reports[0].body().unwrap()).unwrap()
    else {
        panic!("a report");
    };
    report.outcome.started_at = chrono::DateTime::<chrono::Utc>::MIN_UTC;
    report.outcome.response_snippet = Some("accepted \u{0}".into());
    let message = triggeriq::pipeline::messages::DeliveryResultMessage::new(report).to_json();

    let recorder = stack.recorder();
    let recorded = recorder
        .process(&message)
        .await
        .expect("recorded, not failed");
    assert_eq!(
        recorded,
        Processed::Report(triggeriq::pipeline::record::Recorded::Applied)
    );
    let delivery = &the_firing(&stack, t, "pay-1").await["deliveries"][0];
    assert_eq!(delivery["status"], "delivered", "{delivery}");
    assert_eq!(
        delivery["attempts"][0]["response_snippet"],
        "accepted \\u{0000}"
    );
    // Its redelivery is a duplicate, recorded once.
    assert_eq!(
        recorder.process(&message).await.unwrap(),
        Processed::Report(triggeriq::pipeline::record::Recorded::AlreadyRecorded)
    );
}

async fn retry(stack: &Stack, t: TenantId, delivery_id: &str) -> Answer {
    retry_with(&stack.retry_api(), t, delivery_id).await
}

async fn retry_with(api: &Redeliverer, t: TenantId, delivery_id: &str) -> Answer {
    call(
        api,
        delivery_routes::retry,
        Req::new("retry-delivery", t).id(delivery_id),
    )
    .await
}

/// A tenant whose one delivery of `pay-1` failed after a single attempt (answered 500): its id.
async fn one_failed_delivery(stack: &Stack, receiver: &Receiver) -> (TenantId, TriggerId, String) {
    let (t, trigger, secret) = tenant_with_trigger(stack, &receiver.url("/hook")).await;
    receiver.trust(&secret);
    fire(stack, t, json!({"id": "pay-1", "type": "payment.failed"})).await;
    stack
        .deliver_all(&stack.deliverer(&[]), &stack.recorder())
        .await;
    let delivery = &the_firing(stack, t, "pay-1").await["deliveries"][0];
    assert_eq!(delivery["status"], "failed", "{delivery}");
    (t, trigger.id, delivery["id"].as_str().unwrap().to_owned())
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn retry_delivery_commits_before_it_sends_so_a_failed_send_or_a_crash_stays_retryable(
    pool: PgPool,
) {
    let stack = Stack::new(pool.clone()).await;
    let receiver = Receiver::start(&[500]).await;
    let (t, _, id) = one_failed_delivery(&stack, &receiver).await;

    // SQS refuses the send: 503, and the new generation is already committed (no row lock was
    // held across the send), pending and unsent with its claim given back.
    let (sqs, fault) = faults::sqs_failing(&stack.clients.sqs, "SendMessageBatch");
    let faulty = AwsClients {
        sqs: sqs.into(),
        ..stack.clients.clone()
    };
    let config = RetryDeliveryConfig {
        bucket_name: stack.bucket.clone(),
        deliveries_queue_url: stack.deliveries_queue.clone(),
    };
    let failing = Redeliverer::new(config, &stack.wiring_with(&faulty)).unwrap();
    let refused = retry_with(&failing, t, &id).await;
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert!(fault.calls() >= 1);
    let delivery = &the_firing(&stack, t, "pay-1").await["deliveries"][0];
    assert_eq!(delivery["status"], "pending");
    assert_eq!(delivery["generation"], 2);
    assert!(stack.take(&stack.deliveries_queue, 0).await.is_empty());
    // Nobody is sending it: a retry is accepted at once.
    let accepted = retry(&stack, t, &id).await;
    assert_eq!(accepted.status, 202, "{}", accepted.body);
    assert_eq!(accepted.body["generation"], 3);
    assert_eq!(stack.take(&stack.deliveries_queue, 1).await.len(), 1);

    // A crash between the commit and the send (the message taken above stands for the one
    // never sent): while the claim is fresh, the delivery is on its way; once stale, a retry is
    // accepted.
    sqlx::query("UPDATE deliveries SET enqueued_at = NULL, enqueue_claimed_at = now()")
        .execute(&pool)
        .await
        .unwrap();
    let on_its_way = retry(&stack, t, &id).await;
    assert_eq!(on_its_way.status, 409, "{}", on_its_way.body);
    sqlx::query("UPDATE deliveries SET enqueue_claimed_at = now() - interval '3 minutes'")
        .execute(&pool)
        .await
        .unwrap();
    let recovered = retry(&stack, t, &id).await;
    assert_eq!(recovered.status, 202, "{}", recovered.body);
    assert_eq!(recovered.body["generation"], 4);
    stack
        .deliver_all(&stack.deliverer(&[NOW]), &stack.recorder())
        .await;
    let delivery = &the_firing(&stack, t, "pay-1").await["deliveries"][0];
    assert_eq!(delivery["status"], "delivered", "{delivery}");
    assert_eq!(attempt_field(delivery, "generation"), [1, 4]);
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn a_pending_delivery_whose_next_attempt_is_long_overdue_can_be_retried(pool: PgPool) {
    let stack = Stack::new(pool.clone()).await;
    let receiver = Receiver::start(&[500]).await;
    let (t, _, secret) = tenant_with_trigger(&stack, &receiver.url("/hook")).await;
    receiver.trust(&secret);
    fire(&stack, t, json!({"id": "pay-1", "type": "payment.failed"})).await;
    let first = stack.take(&stack.deliveries_queue, 1).await;
    stack
        .deliver(&stack.deliverer(&[Duration::from_secs(3600)]), &first)
        .await;
    stack.record_now(&stack.recorder()).await;
    let delivery = &the_firing(&stack, t, "pay-1").await["deliveries"][0];
    assert_eq!(delivery["status"], "pending");
    let id = delivery["id"].as_str().unwrap().to_owned();
    // Its next attempt is an hour away: on its way, not retryable.
    let early = retry(&stack, t, &id).await;
    assert_eq!(early.status, 409, "{}", early.body);
    assert!(
        early.body["detail"]
            .as_str()
            .unwrap()
            .contains("15 minutes overdue"),
        "{}",
        early.body
    );

    // The waiting retry is lost (its message gone) and its time passed 20 minutes ago.
    sqlx::query("UPDATE deliveries SET next_attempt_at = now() - interval '20 minutes'")
        .execute(&pool)
        .await
        .unwrap();
    let retried = retry(&stack, t, &id).await;
    assert_eq!(retried.status, 202, "{}", retried.body);
    assert_eq!(retried.body["generation"], 2);
    stack
        .deliver_all(&stack.deliverer(&[NOW]), &stack.recorder())
        .await;
    let delivery = &the_firing(&stack, t, "pay-1").await["deliveries"][0];
    assert_eq!(delivery["status"], "delivered", "{delivery}");
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn retry_delivery_refuses_while_the_action_is_disabled_or_gone(pool: PgPool) {
    let stack = Stack::new(pool.clone()).await;
    let receiver = Receiver::start(&[500]).await;
    let (t, trigger_id, id) = one_failed_delivery(&stack, &receiver).await;

    change_action(&stack, t, trigger_id, &receiver.url("/hook"), false).await;
    let disabled = retry(&stack, t, &id).await;
    assert_eq!(disabled.status, 409, "{}", disabled.body);
    assert!(
        disabled.body["detail"]
            .as_str()
            .unwrap()
            .contains("enable it")
    );
    change_action(&stack, t, trigger_id, &receiver.url("/hook"), true).await;
    assert_eq!(retry(&stack, t, &id).await.status, 202);
    stack
        .deliver_all(&stack.deliverer(&[NOW]), &stack.recorder())
        .await;

    let other = stack
        .trigger(
            t,
            json!({"name": "To delete", "pattern": {"type": ["refund.failed"]},
                   "actions": [{"url": receiver.url("/error")}]}),
        )
        .await;
    fire(&stack, t, json!({"id": "ref-1", "type": "refund.failed"})).await;
    stack
        .deliver_all(&stack.deliverer(&[]), &stack.recorder())
        .await;
    let failed = &the_firing(&stack, t, "ref-1").await["deliveries"][0];
    assert_eq!(failed["status"], "failed");
    triggers::delete(&pool, t, other.id, None).await.unwrap();
    let gone = retry(&stack, t, failed["id"].as_str().unwrap()).await;
    assert_eq!(gone.status, 409, "{}", gone.body);
    assert!(gone.body["detail"].as_str().unwrap().contains("deleted"));
}

// ------------------------------------------------------------------ GET /v1/signing-secret

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn the_secret_get_signing_secret_shows_is_the_one_that_signs_the_tenants_webhooks(
    pool: PgPool,
) {
    let stack = Stack::new(pool.clone()).await;
    let receiver = Receiver::start(&[]).await;
    let t = stack.tenant_without_secret().await;
    stack
        .trigger(
            t,
            json!({"name": "Payment failed", "pattern": {"type": ["payment.failed"]},
                   "actions": [{"url": receiver.url("/hook")}]}),
        )
        .await;
    // A tenant without a secret yet (made before tenant create made one) gets it made now.
    assert!(stack.secrets().get(t).await.expect("read").is_none());
    let shown = call(
        &stack.signing(),
        signing::get,
        Req::new("get-signing-secret", t),
    )
    .await;
    assert_eq!(shown.status, 200, "{}", shown.body);
    assert_eq!(
        shown.header("cache-control"),
        Some("no-store"),
        "a secret is never cached"
    );
    let secret = shown.body["secret"].as_str().expect("secret").to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert!(
        shown.body.get("previous_secrets_valid_until").is_none(),
        "no replaced secret signs: {}",
        shown.body
    );
    let stored = stack.secrets().get(t).await.expect("read").expect("made");
    assert_eq!(stored.current.expose(), secret);
    // Reading again shows the same secret: a read never replaces it.
    let again = call(
        &stack.signing(),
        signing::get,
        Req::new("get-signing-secret", t),
    )
    .await;
    assert_eq!(again.body["secret"], secret.as_str());
    assert_eq!(again.body["created_at"], shown.body["created_at"]);

    receiver.trust(&secret);
    fire(
        &stack,
        t,
        json!({"id": "pay-get", "type": "payment.failed", "data": {"amount": 7}}),
    )
    .await;
    stack
        .deliver_all(&stack.deliverer(&[NOW]), &stack.recorder())
        .await;
    let received = receiver.received();
    assert_eq!(received.len(), 1);
    assert!(received[0].verified, "signed with the secret GET showed");
    assert_eq!(
        received[0].header("webhook-signature").split(' ').count(),
        1,
        "one secret, one signature"
    );

    // After a rotation GET shows the new secret and until when the replaced one signs too.
    let rotated = call(
        &stack.signing(),
        signing::rotate,
        Req::new("rotate-signing-secret", t),
    )
    .await;
    assert_eq!(rotated.header("cache-control"), Some("no-store"));
    let after = call(
        &stack.signing(),
        signing::get,
        Req::new("get-signing-secret", t),
    )
    .await;
    assert_eq!(after.status, 200, "{}", after.body);
    assert_eq!(after.body["secret"], rotated.body["secret"]);
    assert_ne!(after.body["secret"], secret.as_str());
    let until = |v: &Value| {
        chrono::DateTime::parse_from_rfc3339(
            v["previous_secrets_valid_until"]
                .as_str()
                .unwrap_or_else(|| panic!("{v}")),
        )
        .expect("a time")
        .timestamp()
    };
    // The rotation answers with microseconds, the store keeps seconds.
    assert_eq!(until(&after.body), until(&rotated.body));
}

// ------------------------------------------------------------------ sealed secrets

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn a_tenant_without_a_secret_gets_no_unsigned_webhook_and_is_delivered_once_it_has_one(
    pool: PgPool,
) {
    let stack = Stack::new(pool.clone()).await;
    let receiver = Receiver::start(&[]).await;
    // Created before `tenant create` made the first secret.
    let t = stack.tenant_without_secret().await;
    stack
        .trigger(
            t,
            json!({"name": "Payment failed", "pattern": {"type": ["payment.failed"]},
                   "actions": [{"url": receiver.url("/hook")}]}),
        )
        .await;
    fire(
        &stack,
        t,
        json!({"id": "pay-nosecret", "type": "payment.failed", "data": {"amount": 7}}),
    )
    .await;
    let messages = stack.take(&stack.deliveries_queue, 1).await;
    assert_eq!(messages.len(), 1);
    let body = messages[0].body().expect("body").to_owned();
    // deliver-webhooks may only open secrets: the message fails (it comes back), nothing is
    // sent, and no secret was made.
    let deliverer = stack.deliverer(&[NOW]);
    let failed = deliverer.process(&body).await;
    assert!(
        matches!(failed, Err(triggeriq::pipeline::StageError::Transient(_))),
        "{failed:?}"
    );
    assert!(receiver.received().is_empty(), "nothing unsigned went out");
    assert!(stack.secrets().get(t).await.expect("read").is_none());

    // The operator runs `tenant seal-secrets` (the same store call): the message, delivered
    // again, is signed with the new secret.
    stack
        .secrets()
        .seal_legacy(t, chrono::Utc::now())
        .await
        .expect("sealed");
    let secret = stack.secrets().get(t).await.expect("read").expect("made");
    receiver.trust(secret.current.expose());
    deliverer.process(&body).await.expect("delivered");
    let received = receiver.received();
    assert_eq!(received.len(), 1);
    assert!(received[0].verified);
}
