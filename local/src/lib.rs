//! The local stack of `triggeriq dev`: the whole of TriggerIQ on one machine, served by the
//! binaries that run in AWS and wired the way template.yaml wires them.
//!
//! This crate owns the template reader ([`template`], with the intrinsic functions it resolves,
//! [`intrinsic`]), which needs nothing but YAML and JSON and is all that the default-features-off
//! build offers (tools/coldstart uses it that way), and, with the `stack` feature (on by
//! default), everything that runs: the emulator's resources ([`provision`]), the HTTP API
//! ([`gateway`], [`authorizer`]), the SQS pollers ([`sqs`]), the schedules ([`schedule`]), the
//! stand-ins ([`bedrock`], [`receiver`]), the demo data ([`demo`]), how functions are invoked
//! ([`invoke`]), the console ([`log`]) and the startup of `triggeriq dev` ([`DevArgs`], [`run`]).

pub mod intrinsic;
pub mod template;

#[cfg(feature = "stack")]
pub mod authorizer;
#[cfg(feature = "stack")]
pub mod bedrock;
#[cfg(feature = "stack")]
pub mod demo;
#[cfg(feature = "stack")]
pub mod emulator_proxy;
#[cfg(feature = "stack")]
pub mod gateway;
#[cfg(feature = "stack")]
pub mod invoke;
#[cfg(feature = "stack")]
pub mod jwt;
#[cfg(feature = "stack")]
pub mod log;
#[cfg(feature = "stack")]
pub mod provision;
#[cfg(feature = "stack")]
pub mod receiver;
#[cfg(feature = "stack")]
pub mod schedule;
#[cfg(feature = "stack")]
pub mod sqs;
#[cfg(feature = "stack")]
mod stack;

#[cfg(feature = "stack")]
pub use stack::{DevArgs, run};

/// The moto helpers of the library's tests (one server per test binary: found or started).
#[cfg(all(test, feature = "stack"))]
use triggeriq::testing::moto as testing;
