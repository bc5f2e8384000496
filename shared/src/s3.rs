//! The S3 claim check: a queue message too large for SQS is stored in S3 and
//! only a reference to it is queued; consumers get the original back
//! transparently.
//!
//! # Envelope
//!
//! Every message body produced by [`ClaimCheck::wrap`] is one of:
//!
//! ```json
//! {"v":1,"inline":<the original JSON, verbatim>}
//! {"v":1,"s3":{"bucket":"…","key":"…","size":307200,"sha256":"<hex>"}}
//! ```
//!
//! The original is embedded as raw JSON (not as a string), so an inline body
//! costs 17 bytes of overhead and no escaping. `size` and `sha256` describe
//! the original's bytes; [`ClaimCheck::unwrap`] fetches the object and
//! refuses it unless both match, so a truncated, replaced or corrupted object
//! is an error and never a wrong event. A body whose `v` is unknown is an
//! error too (a newer producer than this consumer).
//!
//! # Objects
//!
//! Keys are `claims/<tenant>/<YYYY-MM-DD>/<SHA-256 of the id>.json` (UTC date of
//! writing; the id hashed, so a client-chosen id can neither add path segments nor push the
//! key over S3's 1,024 bytes). Objects are never deleted by consumers, because SQS may deliver
//! a message again: the bucket needs a lifecycle rule expiring `claims/`
//! after longer than the queues' retention plus their DLQs' (e.g. 30 days
//! for 14-day queues). The date in the key makes per-day listing and manual
//! cleanup easy. When enqueueing fails after the object was written, the
//! producer may [`ClaimCheck::discard`] it, or leave it to the lifecycle rule.

use crate::aws::LazyS3;
use crate::ids::TenantId;
use aws_sdk_s3::primitives::ByteStream;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

/// The envelope version this code writes and reads.
pub const ENVELOPE_VERSION: u32 = 1;
/// Default threshold: queue bodies above 256 KB go to S3 (SQS's classic limit,
/// leaving room under 256 KiB for message attributes).
pub const DEFAULT_THRESHOLD: usize = 256_000;

/// Where a claimed body is stored, and how to recognise it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct S3Ref {
    pub bucket: String,
    pub key: String,
    /// Length of the original body in bytes.
    pub size: u64,
    /// Lower-case hex SHA-256 of the original body.
    pub sha256: String,
}

/// The body to put on the queue, and the S3 object behind it if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedBody {
    /// The envelope JSON to send as the SQS message body.
    pub body: String,
    /// Set when the original went to S3.
    pub claim: Option<S3Ref>,
}

/// A claim-check failure.
#[derive(Debug, thiserror::Error)]
pub enum ClaimCheckError {
    /// The body to wrap is not JSON, or an id component is unusable.
    #[error("{field}: {reason}")]
    InvalidInput { field: &'static str, reason: String },
    /// A queued body is not a valid envelope.
    #[error("queued body is not a claim-check envelope: {0}")]
    InvalidEnvelope(String),
    /// The envelope's version is not one this code reads.
    #[error(
        "claim-check envelope version {0} is not supported (this build reads {ENVELOPE_VERSION})"
    )]
    UnsupportedVersion(u32),
    /// The stored object is not the body the envelope describes.
    #[error("claimed object s3://{bucket}/{key} does not match its reference: {reason}")]
    Mismatch {
        bucket: String,
        key: String,
        reason: String,
    },
    /// An S3 call failed (after the SDK's retries).
    #[error("S3 {operation} of s3://{bucket}/{key} failed")]
    S3 {
        operation: &'static str,
        bucket: String,
        key: String,
        #[source]
        source: Box<aws_sdk_s3::Error>,
    },
}

impl ClaimCheckError {
    /// Whether trying again may succeed: S3 failed, or the object is not (yet) the body its
    /// reference describes. Everything else fails the same way on the same bytes.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::S3 { .. } | Self::Mismatch { .. })
    }
}

#[derive(Serialize)]
struct WriteEnvelope<'a> {
    v: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    inline: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    s3: Option<&'a S3Ref>,
}

#[derive(Deserialize)]
struct ReadEnvelope<'a> {
    v: u32,
    #[serde(borrow, default)]
    inline: Option<&'a RawValue>,
    #[serde(default)]
    s3: Option<S3Ref>,
}

/// Stores oversized queue bodies in one bucket; cheap to clone.
#[derive(Debug, Clone)]
pub struct ClaimCheck {
    client: LazyS3,
    bucket: String,
    threshold: usize,
}

impl ClaimCheck {
    /// Claims in `bucket`, for envelopes larger than [`DEFAULT_THRESHOLD`] bytes. `client`: an
    /// `aws_sdk_s3::Client`, or a [`LazyS3`] that is built when a claim is first stored or read.
    pub fn new(client: impl Into<LazyS3>, bucket: impl Into<String>) -> Self {
        Self {
            client: client.into(),
            bucket: bucket.into(),
            threshold: DEFAULT_THRESHOLD,
        }
    }

    /// The same claim check with another threshold (bytes of envelope).
    pub fn with_threshold(mut self, threshold: usize) -> Self {
        self.threshold = threshold;
        self
    }

    /// Envelopes longer than this many bytes go to S3.
    pub fn threshold(&self) -> usize {
        self.threshold
    }

    /// Wraps the JSON `body` of message `id` for the queue: inline when the
    /// envelope fits the threshold, otherwise stored in S3 first (the object
    /// is written before this returns, so a queued reference always resolves).
    #[tracing::instrument(skip(self, body, now), fields(size = body.len()))]
    pub async fn wrap(
        &self,
        tenant: TenantId,
        id: &str,
        body: &str,
        now: DateTime<Utc>,
    ) -> Result<QueuedBody, ClaimCheckError> {
        let raw: &RawValue =
            serde_json::from_str(body).map_err(|e| ClaimCheckError::InvalidInput {
                field: "body",
                reason: format!("not JSON: {e}"),
            })?;
        let inline = envelope(&WriteEnvelope {
            v: ENVELOPE_VERSION,
            inline: Some(raw),
            s3: None,
        })?;
        if inline.len() <= self.threshold {
            return Ok(QueuedBody {
                body: inline,
                claim: None,
            });
        }

        let key = object_key(tenant, id, now)?;
        let reference = S3Ref {
            bucket: self.bucket.clone(),
            key,
            size: body.len() as u64,
            sha256: hex::encode(Sha256::digest(body.as_bytes())),
        };
        self.client
            .put_object()
            .bucket(&reference.bucket)
            .key(&reference.key)
            .content_type("application/json")
            .body(ByteStream::from(body.as_bytes().to_vec()))
            .send()
            .await
            .map_err(|e| ClaimCheckError::S3 {
                operation: "PutObject",
                bucket: reference.bucket.clone(),
                key: reference.key.clone(),
                source: Box::new(e.into()),
            })?;
        let body = envelope(&WriteEnvelope {
            v: ENVELOPE_VERSION,
            inline: None,
            s3: Some(&reference),
        })?;
        Ok(QueuedBody {
            body,
            claim: Some(reference),
        })
    }

    /// The original body of a queued envelope, fetched from S3 when claimed.
    #[tracing::instrument(skip_all)]
    pub async fn unwrap(&self, message_body: &str) -> Result<String, ClaimCheckError> {
        match parse(message_body)? {
            Parsed::Inline(raw) => Ok(raw.to_owned()),
            Parsed::Claimed(reference) => self.fetch(&reference).await,
        }
    }

    /// Deletes a claimed object whose reference never reached the queue.
    pub async fn discard(&self, reference: &S3Ref) -> Result<(), ClaimCheckError> {
        self.client
            .delete_object()
            .bucket(&reference.bucket)
            .key(&reference.key)
            .send()
            .await
            .map_err(|e| ClaimCheckError::S3 {
                operation: "DeleteObject",
                bucket: reference.bucket.clone(),
                key: reference.key.clone(),
                source: Box::new(e.into()),
            })?;
        Ok(())
    }

    async fn fetch(&self, reference: &S3Ref) -> Result<String, ClaimCheckError> {
        let s3_error = |operation, e: aws_sdk_s3::Error| ClaimCheckError::S3 {
            operation,
            bucket: reference.bucket.clone(),
            key: reference.key.clone(),
            source: Box::new(e),
        };
        let object = self
            .client
            .get_object()
            .bucket(&reference.bucket)
            .key(&reference.key)
            .send()
            .await
            .map_err(|e| s3_error("GetObject", e.into()))?;
        let bytes = object
            .body
            .collect()
            .await
            .map_err(|e| ClaimCheckError::Mismatch {
                bucket: reference.bucket.clone(),
                key: reference.key.clone(),
                reason: format!("reading the object failed: {e}"),
            })?
            .into_bytes();
        let mismatch = |reason: String| ClaimCheckError::Mismatch {
            bucket: reference.bucket.clone(),
            key: reference.key.clone(),
            reason,
        };
        if bytes.len() as u64 != reference.size {
            return Err(mismatch(format!(
                "{} bytes, expected {}",
                bytes.len(),
                reference.size
            )));
        }
        let digest = hex::encode(Sha256::digest(&bytes));
        if !digest.eq_ignore_ascii_case(&reference.sha256) {
            return Err(mismatch("SHA-256 differs".to_owned()));
        }
        String::from_utf8(bytes.to_vec()).map_err(|_| mismatch("not UTF-8".to_owned()))
    }
}

enum Parsed<'a> {
    Inline(&'a str),
    Claimed(S3Ref),
}

fn parse(message_body: &str) -> Result<Parsed<'_>, ClaimCheckError> {
    let envelope: ReadEnvelope<'_> = serde_json::from_str(message_body)
        .map_err(|e| ClaimCheckError::InvalidEnvelope(e.to_string()))?;
    if envelope.v != ENVELOPE_VERSION {
        return Err(ClaimCheckError::UnsupportedVersion(envelope.v));
    }
    match (envelope.inline, envelope.s3) {
        (Some(raw), None) => Ok(Parsed::Inline(raw.get())),
        (None, Some(reference)) => Ok(Parsed::Claimed(reference)),
        (Some(_), Some(_)) => Err(ClaimCheckError::InvalidEnvelope(
            "has both `inline` and `s3`".to_owned(),
        )),
        (None, None) => Err(ClaimCheckError::InvalidEnvelope(
            "has neither `inline` nor `s3`".to_owned(),
        )),
    }
}

/// The S3 reference in a queued body, if it is a claim (for cleanup tools).
pub fn claim_of(message_body: &str) -> Result<Option<S3Ref>, ClaimCheckError> {
    Ok(match parse(message_body)? {
        Parsed::Inline(_) => None,
        Parsed::Claimed(reference) => Some(reference),
    })
}

fn envelope(e: &WriteEnvelope<'_>) -> Result<String, ClaimCheckError> {
    serde_json::to_string(e).map_err(|e| ClaimCheckError::InvalidInput {
        field: "body",
        reason: e.to_string(),
    })
}

/// `claims/<tenant>/<date>/<SHA-256 of the id>.json`: the id is hashed, so the key has the same
/// short length whatever the client put in it (S3 allows 1,024 bytes; an event id may be 256
/// characters of four bytes each, more once escaped) and can never add path segments.
fn object_key(tenant: TenantId, id: &str, now: DateTime<Utc>) -> Result<String, ClaimCheckError> {
    if id.is_empty() {
        return Err(ClaimCheckError::InvalidInput {
            field: "id",
            reason: "must not be empty".to_owned(),
        });
    }
    Ok(format!(
        "claims/{tenant}/{}/{}.json",
        now.format("%Y-%m-%d"),
        hex::encode(Sha256::digest(id.as_bytes()))
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn keys_hash_the_id_so_any_id_makes_one_short_segment() {
        let now = Utc.with_ymd_and_hms(2026, 5, 17, 23, 59, 59).unwrap();
        let tenant = TenantId::new();
        let key = object_key(tenant, "evt-1", now).unwrap();
        assert_eq!(
            key,
            format!(
                "claims/{tenant}/2026-05-17/{}.json",
                hex::encode(Sha256::digest(b"evt-1"))
            )
        );
        // 256 four-byte characters, path tricks: the same length, one segment.
        for id in [
            "\u{1F600}".repeat(256),
            "../a/b c".to_owned(),
            "..".to_owned(),
        ] {
            let key = object_key(tenant, &id, now).unwrap();
            assert_eq!(
                key.len(),
                "claims//2026-05-17/.json".len() + 36 + 64,
                "{id}"
            );
            assert_eq!(key.matches('/').count(), 3, "{key}");
        }
        assert_ne!(
            object_key(tenant, "a", now).unwrap(),
            object_key(tenant, "b", now).unwrap()
        );
        assert!(matches!(
            object_key(tenant, "", now),
            Err(ClaimCheckError::InvalidInput { field: "id", .. })
        ));
    }

    #[test]
    fn envelopes_parse_strictly() {
        assert!(matches!(
            parse(r#"{"v":1,"inline":{"a":1}}"#),
            Ok(Parsed::Inline(r#"{"a":1}"#))
        ));
        assert!(matches!(
            parse(r#"{"v":2,"inline":1}"#),
            Err(ClaimCheckError::UnsupportedVersion(2))
        ));
        assert!(matches!(
            parse(r#"{"v":1}"#),
            Err(ClaimCheckError::InvalidEnvelope(_))
        ));
        assert!(matches!(
            parse(r#"{"type":"order.created"}"#),
            Err(ClaimCheckError::InvalidEnvelope(_))
        ));
        assert!(matches!(
            parse("not json"),
            Err(ClaimCheckError::InvalidEnvelope(_))
        ));
        let both = r#"{"v":1,"inline":1,"s3":{"bucket":"b","key":"k","size":1,"sha256":"00"}}"#;
        assert!(matches!(
            parse(both),
            Err(ClaimCheckError::InvalidEnvelope(_))
        ));
        let claimed = r#"{"v":1,"s3":{"bucket":"b","key":"k","size":1,"sha256":"00"}}"#;
        assert_eq!(claim_of(claimed).unwrap().unwrap().key, "k");
    }
}
