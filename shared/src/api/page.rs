//! Cursor pagination, the same on every list route: `?limit=1..100` (50 when absent) and an
//! opaque `?cursor=` that the previous page's `next_cursor` gave. A cursor is the last item's
//! sort key, as text, in base64url: opaque to clients, and refused with a 400 when it is not
//! one this API made.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use lambda_http::Request;
use serde::Serialize;

use super::query;
use crate::ids::{FiringId, TriggerId};
use crate::problem::FieldError;

/// Page size when `?limit` is absent, and the largest a caller may ask for.
pub const DEFAULT_PAGE: i64 = 50;
pub const MAX_PAGE: i64 = 100;

/// One page of items and the cursor of the next page, if any.
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// The sort key a list continues after.
pub trait PageKey: Sized {
    fn to_text(&self) -> String;
    fn from_text(text: &str) -> Option<Self>;
}

impl PageKey for TriggerId {
    fn to_text(&self) -> String {
        self.to_string()
    }

    fn from_text(text: &str) -> Option<Self> {
        TriggerId::parse(text).ok()
    }
}

/// Newest first: `(matched_at, id)`, the time in microseconds.
impl PageKey for (DateTime<Utc>, FiringId) {
    fn to_text(&self) -> String {
        format!("{}:{}", self.0.timestamp_micros(), self.1)
    }

    fn from_text(text: &str) -> Option<Self> {
        let (micros, id) = text.split_once(':')?;
        Some((
            DateTime::from_timestamp_micros(micros.parse().ok()?)?,
            FiringId::parse(id).ok()?,
        ))
    }
}

fn encode<K: PageKey>(key: &K) -> String {
    URL_SAFE_NO_PAD.encode(key.to_text())
}

fn decode<K: PageKey>(raw: &str) -> Option<K> {
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(raw).ok()?).ok()?;
    K::from_text(&text)
}

/// The `?limit` and `?cursor` of a list request; each bad one adds a problem (and the limit
/// falls back to the default, so the other parameters are still checked).
pub fn params<K: PageKey>(req: &Request, problems: &mut Vec<FieldError>) -> (i64, Option<K>) {
    let limit = match query(req, "limit") {
        None => DEFAULT_PAGE,
        Some(raw) => match raw.parse::<i64>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
            _ => {
                problems.push(FieldError::new(
                    "?limit",
                    format!("must be an integer from 1 to {MAX_PAGE}"),
                ));
                DEFAULT_PAGE
            }
        },
    };
    let after = query(req, "cursor").and_then(|raw| {
        let decoded = decode(raw);
        if decoded.is_none() {
            problems.push(FieldError::new(
                "?cursor",
                "is not a cursor this API returned",
            ));
        }
        decoded
    });
    (limit, after)
}

/// A page of `rows`, fetched with `limit + 1` so that the extra row says whether another page
/// follows; `key` is the sort key of a row.
pub fn page<R, T, K: PageKey>(
    mut rows: Vec<R>,
    limit: i64,
    key: impl Fn(&R) -> K,
    view: impl FnMut(R) -> T,
) -> Page<T> {
    let limit = usize::try_from(limit).unwrap_or(0);
    let next_cursor = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|last| encode(&key(last)))
    } else {
        None
    };
    Page {
        items: rows.into_iter().map(view).collect(),
        next_cursor,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_junk_is_refused() {
        let at = DateTime::from_timestamp_micros(1_780_000_000_123_456).unwrap();
        let key = (at, FiringId::new());
        assert_eq!(
            decode::<(DateTime<Utc>, FiringId)>(&encode(&key)),
            Some(key)
        );
        let trigger = TriggerId::new();
        assert_eq!(decode::<TriggerId>(&encode(&trigger)), Some(trigger));
        assert_eq!(decode::<TriggerId>("not-a-cursor"), None);
        assert_eq!(
            decode::<(DateTime<Utc>, FiringId)>(&URL_SAFE_NO_PAD.encode("12:nope")),
            None
        );
        // A trigger cursor is not a firing cursor.
        assert_eq!(decode::<(DateTime<Utc>, FiringId)>(&encode(&trigger)), None);
    }

    #[test]
    fn a_page_holds_at_most_limit_items_and_says_where_to_continue() {
        let rows: Vec<TriggerId> = (0..3).map(|_| TriggerId::new()).collect();
        let full = page(rows.clone(), 2, |t| *t, |t| t);
        assert_eq!(full.items, rows[..2]);
        assert_eq!(
            full.next_cursor.as_deref().and_then(decode::<TriggerId>),
            Some(rows[1])
        );
        let last = page(rows.clone(), 3, |t| *t, |t| t);
        assert_eq!(last.next_cursor, None);
    }
}
