//! Corpus generator for the pattern benchmarks: realistic ~1 KB
//! CloudEvents-shaped events (nested objects, arrays, arrays of objects,
//! numbers, strings, IP addresses, and fields no pattern names) and pattern
//! sets that mix every operator. Deterministic for a given seed.

#![allow(dead_code)]

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

pub const TYPES: &[&str] = &[
    "payment.failed",
    "payment.succeeded",
    "invoice.created",
    "invoice.paid",
    "user.signup",
    "user.login",
    "user.invited",
    "plan.upgraded",
    "plan.downgraded",
    "usage.limit_reached",
    "ticket.opened",
    "ticket.closed",
    "device.heartbeat",
    "device.offline",
    "order.created",
    "order.shipped",
    "order.refunded",
    "trial.started",
    "trial.ended",
    "webhook.failed",
];
pub const SOURCES: &[&str] = &[
    "billing", "auth", "crm", "devices", "shop", "support", "api", "batch",
];
pub const CURRENCIES: &[&str] = &["EUR", "USD", "GBP", "JPY", "CHF", "SEK"];
pub const COUNTRIES: &[&str] = &[
    "DE", "FR", "US", "GB", "JP", "CH", "SE", "NL", "ES", "IT", "PL", "BR", "IN", "CA", "AU",
];
pub const TIERS: &[&str] = &["free", "pro", "team", "enterprise"];
pub const MESSAGES: &[&str] = &[
    "Card declined by issuer",
    "card expired",
    "Insufficient funds",
    "Network timeout talking to acquirer",
    "CARD blocked for fraud",
    "Authentication required",
    "ok",
    "Processing",
];

/// One event of about 1 KB.
pub fn event(rng: &mut StdRng, seq: u64) -> Value {
    let customer = rng.random_range(0..5000u32);
    let items: Vec<Value> = (0..rng.random_range(1..4))
        .map(|_| {
            json!({
                "sku": format!("SKU-{}", rng.random_range(0..400u32)),
                "qty": rng.random_range(1..10u32),
                "price": (rng.random_range(100..20000u32) as f64) / 100.0,
            })
        })
        .collect();
    let tags: Vec<String> = (0..rng.random_range(0..4))
        .map(|_| format!("tag{}", rng.random_range(0..40u32)))
        .collect();
    let mut data = json!({
        "amount": (rng.random_range(0..100_000u32) as f64) / 100.0,
        "currency": CURRENCIES[rng.random_range(0..CURRENCIES.len())],
        "attempt": rng.random_range(1..6u32),
        "customer": {
            "id": format!("cus_{customer:05}"),
            "email": format!("user{customer}@example.com"),
            "country": COUNTRIES[rng.random_range(0..COUNTRIES.len())],
            "tier": TIERS[rng.random_range(0..TIERS.len())],
        },
        "ip": format!("10.{}.{}.{}", rng.random_range(0..64u32), rng.random_range(0..256u32), rng.random_range(1..255u32)),
        "path": format!("/api/v1/{}/{}", ["orders", "users", "invoices", "devices"][rng.random_range(0..4)], rng.random_range(0..1000u32)),
        "message": MESSAGES[rng.random_range(0..MESSAGES.len())],
        "tags": tags,
        "items": items,
    });
    if rng.random_bool(0.1) {
        data["coupon"] = json!(format!("SAVE{}", rng.random_range(5..50u32)));
    }
    if rng.random_bool(0.05) {
        data["refund"] = json!({"reason": "requested_by_customer", "amount": 10.5});
    }
    json!({
        "specversion": "1.0",
        "id": format!("evt_{seq:010}"),
        "type": TYPES[rng.random_range(0..TYPES.len())],
        "source": SOURCES[rng.random_range(0..SOURCES.len())],
        "subject": format!("cus_{customer:05}"),
        "time": format!("2026-11-{:02}T{:02}:{:02}:{:02}Z", rng.random_range(1..29u32), rng.random_range(0..24u32), rng.random_range(0..60u32), rng.random_range(0..60u32)),
        "data": data,
        // Fields no pattern names: the scanner must skip them cheaply.
        "context": {
            "library": {"name": "triggeriq-node", "version": "2.4.1"},
            "device": {"model": "Pixel 8", "os": "Android 15", "locale": "de-DE", "timezone": "Europe/Berlin"},
            "user_agent": "Mozilla/5.0 (Linux; Android 15; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Mobile Safari/537.36",
            "trace": {"trace_id": format!("{:032x}", rng.random::<u128>()), "span_id": format!("{:016x}", rng.random::<u64>()), "sampled": true},
            "experiments": [{"id": "exp-checkout-v3", "variant": "B"}, {"id": "exp-pricing", "variant": "control"}],
        },
    })
}

pub fn events(n: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|i| serde_json::to_vec(&event(&mut rng, i as u64)).unwrap_or_default())
        .collect()
}

/// A generated pattern and whether quamina 0.7 can take it.
pub struct GenPattern {
    pub json: String,
    pub template: usize,
    pub quamina: bool,
    /// quamina panics past ~256 patterns sharing a field with these
    /// operators (see BENCHMARKS.md), so the quamina set caps them.
    pub quamina_risky: bool,
    /// anything-but patterns go last into quamina (its insertion-order bug).
    pub anything_but: bool,
}

pub const TEMPLATES: usize = 16;

/// Pattern number `i` of a mixed set: template `i % 16`, constants random.
/// Most templates name the event type (as most triggers do), together with
/// one or two conditions on the data.
pub fn pattern(rng: &mut StdRng, i: usize) -> GenPattern {
    let t = TYPES[rng.random_range(0..TYPES.len())];
    let t2 = TYPES[rng.random_range(0..TYPES.len())];
    let s = SOURCES[rng.random_range(0..SOURCES.len())];
    let template = i % TEMPLATES;
    let (p, quamina, risky, ab) = match template {
        0 => (
            json!({"type": [t], "data": {"currency": [CURRENCIES[rng.random_range(0..6)]]}}),
            true,
            false,
            false,
        ),
        1 => (
            json!({"type": [t], "data": {"customer": {"email": [{"prefix": format!("user{}", rng.random_range(10..500u32))}]}}}),
            true,
            false,
            false,
        ),
        2 => (
            json!({"source": [s], "data": {"path": [{"suffix": format!("/{}", rng.random_range(0..1000u32))}]}}),
            true,
            false,
            false,
        ),
        3 => (
            json!({"type": [t], "data": {"customer": {"country": [{"equals-ignore-case": COUNTRIES[rng.random_range(0..15)].to_lowercase()}]}}}),
            true,
            false,
            false,
        ),
        4 => (
            json!({"type": [t], "data": {"path": [{"wildcard": format!("/api/v1/*/{}*", rng.random_range(1..100u32))}]}}),
            true,
            false,
            false,
        ),
        5 => (
            json!({"type": [t], "source": [s], "data": {"coupon": [{"exists": true}]}}),
            true,
            false,
            false,
        ),
        6 => (
            json!({"type": [t], "data": {"currency": [{"anything-but": ["EUR", "USD", CURRENCIES[rng.random_range(2..6)]]}], "customer": {"tier": [TIERS[rng.random_range(0..4)]]}}}),
            true,
            true,
            true,
        ),
        7 => {
            let lo = rng.random_range(0..950u32);
            (
                json!({"type": [t], "data": {"amount": [{"numeric": [">", lo, "<=", lo + rng.random_range(20..200u32)]}]}}),
                true,
                true,
                false,
            )
        }
        8 => (
            json!({"type": [t], "data": {"ip": [{"cidr": format!("10.{}.0.0/16", rng.random_range(0..64u32))}]}}),
            true,
            false,
            false,
        ),
        9 => (
            json!({"type": [t], "source": [s], "data": {"refund": {"reason": [{"exists": false}]}}}),
            true,
            false,
            false,
        ),
        10 => (
            json!({"type": [t], "data": {"tags": [format!("tag{}", rng.random_range(0..40u32))]}}),
            true,
            false,
            false,
        ),
        11 => (
            json!({"data": {"items": {"sku": [format!("SKU-{}", rng.random_range(0..400u32))], "qty": [{"numeric": [">=", rng.random_range(2..9u32)]}]}}}),
            true,
            true,
            false,
        ),
        12 => (
            json!({"type": [t], "$or": [{"data": {"attempt": [{"numeric": [">", rng.random_range(2..5u32)]}]}}, {"data": {"customer": {"tier": ["enterprise"], "country": [COUNTRIES[rng.random_range(0..15)]]}}}]}),
            false,
            false,
            false,
        ),
        13 => (
            json!({"type": [t], "data": {"customer": {"email": [{"anything-but": {"prefix": format!("user{}", rng.random_range(1..10u32))}}], "tier": [TIERS[rng.random_range(0..4)]], "country": [COUNTRIES[rng.random_range(0..15)]]}}}),
            false,
            false,
            false,
        ),
        14 => {
            let word = ["card", "insufficient", "network"][rng.random_range(0..3)];
            (
                json!({"source": [s], "type": [t], "data": {"message": [{"prefix": {"equals-ignore-case": word}}]}}),
                false,
                false,
                false,
            )
        }
        _ => (
            json!({"type": [t, t2], "data": {"customer": {"tier": [TIERS[rng.random_range(0..4)]]}, "currency": [CURRENCIES[rng.random_range(0..6)]], "attempt": [rng.random_range(1..6u32)]}}),
            true,
            false,
            false,
        ),
    };
    GenPattern {
        json: p.to_string(),
        template,
        quamina,
        quamina_risky: risky,
        anything_but: ab,
    }
}

pub fn patterns(n: usize, seed: u64) -> Vec<GenPattern> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n).map(|i| pattern(&mut rng, i)).collect()
}

/// Patterns of the same shapes whose constants no generated event has
/// (unknown customers, SKUs and paths): they enlarge a set without adding
/// matches, to show how cost grows with the number of patterns alone.
pub fn non_matching_patterns(n: usize, seed: u64) -> Vec<String> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let t = TYPES[rng.random_range(0..TYPES.len())];
            let k = rng.random_range(0..1_000_000u32);
            match i % 6 {
                0 => json!({"type": [t], "subject": [format!("cus_x{k}")]}),
                1 => json!({"type": [t], "data": {"customer": {"email": [{"prefix": format!("nobody{k}@")}]}}}),
                2 => json!({"type": [t], "data": {"items": {"sku": [format!("SKU-X{k}")], "qty": [{"numeric": [">", 1]}]}}}),
                3 => json!({"type": [t], "data": {"path": [{"wildcard": format!("/api/v2/*/{k}")}]}}),
                4 => json!({"type": [t], "data": {"amount": [{"numeric": [">", 100_000 + k, "<", 200_000 + k]}]}}),
                _ => json!({"type": [t], "data": {"customer": {"id": [{"equals-ignore-case": format!("CUS_X{k}")}]}}}),
            }
            .to_string()
        })
        .collect()
}
