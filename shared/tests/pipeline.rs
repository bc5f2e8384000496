//! The event pipeline end to end, driven by the samples in `events/`: ingest-events →
//! evaluate-events → deliver-webhooks → record-deliveries, and the read and operate routes.
//!
//! Real PostgreSQL (a fresh database per test through `#[sqlx::test]`), moto for DynamoDB,
//! SQS and S3 (see `aws_adapters/support.rs` for how one is found or started),
//! aws-smithy-mocks for SQS failing mid-batch, and a webhook receiver on 127.0.0.1 that
//! checks signatures with the `standardwebhooks` crate, never with our signing code. Every
//! route's answer is checked against `openapi.yaml`.
//!
//! One binary for the whole pipeline: each test binary links the AWS SDK, sqlx and axum, and
//! linking is the slow part of a build.

#![cfg(all(
    feature = "postgres",
    feature = "lambda",
    feature = "aws",
    feature = "webhook-client"
))]

mod pipeline {
    #[allow(dead_code)]
    #[path = "../aws_adapters/support.rs"]
    pub mod moto;
    #[allow(dead_code)]
    #[path = "../support/openapi.rs"]
    pub mod openapi;
    #[path = "../support/requests.rs"]
    pub mod requests;

    #[allow(dead_code)]
    pub mod harness;

    mod deliver;
    mod evaluate;
    mod ingest;
    mod reads;
}
