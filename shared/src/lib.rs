//! TriggerIQ: domain logic and adapters shared by every Lambda function and the CLI.
//!
//! The `pattern` module stands alone (no AWS, no database). Adapters to outside
//! systems sit behind cargo features so that a function compiles only what it uses.

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "aws")]
pub mod dynamodb;
pub mod pattern;
#[cfg(feature = "aws")]
pub mod s3;
#[cfg(feature = "aws")]
pub mod sqs;
pub mod webhook;
