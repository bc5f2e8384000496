//! PostgreSQL through sqlx: one lazily connected pool per Lambda container.
//!
//! Locally the pool connects with `DATABASE_URL`. In AWS it connects to RDS Proxy with
//! `DB_HOST`, `DB_PORT`, `DB_NAME` and `DB_USER`, authenticating with an **IAM auth token**:
//! the token is a SigV4 presigned URL computed locally from the function's role credentials,
//! so there is no network call before the first query (a Secrets Manager password would cost
//! a call to Secrets Manager on every cold start and a secret to rotate). Tokens live 15
//! minutes; the pool swaps in a fresh one every 10 minutes for the connections it opens next
//! (open connections stay valid after their token expires).
//!
//! RDS Proxy multiplexes client connections onto database connections between transactions,
//! unless a session holds state it cannot move — it then *pins* the client connection.
//! sqlx by default prepares every query as a *named* statement cached on the connection,
//! which is session state. We set `statement_cache_capacity(0)`: sqlx then uses the unnamed
//! statement for each query (Parse/Bind/Execute on `""`), which lasts only until the next
//! query. We never use `SET`, advisory locks, `LISTEN`, temporary tables or cursors; the
//! session settings sqlx needs (`DateStyle`, `client_encoding`, `TimeZone`,
//! `extra_float_digits`) travel in the startup packet, and so do ours (below). Watch the
//! proxy's `DatabaseConnectionsCurrentlySessionPinned` metric to confirm.
//!
//! # Time limits
//!
//! Every connection starts with `statement_timeout` ([`STATEMENT_TIMEOUT`]) and
//! `idle_in_transaction_session_timeout` ([`IDLE_IN_TRANSACTION_TIMEOUT`]), sent as `-c`
//! options in the startup packet (`options`), never with `SET`, which would pin the connection
//! to a database connection of the proxy. A statement that hangs (a lock wait behind a stuck
//! transaction, a plan gone wrong) fails inside the function's own timeout, as an error the
//! function can report, rather than running on after Lambda has killed it; and a transaction
//! left open by a container that was frozen or killed mid-way gives its row locks back within
//! seconds instead of holding them until the proxy notices the client is gone. No transaction
//! of ours waits on anything but Postgres while it is open (S3 and SQS calls come after the
//! commit), so the idle limit never ends a healthy one.
//!
//! The pool holds at most 2 connections: a Lambda container serves one request at a time,
//! and the proxy, not the container, is where connections are pooled.

pub mod api_keys;
pub mod deliveries;
pub mod events;
pub mod firings;
pub mod tenants;
pub mod timers;
pub mod trigger_sets;
pub mod triggers;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};

pub use crate::config::DbConfig;

/// The migrations in `shared/migrations`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// IAM tokens are valid for 15 minutes; refresh well before that.
const TOKEN_REFRESH: Duration = Duration::from_secs(10 * 60);

/// The longest one statement may run: our statements are indexed reads and small writes
/// (milliseconds), the API routes have 10 s in all, the queue consumers 30–60 s per batch.
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest a transaction may sit idle between statements before Postgres ends the session
/// (and its locks): ours never wait on anything but Postgres while open.
pub const IDLE_IN_TRANSACTION_TIMEOUT: Duration = Duration::from_secs(10);

/// `options` with the session's time limits, in the startup packet (see the module docs).
fn with_time_limits(options: PgConnectOptions) -> PgConnectOptions {
    let millis = |d: Duration| format!("{}ms", d.as_millis());
    options.options([
        ("statement_timeout", millis(STATEMENT_TIMEOUT)),
        (
            "idle_in_transaction_session_timeout",
            millis(IDLE_IN_TRANSACTION_TIMEOUT),
        ),
    ])
}

struct IamAuth {
    host: String,
    port: u16,
    user: String,
    base: PgConnectOptions,
    /// When the pool's current token was made; `None` before the first query.
    issued: Mutex<Option<Instant>>,
    sdk: tokio::sync::OnceCell<aws_config::SdkConfig>,
}

/// The container's database handle: a lazy pool, plus IAM token refresh when configured.
/// Cheap to clone: clones share the pool.
#[derive(Clone)]
pub struct Database {
    pool: PgPool,
    iam: Option<Arc<IamAuth>>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("iam", &self.iam.is_some())
            .finish_non_exhaustive()
    }
}

impl Database {
    /// Builds the pool without connecting. Must run inside a tokio runtime.
    pub fn connect_lazy(config: &DbConfig) -> anyhow::Result<Self> {
        let pool_options = PgPoolOptions::new()
            .max_connections(2)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(5))
            // Lambda freezes containers between invocations; drop connections the proxy
            // has probably closed (its idle client timeout defaults to 30 minutes).
            .idle_timeout(Duration::from_secs(10 * 60))
            .max_lifetime(Duration::from_secs(30 * 60));
        match config {
            DbConfig::Url(url) => {
                let options: PgConnectOptions = url
                    .parse()
                    .context("DATABASE_URL is not a valid Postgres URL")?;
                Ok(Self {
                    pool: pool_options
                        .connect_lazy_with(with_time_limits(options.statement_cache_capacity(0))),
                    iam: None,
                })
            }
            DbConfig::Iam {
                host,
                port,
                database,
                user,
            } => {
                let base = with_time_limits(
                    PgConnectOptions::new()
                        .host(host)
                        .port(*port)
                        .database(database)
                        .username(user)
                        // RDS Proxy presents an ACM certificate, which the webpki roots verify.
                        .ssl_mode(PgSslMode::VerifyFull)
                        .statement_cache_capacity(0),
                );
                Ok(Self {
                    pool: pool_options.connect_lazy_with(base.clone()),
                    iam: Some(Arc::new(IamAuth {
                        host: host.clone(),
                        port: *port,
                        user: user.clone(),
                        base,
                        issued: Mutex::new(None),
                        sdk: tokio::sync::OnceCell::new(),
                    })),
                })
            }
        }
    }

    /// Reads [`DbConfig::from_env`] and builds the lazy pool.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::connect_lazy(&DbConfig::from_env()?)
    }

    /// Wraps an existing pool (tests, the CLI).
    pub fn from_pool(pool: PgPool) -> Self {
        Self { pool, iam: None }
    }

    /// The pool, with a fresh IAM token installed when the current one is getting old.
    pub async fn pool(&self) -> anyhow::Result<&PgPool> {
        if let Some(iam) = &self.iam {
            let stale = iam
                .issued
                .lock()
                .map(|t| t.is_none_or(|t| t.elapsed() > TOKEN_REFRESH))
                .unwrap_or(true);
            if stale {
                let sdk = iam.sdk.get_or_init(signing_config).await;
                let token = iam_auth_token(sdk, &iam.host, iam.port, &iam.user).await?;
                self.pool
                    .set_connect_options(iam.base.clone().password(&token));
                if let Ok(mut issued) = iam.issued.lock() {
                    *issued = Some(Instant::now());
                }
            }
        }
        Ok(&self.pool)
    }
}

/// Where the IAM token's credentials and region come from: the full provider chain (profiles,
/// SSO, credential processes, IMDS), as an operator's machine needs (the CLI).
#[cfg(feature = "aws-credential-chain")]
async fn signing_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(crate::sdk_http::http_client())
        .load()
        .await
}

/// Where the IAM token's credentials and region come from: the environment, which is where
/// Lambda puts the role's credentials and the region. Not loading the provider chain keeps STS,
/// SSO, IMDS and the HTTPS client they need out of the functions that only talk to Postgres
/// (about half of an API route's binary).
#[cfg(not(feature = "aws-credential-chain"))]
async fn signing_config() -> aws_config::SdkConfig {
    let region = crate::config::aws_region_from_env().map(aws_config::Region::new);
    aws_config::SdkConfig::builder()
        .region(region)
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(
                aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
            ),
        )
        .build()
}

/// An RDS IAM authentication token: the SigV4-presigned `connect` action, without scheme.
async fn iam_auth_token(
    sdk: &aws_config::SdkConfig,
    host: &str,
    port: u16,
    user: &str,
) -> anyhow::Result<String> {
    use aws_credential_types::provider::ProvideCredentials as _;
    use aws_sigv4::http_request::{
        SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
    };

    let region = sdk
        .region()
        .context("no AWS region configured for the RDS IAM token")?
        .to_string();
    let credentials = sdk
        .credentials_provider()
        .context("no AWS credentials provider for the RDS IAM token")?
        .provide_credentials()
        .await
        .context("could not load AWS credentials for the RDS IAM token")?;
    let identity = credentials.into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(Duration::from_secs(15 * 60));
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(&region)
        .name("rds-db")
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .context("invalid SigV4 parameters")?
        .into();
    let url = format!(
        "https://{host}:{port}/?Action=connect&DBUser={}",
        urlencode(user)
    );
    let signable = SignableRequest::new("GET", &url, std::iter::empty(), SignableBody::Bytes(&[]))
        .context("cannot sign the RDS connect request")?;
    let (instructions, _) = sign(signable, &params)
        .context("cannot sign the RDS connect request")?
        .into_parts();
    let mut request = http::Request::builder()
        .uri(&url)
        .body(())
        .context("invalid RDS connect URL")?;
    instructions.apply_to_request_http1x(&mut request);
    let uri = request.uri().to_string();
    Ok(uri.strip_prefix("https://").unwrap_or(&uri).to_owned())
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Whether Postgres refused a value as such (SQLSTATE class 22, "data exception": a NUL in
/// text, a time out of range, a number too large…). The same value fails the same way on every
/// try, so a consumer must not treat it as transient.
pub fn is_invalid_input(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.code().is_some_and(|code| code.starts_with("22")))
}

/// Whether a database error is a unique-constraint violation (mapped to 409 by callers).
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn iam_tokens_are_presigned_connect_urls_for_the_user() {
        let sdk = aws_config::SdkConfig::builder()
            .region(aws_config::Region::new("eu-west-1"))
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(
                    aws_credential_types::Credentials::new(
                        "AKIDEXAMPLE",
                        "secret",
                        None,
                        None,
                        "test",
                    ),
                ),
            )
            .build();
        let token = iam_auth_token(&sdk, "proxy.example.com", 5432, "app user")
            .await
            .expect("token");
        assert!(
            token.starts_with("proxy.example.com:5432/?Action=connect&DBUser=app+user&"),
            "{token}"
        );
        assert!(token.contains("X-Amz-Signature="));
        assert!(token.contains("X-Amz-Expires=900"));
        assert!(token.contains("%2Feu-west-1%2Frds-db%2Faws4_request"));
    }
}
