//! The pattern engine on its own (no AWS, no database): the AWS-validated EventBridge cases,
//! validation and its error paths, the compiled set against the reference interpreter
//! (property tests), and the set's limits. One binary: linking is the slow part of a build.

mod conformance;
mod proptest;
mod set;
mod validation;
