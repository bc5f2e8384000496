//! `triggeriq dev`: the whole of TriggerIQ on one machine, served by the binaries that run in
//! AWS and wired the way template.yaml wires them.
//!
//! Startup: read template.yaml ([`template`]); create its queues, table and bucket in the
//! emulator ([`provision`]); apply the migrations; seed the demo data ([`demo`], with
//! `--demo`); write the functions' environment (the template's variables with local values)
//! and start `cargo lambda watch` with it; then serve the HTTP API ([`gateway`]), poll the
//! queues into their functions ([`sqs`]), run the schedules ([`schedule`]), the Bedrock
//! stand-in ([`bedrock`]) and the demo receiver ([`receiver`]). Ctrl-C stops what this
//! command started, cargo lambda watch and its functions included.

pub mod authorizer;
pub mod bedrock;
pub mod demo;
pub mod emulator_proxy;
pub mod gateway;
pub mod intrinsic;
pub mod invoke;
pub mod log;
pub mod provision;
pub mod receiver;
pub mod schedule;
pub mod sqs;
pub mod template;
/// The moto helpers of the library's adapter tests (one server per test binary: found or
/// started), shared rather than copied; the cli's tests use part of them.
#[cfg(test)]
#[allow(dead_code)]
#[path = "../../../shared/tests/aws_adapters/support.rs"]
mod testing;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use triggeriq::aws::{AwsClients, AwsOptions};

use self::invoke::WatchInvoker;
use self::log::{Kind, Outcome};
use self::provision::Provisioned;
use self::template::Template;

/// Options of `triggeriq dev`.
#[derive(Args, Debug, Clone)]
pub struct DevArgs {
    /// The SAM template to run.
    #[arg(long, default_value = "template.yaml")]
    pub template: PathBuf,
    /// Stack name: the prefix of local queue, table and bucket names.
    #[arg(long, default_value = "triggeriq-local")]
    pub stack_name: String,
    /// A template parameter value, `Name=Value` (repeatable).
    #[arg(long = "parameter", value_name = "NAME=VALUE", value_parser = parse_key_value)]
    pub parameters: Vec<(String, String)>,
    /// Address every local server listens on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Port of the HTTP API.
    #[arg(long, env = "TRIGGERIQ_PORT", default_value_t = 3000)]
    pub port: u16,
    /// Port of cargo lambda watch's Invoke API.
    #[arg(long, env = "TRIGGERIQ_WATCH_PORT", default_value_t = 9000)]
    pub watch_port: u16,
    /// Address of cargo lambda watch. Default: `::1` when this machine has IPv6 loopback
    /// (where a plain `cargo lambda invoke` sends), else 127.0.0.1.
    #[arg(long)]
    pub watch_host: Option<IpAddr>,
    /// Use a cargo lambda watch already listening on --watch-port (started with
    /// `--env-file <the file --env-file names>`) instead of starting one.
    #[arg(long)]
    pub external_watch: bool,
    /// The cargo-lambda executable.
    #[arg(long, env = "TRIGGERIQ_CARGO_LAMBDA", default_value = "cargo-lambda")]
    pub cargo_lambda: PathBuf,
    /// Instances cargo lambda may run of one function at a time.
    #[arg(long, default_value_t = 2)]
    pub function_concurrency: u32,
    /// The AWS emulator (moto) every function and this command talk to.
    #[arg(long, env = "MOTO_ENDPOINT", default_value = "http://127.0.0.1:5000")]
    pub aws_endpoint: String,
    /// PostgreSQL for the functions (and the migrations and demo data).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// Port of the demo webhook receiver (0: don't run it).
    #[arg(long, env = "TRIGGERIQ_RECEIVER_PORT", default_value_t = 9100)]
    pub receiver_port: u16,
    /// Port of the Bedrock Converse stand-in, run unless --bedrock-endpoint is given.
    #[arg(long, env = "TRIGGERIQ_BEDROCK_PORT", default_value_t = 9101)]
    pub bedrock_port: u16,
    /// A Bedrock runtime endpoint for the functions instead of the stand-in.
    #[arg(long, env = "AWS_ENDPOINT_URL_BEDROCK_RUNTIME")]
    pub bedrock_endpoint: Option<String>,
    /// How often an idle queue is polled (a message sent through the stack wakes its pollers
    /// at once).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub poll_interval: Duration,
    /// How long a function's first invocation may take (cargo lambda compiles it then).
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub cold_start_timeout: Duration,
    /// Keep the demo tenant, API key and trigger of events/README.md in place.
    #[arg(long)]
    pub demo: bool,
    /// Where the functions' environment is written (KEY=VALUE lines).
    #[arg(long, default_value = ".dev/functions.env")]
    pub env_file: PathBuf,
    /// Write a JSON summary (URLs, ports) here once everything is up, for scripts.
    #[arg(long)]
    pub ready_file: Option<PathBuf>,
}

fn parse_key_value(raw: &str) -> Result<(String, String), String> {
    raw.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("{raw:?} is not NAME=VALUE"))
}

/// Binds a listener, saying which setting to change when the port is taken.
async fn bind(host: IpAddr, port: u16, what: &str, setting: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(SocketAddr::new(host, port)).await.with_context(|| {
        format!("cannot listen on {host}:{port} for the {what}: is the port in use? (see `ss -ltnp 'sport = :{port}'`; set {setting} to use another)")
    })
}

/// The environment every function runs with: each function's template variables resolved to
/// local values, merged (cargo lambda watch gives all functions one environment, so a
/// variable must mean the same wherever the template sets it), plus the local settings.
pub fn functions_environment(
    template: &Template,
    provisioned: &Provisioned,
    local: &BTreeMap<String, String>,
) -> anyhow::Result<BTreeMap<String, String>> {
    let mut merged: BTreeMap<String, (String, String)> = BTreeMap::new();
    for f in template.functions.values() {
        for (name, value) in template.environment(f, provisioned)? {
            if local.contains_key(&name) {
                continue;
            }
            match merged.get(&name) {
                Some((other, existing)) if *existing != value => bail!(
                    "template.yaml gives {name} different values in {other} ({existing:?}) and {} ({value:?}); \
                     the local stack runs every function with one environment (cargo lambda watch), \
                     so a variable must mean the same in each function",
                    f.logical_id
                ),
                _ => {
                    merged.insert(name, (f.logical_id.clone(), value));
                }
            }
        }
    }
    let mut out: BTreeMap<String, String> = merged.into_iter().map(|(k, (_, v))| (k, v)).collect();
    out.extend(local.iter().map(|(k, v)| (k.clone(), v.clone())));
    for (k, v) in &out {
        if v.contains('\n') {
            bail!("{k}: a function environment value cannot span lines");
        }
    }
    Ok(out)
}

/// The local values that replace or complete the template's (see docs/local-stack.md).
fn local_settings(args: &DevArgs, aws: &str, bedrock: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("DATABASE_URL".into(), args.database_url.clone()),
        ("AWS_ENDPOINT_URL".into(), aws.to_owned()),
        (
            "AWS_ENDPOINT_URL_BEDROCK_RUNTIME".into(),
            bedrock.to_owned(),
        ),
        ("AWS_ACCESS_KEY_ID".into(), "test".into()),
        ("AWS_SECRET_ACCESS_KEY".into(), "test".into()),
        ("AWS_REGION".into(), template::REGION.into()),
        ("AWS_DEFAULT_REGION".into(), template::REGION.into()),
        // The demo receiver is plain http on 127.0.0.1.
        ("ALLOW_HTTP_WEBHOOKS".into(), "true".into()),
        ("ALLOW_PRIVATE_WEBHOOK_TARGETS".into(), "true".into()),
    ])
}

fn write_env_file(path: &Path, env: &BTreeMap<String, String>) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let text: String = env.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// cargo lambda watch, in its own process group so that stopping it stops its functions too.
struct Watch {
    child: tokio::process::Child,
}

impl Watch {
    fn start(args: &DevArgs, addr: SocketAddr) -> anyhow::Result<Self> {
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
            .stdin(Stdio::null())
            .process_group(0)
            .kill_on_drop(true);
        let child = command.spawn().with_context(|| {
            format!(
                "cannot start {} (run `make setup`, which installs cargo-lambda into .venv)",
                args.cargo_lambda.display()
            )
        })?;
        Ok(Self { child })
    }

    /// Waits until the Invoke API accepts connections.
    async fn ready(&mut self, addr: SocketAddr) -> anyhow::Result<()> {
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

    /// Asks the process group to stop (SIGINT, as Ctrl-C would), then insists.
    async fn stop(mut self) {
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

/// Runs the local stack until Ctrl-C.
pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    // Handlers from the start: Ctrl-C during startup must still stop cargo lambda watch, which
    // runs in a process group of its own and so does not get the terminal's signal.
    let mut signals = Signals::new()?;
    let mut watch: Option<Watch> = None;
    let outcome = tokio::select! {
        result = serve(&args, &mut watch) => result,
        reason = signals.recv() => Ok(reason),
    };
    if let Ok(reason) = &outcome {
        log::line(
            Kind::Stack,
            Outcome::Ok,
            &format!("stopping ({reason})"),
            None,
        );
    }
    if let Some(w) = watch {
        w.stop().await;
    }
    outcome.map(|_| ())
}

/// Starts everything and serves until cargo lambda watch exits; the tasks it spawned end with
/// it (their `JoinSet` is dropped). Returns why it stopped.
async fn serve(args: &DevArgs, watch: &mut Option<Watch>) -> anyhow::Result<String> {
    let args = args.clone();
    let overrides: BTreeMap<String, String> = args.parameters.iter().cloned().collect();
    let template = Template::load(&args.template, &args.stack_name, &overrides)?;
    for warning in &template.warnings {
        log::line(Kind::Stack, Outcome::Warn, warning, None);
    }
    let missing = missing_binaries(&template, &args.template);
    for missing in &missing {
        log::line(
            Kind::Stack,
            Outcome::Warn,
            &format!(
                "template.yaml declares {missing}, but functions/{missing} does not exist: what it serves answers 502 until it does"
            ),
            None,
        );
    }

    // Listen first: a port in use should stop us before anything else starts.
    let gateway_listener = bind(args.host, args.port, "HTTP API", "TRIGGERIQ_PORT").await?;
    let receiver_listener = match args.receiver_port {
        0 => None,
        port => Some(
            bind(
                args.host,
                port,
                "demo webhook receiver",
                "TRIGGERIQ_RECEIVER_PORT",
            )
            .await?,
        ),
    };
    let bedrock_listener = match &args.bedrock_endpoint {
        Some(_) => None,
        None => Some(
            bind(
                args.host,
                args.bedrock_port,
                "Bedrock stand-in",
                "TRIGGERIQ_BEDROCK_PORT",
            )
            .await?,
        ),
    };
    let watch_addr = watch_address(&args).await?;

    let clients = AwsClients::load(&AwsOptions::emulator(&args.aws_endpoint)).await;
    let provisioned = provision::provision(&template, &clients)
        .await
        .with_context(|| {
            format!(
                "creating the template's resources in the emulator at {} (is moto running?)",
                args.aws_endpoint
            )
        })?;
    log::line(
        Kind::Stack,
        Outcome::Ok,
        &format!(
            "{} queues, {} table(s), {} bucket(s) ready in {}",
            template.queues.len(),
            template.tables.len(),
            template.buckets.len(),
            args.aws_endpoint
        ),
        None,
    );

    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&args.database_url)
        .await
        .context("cannot connect to Postgres (DATABASE_URL)")?;
    triggeriq::MIGRATOR
        .run(&pool)
        .await
        .context("applying the migrations")?;
    let receiver_base = format!("http://{}:{}", args.host, args.receiver_port);
    if args.demo {
        demo::seed(&pool, &format!("{receiver_base}/hooks/{}", demo::TENANT)).await?;
    }
    pool.close().await;

    let bedrock_url = args
        .bedrock_endpoint
        .clone()
        .unwrap_or_else(|| format!("http://{}:{}", args.host, args.bedrock_port));
    // The functions reach moto through the proxy that wakes the queue pollers.
    let wakers = emulator_proxy::Wakers::default();
    let proxy_listener = bind(args.host, 0, "AWS emulator proxy", "--host").await?;
    let proxy_url = format!("http://{}", proxy_listener.local_addr()?);
    let proxy = emulator_proxy::EmulatorProxy::new(&args.aws_endpoint, wakers.clone())?.router();
    let env = functions_environment(
        &template,
        &provisioned,
        &local_settings(&args, &proxy_url, &bedrock_url),
    )?;
    write_env_file(&args.env_file, &env)?;

    let mut tasks = JoinSet::new();
    tasks.spawn(async move {
        let _ = axum::serve(proxy_listener, proxy).await;
    });
    if !args.external_watch {
        let w = watch.insert(Watch::start(&args, watch_addr)?);
        w.ready(watch_addr).await?;
    }
    let invoker = Arc::new(WatchInvoker::new(
        format!("http://{watch_addr}"),
        args.cold_start_timeout,
    )?);

    let gateway = gateway::Gateway::from_template(&template, invoker.clone()).router();
    tasks.spawn(async move {
        let _ = axum::serve(
            gateway_listener,
            gateway.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
    if let Some(listener) = receiver_listener {
        let table = template
            .tables
            .values()
            .next()
            .map(|t| t.name.clone())
            .context("the demo receiver reads signing secrets from the template's table, and it has none")?;
        let router = receiver::Receiver::new((*clients.dynamodb).clone(), &table).router();
        tasks.spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
    }
    if let Some(listener) = bedrock_listener {
        tasks.spawn(async move {
            let _ = axum::serve(listener, bedrock::router()).await;
        });
    }
    start_pollers(
        &template,
        &provisioned,
        &clients,
        &invoker,
        &wakers,
        &args,
        &mut tasks,
    )?;
    start_schedules(&template, &invoker, &mut tasks)?;
    let consumers = template
        .consumer_binaries()
        .into_iter()
        .filter(|b| !missing.contains(b))
        .collect();
    tasks.spawn(warm_consumers(
        consumers,
        invoker.clone(),
        args.cold_start_timeout,
    ));

    let api = format!("http://{}:{}", args.host, args.port);
    print_banner(&args, &api, &receiver_base, &bedrock_url, watch_addr);
    if let Some(path) = &args.ready_file {
        let summary = serde_json::json!({
            "api": api, "receiver": receiver_base, "bedrock": bedrock_url,
            "watch": format!("http://{watch_addr}"), "aws_endpoint": args.aws_endpoint,
            "env_file": args.env_file, "pid": std::process::id(),
        });
        std::fs::write(path, summary.to_string())
            .with_context(|| format!("writing {}", path.display()))?;
    }

    let status = match watch.as_mut() {
        Some(w) => w
            .child
            .wait()
            .await
            .map(|s| s.to_string())
            .unwrap_or_default(),
        None => std::future::pending().await,
    };
    Ok(format!("cargo lambda watch exited ({status})"))
}

/// Functions of the template without a crate under `functions/` next to it.
fn missing_binaries(template: &Template, template_path: &Path) -> Vec<String> {
    let root = template_path.parent().unwrap_or(Path::new("."));
    let mut missing: Vec<String> = template
        .functions
        .values()
        .map(|f| f.binary.clone())
        .filter(|b| !root.join("functions").join(b).is_dir())
        .collect();
    missing.sort();
    missing.dedup();
    missing
}

/// Starts each queue consumer once with an empty batch — which a consumer must accept and
/// which changes nothing — so that the first real batch does not wait for `cargo run`.
async fn warm_consumers(binaries: Vec<String>, invoker: Arc<WatchInvoker>, timeout: Duration) {
    for binary in binaries {
        let started = std::time::Instant::now();
        let result = invoke::Invoke::invoke(
            invoker.as_ref(),
            &binary,
            bytes::Bytes::from_static(br#"{"Records":[]}"#),
            timeout,
        )
        .await;
        let (outcome, text) = match result {
            Ok(_) => (Outcome::Ok, format!("{binary} started (empty batch)")),
            Err(e) => (Outcome::Warn, format!("{binary} did not start: {e}")),
        };
        log::line(Kind::Stack, outcome, &text, Some(started.elapsed()));
    }
}

/// Where cargo lambda watch listens: `--watch-host`, else IPv6 loopback when the machine has
/// it (`cargo lambda invoke` sends to `[::1]:9000` unless told otherwise), else `--host`.
/// When this command starts watch, the port must be free: refuse early rather than let
/// cargo lambda fail behind us.
async fn watch_address(args: &DevArgs) -> anyhow::Result<SocketAddr> {
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

/// SIGINT (Ctrl-C) and SIGTERM, caught from the moment this is made.
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            interrupt: signal(SignalKind::interrupt()).context("catching SIGINT")?,
            terminate: signal(SignalKind::terminate()).context("catching SIGTERM")?,
        })
    }

    async fn recv(&mut self) -> String {
        tokio::select! {
            _ = self.interrupt.recv() => "Ctrl-C".into(),
            _ = self.terminate.recv() => "SIGTERM".into(),
        }
    }
}

fn start_pollers(
    template: &Template,
    provisioned: &Provisioned,
    clients: &AwsClients,
    invoker: &Arc<WatchInvoker>,
    wakers: &emulator_proxy::Wakers,
    args: &DevArgs,
    tasks: &mut JoinSet<()>,
) -> anyhow::Result<()> {
    for mapping in &template.mappings {
        let function = template
            .function(&mapping.function)
            .with_context(|| format!("{}: no function {}", mapping.logical_id, mapping.function))?;
        let queue = &template.queues[&mapping.queue];
        let poller = Arc::new(sqs::Poller {
            label: mapping.queue.clone(),
            queue_url: provisioned
                .queue_url(&queue.logical_id)
                .context("queue URL")?
                .to_owned(),
            queue_arn: provisioned
                .arn(&queue.logical_id)
                .context("queue ARN")?
                .to_owned(),
            binary: function.binary.clone(),
            timeout: function.timeout,
            batch_size: mapping.batch_size,
            window: mapping.batching_window,
            report_failures: mapping.report_batch_item_failures,
            visibility_timeout: queue.visibility_timeout,
            poll_interval: args.poll_interval,
            wake: wakers.subscribe(&queue.name),
            sqs: (*clients.sqs).clone(),
            invoker: invoker.clone(),
        });
        let workers = mapping
            .max_concurrency
            .unwrap_or(args.function_concurrency)
            .clamp(1, args.function_concurrency.max(1));
        for _ in 0..workers {
            tasks.spawn(poller.clone().run());
        }
    }
    Ok(())
}

fn start_schedules(
    template: &Template,
    invoker: &Arc<WatchInvoker>,
    tasks: &mut JoinSet<()>,
) -> anyhow::Result<()> {
    for s in &template.schedules {
        let function = template
            .function(&s.function)
            .with_context(|| format!("schedule {}: no function {}", s.id, s.function))?;
        let expression = schedule::Expression::parse(&s.expression)
            .map_err(|why| anyhow::anyhow!("schedule {}: {why}", s.id))?;
        let run = Arc::new(schedule::ScheduleRun {
            id: s.id.clone(),
            name: s.name.clone(),
            expression_text: s.expression.clone(),
            expression,
            binary: function.binary.clone(),
            timeout: function.timeout,
            input: s.input.clone(),
            kind: s.kind,
        });
        tasks.spawn(run.run(invoker.clone()));
    }
    Ok(())
}

fn print_banner(args: &DevArgs, api: &str, receiver: &str, bedrock: &str, watch: SocketAddr) {
    let key = demo::API_KEY;
    let hook = format!("{receiver}/hooks/{}", demo::TENANT);
    println!();
    println!("TriggerIQ is running locally.");
    println!();
    println!("  API            {api}");
    if args.demo {
        println!("  demo API key   {key}   (tenant {})", demo::TENANT);
    }
    if args.receiver_port != 0 {
        println!("  webhooks       {hook}   (demo receiver, verifies signatures)");
    }
    println!(
        "  functions      http://{watch}   (cargo lambda watch; environment in {})",
        args.env_file.display()
    );
    println!(
        "  AWS emulator   {}   (moto: SQS, DynamoDB, S3)",
        args.aws_endpoint
    );
    println!(
        "  Bedrock        {bedrock}{}",
        if args.bedrock_endpoint.is_none() {
            "   (stand-in)"
        } else {
            ""
        }
    );
    println!();
    if args.demo {
        println!("Create a trigger that posts to the demo receiver:");
        println!();
        println!(
            "  curl -s {api}/v1/triggers -H 'authorization: Bearer {key}' -H 'content-type: application/json' \\\n    -d '{{\"name\":\"Big order\",\"pattern\":{{\"type\":[\"order.placed\"],\"data\":{{\"total\":[{{\"numeric\":[\">\",100]}}]}}}},\"actions\":[{{\"type\":\"webhook\",\"url\":\"{hook}\"}}]}}'"
        );
        println!();
        println!("Send an event that matches it (watch the webhook arrive below):");
        println!();
        println!(
            "  curl -s {api}/v1/events -H 'authorization: Bearer {key}' -H 'content-type: application/json' \\\n    -d '{{\"type\":\"order.placed\",\"source\":\"shop\",\"data\":{{\"total\":250}}}}'"
        );
        println!();
    }
    println!("Ctrl-C stops everything `make dev` started.");
    println!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_environment_serves_every_function_and_local_values_win() {
        let text = r#"
Resources:
  A:
    Type: AWS::Serverless::Function
    Metadata: {BuildProperties: {Binary: a}}
    Properties:
      Environment: {Variables: {QUEUE: !Ref Q, FLAG: "false", ONLY_A: "1"}}
  B:
    Type: AWS::Serverless::Function
    Metadata: {BuildProperties: {Binary: b}}
    Properties:
      Environment: {Variables: {QUEUE: !Ref Q, FLAG: "false"}}
  Q:
    Type: AWS::SQS::Queue
"#;
        let template = Template::parse(text, "s", &BTreeMap::new()).expect("template");
        let mut provisioned = Provisioned::default();
        provisioned.insert_for_test("Q", "http://moto/q");
        let local = BTreeMap::from([("FLAG".to_owned(), "true".to_owned())]);
        let env = functions_environment(&template, &provisioned, &local).expect("environment");
        assert_eq!(env["QUEUE"], "http://moto/q");
        assert_eq!(env["FLAG"], "true");
        assert_eq!(env["ONLY_A"], "1");

        let clash = text.replace(
            "{QUEUE: !Ref Q, FLAG: \"false\"}}",
            "{QUEUE: other, FLAG: \"false\"}}",
        );
        let template = Template::parse(&clash, "s", &BTreeMap::new()).expect("template");
        let err = functions_environment(&template, &provisioned, &local).expect_err("a clash");
        assert!(err.to_string().contains("QUEUE"), "{err}");
    }

    #[test]
    fn functions_without_a_crate_are_named() {
        let root = std::env::temp_dir().join(format!("tiq-missing-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(root.join("functions/a")).expect("dirs");
        let text = "Resources:\n  A:\n    Type: AWS::Serverless::Function\n    Metadata: {BuildProperties: {Binary: a}}\n  B:\n    Type: AWS::Serverless::Function\n    Metadata: {BuildProperties: {Binary: b}}\n";
        let template = Template::parse(text, "s", &BTreeMap::new()).expect("template");
        assert_eq!(
            missing_binaries(&template, &root.join("template.yaml")),
            vec!["b"]
        );
        let _ = std::fs::remove_dir_all(root);
    }

    #[test]
    fn the_repository_template_runs_with_one_environment() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
        let template =
            Template::load(Path::new(path), "triggeriq-local", &BTreeMap::new()).expect("template");
        let mut provisioned = Provisioned::default();
        for q in template
            .queues
            .keys()
            .chain(template.tables.keys())
            .chain(template.buckets.keys())
        {
            provisioned.insert_for_test(q, &format!("local-{q}"));
        }
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            dev: DevArgs,
        }
        let args = <Cli as clap::Parser>::parse_from(["dev", "--database-url", "postgres://x"]).dev;
        let env = functions_environment(
            &template,
            &provisioned,
            &local_settings(&args, "http://proxy", "http://b"),
        )
        .expect("one environment");
        assert_eq!(env["ALLOW_HTTP_WEBHOOKS"], "true");
        assert_eq!(env["DATABASE_URL"], "postgres://x");
        assert_eq!(env["AWS_ENDPOINT_URL"], "http://proxy");
        assert!(
            env.contains_key("TABLE_NAME")
                || !template
                    .functions
                    .values()
                    .any(|f| f.binary == "ingest-events")
        );
    }
}
