//! Faults an emulator cannot produce on demand, through aws-smithy-mocks:
//! throttling in the middle of a batch, 500s, per-entry failures, silence, and
//! (against a local black hole) timeouts. The rule: a message is reported
//! sent only if SQS said so.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_sqs::operation::send_message_batch::{
    SendMessageBatchError, SendMessageBatchInput, SendMessageBatchOutput,
};
use aws_sdk_sqs::types::error::RequestThrottled;
use aws_sdk_sqs::types::{BatchResultErrorEntry, SendMessageBatchResultEntry};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use aws_smithy_types::error::ErrorMetadata;
use chrono::Utc;
use triggeriq::aws::{AwsClients, AwsOptions};
use triggeriq::dynamodb::{IdempotencyStore, Table};
use triggeriq::event::EventId;
use triggeriq::ids::TenantId;
use triggeriq::s3::{ClaimCheck, ClaimCheckError};
use triggeriq::sqs::{CallFailure, OutgoingMessage, SendError, SqsSender};

const QUEUE: &str = "https://sqs.us-east-1.amazonaws.com/123456789012/events";

fn fast_retries() -> aws_config::retry::RetryConfig {
    aws_config::retry::RetryConfig::standard()
        .with_max_attempts(3)
        .with_initial_backoff(Duration::from_millis(1))
}

fn messages(n: usize) -> Vec<OutgoingMessage> {
    (0..n)
        .map(|i| OutgoingMessage::new(format!("evt-{i}"), format!("msg-{i}")))
        .collect()
}

/// SQS's answer when every entry of `input` succeeds, except those whose
/// body is in `fail` (listed as failed) or in `omit` (not mentioned at all).
fn answer(input: &SendMessageBatchInput, fail: &[&str], omit: &[&str]) -> SendMessageBatchOutput {
    let mut output = SendMessageBatchOutput::builder()
        .set_successful(Some(Vec::new()))
        .set_failed(Some(Vec::new()));
    for entry in input.entries() {
        let body = entry.message_body();
        if omit.contains(&body) {
            continue;
        }
        if fail.contains(&body) {
            output = output.failed(
                BatchResultErrorEntry::builder()
                    .id(entry.id())
                    .code("InternalError")
                    .message("We encountered an internal error")
                    .sender_fault(false)
                    .build()
                    .unwrap(),
            );
        } else {
            output = output.successful(
                SendMessageBatchResultEntry::builder()
                    .id(entry.id())
                    .message_id(format!("mid-{body}"))
                    .md5_of_message_body("0")
                    .build()
                    .unwrap(),
            );
        }
    }
    output.build().unwrap()
}

fn first_body_is(input: &SendMessageBatchInput, body: &str) -> bool {
    input.entries().first().map(|e| e.message_body()) == Some(body)
}

#[tokio::test]
async fn throttling_in_the_middle_of_a_batch_rejects_exactly_those_messages() {
    // 25 messages → calls of 10, 10 and 5; the second call is throttled on every try.
    let throttled = mock!(aws_sdk_sqs::Client::send_message_batch)
        .match_requests(|input| first_body_is(input, "msg-10"))
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
    let fine = mock!(aws_sdk_sqs::Client::send_message_batch)
        .then_compute_output(|input| answer(input, &[], &[]));
    let client = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, [&throttled, &fine], |c| c
        .retry_config(fast_retries()));

    let results = SqsSender::new(client).send_batch(QUEUE, messages(25)).await;

    assert_eq!(results.len(), 25);
    for (i, (id, result)) in results.iter().enumerate() {
        assert_eq!(id, &format!("evt-{i}"));
        if (10..20).contains(&i) {
            match result {
                Err(
                    e @ SendError::CallFailed {
                        kind: CallFailure::Throttled,
                        ..
                    },
                ) => assert!(e.is_retryable()),
                other => panic!("{id} must be rejected, got {other:?}"),
            }
        } else {
            assert_eq!(result.as_ref().unwrap().message_id, format!("mid-msg-{i}"));
        }
    }
    // The SDK's standard retry mode retried the throttled call before giving up.
    assert_eq!(throttled.num_calls(), 3);
    assert_eq!(fine.num_calls(), 2);
}

#[tokio::test]
async fn per_entry_failures_and_silence_are_not_reported_as_sent() {
    let rule = mock!(aws_sdk_sqs::Client::send_message_batch)
        .then_compute_output(|input| answer(input, &["msg-3", "msg-7"], &["msg-5"]));
    let client = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, [&rule]);

    let results = SqsSender::new(client).send_batch(QUEUE, messages(10)).await;

    for (i, (id, result)) in results.iter().enumerate() {
        match i {
            3 | 7 => match result {
                Err(SendError::Rejected {
                    code,
                    sender_fault: false,
                    ..
                }) => assert_eq!(code, "InternalError"),
                other => panic!("{id}: {other:?}"),
            },
            5 => assert_eq!(result, &Err(SendError::NotAcknowledged), "{id}"),
            _ => assert!(result.is_ok(), "{id}: {result:?}"),
        }
    }
    assert_eq!(rule.num_calls(), 1);
}

#[tokio::test]
async fn a_500_is_retried_by_the_sdk_and_then_succeeds() {
    // One 500, then SQS answers: the SDK's retry hides the blip. (A retry
    // stays on its rule, so the answer for the known four entries is fixed.)
    let expected = SendMessageBatchInput::builder()
        .set_entries(Some(
            (0..4)
                .map(|i| {
                    aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(format!("msg-{i}"))
                        .build()
                        .unwrap()
                })
                .collect(),
        ))
        .build()
        .unwrap();
    let recovering = mock!(aws_sdk_sqs::Client::send_message_batch)
        .sequence()
        .http_status(500, Some("{}".to_owned()))
        .output(move || answer(&expected, &[], &[]))
        .build();
    let client = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, [&recovering], |c| c
        .retry_config(fast_retries()));

    let results = SqsSender::new(client).send_batch(QUEUE, messages(4)).await;

    assert!(results.iter().all(|(_, r)| r.is_ok()), "{results:?}");
    assert_eq!(recovering.num_calls(), 2);
}

#[tokio::test]
async fn persistent_500s_reject_the_whole_call() {
    let failing = mock!(aws_sdk_sqs::Client::send_message_batch)
        .sequence()
        .http_status(500, Some("{}".to_owned()))
        .repeatedly()
        .build();
    let client = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, [&failing], |c| c
        .retry_config(fast_retries()));

    let results = SqsSender::new(client).send_batch(QUEUE, messages(3)).await;

    for (id, result) in &results {
        assert!(
            matches!(
                result,
                Err(SendError::CallFailed {
                    kind: CallFailure::Service,
                    ..
                })
            ),
            "{id}: {result:?}"
        );
    }
    assert_eq!(failing.num_calls(), 3);
}

#[tokio::test]
async fn batches_never_exceed_the_byte_limit() {
    let largest = Arc::new(Mutex::new(0usize));
    let seen = largest.clone();
    let rule = mock!(aws_sdk_sqs::Client::send_message_batch).then_compute_output(move |input| {
        let bytes: usize = input.entries().iter().map(|e| e.message_body().len()).sum();
        let mut largest = seen.lock().unwrap();
        *largest = (*largest).max(bytes);
        answer(input, &[], &[])
    });
    let client = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, [&rule]);
    let big: Vec<_> = (0..7)
        .map(|i| OutgoingMessage::new(format!("b{i}"), "z".repeat(90_000)))
        .collect();

    let results = SqsSender::new(client).send_batch(QUEUE, big).await;

    assert!(results.iter().all(|(_, r)| r.is_ok()));
    assert!(*largest.lock().unwrap() <= 262_144);
    // 7 × 90 KB at two per batch: four calls.
    assert_eq!(rule.num_calls(), 4);
}

#[tokio::test]
async fn a_call_that_times_out_rejects_its_messages() {
    // A local server that accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = held.clone();
    let server = tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            keep.lock().unwrap().push(socket);
        }
    });
    let options = AwsOptions {
        max_attempts: 2,
        initial_backoff: Duration::from_millis(1),
        attempt_timeout: Duration::from_millis(300),
        operation_timeout: Duration::from_secs(5),
        ..AwsOptions::emulator(format!("http://{address}"))
    };
    let clients = AwsClients::load(&options).await;

    let results = SqsSender::new(clients.sqs.clone())
        .send_batch(
            &format!("http://{address}/123456789012/events"),
            messages(12),
        )
        .await;

    for (id, result) in &results {
        assert!(
            matches!(
                result,
                Err(SendError::CallFailed {
                    kind: CallFailure::Timeout,
                    ..
                })
            ),
            "{id}: {result:?}"
        );
    }
    assert!(!held.lock().unwrap().is_empty(), "the client did connect");
    server.abort();
}

#[tokio::test]
async fn a_throttled_idempotency_claim_is_an_error_not_a_claim() {
    use aws_sdk_dynamodb::operation::put_item::PutItemError;
    use aws_sdk_dynamodb::types::error::ProvisionedThroughputExceededException;
    let throttled = mock!(aws_sdk_dynamodb::Client::put_item).then_error(|| {
        PutItemError::ProvisionedThroughputExceededException(
            ProvisionedThroughputExceededException::builder()
                .message("slow down")
                .meta(
                    ErrorMetadata::builder()
                        .code("ProvisionedThroughputExceededException")
                        .build(),
                )
                .build(),
        )
    });
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&throttled], |c| c
        .retry_config(fast_retries()));
    let store = IdempotencyStore::new(Table::new(client, "table"));

    let claim = store
        .claim(
            TenantId::new(),
            &EventId::new("evt"),
            Duration::from_secs(60),
            Utc::now(),
        )
        .await;

    assert!(
        matches!(
            claim,
            Err(triggeriq::dynamodb::DynamoError::Sdk {
                operation: "PutItem",
                ..
            })
        ),
        "{claim:?}"
    );
    assert_eq!(throttled.num_calls(), 3);
}

#[tokio::test]
async fn a_failed_claim_check_upload_is_an_error_and_queues_nothing() {
    let failing = mock!(aws_sdk_s3::Client::put_object)
        .sequence()
        .http_status(503, None)
        .repeatedly()
        .build();
    let client = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&failing], |c| c
        .retry_config(fast_retries()));
    let check = ClaimCheck::new(client, "bucket").with_threshold(10);

    let wrapped = check
        .wrap(
            TenantId::new(),
            "evt",
            r#"{"data":"more than ten bytes"}"#,
            Utc::now(),
        )
        .await;

    assert!(
        matches!(
            wrapped,
            Err(ClaimCheckError::S3 {
                operation: "PutObject",
                ..
            })
        ),
        "{wrapped:?}"
    );
    assert_eq!(failing.num_calls(), 3);
}

// ---------------------------------------------------------------- KMS (signing secrets)

/// A KMS that hands out one fixed data key (as GenerateDataKey and Decrypt would) and counts
/// the calls; `throttled` Decrypts answer ThrottlingException instead.
struct FakeKms {
    generate: aws_smithy_mocks::Rule,
    decrypt: aws_smithy_mocks::Rule,
    client: aws_sdk_kms::Client,
}

fn fake_kms(throttled: bool) -> FakeKms {
    use aws_sdk_kms::operation::decrypt::{DecryptError, DecryptOutput};
    use aws_sdk_kms::operation::generate_data_key::GenerateDataKeyOutput;
    use aws_sdk_kms::primitives::Blob;
    const DATA_KEY: [u8; 32] = [7; 32];
    let generate = mock!(aws_sdk_kms::Client::generate_data_key).then_output(|| {
        GenerateDataKeyOutput::builder()
            .plaintext(Blob::new(DATA_KEY.to_vec()))
            .ciphertext_blob(Blob::new(b"sealed-data-key".to_vec()))
            .key_id("test-key")
            .build()
    });
    let decrypt = if throttled {
        mock!(aws_sdk_kms::Client::decrypt).then_error(|| {
            DecryptError::generic(
                ErrorMetadata::builder()
                    .code("ThrottlingException")
                    .message("Rate exceeded")
                    .build(),
            )
        })
    } else {
        mock!(aws_sdk_kms::Client::decrypt).then_output(|| {
            DecryptOutput::builder()
                .plaintext(Blob::new(DATA_KEY.to_vec()))
                .key_id("test-key")
                .build()
        })
    };
    let client = mock_client!(
        aws_sdk_kms,
        RuleMode::MatchAny,
        [&generate, &decrypt],
        |c| c.retry_config(fast_retries())
    );
    FakeKms {
        generate,
        decrypt,
        client,
    }
}

fn secret_store(table: &Table, kms: &FakeKms) -> triggeriq::dynamodb::SigningSecretStore {
    triggeriq::dynamodb::SigningSecretStore::new(
        table.clone(),
        triggeriq::kms::Sealer::new(kms.client.clone(), "test-key"),
    )
}

#[tokio::test]
async fn signing_calls_kms_only_when_the_sealed_secrets_changed() {
    let clients = triggeriq::testing::moto::clients().await;
    let table = triggeriq::testing::moto::table(&clients).await;
    let kms = fake_kms(false);
    let admin = secret_store(&table, &kms);
    let tenant = TenantId::new();
    let first = admin
        .get_or_create(tenant, Utc::now())
        .await
        .unwrap()
        .current;
    assert_eq!(kms.generate.num_calls(), 1);

    // deliver-webhooks: a store of its own, as in another container.
    let deliverer = secret_store(&table, &kms);
    for _ in 0..5 {
        assert_eq!(
            deliverer.active(tenant, Utc::now()).await.unwrap()[0],
            first
        );
    }
    assert_eq!(kms.decrypt.num_calls(), 1, "opened once, then from memory");

    // A rotation changes the sealed bytes: the next read opens them again and signs with
    // the new secret first at once.
    let second = admin
        .rotate(tenant, Utc::now())
        .await
        .unwrap()
        .rotated()
        .expect("rotated");
    let calls = kms.decrypt.num_calls();
    let active = deliverer.active(tenant, Utc::now()).await.unwrap();
    assert_eq!(active, vec![second, first]);
    assert_eq!(kms.decrypt.num_calls(), calls + 1);
}

#[tokio::test]
async fn a_throttled_kms_fails_the_read_and_signs_nothing() {
    let clients = triggeriq::testing::moto::clients().await;
    let table = triggeriq::testing::moto::table(&clients).await;
    let tenant = TenantId::new();
    secret_store(&table, &fake_kms(false))
        .get_or_create(tenant, Utc::now())
        .await
        .unwrap();
    let throttled = fake_kms(true);
    match secret_store(&table, &throttled)
        .active(tenant, Utc::now())
        .await
    {
        Err(triggeriq::dynamodb::SecretsError::Sealing { .. }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(
        throttled.decrypt.num_calls(),
        3,
        "the SDK's retries, then the error"
    );
}
