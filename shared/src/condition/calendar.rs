//! Calendar time for `absence`: a schedule (`"cron(0 9 * * MON-FRI)"`, standard five-field
//! cron: minute, hour, day of month, month, day of week) in an IANA time zone, and quiet
//! windows (`{"schedule": "cron(0 2 * * SUN)", "for": "4h"}`) during which absence is not
//! reported.
//!
//! Nothing here reads a clock: every answer is relative to a time given.

use chrono::{DateTime, TimeZone as _, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use serde_json::{Map, Value, json};

use super::{ConditionLimits, Span};
use crate::json::{self, Fields, Problems, type_name};

/// Quiet windows one condition has at most.
pub const MAX_QUIET: usize = 5;

/// The longest schedule text read (`cron(...)` with lists of values fits well within it).
const MAX_CRON_CHARS: usize = 200;

/// Overlapping quiet windows a deadline is moved past at most (then it stands).
const MAX_QUIET_HOPS: usize = 8;

/// A cron schedule as sent (`cron(...)`) and parsed.
#[derive(Debug, Clone)]
pub struct CronSpec {
    text: String,
    cron: Cron,
}

impl PartialEq for CronSpec {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl CronSpec {
    /// Reads `cron(m h dom mon dow)`; the schedule must come round (not `30 2`, February 30).
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.chars().count() > MAX_CRON_CHARS {
            return Err(format!("must be at most {MAX_CRON_CHARS} characters"));
        }
        let inner = raw
            .strip_prefix("cron(")
            .and_then(|r| r.strip_suffix(')'))
            .ok_or("must be written cron(minute hour day-of-month month day-of-week)")?;
        let fields = inner.split_whitespace().count();
        if fields != 5 {
            return Err(format!(
                "must have five fields (minute hour day-of-month month day-of-week), found {fields}"
            ));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .build()
            .parse(inner)
            .map_err(|e| format!("is not a valid cron expression: {e}"))?;
        let spec = Self {
            text: raw.to_owned(),
            cron,
        };
        // A fixed point, not the clock: the schedule must have two occurrences after it.
        let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single();
        let second = start
            .and_then(|s| spec.next_after(s, Tz::UTC))
            .and_then(|first| spec.next_after(first, Tz::UTC));
        if second.is_none() {
            return Err("never comes round (no such date)".into());
        }
        Ok(spec)
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The first occurrence strictly after `at`, in zone `tz`.
    pub fn next_after(&self, at: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        self.cron
            .find_next_occurrence(&at.with_timezone(&tz), false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The last occurrence at or before `at`, in zone `tz`.
    fn last_at_or_before(&self, at: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        self.cron
            .find_previous_occurrence(&at.with_timezone(&tz), true)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }
}

/// A window, starting at each occurrence of `schedule` and lasting `lasting`, in which absence
/// is not reported.
#[derive(Debug, Clone, PartialEq)]
pub struct Quiet {
    pub schedule: CronSpec,
    pub lasting: Span,
}

/// When the quiet windows that contain `at` end (the latest of them), if any does.
fn quiet_end(quiet: &[Quiet], at: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
    quiet
        .iter()
        .filter_map(|q| {
            let start = q.schedule.last_at_or_before(at, tz)?;
            let end = start + q.lasting.as_chrono();
            (at < end).then_some(end)
        })
        .max()
}

/// `due`, moved past the quiet windows it falls in: to a window's end plus `grace`, so a group
/// back from maintenance has its grace to report.
pub fn outside_quiet(
    quiet: &[Quiet],
    mut due: DateTime<Utc>,
    grace: Span,
    tz: Tz,
) -> DateTime<Utc> {
    for _ in 0..MAX_QUIET_HOPS {
        match quiet_end(quiet, due, tz) {
            Some(end) => due = end + grace.as_chrono(),
            None => break,
        }
    }
    due
}

/// Reads `timezone` (absent: UTC).
pub(super) fn timezone_field<'a>(fields: &mut Fields<'a>, problems: &mut Problems) -> Option<Tz> {
    match fields.get("timezone") {
        None | Some(Value::Null) => Some(Tz::UTC),
        Some(Value::String(name)) => name
            .parse::<Tz>()
            .map_err(|_| {
                problems.push(
                    fields.path_of("timezone"),
                    format!("unknown time zone {name:?}: use an IANA name like \"Europe/Berlin\""),
                )
            })
            .ok(),
        Some(other) => {
            problems.push(
                fields.path_of("timezone"),
                format!(
                    "must be an IANA time zone name like \"Europe/Berlin\", not {}",
                    type_name(other)
                ),
            );
            None
        }
    }
}

/// Reads a cron schedule field at `path`.
pub(super) fn cron_value(value: &Value, path: &str, problems: &mut Problems) -> Option<CronSpec> {
    match value {
        Value::String(raw) => CronSpec::parse(raw)
            .map_err(|m| problems.push(path, m))
            .ok(),
        other => {
            problems.push(
                path,
                format!(
                    "must be a cron schedule like \"cron(0 9 * * MON-FRI)\", not {}",
                    type_name(other)
                ),
            );
            None
        }
    }
}

/// Reads `quiet` (absent: none): up to [`MAX_QUIET`] windows `{"schedule", "for"}`.
pub(super) fn quiet_field<'a>(
    fields: &mut Fields<'a>,
    limits: &ConditionLimits,
    problems: &mut Problems,
) -> Option<Vec<Quiet>> {
    let path = fields.path_of("quiet");
    let items = match fields.get("quiet") {
        None | Some(Value::Null) => return Some(Vec::new()),
        Some(Value::Array(items)) if items.len() <= MAX_QUIET => items,
        Some(Value::Array(_)) => {
            problems.push(path, format!("must have at most {MAX_QUIET} windows"));
            return None;
        }
        Some(other) => {
            problems.push(
                path,
                format!(
                    "must be an array of windows {{\"schedule\": \"cron(...)\", \"for\": \"4h\"}}, not {}",
                    type_name(other)
                ),
            );
            return None;
        }
    };
    let before = problems.0.len();
    let mut windows = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = json::index(&path, i);
        let Some(mut window) = Fields::of(item, &at, problems) else {
            continue;
        };
        let schedule = window
            .required("schedule", problems)
            .and_then(|v| cron_value(v, &window.path_of("schedule"), problems));
        let lasting = match window.required("for", problems) {
            Some(Value::String(raw)) => Span::parse(raw, limits.min_timer, limits.max_window)
                .map_err(|m| problems.push(window.path_of("for"), m))
                .ok(),
            Some(other) => {
                problems.push(
                    window.path_of("for"),
                    format!(
                        "must be a duration string like \"4h\", not {}",
                        type_name(other)
                    ),
                );
                None
            }
            None => None,
        };
        window.finish(problems);
        if let (Some(schedule), Some(lasting)) = (schedule, lasting) {
            windows.push(Quiet { schedule, lasting });
        }
    }
    (problems.0.len() == before).then_some(windows)
}

/// Writes `quiet` back as sent (nothing when there are none).
pub(super) fn write_quiet(quiet: &[Quiet], map: &mut Map<String, Value>) {
    if quiet.is_empty() {
        return;
    }
    let windows: Vec<Value> = quiet
        .iter()
        .map(|q| json!({"schedule": q.schedule.as_str(), "for": q.lasting.to_text()}))
        .collect();
    map.insert("quiet".into(), Value::Array(windows));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    #[test]
    fn weekday_mornings_in_berlin_skip_the_weekend_and_follow_summer_time() {
        let spec = CronSpec::parse("cron(0 9 * * MON-FRI)").expect("valid");
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        // Friday 2026-03-27 10:00 UTC → Monday 2026-03-30 09:00 Berlin, which is summer time
        // (UTC+2) since Sunday the 29th: 07:00 UTC.
        let next = spec.next_after(utc(2026, 3, 27, 10, 0), berlin);
        assert_eq!(next, Some(utc(2026, 3, 30, 7, 0)));
        // The Friday before, in winter time (UTC+1): 08:00 UTC; strictly after.
        assert_eq!(
            spec.next_after(utc(2026, 3, 20, 7, 59), berlin),
            Some(utc(2026, 3, 20, 8, 0))
        );
        assert_eq!(
            spec.next_after(utc(2026, 3, 20, 8, 0), berlin),
            Some(utc(2026, 3, 23, 8, 0))
        );
    }

    #[test]
    fn schedules_that_are_not_five_field_cron_or_never_come_round_are_refused() {
        for (raw, says) in [
            ("0 9 * * *", "cron(minute"),
            ("cron(0 9 * *)", "five fields"),
            ("cron(0 0 9 * * ?)", "five fields"),
            ("cron(61 9 * * *)", "not a valid cron"),
            ("cron(0 0 30 2 *)", "never comes round"),
        ] {
            let err = CronSpec::parse(raw).expect_err(raw);
            assert!(err.contains(says), "{raw}: {err}");
        }
    }

    #[test]
    fn a_deadline_in_a_quiet_window_moves_to_its_end_plus_grace() {
        let quiet = vec![Quiet {
            schedule: CronSpec::parse("cron(0 2 * * SUN)").expect("valid"),
            lasting: Span::parse("4h", std::time::Duration::ZERO, std::time::Duration::MAX)
                .expect("span"),
        }];
        let grace =
            Span::parse("10m", std::time::Duration::ZERO, std::time::Duration::MAX).expect("span");
        // Sunday 2026-04-05 03:00 UTC is inside 02:00–06:00.
        assert_eq!(
            outside_quiet(&quiet, utc(2026, 4, 5, 3, 0), grace, Tz::UTC),
            utc(2026, 4, 5, 6, 10)
        );
        // The window's end itself is outside it; Saturday is untouched.
        assert_eq!(
            outside_quiet(&quiet, utc(2026, 4, 5, 6, 0), grace, Tz::UTC),
            utc(2026, 4, 5, 6, 0)
        );
        assert_eq!(
            outside_quiet(&quiet, utc(2026, 4, 4, 3, 0), grace, Tz::UTC),
            utc(2026, 4, 4, 3, 0)
        );
    }
}
