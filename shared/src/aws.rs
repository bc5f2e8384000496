//! Loading the AWS SDK configuration once per process and building the
//! service clients from it.
//!
//! Lambda functions get their clients through [`crate::wiring::Clients`] in
//! `main`, before the runtime loop, and keep them for every invocation. Credentials and region come from the environment (where Lambda
//! puts the role's credentials and the region). For local development and
//! tests an endpoint override points every client at one emulator (moto):
//! either `AWS_ENDPOINT_URL` in the environment (`AWS_ENDPOINT_URL_<SERVICE>`
//! for one service) or [`AwsOptions::endpoint_url`]. With an override, the region defaults to
//! `us-east-1` when none is configured, and S3 uses path-style addressing,
//! because `bucket.127.0.0.1` does not resolve.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_types::service_config::{LoadServiceConfig, ServiceConfigKey};

use crate::config::{aws_region_from_env, env_optional};

/// How to load the SDK configuration.
#[derive(Debug, Clone)]
pub struct AwsOptions {
    /// One endpoint for every service (an emulator). `None` leaves it to the
    /// environment (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_<SERVICE>`).
    pub endpoint_url: Option<String>,
    /// The region; `None` takes `AWS_REGION` (or `AWS_DEFAULT_REGION`).
    pub region: Option<String>,
    /// Use fixed dummy credentials (`test`/`test`), for an emulator only.
    pub test_credentials: bool,
    /// Attempts per SDK call, including the first (standard retry mode with
    /// jittered exponential backoff; throttling, 5xx and timeouts are retried).
    pub max_attempts: u32,
    /// First backoff of the SDK's retries.
    pub initial_backoff: Duration,
    /// Limit for one attempt of an SDK call.
    pub attempt_timeout: Duration,
    /// Limit for one SDK call with all its retries.
    pub operation_timeout: Duration,
}

impl Default for AwsOptions {
    fn default() -> Self {
        Self {
            endpoint_url: None,
            region: None,
            test_credentials: false,
            max_attempts: 3,
            initial_backoff: Duration::from_millis(100),
            // One SDK call takes at most 10 s (3 s per attempt, 3 attempts with backoff). A
            // function makes several calls in a row, so it bounds its own total: ingest runs
            // every step of a request within its budget (`INGEST_BUDGET_MS`, 8 s), below its
            // function timeout (10 s) and the gateway's (11 s locally, 30 s in AWS); consumers
            // have 60 s and make a handful of calls per message.
            attempt_timeout: Duration::from_secs(3),
            operation_timeout: Duration::from_secs(10),
        }
    }
}

impl AwsOptions {
    /// The defaults: everything from the environment (as Lambda sets it).
    pub fn from_env() -> Self {
        Self::default()
    }

    /// Every client pointed at an emulator (moto) at `endpoint_url`, region
    /// `us-east-1`, dummy credentials.
    pub fn emulator(endpoint_url: impl Into<String>) -> Self {
        Self {
            endpoint_url: Some(endpoint_url.into()),
            region: Some("us-east-1".to_owned()),
            test_credentials: true,
            ..Self::default()
        }
    }
}

/// Builds the SDK configuration (once per process; it is cheap to clone).
///
/// Everything comes from `options` and the environment, as Lambda sets it: the region from
/// `AWS_REGION` (or `AWS_DEFAULT_REGION`), credentials from `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`, endpoints from `AWS_ENDPOINT_URL` and
/// `AWS_ENDPOINT_URL_<SERVICE>`. aws-config's provider chains (profile files, SSO, IMDS,
/// container credentials) are not consulted: a function has no use for them, and loading them
/// was a third of the configuration's cold-start cost. Every client gets
/// [`crate::sdk_http::http_client`].
pub fn sdk_config(options: &AwsOptions) -> SdkConfig {
    let credentials = if options.test_credentials {
        SharedCredentialsProvider::new(aws_credential_types::Credentials::new(
            "test",
            "test",
            None,
            None,
            "triggeriq-test",
        ))
    } else {
        SharedCredentialsProvider::new(
            aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
        )
    };
    let mut builder = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(crate::sdk_http::http_client())
        .credentials_provider(credentials)
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(options.max_attempts.max(1))
                .with_initial_backoff(options.initial_backoff),
        )
        .timeout_config(
            TimeoutConfig::builder()
                .operation_attempt_timeout(options.attempt_timeout)
                .operation_timeout(options.operation_timeout)
                .build(),
        );
    let endpoint = match &options.endpoint_url {
        // An explicit endpoint is for every service, whatever the environment says.
        Some(endpoint) => Some(endpoint.clone()),
        None => {
            builder.set_service_config(Some(EnvEndpoints));
            env_optional(ENDPOINT_URL)
        }
    };
    let region = options
        .region
        .clone()
        .or_else(aws_region_from_env)
        // An emulator does not care about the region, but the SDK refuses to sign without one.
        .or_else(|| endpoint.as_ref().map(|_| "us-east-1".to_owned()));
    builder.set_endpoint_url(endpoint);
    builder.set_region(region.map(Region::new));
    builder.build()
}

/// [`sdk_config`], for callers that load it in an async context (the CLI).
pub async fn load_sdk_config(options: &AwsOptions) -> SdkConfig {
    sdk_config(options)
}

/// [`sdk_config`] for an operator's machine (the CLI): the same endpoints, region and timeouts,
/// but credentials (and, when the environment names none, the region) from aws-config's full
/// provider chain (environment, profiles, SSO, credential processes), which a function never
/// needs.
#[cfg(feature = "aws-credential-chain")]
pub async fn load_operator_sdk_config(options: &AwsOptions) -> SdkConfig {
    let base = sdk_config(options);
    if options.test_credentials {
        return base;
    }
    let chain = aws_config::defaults(BehaviorVersion::latest())
        .http_client(crate::sdk_http::http_client())
        .load()
        .await;
    let region = base.region().or(chain.region()).cloned();
    let mut builder = base.into_builder();
    builder.set_credentials_provider(chain.credentials_provider());
    builder.set_region(region);
    builder.build()
}

const ENDPOINT_URL: &str = "AWS_ENDPOINT_URL";

/// Service-specific endpoints from the environment, as aws-config reads them:
/// `AWS_ENDPOINT_URL_<SERVICE ID>` (upper case, spaces as `_`), then `AWS_ENDPOINT_URL`.
#[derive(Debug)]
struct EnvEndpoints;

impl LoadServiceConfig for EnvEndpoints {
    fn load_config(&self, key: ServiceConfigKey<'_>) -> Option<String> {
        service_setting(key.env(), key.service_id(), env_optional)
    }
}

/// `<env>_<SERVICE ID>` if set, else `<env>`, read through `lookup`.
fn service_setting(
    env: &str,
    service_id: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Option<String> {
    let service = service_id.to_ascii_uppercase().replace([' ', '-'], "_");
    lookup(&format!("{env}_{service}")).or_else(|| lookup(env))
}

fn has_endpoint_override(config: &SdkConfig) -> bool {
    config.endpoint_url().is_some()
}

/// A DynamoDB client.
pub fn dynamodb_client(config: &SdkConfig) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(config)
}

/// An SQS client.
pub fn sqs_client(config: &SdkConfig) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(config)
}

/// A KMS client.
pub fn kms_client(config: &SdkConfig) -> aws_sdk_kms::Client {
    aws_sdk_kms::Client::new(config)
}

/// The limit for one Converse call (AI checks): a model answers in seconds, where DynamoDB
/// and SQS answer in milliseconds, so Bedrock gets its own limit instead of the shared 3 s.
pub const BEDROCK_CALL_TIMEOUT: Duration = Duration::from_secs(20);

/// A Bedrock runtime client (Converse, for AI checks): one attempt per call, within
/// [`BEDROCK_CALL_TIMEOUT`]. Not in [`AwsClients`]: only the function that judges builds one,
/// so the other functions do not link the Bedrock client at all (binary size, init time).
/// No SDK retries: a throttled or failed judgement goes back to its
/// queue and comes again after the visibility timeout, rather than the function sleeping,
/// billed, while Bedrock recovers (`crate::bedrock`).
pub fn bedrock_client(config: &SdkConfig) -> aws_sdk_bedrockruntime::Client {
    let timeouts = config
        .timeout_config()
        .map(TimeoutConfig::to_builder)
        .unwrap_or_default()
        .operation_attempt_timeout(BEDROCK_CALL_TIMEOUT)
        .operation_timeout(BEDROCK_CALL_TIMEOUT)
        .build();
    let bedrock_config = aws_sdk_bedrockruntime::config::Builder::from(config)
        .retry_config(RetryConfig::disabled())
        .timeout_config(timeouts)
        .build();
    aws_sdk_bedrockruntime::Client::from_conf(bedrock_config)
}

/// An S3 client: path-style addressing when an endpoint override is set.
pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    let path_style =
        has_endpoint_override(config) || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
    let s3_config = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(path_style)
        .build();
    aws_sdk_s3::Client::from_conf(s3_config)
}

/// An SDK client built on first use (a ready client converts into one too). Cheap to clone:
/// clones share the one client.
///
/// Building a service client costs about 0.2–0.4 ms of init (its endpoint rules and plugins),
/// against a hello world's 2.5 ms. A cold start should not pay for a client its first request
/// may not call: S3 serves only large payloads (claim checks), and evaluate-events calls
/// DynamoDB and SQS only when a trigger matched.
pub struct Lazy<C>(Arc<LazyLock<C, Build<C>>>);

type Build<C> = Box<dyn FnOnce() -> C + Send>;

/// The S3 client, built on first use.
pub type LazyS3 = Lazy<aws_sdk_s3::Client>;

impl<C> Lazy<C> {
    /// A client that `build` makes when it is first used.
    pub fn new(build: impl FnOnce() -> C + Send + 'static) -> Self {
        Self(Arc::new(LazyLock::new(Box::new(build))))
    }

    /// The same client, built now: for a client every request needs, so that its cost is
    /// paid at init (where cold starts are measured) rather than hidden in the first request.
    pub fn built(self) -> Self {
        LazyLock::force(&self.0);
        self
    }
}

impl<C: Send + 'static> From<C> for Lazy<C> {
    fn from(client: C) -> Self {
        Self::new(move || client)
    }
}

impl<C> Clone for Lazy<C> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<C> std::ops::Deref for Lazy<C> {
    type Target = C;

    fn deref(&self) -> &C {
        &self.0
    }
}

impl<C> std::fmt::Debug for Lazy<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Lazy")
    }
}

/// The clients the event pipeline uses, built from one configuration.
#[derive(Debug, Clone)]
pub struct AwsClients {
    pub dynamodb: Lazy<aws_sdk_dynamodb::Client>,
    pub sqs: Lazy<aws_sdk_sqs::Client>,
    pub s3: LazyS3,
    /// KMS: the signing secrets' envelope encryption; always built on first use.
    pub kms: Lazy<aws_sdk_kms::Client>,
}

impl AwsClients {
    /// Builds the DynamoDB and SQS clients now (cheap: no connection is made until the first
    /// call), and S3 when it is first used.
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            dynamodb: dynamodb_client(config).into(),
            sqs: sqs_client(config).into(),
            s3: lazy(config, s3_client),
            kms: lazy(config, kms_client),
        }
    }

    /// Builds each client when it is first used: for a function whose requests often need
    /// none of them (evaluate-events: an event that matches no trigger).
    pub fn on_first_use(config: &SdkConfig) -> Self {
        Self {
            dynamodb: lazy(config, dynamodb_client),
            sqs: lazy(config, sqs_client),
            s3: lazy(config, s3_client),
            kms: lazy(config, kms_client),
        }
    }

    /// Loads the configuration with `options` and builds the clients as [`AwsClients::new`].
    pub async fn load(options: &AwsOptions) -> Self {
        Self::new(&sdk_config(options))
    }
}

/// The client `build` makes from `config`, when it is first used.
pub fn lazy<C: 'static>(config: &SdkConfig, build: fn(&SdkConfig) -> C) -> Lazy<C> {
    let config = config.clone();
    Lazy::new(move || build(&config))
}

#[cfg(test)]
mod tests {
    use aws_credential_types::provider::ProvideCredentials as _;

    use super::*;

    fn lookup<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn a_service_endpoint_beats_the_global_one() {
        let vars = [
            ("AWS_ENDPOINT_URL", "http://moto"),
            ("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", "http://bedrock"),
        ];
        let get = |service| service_setting(ENDPOINT_URL, service, lookup(&vars));
        assert_eq!(get("Bedrock Runtime").as_deref(), Some("http://bedrock"));
        assert_eq!(get("DynamoDB").as_deref(), Some("http://moto"));
        assert_eq!(service_setting(ENDPOINT_URL, "SQS", lookup(&[])), None);
    }

    #[test]
    fn bedrock_calls_get_one_attempt_and_a_model_sized_timeout() {
        let client = bedrock_client(&sdk_config(&AwsOptions::emulator("http://127.0.0.1:1")));
        let config = client.config();
        assert_eq!(
            config.retry_config().map(RetryConfig::max_attempts),
            Some(1)
        );
        let timeouts = config.timeout_config().expect("timeouts");
        assert_eq!(
            timeouts.operation_attempt_timeout(),
            Some(BEDROCK_CALL_TIMEOUT)
        );
        assert_eq!(timeouts.operation_timeout(), Some(BEDROCK_CALL_TIMEOUT));
    }

    #[test]
    fn a_lazy_client_is_built_once_on_first_use() {
        use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
        let built = Arc::new(AtomicUsize::new(0));
        let count = built.clone();
        let lazy = Lazy::new(move || count.fetch_add(1, SeqCst) + 42);
        let copy = lazy.clone();
        assert_eq!(built.load(SeqCst), 0, "built before use");
        assert_eq!(*copy, 42);
        assert_eq!(*lazy, 42);
        assert_eq!(built.load(SeqCst), 1, "clones share one client");
    }

    #[tokio::test]
    async fn explicit_options_win_over_the_environment() {
        // (async: the credentials provider is.)
        let options = AwsOptions {
            region: Some("eu-west-1".to_owned()),
            ..AwsOptions::emulator("http://127.0.0.1:1")
        };
        let config = sdk_config(&options);
        assert_eq!(config.region().map(|r| r.as_ref()), Some("eu-west-1"));
        assert_eq!(config.endpoint_url(), Some("http://127.0.0.1:1"));
        // No service-specific endpoint from the environment can override the explicit one.
        assert!(config.service_config().is_none());
        assert!(config.http_client().is_some());
        let credentials = config
            .credentials_provider()
            .expect("credentials")
            .provide_credentials()
            .await
            .expect("test credentials");
        assert_eq!(credentials.access_key_id(), "test");
    }
}
