//! The environment every function runs with (`--env-file` of cargo lambda watch): the
//! template's variables resolved to local values, merged into one, plus the local settings.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context as _, bail};

use super::DevArgs;
use crate::provision::Provisioned;
use crate::template::{self, Template};

/// The environment every function runs with: each function's template variables resolved to
/// local values, merged (cargo lambda watch gives all functions one environment, so a
/// variable must mean the same wherever the template sets it), plus the local settings.
pub fn functions_environment(
    template: &Template,
    provisioned: &Provisioned,
    local: &BTreeMap<String, String>,
) -> anyhow::Result<BTreeMap<String, String>> {
    let mut merged: BTreeMap<String, (String, String)> = BTreeMap::new();
    for f in template.functions.values() {
        for (name, value) in template.environment(f, provisioned)? {
            if local.contains_key(&name) {
                continue;
            }
            match merged.get(&name) {
                Some((other, existing)) if *existing != value => bail!(
                    "template.yaml gives {name} different values in {other} ({existing:?}) and {} ({value:?}); \
                     the local stack runs every function with one environment (cargo lambda watch), \
                     so a variable must mean the same in each function",
                    f.logical_id
                ),
                _ => {
                    merged.insert(name, (f.logical_id.clone(), value));
                }
            }
        }
    }
    let mut out: BTreeMap<String, String> = merged.into_iter().map(|(k, (_, v))| (k, v)).collect();
    out.extend(local.iter().map(|(k, v)| (k.clone(), v.clone())));
    for (k, v) in &out {
        if v.contains('\n') {
            bail!("{k}: a function environment value cannot span lines");
        }
    }
    Ok(out)
}

/// `url` with the functions acting as `triggeriq_app` (migration 0007), as they log in as it
/// in AWS: the startup packet sets the role, so a grant a function lacks fails locally too.
/// The stack itself (migrations, the demo seed) and the CLI keep the URL's own user.
pub fn as_app_role(url: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}options=-c%20role%3Dtriggeriq_app")
}

/// The local values that replace or complete the template's (see docs/local-stack.md).
pub(super) fn local_settings(args: &DevArgs, aws: &str, bedrock: &str) -> BTreeMap<String, String> {
    let mut settings = BTreeMap::from([
        ("DATABASE_URL".into(), as_app_role(&args.database_url)),
        ("AWS_ENDPOINT_URL".into(), aws.to_owned()),
        (
            "AWS_ENDPOINT_URL_BEDROCK_RUNTIME".into(),
            bedrock.to_owned(),
        ),
        ("AWS_ACCESS_KEY_ID".into(), "test".into()),
        ("AWS_SECRET_ACCESS_KEY".into(), "test".into()),
        ("AWS_REGION".into(), template::REGION.into()),
        ("AWS_DEFAULT_REGION".into(), template::REGION.into()),
        // The demo receiver is plain http on 127.0.0.1.
        ("ALLOW_HTTP_WEBHOOKS".into(), "true".into()),
        ("ALLOW_PRIVATE_WEBHOOK_TARGETS".into(), "true".into()),
        // As in Lambda, where neither is set: an error a function logs is one line. A shell's
        // RUST_BACKTRACE=1 would otherwise reach every function through cargo lambda watch,
        // and anyhow errors logged with their Debug would carry a 50-frame backtrace each.
        ("RUST_BACKTRACE".into(), "0".into()),
        ("RUST_LIB_BACKTRACE".into(), "0".into()),
        // A trigger just created applies to the very next event (one indexed read of the
        // tenant's revision per event). Deployed, changes apply within 5 s (the default).
        ("TRIGGER_CACHE_SECONDS".into(), "0".into()),
        // Debounce and absence on seconds, for trying them out (deployed: at least a minute,
        // the schedule's period).
        ("MIN_CONDITION_TIMER_SECONDS".into(), "1".into()),
    ]);
    settings.extend(args.function_env.iter().cloned());
    settings
}

/// Writes `env` as KEY=VALUE lines, the format of cargo lambda's `--env-file`.
pub(super) fn write_env_file(path: &Path, env: &BTreeMap<String, String>) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let text: String = env
        .iter()
        .map(|(k, v)| format!("{k}={}\n", env_file_value(v)))
        .collect();
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// A value as the env file holds it: as is when it is plain, else quoted. cargo lambda's
/// parser refuses an unquoted `=` in a value (a URL's query, `?sslmode=require`), and shells
/// that `source` the file need quotes around spaces and `$`.
fn env_file_value(value: &str) -> String {
    let plain = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_-./:,@+%".contains(c));
    if plain {
        value.to_owned()
    } else if !value.contains('\'') {
        format!("'{value}'")
    } else {
        let escaped = value
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('$', "\\$");
        format!("\"{escaped}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_file_values_with_equals_spaces_or_quotes_are_quoted() {
        assert_eq!(env_file_value("alias/key-1"), "alias/key-1");
        assert_eq!(env_file_value(""), "");
        assert_eq!(
            env_file_value("postgres://u@h/db?options=-c%20role%3Dapp"),
            "'postgres://u@h/db?options=-c%20role%3Dapp'"
        );
        assert_eq!(env_file_value("a b"), "'a b'");
        assert_eq!(env_file_value(r#"it's "$x""#), r#""it's \"\$x\"""#);
    }

    #[test]
    fn one_environment_serves_every_function_and_local_values_win() {
        let text = r#"
Resources:
  A:
    Type: AWS::Serverless::Function
    Metadata: {BuildProperties: {Binary: a}}
    Properties:
      Environment: {Variables: {QUEUE: !Ref Q, FLAG: "false", ONLY_A: "1"}}
  B:
    Type: AWS::Serverless::Function
    Metadata: {BuildProperties: {Binary: b}}
    Properties:
      Environment: {Variables: {QUEUE: !Ref Q, FLAG: "false"}}
  Q:
    Type: AWS::SQS::Queue
"#;
        let template = Template::parse(text, "s", &BTreeMap::new()).expect("template");
        let mut provisioned = Provisioned::default();
        provisioned.insert_for_test("Q", "http://moto/q");
        let local = BTreeMap::from([("FLAG".to_owned(), "true".to_owned())]);
        let env = functions_environment(&template, &provisioned, &local).expect("environment");
        assert_eq!(env["QUEUE"], "http://moto/q");
        assert_eq!(env["FLAG"], "true");
        assert_eq!(env["ONLY_A"], "1");

        let clash = text.replace(
            "{QUEUE: !Ref Q, FLAG: \"false\"}}",
            "{QUEUE: other, FLAG: \"false\"}}",
        );
        let template = Template::parse(&clash, "s", &BTreeMap::new()).expect("template");
        let err = functions_environment(&template, &provisioned, &local).expect_err("a clash");
        assert!(err.to_string().contains("QUEUE"), "{err}");
    }

    #[test]
    fn the_repository_template_runs_with_one_environment() {
        let template = crate::template::tests::repo_template();
        let mut provisioned = Provisioned::default();
        for q in template
            .queues
            .keys()
            .chain(template.tables.keys())
            .chain(template.buckets.keys())
        {
            provisioned.insert_for_test(q, &format!("local-{q}"));
        }
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            dev: DevArgs,
        }
        let args = <Cli as clap::Parser>::parse_from(["dev", "--database-url", "postgres://x"]).dev;
        let env = functions_environment(
            &template,
            &provisioned,
            &local_settings(&args, "http://proxy", "http://b"),
        )
        .expect("one environment");
        assert_eq!(env["ALLOW_HTTP_WEBHOOKS"], "true");
        assert_eq!(
            env["DATABASE_URL"], "postgres://x?options=-c%20role%3Dtriggeriq_app",
            "the functions act as their own role"
        );
        assert_eq!(env["AWS_ENDPOINT_URL"], "http://proxy");
        assert_eq!(
            env["RUST_BACKTRACE"], "0",
            "one line per error, as in Lambda"
        );
        assert!(
            env.contains_key("TABLE_NAME") || template.function_running("ingest-events").is_none()
        );
    }
}

#[cfg(test)]
mod database_role {
    use triggeriq::postgres::{Database, DbConfig};

    #[sqlx::test(migrator = "triggeriq::MIGRATOR")]
    async fn the_functions_url_logs_in_acting_as_the_app_role_with_its_time_limits(
        _migrated: sqlx::PgPool,
    ) {
        // The migration made the role (roles belong to the cluster, so any database will do).
        let url = std::env::var("DATABASE_URL").expect("DATABASE_URL");
        let db = Database::connect_lazy(&DbConfig::Url(super::as_app_role(&url))).expect("pool");
        let pool = db.pool().await.expect("pool");
        let (who, timeout): (String, String) =
            sqlx::query_as("SELECT current_user::text, current_setting('statement_timeout')")
                .fetch_one(pool)
                .await
                .expect("query");
        assert_eq!(who, "triggeriq_app");
        assert_eq!(timeout, "5s", "the functions' own startup options are kept");
    }
}
