//! EventBridge schedules of template.yaml: `rate(...)` (locally also in seconds), `cron(...)` (AWS's six fields, UTC)
//! and `at(...)`, each invoking its function with the event EventBridge would send.
//!
//! AWS cron: `cron(minutes hours day-of-month month day-of-week year)`; day-of-week 1–7 is
//! SUN–SAT; one of day-of-month and day-of-week must be `?`; `L`, `W` and `#` as in AWS. A
//! rate's first run is one period after the stack starts, as for a newly created rule.
//! Locally a failed run is logged and not retried (EventBridge retries asynchronous
//! invocations).

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::eventbridge::EventBridgeEvent;
use bytes::Bytes;
use chrono::{DateTime, Timelike as _, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use serde_json::{Value, json};

use crate::invoke::{Invoke, InvokeError};
use crate::log::{self, Kind, Outcome};
use crate::template::{ACCOUNT_ID, REGION, ScheduleKind};

/// A parsed schedule expression.
#[derive(Debug, Clone)]
pub enum Expression {
    Rate(Duration),
    Cron(Box<Cron>),
    At(DateTime<Utc>),
}

impl Expression {
    /// Parses `rate(5 minutes)`, `cron(0 7 * * ? *)` or `at(2026-12-01T09:00:00)`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if let Some(inner) = text.strip_prefix("rate(").and_then(|t| t.strip_suffix(')')) {
            return parse_rate(inner).map(Expression::Rate);
        }
        if let Some(inner) = text.strip_prefix("cron(").and_then(|t| t.strip_suffix(')')) {
            return parse_cron(inner).map(|c| Expression::Cron(Box::new(c)));
        }
        if let Some(inner) = text.strip_prefix("at(").and_then(|t| t.strip_suffix(')')) {
            return chrono::NaiveDateTime::parse_from_str(inner.trim(), "%Y-%m-%dT%H:%M:%S")
                .map(|t| Expression::At(t.and_utc()))
                .map_err(|e| format!("{text:?}: at() takes yyyy-mm-ddThh:mm:ss ({e})"));
        }
        Err(format!("{text:?} is not rate(...), cron(...) or at(...)"))
    }

    /// The first run strictly after `after`, for a schedule that started at `started`.
    pub fn next_after(
        &self,
        after: DateTime<Utc>,
        started: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        match self {
            Expression::Rate(period) => {
                let period = chrono::Duration::from_std(*period).ok()?;
                let elapsed = after - started;
                let periods = elapsed
                    .num_milliseconds()
                    .div_euclid(period.num_milliseconds())
                    + 1;
                Some(started + period * i32::try_from(periods.max(1)).ok()?)
            }
            Expression::Cron(cron) => cron.find_next_occurrence(&after, false).ok(),
            Expression::At(at) => (*at > after).then_some(*at),
        }
    }
}

fn parse_rate(inner: &str) -> Result<Duration, String> {
    let fail = |why: &str| format!("rate({inner}): {why}");
    let (value, unit) = inner
        .trim()
        .split_once(' ')
        .ok_or_else(|| fail("expected `rate(<value> <unit>)`"))?;
    let value: u64 = value
        .parse()
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| fail("the value must be a positive whole number"))?;
    let (singular, seconds) = match unit.trim() {
        // Not in AWS (whose shortest rate is a minute): lets local tests run deadlines fast.
        "second" | "seconds" => ("second", 1),
        "minute" | "minutes" => ("minute", 60),
        "hour" | "hours" => ("hour", 3600),
        "day" | "days" => ("day", 86_400),
        _ => {
            return Err(fail(
                "the unit must be minute(s), hour(s) or day(s) (or, locally, second(s))",
            ));
        }
    };
    // AWS insists on the singular for 1 and the plural otherwise.
    if (value == 1) != (unit.trim() == singular) {
        return Err(fail(if value == 1 {
            "use the singular unit for a value of 1"
        } else {
            "use the plural unit for values above 1"
        }));
    }
    Ok(Duration::from_secs(value * seconds))
}

fn parse_cron(inner: &str) -> Result<Cron, String> {
    let fields: Vec<&str> = inner.split_whitespace().collect();
    if fields.len() != 6 {
        return Err(format!(
            "cron({inner}): AWS cron has six fields (minutes hours day-of-month month day-of-week year), found {}",
            fields.len()
        ));
    }
    let (dom, dow) = (fields[2], fields[4]);
    if (dom == "?") == (dow == "?") {
        return Err(format!(
            "cron({inner}): exactly one of day-of-month and day-of-week must be `?`"
        ));
    }
    // croner reads `?` as `*` and ORs the day fields; `+` before the day of week makes it AND,
    // which with the other field `*` is what AWS means.
    let mut fields: Vec<String> = fields.iter().map(|f| (*f).to_owned()).collect();
    if dom == "?" {
        fields[2] = "*".into();
        fields[4] = format!("+{dow}");
    } else {
        fields[4] = "*".into();
    }
    // AWS runs at second 0 of the minute.
    fields.insert(0, "0".into());
    CronParser::builder()
        .seconds(Seconds::Required)
        .year(Year::Required)
        .alternative_weekdays(true)
        .sloppy_ranges(true)
        .build()
        .parse(&fields.join(" "))
        .map_err(|e| format!("cron({inner}): {e}"))
}

/// One schedule, ready to run.
pub struct ScheduleRun {
    pub id: String,
    pub name: String,
    pub expression_text: String,
    pub expression: Expression,
    pub binary: String,
    pub timeout: Duration,
    pub input: Option<Value>,
    pub kind: ScheduleKind,
}

impl ScheduleRun {
    /// What the function receives for the run scheduled at `at`: the target's `Input`, else
    /// the event the service sends by default (its `detail` is `{}` for a rule and the text
    /// `"{}"` for Scheduler, as AWS sends them).
    pub fn payload(&self, at: DateTime<Utc>) -> serde_json::Result<Value> {
        if let Some(input) = &self.input {
            return Ok(input.clone());
        }
        let (source, resource, detail) = match self.kind {
            ScheduleKind::Rule => (
                "aws.events",
                format!("arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/{}", self.name),
                json!({}),
            ),
            ScheduleKind::Scheduler => (
                "aws.scheduler",
                format!(
                    "arn:aws:scheduler:{REGION}:{ACCOUNT_ID}:schedule/default/{}",
                    self.name
                ),
                json!("{}"),
            ),
        };
        let mut event = EventBridgeEvent::<Value>::default();
        event.version = Some("0".into());
        event.id = Some(uuid::Uuid::new_v4().to_string());
        event.detail_type = "Scheduled Event".into();
        event.source = source.into();
        event.account = Some(ACCOUNT_ID.into());
        // Whole seconds, as EventBridge writes them.
        event.time = at.with_nanosecond(0);
        event.region = Some(REGION.into());
        event.resources = Some(vec![resource]);
        event.detail = detail;
        serde_json::to_value(event)
    }

    /// Runs the schedule until the task is aborted (or an `at()` schedule has run).
    pub async fn run<I: Invoke>(self: Arc<Self>, invoker: Arc<I>) {
        // Wall time follows tokio's clock from here on, so that tests can move it.
        let started_wall = Utc::now();
        let started = tokio::time::Instant::now();
        let now =
            || started_wall + chrono::Duration::from_std(started.elapsed()).unwrap_or_default();
        loop {
            let current = now();
            let Some(next) = self.expression.next_after(current, started_wall) else {
                return;
            };
            let wait = (next - current).to_std().unwrap_or_default();
            tokio::time::sleep(wait).await;
            let began = Instant::now();
            let result = match self.payload(next) {
                Ok(payload) => {
                    invoker
                        .invoke(&self.binary, Bytes::from(payload.to_string()), self.timeout)
                        .await
                }
                Err(e) => Err(InvokeError::Unavailable(format!(
                    "the event cannot be written: {e}"
                ))),
            };
            let (outcome, text) = match result {
                Ok(_) => (Outcome::Ok, "ok".to_owned()),
                Err(e) => (Outcome::Fail, format!("failed: {e} (not retried locally)")),
            };
            log::line(
                Kind::Schedule,
                outcome,
                &format!(
                    "{} {} → {} {text}",
                    self.id, self.expression_text, self.binary
                ),
                Some(began.elapsed()),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Datelike as _, TimeZone as _, Timelike as _, Weekday};

    use super::*;
    use crate::invoke::fake::FakeInvoker;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
            .single()
            .expect("a valid time")
    }

    fn next(expr: &str, after: DateTime<Utc>) -> DateTime<Utc> {
        Expression::parse(expr)
            .expect("parses")
            .next_after(after, after)
            .expect("a next run")
    }

    #[test]
    fn rates_follow_aws_spelling() {
        assert!(
            matches!(Expression::parse("rate(1 minute)"), Ok(Expression::Rate(d)) if d == Duration::from_secs(60))
        );
        assert!(
            matches!(Expression::parse("rate(2 hours)"), Ok(Expression::Rate(d)) if d == Duration::from_secs(7200))
        );
        assert!(
            matches!(Expression::parse("rate(1 day)"), Ok(Expression::Rate(d)) if d == Duration::from_secs(86_400))
        );
        for bad in [
            "rate(1 minutes)",
            "rate(5 minute)",
            "rate(0 minutes)",
            "rate(5 weeks)",
            "rate(five minutes)",
            "every 5 minutes",
        ] {
            assert!(Expression::parse(bad).is_err(), "{bad} should be refused");
        }
        let start = at(2026, 11, 25, 10, 0);
        let e = Expression::parse("rate(5 minutes)").expect("parses");
        assert_eq!(e.next_after(start, start), Some(at(2026, 11, 25, 10, 5)));
        assert_eq!(
            e.next_after(at(2026, 11, 25, 10, 7), start),
            Some(at(2026, 11, 25, 10, 10))
        );
    }

    #[test]
    fn aws_cron_expressions_run_when_aws_would_run_them() {
        let wed = at(2026, 11, 25, 8, 0);
        assert_eq!(wed.weekday(), Weekday::Wed);
        assert_eq!(next("cron(0 7 * * ? *)", wed), at(2026, 11, 26, 7, 0));
        assert_eq!(
            next("cron(0/15 * * * ? *)", at(2026, 11, 25, 10, 7)),
            at(2026, 11, 25, 10, 15)
        );
        // Day of week 2 is Monday in AWS (1 is Sunday).
        let monday = next("cron(0 9 ? * 2 *)", wed);
        assert_eq!((monday.weekday(), monday.hour()), (Weekday::Mon, 9));
        let named = next("cron(0 9 ? * MON-FRI *)", at(2026, 11, 28, 10, 0));
        assert_eq!(named.weekday(), Weekday::Mon);
        assert_eq!(next("cron(0 12 L * ? *)", wed), at(2026, 11, 30, 12, 0));
        let last_friday = next("cron(0 10 ? * 6L *)", wed);
        assert_eq!(
            (last_friday.weekday(), last_friday.day()),
            (Weekday::Fri, 27)
        );
        assert_eq!(next("cron(30 6 1 1 ? 2027)", wed), at(2027, 1, 1, 6, 30));
    }

    #[test]
    fn malformed_crons_say_why() {
        for (bad, why) in [
            ("cron(0 7 * * *)", "six fields"),
            ("cron(0 7 * * * *)", "exactly one"),
            ("cron(0 7 ? * ? *)", "exactly one"),
            ("cron(61 7 * * ? *)", "cron(61"),
        ] {
            let err = Expression::parse(bad).expect_err(bad);
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    fn run(expr: &str, kind: ScheduleKind, input: Option<Value>) -> Arc<ScheduleRun> {
        Arc::new(ScheduleRun {
            id: "Tick".into(),
            name: "stack-Tick".into(),
            expression_text: expr.into(),
            expression: Expression::parse(expr).expect("parses"),
            binary: "tick".into(),
            timeout: Duration::from_secs(5),
            input,
            kind,
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_rate_schedule_invokes_its_function_once_per_period_with_a_scheduled_event() {
        let invoker = Arc::new(FakeInvoker::new(|_, _| Ok(json!(null))));
        let task =
            tokio::spawn(run("rate(1 minute)", ScheduleKind::Rule, None).run(invoker.clone()));
        tokio::time::sleep(Duration::from_secs(3 * 60 + 30)).await;
        task.abort();
        let calls = invoker.calls_to("tick");
        assert_eq!(calls.len(), 3);
        let event: aws_lambda_events::eventbridge::EventBridgeEvent =
            serde_json::from_value(calls[0].clone()).expect("an EventBridge event");
        assert_eq!(event.detail_type, "Scheduled Event");
        assert_eq!(event.source, "aws.events");
        let times: Vec<DateTime<Utc>> = calls
            .iter()
            .map(|c| {
                c["time"]
                    .as_str()
                    .and_then(|t| t.parse().ok())
                    .expect("a time")
            })
            .collect();
        assert_eq!((times[1] - times[0]).num_seconds(), 60);
        assert_eq!((times[2] - times[1]).num_seconds(), 60);
        assert_eq!(
            calls[0]["resources"][0],
            "arn:aws:events:us-east-1:123456789012:rule/stack-Tick"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_scheduler_target_gets_its_input_and_failures_do_not_stop_the_schedule() {
        let invoker = Arc::new(FakeInvoker::new(|_, _| {
            Err(InvokeError::Function {
                error_type: "E".into(),
                message: "m".into(),
            })
        }));
        let task = tokio::spawn(
            run(
                "rate(2 minutes)",
                ScheduleKind::Scheduler,
                Some(json!({"job": "digest"})),
            )
            .run(invoker.clone()),
        );
        tokio::time::sleep(Duration::from_secs(4 * 60 + 1)).await;
        task.abort();
        assert_eq!(invoker.calls_to("tick"), vec![json!({"job": "digest"}); 2]);
        let default =
            run("rate(1 minute)", ScheduleKind::Scheduler, None).payload(at(2026, 1, 1, 0, 0));
        let default = default.expect("a default event");
        assert_eq!(default["source"], "aws.scheduler");
        assert_eq!(default["time"], "2026-01-01T00:00:00Z");
    }
}
