//! Parameters (`--parameter` values, defaults, placeholders, pseudo parameters) and
//! `Conditions`, evaluated once from them.

use std::collections::BTreeMap;

use serde_json::Value as Json;
use serde_yaml_ng::{Mapping, Value as Yaml};

use super::{ACCOUNT_ID, REGION};
use crate::intrinsic::{Context, LogicalIds, intrinsic};

/// Parameters whose local value is not a placeholder: the signing secrets' KMS key is the alias
/// the local stack makes in the emulator ([`super::SIGNING_KEY_ALIAS`]), since the
/// functions really call KMS with it.
const LOCAL_VALUES: &[(&str, &str)] = &[("SigningKeyArn", super::SIGNING_KEY_ALIAS)];

/// Parameter values: `--parameter` values, else defaults, else a local value
/// ([`LOCAL_VALUES`]), else a placeholder; plus pseudo parameters.
pub(super) fn parameters(
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
                _ => LOCAL_VALUES
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map_or_else(|| format!("local-{name}"), |(_, v)| (*v).to_owned()),
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
pub(super) fn conditions(
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
