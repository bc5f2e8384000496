//! TriggerIQ: domain logic and adapters shared by every Lambda function and the CLI.
//!
//! The `pattern` module stands alone (no AWS, no database). Adapters to outside
//! systems sit behind cargo features so that a function compiles only what it uses:
//! `postgres` (sqlx), `lambda` (handlers), `aws` (DynamoDB, SQS, S3, Bedrock).

pub mod config;
pub mod event;
pub mod json;
pub mod pattern;
pub mod pipeline;
pub mod problem;
pub mod tenant;
pub mod trigger;
pub mod webhook;

#[cfg(feature = "sdk-http")]
pub mod sdk_http;
#[cfg(feature = "tls")]
pub mod tls;

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "aws")]
pub mod dynamodb;
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
pub mod consumers;
