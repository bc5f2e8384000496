//! Invalid patterns are refused with the JSON path of each problem and a
//! reason; no input makes parsing or matching panic.

use serde_json::{Value, json};
use triggeriq::pattern::{Pattern, PatternLimits, PatternSet};

fn errors(text: &str) -> Vec<String> {
    match Pattern::parse(text) {
        Ok(_) => panic!("{text} should be invalid"),
        Err(e) => e.errors.iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn a_bad_numeric_operator_is_reported_at_its_path() {
    let errs = errors(r#"{"data": {"amount": [{"numeric": ["!=", 5]}]}}"#);
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].starts_with("$.data.amount[0].numeric: \"!=\" is not a numeric operator"),
        "{errs:?}"
    );
}

#[test]
fn every_problem_is_reported_not_just_the_first() {
    let errs =
        errors(r#"{"a": "x", "b": [], "c": {"d": [{"prefix": 1}], "e": [{"EXISTS": true}]}}"#);
    assert_eq!(errs.len(), 4, "{errs:?}");
    assert!(errs.iter().any(|e| e.starts_with("$.a: ")));
    assert!(errs.iter().any(|e| e.starts_with("$.b: ")));
    assert!(errs.iter().any(|e| e.starts_with("$.c.d[0].prefix: ")));
    assert!(errs.iter().any(|e| {
        e.starts_with("$.c.e[0]: \"EXISTS\" is not an operator (operator names are lowercase)")
    }));
}

#[test]
fn odd_keys_are_quoted_in_paths() {
    let errs = errors(r#"{"detail type": [{"prefix": []}], "$or": [{"x y": 5}, {"z": ["1"]}]}"#);
    assert!(
        errs.iter()
            .any(|e| e.starts_with(r#"$["detail type"][0].prefix: "#)),
        "{errs:?}"
    );
    assert!(
        errs.iter().any(|e| e.starts_with(r#"$.$or[0]["x y"]: "#)),
        "{errs:?}"
    );
}

#[test]
fn limits_are_configurable() {
    let text = r#"{"a": {"b": {"c": ["x"]}}}"#;
    assert!(Pattern::parse(text).is_ok());
    let tight = PatternLimits {
        max_chars: 4096,
        max_depth: 3,
    };
    let err = Pattern::parse_with(text, &tight).expect_err("too deep");
    assert!(err.errors[0].message.contains("limit is 3"), "{err}");
    let short = PatternLimits {
        max_chars: 10,
        max_depth: 32,
    };
    assert!(Pattern::parse_with(text, &short).is_err());
    // Whitespace does not count: the compact form is measured.
    let spaced = format!("{{ \"a\" :{} [\"x\"] }}", " ".repeat(5000));
    assert!(Pattern::parse(&spaced).is_ok());
    let long = format!(r#"{{"a": ["{}"]}}"#, "x".repeat(5000));
    assert!(
        Pattern::parse(&long).expect_err("too long").errors[0]
            .message
            .contains("4096")
    );
}

#[test]
fn hostile_inputs_are_refused_without_panicking() {
    let deep_text = "[".repeat(100_000) + &"]".repeat(100_000);
    assert!(Pattern::parse(&deep_text).is_err());
    let deep_obj = r#"{"a":"#.repeat(50_000) + "[1]" + &"}".repeat(50_000);
    assert!(Pattern::parse(&deep_obj).is_err());
    let huge = format!(r#"{{"a": [{}]}}"#, vec!["1"; 200_000].join(","));
    assert!(Pattern::parse(&huge).is_err());
    for text in [
        "",
        "null",
        "[]",
        "\"x\"",
        "{",
        r#"{"a": ["\ud800"]}"#,
        r#"{"🚀": [{"wildcard": "*🚀*"}]}"#,
        r#"{"a": [{"numeric": []}]}"#,
        r#"{"a": [{"numeric": [">", 1e400]}]}"#,
        r#"{"a": [{}]}"#,
        r#"{"a": [{"anything-but": {}}]}"#,
        r#"{"a": [{"cidr": "::/129"}]}"#,
        r#"{"$or": []}"#,
        "{\"a\": [\"\u{0}\"]}",
    ] {
        let _ = Pattern::parse(text);
    }
    assert!(Pattern::parse(r#"{"🚀": [{"wildcard": "*🚀*"}]}"#).is_ok());

    // A value built in memory, deeper than any parser would allow.
    let mut v = json!(["x"]);
    for _ in 0..500 {
        v = json!({ "a": v });
    }
    assert!(Pattern::from_value(&v, &PatternLimits::default()).is_err());
}

#[test]
fn hostile_events_are_refused_or_matched_without_panicking() {
    let p = Pattern::parse(r#"{"a": {"b": [{"exists": false}]}, "c": [{"wildcard": "*x*"}]}"#)
        .expect("valid");
    let mut set = PatternSet::new();
    set.insert(1, &p).expect("insert");
    let deep = "[".repeat(10_000) + &"]".repeat(10_000);
    assert!(p.matches(deep.as_bytes()).is_err());
    assert!(set.matches(deep.as_bytes()).is_err());
    let wide = format!(
        r#"{{"c": [{}]}}"#,
        vec!["\"yyyyyyyyyy\""; 100_000].join(",")
    );
    assert!(!p.matches(wide.as_bytes()).expect("json"));
    assert!(set.matches(wide.as_bytes()).expect("json").is_empty());
    for event in [
        &b"\xff\xfe"[..],
        b"{\"c\": \"\\ud83d\\ude80x\"}",
        b"{\"c\": \"x\"} trailing",
        b"1e999",
    ] {
        let r = p.matches(event).ok();
        let s = set.matches(event).ok().map(|v| v == vec![1]);
        assert_eq!(r, s, "event {:?}", String::from_utf8_lossy(event));
    }
}

#[test]
fn matches_value_and_as_value_round_trip() {
    let v: Value = json!({"type": ["a"]});
    let p = Pattern::from_value(&v, &PatternLimits::default()).expect("valid");
    assert_eq!(p.as_value(), &v);
    assert!(p.matches_value(&json!({"type": "a"})));
    assert!(!p.matches_value(&json!({"type": "b"})));
}
