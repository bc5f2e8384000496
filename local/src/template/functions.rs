//! Functions: the cargo binary each one runs, its timeout, memory and logging settings, its
//! environment (resolved only once the local values exist), and the SAM events declared on it
//! (schedules and SQS queues, read into the schedules and mappings of the template).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_yaml_ng::{Mapping, Value as Yaml};

use super::queues::reports_failures;
use super::{QueueMapping, Resource, ScheduleDef, ScheduleKind, Template};
use crate::intrinsic::{Context, NO_VALUE, ResolveError, ResourceLookup, yaml_key};

/// A Lambda function: the cargo binary that implements it, its settings and environment.
#[derive(Debug, Clone)]
pub struct Function {
    pub logical_id: String,
    /// The cargo binary (`Metadata.BuildProperties.Binary`): what cargo lambda watch runs.
    pub binary: String,
    /// `FunctionName`, resolved (what `!Ref` of the function gives).
    pub name: String,
    pub timeout: Duration,
    /// `MemorySize` in MB (Lambda's default 128).
    pub memory_mb: u64,
    /// `LoggingConfig.LogFormat` (`JSON` or `Text`), what Lambda passes on as
    /// `AWS_LAMBDA_LOG_FORMAT`.
    pub log_format: Option<String>,
    /// `LoggingConfig.ApplicationLogLevel`, passed on as `AWS_LAMBDA_LOG_LEVEL`.
    pub log_level: Option<String>,
    /// `Environment.Variables` (globals merged in), unresolved: values may name queues whose
    /// local URLs exist only once the emulator has them.
    environment: BTreeMap<String, Yaml>,
}

impl Template {
    pub(super) fn add_function(
        &mut self,
        r: &Resource<'_>,
        globals: Option<&Mapping>,
        ids: &BTreeMap<String, String>,
    ) -> anyhow::Result<()> {
        let binary = r
            .metadata
            .and_then(|m| m.get("BuildProperties"))
            .and_then(|b| b.get("Binary"))
            .and_then(Yaml::as_str)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "Resources.{}.Metadata.BuildProperties.Binary: missing; the local stack runs \
                     the cargo binary named there",
                    r.id
                )
            })?;
        // SAM Globals: a scalar the function sets wins, a mapping is merged key by key.
        let setting = |key: &str| r.get(key).or_else(|| globals.and_then(|g| g.get(key)));
        let logging = |key: &str| {
            [
                r.get("LoggingConfig"),
                globals.and_then(|g| g.get("LoggingConfig")),
            ]
            .into_iter()
            .flatten()
            .find_map(|config| config.get(key))
        };
        let timeout = self.number(ids, setting("Timeout"), &r.path("Timeout"), 3)?;
        let memory_mb = self.number(ids, setting("MemorySize"), &r.path("MemorySize"), 128)?;
        let log_format = self.string(
            ids,
            logging("LogFormat"),
            &r.path("LoggingConfig.LogFormat"),
        )?;
        let log_level = self.string(
            ids,
            logging("ApplicationLogLevel"),
            &r.path("LoggingConfig.ApplicationLogLevel"),
        )?;
        let name = self.string(ids, r.get("FunctionName"), &r.path("FunctionName"))?;
        let mut environment = BTreeMap::new();
        for source in [globals, Some(r.properties)].into_iter().flatten() {
            if let Some(vars) = source
                .get("Environment")
                .and_then(|e| e.get("Variables"))
                .and_then(Yaml::as_mapping)
            {
                for (k, v) in vars {
                    environment.insert(yaml_key(k, &r.path("Environment.Variables"))?, v.clone());
                }
            }
        }
        // SAM event sources on the function itself.
        if let Some(events) = r.get("Events").and_then(Yaml::as_mapping) {
            for (key, event) in events {
                let event_id = yaml_key(key, &r.path("Events"))?;
                self.add_sam_event(r.id, &event_id, event, ids)?;
            }
        }
        self.functions.insert(
            r.id.to_owned(),
            Function {
                logical_id: r.id.to_owned(),
                binary: binary.to_owned(),
                name: self.physical_name(name, r.id),
                timeout: Duration::from_secs(timeout),
                memory_mb,
                log_format,
                log_level,
                environment,
            },
        );
        Ok(())
    }

    fn add_sam_event(
        &mut self,
        function: &str,
        event_id: &str,
        event: &Yaml,
        ids: &BTreeMap<String, String>,
    ) -> anyhow::Result<()> {
        let path = format!("Resources.{function}.Properties.Events.{event_id}");
        let kind = event.get("Type").and_then(Yaml::as_str).unwrap_or_default();
        let props = event.get("Properties");
        let prop = |name: &str| props.and_then(|p| p.get(name));
        match kind {
            "Schedule" | "ScheduleV2" => {
                let expr_key = if kind == "Schedule" {
                    "Schedule"
                } else {
                    "ScheduleExpression"
                };
                let expression = self
                    .string(
                        ids,
                        prop(expr_key),
                        &format!("{path}.Properties.{expr_key}"),
                    )?
                    .ok_or_else(|| anyhow::anyhow!("{path}.Properties.{expr_key}: missing"))?;
                if !self.enabled(ids, prop("Enabled"), prop("State"), &path)? {
                    return Ok(());
                }
                let input = self.input(ids, prop("Input"), &format!("{path}.Properties.Input"))?;
                if prop("ScheduleExpressionTimezone").is_some() {
                    self.warnings.push(format!(
                        "{path}: ScheduleExpressionTimezone is ignored locally; the schedule runs in UTC"
                    ));
                }
                self.schedules.push(ScheduleDef {
                    id: format!("{function}.{event_id}"),
                    name: format!("{}-{function}-{event_id}", self.stack_name),
                    function: function.to_owned(),
                    expression,
                    input,
                    kind: if kind == "Schedule" {
                        ScheduleKind::Rule
                    } else {
                        ScheduleKind::Scheduler
                    },
                });
            }
            "SQS" => {
                let queue = self.reference(
                    ids,
                    prop("Queue"),
                    &format!("{path}.Properties.Queue"),
                    &["AWS::SQS::Queue"],
                )?;
                if !self.enabled(ids, prop("Enabled"), None, &path)? {
                    return Ok(());
                }
                let mapping = QueueMapping {
                    logical_id: format!("{function}.{event_id}"),
                    function: function.to_owned(),
                    queue,
                    batch_size: self.number(
                        ids,
                        prop("BatchSize"),
                        &format!("{path}.Properties.BatchSize"),
                        10,
                    )? as usize,
                    batching_window: Duration::from_secs(self.number(
                        ids,
                        prop("MaximumBatchingWindowInSeconds"),
                        &format!("{path}.Properties.MaximumBatchingWindowInSeconds"),
                        0,
                    )?),
                    report_batch_item_failures: self
                        .json(ids, prop("FunctionResponseTypes"), &path)?
                        .is_some_and(|v| reports_failures(&v)),
                    max_concurrency: None,
                };
                self.mappings.push(mapping);
            }
            other => self.warnings.push(format!(
                "{path}: SAM event type {other:?} is not emulated locally"
            )),
        }
        Ok(())
    }

    /// The function with logical id `id`.
    pub fn function(&self, id: &str) -> Option<&Function> {
        self.functions.get(id)
    }

    /// The function that runs the cargo binary `binary`.
    pub fn function_running(&self, binary: &str) -> Option<&Function> {
        self.functions.values().find(|f| f.binary == binary)
    }

    /// A function's environment with every value resolved against `resources` (local
    /// physical values); the first variable that cannot be resolved is the error.
    pub fn environment(
        &self,
        function: &Function,
        resources: &dyn ResourceLookup,
    ) -> Result<BTreeMap<String, String>, ResolveError> {
        self.variables(function, resources)
            .into_iter()
            .map(|(name, value)| value.map(|v| (name, v)))
            .collect()
    }

    /// Each environment variable of `function` (Globals merged in) resolved on its own against
    /// `resources`, so that one that cannot be resolved hides none of the others (the
    /// cold-start harness gives such a variable a stand-in). Variables that resolve to
    /// `AWS::NoValue` are left out, as CloudFormation leaves them out.
    pub fn variables(
        &self,
        function: &Function,
        resources: &dyn ResourceLookup,
    ) -> Vec<(String, Result<String, ResolveError>)> {
        let ctx = Context {
            parameters: &self.parameters,
            conditions: &self.conditions,
            resources,
        };
        function
            .environment
            .iter()
            .filter_map(|(name, value)| {
                let path = format!(
                    "Resources.{}.Properties.Environment.Variables.{name}",
                    function.logical_id
                );
                match ctx.resolve_string(value, &path) {
                    Ok(v) if v == NO_VALUE => None,
                    resolved => Some((name.clone(), resolved)),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::template::tests::repo_template;

    /// Every function directory is a function of the template, so the stack runs them all.
    #[test]
    fn every_function_directory_is_a_local_function() {
        let t = repo_template();
        let binaries: BTreeSet<&str> = t.functions.values().map(|f| f.binary.as_str()).collect();
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../functions");
        for entry in std::fs::read_dir(dir).expect("functions/") {
            let name = entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned();
            assert!(
                binaries.contains(name.as_str()),
                "{name} is not in the template"
            );
        }
    }

    struct Local;
    impl ResourceLookup for Local {
        fn resource(&self, id: &str, attribute: Option<&str>) -> Option<String> {
            Some(format!("local:{id}:{}", attribute.unwrap_or("Ref")))
        }
    }

    #[test]
    fn environments_resolve_against_local_values() {
        let t = repo_template();
        let f = t
            .function_running("create-trigger")
            .expect("create-trigger");
        let env = t.environment(f, &Local).expect("resolves");
        assert_eq!(env["MAX_TRIGGERS_PER_TENANT"], "1000");
        assert_eq!(env["DB_HOST"], "local-DbProxyEndpoint");
        assert_eq!(env["DB_PORT"], "5432");
        if let Some(ingest) = t.function_running("ingest-events") {
            let env = t.environment(ingest, &Local).expect("resolves");
            assert_eq!(env["EVENTS_QUEUE_URL"], "local:EventsQueue:Ref");
        }
    }

    /// A template of one function `F` (binary `f`) with `properties`, after `head`.
    fn one_function(head: &str, properties: &str) -> Template {
        let text = format!(
            "{head}Resources:\n  F:\n    Type: AWS::Serverless::Function\n    Metadata: {{BuildProperties: {{Binary: f}}}}\n    Properties: {properties}\n"
        );
        Template::parse(&text, "s", &BTreeMap::new()).expect("template")
    }

    #[test]
    fn settings_merge_with_the_globals_as_sam_merges_them() {
        let t = repo_template();
        let f = t
            .function_running("create-trigger")
            .expect("create-trigger");
        assert_eq!(f.memory_mb, 512);
        assert_eq!(f.timeout, Duration::from_secs(10));
        // The function's LoggingConfig names only its log group; the format and level come
        // from Globals.
        assert_eq!(f.log_format.as_deref(), Some("JSON"));
        assert_eq!(f.log_level.as_deref(), Some("INFO"));

        let t = one_function(
            "Globals:\n  Function: {MemorySize: 256, Timeout: 7}\n",
            "{}",
        );
        let f = &t.functions["F"];
        assert_eq!((f.memory_mb, f.timeout), (256, Duration::from_secs(7)));
        assert_eq!(f.log_format, None);
    }

    #[test]
    fn one_unresolvable_variable_hides_none_of_the_others() {
        let t = one_function(
            "",
            "{Environment: {Variables: {A: \"1\", GONE: !Ref Nothing, NONE: !Ref AWS::NoValue}}}",
        );
        let f = &t.functions["F"];
        let no_resources = BTreeMap::new();
        let none = crate::intrinsic::LogicalIds(&no_resources);
        let vars = t.variables(f, &none);
        assert_eq!(vars.len(), 2, "{vars:?}");
        assert_eq!(vars[0], ("A".to_owned(), Ok("1".to_owned())));
        assert_eq!(vars[1].0, "GONE");
        assert!(vars[1].1.is_err());
        assert!(t.environment(f, &none).is_err());
    }
}
