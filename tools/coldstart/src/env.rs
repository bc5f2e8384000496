//! The environment a bootstrap starts with: what Lambda sets, plus the function's own variables
//! from `template.yaml` (read by the local stack's template reader, `triggeriq_local::template`,
//! the one reader of the template), with every endpoint (database, AWS, IMDS) pointed at the
//! trap listener so that a network call during init is seen instead of leaving the machine.

use std::collections::BTreeMap;
use std::path::Path;

use triggeriq_local::intrinsic::{ResolveError, ResourceLookup};

/// What the template says about one function.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TemplateFunction {
    /// Its environment variables, with dummy values where the template refers to a resource.
    pub variables: Vec<(String, String)>,
    /// `MemorySize` (the function's or the Globals'), 128 when neither sets it.
    pub memory_mb: u64,
    /// `LoggingConfig.LogFormat` (`JSON` or `Text`).
    pub log_format: Option<String>,
    /// `LoggingConfig.ApplicationLogLevel`.
    pub log_level: Option<String>,
}

impl TemplateFunction {
    /// The value the function starts with for variable `name`.
    pub fn variable(&self, name: &str) -> Option<&str> {
        self.variables
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A SAM template, as the local stack reads it.
pub struct Template {
    inner: triggeriq_local::template::Template,
}

/// The stack name the template is read with: it only shows in resource names no function sees.
const STACK: &str = "coldstart";

/// What a resource reference resolves to here: a marker that [`stand_in`] replaces according to
/// the variable's name (no resource exists, and the function must not reach one).
struct Unprovisioned;

const RESOURCE_MARKER: &str = "\u{0}coldstart-resource";

impl ResourceLookup for Unprovisioned {
    fn resource(&self, id: &str, _attribute: Option<&str>) -> Option<String> {
        Some(format!("{RESOURCE_MARKER}:{id}"))
    }
}

impl Template {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let inner = triggeriq_local::template::Template::load(path, STACK, &BTreeMap::new())?;
        Ok(Self { inner })
    }

    /// Parses template text (CloudFormation tags such as `!Ref` are understood).
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let inner = triggeriq_local::template::Template::parse(text, STACK, &BTreeMap::new())?;
        Ok(Self { inner })
    }

    /// The function whose `Metadata.BuildProperties.Binary` is `binary`, if the template has one.
    pub fn function(&self, binary: &str, trap_port: u16) -> Option<TemplateFunction> {
        let function = self.inner.function_running(binary)?;
        let variables = self
            .inner
            .variables(function, &Unprovisioned)
            .into_iter()
            .map(|(name, resolved)| {
                let value = stand_in(&name, resolved, trap_port);
                (name, value)
            })
            .collect();
        Some(TemplateFunction {
            variables,
            memory_mb: function.memory_mb,
            log_format: function.log_format.clone(),
            log_level: function.log_level.clone(),
        })
    }
}

/// A value to start the function with: the template's literal or a parameter's value, unless the
/// variable names the database (always the trap) or refers to a resource, which gets a dummy by
/// the variable's name (queue URLs on the trap) — as does a value that cannot be resolved.
fn stand_in(name: &str, resolved: Result<String, ResolveError>, trap_port: u16) -> String {
    match name {
        "DB_HOST" => return "127.0.0.1".to_owned(),
        "DB_PORT" => return trap_port.to_string(),
        _ => {}
    }
    if let Ok(value) = &resolved
        && !value.contains(RESOURCE_MARKER)
    {
        return value.clone();
    }
    let slug = name.to_ascii_lowercase().replace('_', "-");
    if name.ends_with("_URL") {
        return format!("http://127.0.0.1:{trap_port}/123456789012/coldstart-{slug}");
    }
    if name.ends_with("_ARN") {
        return format!("arn:aws:sqs:us-east-1:123456789012:coldstart-{slug}");
    }
    format!("coldstart-{slug}")
}

/// Everything Lambda itself sets for a provided.al2023 function, with fake credentials and every
/// AWS endpoint on the trap. `home` should be an empty directory (no `~/.aws` profile files).
pub fn lambda_environment(
    function: &str,
    runtime_api: &str,
    trap_port: u16,
    template: Option<&TemplateFunction>,
    task_root: &Path,
    home: &Path,
) -> Vec<(String, String)> {
    let trap = format!("http://127.0.0.1:{trap_port}");
    let memory = template.map_or(128, |t| t.memory_mb);
    let mut env: Vec<(String, String)> = [
        ("AWS_LAMBDA_RUNTIME_API", runtime_api.to_owned()),
        ("AWS_LAMBDA_FUNCTION_NAME", format!("coldstart-{function}")),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", memory.to_string()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/coldstart-{function}"),
        ),
        (
            "AWS_LAMBDA_LOG_STREAM_NAME",
            "2026/01/01/[$LATEST]0123456789abcdef".to_owned(),
        ),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_DEFAULT_REGION", "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", "ASIACOLDSTARTEXAMPLE".to_owned()),
        (
            "AWS_SECRET_ACCESS_KEY",
            "coldstart/not/a/real/secret/key/EXAMPLE".to_owned(),
        ),
        ("AWS_SESSION_TOKEN", "coldstart-session-token".to_owned()),
        ("AWS_ENDPOINT_URL", trap.clone()),
        ("AWS_EC2_METADATA_SERVICE_ENDPOINT", trap),
        ("_HANDLER", "bootstrap".to_owned()),
        ("LAMBDA_TASK_ROOT", task_root.display().to_string()),
        ("TZ", ":UTC".to_owned()),
        ("LANG", "en_US.UTF-8".to_owned()),
        ("PATH", "/usr/local/bin:/usr/bin/:/bin".to_owned()),
        ("HOME", home.display().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    if let Some(template) = template {
        if let Some(format) = &template.log_format {
            env.push(("AWS_LAMBDA_LOG_FORMAT".to_owned(), format.clone()));
        }
        if let Some(level) = &template.log_level {
            env.push(("AWS_LAMBDA_LOG_LEVEL".to_owned(), level.clone()));
        }
        env.extend(template.variables.iter().cloned());
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = r#"
Parameters:
  DbPort: {Type: Number, Default: 5432}
  DbName: {Type: String, Default: triggeriq}
  Limit: {Type: Number, Default: 1000}
Globals:
  Function:
    MemorySize: 256
    LoggingConfig: {LogFormat: JSON, ApplicationLogLevel: INFO}
    Environment:
      Variables:
        SHARED: "yes"
Resources:
  Queue:
    Type: AWS::SQS::Queue
  FnA:
    Type: AWS::Serverless::Function
    Metadata:
      BuildMethod: rust-cargolambda
      BuildProperties: {Binary: fn-a}
    Properties:
      MemorySize: 512
      Environment:
        Variables:
          DB_HOST: !Ref DbHost
          DB_PORT: !Ref DbPort
          DB_NAME: !Ref DbName
          LIMIT: !Ref Limit
          QUEUE_URL: !Ref Queue
          TABLE_NAME: !Ref Table
          FLAG: "false"
  FnB:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties: {Binary: fn-b}
  FnC:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties: {Binary: fn-c}
    Properties:
      LoggingConfig: {LogGroup: !Ref Queue, ApplicationLogLevel: DEBUG}
"#;

    #[test]
    fn variables_resolve_to_literals_defaults_or_the_trap() {
        let template = Template::parse(TEMPLATE).expect("template parses");
        let f = template.function("fn-a", 4000).expect("fn-a is declared");
        assert_eq!(f.memory_mb, 512);
        assert_eq!(f.log_format.as_deref(), Some("JSON"));
        let get = |name: &str| f.variable(name);
        assert_eq!(get("SHARED"), Some("yes"));
        assert_eq!(get("DB_HOST"), Some("127.0.0.1"));
        assert_eq!(get("DB_PORT"), Some("4000"));
        assert_eq!(get("DB_NAME"), Some("triggeriq"));
        assert_eq!(get("LIMIT"), Some("1000"));
        assert_eq!(
            get("QUEUE_URL"),
            Some("http://127.0.0.1:4000/123456789012/coldstart-queue-url")
        );
        assert_eq!(get("TABLE_NAME"), Some("coldstart-table-name"));
        assert_eq!(get("FLAG"), Some("false"));

        let b = template.function("fn-b", 4000).expect("fn-b is declared");
        assert_eq!(b.memory_mb, 256);
        assert_eq!(b.variables, vec![("SHARED".to_owned(), "yes".to_owned())]);
        // SAM merges a function's LoggingConfig with the Globals' key by key.
        let c = template.function("fn-c", 4000).expect("fn-c is declared");
        assert_eq!(c.log_format.as_deref(), Some("JSON"));
        assert_eq!(c.log_level.as_deref(), Some("DEBUG"));
        assert!(template.function("fn-d", 4000).is_none());
    }

    /// The repository's template reads as a whole (the local stack's reader refuses what it
    /// cannot follow), and resources resolve to the trap or to dummies, never to an address.
    #[test]
    fn the_repository_template_gives_each_function_trap_endpoints() {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml"));
        let template = Template::load(path).expect("template.yaml loads");
        let f = template
            .function("evaluate-events", 4000)
            .expect("evaluate-events is declared");
        let get = |name: &str| f.variable(name);
        assert_eq!(get("DB_HOST"), Some("127.0.0.1"));
        assert_eq!(get("DB_PORT"), Some("4000"));
        assert_eq!(get("DB_NAME"), Some("triggeriq"));
        assert_eq!(
            get("DELIVERIES_QUEUE_URL"),
            Some("http://127.0.0.1:4000/123456789012/coldstart-deliveries-queue-url")
        );
        assert_eq!(get("TABLE_NAME"), Some("coldstart-table-name"));
        assert_eq!(f.log_format.as_deref(), Some("JSON"));
        assert!(f.memory_mb >= 128);
    }
}
