//! Any bytes as a request body: the one JSON rule (`json::strict`) and the ingest body reader
//! never panic, and they agree with serde_json: a body the rule accepts and serde_json reads
//! is read by `strict::read` too, and a body serde_json cannot read is never called invalid
//! for a reason that hides its malformation from the client (it is left to serde_json).
#![no_main]

use libfuzzer_sys::fuzz_target;
use triggeriq::event::{EventLimits, IngestBody};
use triggeriq::json::strict::{self, Unreadable};

fuzz_target!(|data: &[u8]| {
    let checked = strict::check(data, "$", 100);
    let parsed = serde_json::from_slice::<serde_json::Value>(data);
    if checked.is_ok() && parsed.is_ok() {
        assert!(
            strict::read::<serde_json::Value>(data, 100).is_ok(),
            "accepted by the rule and by serde_json, refused by read"
        );
    }
    if let Err(Unreadable::Invalid(problems)) = strict::read::<serde_json::Value>(data, 100) {
        assert!(!problems.is_empty() && problems.len() <= 20);
        assert!(problems.iter().all(|p| p.path.starts_with('$')));
    }
    let now = chrono::DateTime::from_timestamp(1_780_000_000, 0).unwrap_or_default();
    let _ = IngestBody::parse(data, &EventLimits::default(), now);
});
