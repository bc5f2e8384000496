//! Any bytes as pattern text: parsing never panics, a valid pattern
//! re-validates from its own value at the same cost, and no pattern within
//! the default limits costs more than the expansion budget.
#![no_main]

use libfuzzer_sys::fuzz_target;
use triggeriq::pattern::{MAX_EXPANDED_VALUES, Pattern, PatternLimits};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(p) = Pattern::parse(text) {
        let again = Pattern::from_value(p.as_value(), &PatternLimits::default());
        assert!(
            again.is_ok_and(|q| q.cost() == p.cost()),
            "a valid pattern must stay valid, at the same cost: {text}"
        );
        // Without `$or` 4,096 characters hold about 2,000 values; with it,
        // validation holds the expansion to the budget.
        assert!(p.cost() <= MAX_EXPANDED_VALUES, "cost {}: {text}", p.cost());
    }
});
