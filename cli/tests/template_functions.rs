//! `template.yaml` and `functions/` must describe the same Lambda functions.
//!
//! Every `functions/<name>/` crate needs exactly one `AWS::Serverless::Function` that SAM builds
//! from it (`CodeUri: .`, `Metadata.BuildMethod: rust-cargolambda`,
//! `Metadata.BuildProperties.Binary: <name>`), and every such function needs its crate. A
//! function also needs its `Errors` and `Throttles` alarms: a function nobody hears fail is
//! almost as bad as a missing one. The check lists every disagreement by name, so one run says
//! everything that has to change.
//!
//! Least privilege on the shared DynamoDB table: every statement of a function's policies that
//! allows DynamoDB actions on the table is limited to the item prefixes the function uses
//! (`dynamodb:LeadingKeys`), so deliver-webhooks, which talks to tenant-chosen hosts, cannot
//! touch idempotency claims and ingest cannot read signing secrets.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use serde_yaml_ng::Value;

/// The alarms each function must have, by CloudWatch metric name.
const REQUIRED_ALARMS: [&str; 2] = ["Errors", "Throttles"];

#[test]
fn template_declares_exactly_the_functions_in_the_functions_directory() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("cli/ sits inside the workspace root");
    if let Err(problems) = check(root) {
        panic!(
            "template.yaml and functions/ disagree:\n  - {}",
            problems.join("\n  - ")
        );
    }
}

#[test]
fn a_function_directory_without_a_template_function_is_reported_by_name() {
    let fixture = Fixture::new("missing", &["ingest-events", "get-event"]);
    fixture.template(&[function_block("IngestEvents", "ingest-events")]);
    let problems = check(&fixture.root).expect_err("get-event has no template function");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("functions/get-event/"), "{problems:?}");
    assert!(
        problems[0].contains("no AWS::Serverless::Function"),
        "{problems:?}"
    );
}

#[test]
fn a_template_function_without_a_directory_is_reported_as_stale() {
    let fixture = Fixture::new("stale", &["ingest-events"]);
    fixture.template(&[
        function_block("IngestEvents", "ingest-events"),
        function_block("OldThing", "old-thing"),
    ]);
    let problems = check(&fixture.root).expect_err("old-thing has no directory");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("OldThing"), "{problems:?}");
    assert!(
        problems[0].contains("functions/old-thing/ does not exist"),
        "{problems:?}"
    );
}

#[test]
fn a_function_without_its_alarms_is_reported() {
    let fixture = Fixture::new("alarms", &["ingest-events"]);
    let mut block = function_block("IngestEvents", "ingest-events");
    // Keep the Errors alarm only.
    block.truncate(
        block
            .find("  IngestEventsThrottlesAlarm:")
            .expect("fixture has a Throttles alarm"),
    );
    fixture.template(&[block]);
    let problems = check(&fixture.root).expect_err("the Throttles alarm is missing");
    assert_eq!(
        problems,
        vec!["IngestEventsFunction (ingest-events) has no AWS/Lambda Throttles alarm".to_owned()]
    );
}

#[test]
fn a_function_built_some_other_way_is_reported() {
    let fixture = Fixture::new("build", &["ingest-events"]);
    let block = function_block("IngestEvents", "ingest-events")
        .replace("BuildMethod: rust-cargolambda", "BuildMethod: makefile")
        .replace("CodeUri: .", "CodeUri: functions/ingest-events");
    fixture.template(&[block]);
    let problems = check(&fixture.root).expect_err("wrong build method and code uri");
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems.iter().any(|p| p.contains("BuildMethod")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("CodeUri")),
        "{problems:?}"
    );
}

#[test]
fn a_crate_whose_package_name_differs_from_its_directory_is_reported() {
    let fixture = Fixture::new("package", &["ingest-events"]);
    fs::write(
        fixture.root.join("functions/ingest-events/Cargo.toml"),
        "[package]\nname = \"ingest\"\n",
    )
    .expect("write");
    fixture.template(&[function_block("IngestEvents", "ingest-events")]);
    let problems = check(&fixture.root).expect_err("package name differs");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("package \"ingest\""), "{problems:?}");
}

/// Every disagreement between `root/template.yaml` and `root/functions/`, one line each.
fn check(root: &Path) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    let template = read_template(&root.join("template.yaml")).map_err(|e| vec![e])?;
    let resources = match template.get("Resources").and_then(Value::as_mapping) {
        Some(resources) => resources,
        None => return Err(vec!["template.yaml: no Resources mapping".to_owned()]),
    };

    // Binary name -> logical id of the function that builds it.
    let mut functions: BTreeMap<String, String> = BTreeMap::new();
    for (id, resource) in resources {
        let Some(id) = id.as_str() else { continue };
        if resource.get("Type").and_then(Value::as_str) != Some("AWS::Serverless::Function") {
            continue;
        }
        let metadata = resource.get("Metadata");
        let build_method = metadata
            .and_then(|m| m.get("BuildMethod"))
            .and_then(Value::as_str);
        if build_method != Some("rust-cargolambda") {
            problems.push(format!(
                "{id}: Metadata.BuildMethod is {build_method:?}, expected \"rust-cargolambda\""
            ));
        }
        let code_uri = resource
            .get("Properties")
            .and_then(|p| p.get("CodeUri"))
            .and_then(Value::as_str);
        if code_uri != Some(".") {
            problems.push(format!(
                "{id}: Properties.CodeUri is {code_uri:?}, expected \".\" (the workspace root)"
            ));
        }
        let binary = metadata
            .and_then(|m| m.get("BuildProperties"))
            .and_then(|b| b.get("Binary"))
            .and_then(Value::as_str);
        let Some(binary) = binary else {
            problems.push(format!(
                "{id}: no Metadata.BuildProperties.Binary naming the crate in functions/"
            ));
            continue;
        };
        if let Some(other) = functions.insert(binary.to_owned(), id.to_owned()) {
            problems.push(format!("{id} and {other} both build binary {binary}"));
        }
    }

    let crates = match function_crates(&root.join("functions")) {
        Ok(crates) => crates,
        Err(e) => return Err(vec![e]),
    };
    for (dir, package) in &crates {
        if package != dir {
            problems.push(format!(
                "functions/{dir}/Cargo.toml declares package {package:?}; cargo-lambda builds the binary named after the directory, so they must match"
            ));
        }
        if !functions.contains_key(dir) {
            problems.push(format!(
                "functions/{dir}/ has no AWS::Serverless::Function in template.yaml with Metadata.BuildProperties.Binary: {dir}"
            ));
        }
    }
    for (binary, id) in &functions {
        if !crates.contains_key(binary) {
            problems.push(format!("template.yaml {id} builds binary {binary}, but functions/{binary}/ does not exist (stale)"));
        }
    }

    let alarmed = lambda_alarms(resources);
    for (binary, id) in &functions {
        for metric in REQUIRED_ALARMS {
            if !alarmed.contains(&(id.clone(), metric.to_owned())) {
                problems.push(format!("{id} ({binary}) has no AWS/Lambda {metric} alarm"));
            }
        }
    }

    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// The repository's template.yaml.
fn repo_template() -> Value {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("cli/ sits inside the workspace root");
    read_template(&root.join("template.yaml")).expect("template.yaml")
}

fn read_template(path: &Path) -> Result<Value, String> {
    let text =
        fs::read_to_string(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    serde_yaml_ng::from_str(&text).map_err(|e| format!("{}: not valid YAML: {e}", path.display()))
}

/// Directory name -> package name, for every directory under `functions/` with a Cargo.toml.
fn function_crates(dir: &Path) -> Result<BTreeMap<String, String>, String> {
    let entries = fs::read_dir(dir).map_err(|e| format!("{}: cannot list: {e}", dir.display()))?;
    let mut crates = BTreeMap::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: cannot list: {e}", dir.display()))?;
        let manifest = entry.path().join("Cargo.toml");
        if !manifest.is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let text = fs::read_to_string(&manifest)
            .map_err(|e| format!("{}: cannot read: {e}", manifest.display()))?;
        let package = package_name(&text)
            .ok_or_else(|| format!("{}: no [package] name", manifest.display()))?;
        crates.insert(name, package);
    }
    Ok(crates)
}

/// The `name` of the `[package]` table; function manifests keep it on one plain line.
fn package_name(manifest: &str) -> Option<String> {
    let mut in_package = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if in_package && let Some(value) = line.strip_prefix("name").map(str::trim_start) {
            let value = value.strip_prefix('=')?.trim();
            return Some(value.trim_matches('"').to_owned());
        }
    }
    None
}

/// (function logical id, metric name) for every AWS/Lambda alarm on one function.
fn lambda_alarms(resources: &serde_yaml_ng::Mapping) -> BTreeSet<(String, String)> {
    let mut alarmed = BTreeSet::new();
    for resource in resources.values() {
        if resource.get("Type").and_then(Value::as_str) != Some("AWS::CloudWatch::Alarm") {
            continue;
        }
        let Some(properties) = resource.get("Properties") else {
            continue;
        };
        if properties.get("Namespace").and_then(Value::as_str) != Some("AWS/Lambda") {
            continue;
        }
        let Some(metric) = properties.get("MetricName").and_then(Value::as_str) else {
            continue;
        };
        let dimensions = properties
            .get("Dimensions")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten();
        for dimension in dimensions {
            if dimension.get("Name").and_then(Value::as_str) == Some("FunctionName")
                && let Some(target) = dimension.get("Value").and_then(reference)
            {
                alarmed.insert((target, metric.to_owned()));
            }
        }
    }
    alarmed
}

/// The logical id in `!Ref X` (short form, a YAML tag) or `{Ref: X}` (long form).
fn reference(value: &Value) -> Option<String> {
    match value {
        Value::Tagged(tagged) if tagged.tag == "Ref" => tagged.value.as_str().map(str::to_owned),
        Value::Mapping(map) if map.len() == 1 => {
            map.get("Ref").and_then(Value::as_str).map(str::to_owned)
        }
        _ => None,
    }
}

#[test]
fn every_table_statement_of_every_function_is_limited_to_its_leading_keys() {
    let template = repo_template();
    let (checked, unscoped) = table_statements(&template);
    assert!(
        checked >= 10,
        "only {checked} table statements found: is the check still reading the policies?"
    );
    assert!(
        unscoped.is_empty(),
        "statements on the table without dynamodb:LeadingKeys: {unscoped:?}"
    );
}

#[test]
fn a_table_statement_without_leading_keys_is_reported_by_function_and_sid() {
    let template: Value = serde_yaml_ng::from_str(
        "Resources:
  ScopedFunction:
    Type: AWS::Serverless::Function
    Properties:
      Policies:
        - Statement:
            - Sid: Buckets
              Action: dynamodb:UpdateItem
              Resource: !GetAtt Table.Arn
              Condition:
                ForAllValues:StringLike:
                  dynamodb:LeadingKeys: [\"RATE#*\"]
  OpenFunction:
    Type: AWS::Serverless::Function
    Properties:
      Policies:
        - Statement:
            - Sid: Everything
              Action: [dynamodb:GetItem, dynamodb:PutItem]
              Resource: !GetAtt Table.Arn
            - Sid: Objects
              Action: s3:GetObject
              Resource: '*'
",
    )
    .expect("fixture");
    assert_eq!(
        table_statements(&template),
        (2, vec!["OpenFunction/Everything".to_owned()])
    );
}

/// (how many statements allow DynamoDB actions on the table, `function/Sid` of those without a
/// `ForAllValues:StringLike` `dynamodb:LeadingKeys` condition).
fn table_statements(template: &Value) -> (usize, Vec<String>) {
    let mut checked = 0;
    let mut unscoped = Vec::new();
    let Some(resources) = template.get("Resources").and_then(Value::as_mapping) else {
        return (0, unscoped);
    };
    for (name, resource) in resources {
        if resource.get("Type").and_then(Value::as_str) != Some("AWS::Serverless::Function") {
            continue;
        }
        let policies = resource
            .get("Properties")
            .and_then(|p| p.get("Policies"))
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten();
        let statements = policies
            .filter_map(|policy| policy.get("Statement").and_then(Value::as_sequence))
            .flatten();
        for statement in statements {
            let dynamodb = one_or_many(statement.get("Action"))
                .iter()
                .any(|action| action.starts_with("dynamodb:"));
            let on_table = statement.get("Resource").is_some_and(|r| {
                matches!(r, Value::Tagged(t) if t.tag == "GetAtt"
                    && t.value.as_str().is_some_and(|v| v.starts_with("Table.")))
            });
            if !(dynamodb && on_table) {
                continue;
            }
            checked += 1;
            let scoped = statement
                .get("Condition")
                .and_then(|c| c.get("ForAllValues:StringLike"))
                .and_then(|c| c.get("dynamodb:LeadingKeys"))
                .is_some();
            if !scoped {
                let sid = statement.get("Sid").and_then(Value::as_str).unwrap_or("?");
                unscoped.push(format!("{}/{sid}", name.as_str().unwrap_or("?")));
            }
        }
    }
    (checked, unscoped)
}

#[test]
fn only_the_functions_that_sign_or_show_secrets_use_the_signing_key_and_only_makers_encrypt() {
    let template = repo_template();
    let expected: BTreeMap<String, Vec<String>> = [
        ("DeliverWebhooksFunction", vec!["kms:Decrypt"]),
        (
            "GetSigningSecretFunction",
            vec!["kms:Decrypt", "kms:GenerateDataKey"],
        ),
        (
            "RotateSigningSecretFunction",
            vec!["kms:Decrypt", "kms:GenerateDataKey"],
        ),
    ]
    .into_iter()
    .map(|(f, a)| (f.to_owned(), a.into_iter().map(str::to_owned).collect()))
    .collect();
    assert_eq!(signing_key_actions(&template), expected);
}

#[test]
fn only_draft_trigger_may_invoke_a_model_and_only_the_configured_one() {
    let template = repo_template();
    let Some(resources) = template.get("Resources").and_then(Value::as_mapping) else {
        panic!("no Resources");
    };
    let mut found: Vec<(String, Vec<String>, String)> = Vec::new();
    for (name, resource) in resources {
        let statements = resource
            .get("Properties")
            .and_then(|p| p.get("Policies"))
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
            .filter_map(|policy| policy.get("Statement").and_then(Value::as_sequence))
            .flatten();
        for statement in statements {
            let actions = one_or_many(statement.get("Action"));
            if !actions
                .iter()
                .any(|a| a.starts_with("bedrock:") || a == "*")
            {
                continue;
            }
            let resource = match statement.get("Resource") {
                Some(Value::Tagged(t)) if t.tag == "Sub" => {
                    format!("!Sub {}", t.value.as_str().unwrap_or("?"))
                }
                other => format!("{other:?}"),
            };
            found.push((name.as_str().unwrap_or("?").to_owned(), actions, resource));
        }
    }
    assert_eq!(
        found,
        [(
            "DraftTriggerFunction".to_owned(),
            vec!["bedrock:InvokeModel".to_owned()],
            "!Sub arn:${AWS::Partition}:bedrock:${AWS::Region}::foundation-model/${BedrockModelId}"
                .to_owned()
        )],
        "Bedrock is for draft-trigger, on the configured model only"
    );
}

#[test]
fn the_user_pool_lets_only_administrators_set_a_users_tenant() {
    let template = repo_template();
    let resource = |name: &str| {
        template
            .get("Resources")
            .and_then(|r| r.get(name))
            .and_then(|r| r.get("Properties"))
            .unwrap_or_else(|| panic!("{name} in template.yaml"))
            .clone()
    };
    let strings = |v: Option<&Value>| -> Vec<String> { one_or_many(v) };
    let pool = resource("UserPool");
    assert_eq!(
        pool.get("AdminCreateUserConfig")
            .and_then(|c| c.get("AllowAdminCreateUserOnly"))
            .and_then(Value::as_bool),
        Some(true),
        "no self sign-up: an administrator creates each user with its tenant"
    );
    let trigger = pool
        .get("LambdaConfig")
        .and_then(|c| c.get("PreTokenGenerationConfig"))
        .expect("the pre-token trigger");
    assert_eq!(
        trigger.get("LambdaVersion").and_then(Value::as_str),
        Some("V2_0"),
        "version 2: the only one that can add claims to access tokens"
    );
    assert!(
        matches!(trigger.get("LambdaArn"), Some(Value::Tagged(t))
            if t.tag == "GetAtt" && t.value.as_str() == Some("CognitoPreTokenFunction.Arn")),
        "{trigger:?}"
    );
    let client = resource("UserPoolClient");
    let write = strings(client.get("WriteAttributes"));
    let read = strings(client.get("ReadAttributes"));
    assert!(
        !write.is_empty(),
        "WriteAttributes must be listed: absent, users write all"
    );
    assert!(
        !write.iter().any(|a| a.starts_with("custom:")),
        "a user may write {write:?}"
    );
    assert!(read.contains(&"custom:tenant_id".to_owned()), "{read:?}");
    let scopes = strings(client.get("AllowedOAuthScopes"));
    for scope in ["triggeriq/ingest", "triggeriq/read", "triggeriq/admin"] {
        assert!(
            scopes.contains(&scope.to_owned()),
            "{scope} missing: {scopes:?}"
        );
    }
}

/// Function → the actions its policies allow on `!Ref SigningKeyArn` (sorted); every such
/// statement must require the signing secrets' encryption-context purpose, or its actions are
/// listed as `unconditioned:<action>`.
fn signing_key_actions(template: &Value) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let Some(resources) = template.get("Resources").and_then(Value::as_mapping) else {
        return out;
    };
    for (name, resource) in resources {
        let statements = resource
            .get("Properties")
            .and_then(|p| p.get("Policies"))
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
            .filter_map(|policy| policy.get("Statement").and_then(Value::as_sequence))
            .flatten();
        for statement in statements {
            let on_key = statement.get("Resource").is_some_and(|r| {
                matches!(r, Value::Tagged(t) if t.tag == "Ref"
                    && t.value.as_str() == Some("SigningKeyArn"))
            });
            if !on_key {
                continue;
            }
            let purpose = statement
                .get("Condition")
                .and_then(|c| c.get("StringEquals"))
                .and_then(|c| c.get("kms:EncryptionContext:purpose"))
                .and_then(Value::as_str);
            let entry = out
                .entry(name.as_str().unwrap_or("?").to_owned())
                .or_default();
            for action in one_or_many(statement.get("Action")) {
                entry.push(if purpose == Some("webhook-signing-secrets") {
                    action
                } else {
                    format!("unconditioned:{action}")
                });
            }
            entry.sort();
        }
    }
    out
}

/// An IAM `Action`: one string or a list of them.
fn one_or_many(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::String(one)) => vec![one.clone()],
        Some(Value::Sequence(many)) => many
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// A throwaway workspace root with `functions/<name>/Cargo.toml` for each name.
struct Fixture {
    root: PathBuf,
}

impl Fixture {
    fn new(test: &str, functions: &[&str]) -> Self {
        let root = std::env::temp_dir().join(format!(
            "triggeriq-template-test-{}-{test}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&root);
        for name in functions {
            let dir = root.join("functions").join(name);
            fs::create_dir_all(&dir).expect("create fixture dir");
            fs::write(
                dir.join("Cargo.toml"),
                format!("[package]\nname = \"{name}\"\nversion = \"0.1.0\"\n"),
            )
            .expect("write fixture manifest");
        }
        Self { root }
    }

    fn template(&self, blocks: &[String]) {
        let text = format!(
            "Transform: AWS::Serverless-2016-10-31\nResources:\n{}",
            blocks.concat()
        );
        fs::write(self.root.join("template.yaml"), text).expect("write fixture template");
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

/// A function as template.yaml writes it, with its two alarms, in the short tag form.
fn function_block(logical: &str, binary: &str) -> String {
    let mut block = format!(
        "  {logical}Function:\n    Type: AWS::Serverless::Function\n    Metadata:\n      BuildMethod: rust-cargolambda\n      BuildProperties:\n        Binary: {binary}\n    Properties:\n      CodeUri: .\n      Environment:\n        Variables:\n          TABLE_NAME: !Ref Table\n"
    );
    for metric in REQUIRED_ALARMS {
        block.push_str(&format!(
            "  {logical}{metric}Alarm:\n    Type: AWS::CloudWatch::Alarm\n    Properties:\n      Namespace: AWS/Lambda\n      MetricName: {metric}\n      Dimensions: [{{Name: FunctionName, Value: !Ref {logical}Function}}]\n"
        ));
    }
    block
}
