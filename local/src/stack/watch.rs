//! cargo lambda watch: the functions' Lambda runtime. It runs in a process group of its own,
//! so that stopping it stops every function instance, and its output (its own lines and the
//! functions') is relayed line by line, without the lines it prints for every instance it
//! starts (see [`is_instance_noise`]): a healthy start shows only the stack's own lines. Once
//! it is being stopped, nothing more is relayed: every function instance then reports that its
//! runtime API went away (`Error: ... IncompleteMessage`), which is how stopping looks.

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::io::{AsyncBufReadExt as _, AsyncRead, BufReader};
use tokio::net::TcpListener;
use tokio::process::Child;

use super::DevArgs;

/// A running cargo lambda watch.
pub(super) struct Watch {
    child: Child,
    /// Set when [`Watch::stop`] begins: the relays fall silent.
    stopping: Arc<AtomicBool>,
}

impl Watch {
    /// Starts cargo lambda watch on `addr` with the functions' environment file.
    pub(super) fn start(args: &DevArgs, addr: SocketAddr) -> anyhow::Result<Self> {
        let mut command = tokio::process::Command::new(&args.cargo_lambda);
        command
            .arg("lambda")
            .arg("watch")
            .arg("--invoke-address")
            .arg(addr.ip().to_string())
            .arg("--invoke-port")
            .arg(addr.port().to_string())
            .arg("--env-file")
            .arg(&args.env_file)
            .arg("--concurrency")
            .arg(args.function_concurrency.to_string())
            .arg("--quiet")
            .args(args.no_reload.then_some("--ignore-changes"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = command.spawn().with_context(|| {
            format!(
                "cannot start {} (run `make setup`, which installs cargo-lambda into .venv)",
                args.cargo_lambda.display()
            )
        })?;
        // The relays end when the pipes close, that is when watch and its functions are gone.
        let stopping = Arc::new(AtomicBool::new(false));
        if let Some(out) = child.stdout.take() {
            let stopping = stopping.clone();
            tokio::spawn(relay(out, move |line| {
                if !stopping.load(Ordering::Relaxed) {
                    let _ = std::io::stdout().lock().write_all(line);
                }
            }));
        }
        if let Some(err) = child.stderr.take() {
            let stopping = stopping.clone();
            tokio::spawn(relay(err, move |line| {
                if !stopping.load(Ordering::Relaxed) {
                    let _ = std::io::stderr().lock().write_all(line);
                }
            }));
        }
        Ok(Self { child, stopping })
    }

    /// Waits until the Invoke API accepts connections.
    pub(super) async fn ready(&mut self, addr: SocketAddr) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        while tokio::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                bail!("cargo lambda watch exited ({status}) before it listened on {addr}");
            }
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        bail!("cargo lambda watch did not listen on {addr} within 2 minutes")
    }

    /// Waits until cargo lambda watch exits; returns how it ended.
    pub(super) async fn exited(&mut self) -> String {
        match self.child.wait().await {
            Ok(status) => status.to_string(),
            Err(e) => format!("cannot tell: {e}"),
        }
    }

    /// Asks the process group to stop (SIGINT, as Ctrl-C would), then insists.
    pub(super) async fn stop(mut self) {
        self.stopping.store(true, Ordering::Relaxed);
        let Some(pid) = self.child.id() else {
            return;
        };
        let group = format!("-{pid}");
        let _ = std::process::Command::new("kill")
            .args(["-INT", "--", &group])
            .status();
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &group])
                .status();
            let _ = self.child.wait().await;
        }
    }
}

/// Passes `source` on to `sink` line by line (bytes as they came, invalid UTF-8 included),
/// leaving out [`is_instance_noise`].
async fn relay(source: impl AsyncRead + Unpin, mut sink: impl FnMut(&[u8])) {
    let mut reader = BufReader::new(source);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) if is_instance_noise(&String::from_utf8_lossy(&line)) => {}
            Ok(_) => sink(&line),
        }
    }
}

/// The lines cargo lambda watch's output repeats for every function instance, and which say
/// nothing the stack's own lines do not:
/// - its INFO lines about starting (and stopping) instances, two per instance: with two
///   instances of each of 20 functions, 80 lines; and those of its own start and stop;
/// - lambda_runtime's warning that `AWS_LAMBDA_MAX_CONCURRENCY` is set without its
///   `concurrency-tokio` feature, once per instance: cargo lambda watch sets the variable (to 1)
///   for every instance it runs, with or without `--concurrency`. In AWS only Lambda Managed
///   Instances set it, and TriggerIQ's functions do not run there.
///
/// Matched on the message, not the level, so that colour codes around the level do not matter.
pub(super) fn is_instance_noise(line: &str) -> bool {
    const NOISE: [&str; 8] = [
        "starting Runtime server",
        "terminating instance monitor",
        "terminating lambda scheduler",
        "spawning function instance",
        "spawning additional instance",
        "starting lambda function instance",
        "terminating lambda function instance",
        "AWS_LAMBDA_MAX_CONCURRENCY is set to",
    ];
    NOISE.iter().any(|noise| line.contains(noise))
}

/// Where cargo lambda watch listens: `--watch-host`, else IPv6 loopback when the machine has
/// it (`cargo lambda invoke` sends to `[::1]:9000` unless told otherwise), else `--host`.
/// When this command starts watch, the port must be free: refuse early rather than let
/// cargo lambda fail behind us.
pub(super) async fn address(args: &DevArgs) -> anyhow::Result<SocketAddr> {
    let loopback6 = IpAddr::V6(std::net::Ipv6Addr::LOCALHOST);
    let candidates = match args.watch_host {
        Some(host) => vec![host],
        None if args.host.is_loopback() => vec![loopback6, args.host],
        None => vec![args.host],
    };
    if args.external_watch {
        for host in &candidates {
            let addr = SocketAddr::new(*host, args.watch_port);
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return Ok(addr);
            }
        }
        bail!(
            "--external-watch: nothing listens on port {} ({candidates:?})",
            args.watch_port
        );
    }
    let mut last = None;
    for host in &candidates {
        match TcpListener::bind(SocketAddr::new(*host, args.watch_port)).await {
            Ok(listener) => return Ok(listener.local_addr()?),
            Err(e) => last = Some(e),
        }
    }
    Err(anyhow::anyhow!(
        "cannot listen on port {} for cargo lambda watch ({}): is the port in use? set TRIGGERIQ_WATCH_PORT to use another",
        args.watch_port,
        last.map(|e| e.to_string()).unwrap_or_default()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines as cargo lambda watch 1.9 and lambda_runtime 1.5 print them, and function log
    /// lines that must come through.
    #[tokio::test]
    async fn instance_lines_are_left_out_and_everything_else_comes_through() {
        let output = concat!(
            " INFO starting Runtime server runtime_addr=127.0.0.1:9277\n",
            " INFO spawning function instance function=\"test-pattern\" instance_id=c4dd\n",
            " INFO starting lambda function instance function=\"test-pattern\" instance_id=c4dd manifest=Some(\"Cargo.toml\")\n",
            " WARN AWS_LAMBDA_MAX_CONCURRENCY is set to '1', but the concurrency-tokio feature is not enabled; running sequentially\n",
            "\u{1b}[32m INFO\u{1b}[0m spawning function instance function=\"x\"\n",
            "ERROR Lambda runtime invoke{requestId=\"4b\"}: internal error error=pool timed out\n",
            "error[E0308]: mismatched types\n",
            "last line without a newline",
        );
        let mut relayed = Vec::new();
        relay(output.as_bytes(), |line| relayed.extend_from_slice(line)).await;
        assert_eq!(
            String::from_utf8(relayed).expect("UTF-8"),
            "ERROR Lambda runtime invoke{requestId=\"4b\"}: internal error error=pool timed out\n\
             error[E0308]: mismatched types\n\
             last line without a newline"
        );
    }

    #[tokio::test]
    async fn bytes_that_are_not_utf8_are_relayed_as_they_came() {
        let output: &[u8] = b"caf\xe9\nok\n";
        let mut relayed = Vec::new();
        relay(output, |line| relayed.extend_from_slice(line)).await;
        assert_eq!(relayed, output);
    }
}
