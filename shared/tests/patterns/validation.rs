//! Invalid patterns are refused with the JSON path of each problem and a
//! reason; no input makes parsing or matching panic.

use serde_json::{Value, json};
use triggeriq::pattern::{
    DEFAULT_MATCH_STEPS, MAX_EXPANDED_VALUES, MatchError, Pattern, PatternLimits, PatternSet,
};

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

/// `fields` sibling fields each holding a `ways`-way `$or` (`ways^fields`
/// clauses), beside a root leaf `z` of `values` zeros that expansion repeats
/// in every clause.
fn or_shape(fields: usize, ways: usize, values: usize) -> String {
    let letter = |i: usize| char::from(b'a' + i as u8).to_string();
    let mut obj = serde_json::Map::new();
    for f in 0..fields {
        let alternatives: Vec<Value> = (0..ways).map(|w| json!({ letter(w): [0] })).collect();
        obj.insert(letter(f), json!({ "$or": alternatives }));
    }
    obj.insert("z".into(), json!(vec![0; values]));
    Value::Object(obj).to_string()
}

#[test]
fn an_or_expansion_past_the_budget_is_refused_at_the_or_that_takes_it_over() {
    // 1,024 clauses, each repeating the 1,909 values of z: under 4 KB of
    // text, about two million values once expanded.
    let text = or_shape(5, 4, 1909);
    assert!(text.len() <= 4096, "{}", text.len());
    let err = Pattern::parse(&text).expect_err("expands past the budget");
    assert_eq!(err.errors.len(), 1, "{err}");
    let e = &err.errors[0];
    assert_eq!(e.path, "$.e.$or", "{err}");
    assert!(
        e.message.contains("1024 cases holding 1959936 values"),
        "{}",
        e.message
    );
    assert!(
        e.message.contains(&MAX_EXPANDED_VALUES.to_string()),
        "{}",
        e.message
    );

    // The same shape with z small enough is accepted, and costs what it
    // expands to.
    let fits = MAX_EXPANDED_VALUES / 1024 - 5;
    let p = Pattern::parse(&or_shape(5, 4, fits)).expect("within the budget");
    assert_eq!(p.cost(), 1024 * (5 + fits));
    assert!(Pattern::parse(&or_shape(5, 4, fits + 1)).is_err());
}

#[test]
fn the_budget_is_exact_and_applies_only_where_an_or_multiplies() {
    let roomy = PatternLimits {
        max_chars: 1 << 20,
        max_depth: 32,
    };
    // Two clauses of (1 + n) values: 16,384 is the last accepted total.
    let n = MAX_EXPANDED_VALUES / 2 - 1;
    let two = |n: usize| json!({"$or": [{"a": [1]}, {"b": [1]}], "z": vec![0; n]}).to_string();
    assert_eq!(
        Pattern::parse_with(&two(n), &roomy)
            .expect("at the budget")
            .cost(),
        MAX_EXPANDED_VALUES
    );
    let err = Pattern::parse_with(&two(n + 1), &roomy).expect_err("one clause value over");
    assert_eq!(err.errors[0].path, "$.$or");
    // Without `$or` nothing is multiplied: the size as written is bounded by
    // max_chars alone.
    let flat = json!({"z": vec![0; 3 * MAX_EXPANDED_VALUES]}).to_string();
    assert_eq!(
        Pattern::parse_with(&flat, &roomy).expect("no $or").cost(),
        3 * MAX_EXPANDED_VALUES
    );
    // An anything-but list counts one per element, as it is checked.
    let list = json!({"$or": [{"a": [1]}, {"b": [1]}], "z": [{"anything-but": vec![7; n + 1]}]});
    assert_eq!(
        Pattern::parse_with(&list.to_string(), &roomy)
            .expect_err("over")
            .errors[0]
            .path,
        "$.$or"
    );
}

#[test]
fn a_nested_or_is_blamed_at_its_own_path_and_other_problems_are_still_reported() {
    let roomy = PatternLimits {
        max_chars: 1 << 20,
        max_depth: 32,
    };
    let inner: Vec<Value> = (0..40).map(|i| json!({ format!("k{i}"): [1] })).collect();
    let text = json!({
        "$or": [
            {"a": [1]},
            {"big": vec![0; 500], "x": {"$or": inner}},
        ],
        "bad": [],
    })
    .to_string();
    let err = Pattern::parse_with(&text, &roomy).expect_err("over");
    let paths: Vec<&str> = err.errors.iter().map(|e| e.path.as_str()).collect();
    assert!(paths.contains(&"$.$or[1].x.$or"), "{err}");
    assert!(paths.contains(&"$.bad"), "{err}");
    assert_eq!(err.errors.len(), 2, "{err}");
}

#[test]
fn too_many_or_cases_are_refused_at_the_or_that_passes_1024() {
    // Eleven two-way `$or`s: 2,048 cases.
    let text = or_shape(11, 2, 1);
    let err = Pattern::parse(&text).expect_err("2,048 cases");
    assert_eq!(err.errors.len(), 1, "{err}");
    assert_eq!(err.errors[0].path, "$.k.$or", "{err}");
    assert!(
        err.errors[0].message.contains("more than 1024 cases"),
        "{err}"
    );
    assert_eq!(
        Pattern::parse(&or_shape(10, 2, 1))
            .expect("1,024 cases")
            .cost(),
        1024 * 11
    );
}

#[test]
fn nul_is_refused_in_every_pattern_string_with_its_path() {
    let nul = "a\u{0}b";
    for (pattern, path) in [
        (json!({ nul: [1] }), r#"$["a\u0000b"]"#),
        (json!({"x": { nul: [1] }}), r#"$.x["a\u0000b"]"#),
        (json!({"x": [nul]}), "$.x[0]"),
        (json!({"x": ["ok", nul]}), "$.x[1]"),
        (json!({"x": [{"prefix": nul}]}), "$.x[0].prefix"),
        (
            json!({"x": [{"prefix": {"equals-ignore-case": nul}}]}),
            "$.x[0].prefix.equals-ignore-case",
        ),
        (json!({"x": [{"suffix": nul}]}), "$.x[0].suffix"),
        (
            json!({"x": [{"equals-ignore-case": nul}]}),
            "$.x[0].equals-ignore-case",
        ),
        (json!({"x": [{"wildcard": nul}]}), "$.x[0].wildcard"),
        (json!({"x": [{"anything-but": nul}]}), "$.x[0].anything-but"),
        (
            json!({"x": [{"anything-but": ["ok", nul]}]}),
            "$.x[0].anything-but[1]",
        ),
        (
            json!({"x": [{"anything-but": {"prefix": nul}}]}),
            "$.x[0].anything-but.prefix",
        ),
        (
            json!({"x": [{"anything-but": {"suffix": ["s", nul]}}]}),
            "$.x[0].anything-but.suffix[1]",
        ),
        (
            json!({"x": [{"anything-but": {"equals-ignore-case": [nul]}}]}),
            "$.x[0].anything-but.equals-ignore-case[0]",
        ),
        (
            json!({"x": [{"anything-but": {"wildcard": nul}}]}),
            "$.x[0].anything-but.wildcard",
        ),
        (json!({"$or": [{"a": [1]}, {"b": [nul]}]}), "$.$or[1].b[0]"),
    ] {
        let err = Pattern::from_value(&pattern, &PatternLimits::default())
            .expect_err(&format!("{pattern} holds a NUL"));
        assert_eq!(err.errors.len(), 1, "{pattern}: {err}");
        assert_eq!(err.errors[0].path, path, "{pattern}");
        assert!(
            err.errors[0].message.contains("must not contain U+0000"),
            "{}",
            err.errors[0].message
        );
    }
    // Several at once, each with its path; other control characters are fine.
    let err = Pattern::parse(r#"{"a\u0000": ["\u0000"], "b": ["\u0001\t"]}"#).expect_err("two");
    let paths: Vec<&str> = err.errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, vec![r#"$["a\u0000"]"#, r#"$["a\u0000"][0]"#]);
}

#[test]
fn the_interpreter_gives_up_on_the_costliest_pattern_and_a_256_kb_event() {
    let fits = MAX_EXPANDED_VALUES / 1024 - 5;
    let p = Pattern::parse(&or_shape(5, 4, fits)).expect("within the budget");
    // Every alternative holds and z has 131,072 values no clause accepts:
    // unbounded, about 1.5 billion comparisons.
    let letter = |i: usize| char::from(b'a' + i as u8).to_string();
    let mut event = serde_json::Map::new();
    for f in 0..5 {
        event.insert(letter(f), json!({"a": 0, "b": 0, "c": 0, "d": 0}));
    }
    event.insert("z".into(), json!(vec![1; 131_072]));
    let event = serde_json::to_vec(&Value::Object(event)).expect("serialise");
    assert!(event.len() >= 256 << 10);
    let err = p
        .matches_within(&event, DEFAULT_MATCH_STEPS)
        .expect_err("too expensive");
    assert!(
        matches!(err, MatchError::TooExpensive { max_steps } if max_steps == DEFAULT_MATCH_STEPS),
        "{err}"
    );
    assert!(err.to_string().contains("too expensive"), "{err}");
    // Not JSON is still an event error.
    assert!(matches!(
        p.matches_within(b"{", DEFAULT_MATCH_STEPS),
        Err(MatchError::Event(_))
    ));
}

#[test]
fn realistic_patterns_stay_far_within_the_default_allowance_on_large_events() {
    let p = Pattern::parse(
        r#"{"type": ["order.created", "order.paid"], "data": {"items": {"sku": [{"prefix": "SKU-1"}], "qty": [{"numeric": [">", 5]}]}, "tier": [{"anything-but": ["free", "trial"]}]},
            "$or": [{"source": ["shop"]}, {"data": {"total": [{"numeric": [">=", 1000]}]}}]}"#,
    )
    .expect("valid");
    // 256 KB of order items, none of which satisfies both item conditions.
    let items: Vec<Value> = (0..6_000)
        .map(|i| json!({"sku": format!("SKU-{i}"), "qty": i % 5, "note": "gift wrap"}))
        .collect();
    let event = json!({"type": "order.paid", "source": "shop", "data": {"items": items, "tier": "pro", "total": 12}});
    let bytes = serde_json::to_vec(&event).expect("serialise");
    assert!(bytes.len() >= 256 << 10, "{}", bytes.len());
    // A tenth of the allowance is enough.
    assert_eq!(
        p.matches_within(&bytes, DEFAULT_MATCH_STEPS / 10)
            .expect("within"),
        p.matches(&bytes).expect("json")
    );
}
