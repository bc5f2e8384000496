//! Sending to SQS in batches, with an honest per-message result.
//!
//! [`SqsSender::send_batch`] takes any number of messages, splits them into
//! `SendMessageBatch` calls of at most 10 entries and at most
//! [`SqsLimits::max_batch_bytes`], runs the calls concurrently (at most
//! [`SqsSender::max_in_flight`] at once) and returns one result per message,
//! in input order. A message is reported sent only when SQS listed its entry
//! as successful: a per-entry failure, a whole call that failed after the
//! SDK's retries (throttling, 5xx, timeouts, network), or an entry the
//! response does not mention are all errors for exactly the messages
//! concerned. Ingest relies on this to answer 202 only for events that are on
//! the queue.
//!
//! Retrying whole calls is left to the SDK's standard retry mode (configured
//! in [`crate::aws`]): it retries throttling, 5xx and timeouts with jittered
//! backoff. A per-entry failure inside a successful call is not retried here;
//! it is reported, and the caller (the API client, or the Lambda partial
//! batch response) retries it.
//!
//! Messages are validated before sending so that one bad message cannot fail
//! the call for its nine neighbours: size (body plus attributes), the
//! characters SQS accepts, delay, attribute count and names. Batch entry ids
//! are the positions `0`–`9`, never the caller's ids, which may repeat or
//! contain characters SQS does not allow in entry ids.

use std::collections::BTreeMap;

use crate::aws::Lazy;
use aws_sdk_sqs::error::{ProvideErrorMetadata as _, SdkError};
use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
use aws_smithy_types::error::display::DisplayErrorContext;
use futures::StreamExt as _;

/// At most this many entries per `SendMessageBatch` (an SQS limit).
pub const MAX_BATCH_ENTRIES: usize = 10;
/// The longest delay SQS accepts, in seconds.
pub const MAX_DELAY_SECONDS: u32 = 900;
/// At most this many message attributes per message (an SQS limit).
pub const MAX_ATTRIBUTES: usize = 10;

/// Size limits applied before sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqsLimits {
    /// Largest message (body plus attribute names, types and values), in bytes.
    pub max_message_bytes: usize,
    /// Largest `SendMessageBatch` payload (the sum of its messages), in bytes.
    pub max_batch_bytes: usize,
}

impl Default for SqsLimits {
    /// 256 KiB for both: the classic SQS limits, valid on every queue. (SQS
    /// now accepts up to 1 MiB; raise both only for queues configured so.)
    fn default() -> Self {
        Self {
            max_message_bytes: 262_144,
            max_batch_bytes: 262_144,
        }
    }
}

/// One message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// The caller's id for this message, returned with its result (need not be unique).
    pub id: String,
    /// The message body.
    pub body: String,
    /// Seconds before the message becomes visible (0–900).
    pub delay_seconds: u32,
    /// String message attributes.
    pub attributes: BTreeMap<String, String>,
}

impl OutgoingMessage {
    /// A message with no delay and no attributes.
    pub fn new(id: impl Into<String>, body: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            body: body.into(),
            delay_seconds: 0,
            attributes: BTreeMap::new(),
        }
    }

    /// The same message, delayed.
    pub fn with_delay(mut self, seconds: u32) -> Self {
        self.delay_seconds = seconds;
        self
    }

    /// The same message with one more string attribute.
    pub fn with_attribute(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.attributes.insert(name.into(), value.into());
        self
    }

    /// The size SQS counts against its limits.
    pub fn size(&self) -> usize {
        self.body.len()
            + self
                .attributes
                .iter()
                .map(|(k, v)| k.len() + "String".len() + v.len())
                .sum::<usize>()
    }
}

/// A message that SQS accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// SQS's message id.
    pub message_id: String,
}

/// How a whole `SendMessageBatch` call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallFailure {
    /// SQS throttled the call, after the SDK's retries.
    Throttled,
    /// The call timed out, after the SDK's retries.
    Timeout,
    /// The request could not be sent or the response not read (network).
    Network,
    /// SQS answered with another error (5xx after retries, access denied, no such queue…).
    Service,
    /// The request could not even be built.
    Other,
}

/// Why one message is not on the queue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("message is {size} bytes, more than the {limit}-byte limit")]
    TooLarge { size: usize, limit: usize },
    #[error("message is invalid: {reason}")]
    Invalid { reason: String },
    #[error("SQS rejected the message: {code}: {message}")]
    Rejected {
        code: String,
        message: String,
        /// SQS says the request, not the service, was at fault.
        sender_fault: bool,
    },
    #[error("SendMessageBatch failed ({kind:?}): {message}")]
    CallFailed { kind: CallFailure, message: String },
    #[error("SQS did not report the message as sent")]
    NotAcknowledged,
}

impl SendError {
    /// True when sending the same message again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::TooLarge { .. } | Self::Invalid { .. } => false,
            Self::Rejected { sender_fault, .. } => !sender_fault,
            Self::CallFailed { kind, .. } => *kind != CallFailure::Other,
            Self::NotAcknowledged => true,
        }
    }
}

/// Sends messages to SQS queues; cheap to clone.
#[derive(Debug, Clone)]
pub struct SqsSender {
    client: Lazy<aws_sdk_sqs::Client>,
    limits: SqsLimits,
    max_in_flight: usize,
}

impl SqsSender {
    /// A sender with the default limits and at most 8 calls in flight.
    pub fn new(client: impl Into<Lazy<aws_sdk_sqs::Client>>) -> Self {
        Self {
            client: client.into(),
            limits: SqsLimits::default(),
            max_in_flight: 8,
        }
    }

    /// The same sender with other size limits.
    pub fn with_limits(mut self, limits: SqsLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The same sender with another bound on concurrent calls (at least 1).
    pub fn with_max_in_flight(mut self, calls: usize) -> Self {
        self.max_in_flight = calls.max(1);
        self
    }

    /// The size limits in force.
    pub fn limits(&self) -> SqsLimits {
        self.limits
    }

    /// The bound on concurrent `SendMessageBatch` calls.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }

    /// Sends `messages` to `queue_url`; one result per message, in input order.
    #[tracing::instrument(skip(self, messages), fields(count = messages.len()))]
    pub async fn send_batch(
        &self,
        queue_url: &str,
        messages: Vec<OutgoingMessage>,
    ) -> Vec<(String, Result<Sent, SendError>)> {
        let mut results: Vec<Option<Result<Sent, SendError>>> = vec![None; messages.len()];
        let mut valid = Vec::with_capacity(messages.len());
        for (index, message) in messages.iter().enumerate() {
            match self.validate(message) {
                Ok(size) => valid.push((index, size)),
                Err(e) => results[index] = Some(Err(e)),
            }
        }

        let chunks = chunk(&valid, self.limits.max_batch_bytes);
        let outcomes: Vec<Vec<(usize, Result<Sent, SendError>)>> = futures::stream::iter(chunks)
            .map(|indices| self.send_chunk(queue_url, &messages, indices))
            .buffer_unordered(self.max_in_flight)
            .collect()
            .await;
        for (index, result) in outcomes.into_iter().flatten() {
            results[index] = Some(result);
        }

        messages
            .into_iter()
            .zip(results)
            .map(|(message, result)| {
                (
                    message.id,
                    result.unwrap_or(Err(SendError::NotAcknowledged)),
                )
            })
            .collect()
    }

    /// Sends one message (through the same path as [`Self::send_batch`]).
    pub async fn send_one(
        &self,
        queue_url: &str,
        message: OutgoingMessage,
    ) -> Result<Sent, SendError> {
        self.send_batch(queue_url, vec![message])
            .await
            .pop()
            .map_or(Err(SendError::NotAcknowledged), |(_, result)| result)
    }

    fn validate(&self, message: &OutgoingMessage) -> Result<usize, SendError> {
        let size = message.size();
        if size > self.limits.max_message_bytes {
            return Err(SendError::TooLarge {
                size,
                limit: self.limits.max_message_bytes,
            });
        }
        if message.body.is_empty() {
            return Err(SendError::Invalid {
                reason: "body is empty".to_owned(),
            });
        }
        if let Some(c) = message.body.chars().find(|c| !sqs_allows(*c)) {
            return Err(SendError::Invalid {
                reason: format!(
                    "body contains U+{:04X}, which SQS does not accept",
                    u32::from(c)
                ),
            });
        }
        if message.delay_seconds > MAX_DELAY_SECONDS {
            return Err(SendError::Invalid {
                reason: format!(
                    "delay_seconds is {}, at most {MAX_DELAY_SECONDS}",
                    message.delay_seconds
                ),
            });
        }
        if message.attributes.len() > MAX_ATTRIBUTES {
            return Err(SendError::Invalid {
                reason: format!(
                    "{} attributes, at most {MAX_ATTRIBUTES}",
                    message.attributes.len()
                ),
            });
        }
        for (name, value) in &message.attributes {
            if !valid_attribute_name(name) {
                return Err(SendError::Invalid {
                    reason: format!("attribute name `{name}` is not a valid SQS attribute name"),
                });
            }
            if value.is_empty() || value.chars().any(|c| !sqs_allows(c)) {
                return Err(SendError::Invalid {
                    reason: format!("attribute `{name}` must be non-empty text SQS accepts"),
                });
            }
        }
        Ok(size)
    }

    async fn send_chunk(
        &self,
        queue_url: &str,
        messages: &[OutgoingMessage],
        indices: Vec<usize>,
    ) -> Vec<(usize, Result<Sent, SendError>)> {
        let mut request = self.client.send_message_batch().queue_url(queue_url);
        for (position, &index) in indices.iter().enumerate() {
            let message = &messages[index];
            let mut entry = SendMessageBatchRequestEntry::builder()
                .id(position.to_string())
                .message_body(&message.body);
            if message.delay_seconds > 0 {
                // Validated to be at most 900.
                entry = entry.delay_seconds(i32::try_from(message.delay_seconds).unwrap_or(900));
            }
            for (name, value) in &message.attributes {
                match MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(value)
                    .build()
                {
                    Ok(attribute) => entry = entry.message_attributes(name, attribute),
                    Err(e) => return fail_all(&indices, CallFailure::Other, e.to_string()),
                }
            }
            match entry.build() {
                Ok(entry) => request = request.entries(entry),
                Err(e) => return fail_all(&indices, CallFailure::Other, e.to_string()),
            }
        }

        let output = match request.send().await {
            Ok(output) => output,
            Err(e) => {
                let kind = call_failure(&e);
                tracing::warn!(error = %DisplayErrorContext(&e), ?kind, entries = indices.len(), "SendMessageBatch failed");
                return fail_all(&indices, kind, DisplayErrorContext(&e).to_string());
            }
        };

        let mut results: Vec<Option<Result<Sent, SendError>>> = vec![None; indices.len()];
        for ok in output.successful() {
            if let Some(slot) = ok
                .id()
                .parse::<usize>()
                .ok()
                .and_then(|p| results.get_mut(p))
            {
                *slot = Some(Ok(Sent {
                    message_id: ok.message_id().to_owned(),
                }));
            }
        }
        for failed in output.failed() {
            if let Some(slot) = failed
                .id()
                .parse::<usize>()
                .ok()
                .and_then(|p| results.get_mut(p))
            {
                *slot = Some(Err(SendError::Rejected {
                    code: failed.code().to_owned(),
                    message: failed.message().unwrap_or_default().to_owned(),
                    sender_fault: failed.sender_fault(),
                }));
            }
        }
        indices
            .into_iter()
            .zip(results)
            .map(|(index, result)| (index, result.unwrap_or(Err(SendError::NotAcknowledged))))
            .collect()
    }
}

fn fail_all(
    indices: &[usize],
    kind: CallFailure,
    message: String,
) -> Vec<(usize, Result<Sent, SendError>)> {
    indices
        .iter()
        .map(|&index| {
            (
                index,
                Err(SendError::CallFailed {
                    kind,
                    message: message.clone(),
                }),
            )
        })
        .collect()
}

fn call_failure<E: aws_sdk_sqs::error::ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> CallFailure {
    match e {
        SdkError::TimeoutError(_) => CallFailure::Timeout,
        SdkError::DispatchFailure(failure) if failure.is_timeout() => CallFailure::Timeout,
        SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => CallFailure::Network,
        SdkError::ConstructionFailure(_) => CallFailure::Other,
        _ if e.code().is_some_and(|c| c.contains("Throttl")) => CallFailure::Throttled,
        _ => CallFailure::Service,
    }
}

/// Groups message positions (with their sizes) into batches of at most 10
/// entries and `max_bytes`, keeping input order.
fn chunk(sized: &[(usize, usize)], max_bytes: usize) -> Vec<Vec<usize>> {
    let mut chunks = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut bytes = 0;
    for &(index, size) in sized {
        if !current.is_empty() && (current.len() == MAX_BATCH_ENTRIES || bytes + size > max_bytes) {
            chunks.push(std::mem::take(&mut current));
            bytes = 0;
        }
        current.push(index);
        bytes += size;
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

/// The characters SQS accepts in a message (XML 1.0's `Char`).
fn sqs_allows(c: char) -> bool {
    matches!(c, '\u{9}' | '\u{A}' | '\u{D}' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

fn valid_attribute_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    !name.is_empty()
        && name.len() <= 256
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !name.starts_with('.')
        && !name.ends_with('.')
        && !name.contains("..")
        && !lower.starts_with("aws.")
        && !lower.starts_with("amazon.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_hold_at_most_ten_entries_in_order() {
        let sized: Vec<(usize, usize)> = (0..23).map(|i| (i, 10)).collect();
        let chunks = chunk(&sized, 262_144);
        assert_eq!(
            chunks.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![10, 10, 3]
        );
        assert_eq!(chunks.concat(), (0..23).collect::<Vec<_>>());
    }

    #[test]
    fn chunks_respect_the_byte_limit() {
        let sized = [
            (0, 100_000),
            (1, 100_000),
            (2, 100_000),
            (3, 5),
            (4, 262_144),
        ];
        let chunks = chunk(&sized, 262_144);
        assert_eq!(chunks, vec![vec![0, 1], vec![2, 3], vec![4]]);
    }

    #[test]
    fn size_counts_attributes() {
        let m = OutgoingMessage::new("a", "12345").with_attribute("tenant", "t1");
        assert_eq!(m.size(), 5 + 6 + 6 + 2);
    }

    #[test]
    fn sqs_character_set() {
        assert!(sqs_allows('\t') && sqs_allows('é') && sqs_allows('😀'));
        assert!(!sqs_allows('\u{0}') && !sqs_allows('\u{1F}') && !sqs_allows('\u{FFFE}'));
    }

    #[test]
    fn attribute_names() {
        assert!(valid_attribute_name("tenant_id"));
        assert!(valid_attribute_name("claim.v1"));
        assert!(!valid_attribute_name("AWS.trace"));
        assert!(!valid_attribute_name("a..b"));
        assert!(!valid_attribute_name("has space"));
        assert!(!valid_attribute_name(""));
    }

    #[test]
    fn retryable_errors() {
        assert!(!SendError::TooLarge { size: 2, limit: 1 }.is_retryable());
        assert!(
            SendError::CallFailed {
                kind: CallFailure::Throttled,
                message: String::new()
            }
            .is_retryable()
        );
        assert!(
            !SendError::Rejected {
                code: "x".into(),
                message: String::new(),
                sender_fault: true
            }
            .is_retryable()
        );
        assert!(
            SendError::Rejected {
                code: "x".into(),
                message: String::new(),
                sender_fault: false
            }
            .is_retryable()
        );
    }
}
