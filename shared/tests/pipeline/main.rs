//! The routes and the event pipeline end to end, driven by the samples in `events/`:
//! ingest-events → evaluate-events → deliver-webhooks → record-deliveries, the trigger routes
//! (drafting one with a model too), the authorizer, and the read and operate routes.
//!
//! Real PostgreSQL (a fresh database per test through `#[sqlx::test]`), moto for DynamoDB,
//! SQS and S3 (`triggeriq::testing::moto`), aws-smithy-mocks for SQS failing mid-batch, and a
//! webhook receiver on 127.0.0.1 that checks signatures with the `standardwebhooks` crate,
//! never with our signing code. Every route's answer is checked against `openapi.yaml`.
//!
//! One binary: each test binary links the AWS SDK, sqlx and axum, and linking is the slow part
//! of a build.

#![cfg(all(
    feature = "postgres",
    feature = "lambda",
    feature = "aws",
    feature = "webhook-client"
))]

mod harness;

mod access;
mod database;
mod deliver;
mod drafts;
mod evaluate;
mod ingest;
mod json_rule;
mod reads;
mod timers;
mod trials;
mod triggers_api;
