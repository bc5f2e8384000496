//! deliver-webhooks and record-deliveries against a receiver on 127.0.0.1: signatures checked
//! by the `standardwebhooks` crate, retries, 410, an exhausted schedule, the DLQ, retry by
//! API, and a 300 KB event through the claim checks.

use std::time::Duration;

use serde_json::{Value, json};
use sqlx::PgPool;
use triggeriq::api::{
    deliveries as delivery_routes, events as event_routes, firings, ingest, signing,
};
use triggeriq::consumers::process_batch;
use triggeriq::consumers::record::{self, Recorder};
use triggeriq::pipeline::messages::{DeliveryMessage, DeliveryResultMessage};
use triggeriq::postgres::{tenants, triggers};
use triggeriq::tenant::TenantId;

use super::harness::{Receiver, Req, Stack, call, failures, sample, sqs_event};
use super::openapi;

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
    let rotated = call(
        &stack.signing(),
        signing::rotate,
        Req::new("rotate-signing-secret", t),
    )
    .await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let secret = rotated.body["secret"].as_str().unwrap().to_owned();
    (t, trigger, secret)
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
    let codes: Vec<i64> = attempts
        .iter()
        .map(|a| a["status_code"].as_i64().unwrap())
        .collect();
    assert_eq!(codes, [500, 500, 204]);
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
async fn an_exhausted_schedule_fails_the_delivery_into_the_dlq_and_retry_delivers_it(pool: PgPool) {
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
    let parked = stack.take(&stack.dead_letters, 1).await;
    assert_eq!(parked.len(), 1);
    let parked = DeliveryMessage::parse(parked[0].body().unwrap()).unwrap();
    assert_eq!(
        parked.delivery_id.to_string(),
        delivery["id"].as_str().unwrap()
    );

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
    let generations: Vec<i64> = delivery["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["generation"].as_i64().unwrap())
        .collect();
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
    let failed = process_batch(
        &deliverer,
        sqs_event(&first),
        triggeriq::consumers::deliver::CONCURRENCY,
        triggeriq::consumers::deliver::Deliverer::handle,
    )
    .await;
    assert!(failures(failed).is_empty());
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
    let codes: Vec<i64> = delivery["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status_code"].as_i64().unwrap())
        .collect();
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
        triggeriq::consumers::evaluate::Evaluator::handle,
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
    let failed = process_batch(
        &stack.deliverer(&[NOW]),
        sqs_event(&deliveries),
        triggeriq::consumers::deliver::CONCURRENCY,
        triggeriq::consumers::deliver::Deliverer::handle,
    )
    .await;
    assert!(failures(failed).is_empty());
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
    for (name, parse) in [
        (
            "deliver-webhooks",
            (|b: &str| DeliveryMessage::parse(b).map(|_| ())) as fn(&str) -> _,
        ),
        ("record-deliveries", |b: &str| {
            DeliveryResultMessage::parse(b).map(|_| ())
        }),
    ] {
        let body = sample(name)["Records"][0]["body"]
            .as_str()
            .unwrap()
            .to_owned();
        parse(&body).unwrap_or_else(|e| panic!("events/{name}.json: {e}"));
    }
    let event: aws_lambda_events::sqs::SqsEvent =
        serde_json::from_value(sample("record-deliveries")).unwrap();
    let recorder = Recorder::new(triggeriq::postgres::Database::from_pool(pool));
    let response = process_batch(&recorder, event, record::CONCURRENCY, Recorder::handle).await;
    assert!(failures(response).is_empty());
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
    let failed = process_batch(
        &deliverer,
        sqs_event(&queued),
        triggeriq::consumers::deliver::CONCURRENCY,
        triggeriq::consumers::deliver::Deliverer::handle,
    )
    .await;
    assert!(failures(failed).is_empty());
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
    // The retry is on the queue, delayed: nothing to receive yet.
    assert!(stack.take(&stack.deliveries_queue, 0).await.is_empty());

    // A message whose time has not come is re-sent with a delay of at most 15 minutes, and
    // no attempt is made.
    let mut later = DeliveryMessage::parse(queued[0].body().unwrap()).unwrap();
    later.attempt = 2;
    later.not_before = Some(chrono::Utc::now() + chrono::Duration::hours(10));
    let early = super::harness::sqs_sample("deliver-webhooks", &[later.to_json()]);
    let failed = process_batch(
        &deliverer,
        early,
        triggeriq::consumers::deliver::CONCURRENCY,
        triggeriq::consumers::deliver::Deliverer::handle,
    )
    .await;
    assert!(failures(failed).is_empty());
    assert_eq!(receiver.received().len(), 1, "no attempt before its time");
    assert!(stack.take(&stack.results_queue, 0).await.is_empty());
    let attributes = stack
        .clients
        .sqs
        .get_queue_attributes()
        .queue_url(&stack.deliveries_queue)
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
        Some("2"),
        "the retry and the hop wait on the queue"
    );
}
