//! Cold-start harness for TriggerIQ's functions (issue 6).
//!
//! Runs each function's release `bootstrap` against a local stand-in for the Lambda Runtime API,
//! interleaved with `lambda_runtime` and `lambda_http` hello worlds built by the same profile, and
//! reports init time (exec → first request for work), the first invocation, peak RSS and the
//! arm64 zip size against the budgets. Endpoints a function could call during init point at a
//! trap listener, so a network call before the first invocation shows up in the table.

pub mod env;
pub mod harness;
pub mod measure;
pub mod runtime_api;
pub mod sockets;
