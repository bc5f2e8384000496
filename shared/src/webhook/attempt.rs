//! The record of one delivery attempt, as the HTTP client produces it and the
//! retry schedule and the delivery log consume it.

use std::net::SocketAddr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How many bytes of a response body an attempt keeps.
pub const SNIPPET_BYTES: usize = 1024;

/// What happened when one webhook was sent once. Serializable so that the
/// delivery function can hand it to whatever records deliveries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptOutcome {
    /// When the attempt started.
    pub started_at: DateTime<Utc>,
    /// From the start until the response headers arrived, or until the error.
    #[serde(with = "millis")]
    pub latency: Duration,
    /// The HTTP status, when a response arrived.
    pub status: Option<u16>,
    /// Why the attempt failed to get a response, or why reading it failed.
    pub error: Option<AttemptError>,
    /// The first [`SNIPPET_BYTES`] of the response body, decoded as UTF-8
    /// (invalid sequences replaced, a character cut at the end dropped).
    pub response_snippet: Option<String>,
    /// The response's `Retry-After`, when present and parseable.
    #[serde(with = "opt_secs", default)]
    pub retry_after: Option<Duration>,
    /// The address actually connected to (always one the SSRF guard allowed).
    pub remote_addr: Option<SocketAddr>,
}

impl AttemptOutcome {
    /// A 2xx status: the receiver accepted the webhook.
    pub fn is_success(&self) -> bool {
        matches!(self.status, Some(200..=299))
    }
}

/// Why an attempt failed, with a stable machine-readable kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptError {
    /// What kind of failure.
    pub kind: AttemptErrorKind,
    /// Human-readable detail (never contains the signing secret).
    pub message: String,
}

impl AttemptError {
    /// An error of `kind` with a human-readable `message`.
    pub fn new(kind: AttemptErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for AttemptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.message)
    }
}

/// Classes of attempt failure. Only [`AttemptErrorKind::InvalidTarget`] and
/// [`AttemptErrorKind::Refused`] are permanent; the rest are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptErrorKind {
    /// The URL is not an absolute http(s) URL.
    InvalidTarget,
    /// The SSRF guard refused the target's address.
    Refused,
    /// The host name could not be resolved.
    Dns,
    /// The TCP or TLS connection could not be made.
    Connect,
    /// No response within the attempt's time limit.
    Timeout,
    /// Any other failure to send the request or read the response head.
    Request,
    /// The response arrived but its body could not be read (the status stands).
    Body,
    /// There was no secret to sign with, so nothing was sent.
    Unsigned,
}

impl AttemptErrorKind {
    /// The snake_case name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidTarget => "invalid_target",
            Self::Refused => "refused",
            Self::Dns => "dns",
            Self::Connect => "connect",
            Self::Timeout => "timeout",
            Self::Request => "request",
            Self::Body => "body",
            Self::Unsigned => "unsigned",
        }
    }
}

/// Parses a `Retry-After` value: delay-seconds, or an HTTP-date (taken
/// relative to `now`; a date in the past means "now"). `None` when unparseable.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    // IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") is a subset of RFC 2822.
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

/// Decodes a body prefix as UTF-8: a multi-byte character cut off at the end
/// is dropped rather than shown as U+FFFD; other invalid bytes are replaced.
pub fn snippet_from_bytes(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(e) if e.error_len().is_none() => {
            String::from_utf8_lossy(&bytes[..e.valid_up_to()]).into_owned()
        }
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

mod opt_secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        let now = Utc.with_ymd_and_hms(2015, 10, 21, 7, 28, 0).unwrap();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:30:00 GMT", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("-5", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn snippets_drop_a_character_cut_at_the_end() {
        let text = "héllo €";
        let bytes = text.as_bytes();
        // Cut inside the three-byte euro sign.
        assert_eq!(snippet_from_bytes(&bytes[..bytes.len() - 1]), "héllo ");
        assert_eq!(snippet_from_bytes(bytes), text);
        assert_eq!(snippet_from_bytes(b"ok\xffok"), "ok\u{fffd}ok");
    }

    #[test]
    fn outcome_serializes_with_stable_field_names() {
        let outcome = AttemptOutcome {
            started_at: Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap(),
            latency: Duration::from_millis(1500),
            status: Some(503),
            error: None,
            response_snippet: Some("busy".into()),
            retry_after: Some(Duration::from_secs(30)),
            remote_addr: None,
        };
        let json = serde_json::to_value(&outcome).unwrap();
        assert_eq!(json["latency"], 1500);
        assert_eq!(json["retry_after"], 30);
        assert_eq!(json["status"], 503);
        let back: AttemptOutcome = serde_json::from_value(json).unwrap();
        assert_eq!(back, outcome);
    }
}
