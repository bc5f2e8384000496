//! `PatternSet` as the event pipeline uses it: shared across threads, updated
//! one trigger at a time, bounded in memory.

use std::sync::Arc;

use triggeriq::pattern::{Pattern, PatternSet, SetError, SetLimits};

fn p(s: &str) -> Pattern {
    Pattern::parse(s).expect("valid pattern")
}

#[test]
fn a_set_is_send_and_sync_and_matches_from_many_threads_at_once() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<PatternSet<String>>();

    let mut set = PatternSet::new();
    for i in 0..500 {
        let pattern = p(&format!(
            r#"{{"type": ["t{}"], "data": {{"n": [{{"numeric": [">", {}]}}]}}}}"#,
            i % 10,
            i
        ));
        set.insert(format!("trigger-{i}"), &pattern)
            .expect("insert");
    }
    let set = Arc::new(set);
    let events: Vec<Vec<u8>> = (0..200)
        .map(|i| format!(r#"{{"type": "t{}", "data": {{"n": {}}}}}"#, i % 10, i * 3).into_bytes())
        .collect();
    let sequential: Vec<Vec<String>> = events
        .iter()
        .map(|e| set.matches(e).expect("json"))
        .collect();
    assert!(
        sequential.iter().any(|m| m.len() > 5),
        "the events do match"
    );
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let set = Arc::clone(&set);
            let events = events.clone();
            std::thread::spawn(move || {
                let mut all = Vec::new();
                for _ in 0..20 {
                    all = events
                        .iter()
                        .map(|e| set.matches(e).expect("json"))
                        .collect::<Vec<_>>();
                }
                all
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().expect("thread"), sequential);
    }
}

#[test]
fn patterns_can_be_added_replaced_and_removed_one_at_a_time() {
    let mut set: PatternSet<u32> = PatternSet::new();
    assert!(set.is_empty());
    set.insert(1, &p(r#"{"type": ["a"]}"#)).expect("insert");
    set.insert(2, &p(r#"{"type": ["a"], "x": [{"exists": false}]}"#))
        .expect("insert");
    set.insert(
        3,
        &p(r#"{"$or": [{"type": ["b"]}, {"y": [{"prefix": "q"}]}]}"#),
    )
    .expect("insert");
    assert_eq!(set.len(), 3);
    assert_eq!(set.matches(br#"{"type": "a"}"#).expect("json"), vec![1, 2]);
    assert_eq!(
        set.matches(br#"{"type": "a", "x": 1}"#).expect("json"),
        vec![1]
    );
    assert_eq!(
        set.matches(br#"{"type": "c", "y": "qq"}"#).expect("json"),
        vec![3]
    );

    set.insert(1, &p(r#"{"type": ["c"]}"#)).expect("replace");
    assert_eq!(set.len(), 3);
    assert_eq!(
        set.matches(br#"{"type": "c", "y": "qq"}"#).expect("json"),
        vec![1, 3]
    );
    assert!(set.remove(&3));
    assert!(!set.contains(&3));
    assert_eq!(
        set.matches(br#"{"type": "c", "y": "qq"}"#).expect("json"),
        vec![1]
    );
    let mut seen = Vec::new();
    set.for_each_match(br#"{"type": "a"}"#, |id| seen.push(*id))
        .expect("json");
    assert_eq!(seen, vec![2]);
    assert!(set.remove(&1) && set.remove(&2));
    assert!(set.is_empty());
    assert_eq!(set.approx_bytes(), 0);
    assert!(set.matches(b"not json").is_err());
}

#[test]
fn a_set_refuses_patterns_past_its_memory_limit_with_a_clear_error() {
    let mut set = PatternSet::with_limits(SetLimits {
        max_bytes: 50_000,
        max_patterns: 1_000_000,
    });
    let mut added = 0;
    let err = loop {
        match set.insert(
            added,
            &p(&format!(
                r#"{{"type": ["t{added}"], "n": [{{"numeric": [">", {added}]}}]}}"#
            )),
        ) {
            Ok(()) => added += 1,
            Err(e) => break e,
        }
        assert!(added < 10_000, "the limit must bite");
    };
    assert!(matches!(err, SetError::MemoryLimit { limit: 50_000, .. }));
    assert!(
        err.to_string().contains("over its limit of 50000 bytes"),
        "{err}"
    );
    assert_eq!(set.len(), added as usize);
    assert!(set.approx_bytes() <= 50_000);
    assert_eq!(
        set.matches(br#"{"type": "t0", "n": 5}"#).expect("json"),
        vec![0]
    );
}

#[test]
fn a_sets_cost_is_the_sum_of_its_patterns_costs() {
    let two = p(r#"{"type": ["a", "b"]}"#);
    // Clauses {t, x} and {t, y}: (1 + 1) + (1 + 2) values.
    let five = p(r#"{"$or": [{"x": [1]}, {"y": [2, 3]}], "t": ["q"]}"#);
    assert_eq!((two.cost(), five.cost()), (2, 5));
    let mut set = PatternSet::new();
    assert_eq!(set.cost(), 0);
    set.insert(1, &two).expect("insert");
    set.insert(2, &five).expect("insert");
    assert_eq!(set.cost(), 7);
    set.insert(1, &five).expect("replace");
    assert_eq!(set.cost(), 10);
    assert!(set.remove(&2));
    assert_eq!(set.cost(), 5);
    assert!(set.remove(&1));
    assert_eq!(set.cost(), 0);
}
