//! Helpers for tests (feature `test-support`): the library's integration tests and the CLI's
//! tests share them instead of including each other's files.
//!
//! - [`moto`]: one AWS emulator per test binary, clients and uniquely named resources;
//! - [`faults`]: one operation of a real client failing on demand;
//! - [`names`]: fixed tenant, trigger and event ids from names;
//! - [`openapi`]: holds every answer a test sees to `openapi.yaml`;
//! - [`requests`]: the API Gateway samples in `events/`, edited per test and run through a
//!   route as the Lambda runtime would;
//! - [`tls_server`]: a TLS server whose certificate no one trusts.
//!
//! Test code: a helper that cannot do its job panics with the reason, failing the test.

#[cfg(feature = "aws")]
pub mod faults;
#[cfg(feature = "aws")]
pub mod moto;
pub mod names;
pub mod openapi;
#[cfg(feature = "lambda")]
pub mod requests;
pub mod tls_server;
