//! ingest-events: outcomes per event, duplicates, limits, rate limiting, and SQS failing in
//! the middle of a batch.

use std::time::Duration;

use aws_sdk_sqs::operation::send_message_batch::{
    SendMessageBatchError, SendMessageBatchInput, SendMessageBatchOutput,
};
use aws_sdk_sqs::types::SendMessageBatchResultEntry;
use aws_sdk_sqs::types::error::RequestThrottled;
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use aws_smithy_types::error::ErrorMetadata;
use chrono::{SubsecRound as _, Utc};
use serde_json::{Value, json};
use sqlx::PgPool;
use triggeriq::api::ingest;
use triggeriq::aws::{AwsClients, AwsOptions};
use triggeriq::dynamodb::{Claim, IdempotencyStore, Table};
use triggeriq::event::EventId;
use triggeriq::pipeline::messages::EventMessage;
use triggeriq::s3::ClaimCheck;
use triggeriq::testing::faults::dynamodb_failing;

use super::harness::{Req, Stack, call};

fn statuses(body: &Value) -> Vec<String> {
    body["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["status"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn batch(ids: impl IntoIterator<Item = String>) -> Value {
    json!({"events": ids.into_iter().map(|id| json!({"id": id, "type": "order.created", "data": {"n": 1}})).collect::<Vec<_>>()})
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn the_sample_batch_is_accepted_and_every_event_is_on_the_queue(pool: PgPool) {
    let stack = Stack::new(pool).await;
    let t = stack.tenant().await;
    let api = stack.ingest();

    let answer = call(&api, ingest::ingest, Req::new("ingest-events", t)).await;

    assert_eq!(answer.status, 202, "{}", answer.body);
    assert_eq!(answer.body["accepted"], 2);
    assert_eq!(answer.body["rejected"], 0);
    assert_eq!(statuses(&answer.body), ["accepted", "accepted"]);
    assert_eq!(answer.body["events"][0]["id"], "evt_demo_0001");
    let queued = stack.take(&stack.events_queue, 2).await;
    assert_eq!(queued.len(), 2);
    let claims = ClaimCheck::new(stack.clients.s3.clone(), &stack.bucket);
    let mut ids = Vec::new();
    for message in queued {
        let inner = claims.unwrap(message.body().unwrap()).await.unwrap();
        let event = EventMessage::parse(&inner).unwrap();
        assert_eq!(event.tenant_id, t);
        ids.push(event.event.id.to_string());
    }
    ids.sort();
    assert_eq!(ids, ["evt_demo_0001", "evt_demo_0002"]);
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn a_repeated_id_is_answered_as_a_duplicate_and_not_queued_again(pool: PgPool) {
    let stack = Stack::new(pool).await;
    let t = stack.tenant().await;
    let api = stack.ingest();

    let first = call(&api, ingest::ingest, Req::new("ingest-events", t)).await;
    assert_eq!(first.body["accepted"], 2);
    let again = call(&api, ingest::ingest, Req::new("ingest-events", t)).await;
    assert_eq!(again.status, 202, "{}", again.body);
    assert_eq!(statuses(&again.body), ["duplicate", "duplicate"]);
    assert_eq!(again.body["duplicates"], 2);

    // Within one request, the repeat shares the first one's fate.
    let twice = call(
        &api,
        ingest::ingest,
        Req::new("ingest-events", t).body(&batch(["x-1".into(), "x-1".into()])),
    )
    .await;
    assert_eq!(statuses(&twice.body), ["accepted", "duplicate"]);

    // Another tenant's ids are its own.
    let other = stack.tenant().await;
    let theirs = call(&api, ingest::ingest, Req::new("ingest-events", other)).await;
    assert_eq!(statuses(&theirs.body), ["accepted", "accepted"]);

    assert_eq!(stack.take(&stack.events_queue, 5).await.len(), 5);
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn invalid_events_are_rejected_with_their_paths_and_the_others_accepted(pool: PgPool) {
    let stack = Stack::new(pool).await;
    let t = stack.tenant().await;
    let api = stack.ingest();

    let mixed = json!({"events": [
        {"id": "ok-1", "type": "a"},
        {"id": "bad-1", "time": "yesterday"},
        {"type": "b", "Colour": "red"}
    ]});
    let answer = call(
        &api,
        ingest::ingest,
        Req::new("ingest-events", t).body(&mixed),
    )
    .await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    assert_eq!(statuses(&answer.body), ["accepted", "rejected", "rejected"]);
    let bad = &answer.body["events"][1];
    assert_eq!(bad["id"], "bad-1");
    assert_eq!(bad["retryable"], false);
    let paths: Vec<&str> = bad["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["$.events[1].type", "$.events[1].time"]);
    assert_eq!(
        answer.body["events"][2]["errors"][0]["path"],
        "$.events[2].Colour"
    );

    // Nothing valid at all: a validation problem listing everything.
    let none = json!({"events": [{"id": 1}, {"type": ""}]});
    let refused = call(
        &api,
        ingest::ingest,
        Req::new("ingest-events", t).body(&none),
    )
    .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert_eq!(
        refused.error_paths(),
        ["$.events[0].id", "$.events[0].type", "$.events[1].type"]
    );
    let single = call(
        &api,
        ingest::ingest,
        Req::new("ingest-events", t).body(&json!({"source": "x"})),
    )
    .await;
    assert_eq!(single.status, 422);
    assert_eq!(single.error_paths(), ["$.type"]);

    let envelope = call(
        &api,
        ingest::ingest,
        Req::new("ingest-events", t).body(&json!({"events": []})),
    )
    .await;
    assert_eq!(envelope.status, 422);
    assert_eq!(envelope.error_paths(), ["$.events"]);

    assert_eq!(stack.take(&stack.events_queue, 1).await.len(), 1);
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn bodies_and_events_over_their_limits_answer_413_naming_the_events(pool: PgPool) {
    let stack = Stack::new(pool).await;
    let t = stack.tenant().await;
    let api = stack.ingest();

    let big = "x".repeat(1024 * 1024 + 10);
    let body = json!({"events": [
        {"type": "small"},
        {"type": "large", "data": {"blob": big}},
    ]});
    let answer = call(
        &api,
        ingest::ingest,
        Req::new("ingest-events", t).body(&body),
    )
    .await;
    assert_eq!(answer.status, 413, "{}", answer.body);
    assert_eq!(answer.error_paths(), ["$.events[1]"]);
    assert!(
        answer.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("at most 1048576 bytes"),
        "{}",
        answer.body
    );

    let huge = json!({"events": (0..6).map(|_| json!({"type": "t", "data": "y".repeat(1_000_000)})).collect::<Vec<_>>()});
    let answer = call(
        &api,
        ingest::ingest,
        Req::new("ingest-events", t).body(&huge),
    )
    .await;
    assert_eq!(answer.status, 413);

    let plain = call(
        &api,
        ingest::ingest,
        Req::new("ingest-events", t).header("content-type", "text/plain"),
    )
    .await;
    assert_eq!(plain.status, 415);
    let broken = call(
        &api,
        ingest::ingest,
        Req::new("ingest-events", t).raw_body("{\"events\": ["),
    )
    .await;
    assert_eq!(broken.status, 400);
    assert!(stack.take(&stack.events_queue, 0).await.is_empty());
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn a_tenant_over_its_rate_gets_429_with_retry_after(pool: PgPool) {
    let stack = Stack::new(pool).await;
    let t = stack.tenant().await;
    let mut config = stack.ingest_config();
    config.rate_burst = 3;
    config.rate_per_second = 0.01;
    let api = stack.ingest_with(&stack.clients, config);

    let ok = call(&api, ingest::ingest, Req::new("ingest-events", t)).await;
    assert_eq!(ok.status, 202);
    // Two tokens are gone; a request for two more events is refused as a whole.
    let limited = call(
        &api,
        ingest::ingest,
        Req::new("ingest-events", t).body(&batch(["r-1".into(), "r-2".into()])),
    )
    .await;
    assert_eq!(limited.status, 429, "{}", limited.body);
    let wait: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((90..=101).contains(&wait), "one token per 100 s: {wait}");
    // Invalid events cost nothing: they are refused for what they are, not for the rate.
    let invalid = call(
        &api,
        ingest::ingest,
        Req::new("ingest-events", t).body(&json!({"events": [{"id": "no-type"}]})),
    )
    .await;
    assert_eq!(invalid.status, 422);
    // Another tenant has its own bucket.
    let other = stack.tenant().await;
    let theirs = call(&api, ingest::ingest, Req::new("ingest-events", other)).await;
    assert_eq!(theirs.status, 202);
    assert_eq!(stack.take(&stack.events_queue, 4).await.len(), 4);
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn an_event_without_id_or_time_gets_a_uuid_v7_and_the_receipt_time(pool: PgPool) {
    let stack = Stack::new(pool).await;
    let t = stack.tenant().await;
    let api = stack.ingest();
    let before = Utc::now();
    let answer = call(
        &api,
        ingest::ingest,
        Req::new("ingest-events", t).body(&json!({"type": "ping"})),
    )
    .await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    let id = answer.body["events"][0]["id"].as_str().unwrap();
    assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 7);
    let queued = stack.take(&stack.events_queue, 1).await;
    let inner = ClaimCheck::new(stack.clients.s3.clone(), &stack.bucket)
        .unwrap(queued[0].body().unwrap())
        .await
        .unwrap();
    let message = EventMessage::parse(&inner).unwrap();
    assert_eq!(message.event.id.as_str(), id);
    assert_eq!(message.event.time, message.received_at);
    assert!(message.received_at >= before - chrono::Duration::milliseconds(1));
}

// ------------------------------------------------------------------ SQS failing mid-batch

fn answer_all(input: &SendMessageBatchInput) -> SendMessageBatchOutput {
    let mut output = SendMessageBatchOutput::builder()
        .set_successful(Some(Vec::new()))
        .set_failed(Some(Vec::new()));
    for entry in input.entries() {
        output = output.successful(
            SendMessageBatchResultEntry::builder()
                .id(entry.id())
                .message_id(format!("mid-{}", entry.id()))
                .md5_of_message_body("0")
                .build()
                .unwrap(),
        );
    }
    output.build().unwrap()
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn sqs_failing_mid_batch_rejects_exactly_those_events_and_releases_their_claims(
    pool: PgPool,
) {
    let stack = Stack::new(pool).await;
    let t = stack.tenant().await;
    // 25 events: calls of 10, 10 and 5; the second is throttled on every try.
    let throttled = mock!(aws_sdk_sqs::Client::send_message_batch)
        .match_requests(|input| {
            input
                .entries()
                .first()
                .is_some_and(|e| e.message_body().contains(r#""id":"e10""#))
        })
        .then_error(|| {
            SendMessageBatchError::RequestThrottled(
                RequestThrottled::builder()
                    .message("Rate exceeded")
                    .meta(
                        ErrorMetadata::builder()
                            .code("RequestThrottled")
                            .message("Rate exceeded")
                            .build(),
                    )
                    .build(),
            )
        });
    let fine = mock!(aws_sdk_sqs::Client::send_message_batch).then_compute_output(answer_all);
    let sqs = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, [&throttled, &fine], |c| c
        .retry_config(
            aws_config::retry::RetryConfig::standard()
                .with_max_attempts(2)
                .with_initial_backoff(Duration::from_millis(1))
        ));
    let faulty = AwsClients {
        sqs: sqs.into(),
        ..stack.clients.clone()
    };
    let api = stack.ingest_with(&faulty, stack.ingest_config());
    let ids: Vec<String> = (0..25).map(|i| format!("e{i}")).collect();

    let answer = call(
        &api,
        ingest::ingest,
        Req::new("ingest-events", t).body(&batch(ids.clone())),
    )
    .await;

    assert_eq!(answer.status, 202, "{}", answer.body);
    assert_eq!(answer.body["accepted"], 15);
    assert_eq!(answer.body["rejected"], 10);
    for (i, outcome) in answer.body["events"].as_array().unwrap().iter().enumerate() {
        if (10..20).contains(&i) {
            assert_eq!(outcome["status"], "rejected", "e{i}");
            assert_eq!(outcome["retryable"], true, "e{i}");
            assert_eq!(outcome["errors"][0]["path"], format!("$.events[{i}]"));
        } else {
            assert_eq!(outcome["status"], "accepted", "e{i}");
        }
    }
    assert!(throttled.num_calls() >= 1);

    // The rejected events left no idempotency claim behind: their ids can be claimed again,
    // while the accepted ones are still claimed.
    let store = IdempotencyStore::new(Table::new(stack.clients.dynamodb.clone(), &stack.table));
    let day = Duration::from_secs(86_400);
    for i in [0, 9, 20, 24] {
        let claim = store
            .claim(t, &EventId::new(format!("e{i}")), day, Utc::now())
            .await
            .unwrap();
        assert!(matches!(claim, Claim::Duplicate { .. }), "e{i}: {claim:?}");
    }
    // So the client's retry of the rejected ten is accepted, not called a duplicate.
    let retry = call(
        &stack.ingest(),
        ingest::ingest,
        Req::new("ingest-events", t).body(&batch(ids[10..20].to_vec())),
    )
    .await;
    assert_eq!(retry.body["accepted"], 10, "{}", retry.body);
    assert_eq!(stack.take(&stack.events_queue, 10).await.len(), 10);

    // Nothing queued at all: 503 with Retry-After, never 202.
    let down = mock!(aws_sdk_sqs::Client::send_message_batch).then_error(|| {
        SendMessageBatchError::RequestThrottled(
            RequestThrottled::builder()
                .message("Rate exceeded")
                .meta(ErrorMetadata::builder().code("RequestThrottled").build())
                .build(),
        )
    });
    let sqs = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, [&down], |c| c
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(1)));
    let api = stack.ingest_with(
        &AwsClients {
            sqs: sqs.into(),
            ..stack.clients.clone()
        },
        stack.ingest_config(),
    );
    let refused = call(
        &api,
        ingest::ingest,
        Req::new("ingest-events", t).body(&batch(["z-1".into(), "z-2".into()])),
    )
    .await;
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert_eq!(refused.error_paths(), ["$.events[0]", "$.events[1]"]);
    let again = store
        .claim(t, &EventId::new("z-1"), day, Utc::now())
        .await
        .unwrap();
    assert!(matches!(again, Claim::Claimed(_)), "{again:?}");
}

// ------------------------------------------------------------------ never lost, never a false duplicate

/// The ids of the events now on the events queue (taken off it).
async fn queued_ids(stack: &Stack, expected: usize) -> Vec<String> {
    let claims = ClaimCheck::new(stack.clients.s3.clone(), &stack.bucket);
    let mut ids = Vec::new();
    for message in stack.take(&stack.events_queue, expected).await {
        let inner = claims.unwrap(message.body().unwrap()).await.unwrap();
        ids.push(EventMessage::parse(&inner).unwrap().event.id.to_string());
    }
    ids.sort();
    ids
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn a_retry_after_a_crash_between_claim_and_send_is_queued_not_called_a_duplicate(
    pool: PgPool,
) {
    let stack = Stack::new(pool).await;
    let t = stack.tenant().await;
    // A first request claimed the event, then died (or is still running) before SQS answered.
    let store = IdempotencyStore::new(Table::new(stack.clients.dynamodb.clone(), &stack.table));
    let first_receipt = Utc::now() - chrono::Duration::seconds(3);
    let claim = store
        .claim(
            t,
            &EventId::new("crash-1"),
            Duration::from_secs(86_400),
            first_receipt,
        )
        .await
        .unwrap();
    assert!(matches!(claim, Claim::Claimed(_)));

    let retry = call(
        &stack.ingest(),
        ingest::ingest,
        Req::new("ingest-events", t).body(&batch(["crash-1".into()])),
    )
    .await;

    assert_eq!(retry.status, 202, "{}", retry.body);
    assert_eq!(statuses(&retry.body), ["accepted"]);
    let messages = stack.take(&stack.events_queue, 1).await;
    assert_eq!(messages.len(), 1, "the retry put the event on the queue");
    let inner = ClaimCheck::new(stack.clients.s3.clone(), &stack.bucket)
        .unwrap(messages[0].body().unwrap())
        .await
        .unwrap();
    let message = EventMessage::parse(&inner).unwrap();
    assert_eq!(
        message.received_at,
        first_receipt.trunc_subsecs(6),
        "sent again as the same event: received when it was first claimed"
    );
    // Now it is queued: the next repeat is a duplicate.
    let again = call(
        &stack.ingest(),
        ingest::ingest,
        Req::new("ingest-events", t).body(&batch(["crash-1".into()])),
    )
    .await;
    assert_eq!(statuses(&again.body), ["duplicate"]);
    assert!(stack.take(&stack.events_queue, 0).await.is_empty());
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn an_unreleased_claim_of_an_unqueued_event_does_not_turn_its_retry_into_a_duplicate(
    pool: PgPool,
) {
    let stack = Stack::new(pool).await;
    let t = stack.tenant().await;
    // SQS refuses every send; DynamoDB claims work but every release (DeleteItem) fails.
    let refused = mock!(aws_sdk_sqs::Client::send_message_batch).then_error(|| {
        SendMessageBatchError::RequestThrottled(
            RequestThrottled::builder()
                .message("Rate exceeded")
                .meta(ErrorMetadata::builder().code("RequestThrottled").build())
                .build(),
        )
    });
    let sqs = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, [&refused], |c| c
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(1)));
    let (dynamodb, failing_delete) = dynamodb_failing(&stack.clients.dynamodb, "DeleteItem");
    let faulty = AwsClients {
        sqs: sqs.into(),
        dynamodb: dynamodb.into(),
        ..stack.clients.clone()
    };
    let down = call(
        &stack.ingest_with(&faulty, stack.ingest_config()),
        ingest::ingest,
        Req::new("ingest-events", t).body(&batch(["lost-1".into()])),
    )
    .await;
    assert_eq!(down.status, 503, "{}", down.body);
    assert!(
        failing_delete.calls() >= 1,
        "the release was tried and failed"
    );

    // The claim is still there, pending: the client's retry is sent, not called a duplicate.
    let retry = call(
        &stack.ingest(),
        ingest::ingest,
        Req::new("ingest-events", t).body(&batch(["lost-1".into()])),
    )
    .await;
    assert_eq!(statuses(&retry.body), ["accepted"], "{}", retry.body);
    assert_eq!(queued_ids(&stack, 1).await, ["lost-1"]);
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn an_sqs_answer_that_never_comes_leaves_the_event_retryable_and_its_retry_queued(
    pool: PgPool,
) {
    let stack = Stack::new(pool).await;
    let t = stack.tenant().await;
    // An SQS endpoint that takes the request and never answers: past the request's budget,
    // the send may or may not have happened.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", silent.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((connection, _)) = silent.accept().await {
            held.push(connection);
        }
    });
    let faulty = AwsClients {
        sqs: triggeriq::aws::sqs_client(&triggeriq::aws::sdk_config(&AwsOptions::emulator(
            endpoint,
        )))
        .into(),
        ..stack.clients.clone()
    };
    let mut config = stack.ingest_config();
    config.budget = Duration::from_millis(300);
    let answer = call(
        &stack.ingest_with(&faulty, config),
        ingest::ingest,
        Req::new("ingest-events", t).body(&batch(["slow-1".into(), "slow-2".into()])),
    )
    .await;
    assert_eq!(answer.status, 503, "{}", answer.body);
    assert_eq!(answer.header("retry-after"), Some("1"));
    let message = answer.body["errors"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("send it again"), "{}", answer.body);

    let retry = call(
        &stack.ingest(),
        ingest::ingest,
        Req::new("ingest-events", t).body(&batch(["slow-1".into(), "slow-2".into()])),
    )
    .await;
    assert_eq!(
        statuses(&retry.body),
        ["accepted", "accepted"],
        "{}",
        retry.body
    );
    assert_eq!(queued_ids(&stack, 2).await, ["slow-1", "slow-2"]);
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn a_queued_mark_that_fails_leaves_the_event_accepted_and_its_retry_sent_again(pool: PgPool) {
    let stack = Stack::new(pool).await;
    let t = stack.tenant().await;
    let (dynamodb, failing_mark) = dynamodb_failing(&stack.clients.dynamodb, "BatchWriteItem");
    let faulty = AwsClients {
        dynamodb: dynamodb.into(),
        ..stack.clients.clone()
    };
    let first = call(
        &stack.ingest_with(&faulty, stack.ingest_config()),
        ingest::ingest,
        Req::new("ingest-events", t).body(&batch(["mark-1".into()])),
    )
    .await;
    assert_eq!(statuses(&first.body), ["accepted"], "{}", first.body);
    assert!(failing_mark.calls() >= 1);
    // Not marked queued: a retry sends it again rather than trusting an unconfirmed claim.
    let retry = call(
        &stack.ingest(),
        ingest::ingest,
        Req::new("ingest-events", t).body(&batch(["mark-1".into()])),
    )
    .await;
    assert_eq!(statuses(&retry.body), ["accepted"]);
    assert_eq!(queued_ids(&stack, 2).await, ["mark-1", "mark-1"]);
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn a_large_event_with_the_longest_non_ascii_id_goes_through_s3_and_arrives(pool: PgPool) {
    let stack = Stack::new(pool).await;
    let t = stack.tenant().await;
    // 256 characters of four bytes each: 1 KiB of id, 3 KiB percent-encoded.
    let id = "\u{1F600}".repeat(256);
    let event = json!({"id": id, "type": "blob.uploaded", "data": {"blob": "x".repeat(300_000)}});
    let answer = call(
        &stack.ingest(),
        ingest::ingest,
        Req::new("ingest-events", t).body(&event),
    )
    .await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    assert_eq!(statuses(&answer.body), ["accepted"]);
    assert_eq!(queued_ids(&stack, 1).await, [id]);
}
