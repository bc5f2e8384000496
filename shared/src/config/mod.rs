//! Deployment settings, read from the environment once per container: one parser per
//! variable, each with its default and an error that names the variable and says why.
//!
//! - [`api`]: the HTTP API routes' limits ([`ApiConfig`]).
//! - [`pipeline`]: ingest, evaluate, deliver and redeliver ([`IngestConfig`], …).
//! - [`database`]: where Postgres is and how to authenticate ([`DbConfig`]).
//!
//! Every function's `main` reads its configuration with `XConfig::from_env()?` and hands it
//! to its state's constructor; nothing else reads the environment.

pub mod api;
pub mod database;
pub mod pipeline;

use std::str::FromStr;

use crate::webhook::{AddressPolicy, TargetPolicy};

pub use api::{ApiConfig, DraftConfig, RouteRate, ThrottleConfig};
pub use database::DbConfig;
pub use pipeline::{
    DeliverConfig, EvaluateConfig, IngestConfig, RecordConfig, RetryDeliveryConfig, SigningConfig,
};

/// A setting that could not be read: which variable, and why.
#[derive(Debug, Clone, thiserror::Error)]
#[error("environment variable {name}: {reason}")]
pub struct ConfigError {
    pub name: String,
    pub reason: String,
}

/// Reads `name`, or `default` when unset or empty.
pub fn env_or<T: FromStr>(name: &str, default: T) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match std::env::var(name) {
        Ok(raw) if !raw.trim().is_empty() => raw.trim().parse().map_err(|e: T::Err| ConfigError {
            name: name.to_owned(),
            reason: format!("{raw:?} is not valid ({e})"),
        }),
        _ => Ok(default),
    }
}

/// Reads a required variable.
pub fn env_required(name: &str) -> Result<String, ConfigError> {
    env_optional(name).ok_or_else(|| ConfigError {
        name: name.to_owned(),
        reason: "is required".into(),
    })
}

/// Reads `name`, trimmed; `None` when unset or empty.
pub fn env_optional(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|raw| raw.trim().to_owned())
        .filter(|value| !value.is_empty())
}

/// Which webhook targets this deployment allows, from the three variables that say it (the
/// trigger routes judge actions with it, deliver-webhooks every attempt; the local stack sets
/// the first two to `true`, and every function must read them alike):
///
/// - `ALLOW_HTTP_WEBHOOKS` (false): plain `http://` targets.
/// - `ALLOW_PRIVATE_WEBHOOK_TARGETS` (false): loopback targets (`127.0.0.0/8`, `::1`,
///   `localhost`) on any port — the local stack's receivers; never other private ranges.
/// - `WEBHOOK_ALLOWED_PORTS` (unset: 443, 8443, and 80 where http is allowed): the ports
///   targets may use, comma-separated.
pub fn webhook_targets_from_env() -> Result<TargetPolicy, ConfigError> {
    let allow_http = env_or("ALLOW_HTTP_WEBHOOKS", false)?;
    let addresses = if env_or("ALLOW_PRIVATE_WEBHOOK_TARGETS", false)? {
        AddressPolicy::local_development()
    } else {
        AddressPolicy::strict()
    };
    let ports = env_optional("WEBHOOK_ALLOWED_PORTS")
        .map(|raw| {
            parse_ports(&raw).map_err(|reason| ConfigError {
                name: "WEBHOOK_ALLOWED_PORTS".into(),
                reason,
            })
        })
        .transpose()?;
    Ok(TargetPolicy::new(addresses, allow_http, ports))
}

/// `443,8443` → the ports; each from 1 to 65535, at least one.
pub fn parse_ports(raw: &str) -> Result<Vec<u16>, String> {
    let mut ports = Vec::new();
    for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.parse::<u16>() {
            Ok(port) if port > 0 => {
                if !ports.contains(&port) {
                    ports.push(port);
                }
            }
            _ => return Err(format!("{part:?} is not a port (1 to 65535)")),
        }
    }
    if ports.is_empty() {
        return Err("lists no port".into());
    }
    Ok(ports)
}

/// The AWS region Lambda sets: `AWS_REGION`, else `AWS_DEFAULT_REGION`.
pub fn aws_region_from_env() -> Option<String> {
    env_optional("AWS_REGION").or_else(|| env_optional("AWS_DEFAULT_REGION"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_parse_and_name_the_bad_one() {
        assert_eq!(parse_ports("443, 8443,443"), Ok(vec![443, 8443]));
        assert!(parse_ports("443,0").unwrap_err().contains("\"0\""));
        assert!(parse_ports("443,70000").is_err());
        assert!(parse_ports(" , ").is_err());
    }
}
