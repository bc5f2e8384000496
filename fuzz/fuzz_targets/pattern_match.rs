//! Pattern text and event bytes, split at the first 0xFF byte: nothing
//! panics, the compiled PatternSet agrees with the reference interpreter
//! (on acceptance of the bytes, and on the result for the event as parsed).
//! The interpreter runs within `DEFAULT_MATCH_STEPS`, so that no input takes
//! long; a pair it finds too expensive is skipped.
#![no_main]

use libfuzzer_sys::fuzz_target;
use triggeriq::pattern::{DEFAULT_MATCH_STEPS, MatchError, Pattern, PatternSet};

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|b| *b == 0xFF).unwrap_or(data.len());
    let (pattern, event) = (&data[..split], data.get(split + 1..).unwrap_or(&[]));
    let Ok(pattern) = std::str::from_utf8(pattern) else {
        return;
    };
    let Ok(p) = Pattern::parse(pattern) else {
        return;
    };
    let mut set = PatternSet::new();
    if set.insert(0u8, &p).is_err() {
        return;
    }
    let reference = match p.matches_within(event, DEFAULT_MATCH_STEPS) {
        Err(MatchError::TooExpensive { .. }) => return,
        other => other,
    };
    let compiled = set.matches(event);
    assert_eq!(
        reference.is_ok(),
        compiled.is_ok(),
        "acceptance of the event bytes differs"
    );
    // Raw bytes may repeat a key, which serde_json collapses; compare the
    // results on the event as serde_json reads it.
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(event) {
        let bytes = serde_json::to_vec(&value).unwrap_or_default();
        let Ok(expected) = p.matches_value_within(&value, DEFAULT_MATCH_STEPS) else {
            return;
        };
        let got = set.matches(&bytes).map(|ids| ids == [0]).unwrap_or(false);
        assert_eq!(
            expected,
            got,
            "set and interpreter disagree on {}",
            String::from_utf8_lossy(&bytes)
        );
    }
});
