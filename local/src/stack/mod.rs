//! `triggeriq dev`: its options, and the startup from template.yaml to a served API, step by
//! step (see [`serve`]); Ctrl-C stops what this command started, cargo lambda watch and its
//! functions included.
//!
//! Beside this file: the functions' environment ([`environment`]), cargo lambda watch and its
//! output ([`watch`]), and what is printed once the stack is up ([`banner`]).

mod banner;
mod environment;
mod watch;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use triggeriq::aws::{AwsClients, AwsOptions};

use self::banner::Addresses;
pub use self::environment::functions_environment;
use self::watch::Watch;
use crate::emulator_proxy::{EmulatorProxy, Wakers};
use crate::invoke::{Invoke as _, WatchInvoker};
use crate::log::{self, Kind, Outcome};
use crate::provision::{self, Provisioned};
use crate::template::Template;
use crate::{bedrock, demo, gateway, receiver, schedule, sqs};

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
    /// A function environment variable, `KEY=VALUE` (repeatable), over the template's and
    /// the local settings: e.g. a faster `WEBHOOK_RETRY_SCHEDULE` for tests.
    #[arg(long = "function-env", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub function_env: Vec<(String, String)>,
    /// Keep running the functions as built, without reloading them when files change (e2e:
    /// a commit elsewhere in the repository would restart them mid-test).
    #[arg(long)]
    pub no_reload: bool,
    /// Cap every queue's visibility timeout (how long a failed or lost message stays hidden)
    /// at this: for tests that crash functions on purpose and wait for the redelivery.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub max_visibility_timeout: Option<Duration>,
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

/// Starts everything, in this order, and serves until cargo lambda watch exits; the tasks it
/// spawned end with it (their `JoinSet` is dropped). Returns why it stopped.
async fn serve(args: &DevArgs, watch: &mut Option<Watch>) -> anyhow::Result<String> {
    let template = read_template(args)?;
    let listeners = Listeners::bind(args).await?;
    let clients = AwsClients::load(&AwsOptions::emulator(&args.aws_endpoint)).await;
    let provisioned = provision_resources(args, &template, &clients).await?;
    let pool = connect_database(args).await?;
    migrate(&pool).await?;
    let receiver_url = format!("http://{}:{}", args.host, args.receiver_port);
    if args.demo {
        seed_demo(&pool, &receiver_url, &template, &clients).await?;
    }
    pool.close().await;

    let mut tasks = JoinSet::new();
    // The functions reach moto through the proxy that wakes the queue pollers, so its URL goes
    // into their environment.
    let wakers = Wakers::default();
    let proxy_url = serve_emulator_proxy(args, listeners.proxy, &wakers, &mut tasks)?;
    let bedrock_url = args
        .bedrock_endpoint
        .clone()
        .unwrap_or_else(|| format!("http://{}:{}", args.host, args.bedrock_port));
    write_functions_environment(args, &template, &provisioned, &proxy_url, &bedrock_url)?;
    let invoker = start_functions(args, watch, listeners.watch).await?;

    serve_gateway(&template, &invoker, listeners.gateway, &mut tasks);
    serve_stand_ins(
        &template,
        &clients,
        listeners.receiver,
        listeners.bedrock,
        &mut tasks,
    )?;
    start_pollers(
        &template,
        &provisioned,
        &clients,
        &invoker,
        &wakers,
        args,
        &mut tasks,
    )?;
    start_schedules(&template, &invoker, &mut tasks)?;
    tasks.spawn(warm_consumers(
        consumers(&template, args),
        invoker.clone(),
        args.cold_start_timeout,
    ));

    let addresses = Addresses {
        api: format!("http://{}:{}", args.host, args.port),
        receiver: receiver_url,
        bedrock: bedrock_url,
        watch: listeners.watch,
    };
    banner::print(args, &addresses);
    banner::write_ready_file(args, &addresses)?;

    supervise(args, watch, &invoker, listeners.watch).await
}

/// Serves until cargo lambda watch exits. When a function does not answer within its timeout,
/// its instance is stuck or dead (killed, crashed), and cargo lambda watch never replaces a
/// dead instance: the stack restarts watch, as Lambda replaces the execution environment of a
/// function that timed out or crashed. Invocations in flight fail and their messages come back
/// after the queue's visibility timeout.
async fn supervise(
    args: &DevArgs,
    watch: &mut Option<Watch>,
    invoker: &WatchInvoker,
    address: SocketAddr,
) -> anyhow::Result<String> {
    loop {
        let Some(w) = watch.as_mut() else {
            std::future::pending::<()>().await;
            unreachable!("pending never ends");
        };
        tokio::select! {
            status = w.exited() => return Ok(format!("cargo lambda watch exited ({status})")),
            () = invoker.timed_out() => {}
        }
        log::line(
            Kind::Stack,
            Outcome::Warn,
            "a function did not answer within its timeout: restarting cargo lambda watch, \
             as Lambda replaces a stuck or crashed instance",
            None,
        );
        if let Some(old) = watch.take() {
            old.stop().await;
        }
        let w = watch.insert(Watch::start(args, address)?);
        w.ready(address).await?;
        invoker.forget_warm();
    }
}

/// Step 1: template.yaml, with what it says the local stack does differently, and the
/// functions it declares that have no crate yet.
fn read_template(args: &DevArgs) -> anyhow::Result<Template> {
    let overrides: BTreeMap<String, String> = args.parameters.iter().cloned().collect();
    let template = Template::load(&args.template, &args.stack_name, &overrides)?;
    for warning in &template.warnings {
        log::line(Kind::Stack, Outcome::Warn, warning, None);
    }
    for missing in missing_binaries(&template, &args.template) {
        log::line(
            Kind::Stack,
            Outcome::Warn,
            &format!(
                "template.yaml declares {missing}, but functions/{missing} does not exist: what it serves answers 502 until it does"
            ),
            None,
        );
    }
    Ok(template)
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

/// Step 2: every port the stack serves on, taken before anything starts, so that a port in
/// use stops us first.
struct Listeners {
    gateway: TcpListener,
    receiver: Option<TcpListener>,
    bedrock: Option<TcpListener>,
    /// The proxy in front of moto, on a port of its own choosing.
    proxy: TcpListener,
    /// Where cargo lambda watch will listen (checked free, or answering with
    /// `--external-watch`).
    watch: SocketAddr,
}

impl Listeners {
    async fn bind(args: &DevArgs) -> anyhow::Result<Self> {
        let gateway = bind(args.host, args.port, "HTTP API", "TRIGGERIQ_PORT").await?;
        let receiver = match args.receiver_port {
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
        let bedrock = match &args.bedrock_endpoint {
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
        let proxy = bind(args.host, 0, "AWS emulator proxy", "--host").await?;
        let watch = watch::address(args).await?;
        Ok(Self {
            gateway,
            receiver,
            bedrock,
            proxy,
            watch,
        })
    }
}

/// Binds a listener, saying which setting to change when the port is taken.
async fn bind(host: IpAddr, port: u16, what: &str, setting: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(SocketAddr::new(host, port)).await.with_context(|| {
        format!("cannot listen on {host}:{port} for the {what}: is the port in use? (see `ss -ltnp 'sport = :{port}'`; set {setting} to use another)")
    })
}

/// Step 3: the template's queues, table and bucket in the emulator.
async fn provision_resources(
    args: &DevArgs,
    template: &Template,
    clients: &AwsClients,
) -> anyhow::Result<Provisioned> {
    let provisioned = provision::provision(template, clients)
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
    Ok(provisioned)
}

async fn connect_database(args: &DevArgs) -> anyhow::Result<PgPool> {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&args.database_url)
        .await
        .context("cannot connect to Postgres (DATABASE_URL)")
}

/// Step 4: the migrations compiled into this binary (`triggeriq::MIGRATOR`, from
/// shared/migrations), so that `make dev` needs no sqlx-cli.
async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    let started = Instant::now();
    triggeriq::MIGRATOR
        .run(pool)
        .await
        .context("applying the migrations")?;
    log::line(
        Kind::Stack,
        Outcome::Ok,
        &format!(
            "database schema up to date ({} migrations)",
            triggeriq::MIGRATOR.iter().count()
        ),
        Some(started.elapsed()),
    );
    Ok(())
}

/// Step 5 (`--demo`): the demo tenant, key and trigger, posting to the demo receiver, and the
/// tenant's first signing secret (made with the tenant, as `triggeriq tenant create` does, not
/// by its first webhook).
async fn seed_demo(
    pool: &PgPool,
    receiver_url: &str,
    template: &Template,
    clients: &AwsClients,
) -> anyhow::Result<()> {
    demo::seed(pool, &format!("{receiver_url}/hooks/{}", demo::TENANT)).await?;
    if let Some(table) = template.tables.values().next() {
        demo::seed_signing_secret(clients, &table.name, &signing_key(template)).await?;
    }
    Ok(())
}

/// The KMS key the functions seal signing secrets with (`SigningKeyArn`, locally an alias in
/// moto unless `--parameter` names another).
fn signing_key(template: &Template) -> String {
    template
        .parameter("SigningKeyArn")
        .unwrap_or(provision::SIGNING_KEY_ALIAS)
        .to_owned()
}

/// The pass-through proxy in front of moto that wakes a queue's pollers when a message is
/// sent to it; returns its URL.
fn serve_emulator_proxy(
    args: &DevArgs,
    listener: TcpListener,
    wakers: &Wakers,
    tasks: &mut JoinSet<()>,
) -> anyhow::Result<String> {
    let url = format!("http://{}", listener.local_addr()?);
    let proxy = EmulatorProxy::new(&args.aws_endpoint, wakers.clone())?.router();
    tasks.spawn(async move {
        let _ = axum::serve(listener, proxy).await;
    });
    Ok(url)
}

/// Step 6: the functions' environment file, which cargo lambda watch reads.
fn write_functions_environment(
    args: &DevArgs,
    template: &Template,
    provisioned: &Provisioned,
    proxy_url: &str,
    bedrock_url: &str,
) -> anyhow::Result<()> {
    let local = environment::local_settings(args, proxy_url, bedrock_url);
    let env = functions_environment(template, provisioned, &local)?;
    environment::write_env_file(&args.env_file, &env)
}

/// Step 7: cargo lambda watch (unless `--external-watch`), and the invoker that reaches it.
async fn start_functions(
    args: &DevArgs,
    watch: &mut Option<Watch>,
    address: SocketAddr,
) -> anyhow::Result<Arc<WatchInvoker>> {
    if !args.external_watch {
        let w = watch.insert(Watch::start(args, address)?);
        w.ready(address).await?;
    }
    Ok(Arc::new(WatchInvoker::new(
        format!("http://{address}"),
        args.cold_start_timeout,
    )?))
}

/// Step 8: the HTTP API.
fn serve_gateway(
    template: &Template,
    invoker: &Arc<WatchInvoker>,
    listener: TcpListener,
    tasks: &mut JoinSet<()>,
) {
    let gateway = gateway::Gateway::from_template(template, invoker.clone()).router();
    tasks.spawn(async move {
        let _ = axum::serve(
            listener,
            gateway.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
}

/// Step 9: the demo webhook receiver and the Bedrock stand-in, each unless turned off.
fn serve_stand_ins(
    template: &Template,
    clients: &AwsClients,
    receiver: Option<TcpListener>,
    bedrock: Option<TcpListener>,
    tasks: &mut JoinSet<()>,
) -> anyhow::Result<()> {
    if let Some(listener) = receiver {
        let table = template
            .tables
            .values()
            .next()
            .map(|t| t.name.clone())
            .context("the demo receiver reads signing secrets from the template's table, and it has none")?;
        let router = receiver::Receiver::new(clients, &table, &signing_key(template)).router();
        tasks.spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
    }
    if let Some(listener) = bedrock {
        tasks.spawn(async move {
            let _ = axum::serve(listener, bedrock::router()).await;
        });
    }
    Ok(())
}

/// Step 10: the SQS pollers, as many workers per mapping as it may run at once.
fn start_pollers(
    template: &Template,
    provisioned: &Provisioned,
    clients: &AwsClients,
    invoker: &Arc<WatchInvoker>,
    wakers: &Wakers,
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
            visibility_timeout: args
                .max_visibility_timeout
                .map_or(queue.visibility_timeout, |cap| {
                    queue.visibility_timeout.min(cap)
                }),
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

/// Step 11: the schedules.
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

/// The queue consumers that have a crate, to be started once before the first batch.
fn consumers(template: &Template, args: &DevArgs) -> Vec<String> {
    let missing = missing_binaries(template, &args.template);
    template
        .consumer_binaries()
        .into_iter()
        .filter(|b| !missing.contains(b))
        .collect()
}

/// Starts each queue consumer once with an empty batch — which a consumer must accept and
/// which changes nothing — so that the first real batch does not wait for `cargo run`.
async fn warm_consumers(binaries: Vec<String>, invoker: Arc<WatchInvoker>, timeout: Duration) {
    for binary in binaries {
        let started = Instant::now();
        let result = invoker
            .invoke(
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
