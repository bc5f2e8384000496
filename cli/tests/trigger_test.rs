//! `triggeriq trigger test`: a trigger over a file of events, offline, with the firings as
//! JSON lines; out-of-order arrival, deadlines on the simulated clock, bad input as a problem
//! document with exit code 2, and a run that stops at its firing cap with a warning.

use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};

struct Files {
    dir: PathBuf,
}

impl Files {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "triggeriq-trigger-test-{name}-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self { dir }
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, text).expect("write");
        path
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run(trigger: &Value, events: &[Value], extra: &[&str], name: &str) -> (i32, Vec<Value>, String) {
    let files = Files::new(name);
    let t = files.write("trigger.json", &trigger.to_string());
    let lines: Vec<String> = events.iter().map(Value::to_string).collect();
    let e = files.write("events.jsonl", &lines.join("\n"));
    let out = Command::new(env!("CARGO_BIN_EXE_triggeriq"))
        .args(["trigger", "test", "--trigger"])
        .arg(&t)
        .arg("--events")
        .arg(&e)
        .args(extra)
        .output()
        .expect("run triggeriq");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let fired = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    (
        out.status.code().unwrap_or(-1),
        fired,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn trigger(condition: Value) -> Value {
    json!({"name": "t", "pattern": {"type": ["payment.failed"]}, "condition": condition,
           "actions": [{"url": "https://hooks.example.com/x"}]})
}

fn failed(id: &str, time: &str, customer: &str) -> Value {
    json!({"id": id, "type": "payment.failed", "time": time, "data": {"customer": customer}})
}

#[test]
fn three_failures_of_one_customer_within_an_hour_fire_even_when_they_arrive_out_of_order() {
    let (code, fired, stderr) = run(
        &trigger(json!({"kind": "threshold", "count": 3, "within": "1h",
                        "group_by": ["$.data.customer"]})),
        &[
            failed("c", "2026-04-01T09:40:00Z", "A"),
            failed("a", "2026-04-01T09:00:00Z", "A"),
            json!({"id": "other", "type": "payment.ok", "time": "2026-04-01T09:41:00Z"}),
            failed("x", "2026-04-01T09:42:00Z", "B"),
            failed("b", "2026-04-01T09:20:00Z", "A"),
        ],
        &[],
        "threshold",
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!(fired[0]["group"], json!(["A"]));
    assert_eq!(fired[0]["event_ids"], json!(["a", "b", "c"]));
    assert_eq!(fired[0]["reason"]["condition"], "threshold");
    // The clock never goes back: b arrived after x, at 09:42.
    assert_eq!(fired[0]["time"], "2026-04-01T09:42:00Z");
}

#[test]
fn an_absence_fires_at_its_deadline_and_until_lets_the_clock_run() {
    let condition = json!({"kind": "absence", "every": "10m", "grace": "1m"});
    let events = [failed("hb", "2026-04-01T09:00:00Z", "A")];
    let (code, fired, _) = run(&trigger(condition.clone()), &events, &[], "absence-0");
    assert_eq!(
        (code, fired.len()),
        (0, 0),
        "the clock stops at the last event"
    );
    let (code, fired, _) = run(
        &trigger(condition),
        &events,
        &["--until", "15m"],
        "absence-15",
    );
    assert_eq!(code, 0);
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0]["time"], "2026-04-01T09:11:00Z");
    assert_eq!(fired[0]["reason"]["state"], "down");
    assert_eq!(fired[0]["event_ids"], json!(["hb"]));
}

#[test]
fn an_invalid_trigger_is_a_problem_naming_the_field_and_exit_2() {
    let (code, fired, stderr) = run(
        &trigger(json!({"kind": "threshold", "count": 0, "within": "1h"})),
        &[],
        &[],
        "invalid",
    );
    assert_eq!(code, 2);
    assert!(fired.is_empty());
    let problem: Value = serde_json::from_str(&stderr).expect("a problem document");
    assert_eq!(problem["status"], 422);
    assert_eq!(
        problem["errors"][0]["path"], "$.condition.count",
        "{problem}"
    );
}

#[test]
fn an_event_without_time_or_with_a_nul_is_refused_by_line() {
    let (code, _, stderr) = run(
        &trigger(json!({"kind": "every"})),
        &[
            json!({"id": "a", "type": "payment.failed"}),
            json!({"id": "b\u{0}", "type": "payment.failed", "time": "2026-04-01T09:00:00Z"}),
        ],
        &[],
        "bad-events",
    );
    assert_eq!(code, 2);
    let problem: Value = serde_json::from_str(&stderr).expect("a problem document");
    let paths: Vec<&str> = problem["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["path"].as_str())
        .collect();
    assert!(paths.contains(&"line 1: $.time"), "{problem}");
    assert!(paths.contains(&"line 2: $.id"), "{problem}");
}

#[test]
fn a_run_that_reaches_max_firings_stops_there_with_a_warning() {
    // Heartbeats 5 minutes apart under an absence of one minute: down and recovered at every
    // heartbeat, 5 firings in all with the clock run past the last.
    let events: Vec<Value> = (0..3)
        .map(|i| {
            failed(
                &format!("hb{i}"),
                &format!("2026-04-01T09:{:02}:00Z", 5 * i),
                "A",
            )
        })
        .collect();
    let condition = json!({"kind": "absence", "every": "1m"});
    let (code, fired, stderr) = run(
        &trigger(condition.clone()),
        &events,
        &["--until", "1h"],
        "all-firings",
    );
    assert_eq!((code, fired.len()), (0, 5), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    let (code, capped, stderr) = run(
        &trigger(condition),
        &events,
        &["--until", "1h", "--max-firings", "3"],
        "max-firings",
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(capped, fired[..3], "the first firings, as without the cap");
    assert!(
        stderr.contains("stopped after 3 firings"),
        "a warning on standard error: {stderr}"
    );
}
