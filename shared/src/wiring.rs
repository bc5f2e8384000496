//! How every function starts: the handles to outside systems a Lambda container holds (the
//! Postgres pool and the AWS service clients), read from the environment once, in `main`, and
//! lent to the function's state. Nothing connects or is built until a state asks for it, so a function pays only for
//! what it uses; a state that needs a client on every request builds it in its constructor
//! ([`crate::aws::Lazy::built`]), so that cost shows in the cold start where it belongs.
//!
//! Every function's `main` reads the same way:
//!
//! ```text
//! wiring::init_tracing();
//! let config = XConfig::from_env()?;
//! let clients = Clients::from_env();
//! let state = State::new(config, &clients)?;
//! api::serve(env!("CARGO_PKG_NAME"), &clients, state, handler).await   // or consumers::run
//! ```

use crate::config::ConfigError;

/// What a function's `main` returns: an init error reaches the Lambda runtime, which reports
/// it and retries the cold start.
#[cfg(feature = "lambda")]
pub type Result = std::result::Result<(), lambda_runtime::Error>;

/// Logs as Lambda configures them (JSON or text, the function's log level), one span per
/// invocation with its request id.
#[cfg(feature = "lambda")]
pub fn init_tracing() {
    lambda_runtime::tracing::init_default_subscriber();
}

/// Why a function could not start: a setting is missing or wrong, or a client could not be
/// built. Reported once by the Lambda runtime as an init error.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InitError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{what} could not be set up: {reason}")]
    Client { what: &'static str, reason: String },
}

impl InitError {
    #[cfg(any(feature = "postgres", feature = "aws"))]
    fn missing(what: &'static str) -> Self {
        Self::Client {
            what,
            reason: "this function was not given one".into(),
        }
    }
}

/// The container's clients; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Clients {
    /// The pool, or why the environment names no usable database (reported only when a state
    /// asks for it: most functions need none).
    #[cfg(feature = "postgres")]
    database: Option<std::result::Result<crate::postgres::Database, InitError>>,
    #[cfg(feature = "aws")]
    aws: Option<crate::aws::AwsClients>,
}

impl Clients {
    /// No clients: add them with the `with_*` methods (tests, the CLI).
    pub fn new() -> Self {
        Self::default()
    }

    /// The clients the environment describes, as Lambda sets it: `DATABASE_URL` or the
    /// `DB_*` variables for Postgres; region, credentials and `AWS_ENDPOINT_URL*` for AWS.
    pub fn from_env() -> Self {
        #[allow(unused_mut)]
        let mut clients = Self::new();
        #[cfg(feature = "postgres")]
        {
            clients.database = Some(
                crate::config::DbConfig::from_env()
                    .map_err(InitError::from)
                    .and_then(|config| {
                        crate::postgres::Database::connect_lazy(&config).map_err(|e| {
                            InitError::Client {
                                what: "PostgreSQL",
                                reason: format!("{e:#}"),
                            }
                        })
                    }),
            );
        }
        #[cfg(feature = "aws")]
        {
            let sdk = crate::aws::sdk_config(&crate::aws::AwsOptions::from_env());
            clients.aws = Some(crate::aws::AwsClients::on_first_use(&sdk));
        }
        clients
    }

    /// These clients with `database` as the Postgres handle.
    #[cfg(feature = "postgres")]
    pub fn with_database(mut self, database: crate::postgres::Database) -> Self {
        self.database = Some(Ok(database));
        self
    }

    /// These clients with `aws` as the AWS service clients.
    #[cfg(feature = "aws")]
    pub fn with_aws(mut self, aws: crate::aws::AwsClients) -> Self {
        self.aws = Some(aws);
        self
    }

    /// The Postgres handle (a lazy pool), or why there is none.
    #[cfg(feature = "postgres")]
    pub fn database(&self) -> std::result::Result<crate::postgres::Database, InitError> {
        self.database
            .clone()
            .unwrap_or_else(|| Err(InitError::missing("PostgreSQL")))
    }

    /// The AWS service clients, each built on first use.
    #[cfg(feature = "aws")]
    pub fn aws(&self) -> std::result::Result<&crate::aws::AwsClients, InitError> {
        self.aws.as_ref().ok_or_else(|| InitError::missing("AWS"))
    }
}
