//! `triggeriq dev`: the whole of TriggerIQ on one machine, driven by template.yaml.

pub mod authorizer;
pub mod gateway;
pub mod intrinsic;
pub mod invoke;
pub mod log;
pub mod provision;
pub mod schedule;
pub mod sqs;
pub mod template;
#[cfg(test)]
mod testing;
pub mod bedrock;
pub mod receiver;
