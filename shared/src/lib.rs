//! TriggerIQ: domain logic and adapters shared by every Lambda function and the CLI.
//!
//! The `pattern` module stands alone (no AWS, no database). Adapters to outside
//! systems sit behind cargo features so that a function compiles only what it uses.

pub mod pattern;
