//! Any bytes as pattern text: parsing never panics, and a valid pattern
//! re-validates from its own value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use triggeriq::pattern::{Pattern, PatternLimits};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(p) = Pattern::parse(text) {
        let again = Pattern::from_value(p.as_value(), &PatternLimits::default());
        assert!(again.is_ok(), "a valid pattern must stay valid: {text}");
    }
});
