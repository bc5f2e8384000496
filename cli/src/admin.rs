//! Tenant, API-key and database administration, straight against Postgres (and DynamoDB for a
//! new tenant's first webhook signing secret).

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use triggeriq::aws::{AwsOptions, dynamodb_client, kms_client, load_operator_sdk_config};
use triggeriq::dynamodb::{SealOutcome, SigningSecretStore, Table};
use triggeriq::kms::Sealer;
use triggeriq::postgres::{api_keys, tenants};
use triggeriq::tenant::{Scope, Scopes, TenantId};
use uuid::Uuid;

/// `--scope`: repeatable, or a comma-separated list; each one of ingest, read, admin.
#[derive(Args)]
pub struct ScopeArgs {
    /// What the key may do: ingest (POST /v1/events), read (GET routes, POST
    /// /v1/patterns/test, POST /v1/triggers/test), admin (trigger writes, delivery retries,
    /// the signing secret).
    /// Repeat it or separate with commas: --scope ingest,read.
    #[arg(long = "scope", value_name = "SCOPE", value_delimiter = ',',
          value_parser = ["ingest", "read", "admin"])]
    scopes: Vec<String>,
}

impl ScopeArgs {
    /// The scopes named, or `default` when none is.
    fn or(&self, default: Scopes) -> anyhow::Result<Scopes> {
        if self.scopes.is_empty() {
            return Ok(default);
        }
        Scopes::parse_list(&self.scopes.join(",")).map_err(|e| anyhow::anyhow!("--scope: {e}"))
    }
}

/// Where the signing secrets are: the stack's table and KMS key.
#[derive(Args)]
pub struct SecretArgs {
    /// The stack's DynamoDB table, where the tenants' signing secrets are kept.
    #[arg(long, env = "TABLE_NAME")]
    table_name: Option<String>,
    /// The KMS key the signing secrets are sealed with (template parameter SigningKeyArn;
    /// terraform output signing_kms_key_arn). Required with TABLE_NAME.
    #[arg(long, env = "SIGNING_KEY_ID")]
    signing_key_id: Option<String>,
}

impl SecretArgs {
    /// The store, or `None` when no table is named.
    async fn store(&self) -> anyhow::Result<Option<(String, SigningSecretStore)>> {
        let Some(table) = self.table_name.as_deref().filter(|t| !t.is_empty()) else {
            return Ok(None);
        };
        let Some(key) = self.signing_key_id.as_deref().filter(|k| !k.is_empty()) else {
            bail!(
                "SIGNING_KEY_ID (or --signing-key-id) must name the KMS key the signing secrets \
                 are sealed with when TABLE_NAME is set (terraform output signing_kms_key_arn)"
            );
        };
        let config = load_operator_sdk_config(&AwsOptions::from_env()).await;
        let store = SigningSecretStore::new(
            Table::new(dynamodb_client(&config), table),
            Sealer::new(kms_client(&config), key),
        );
        Ok(Some((table.to_owned(), store)))
    }
}

#[derive(Args)]
pub struct DbArgs {
    /// Postgres connection URL.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: String,
}

#[derive(Subcommand)]
pub enum TenantCmd {
    /// Create a tenant, its first API key and its first webhook signing secret; prints them (the
    /// key is shown only once). The first key has every scope unless --scope says otherwise: it
    /// is the tenant's administrator's key, which makes the narrower keys for producers and
    /// dashboards. The signing secret is made in the stack's DynamoDB table (TABLE_NAME, with
    /// the usual AWS configuration: AWS_REGION, credentials or a profile, AWS_ENDPOINT_URL for
    /// an emulator); without TABLE_NAME the tenant is created without one.
    Create {
        name: String,
        #[command(flatten)]
        scopes: ScopeArgs,
        /// Use this tenant id instead of a fresh one (demo and test tenants).
        #[arg(long)]
        id: Option<Uuid>,
        /// Store this API key instead of generating one (local development only; it must look
        /// like a `tiq_` key).
        #[arg(long, hide = true)]
        api_key: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        secrets: SecretArgs,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Seal every tenant's webhook signing secrets with the KMS key (secrets stored in clear
    /// before the encryption), and make the first secret of every tenant that has none. Run
    /// once after upgrading; safe to run again. The secrets themselves do not change.
    SealSecrets {
        #[command(flatten)]
        secrets: SecretArgs,
        #[command(flatten)]
        db: DbArgs,
    },
    /// List tenants.
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Suspend a tenant: the API refuses every key of it (within the authorizer cache's 60 s).
    /// Events it sent before are still evaluated and delivered; its data is kept.
    Suspend {
        id: Uuid,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Lift a tenant's suspension: its keys work again (within 60 s).
    Resume {
        id: Uuid,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Subcommand)]
pub enum ApiKeyCmd {
    /// Create an API key for a tenant; prints it once. --scope is required: choose what the
    /// key is for (a producer needs only ingest).
    Create {
        #[arg(long)]
        tenant: Uuid,
        #[command(flatten)]
        scopes: ScopeArgs,
        /// A label to tell keys apart.
        #[arg(long, default_value = "")]
        name: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// List a tenant's keys (never the keys themselves).
    List {
        #[arg(long)]
        tenant: Uuid,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Revoke a key. Requests with it fail once the authorizer's cache (60 s) expires.
    Revoke {
        #[arg(long)]
        tenant: Uuid,
        key_id: Uuid,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Subcommand)]
pub enum DbCmd {
    /// Apply pending migrations.
    Migrate {
        #[command(flatten)]
        db: DbArgs,
    },
}

async fn connect(db: &DbArgs) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(1)
        .connect(&db.database_url)
        .await
        .context("cannot connect to Postgres (is DATABASE_URL right and the server running?)")
}

/// The tenant's first webhook signing secret (or the one it has, should a previous attempt
/// have made it).
async fn first_signing_secret(
    store: &SigningSecretStore,
    tenant: TenantId,
) -> anyhow::Result<String> {
    let secrets = store.get_or_create(tenant, chrono::Utc::now()).await?;
    Ok(secrets.current.expose().to_owned())
}

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

pub async fn tenant(cmd: TenantCmd) -> anyhow::Result<()> {
    match cmd {
        TenantCmd::Create {
            name,
            scopes,
            id,
            api_key,
            json,
            secrets,
            db,
        } => {
            let store = secrets.store().await?;
            let scopes = scopes.or(Scopes::ALL)?;
            let name = name.trim();
            if name.is_empty() || name.chars().count() > 200 {
                bail!("a tenant name must be 1 to 200 characters");
            }
            if api_key
                .as_deref()
                .is_some_and(|k| !triggeriq::tenant::looks_like_api_key(k))
            {
                bail!(
                    "--api-key: an API key must be `tiq_` followed by 43 characters of A-Z, a-z, 0-9, - or _"
                );
            }
            let pool = connect(&db).await?;
            let mut tx = pool.begin().await?;
            let id = id.map_or_else(TenantId::new, TenantId);
            let tenant = tenants::create(&mut *tx, id, name).await.map_err(|e| {
                if triggeriq::postgres::is_unique_violation(&e) {
                    anyhow::anyhow!("a tenant with id {id} already exists")
                } else {
                    e.into()
                }
            })?;
            let (key_id, key) = match api_key {
                Some(chosen) => {
                    let key_id = Uuid::now_v7();
                    triggeriq_local::demo::insert_key(
                        &mut *tx,
                        tenant.id,
                        key_id,
                        &chosen,
                        "first key",
                        scopes,
                    )
                    .await?;
                    (key_id, chosen)
                }
                None => {
                    let (key_id, key) =
                        api_keys::create(&mut *tx, tenant.id, "first key", scopes).await?;
                    (key_id, key.plain)
                }
            };
            // Made before the commit: if DynamoDB fails, nothing is created and the command can
            // simply be run again (a secret left behind by a failed commit belongs to no one).
            let secret = match &store {
                Some((table, store)) => Some(
                    first_signing_secret(store, tenant.id)
                        .await
                        .with_context(|| {
                            format!(
                                "creating the tenant's first signing secret in DynamoDB table \
                             {table}; nothing was created (unset TABLE_NAME to create the \
                             tenant without one)"
                            )
                        })?,
                ),
                None => None,
            };
            tx.commit().await?;
            if json {
                print_json(&serde_json::json!({
                    "tenant_id": tenant.id, "name": tenant.name, "api_key_id": key_id,
                    "api_key": key, "scopes": scopes, "signing_secret": secret
                }))?;
            } else {
                println!("tenant_id      {}", tenant.id);
                println!("api_key_id     {key_id}");
                println!("api_key        {key}");
                println!("scopes         {scopes}");
                if let Some(secret) = &secret {
                    println!("signing_secret {secret}");
                }
                eprintln!("Keep the key now: it cannot be shown again.");
            }
            match secret {
                Some(_) => eprintln!(
                    "Configure the signing secret in your webhook receivers: every webhook is \
                     signed with it (Standard Webhooks). Admin keys can read it again with \
                     GET /v1/signing-secret."
                ),
                None => eprintln!(
                    "No signing secret was created: TABLE_NAME is not set, so DynamoDB is not \
                     configured. Get the tenant's secret with an admin key, GET \
                     /v1/signing-secret (or a new one with POST /v1/signing-secret/rotate), and \
                     configure it in your webhook receivers."
                ),
            }
            Ok(())
        }
        TenantCmd::SealSecrets { secrets, db } => {
            let Some((table, store)) = secrets.store().await? else {
                bail!("TABLE_NAME (or --table-name) must name the stack's DynamoDB table");
            };
            let all = tenants::list(&connect(&db).await?).await?;
            let (mut sealed, mut created, mut already) = (0, 0, 0);
            for t in &all {
                let outcome = store
                    .seal_legacy(t.id, chrono::Utc::now())
                    .await
                    .with_context(|| format!("tenant {} in table {table}", t.id))?;
                match outcome {
                    SealOutcome::Sealed => sealed += 1,
                    SealOutcome::Created => created += 1,
                    SealOutcome::AlreadySealed => already += 1,
                }
            }
            println!(
                "{} tenants: {sealed} sealed now, {created} given their first secret, {already} \
                 already sealed",
                all.len()
            );
            Ok(())
        }
        TenantCmd::List { json, db } => {
            let all = tenants::list(&connect(&db).await?).await?;
            if json {
                return print_json(&all);
            }
            for t in all {
                let state = t.suspended_at.map_or("active".to_owned(), |at| {
                    format!("suspended {}", at.format("%Y-%m-%dT%H:%M:%SZ"))
                });
                println!(
                    "{}  {}  {}  {}",
                    t.id,
                    t.created_at.format("%Y-%m-%dT%H:%M:%SZ"),
                    state,
                    t.name
                );
            }
            Ok(())
        }
        TenantCmd::Suspend { id, db } => {
            match tenants::suspend(&connect(&db).await?, TenantId(id)).await? {
                None => bail!("no tenant {id}"),
                Some(true) => println!("suspended {id}"),
                Some(false) => println!("{id} was already suspended"),
            }
            eprintln!("Its keys are refused within 60 s (the authorizer's cache).");
            Ok(())
        }
        TenantCmd::Resume { id, db } => {
            match tenants::resume(&connect(&db).await?, TenantId(id)).await? {
                None => bail!("no tenant {id}"),
                Some(true) => println!("resumed {id}"),
                Some(false) => println!("{id} was not suspended"),
            }
            Ok(())
        }
    }
}

pub async fn api_key(cmd: ApiKeyCmd) -> anyhow::Result<()> {
    match cmd {
        ApiKeyCmd::Create {
            tenant,
            scopes,
            name,
            json,
            db,
        } => {
            let scopes = scopes.or(Scopes::NONE)?;
            if scopes.is_empty() {
                bail!(
                    "--scope is required: say what the key may do ({}), e.g. --scope ingest for a producer",
                    Scope::ALL.map(Scope::as_str).join(", ")
                );
            }
            let pool = connect(&db).await?;
            let tenant = TenantId(tenant);
            if tenants::get(&pool, tenant).await?.is_none() {
                bail!("no tenant {tenant}");
            }
            let (key_id, key) = api_keys::create(&pool, tenant, &name, scopes).await?;
            if json {
                print_json(&serde_json::json!({
                    "api_key_id": key_id, "api_key": key.plain, "scopes": scopes
                }))
            } else {
                println!("api_key_id {key_id}");
                println!("api_key    {}", key.plain);
                println!("scopes     {scopes}");
                eprintln!("Keep the key now: it cannot be shown again.");
                Ok(())
            }
        }
        ApiKeyCmd::List { tenant, json, db } => {
            let keys = api_keys::list(&connect(&db).await?, TenantId(tenant)).await?;
            if json {
                return print_json(&keys);
            }
            for k in keys {
                let state = k.revoked_at.map_or("active".to_owned(), |t| {
                    format!("revoked {}", t.format("%Y-%m-%dT%H:%M:%SZ"))
                });
                println!(
                    "{}  {}…  {}  {}  {}",
                    k.id,
                    k.prefix,
                    state,
                    k.scopes.to_string().replace(' ', ","),
                    k.name
                );
            }
            Ok(())
        }
        ApiKeyCmd::Revoke { tenant, key_id, db } => {
            if api_keys::revoke(&connect(&db).await?, TenantId(tenant), key_id).await? {
                println!("revoked {key_id}");
                Ok(())
            } else {
                bail!("tenant {tenant} has no active key {key_id}")
            }
        }
    }
}

pub async fn db(cmd: DbCmd) -> anyhow::Result<()> {
    match cmd {
        DbCmd::Migrate { db } => {
            let pool = connect(&db).await?;
            triggeriq::MIGRATOR
                .run(&pool)
                .await
                .context("migration failed")?;
            println!("migrations applied");
            Ok(())
        }
    }
}
