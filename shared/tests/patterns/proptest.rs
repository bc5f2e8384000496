//! Property tests: the compiled `PatternSet` agrees with the reference
//! interpreter (`Pattern::matches`) on random patterns and events, before and
//! after removals. Keys and values come from a small vocabulary so that
//! patterns and events actually meet.

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use triggeriq::pattern::{DEFAULT_MATCH_STEPS, Pattern, PatternLimits, PatternSet};

const KEYS: &[&str] = &["a", "b", "c", "a.b", "b.c"];

fn string_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("x".to_owned()),
        Just("X".to_owned()),
        Just("xy".to_owned()),
        Just("yx".to_owned()),
        Just("".to_owned()),
        Just("10.0.0.7".to_owned()),
        Just("2001:db8::1".to_owned()),
        Just("Ärger".to_owned()),
        Just("a*b".to_owned()),
        Just("q\"\\\n🚀".to_owned()),
        "[xyXY*]{0,4}",
    ]
}

fn number_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!(0)),
        Just(json!(1)),
        Just(json!(-2)),
        Just(json!(1.5)),
        Just(json!(300)),
        Just(json!(3e2)),
        Just(json!(9_007_199_254_740_993u64)),
        (-5i64..5).prop_map(|n| json!(n)),
        (-5.0f64..5.0).prop_map(|n| json!(n)),
    ]
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => string_value().prop_map(Value::String),
        3 => number_value(),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => Just(Value::Null),
    ]
}

fn event_value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..4).prop_map(|kvs| {
                Value::Object(kvs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    })
}

fn event() -> impl Strategy<Value = Value> {
    prop::collection::vec((prop::sample::select(KEYS), event_value()), 0..5)
        .prop_map(|kvs| Value::Object(kvs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
}

fn wildcard() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![Just("*"), Just("x"), Just("y"), Just("\\*"), Just("Ä")],
        0..4,
    )
    .prop_map(|parts| parts.concat())
}

fn matcher() -> impl Strategy<Value = Value> {
    let strings = || prop::collection::vec(string_value(), 1..3);
    prop_oneof![
        3 => scalar(),
        1 => string_value().prop_map(|s| json!({"prefix": s})),
        1 => string_value().prop_map(|s| json!({"prefix": {"equals-ignore-case": s}})),
        1 => string_value().prop_map(|s| json!({"suffix": s})),
        1 => string_value().prop_map(|s| json!({"suffix": {"equals-ignore-case": s}})),
        1 => string_value().prop_map(|s| json!({"equals-ignore-case": s})),
        1 => wildcard().prop_map(|s| json!({"wildcard": s})),
        1 => string_value().prop_map(|s| json!({"anything-but": s})),
        1 => strings().prop_map(|s| json!({"anything-but": s})),
        1 => prop::collection::vec(number_value(), 1..3).prop_map(|n| json!({"anything-but": n})),
        1 => strings().prop_map(|s| json!({"anything-but": {"prefix": s}})),
        1 => strings().prop_map(|s| json!({"anything-but": {"suffix": s}})),
        1 => strings().prop_map(|s| json!({"anything-but": {"equals-ignore-case": s}})),
        1 => prop::collection::vec(wildcard(), 1..3).prop_map(|s| json!({"anything-but": {"wildcard": s}})),
        2 => (prop::sample::select(vec![">", ">=", "<", "<=", "="]), number_value())
            .prop_map(|(op, n)| json!({"numeric": [op, n]})),
        1 => (number_value(), number_value()).prop_map(|(a, b)| json!({"numeric": [">=", a, "<", b]})),
        1 => prop::sample::select(vec!["10.0.0.0/24", "10.0.0.7/32", "0.0.0.0/0", "2001:db8::/32"])
            .prop_map(|c| json!({"cidr": c})),
        2 => any::<bool>().prop_map(|b| json!({"exists": b})),
    ]
}

fn pattern_object(depth: u32) -> BoxedStrategy<Value> {
    let leaf = prop::collection::vec(matcher(), 1..4).prop_map(Value::Array);
    let field = if depth == 0 {
        leaf.boxed()
    } else {
        prop_oneof![3 => leaf, 1 => pattern_object(depth - 1)].boxed()
    };
    let fields = prop::collection::vec((prop::sample::select(KEYS), field), 1..4);
    if depth == 0 {
        fields.prop_map(to_object).boxed()
    } else {
        let or = prop::collection::vec(pattern_object(depth - 1), 2..4);
        (fields, prop::option::weighted(0.25, or))
            .prop_map(|(kvs, or)| {
                let mut obj = to_object(kvs);
                if let (Value::Object(map), Some(branches)) = (&mut obj, or) {
                    map.insert("$or".into(), Value::Array(branches));
                }
                obj
            })
            .boxed()
    }
}

fn to_object(kvs: Vec<(&str, Value)>) -> Value {
    let mut map = Map::new();
    for (k, v) in kvs {
        map.insert(k.to_owned(), v);
    }
    Value::Object(map)
}

fn small_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => (0i64..3).prop_map(|n| json!([n])),
        1 => (0i64..3).prop_map(|n| json!([{"numeric": [">=", n]}])),
        1 => Just(json!([{"exists": false}])),
        1 => Just(json!([{"exists": true}])),
        1 => (0i64..3).prop_map(|n| json!([{"anything-but": n}])),
    ]
}

fn small_node(depth: u32) -> BoxedStrategy<Value> {
    let field = if depth == 0 {
        small_leaf().boxed()
    } else {
        prop_oneof![3 => small_leaf(), 1 => small_node(depth - 1)].boxed()
    };
    prop::collection::vec(
        (prop::sample::select(vec!["a", "b", "c", "k.a"]), field),
        1..4,
    )
    .prop_map(to_object)
    .boxed()
}

fn small_pattern() -> impl Strategy<Value = Value> {
    (
        small_node(1),
        prop::option::weighted(0.3, prop::collection::vec(small_node(1), 2..3)),
    )
        .prop_map(|(k, or)| {
            let mut root = json!({ "k": k });
            if let (Some(branches), Value::Object(map)) = (or, &mut root) {
                let wrapped: Vec<Value> = branches.into_iter().map(|b| json!({ "k": b })).collect();
                map.insert("$or".into(), Value::Array(wrapped));
            }
            root
        })
}

fn small_event() -> impl Strategy<Value = Value> {
    let scalar = prop_oneof![4 => (0i64..3).prop_map(|n| json!(n)), 1 => Just(Value::Null)];
    let obj = prop::collection::vec(
        (prop::sample::select(vec!["a", "b", "c", "k.a"]), scalar),
        0..4,
    )
    .prop_map(|kvs| Value::Object(kvs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()));
    let elem = obj.prop_recursive(2, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(vec!["a", "b", "c"]), inner), 0..3)
                .prop_map(|kvs| Value::Object(
                    kvs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
                )),
        ]
    });
    prop::collection::vec(elem, 0..4).prop_map(|items| json!({ "k": items }))
}

fn valid_patterns() -> impl Strategy<Value = Vec<Pattern>> {
    prop::collection::vec(pattern_object(2), 1..10).prop_map(|values| {
        values
            .iter()
            .filter_map(|v| Pattern::from_value(v, &PatternLimits::default()).ok())
            .collect()
    })
}

fn expected(patterns: &[(usize, &Pattern)], event: &[u8]) -> Vec<usize> {
    let mut ids: Vec<usize> = patterns
        .iter()
        .filter(|(_, p)| p.matches(event).expect("generated events are JSON"))
        .map(|(i, _)| *i)
        .collect();
    ids.sort_unstable();
    ids
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 600, ..ProptestConfig::default() })]

    #[test]
    fn compiled_set_agrees_with_reference_interpreter(
        patterns in valid_patterns(),
        events in prop::collection::vec(event(), 1..6),
        remove_mask in any::<u16>(),
    ) {
        let mut set = PatternSet::new();
        for (i, p) in patterns.iter().enumerate() {
            set.insert(i, p).expect("within limits");
        }
        let all: Vec<(usize, &Pattern)> = patterns.iter().enumerate().collect();
        for e in &events {
            let bytes = serde_json::to_vec(e).expect("serialise");
            let mut got = set.matches(&bytes).expect("valid event");
            got.sort_unstable();
            let want = expected(&all, &bytes);
            prop_assert_eq!(&got, &want, "event {}", e);
            // Counting steps changes no answer.
            for (i, p) in &all {
                let within = p.matches_within(&bytes, DEFAULT_MATCH_STEPS).expect("cheap");
                prop_assert_eq!(within, want.contains(i), "matches_within, event {}", e);
            }
            // Pretty-printed JSON is the same event.
            let pretty = serde_json::to_vec_pretty(e).expect("serialise");
            let mut got = set.matches(&pretty).expect("valid event");
            got.sort_unstable();
            prop_assert_eq!(&got, &want, "pretty event {}", e);
        }
        // Remove some, re-insert one under a new id: still in agreement.
        let mut kept = Vec::new();
        for (i, p) in patterns.iter().enumerate() {
            if remove_mask & (1 << (i % 16)) != 0 {
                prop_assert!(set.remove(&i));
            } else {
                kept.push((i, p));
            }
        }
        if let Some(first) = patterns.first() {
            set.insert(1000, first).expect("within limits");
            kept.push((1000, first));
        }
        prop_assert_eq!(set.len(), kept.len());
        for e in &events {
            let bytes = serde_json::to_vec(e).expect("serialise");
            let mut got = set.matches(&bytes).expect("valid event");
            got.sort_unstable();
            prop_assert_eq!(got, expected(&kept, &bytes), "after removals, event {}", e);
        }
    }

    /// Tiny domains, so that several leaves under one key often hold
    /// separately but not in the same array element.
    #[test]
    fn array_element_consistency_agrees(
        patterns in prop::collection::vec(small_pattern(), 1..6),
        events in prop::collection::vec(small_event(), 1..6),
    ) {
        let patterns: Vec<Pattern> = patterns
            .iter()
            .filter_map(|v| Pattern::from_value(v, &PatternLimits::default()).ok())
            .collect();
        let mut set = PatternSet::new();
        for (i, p) in patterns.iter().enumerate() {
            set.insert(i, p).expect("within limits");
        }
        let all: Vec<(usize, &Pattern)> = patterns.iter().enumerate().collect();
        for e in &events {
            let bytes = serde_json::to_vec(e).expect("serialise");
            let mut got = set.matches(&bytes).expect("valid event");
            got.sort_unstable();
            let want = expected(&all, &bytes);
            prop_assert_eq!(&got, &want, "event {}", e);
        }
    }

    #[test]
    fn set_and_interpreter_accept_and_refuse_the_same_bytes(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let p = Pattern::parse(r#"{"a": [{"exists": false}]}"#).expect("valid");
        let mut set = PatternSet::new();
        set.insert(0, &p).expect("insert");
        prop_assert_eq!(p.matches(&bytes).is_ok(), set.matches(&bytes).is_ok());
    }

    #[test]
    fn set_and_interpreter_agree_on_mutated_json(e in event(), cut in 0usize..200, byte in any::<u8>()) {
        let p = Pattern::parse(r#"{"a": [{"exists": true}], "b": [{"anything-but": "x"}]}"#).expect("valid");
        let mut set = PatternSet::new();
        set.insert(0, &p).expect("insert");
        let mut bytes = serde_json::to_vec(&e).expect("serialise");
        if !bytes.is_empty() {
            let at = cut % bytes.len();
            bytes[at] = byte;
        }
        let reference = p.matches(&bytes).ok();
        let compiled = set.matches(&bytes).ok().map(|ids| ids == vec![0]);
        prop_assert_eq!(reference, compiled);
    }

    /// Arbitrary bytes with JSON's punctuation overrepresented, against a
    /// set that names nested fields (so that the scanner both keeps and
    /// skips parts): the set never panics and accepts exactly the bytes the
    /// interpreter accepts. (Their answers may differ on accepted bytes that
    /// repeat a key, which the two read differently by design.)
    #[test]
    fn set_and_interpreter_accept_the_same_json_shaped_bytes(
        parts in prop::collection::vec(prop_oneof![
            3 => prop::sample::select(vec![
                "{", "}", "[", "]", ",", ":", "\"", "\\", "\\u", "\"a\":", "\"b\":", "\"a.b\":",
                "1", "-2.5e3", "true", "null", " ", "\"x\"", "\u{e9}", "\u{1}", "\u{0}",
            ]).prop_map(|s| s.as_bytes().to_vec()),
            1 => prop::collection::vec(any::<u8>(), 0..4),
        ], 0..40),
    ) {
        let bytes: Vec<u8> = parts.concat();
        let mut set = PatternSet::new();
        let mut first = None;
        for (i, p) in [
            r#"{"a": {"b": [{"exists": true}]}}"#,
            r#"{"a": [{"anything-but": "x"}], "b": [{"prefix": "x"}]}"#,
            r#"{"b": {"a": [1, {"numeric": [">", 0]}]}}"#,
        ].iter().enumerate() {
            let p = Pattern::parse(p).expect("valid");
            set.insert(i, &p).expect("insert");
            first.get_or_insert(p);
        }
        let first = first.expect("three patterns");
        prop_assert_eq!(first.matches(&bytes).is_ok(), set.matches(&bytes).is_ok());
    }
}
