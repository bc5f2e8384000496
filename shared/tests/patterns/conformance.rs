//! Every recorded EventBridge case (and TriggerIQ's own extra cases) through
//! the reference interpreter and through a compiled `PatternSet`.

use serde_json::Value;
use triggeriq::pattern::{Pattern, PatternSet};

const AWS_CASES: &str = include_str!("../data/conformance/eventbridge-patterns.jsonl");
const EXTRA_CASES: &str = include_str!("../data/conformance/triggeriq-extra.jsonl");

struct Case {
    name: String,
    expect: String,
    pattern: Value,
    event: Value,
}

fn load(text: &str) -> Vec<Case> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let v: Value = serde_json::from_str(line).expect("each case line is JSON");
            Case {
                name: v["name"].as_str().expect("name").to_owned(),
                expect: v["expect"].as_str().expect("expect").to_owned(),
                pattern: v["pattern"].clone(),
                event: v["event"].clone(),
            }
        })
        .collect()
}

/// Runs the cases; returns the names that disagree with the recorded outcome.
fn run(cases: &[Case]) -> Vec<String> {
    let mut failures = Vec::new();
    for case in cases {
        let pattern_text = serde_json::to_string(&case.pattern).expect("serialise");
        let event_bytes = serde_json::to_vec(&case.event).expect("serialise");
        let (reference, compiled) = match Pattern::parse(&pattern_text) {
            Err(_) => ("invalid".to_owned(), "invalid".to_owned()),
            Ok(p) => {
                let r = p.matches(&event_bytes).expect("event is JSON");
                let mut set = PatternSet::new();
                set.insert(0u32, &p).expect("insert");
                let c = set.matches(&event_bytes).expect("event is JSON");
                let word = |b: bool| if b { "match" } else { "no-match" }.to_owned();
                (word(r), word(c == vec![0]))
            }
        };
        if reference != case.expect {
            failures.push(format!(
                "{}: interpreter said {reference}, expected {}",
                case.name, case.expect
            ));
        }
        if compiled != case.expect {
            failures.push(format!(
                "{}: PatternSet said {compiled}, expected {}",
                case.name, case.expect
            ));
        }
    }
    failures
}

#[test]
fn all_recorded_eventbridge_cases_pass() {
    let cases = load(AWS_CASES);
    assert_eq!(cases.len(), 155, "the recorded file holds 155 cases");
    let count = |e: &str| cases.iter().filter(|c| c.expect == e).count();
    assert_eq!(
        (count("match"), count("no-match"), count("invalid")),
        (66, 51, 38)
    );
    let failures = run(&cases);
    println!(
        "EventBridge conformance: {}/{} cases pass",
        cases.len() - failures.len(),
        cases.len()
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn all_triggeriq_extra_cases_pass() {
    let cases = load(EXTRA_CASES);
    assert!(cases.len() >= 40);
    let failures = run(&cases);
    println!(
        "TriggerIQ extra cases: {}/{} pass",
        cases.len() - failures.len(),
        cases.len()
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
