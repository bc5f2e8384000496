//! The local stack's console: one readable line per request, invocation, batch, schedule run
//! and delivered webhook, colored when stdout is a terminal (and `NO_COLOR` is unset).
//!
//! ```text
//! 20:31:07.412 http     POST /v1/triggers → create-trigger 201 18 ms
//! 20:31:07.398 auth     authorize-request allow (invoked) 9 ms
//! 20:31:08.101 sqs      events → evaluate-events 3 messages: 3 ok 41 ms
//! ```

use std::io::{IsTerminal as _, Write as _};
use std::sync::OnceLock;
use std::time::Duration;

/// How a line ends: fine, worth a look, or broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Warn,
    Fail,
}

/// What a line is about; its tag is the second column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Http,
    Auth,
    Sqs,
    Schedule,
    Webhook,
    Bedrock,
    Stack,
}

impl Kind {
    fn tag(self) -> &'static str {
        match self {
            Kind::Http => "http",
            Kind::Auth => "auth",
            Kind::Sqs => "sqs",
            Kind::Schedule => "schedule",
            Kind::Webhook => "webhook",
            Kind::Bedrock => "bedrock",
            Kind::Stack => "stack",
        }
    }

    fn color(self) -> &'static str {
        match self {
            Kind::Http => "\x1b[36m",     // cyan
            Kind::Auth => "\x1b[35m",     // magenta
            Kind::Sqs => "\x1b[33m",      // yellow
            Kind::Schedule => "\x1b[32m", // green
            Kind::Webhook => "\x1b[1;32m",
            Kind::Bedrock => "\x1b[35m",
            Kind::Stack => "\x1b[1m",
        }
    }
}

fn colored() -> bool {
    static COLORED: OnceLock<bool> = OnceLock::new();
    *COLORED.get_or_init(|| {
        std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stdout().is_terminal()
    })
}

/// Formats one line (without the timestamp) the way [`line`] prints it.
pub fn format(
    kind: Kind,
    outcome: Outcome,
    text: &str,
    duration: Option<Duration>,
    color: bool,
) -> String {
    let took = duration
        .map(|d| format!(" {}", millis(d)))
        .unwrap_or_default();
    if !color {
        return format!("{:<8} {text}{took}", kind.tag());
    }
    let (start, end) = match outcome {
        Outcome::Ok => ("", ""),
        Outcome::Warn => ("\x1b[33m", "\x1b[0m"),
        Outcome::Fail => ("\x1b[1;31m", "\x1b[0m"),
    };
    format!(
        "{}{:<8}\x1b[0m {start}{text}{end}\x1b[2m{took}\x1b[0m",
        kind.color(),
        kind.tag()
    )
}

/// A duration as people read it in a log: `18 ms`, `1.4 s`.
pub fn millis(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.1} ms")
    } else if ms < 10_000.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// Prints one line to stdout.
pub fn line(kind: Kind, outcome: Outcome, text: &str, duration: Option<Duration>) {
    let now = chrono::Local::now().format("%H:%M:%S%.3f");
    let color = colored();
    let stamp = if color {
        format!("\x1b[2m{now}\x1b[0m")
    } else {
        now.to_string()
    };
    let mut out = std::io::stdout().lock();
    // A closed stdout (piped into `head`) must not take the stack down.
    let _ = writeln!(
        out,
        "{stamp} {}",
        format(kind, outcome, text, duration, color)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_read_plainly_without_color_and_mark_failures_with_it() {
        let plain = format(
            Kind::Http,
            Outcome::Fail,
            "GET /x → f 502",
            Some(Duration::from_millis(18)),
            false,
        );
        assert_eq!(plain, "http     GET /x → f 502 18 ms");
        let colored = format(Kind::Http, Outcome::Fail, "GET /x → f 502", None, true);
        assert!(colored.contains("\x1b[1;31mGET /x → f 502"), "{colored:?}");
        assert_eq!(millis(Duration::from_micros(1500)), "1.5 ms");
        assert_eq!(millis(Duration::from_millis(12_500)), "12.5 s");
    }
}
