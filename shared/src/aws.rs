//! Loading the AWS SDK configuration once per process and building the
//! service clients from it.
//!
//! Lambda functions call [`load_sdk_config`] with [`AwsOptions::from_env`] in
//! `main`, before the runtime loop, and keep the clients for every
//! invocation. Credentials and region come from the standard provider chain
//! (the Lambda environment in AWS). For local development and tests an
//! endpoint override points every client at one emulator (moto): either
//! `AWS_ENDPOINT_URL` in the environment (read by aws-config itself) or
//! [`AwsOptions::endpoint_url`]. With an override, the region defaults to
//! `us-east-1` when none is configured, and S3 uses path-style addressing,
//! because `bucket.127.0.0.1` does not resolve.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};

/// How to load the SDK configuration.
#[derive(Debug, Clone)]
pub struct AwsOptions {
    /// One endpoint for every service (an emulator). `None` leaves it to the
    /// environment (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_<SERVICE>`).
    pub endpoint_url: Option<String>,
    /// The region; `None` leaves it to the provider chain (`AWS_REGION`).
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
            // API Gateway gives ingest 29 s; an SDK call must leave room for the rest.
            attempt_timeout: Duration::from_secs(3),
            operation_timeout: Duration::from_secs(10),
        }
    }
}

impl AwsOptions {
    /// The defaults: everything from the environment and the provider chain.
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

/// Loads the SDK configuration (once per process; it is cheap to clone).
pub async fn load_sdk_config(options: &AwsOptions) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
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
    if let Some(endpoint) = &options.endpoint_url {
        loader = loader.endpoint_url(endpoint);
    }
    if let Some(region) = &options.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if options.test_credentials {
        loader = loader.credentials_provider(aws_credential_types::Credentials::new(
            "test",
            "test",
            None,
            None,
            "triggeriq-test",
        ));
    }
    let config = loader.load().await;
    if config.region().is_none() && has_endpoint_override(&config) {
        // An emulator does not care about the region, but the SDK refuses to sign without one.
        return config
            .into_builder()
            .region(Region::new("us-east-1"))
            .build();
    }
    config
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

/// An S3 client: path-style addressing when an endpoint override is set.
pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    let path_style =
        has_endpoint_override(config) || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
    let s3_config = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(path_style)
        .build();
    aws_sdk_s3::Client::from_conf(s3_config)
}

/// The clients the event pipeline uses, built from one configuration.
#[derive(Debug, Clone)]
pub struct AwsClients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub s3: aws_sdk_s3::Client,
}

impl AwsClients {
    /// Builds every client (cheap: no connection is made until the first call).
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            dynamodb: dynamodb_client(config),
            sqs: sqs_client(config),
            s3: s3_client(config),
        }
    }

    /// Loads the configuration with `options` and builds every client.
    pub async fn load(options: &AwsOptions) -> Self {
        Self::new(&load_sdk_config(options).await)
    }
}
