//! One cold start: spawn a bootstrap against the stand-in, wait for its first invocation to be
//! answered, read its peak RSS, stop it.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::body::Bytes;

use crate::runtime_api::{Outcome, RuntimeApi, Trap};

/// What to start.
#[derive(Debug, Clone)]
pub struct Launch {
    /// A name for the run (the function, or a baseline).
    pub name: String,
    /// The executable (a `bootstrap`).
    pub program: PathBuf,
    /// Its whole environment (nothing is inherited from the harness).
    pub env: Vec<(String, String)>,
    /// The event the first `next` hands out.
    pub event: Bytes,
    /// Where its stdout and stderr go (overwritten by each run).
    pub log: PathBuf,
}

/// The figures of one cold start.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Exec → first `next` request.
    pub init: Option<Duration>,
    /// First `next` → the invocation's response or error.
    pub invoke: Option<Duration>,
    /// How the first invocation ended; `None` when it never did.
    pub outcome: Option<Outcome>,
    /// `VmHWM` after the first invocation, in bytes.
    pub peak_rss: Option<u64>,
    /// Connections to the trap before the first `next` (network calls during init).
    pub trap_hits_during_init: usize,
    /// Connections to the trap during the first invocation (expected for DB/AWS functions).
    pub trap_hits_during_invoke: usize,
    /// Sockets open to anything but the Runtime API when the first `next` arrived.
    pub sockets_at_first_next: Vec<String>,
    /// Set when the process exited by itself before answering.
    pub exited: Option<String>,
}

/// Runs `launch` once. Gives up after `timeout` without an answer.
pub async fn cold_start(
    api: &RuntimeApi,
    trap: &Trap,
    launch: &Launch,
    run_id: u64,
    timeout: Duration,
) -> anyhow::Result<Sample> {
    let request_id = format!("coldstart-{run_id:06}");
    let log =
        File::create(&launch.log).with_context(|| format!("creating {}", launch.log.display()))?;
    let mut command = tokio::process::Command::new(&launch.program);
    command
        .env_clear()
        .envs(launch.env.iter().map(|(k, v)| (k, v)))
        .current_dir(launch.program.parent().unwrap_or(Path::new("/")))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true);
    api.begin(&request_id, &launch.name, launch.event.clone());
    trap.take();
    let started = Instant::now();
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {}", launch.program.display()))?;
    // No await between spawn and here: the stand-in's handlers run on this thread, so the pid is
    // known before the first request can be served.
    let pid = child.id();
    if let Some(pid) = pid {
        api.set_pid(pid);
    }

    let deadline = started + timeout;
    let mut exited = None;
    loop {
        if api.snapshot().is_some_and(|r| r.done.is_some()) {
            break;
        }
        if let Some(status) = child.try_wait()? {
            exited = Some(status.to_string());
            break;
        }
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let peak_rss = pid.and_then(vm_hwm);
    let _ = child.start_kill();
    let _ = child.wait().await;
    let record = api.end().context("the run disappeared")?;
    let hits = trap.take();

    let first_next = record.first_next;
    let done = record.done.clone();
    let split = first_next.or(done.as_ref().map(|(t, _)| *t));
    let during_init = hits
        .iter()
        .filter(|t| split.is_none_or(|s| **t < s))
        .count();
    Ok(Sample {
        init: first_next.map(|t| t - started),
        invoke: match (first_next, &done) {
            (Some(n), Some((d, _))) => Some(*d - n),
            _ => None,
        },
        outcome: done.map(|(_, o)| o),
        peak_rss,
        trap_hits_during_init: during_init,
        trap_hits_during_invoke: hits.len() - during_init,
        sockets_at_first_next: record.sockets_at_first_next,
        exited,
    })
}

/// `VmHWM` of a live process, in bytes.
fn vm_hwm(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Median and 90th percentile (nearest rank) of `values`; `None` when empty.
pub fn median_p90(values: &[f64]) -> Option<(f64, f64)> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let median = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    };
    let rank = ((0.9 * n as f64).ceil() as usize).clamp(1, n);
    Some((median, sorted[rank - 1]))
}

#[cfg(test)]
mod tests {
    use super::median_p90;

    #[test]
    fn median_and_p90_use_nearest_rank() {
        assert_eq!(median_p90(&[]), None);
        assert_eq!(median_p90(&[3.0]), Some((3.0, 3.0)));
        assert_eq!(median_p90(&[4.0, 1.0, 3.0, 2.0]), Some((2.5, 4.0)));
        let ten: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(median_p90(&ten), Some((5.5, 9.0)));
    }
}
