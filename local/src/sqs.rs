//! The SQS event source mappings of template.yaml, run the way Lambda's pollers run them.
//!
//! Each mapping has workers (at most its `MaximumConcurrency`) that receive messages, gather
//! a batch (up to `BatchSize`, waiting at most `MaximumBatchingWindowInSeconds` after the
//! first message), invoke the function with the SQS event, and delete only the messages that
//! succeeded: with `ReportBatchItemFailures`, all but the `batchItemFailures`; without it, all
//! or nothing. Failed messages are not touched: they become visible again when their
//! visibility timeout runs out, and the queue's redrive policy moves them to the DLQ once
//! received `maxReceiveCount` times (moto implements redrive as SQS does).
//!
//! Unlike Lambda's pollers, the workers do not long-poll: the local moto serialises requests,
//! and a 20 s long poll would hold every other call up. Instead, the functions reach moto
//! through [`crate::emulator_proxy`], which wakes a queue's workers when a message is sent to
//! it; an idle queue is polled every `poll_interval` (for delayed messages and expired
//! visibility timeouts).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::encodings::Base64Data;
use aws_lambda_events::sqs::{SqsEvent, SqsMessage, SqsMessageAttribute};
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, Message, MessageAttributeValue, MessageSystemAttributeName,
};
use bytes::Bytes;
use serde_json::Value;
use tokio::sync::watch;

use crate::invoke::{Invoke, InvokeError};
use crate::log::{self, Kind, Outcome};
use crate::template::REGION;

/// One mapping, ready to poll.
pub struct Poller<I> {
    /// For log lines: the queue's logical id.
    pub label: String,
    pub queue_url: String,
    pub queue_arn: String,
    pub binary: String,
    pub timeout: Duration,
    pub batch_size: usize,
    pub window: Duration,
    pub report_failures: bool,
    /// The queue's visibility timeout: when failed messages come back.
    pub visibility_timeout: Duration,
    pub poll_interval: Duration,
    /// Changes when a message is sent to the queue (see [`crate::emulator_proxy`]).
    pub wake: watch::Receiver<u64>,
    pub sqs: aws_sdk_sqs::Client,
    pub invoker: Arc<I>,
}

/// What became of one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchOutcome {
    pub size: usize,
    pub deleted: usize,
    /// Why the failed messages failed, when they did.
    pub failure: Option<String>,
}

impl<I: Invoke> Poller<I> {
    /// Polls forever (until the task is aborted).
    pub async fn run(self: Arc<Self>) {
        let mut wake = self.wake.clone();
        loop {
            let batch = self.gather(&mut wake).await;
            if batch.is_empty() {
                continue;
            }
            let started = Instant::now();
            let outcome = self.process(batch).await;
            let (result, level) = match (&outcome.failure, outcome.deleted) {
                (None, n) => (format!("{n} ok"), Outcome::Ok),
                (Some(why), n) => (
                    format!(
                        "{n} ok, {} failed: {why} (back on the queue in {})",
                        outcome.size - n,
                        humantime::format_duration(self.visibility_timeout)
                    ),
                    Outcome::Fail,
                ),
            };
            log::line(
                Kind::Sqs,
                level,
                &format!(
                    "{} → {} {} message{}: {result}",
                    self.label,
                    self.binary,
                    outcome.size,
                    if outcome.size == 1 { "" } else { "s" }
                ),
                Some(started.elapsed()),
            );
        }
    }

    /// Receives until the batch is full or the batching window closes.
    async fn gather(&self, wake: &mut watch::Receiver<u64>) -> Vec<Message> {
        let mut batch: Vec<Message> = Vec::new();
        let mut window_ends = None;
        loop {
            // Sends from now on wake the wait below, even those made during this receive.
            wake.borrow_and_update();
            let wanted = (self.batch_size - batch.len()).min(10) as i32;
            let received = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(wanted)
                .wait_time_seconds(0)
                // The queue's own timeout, or the cap `--max-visibility-timeout` sets.
                .visibility_timeout(
                    i32::try_from(self.visibility_timeout.as_secs())
                        .unwrap_or(i32::MAX)
                        .max(1),
                )
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .message_attribute_names("All")
                .send()
                .await;
            let messages = match received {
                Ok(r) => r.messages.unwrap_or_default(),
                Err(e) => {
                    log::line(
                        Kind::Sqs,
                        Outcome::Fail,
                        &format!(
                            "{}: ReceiveMessage failed: {}",
                            self.label,
                            aws_sdk_sqs::Error::from(e)
                        ),
                        None,
                    );
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    return batch;
                }
            };
            let got = !messages.is_empty();
            if got && window_ends.is_none() {
                window_ends = Some(tokio::time::Instant::now() + self.window);
            }
            batch.extend(messages);
            if batch.len() >= self.batch_size {
                return batch;
            }
            match window_ends {
                // Without a window, whatever one receive brought is the batch.
                Some(_) if self.window.is_zero() => return batch,
                Some(end) if tokio::time::Instant::now() >= end => return batch,
                Some(end) if !got => {
                    idle(
                        wake,
                        end.min(tokio::time::Instant::now() + self.poll_interval),
                    )
                    .await;
                }
                Some(_) => {}
                None => idle(wake, tokio::time::Instant::now() + self.poll_interval).await,
            }
        }
    }

    /// Invokes the function with one batch and deletes what succeeded.
    pub async fn process(&self, batch: Vec<Message>) -> BatchOutcome {
        let size = batch.len();
        let event = sqs_event(&batch, &self.queue_arn);
        let result = match serde_json::to_vec(&event) {
            Ok(payload) => {
                self.invoker
                    .invoke(&self.binary, Bytes::from(payload), self.timeout)
                    .await
            }
            Err(e) => Err(InvokeError::Unavailable(format!(
                "the batch cannot be written as an SQS event: {e}"
            ))),
        };
        let ids: Vec<&str> = batch.iter().filter_map(|m| m.message_id()).collect();
        let failed = match &result {
            Ok(bytes) => failed_ids(bytes, &ids, self.report_failures),
            Err(InvokeError::Function {
                error_type,
                message,
            }) => Err(format!("{error_type}: {message}")),
            Err(e) => Err(e.to_string()),
        };
        let (failed, failure) = match failed {
            Ok(f) if f.is_empty() => (f, None),
            Ok(f) => {
                let n = f.len();
                (f, Some(format!("{n} reported in batchItemFailures")))
            }
            Err(why) => (ids.iter().map(|s| (*s).to_owned()).collect(), Some(why)),
        };
        let done: Vec<&Message> = batch
            .iter()
            .filter(|m| m.message_id().is_some_and(|id| !failed.contains(id)))
            .collect();
        let deleted = self.delete(&done).await;
        BatchOutcome {
            size,
            deleted,
            failure,
        }
    }

    async fn delete(&self, messages: &[&Message]) -> usize {
        let mut deleted = 0;
        for chunk in messages.chunks(10) {
            let entries: Vec<DeleteMessageBatchRequestEntry> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, m)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(m.receipt_handle()?)
                        .build()
                        .ok()
                })
                .collect();
            match self
                .sqs
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
            {
                Ok(r) => deleted += r.successful().len(),
                Err(e) => log::line(
                    Kind::Sqs,
                    Outcome::Fail,
                    &format!(
                        "{}: DeleteMessageBatch failed: {}",
                        self.label,
                        aws_sdk_sqs::Error::from(e)
                    ),
                    None,
                ),
            }
        }
        deleted
    }
}

/// Waits until `until` or a send to the queue, whichever comes first.
async fn idle(wake: &mut watch::Receiver<u64>, until: tokio::time::Instant) {
    tokio::select! {
        _ = tokio::time::sleep_until(until) => {}
        changed = wake.changed() => {
            // No proxy feeding this queue (its sender is gone): the clock alone.
            if changed.is_err() {
                tokio::time::sleep_until(until).await;
            }
        }
    }
}

/// The Lambda SQS event for `messages` from the queue `queue_arn`, as the `aws_lambda_events`
/// type the consumers deserialize.
pub fn sqs_event(messages: &[Message], queue_arn: &str) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = messages
        .iter()
        .map(|m| {
            let mut record = SqsMessage::default();
            record.message_id = m.message_id().map(str::to_owned);
            record.receipt_handle = m.receipt_handle().map(str::to_owned);
            record.body = Some(m.body().unwrap_or_default().to_owned());
            record.md5_of_body = m.md5_of_body().map(str::to_owned);
            record.md5_of_message_attributes = m.md5_of_message_attributes().map(str::to_owned);
            record.attributes = m
                .attributes()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                .collect();
            record.message_attributes = m
                .message_attributes()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), message_attribute(v)))
                .collect();
            record.event_source = Some("aws:sqs".into());
            record.event_source_arn = Some(queue_arn.to_owned());
            record.aws_region = Some(REGION.into());
            record
        })
        .collect();
    event
}

fn message_attribute(value: &MessageAttributeValue) -> SqsMessageAttribute {
    let mut attribute = SqsMessageAttribute::default();
    attribute.data_type = Some(value.data_type().to_owned());
    attribute.string_value = value.string_value().map(str::to_owned);
    attribute.binary_value = value.binary_value().map(|b| {
        let mut data = Base64Data::default();
        data.extend_from_slice(b.as_ref());
        data
    });
    attribute
}

/// The ids of the messages that failed, read from a function's result as Lambda reads it:
/// without `ReportBatchItemFailures` a result means all succeeded; with it, the ids in
/// `batchItemFailures`. A result Lambda cannot read (not JSON, an identifier that is empty or
/// not in the batch) fails the whole batch (`Err`).
pub fn failed_ids(result: &[u8], batch: &[&str], report: bool) -> Result<HashSet<String>, String> {
    if !report {
        return Ok(HashSet::new());
    }
    let text = std::str::from_utf8(result).map_err(|_| "the result is not UTF-8".to_owned())?;
    if text.trim().is_empty() {
        return Ok(HashSet::new());
    }
    let value: Value =
        serde_json::from_str(text).map_err(|e| format!("the result is not JSON: {e}"))?;
    let failures = match value.get("batchItemFailures") {
        None | Some(Value::Null) => return Ok(HashSet::new()),
        Some(Value::Array(items)) => items,
        Some(_) => return Err("batchItemFailures is not a list".into()),
    };
    failures
        .iter()
        .map(|f| {
            let id = f
                .get("itemIdentifier")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if id.is_empty() || !batch.contains(&id) {
                Err(format!(
                    "batchItemFailures names {id:?}, which is not in the batch"
                ))
            } else {
                Ok(id.to_owned())
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use std::collections::BTreeMap;

    use aws_sdk_sqs::primitives::Blob;
    use aws_sdk_sqs::types::QueueAttributeName;
    use serde_json::json;

    use super::*;
    use crate::invoke::fake::FakeInvoker;
    use crate::provision::ensure_queue;
    use crate::testing;

    #[test]
    fn batch_item_failures_are_read_as_lambda_reads_them() {
        let batch = ["a", "b"];
        let ok = |s: &str| failed_ids(s.as_bytes(), &batch, true);
        assert_eq!(ok(""), Ok(HashSet::new()));
        assert_eq!(ok("null"), Ok(HashSet::new()));
        assert_eq!(ok(r#"{"batchItemFailures": []}"#), Ok(HashSet::new()));
        assert_eq!(
            ok(r#"{"batchItemFailures": [{"itemIdentifier": "b"}]}"#),
            Ok(HashSet::from(["b".to_owned()]))
        );
        assert!(ok(r#"{"batchItemFailures": [{"itemIdentifier": "zzz"}]}"#).is_err());
        assert!(ok(r#"{"batchItemFailures": [{"itemIdentifier": ""}]}"#).is_err());
        assert!(ok("not json").is_err());
        assert_eq!(
            failed_ids(
                br#"{"batchItemFailures": [{"itemIdentifier": "b"}]}"#,
                &batch,
                false
            ),
            Ok(HashSet::new())
        );
    }

    /// The string attribute `kind` = `test` the tests send and look for.
    fn kind_test() -> MessageAttributeValue {
        MessageAttributeValue::builder()
            .data_type("String")
            .string_value("test")
            .build()
            .expect("attribute")
    }

    #[test]
    fn messages_become_the_records_lambda_sends() {
        let message = Message::builder()
            .message_id("m1")
            .receipt_handle("r1")
            .body("hello")
            .md5_of_body("5d41402abc4b2a76b9719d911017c592")
            .attributes(MessageSystemAttributeName::ApproximateReceiveCount, "2")
            .message_attributes("kind", kind_test())
            .message_attributes(
                "raw",
                MessageAttributeValue::builder()
                    .data_type("Binary")
                    .binary_value(Blob::new(vec![0u8, 1, 2]))
                    .build()
                    .expect("attribute"),
            )
            .build();
        let json = serde_json::to_value(sqs_event(&[message], "arn:q")).expect("JSON");
        let record = &json["Records"][0];
        assert_eq!(record["messageId"], "m1");
        assert_eq!(record["eventSource"], "aws:sqs");
        assert_eq!(record["eventSourceARN"], "arn:q");
        assert_eq!(record["awsRegion"], REGION);
        assert_eq!(record["attributes"]["ApproximateReceiveCount"], "2");
        assert_eq!(record["messageAttributes"]["kind"]["stringValue"], "test");
        assert_eq!(record["messageAttributes"]["raw"]["binaryValue"], "AAEC");
        assert_eq!(record["messageAttributes"]["raw"]["dataType"], "Binary");
        let parsed: SqsEvent = serde_json::from_value(json).expect("an SQS event");
        assert_eq!(
            parsed.records[0].message_attributes["raw"]
                .binary_value
                .as_deref()
                .map(Vec::as_slice),
            Some(&[0u8, 1, 2][..])
        );
    }

    async fn queue_with_dlq(
        clients: &triggeriq::aws::AwsClients,
        max_receives: u32,
    ) -> (String, String, String) {
        let name = testing::unique("q");
        let (dlq_url, dlq_arn) = ensure_queue(clients, &format!("{name}-dlq"), &BTreeMap::new())
            .await
            .expect("dlq");
        let attributes = BTreeMap::from([
            ("VisibilityTimeout".to_owned(), "1".to_owned()),
            (
                "RedrivePolicy".to_owned(),
                json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receives})
                    .to_string(),
            ),
        ]);
        let (url, arn) = ensure_queue(clients, &name, &attributes)
            .await
            .expect("queue");
        (url, arn, dlq_url)
    }

    fn poller(
        sqs: aws_sdk_sqs::Client,
        url: &str,
        arn: &str,
        invoker: FakeInvoker,
        batch: usize,
        window: Duration,
    ) -> Arc<Poller<FakeInvoker>> {
        Arc::new(Poller {
            label: "test".into(),
            queue_url: url.to_owned(),
            queue_arn: arn.to_owned(),
            binary: "consumer".into(),
            timeout: Duration::from_secs(5),
            batch_size: batch,
            window,
            report_failures: true,
            visibility_timeout: Duration::from_secs(1),
            poll_interval: Duration::from_millis(50),
            wake: watch::channel(0).1,
            sqs,
            invoker: Arc::new(invoker),
        })
    }

    async fn count(sqs: &aws_sdk_sqs::Client, url: &str) -> usize {
        let a = sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .expect("attributes");
        let a = a.attributes().expect("attributes");
        a.values().map(|v| v.parse::<usize>().unwrap_or(0)).sum()
    }

    async fn wait_for(what: &str, mut check: impl AsyncFnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if check().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("timed out waiting for {what}");
    }

    #[tokio::test]
    async fn only_reported_failures_stay_and_they_reach_the_dlq_after_max_receive_count() {
        let clients = testing::clients().await;
        let (url, arn, dlq_url) = queue_with_dlq(&clients, 2).await;
        for body in ["ok-1", "poison", "ok-2"] {
            clients
                .sqs
                .send_message()
                .queue_url(&url)
                .message_body(body)
                .message_attributes("kind", kind_test())
                .send()
                .await
                .expect("send");
        }
        let invoker = FakeInvoker::new(|_, event| {
            let failures: Vec<Value> = event["Records"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|r| r["body"] == "poison")
                .map(|r| json!({"itemIdentifier": r["messageId"]}))
                .collect();
            Ok(json!({ "batchItemFailures": failures }))
        });
        let task = tokio::spawn(
            poller(
                (*clients.sqs).clone(),
                &url,
                &arn,
                invoker.clone(),
                10,
                Duration::ZERO,
            )
            .run(),
        );
        wait_for("the poison message in the DLQ", async || {
            count(&clients.sqs, &dlq_url).await == 1
        })
        .await;
        wait_for("the source queue to drain", async || {
            count(&clients.sqs, &url).await == 0
        })
        .await;
        task.abort();

        let calls = invoker.calls_to("consumer");
        let deliveries = |body: &str| -> Vec<String> {
            calls
                .iter()
                .flat_map(|e| e["Records"].as_array().cloned().unwrap_or_default())
                .filter(|r| r["body"] == body)
                .map(|r| {
                    r["attributes"]["ApproximateReceiveCount"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned()
                })
                .collect()
        };
        assert_eq!(
            deliveries("ok-1"),
            vec!["1"],
            "a success is deleted after one delivery"
        );
        assert_eq!(
            deliveries("poison"),
            vec!["1", "2"],
            "maxReceiveCount deliveries, then the DLQ"
        );
        // The event is what Lambda's runtime parses.
        let event: SqsEvent = serde_json::from_value(calls[0].clone()).expect("an SQS event");
        let record = &event.records[0];
        assert_eq!(record.event_source.as_deref(), Some("aws:sqs"));
        assert_eq!(record.event_source_arn.as_deref(), Some(arn.as_str()));
        assert_eq!(
            record.message_attributes["kind"].string_value.as_deref(),
            Some("test")
        );
    }

    #[tokio::test]
    async fn a_function_error_fails_the_whole_batch() {
        let clients = testing::clients().await;
        let (url, arn, dlq_url) = queue_with_dlq(&clients, 1).await;
        for body in ["a", "b"] {
            clients
                .sqs
                .send_message()
                .queue_url(&url)
                .message_body(body)
                .send()
                .await
                .expect("send");
        }
        let invoker = FakeInvoker::new(|_, _| {
            Err(InvokeError::Function {
                error_type: "Panic".into(),
                message: "x".into(),
            })
        });
        let p = poller(
            (*clients.sqs).clone(),
            &url,
            &arn,
            invoker,
            10,
            Duration::from_millis(300),
        );
        let batch = p.gather(&mut p.wake.clone()).await;
        assert_eq!(batch.len(), 2, "the window gathered both messages");
        let outcome = p.process(batch).await;
        assert_eq!(outcome.deleted, 0);
        assert_eq!(outcome.failure.as_deref(), Some("Panic: x"));
        let task = tokio::spawn(p.clone().run());
        wait_for("both messages in the DLQ", async || {
            count(&clients.sqs, &dlq_url).await == 2
        })
        .await;
        task.abort();
    }

    #[tokio::test]
    async fn an_idle_poller_receives_at_once_when_woken() {
        let clients = testing::clients().await;
        let (url, arn, _) = queue_with_dlq(&clients, 5).await;
        let wakers = crate::emulator_proxy::Wakers::default();
        let name = url.rsplit('/').next().expect("queue name").to_owned();
        let invoker = FakeInvoker::new(|_, _| Ok(json!({})));
        let mut p = poller(
            (*clients.sqs).clone(),
            &url,
            &arn,
            invoker.clone(),
            10,
            Duration::ZERO,
        );
        if let Some(p) = Arc::get_mut(&mut p) {
            p.poll_interval = Duration::from_secs(60);
            p.wake = wakers.subscribe(&name);
        }
        let task = tokio::spawn(p.run());
        tokio::time::sleep(Duration::from_millis(500)).await; // idle now, for a minute
        clients
            .sqs
            .send_message()
            .queue_url(&url)
            .message_body("x")
            .send()
            .await
            .expect("send");
        let sent = Instant::now();
        wakers.wake(&name);
        wait_for("the woken poller to deliver", async || {
            !invoker.calls_to("consumer").is_empty()
        })
        .await;
        task.abort();
        assert!(
            sent.elapsed() < Duration::from_secs(5),
            "took {:?}",
            sent.elapsed()
        );
    }

    #[tokio::test]
    async fn batches_hold_at_most_batch_size_and_the_window_collects_the_rest() {
        let clients = testing::clients().await;
        let (url, arn, _) = queue_with_dlq(&clients, 5).await;
        for i in 0..7 {
            clients
                .sqs
                .send_message()
                .queue_url(&url)
                .message_body(i.to_string())
                .send()
                .await
                .expect("send");
        }
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let seen = sizes.clone();
        let invoker = FakeInvoker::new(move |_, event| {
            seen.lock()
                .expect("sizes")
                .push(event["Records"].as_array().map_or(0, Vec::len));
            Ok(json!({}))
        });
        let task = tokio::spawn(
            poller(
                (*clients.sqs).clone(),
                &url,
                &arn,
                invoker,
                5,
                Duration::from_millis(500),
            )
            .run(),
        );
        wait_for("all seven processed", async || {
            count(&clients.sqs, &url).await == 0
        })
        .await;
        task.abort();
        assert_eq!(*sizes.lock().expect("sizes"), vec![5, 2]);
    }
}
