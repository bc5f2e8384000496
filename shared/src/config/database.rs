//! Where PostgreSQL is and how to authenticate: a URL locally, RDS Proxy with IAM tokens in
//! AWS (see [`crate::postgres`]).

use super::{ConfigError, env_optional, env_or, env_required};

/// Where the database is and how to authenticate.
#[derive(Debug, Clone)]
pub enum DbConfig {
    /// A full connection URL (local development, tests).
    Url(String),
    /// RDS Proxy with IAM authentication.
    Iam {
        host: String,
        port: u16,
        database: String,
        user: String,
    },
}

impl DbConfig {
    /// `DATABASE_URL` when set, else the `DB_*` variables for IAM authentication.
    pub fn from_env() -> Result<Self, ConfigError> {
        if let Some(url) = env_optional("DATABASE_URL") {
            return Ok(Self::Url(url));
        }
        Ok(Self::Iam {
            host: env_required("DB_HOST").map_err(|_| ConfigError {
                name: "DATABASE_URL or DB_HOST".into(),
                reason: "one of them is required".into(),
            })?,
            port: env_or("DB_PORT", 5432)?,
            database: env_or("DB_NAME", "triggeriq".to_owned())?,
            user: env_or("DB_USER", "triggeriq_app".to_owned())?,
        })
    }
}
