//! TriggerIQ: domain logic and adapters shared by every Lambda function and the CLI.
//!
//! Layers, each using only the ones before it (`docs/architecture.md`; a test checks it):
//!
//! 1. domain: [`ids`], [`event`], [`trigger`], [`tenant`], [`pattern`], [`condition`], [`ai`],
//!    [`firing`], [`delivery`], [`webhook`], with [`json`] and [`problem`]; and [`config`], the
//!    settings;
//! 2. adapters: [`postgres`], [`dynamodb`], [`sqs`], [`s3`], [`kms`], [`bedrock`], with [`aws`],
//!    [`sdk_http`], [`tls`] and [`wiring`], the handles a container holds;
//! 3. [`pipeline`]: each stage's decisions;
//! 4. edges: [`api`], [`consumers`], [`schedules`], [`authorizer`], [`cognito`], which translate Lambda events into one
//!    pipeline (or read) call and back.
//!
//! Adapters to outside systems sit behind cargo features so that a function compiles only
//! what it uses: `postgres` (sqlx), `lambda` (handlers), `aws` (DynamoDB, SQS, S3, KMS, Bedrock).

pub mod ai;
pub mod condition;
pub mod config;
pub mod delivery;
pub mod event;
pub mod firing;
pub mod ids;
pub mod json;
pub mod pattern;
pub mod pipeline;
pub mod problem;
pub mod tenant;
pub mod trigger;
pub mod webhook;
pub mod wiring;

/// An error and its causes on one line (`a: b: c`), for logs: a multi-line `Debug` breaks a
/// CloudWatch record into several.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(feature = "sdk-http")]
pub mod sdk_http;
#[cfg(feature = "tls")]
pub mod tls;

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "aws")]
pub mod bedrock;
#[cfg(feature = "aws")]
pub mod dynamodb;
#[cfg(feature = "aws")]
pub mod kms;
#[cfg(feature = "aws")]
pub mod s3;
#[cfg(feature = "aws")]
pub mod sqs;

#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "postgres")]
pub use postgres::MIGRATOR;
#[cfg(feature = "lambda")]
pub mod api;
#[cfg(all(feature = "postgres", feature = "lambda"))]
pub mod authorizer;
#[cfg(feature = "lambda")]
pub mod cognito;
#[cfg(feature = "lambda")]
pub mod consumers;
#[cfg(test)]
mod layers;
#[cfg(all(feature = "postgres", feature = "aws", feature = "lambda"))]
pub mod schedules;
#[cfg(feature = "test-support")]
pub mod testing;
