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

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path as FsPath;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::Value as Json;
use serde_yaml_ng::{Mapping, Value as Yaml};

use super::intrinsic::{
    Context, LogicalIds, NO_VALUE, ResolveError, ResourceLookup, intrinsic, scalar_string, yaml_key,
};

/// The account id the local stack pretends to be (as moto does).
pub const ACCOUNT_ID: &str = "123456789012";
/// The region of the local stack.
pub const REGION: &str = "us-east-1";

/// A Lambda function: the cargo binary that implements it, its timeout and environment.
#[derive(Debug, Clone)]
pub struct Function {
    pub logical_id: String,
    /// The cargo binary (`Metadata.BuildProperties.Binary`): what cargo lambda watch runs.
    pub binary: String,
    /// `FunctionName`, resolved (what `!Ref` of the function gives).
    pub name: String,
    pub timeout: Duration,
    /// `Environment.Variables` (globals merged in), unresolved: values may name queues whose
    /// local URLs exist only once the emulator has them.
    environment: BTreeMap<String, Yaml>,
}

/// Which requests a route takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteMatch {
    /// `METHOD /path` (method `ANY` matches every method); path segments `{name}` and a last
    /// `{name+}` capture.
    Path { method: String, path: String },
    /// `$default`: whatever no other route takes.
    Default,
}

/// An HTTP API route and the function behind it.
#[derive(Debug, Clone)]
pub struct Route {
    pub route_key: String,
    pub matcher: RouteMatch,
    /// Logical id of the integration's function.
    pub function: String,
    /// `TimeoutInMillis` of the integration (API Gateway's default 30 s).
    pub timeout: Duration,
    /// Logical id of the REQUEST authorizer, when `AuthorizationType` is `CUSTOM`.
    pub authorizer: Option<String>,
}

/// Where an authorizer's identity comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentitySource {
    /// `$request.header.Name` (stored lower-case).
    Header(String),
    /// `$request.querystring.name`.
    Query(String),
}

/// A Lambda REQUEST authorizer.
#[derive(Debug, Clone)]
pub struct Authorizer {
    pub name: String,
    pub function: String,
    pub identity_sources: Vec<IdentitySource>,
    /// `AuthorizerResultTtlInSeconds` (0: no caching).
    pub ttl: Duration,
    /// `EnableSimpleResponses`: `{isAuthorized, context}` rather than an IAM policy.
    pub simple_responses: bool,
}

/// An SQS queue.
#[derive(Debug, Clone)]
pub struct QueueDef {
    pub logical_id: String,
    /// The local queue name: `QueueName`, else `<stack>-<LogicalId>`.
    pub name: String,
    /// SQS attributes to create it with (KMS settings left out: there is no KMS locally).
    pub attributes: BTreeMap<String, String>,
    /// The dead-letter queue's logical id and `maxReceiveCount`.
    pub redrive: Option<(String, u32)>,
    pub visibility_timeout: Duration,
}

/// An SQS event source mapping: which function consumes which queue, how.
#[derive(Debug, Clone)]
pub struct QueueMapping {
    pub logical_id: String,
    pub function: String,
    pub queue: String,
    pub batch_size: usize,
    pub batching_window: Duration,
    pub report_batch_item_failures: bool,
    pub max_concurrency: Option<u32>,
}

/// What starts a scheduled function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduleKind {
    /// An EventBridge rule (`AWS::Events::Rule`, SAM `Schedule`).
    Rule,
    /// EventBridge Scheduler (`AWS::Scheduler::Schedule`, SAM `ScheduleV2`).
    Scheduler,
}

/// A schedule that invokes a function.
#[derive(Debug, Clone)]
pub struct ScheduleDef {
    /// The resource's logical id, or `Function.EventName` for SAM events.
    pub id: String,
    pub name: String,
    pub function: String,
    /// `rate(...)`, `cron(...)` or `at(...)`.
    pub expression: String,
    /// The target's `Input` (JSON); `None` sends the service's default event.
    pub input: Option<Json>,
    pub kind: ScheduleKind,
}

/// A DynamoDB table.
#[derive(Debug, Clone)]
pub struct TableDef {
    pub logical_id: String,
    pub name: String,
    /// `(name, type)` pairs.
    pub attributes: Vec<(String, String)>,
    /// `(name, HASH|RANGE)` pairs.
    pub key_schema: Vec<(String, String)>,
    pub ttl_attribute: Option<String>,
}

/// An S3 bucket.
#[derive(Debug, Clone)]
pub struct BucketDef {
    pub logical_id: String,
    pub name: String,
    pub versioning: bool,
}

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
        let parameters = parameters(root, stack_name, overrides)?;
        let conditions = conditions(root, &parameters)?;
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

    fn add_function(
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
        let timeout = match r.get("Timeout") {
            Some(v) => Some(v),
            None => globals.and_then(|g| g.get("Timeout")),
        };
        let timeout = self.number(ids, timeout, &r.path("Timeout"), 3)?;
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

    fn add_queue(
        &mut self,
        r: &Resource<'_>,
        ids: &BTreeMap<String, String>,
    ) -> anyhow::Result<()> {
        let name = self.string(ids, r.get("QueueName"), &r.path("QueueName"))?;
        let mut attributes = BTreeMap::new();
        for (property, attribute) in [
            ("VisibilityTimeout", "VisibilityTimeout"),
            ("MessageRetentionPeriod", "MessageRetentionPeriod"),
            ("DelaySeconds", "DelaySeconds"),
            ("MaximumMessageSize", "MaximumMessageSize"),
            (
                "ReceiveMessageWaitTimeSeconds",
                "ReceiveMessageWaitTimeSeconds",
            ),
            ("FifoQueue", "FifoQueue"),
            ("ContentBasedDeduplication", "ContentBasedDeduplication"),
        ] {
            if let Some(value) = self.json(ids, r.get(property), &r.path(property))? {
                let text = scalar_string(&value).ok_or_else(|| {
                    ResolveError::new(&r.path(property), "must be a number or a boolean")
                })?;
                attributes.insert(attribute.to_owned(), text);
            }
        }
        let visibility = attributes
            .get("VisibilityTimeout")
            .map_or(Ok(30), |v| v.parse::<u64>())
            .map_err(|_| ResolveError::new(&r.path("VisibilityTimeout"), "must be a number"))?;
        let redrive = match r.get("RedrivePolicy") {
            None => None,
            Some(policy) => {
                let path = r.path("RedrivePolicy");
                let target = policy
                    .get("deadLetterTargetArn")
                    .ok_or_else(|| ResolveError::new(&path, "deadLetterTargetArn is missing"))?;
                let dlq = self.reference(
                    ids,
                    Some(target),
                    &format!("{path}.deadLetterTargetArn"),
                    &["AWS::SQS::Queue"],
                )?;
                let max = self.number(
                    ids,
                    policy.get("maxReceiveCount"),
                    &format!("{path}.maxReceiveCount"),
                    0,
                )?;
                if max == 0 {
                    return Err(
                        ResolveError::new(&path, "maxReceiveCount must be at least 1").into(),
                    );
                }
                Some((dlq, u32::try_from(max).unwrap_or(u32::MAX)))
            }
        };
        let mut name = self.physical_name(name, r.id);
        if attributes.get("FifoQueue").is_some_and(|v| v == "true") && !name.ends_with(".fifo") {
            name.push_str(".fifo");
        }
        self.queues.insert(
            r.id.to_owned(),
            QueueDef {
                logical_id: r.id.to_owned(),
                name,
                attributes,
                redrive,
                visibility_timeout: Duration::from_secs(visibility),
            },
        );
        Ok(())
    }

    fn add_table(
        &mut self,
        r: &Resource<'_>,
        ids: &BTreeMap<String, String>,
    ) -> anyhow::Result<()> {
        let name = self.string(ids, r.get("TableName"), &r.path("TableName"))?;
        let pairs = |property: &str, a: &str, b: &str| -> anyhow::Result<Vec<(String, String)>> {
            let value = self
                .json(ids, r.get(property), &r.path(property))?
                .ok_or_else(|| anyhow::anyhow!("{}: missing", r.path(property)))?;
            value
                .as_array()
                .ok_or_else(|| anyhow::anyhow!("{}: must be a list", r.path(property)))?
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let x = item.get(a).and_then(Json::as_str);
                    let y = item.get(b).and_then(Json::as_str);
                    x.zip(y)
                        .map(|(x, y)| (x.to_owned(), y.to_owned()))
                        .ok_or_else(|| {
                            anyhow::anyhow!("{}[{i}]: needs {a} and {b}", r.path(property))
                        })
                })
                .collect()
        };
        let attributes = pairs("AttributeDefinitions", "AttributeName", "AttributeType")?;
        let key_schema = pairs("KeySchema", "AttributeName", "KeyType")?;
        let ttl = self.json(
            ids,
            r.get("TimeToLiveSpecification"),
            &r.path("TimeToLiveSpecification"),
        )?;
        let ttl_attribute = ttl.as_ref().and_then(|t| {
            let on = t.get("Enabled").is_none_or(|e| e == true || e == "true");
            on.then(|| {
                t.get("AttributeName")
                    .and_then(Json::as_str)
                    .map(str::to_owned)
            })
            .flatten()
        });
        for unsupported in [
            "GlobalSecondaryIndexes",
            "LocalSecondaryIndexes",
            "StreamSpecification",
        ] {
            if r.get(unsupported).is_some() {
                self.warnings.push(format!(
                    "{}: {unsupported} is not created locally",
                    r.path(unsupported)
                ));
            }
        }
        self.tables.insert(
            r.id.to_owned(),
            TableDef {
                logical_id: r.id.to_owned(),
                name: self.physical_name(name, r.id),
                attributes,
                key_schema,
                ttl_attribute,
            },
        );
        Ok(())
    }

    fn add_bucket(
        &mut self,
        r: &Resource<'_>,
        ids: &BTreeMap<String, String>,
    ) -> anyhow::Result<()> {
        let name = self.string(ids, r.get("BucketName"), &r.path("BucketName"))?;
        let versioning = self
            .json(
                ids,
                r.get("VersioningConfiguration"),
                &r.path("VersioningConfiguration"),
            )?
            .and_then(|v| {
                v.get("Status")
                    .and_then(Json::as_str)
                    .map(|s| s == "Enabled")
            })
            .unwrap_or(false);
        // Bucket names are lower case; CloudFormation's generated names are too.
        let name = self.physical_name(name, r.id).to_ascii_lowercase();
        self.buckets.insert(
            r.id.to_owned(),
            BucketDef {
                logical_id: r.id.to_owned(),
                name,
                versioning,
            },
        );
        Ok(())
    }

    /// Integration logical id → (function logical id, timeout).
    fn integrations(
        &mut self,
        included: &[Resource<'_>],
        ids: &BTreeMap<String, String>,
    ) -> anyhow::Result<BTreeMap<String, (String, Duration)>> {
        let mut out = BTreeMap::new();
        for r in included
            .iter()
            .filter(|r| r.kind == "AWS::ApiGatewayV2::Integration")
        {
            let kind = self.string(ids, r.get("IntegrationType"), &r.path("IntegrationType"))?;
            if kind.as_deref() != Some("AWS_PROXY") {
                self.warnings.push(format!(
                    "{}: integration type {kind:?} is not emulated (only AWS_PROXY to a function)",
                    r.id
                ));
                continue;
            }
            self.require_payload_v2(r, ids, "PayloadFormatVersion")?;
            let function =
                self.function_of_uri(ids, r.get("IntegrationUri"), &r.path("IntegrationUri"))?;
            let timeout = self.number(
                ids,
                r.get("TimeoutInMillis"),
                &r.path("TimeoutInMillis"),
                30_000,
            )?;
            out.insert(r.id.to_owned(), (function, Duration::from_millis(timeout)));
        }
        Ok(out)
    }

    /// The payload format version in property `key` of `r` must be 2.0, the only one emulated
    /// (integrations and authorizers alike).
    fn require_payload_v2(
        &self,
        r: &Resource<'_>,
        ids: &BTreeMap<String, String>,
        key: &str,
    ) -> anyhow::Result<()> {
        let version = self.string(ids, r.get(key), &r.path(key))?;
        if version.as_deref() != Some("2.0") {
            anyhow::bail!(
                "{}: only payload format 2.0 is emulated, found {version:?}",
                r.path(key)
            );
        }
        Ok(())
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

    fn add_authorizer(
        &mut self,
        r: &Resource<'_>,
        ids: &BTreeMap<String, String>,
    ) -> anyhow::Result<()> {
        let kind = self.string(ids, r.get("AuthorizerType"), &r.path("AuthorizerType"))?;
        if kind.as_deref() != Some("REQUEST") {
            self.warnings.push(format!(
                "{}: {kind:?} authorizers are not emulated; routes using it answer 500",
                r.id
            ));
            return Ok(());
        }
        self.require_payload_v2(r, ids, "AuthorizerPayloadFormatVersion")?;
        let function =
            self.function_of_uri(ids, r.get("AuthorizerUri"), &r.path("AuthorizerUri"))?;
        let sources = self
            .json(ids, r.get("IdentitySource"), &r.path("IdentitySource"))?
            .unwrap_or(Json::Array(Vec::new()));
        let sources = sources
            .as_array()
            .ok_or_else(|| ResolveError::new(&r.path("IdentitySource"), "must be a list"))?
            .iter()
            .map(|s| {
                let s = s.as_str().unwrap_or_default();
                if let Some(h) = s.strip_prefix("$request.header.") {
                    Ok(IdentitySource::Header(h.to_ascii_lowercase()))
                } else if let Some(q) = s.strip_prefix("$request.querystring.") {
                    Ok(IdentitySource::Query(q.to_owned()))
                } else {
                    Err(ResolveError::new(
                        &r.path("IdentitySource"),
                        format!(
                            "{s:?}: only $request.header.* and $request.querystring.* are emulated"
                        ),
                    ))
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        let ttl = self.number(
            ids,
            r.get("AuthorizerResultTtlInSeconds"),
            &r.path("AuthorizerResultTtlInSeconds"),
            0,
        )?;
        let simple = self
            .json(
                ids,
                r.get("EnableSimpleResponses"),
                &r.path("EnableSimpleResponses"),
            )?
            .is_some_and(|v| v == true || v == "true");
        let name = self
            .string(ids, r.get("Name"), &r.path("Name"))?
            .unwrap_or_else(|| r.id.to_owned());
        self.authorizers.insert(
            r.id.to_owned(),
            Authorizer {
                name,
                function,
                identity_sources: sources,
                ttl: Duration::from_secs(ttl),
                simple_responses: simple,
            },
        );
        Ok(())
    }

    fn add_route(
        &mut self,
        r: &Resource<'_>,
        ids: &BTreeMap<String, String>,
        integrations: &BTreeMap<String, (String, Duration)>,
    ) -> anyhow::Result<()> {
        let route_key = self
            .string(ids, r.get("RouteKey"), &r.path("RouteKey"))?
            .ok_or_else(|| anyhow::anyhow!("{}: missing", r.path("RouteKey")))?;
        let matcher = parse_route_key(&route_key)
            .map_err(|reason| ResolveError::new(&r.path("RouteKey"), reason))?;
        let target = self
            .string(ids, r.get("Target"), &r.path("Target"))?
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "{}: missing (a route without a target answers nothing)",
                    r.path("Target")
                )
            })?;
        let integration = target.strip_prefix("integrations/").ok_or_else(|| {
            ResolveError::new(
                &r.path("Target"),
                format!("{target:?} is not integrations/<id>"),
            )
        })?;
        let Some((function, timeout)) = integrations.get(integration).cloned() else {
            self.warnings.push(format!(
                "{}: integration {integration} is not emulated; the route is left out",
                r.id
            ));
            return Ok(());
        };
        let auth = self
            .string(
                ids,
                r.get("AuthorizationType"),
                &r.path("AuthorizationType"),
            )?
            .unwrap_or_else(|| "NONE".to_owned());
        let authorizer = match auth.as_str() {
            "NONE" => None,
            "CUSTOM" => Some(self.reference(
                ids,
                r.get("AuthorizerId"),
                &r.path("AuthorizerId"),
                &["AWS::ApiGatewayV2::Authorizer"],
            )?),
            other => anyhow::bail!(
                "{}: authorization type {other} is not emulated locally (only NONE and CUSTOM)",
                r.path("AuthorizationType")
            ),
        };
        self.routes.push(Route {
            route_key,
            matcher,
            function,
            timeout,
            authorizer,
        });
        Ok(())
    }

    fn add_mapping(
        &mut self,
        r: &Resource<'_>,
        ids: &BTreeMap<String, String>,
    ) -> anyhow::Result<()> {
        let function = self.function_of_uri(ids, r.get("FunctionName"), &r.path("FunctionName"))?;
        let lookup = LogicalIds(ids);
        let source = r
            .get("EventSourceArn")
            .map(|v| {
                self.structural(&lookup)
                    .resolve_string(v, &r.path("EventSourceArn"))
            })
            .transpose()?;
        let queue = match source {
            Some(id) if ids.get(&id).is_some_and(|k| k == "AWS::SQS::Queue") => id,
            other => {
                self.warnings.push(format!(
                    "{}: event source {other:?} is not an SQS queue of this template; not emulated",
                    r.id
                ));
                return Ok(());
            }
        };
        if !self.enabled(
            ids,
            r.get("Enabled"),
            None,
            &format!("Resources.{}.Properties", r.id),
        )? {
            return Ok(());
        }
        let batch_size = self.number(ids, r.get("BatchSize"), &r.path("BatchSize"), 10)?;
        if batch_size == 0 {
            anyhow::bail!("{}: must be at least 1", r.path("BatchSize"));
        }
        let window = self.number(
            ids,
            r.get("MaximumBatchingWindowInSeconds"),
            &r.path("MaximumBatchingWindowInSeconds"),
            0,
        )?;
        let report = self
            .json(
                ids,
                r.get("FunctionResponseTypes"),
                &r.path("FunctionResponseTypes"),
            )?
            .is_some_and(|v| reports_failures(&v));
        let concurrency = self
            .json(ids, r.get("ScalingConfig"), &r.path("ScalingConfig"))?
            .and_then(|s| s.get("MaximumConcurrency").and_then(scalar_string))
            .and_then(|s| s.parse().ok());
        self.mappings.push(QueueMapping {
            logical_id: r.id.to_owned(),
            function,
            queue,
            batch_size: batch_size as usize,
            batching_window: Duration::from_secs(window),
            report_batch_item_failures: report,
            max_concurrency: concurrency,
        });
        Ok(())
    }

    fn add_rule(&mut self, r: &Resource<'_>, ids: &BTreeMap<String, String>) -> anyhow::Result<()> {
        let Some(expression) = self.string(
            ids,
            r.get("ScheduleExpression"),
            &r.path("ScheduleExpression"),
        )?
        else {
            return Ok(()); // an event-pattern rule: nothing to run on a clock
        };
        if !self.enabled(
            ids,
            None,
            r.get("State"),
            &format!("Resources.{}.Properties", r.id),
        )? {
            return Ok(());
        }
        let name = self
            .string(ids, r.get("Name"), &r.path("Name"))?
            .unwrap_or_else(|| format!("{}-{}", self.stack_name, r.id));
        let targets = r
            .get("Targets")
            .and_then(Yaml::as_sequence)
            .cloned()
            .unwrap_or_default();
        for (i, target) in targets.iter().enumerate() {
            let path = format!("{}[{i}]", r.path("Targets"));
            let Ok(function) = self.function_of_uri(ids, target.get("Arn"), &format!("{path}.Arn"))
            else {
                self.warnings.push(format!(
                    "{path}: target is not a function of this template; not emulated"
                ));
                continue;
            };
            if target.get("InputPath").is_some() || target.get("InputTransformer").is_some() {
                self.warnings.push(format!(
                    "{path}: InputPath/InputTransformer are not emulated; the default event is sent"
                ));
            }
            let input = self.input(ids, target.get("Input"), &format!("{path}.Input"))?;
            self.schedules.push(ScheduleDef {
                id: format!("{}[{i}]", r.id),
                name: name.clone(),
                function,
                expression: expression.clone(),
                input,
                kind: ScheduleKind::Rule,
            });
        }
        Ok(())
    }

    fn add_scheduler_schedule(
        &mut self,
        r: &Resource<'_>,
        ids: &BTreeMap<String, String>,
    ) -> anyhow::Result<()> {
        let expression = self
            .string(
                ids,
                r.get("ScheduleExpression"),
                &r.path("ScheduleExpression"),
            )?
            .ok_or_else(|| anyhow::anyhow!("{}: missing", r.path("ScheduleExpression")))?;
        if !self.enabled(
            ids,
            None,
            r.get("State"),
            &format!("Resources.{}.Properties", r.id),
        )? {
            return Ok(());
        }
        let target = r.get("Target");
        let path = r.path("Target");
        let Ok(function) = self.function_of_uri(
            ids,
            target.and_then(|t| t.get("Arn")),
            &format!("{path}.Arn"),
        ) else {
            self.warnings.push(format!(
                "{path}: target is not a function of this template; not emulated"
            ));
            return Ok(());
        };
        if r.get("ScheduleExpressionTimezone").is_some() {
            self.warnings.push(format!(
                "{}: ScheduleExpressionTimezone is ignored locally; the schedule runs in UTC",
                r.id
            ));
        }
        let input = self.input(
            ids,
            target.and_then(|t| t.get("Input")),
            &format!("{path}.Input"),
        )?;
        let name = self
            .string(ids, r.get("Name"), &r.path("Name"))?
            .unwrap_or_else(|| format!("{}-{}", self.stack_name, r.id));
        self.schedules.push(ScheduleDef {
            id: r.id.to_owned(),
            name,
            function,
            expression,
            input,
            kind: ScheduleKind::Scheduler,
        });
        Ok(())
    }

    fn check_references(&self) -> anyhow::Result<()> {
        // A route whose authorizer is not emulated (warned about) answers 500 at run time.
        let mut seen = BTreeSet::new();
        for route in &self.routes {
            if !seen.insert(route.route_key.clone()) {
                anyhow::bail!("route key {:?} is declared twice", route.route_key);
            }
        }
        Ok(())
    }

    /// The binaries of the functions that consume queues, once each.
    pub fn consumer_binaries(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .mappings
            .iter()
            .filter_map(|m| self.functions.get(&m.function))
            .map(|f| f.binary.clone())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// The function with logical id `id`.
    pub fn function(&self, id: &str) -> Option<&Function> {
        self.functions.get(id)
    }

    /// A function's environment with every value resolved against `resources` (local
    /// physical values).
    pub fn environment(
        &self,
        function: &Function,
        resources: &dyn ResourceLookup,
    ) -> Result<BTreeMap<String, String>, ResolveError> {
        let ctx = Context {
            parameters: &self.parameters,
            conditions: &self.conditions,
            resources,
        };
        let mut out = BTreeMap::new();
        for (name, value) in &function.environment {
            let path = format!(
                "Resources.{}.Properties.Environment.Variables.{name}",
                function.logical_id
            );
            let value = ctx.resolve_string(value, &path)?;
            if value != NO_VALUE {
                out.insert(name.clone(), value);
            }
        }
        Ok(out)
    }
}

fn reports_failures(value: &Json) -> bool {
    value
        .as_array()
        .is_some_and(|types| types.iter().any(|t| t == "ReportBatchItemFailures"))
}

/// Parses an HTTP API route key: `$default` or `METHOD /path`.
pub fn parse_route_key(key: &str) -> Result<RouteMatch, String> {
    if key == "$default" {
        return Ok(RouteMatch::Default);
    }
    let (method, path) = key
        .split_once(' ')
        .ok_or_else(|| format!("{key:?} is not `METHOD /path` or `$default`"))?;
    const METHODS: [&str; 8] = [
        "ANY", "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS",
    ];
    if !METHODS.contains(&method) {
        return Err(format!(
            "{method:?} is not an HTTP method API Gateway routes on"
        ));
    }
    if !path.starts_with('/') {
        return Err(format!("{path:?} must start with /"));
    }
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    for (i, segment) in segments.iter().enumerate() {
        if let Some(inner) = segment.strip_prefix('{') {
            let inner = inner
                .strip_suffix('}')
                .ok_or_else(|| format!("{segment:?}: a path variable is {{name}}"))?;
            if inner.ends_with('+') && i + 1 != segments.len() {
                return Err(format!(
                    "{segment:?}: a greedy variable must be the last segment"
                ));
            }
        }
    }
    Ok(RouteMatch::Path {
        method: method.to_owned(),
        path: path.to_owned(),
    })
}

/// Parameter values: `--parameter` values, else defaults, else a placeholder; plus pseudo
/// parameters.
fn parameters(
    root: &Mapping,
    stack_name: &str,
    overrides: &BTreeMap<String, String>,
) -> anyhow::Result<BTreeMap<String, Json>> {
    let mut out = BTreeMap::new();
    let declared = root.get("Parameters").and_then(Yaml::as_mapping);
    for (key, decl) in declared.into_iter().flatten() {
        let name = key
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("Parameters: a name is not a string"))?;
        let kind = decl.get("Type").and_then(Yaml::as_str).unwrap_or("String");
        let is_list = kind.starts_with("List<") || kind == "CommaDelimitedList";
        let raw = match overrides.get(name) {
            Some(v) => v.clone(),
            None => match decl.get("Default") {
                Some(Yaml::String(s)) => s.clone(),
                Some(Yaml::Number(n)) => n.to_string(),
                Some(Yaml::Bool(b)) => b.to_string(),
                Some(Yaml::Sequence(items)) => items
                    .iter()
                    .filter_map(|i| i.as_str().map(str::to_owned))
                    .collect::<Vec<_>>()
                    .join(","),
                _ => format!("local-{name}"),
            },
        };
        let value = if is_list {
            Json::Array(if raw.is_empty() {
                vec![Json::String(String::new())]
            } else {
                raw.split(',')
                    .map(|s| Json::String(s.trim().to_owned()))
                    .collect()
            })
        } else {
            Json::String(raw)
        };
        out.insert(name.to_owned(), value);
    }
    for name in overrides.keys() {
        if !out.contains_key(name) {
            anyhow::bail!("--parameter {name}: template.yaml declares no such parameter");
        }
    }
    for (name, value) in [
        ("AWS::Region", REGION),
        ("AWS::AccountId", ACCOUNT_ID),
        ("AWS::StackName", stack_name),
        ("AWS::Partition", "aws"),
        ("AWS::URLSuffix", "amazonaws.com"),
        (
            "AWS::StackId",
            "arn:aws:cloudformation:us-east-1:123456789012:stack/local/0",
        ),
    ] {
        out.insert(name.to_owned(), Json::String(value.to_owned()));
    }
    Ok(out)
}

/// Evaluates `Conditions`, which may refer to one another.
fn conditions(
    root: &Mapping,
    parameters: &BTreeMap<String, Json>,
) -> anyhow::Result<BTreeMap<String, bool>> {
    let declared: Vec<(String, &Yaml)> = root
        .get("Conditions")
        .and_then(Yaml::as_mapping)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| k.as_str().map(|k| (k.to_owned(), v)))
        .collect();
    let mut out = BTreeMap::new();
    let no_resources = BTreeMap::new();
    let lookup = LogicalIds(&no_resources);
    // Each pass settles at least one condition unless they refer to each other in a cycle.
    for _ in 0..=declared.len() {
        let mut progressed = false;
        for (name, expr) in &declared {
            if out.contains_key(name) {
                continue;
            }
            let ctx = Context {
                parameters,
                conditions: &out,
                resources: &lookup,
            };
            let path = format!("Conditions.{name}");
            let (f, arg) = intrinsic(expr)
                .ok_or_else(|| anyhow::anyhow!("{path}: not a condition function"))?;
            match ctx.condition((&f, arg), &path) {
                Ok(v) => {
                    out.insert(name.clone(), v);
                    progressed = true;
                }
                Err(e) if e.reason.starts_with("no condition named") => {}
                Err(e) => return Err(e.into()),
            }
        }
        if !progressed {
            break;
        }
    }
    if let Some((name, _)) = declared.iter().find(|(n, _)| !out.contains_key(n)) {
        anyhow::bail!("Conditions.{name}: refers to a condition that is missing or circular");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn repo_template() -> Template {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
        Template::load(FsPath::new(path), "triggeriq-local", &BTreeMap::new())
            .expect("template.yaml loads")
    }

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

    #[test]
    fn routes_follow_integrations_to_functions_behind_the_api_key_authorizer() {
        let t = repo_template();
        let route = t
            .routes
            .iter()
            .find(|r| r.route_key == "POST /v1/triggers")
            .expect("POST /v1/triggers");
        assert_eq!(t.functions[&route.function].binary, "create-trigger");
        assert_eq!(route.timeout, Duration::from_millis(11_000));
        let authorizer = &t.authorizers[route.authorizer.as_deref().expect("an authorizer")];
        assert_eq!(
            t.functions[&authorizer.function].binary,
            "authorize-request"
        );
        assert_eq!(
            authorizer.identity_sources,
            vec![IdentitySource::Header("authorization".into())]
        );
        assert_eq!(authorizer.ttl, Duration::from_secs(300));
        assert!(authorizer.simple_responses);
        // The Cognito authorizer's condition is false locally: it is not there at all.
        assert!(t.authorizers.values().all(|a| a.name != "cognito-jwt"));
        assert!(t.routes.iter().all(|r| r.authorizer.is_some()));
    }

    #[test]
    fn queues_keep_their_redrive_policies_and_mappings_their_batching() {
        let t = repo_template();
        for mapping in &t.mappings {
            let queue = &t.queues[&mapping.queue];
            let (dlq, max) = queue
                .redrive
                .as_ref()
                .expect("every consumed queue has a DLQ");
            assert!(t.queues.contains_key(dlq));
            assert!(*max >= 1);
            assert!(mapping.report_batch_item_failures, "{}", mapping.logical_id);
        }
        let record = t
            .mappings
            .iter()
            .find(|m| t.functions[&m.function].binary == "record-deliveries")
            .expect("record-deliveries consumes a queue");
        assert_eq!(record.batch_size, 50);
        assert_eq!(record.batching_window, Duration::from_secs(2));
        assert_eq!(record.max_concurrency, Some(5));
        let events = &t.queues["EventsQueue"];
        assert_eq!(events.name, "triggeriq-local-EventsQueue");
        assert_eq!(events.attributes["VisibilityTimeout"], "360");
        assert!(!events.attributes.contains_key("KmsMasterKeyId"));
        assert_eq!(events.redrive, Some(("EventsDeadLetterQueue".into(), 5)));
    }

    #[test]
    fn queue_consumers_are_the_mapped_functions() {
        let t = repo_template();
        assert_eq!(
            t.consumer_binaries(),
            vec!["deliver-webhooks", "evaluate-events", "record-deliveries"]
        );
    }

    #[test]
    fn the_table_and_bucket_are_read_as_declared() {
        let t = repo_template();
        let table = t.tables.values().next().expect("a table");
        assert_eq!(
            table.key_schema,
            vec![("pk".into(), "HASH".into()), ("sk".into(), "RANGE".into())]
        );
        assert_eq!(table.ttl_attribute.as_deref(), Some("expires_at"));
        let bucket = t.buckets.values().next().expect("a bucket");
        assert_eq!(bucket.name, "triggeriq-local-bucket");
        assert!(bucket.versioning);
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
            .functions
            .values()
            .find(|f| f.binary == "create-trigger")
            .expect("create-trigger");
        let env = t.environment(f, &Local).expect("resolves");
        assert_eq!(env["MAX_TRIGGERS_PER_TENANT"], "1000");
        assert_eq!(env["DB_HOST"], "local-DbProxyEndpoint");
        assert_eq!(env["DB_PORT"], "5432");
        if let Some(ingest) = t.functions.values().find(|f| f.binary == "ingest-events") {
            let env = t.environment(ingest, &Local).expect("resolves");
            assert_eq!(env["EVENTS_QUEUE_URL"], "local:EventsQueue:Ref");
        }
    }

    const SMALL: &str = r#"
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
    fn schedules_come_from_sam_events_rules_and_scheduler_resources() {
        let t = Template::parse(SMALL, "s", &BTreeMap::new()).expect("parses");
        let mut got: Vec<(String, String, Option<Json>)> = t
            .schedules
            .iter()
            .map(|s| (s.id.clone(), s.expression.clone(), s.input.clone()))
            .collect();
        got.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            got,
            vec![
                (
                    "Fn.Every".into(),
                    "rate(5 minutes)".into(),
                    Some(serde_json::json!({"a": 1}))
                ),
                ("Rule[0]".into(), "cron(0/15 * * * ? *)".into(), None),
            ]
        );
        let on = BTreeMap::from([("Flag".to_owned(), "yes".to_owned())]);
        let t = Template::parse(SMALL, "s", &on).expect("parses");
        let ids: BTreeSet<&str> = t.schedules.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, BTreeSet::from(["Fn.Every", "Skipped"]));
    }

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

    #[test]
    fn route_keys_parse_like_api_gateway() {
        assert_eq!(parse_route_key("$default"), Ok(RouteMatch::Default));
        assert!(parse_route_key("GET /v1/{id}").is_ok());
        assert!(parse_route_key("ANY /{proxy+}").is_ok());
        assert!(parse_route_key("GET /{proxy+}/x").is_err());
        assert!(parse_route_key("GET v1").is_err());
        assert!(parse_route_key("GET /{id").is_err());
    }
}
