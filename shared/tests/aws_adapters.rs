//! The AWS adapters (DynamoDB stores, SQS sender, S3 claim check) against a
//! moto server for behaviour, and against aws-smithy-mocks for faults an
//! emulator cannot produce on demand (throttling, 500s, timeouts).
//!
//! moto: `MOTO_ENDPOINT` or `AWS_ENDPOINT_URL` if set, else a server already
//! answering on 127.0.0.1:5000 (`scripts/moto.sh start`), else this binary
//! starts its own on a free port and stops it when the binary exits.
//!
//! One binary for all adapters: each test binary links the whole SDK, and
//! linking is the slow part of a build on a small machine.

#![cfg(feature = "aws")]

// The crate root resolves `mod` paths from tests/, hence the wrapper module.
mod aws_adapters {
    pub mod support;
    #[path = "../support/tls_server.rs"]
    mod tls_server;

    mod claim_check;
    mod dynamodb;
    mod faults;
    mod http_client;
    mod sqs;
}
