//! The environment a bootstrap starts with: what Lambda sets, plus the function's own variables
//! from `template.yaml`, with every endpoint (database, AWS, IMDS) pointed at the trap listener so
//! that a network call during init is seen instead of leaving the machine.

use std::path::Path;

use anyhow::Context as _;
use serde_yaml_ng::Value;

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

/// A parsed SAM template.
pub struct Template {
    doc: Value,
}

impl Template {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// Parses template text (CloudFormation tags such as `!Ref` are kept as tagged values).
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        Ok(Self {
            doc: serde_yaml_ng::from_str(text)?,
        })
    }

    /// The function whose `Metadata.BuildProperties.Binary` is `binary`, if the template has one.
    pub fn function(&self, binary: &str, trap_port: u16) -> Option<TemplateFunction> {
        let resources = self.doc.get("Resources")?.as_mapping()?;
        let properties = resources.values().find_map(|resource| {
            let is_function =
                resource.get("Type").and_then(Value::as_str) == Some("AWS::Serverless::Function");
            let name = resource
                .get("Metadata")
                .and_then(|m| m.get("BuildProperties"))
                .and_then(|b| b.get("Binary"))
                .and_then(Value::as_str);
            (is_function && name == Some(binary)).then(|| resource.get("Properties"))
        })?;
        let globals = self.doc.get("Globals").and_then(|g| g.get("Function"));
        let setting = |key: &str| {
            properties
                .and_then(|p| p.get(key))
                .or_else(|| globals.and_then(|g| g.get(key)))
        };
        let mut variables: Vec<(String, String)> = Vec::new();
        for source in [globals, properties] {
            let Some(vars) = source
                .and_then(|s| s.get("Environment"))
                .and_then(|e| e.get("Variables"))
                .and_then(Value::as_mapping)
            else {
                continue;
            };
            for (name, value) in vars {
                let Some(name) = name.as_str() else { continue };
                let value = self.dummy_value(name, value, trap_port);
                variables.retain(|(n, _)| n != name);
                variables.push((name.to_owned(), value));
            }
        }
        let logging = |key: &str| {
            setting("LoggingConfig")
                .and_then(|l| l.get(key))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        Some(TemplateFunction {
            variables,
            memory_mb: setting("MemorySize").and_then(Value::as_u64).unwrap_or(128),
            log_format: logging("LogFormat"),
            log_level: logging("ApplicationLogLevel"),
        })
    }

    /// A value to start the function with: the template's literal, a parameter's default, or a
    /// dummy. Database and queue endpoints always go to the trap.
    fn dummy_value(&self, name: &str, value: &Value, trap_port: u16) -> String {
        let slug = name.to_ascii_lowercase().replace('_', "-");
        match name {
            "DB_HOST" => return "127.0.0.1".to_owned(),
            "DB_PORT" => return trap_port.to_string(),
            _ => {}
        }
        match value {
            Value::String(s) => return s.clone(),
            Value::Number(n) => return n.to_string(),
            Value::Bool(b) => return b.to_string(),
            _ => {}
        }
        if name.ends_with("_URL") {
            return format!("http://127.0.0.1:{trap_port}/123456789012/coldstart-{slug}");
        }
        if name.ends_with("_ARN") {
            return format!("arn:aws:sqs:us-east-1:123456789012:coldstart-{slug}");
        }
        if let Value::Tagged(tagged) = value
            && tagged.tag.to_string().trim_start_matches('!') == "Ref"
            && let Some(parameter) = tagged.value.as_str()
            && let Some(default) = self
                .doc
                .get("Parameters")
                .and_then(|p| p.get(parameter))
                .and_then(|p| p.get("Default"))
        {
            match default {
                Value::String(s) if !s.is_empty() => return s.clone(),
                Value::Number(n) => return n.to_string(),
                _ => {}
            }
        }
        format!("coldstart-{slug}")
    }
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
"#;

    #[test]
    fn variables_resolve_to_literals_defaults_or_the_trap() {
        let template = Template::parse(TEMPLATE).expect("template parses");
        let f = template.function("fn-a", 4000).expect("fn-a is declared");
        assert_eq!(f.memory_mb, 512);
        assert_eq!(f.log_format.as_deref(), Some("JSON"));
        let get = |name: &str| {
            f.variables
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
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
        assert!(template.function("fn-c", 4000).is_none());
    }
}
