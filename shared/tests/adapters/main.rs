//! The adapters to outside systems: the AWS adapters (DynamoDB stores, SQS sender, S3 claim
//! check, the SDK's HTTPS client) against a moto server for behaviour and against
//! aws-smithy-mocks for faults an emulator cannot produce on demand (throttling, 500s,
//! timeouts); the Bedrock judge against a Converse stand-in and aws-smithy-mocks; and webhook
//! delivery against receivers on 127.0.0.1.
//!
//! moto: `MOTO_ENDPOINT` or `AWS_ENDPOINT_URL` if set, else a server already answering on
//! 127.0.0.1:5000 (`scripts/moto.sh start`), else this binary starts its own on a free port
//! and stops it when the binary exits (`triggeriq::testing::moto`).
//!
//! One binary for all adapters: each test binary links the whole SDK, and linking is the slow
//! part of a build on a small machine.

#![cfg(all(feature = "aws", feature = "webhook-client"))]

mod ai_store;
mod bedrock;
mod claim_check;
mod dynamodb;
mod faults;
mod http_client;
mod sqs;
mod webhook_delivery;
mod windows;
