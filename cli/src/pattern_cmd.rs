//! `triggeriq pattern …`: run pattern test cases, validate a pattern, and try
//! one pattern on one event. Matching goes through the same compiled
//! `PatternSet` the event pipeline uses.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use serde_json::Value;
use triggeriq::pattern::{InvalidPattern, Pattern, PatternLimits, PatternSet};

/// Test, validate and try EventBridge-style event patterns.
#[derive(Debug, clap::Args)]
pub struct PatternCmd {
    #[command(subcommand)]
    command: PatternSub,
}

#[derive(Debug, clap::Subcommand)]
enum PatternSub {
    /// Run test cases: reads JSON lines with `name`, `pattern` and `event`
    /// (other fields are ignored) and writes one JSON line per case, in
    /// order: {"name", "result": "match" | "no-match" | "invalid", "error"}.
    Test {
        /// The JSON-lines file of cases (`-` for standard input).
        #[arg(long)]
        cases: PathBuf,
    },
    /// Validate a pattern file; prints every problem with its JSON path.
    /// Exits 0 when valid, 1 when not.
    Check {
        /// A file holding one pattern (JSON).
        file: PathBuf,
    },
    /// Match one event against one pattern; prints "match" or "no-match".
    /// Exits 0 on a match, 1 on no match, 2 on an invalid pattern or event.
    Match {
        /// A file holding one pattern (JSON).
        #[arg(long)]
        pattern: PathBuf,
        /// A file holding one event (JSON).
        #[arg(long)]
        event: PathBuf,
    },
}

/// Runs a `pattern` subcommand.
pub fn run(cmd: PatternCmd) -> anyhow::Result<ExitCode> {
    match cmd.command {
        PatternSub::Test { cases } => {
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            if cases.as_os_str() == "-" {
                run_cases(std::io::stdin().lock(), &mut out)?;
            } else {
                let file = fs::File::open(&cases)
                    .with_context(|| format!("cannot open {}", cases.display()))?;
                run_cases(BufReader::new(file), &mut out)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        PatternSub::Check { file } => match load_pattern(&file)? {
            Ok(_) => {
                println!("{}: valid", file.display());
                Ok(ExitCode::SUCCESS)
            }
            Err(invalid) => {
                for e in &invalid.errors {
                    println!("{}: {e}", file.display());
                }
                Ok(ExitCode::from(1))
            }
        },
        PatternSub::Match { pattern, event } => {
            let p = match load_pattern(&pattern)? {
                Ok(p) => p,
                Err(invalid) => {
                    for e in &invalid.errors {
                        eprintln!("{}: {e}", pattern.display());
                    }
                    return Ok(ExitCode::from(2));
                }
            };
            let bytes =
                fs::read(&event).with_context(|| format!("cannot read {}", event.display()))?;
            match matches(&p, &bytes) {
                Ok(true) => {
                    println!("match");
                    Ok(ExitCode::SUCCESS)
                }
                Ok(false) => {
                    println!("no-match");
                    Ok(ExitCode::from(1))
                }
                Err(e) => {
                    eprintln!("{}: {e}", event.display());
                    Ok(ExitCode::from(2))
                }
            }
        }
    }
}

fn load_pattern(path: &Path) -> anyhow::Result<Result<Pattern, InvalidPattern>> {
    let text =
        fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(Pattern::parse(&text))
}

fn matches(p: &Pattern, event: &[u8]) -> Result<bool, triggeriq::pattern::EventError> {
    let mut set = PatternSet::new();
    // One pattern of at most the default size always fits the default limits.
    if set.insert((), p).is_err() {
        return p.matches(event);
    }
    Ok(!set.matches(event)?.is_empty())
}

/// Evaluates each case line and writes its result line.
fn run_cases(input: impl BufRead, out: &mut impl Write) -> anyhow::Result<()> {
    for (i, line) in input.lines().enumerate() {
        let line = line.context("cannot read the cases")?;
        if line.trim().is_empty() {
            continue;
        }
        let result = evaluate_case(i + 1, &line);
        serde_json::to_writer(&mut *out, &result)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

/// One output line; fields in the documented order.
#[derive(serde::Serialize)]
struct CaseResult {
    name: Value,
    result: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

fn evaluate_case(line_no: usize, line: &str) -> CaseResult {
    let invalid = |name: &Value, error: String| CaseResult {
        name: name.clone(),
        result: "invalid",
        error: Some(error),
    };
    let case: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => {
            return invalid(
                &Value::Null,
                format!("line {line_no}: the case is not valid JSON: {e}"),
            );
        }
    };
    let name = case.get("name").cloned().unwrap_or(Value::Null);
    let pattern = match case.get("pattern") {
        // A pattern may be given as JSON or as a string holding JSON.
        Some(Value::String(text)) => Pattern::parse(text),
        Some(v) => Pattern::from_value(v, &PatternLimits::default()),
        None => {
            return invalid(
                &name,
                format!("line {line_no}: the case has no \"pattern\""),
            );
        }
    };
    let pattern = match pattern {
        Ok(p) => p,
        Err(e) => {
            let msg = e
                .errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            return invalid(&name, msg);
        }
    };
    let event = match case.get("event") {
        Some(Value::String(text)) => text.as_bytes().to_vec(),
        Some(v) => serde_json::to_vec(v).unwrap_or_default(),
        None => return invalid(&name, format!("line {line_no}: the case has no \"event\"")),
    };
    let result = |word| CaseResult {
        name: name.clone(),
        result: word,
        error: None,
    };
    match matches(&pattern, &event) {
        Ok(true) => result("match"),
        Ok(false) => result("no-match"),
        Err(e) => invalid(&name, format!("the event is not valid: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run_text(input: &str) -> Vec<Value> {
        let mut out = Vec::new();
        run_cases(input.as_bytes(), &mut out).expect("runs");
        String::from_utf8(out)
            .expect("utf8")
            .lines()
            .map(|l| serde_json::from_str(l).expect("each output line is JSON"))
            .collect()
    }

    #[test]
    fn writes_one_result_line_per_case_in_order() {
        let input = [
            r#"{"name": "m", "expect": "match", "pattern": {"a": ["x"]}, "event": {"a": "x"}}"#,
            "",
            r#"{"name": "n", "pattern": {"a": ["x"]}, "event": {"a": "y"}}"#,
            r#"{"name": "i", "pattern": {"a": [{"numeric": ["!=", 1]}]}, "event": {"a": 1}}"#,
            r#"{"name": "s", "pattern": "{\"a\": [{\"prefix\": \"x\"}]}", "event": {"a": "xyz"}}"#,
            r#"not json"#,
        ]
        .join("\n");
        let out = run_text(&input);
        assert_eq!(out.len(), 5);
        let first_line = {
            let mut buf = Vec::new();
            run_cases(input.lines().next().unwrap_or("").as_bytes(), &mut buf).expect("runs");
            String::from_utf8(buf).expect("utf8")
        };
        assert_eq!(
            first_line, "{\"name\":\"m\",\"result\":\"match\"}\n",
            "fields in order"
        );
        assert_eq!(out[0], json!({"name": "m", "result": "match"}));
        assert_eq!(out[1], json!({"name": "n", "result": "no-match"}));
        assert_eq!(out[2]["result"], "invalid");
        assert!(
            out[2]["error"]
                .as_str()
                .is_some_and(|e| e.starts_with("$.a[0].numeric: \"!=\" is not a numeric operator")),
            "{}",
            out[2]
        );
        assert_eq!(out[3], json!({"name": "s", "result": "match"}));
        assert_eq!(out[4]["result"], "invalid");
        assert!(
            out[4]["error"]
                .as_str()
                .is_some_and(|e| e.contains("line 6"))
        );
    }

    #[test]
    fn the_recorded_conformance_cases_all_pass_through_the_cli() {
        let cases = include_str!("../../shared/tests/data/conformance/eventbridge-patterns.jsonl");
        let out = run_text(cases);
        let expected: Vec<Value> = cases
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).expect("json")["expect"].clone())
            .collect();
        assert_eq!(out.len(), 155);
        for (o, e) in out.iter().zip(&expected) {
            assert_eq!(&o["result"], e, "{o}");
        }
    }
}
