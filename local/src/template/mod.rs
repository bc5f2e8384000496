//! template.yaml as the local stack reads it: functions and their environment, HTTP API
//! routes and authorizers, SQS queues and the mappings that feed functions, schedules, the
//! DynamoDB table and the S3 bucket.
//!
//! template.yaml is the single source of truth: nothing here names a function, a route or a
//! queue of TriggerIQ. Parameters take their defaults (or `--parameter` values); a parameter
//! without either gets a placeholder, since locally DATABASE_URL and the emulator replace the
//! values such parameters carry in AWS. Conditions are evaluated from those values, so the
//! Cognito branch is off unless asked for. Resources whose `Condition` is false are left out,
//! as CloudFormation would. Resources the local stack does not emulate are listed in
//! [`Template::warnings`] when they would change behaviour, and otherwise ignored.
//!
//! One file per resource family: [`functions`], [`api`] (routes and authorizers), [`queues`]
//! (queues and event source mappings), [`schedules`], [`storage`] (tables and buckets), and
//! [`parameters`] (parameters and conditions). This file reads the resources and hands each to
//! its family, and holds what they share: resolving properties and naming resources.

mod api;
mod functions;
mod parameters;
mod queues;
mod schedules;
mod storage;

use std::collections::BTreeMap;
use std::path::Path as FsPath;

use anyhow::Context as _;
use serde_json::Value as Json;
use serde_yaml_ng::{Mapping, Value as Yaml};

pub use self::api::{Authorizer, IdentitySource, JwtConfig, Route, RouteMatch, parse_route_key};
pub use self::functions::Function;
pub use self::queues::{QueueDef, QueueMapping};
pub use self::schedules::{ScheduleDef, ScheduleKind};
pub use self::storage::{BucketDef, TableDef};

/// The local `SigningKeyArn`: an alias the local stack makes in moto (KMS takes an alias
/// wherever it takes a key id).
pub const SIGNING_KEY_ALIAS: &str = "alias/triggeriq-local-signing-secrets";
use crate::intrinsic::{Context, LogicalIds, NO_VALUE, ResolveError, scalar_string};

/// The account id the local stack pretends to be (as moto does).
pub const ACCOUNT_ID: &str = "123456789012";
/// The region of the local stack.
pub const REGION: &str = "us-east-1";

/// Everything the local stack takes from template.yaml.
#[derive(Debug)]
pub struct Template {
    pub stack_name: String,
    pub functions: BTreeMap<String, Function>,
    pub routes: Vec<Route>,
    pub authorizers: BTreeMap<String, Authorizer>,
    pub queues: BTreeMap<String, QueueDef>,
    pub mappings: Vec<QueueMapping>,
    pub schedules: Vec<ScheduleDef>,
    pub tables: BTreeMap<String, TableDef>,
    pub buckets: BTreeMap<String, BucketDef>,
    /// Things in the template that behave differently (or not at all) locally.
    pub warnings: Vec<String>,
    parameters: BTreeMap<String, Json>,
    conditions: BTreeMap<String, bool>,
}

/// One resource as written.
struct Resource<'a> {
    id: &'a str,
    kind: &'a str,
    properties: &'a Mapping,
    metadata: Option<&'a Mapping>,
}

impl<'a> Resource<'a> {
    fn path(&self, property: &str) -> String {
        format!("Resources.{}.Properties.{property}", self.id)
    }

    fn get(&self, property: &str) -> Option<&'a Yaml> {
        self.properties.get(property)
    }
}

impl Template {
    /// Reads and interprets the template at `path`.
    /// A parameter's value (as given, defaulted or made up locally), when it is a string.
    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.parameters.get(name).and_then(Json::as_str)
    }

    pub fn load(
        path: &FsPath,
        stack_name: &str,
        overrides: &BTreeMap<String, String>,
    ) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        Self::parse(&text, stack_name, overrides)
            .with_context(|| format!("{} cannot be run locally", path.display()))
    }

    /// Interprets template text.
    pub fn parse(
        text: &str,
        stack_name: &str,
        overrides: &BTreeMap<String, String>,
    ) -> anyhow::Result<Self> {
        let doc: Yaml = serde_yaml_ng::from_str(text).context("not valid YAML")?;
        let root = doc
            .as_mapping()
            .ok_or_else(|| anyhow::anyhow!("the document is not a mapping"))?;
        let parameters = parameters::parameters(root, stack_name, overrides)?;
        let conditions = parameters::conditions(root, &parameters)?;
        let mut template = Template {
            stack_name: stack_name.to_owned(),
            functions: BTreeMap::new(),
            routes: Vec::new(),
            authorizers: BTreeMap::new(),
            queues: BTreeMap::new(),
            mappings: Vec::new(),
            schedules: Vec::new(),
            tables: BTreeMap::new(),
            buckets: BTreeMap::new(),
            warnings: Vec::new(),
            parameters,
            conditions,
        };

        let resources = root
            .get("Resources")
            .and_then(Yaml::as_mapping)
            .ok_or_else(|| anyhow::anyhow!("Resources: missing or not a mapping"))?;
        let mut included = Vec::new();
        for (key, value) in resources {
            let id = key
                .as_str()
                .ok_or_else(|| anyhow::anyhow!("Resources: a logical id is not a string"))?;
            let body = value
                .as_mapping()
                .ok_or_else(|| anyhow::anyhow!("Resources.{id}: not a mapping"))?;
            if let Some(condition) = body.get("Condition").and_then(Yaml::as_str) {
                let holds = template.conditions.get(condition).copied().ok_or_else(|| {
                    anyhow::anyhow!("Resources.{id}.Condition: no condition named {condition}")
                })?;
                if !holds {
                    continue;
                }
            }
            let kind = body
                .get("Type")
                .and_then(Yaml::as_str)
                .ok_or_else(|| anyhow::anyhow!("Resources.{id}.Type: missing"))?;
            static EMPTY: std::sync::OnceLock<Mapping> = std::sync::OnceLock::new();
            let properties = match body.get("Properties") {
                Some(p) => p
                    .as_mapping()
                    .ok_or_else(|| anyhow::anyhow!("Resources.{id}.Properties: not a mapping"))?,
                None => EMPTY.get_or_init(Mapping::new),
            };
            included.push(Resource {
                id,
                kind,
                properties,
                metadata: body.get("Metadata").and_then(Yaml::as_mapping),
            });
        }
        let ids: BTreeMap<String, String> = included
            .iter()
            .map(|r| (r.id.to_owned(), r.kind.to_owned()))
            .collect();
        let globals = root
            .get("Globals")
            .and_then(|g| g.get("Function"))
            .and_then(Yaml::as_mapping);

        // Functions and the things that only need names first; then what refers to them.
        for r in &included {
            match r.kind {
                "AWS::Serverless::Function" => template.add_function(r, globals, &ids)?,
                "AWS::Lambda::Function" => template.warnings.push(format!(
                    "{}: plain AWS::Lambda::Function is not run locally (no cargo binary)",
                    r.id
                )),
                "AWS::SQS::Queue" => template.add_queue(r, &ids)?,
                "AWS::DynamoDB::Table" => template.add_table(r, &ids)?,
                "AWS::S3::Bucket" => template.add_bucket(r, &ids)?,
                _ => {}
            }
        }
        let integrations = template.integrations(&included, &ids)?;
        for r in &included {
            match r.kind {
                "AWS::ApiGatewayV2::Authorizer" => template.add_authorizer(r, &ids)?,
                "AWS::Lambda::EventSourceMapping" => template.add_mapping(r, &ids)?,
                "AWS::Events::Rule" => template.add_rule(r, &ids)?,
                "AWS::Scheduler::Schedule" => template.add_scheduler_schedule(r, &ids)?,
                "AWS::Serverless::HttpApi" | "AWS::Serverless::Api" => {
                    template.warnings.push(format!(
                        "{}: SAM {} is not emulated; declare AWS::ApiGatewayV2 routes",
                        r.id, r.kind
                    ))
                }
                _ => {}
            }
        }
        for r in &included {
            if r.kind == "AWS::ApiGatewayV2::Route" {
                template.add_route(r, &ids, &integrations)?;
            }
        }
        template.check_references()?;
        Ok(template)
    }

    fn structural<'a>(&'a self, ids: &'a LogicalIds<'a>) -> Context<'a> {
        Context {
            parameters: &self.parameters,
            conditions: &self.conditions,
            resources: ids,
        }
    }

    /// Resolves a property to a logical id of a resource of one of `kinds`.
    fn reference(
        &self,
        ids: &BTreeMap<String, String>,
        value: Option<&Yaml>,
        path: &str,
        kinds: &[&str],
    ) -> Result<String, ResolveError> {
        let value = value.ok_or_else(|| ResolveError::new(path, "missing"))?;
        let lookup = LogicalIds(ids);
        let resolved = self.structural(&lookup).resolve_string(value, path)?;
        match ids.get(&resolved) {
            Some(kind) if kinds.contains(&kind.as_str()) => Ok(resolved),
            Some(kind) => Err(ResolveError::new(
                path,
                format!("{resolved} is a {kind}, expected {}", kinds.join(" or ")),
            )),
            None => Err(ResolveError::new(
                path,
                format!(
                    "{resolved:?} is not a resource of this template (the local stack follows !Ref and !GetAtt only)"
                ),
            )),
        }
    }

    fn number(
        &self,
        ids: &BTreeMap<String, String>,
        value: Option<&Yaml>,
        path: &str,
        default: u64,
    ) -> Result<u64, ResolveError> {
        let Some(value) = value else {
            return Ok(default);
        };
        let lookup = LogicalIds(ids);
        let resolved = self.structural(&lookup).resolve(value, path)?;
        scalar_string(&resolved)
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| ResolveError::new(path, "must be a non-negative whole number"))
    }

    fn string(
        &self,
        ids: &BTreeMap<String, String>,
        value: Option<&Yaml>,
        path: &str,
    ) -> Result<Option<String>, ResolveError> {
        let Some(value) = value else {
            return Ok(None);
        };
        let lookup = LogicalIds(ids);
        let s = self.structural(&lookup).resolve_string(value, path)?;
        Ok((s != NO_VALUE).then_some(s))
    }

    fn json(
        &self,
        ids: &BTreeMap<String, String>,
        value: Option<&Yaml>,
        path: &str,
    ) -> Result<Option<Json>, ResolveError> {
        let Some(value) = value else {
            return Ok(None);
        };
        let lookup = LogicalIds(ids);
        let v = self.structural(&lookup).resolve(value, path)?;
        Ok((v != Json::String(NO_VALUE.to_owned())).then_some(v))
    }

    fn physical_name(&self, explicit: Option<String>, id: &str) -> String {
        explicit.unwrap_or_else(|| format!("{}-{id}", self.stack_name))
    }

    fn enabled(
        &self,
        ids: &BTreeMap<String, String>,
        enabled: Option<&Yaml>,
        state: Option<&Yaml>,
        path: &str,
    ) -> Result<bool, ResolveError> {
        if let Some(v) = self.json(ids, enabled, &format!("{path}.Enabled"))? {
            if v == Json::Bool(false) || v == "false" {
                return Ok(false);
            }
        }
        if let Some(state) = self.string(ids, state, &format!("{path}.State"))? {
            return Ok(!state.eq_ignore_ascii_case("DISABLED"));
        }
        Ok(true)
    }

    /// A target's `Input`: JSON text in the template, or a structure.
    fn input(
        &self,
        ids: &BTreeMap<String, String>,
        value: Option<&Yaml>,
        path: &str,
    ) -> Result<Option<Json>, ResolveError> {
        match self.json(ids, value, path)? {
            Some(Json::String(text)) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| ResolveError::new(path, format!("is not JSON: {e}"))),
            other => Ok(other),
        }
    }

    /// A function named by `!GetAtt F.Arn`, `!Ref F`, or an API Gateway invocation URI
    /// (`arn:...:lambda:path/2015-03-31/functions/${F.Arn}/invocations`).
    fn function_of_uri(
        &self,
        ids: &BTreeMap<String, String>,
        value: Option<&Yaml>,
        path: &str,
    ) -> Result<String, ResolveError> {
        let value = value.ok_or_else(|| ResolveError::new(path, "missing"))?;
        let lookup = LogicalIds(ids);
        let mut resolved = self.structural(&lookup).resolve_string(value, path)?;
        if let Some((_, rest)) = resolved.split_once("/functions/") {
            resolved = rest.trim_end_matches("/invocations").to_owned();
        }
        match ids.get(&resolved).map(String::as_str) {
            Some("AWS::Serverless::Function") => Ok(resolved),
            _ => Err(ResolveError::new(
                path,
                format!("{resolved:?} is not a function of this template"),
            )),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The repository's template.yaml, read as `make dev` reads it.
    pub(crate) fn repo_template() -> Template {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
        Template::load(FsPath::new(path), "triggeriq-local", &BTreeMap::new())
            .expect("template.yaml loads")
    }

    pub(crate) const SMALL: &str = r#"
Parameters:
  Flag: {Type: String, Default: ""}
Conditions:
  On: !Equals [!Ref Flag, "yes"]
  Off: !Not [!Condition On]
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Metadata: {BuildProperties: {Binary: tick}}
    Properties:
      Events:
        Every:
          Type: ScheduleV2
          Properties: {ScheduleExpression: rate(5 minutes), Input: '{"a": 1}'}
        Nightly:
          Type: Schedule
          Properties: {Schedule: "cron(0 3 * * ? *)", Enabled: false}
  Rule:
    Type: AWS::Events::Rule
    Condition: Off
    Properties:
      ScheduleExpression: cron(0/15 * * * ? *)
      Targets: [{Arn: !GetAtt Fn.Arn, Id: t}]
  Skipped:
    Type: AWS::Scheduler::Schedule
    Condition: On
    Properties:
      ScheduleExpression: rate(1 minute)
      Target: {Arn: !GetAtt Fn.Arn, RoleArn: x}
"#;

    #[test]
    fn bad_templates_name_the_place_and_the_reason() {
        let no_binary =
            "Resources:\n  F:\n    Type: AWS::Serverless::Function\n    Properties: {}\n";
        let err = Template::parse(no_binary, "s", &BTreeMap::new()).unwrap_err();
        assert!(
            format!("{err:#}").contains("Resources.F.Metadata.BuildProperties.Binary"),
            "{err:#}"
        );

        let bad_route = format!(
            "{SMALL}  R:\n    Type: AWS::ApiGatewayV2::Route\n    Properties: {{RouteKey: 'FETCH /x', Target: integrations/I}}\n"
        );
        let err = Template::parse(&bad_route, "s", &BTreeMap::new()).unwrap_err();
        assert!(
            format!("{err:#}").contains("Resources.R.Properties.RouteKey"),
            "{err:#}"
        );

        let err = Template::parse(SMALL, "s", &BTreeMap::from([("Nope".into(), "1".into())]))
            .unwrap_err();
        assert!(format!("{err:#}").contains("Nope"), "{err:#}");

        let dangling = "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties:\n      RedrivePolicy: {deadLetterTargetArn: !GetAtt Gone.Arn, maxReceiveCount: 3}\n";
        let err = Template::parse(dangling, "s", &BTreeMap::new()).unwrap_err();
        assert!(
            format!("{err:#}").contains("Resources.Q.Properties.RedrivePolicy.deadLetterTargetArn"),
            "{err:#}"
        );
    }
}
