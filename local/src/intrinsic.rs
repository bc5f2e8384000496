//! CloudFormation intrinsic functions, resolved the way the local stack needs them.
//!
//! Both spellings are understood: the YAML short form (`!Ref X`, `!GetAtt X.Arn`, `!Sub ...`,
//! `!If [...]`, kept by serde_yaml_ng as tagged values) and the long form (`{Ref: X}`,
//! `{"Fn::GetAtt": [X, Arn]}`). What a resource reference resolves to is up to a
//! [`ResourceLookup`]: the template parser uses one that answers logical ids (to follow
//! structure: which integration a route targets, which queue a mapping reads), the stack uses
//! one that answers local physical values (queue URLs, table names).

use std::collections::BTreeMap;

use serde_json::Value as Json;
use serde_yaml_ng::Value as Yaml;

/// Where a value sits in the template, for error messages (`Resources.X.Properties.Y`).
pub type Path = str;

/// A value could not be resolved; `path` names where, `reason` says why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template.yaml {path}: {reason}")]
pub struct ResolveError {
    pub path: String,
    pub reason: String,
}

impl ResolveError {
    pub fn new(path: &Path, reason: impl Into<String>) -> Self {
        Self {
            path: path.to_owned(),
            reason: reason.into(),
        }
    }
}

/// Answers `Ref` and `Fn::GetAtt` on resources.
pub trait ResourceLookup {
    /// The value of `!Ref id` (`attribute` = `None`) or `!GetAtt id.attribute`, or `None`
    /// when the resource or attribute is unknown.
    fn resource(&self, id: &str, attribute: Option<&str>) -> Option<String>;
}

/// Resolves every resource reference to the referenced logical id, whatever the attribute.
pub struct LogicalIds<'a>(pub &'a BTreeMap<String, String>);

impl ResourceLookup for LogicalIds<'_> {
    fn resource(&self, id: &str, _attribute: Option<&str>) -> Option<String> {
        self.0.contains_key(id).then(|| id.to_owned())
    }
}

/// What intrinsic functions are evaluated against.
pub struct Context<'a> {
    /// Parameter values (local values or defaults) and pseudo parameters (`AWS::Region`, …).
    pub parameters: &'a BTreeMap<String, Json>,
    /// Evaluated conditions.
    pub conditions: &'a BTreeMap<String, bool>,
    pub resources: &'a dyn ResourceLookup,
}

/// Marker for `AWS::NoValue`: a property that resolves to it is treated as absent.
pub const NO_VALUE: &str = "\u{0}AWS::NoValue";

/// The intrinsic function a YAML value denotes, if any: its name (without `Fn::` or `!`) and
/// argument.
pub fn intrinsic(value: &Yaml) -> Option<(String, &Yaml)> {
    match value {
        Yaml::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.trim_start_matches('!');
            Some((name.to_owned(), &tagged.value))
        }
        Yaml::Mapping(map) if map.len() == 1 => {
            let (key, arg) = map.iter().next()?;
            let key = key.as_str()?;
            if key == "Ref" || key == "Condition" {
                Some((key.to_owned(), arg))
            } else {
                key.strip_prefix("Fn::").map(|name| (name.to_owned(), arg))
            }
        }
        _ => None,
    }
}

impl Context<'_> {
    /// Resolves `value` into plain JSON.
    pub fn resolve(&self, value: &Yaml, path: &Path) -> Result<Json, ResolveError> {
        if let Some((name, arg)) = intrinsic(value) {
            return self.function(&name, arg, path);
        }
        match value {
            Yaml::Null => Ok(Json::Null),
            Yaml::Bool(b) => Ok(Json::Bool(*b)),
            Yaml::Number(n) => Ok(serde_json::to_value(n).unwrap_or(Json::Null)),
            Yaml::String(s) => Ok(Json::String(s.clone())),
            Yaml::Sequence(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let v = self.resolve(item, &format!("{path}[{i}]"))?;
                    if v != Json::String(NO_VALUE.to_owned()) {
                        out.push(v);
                    }
                }
                Ok(Json::Array(out))
            }
            Yaml::Mapping(map) => {
                let mut out = serde_json::Map::new();
                for (k, v) in map {
                    let key = yaml_key(k, path)?;
                    let v = self.resolve(v, &format!("{path}.{key}"))?;
                    if v != Json::String(NO_VALUE.to_owned()) {
                        out.insert(key, v);
                    }
                }
                Ok(Json::Object(out))
            }
            Yaml::Tagged(_) => Err(ResolveError::new(path, "unexpected YAML tag")),
        }
    }

    /// Resolves `value` into a string (numbers and booleans are written out, as CloudFormation
    /// does for environment variables).
    pub fn resolve_string(&self, value: &Yaml, path: &Path) -> Result<String, ResolveError> {
        scalar_string(&self.resolve(value, path)?)
            .ok_or_else(|| ResolveError::new(path, "must resolve to a string"))
    }

    fn function(&self, name: &str, arg: &Yaml, path: &Path) -> Result<Json, ResolveError> {
        let here = format!("{path}(!{name})");
        match name {
            "Ref" => {
                let id = arg
                    .as_str()
                    .ok_or_else(|| ResolveError::new(&here, "takes a name"))?;
                if id == "AWS::NoValue" {
                    return Ok(Json::String(NO_VALUE.to_owned()));
                }
                if let Some(value) = self.parameters.get(id) {
                    return Ok(value.clone());
                }
                self.resources
                    .resource(id, None)
                    .map(Json::String)
                    .ok_or_else(|| {
                        ResolveError::new(&here, format!("no parameter or resource named {id}"))
                    })
            }
            "GetAtt" => {
                let (id, attribute) = match arg {
                    Yaml::String(s) => s.split_once('.').map(|(a, b)| (a.to_owned(), b.to_owned())),
                    Yaml::Sequence(items) if items.len() == 2 => {
                        let id = items[0].as_str().map(str::to_owned);
                        let attr = self.resolve_string(&items[1], &here).ok();
                        id.zip(attr)
                    }
                    _ => None,
                }
                .ok_or_else(|| {
                    ResolveError::new(&here, "takes Resource.Attribute or [Resource, Attribute]")
                })?;
                self.resources
                    .resource(&id, Some(&attribute))
                    .map(Json::String)
                    .ok_or_else(|| {
                        ResolveError::new(&here, format!("no attribute {attribute} of {id} here"))
                    })
            }
            "Sub" => {
                let (text, vars) = match arg {
                    Yaml::String(s) => (s.as_str(), None),
                    Yaml::Sequence(items) if items.len() == 2 => (
                        items[0].as_str().ok_or_else(|| {
                            ResolveError::new(&here, "first item must be a string")
                        })?,
                        Some(&items[1]),
                    ),
                    _ => return Err(ResolveError::new(&here, "takes a string or [string, map]")),
                };
                let mut local = BTreeMap::new();
                if let Some(Yaml::Mapping(map)) = vars {
                    for (k, v) in map {
                        let key = yaml_key(k, &here)?;
                        local.insert(
                            key.clone(),
                            self.resolve_string(v, &format!("{here}.{key}"))?,
                        );
                    }
                }
                self.substitute(text, &local, &here).map(Json::String)
            }
            "If" => {
                let items = arg
                    .as_sequence()
                    .filter(|items| items.len() == 3)
                    .ok_or_else(|| ResolveError::new(&here, "takes [condition, then, else]"))?;
                let condition = items[0]
                    .as_str()
                    .ok_or_else(|| ResolveError::new(&here, "condition must be a name"))?;
                let holds = *self.conditions.get(condition).ok_or_else(|| {
                    ResolveError::new(&here, format!("no condition named {condition}"))
                })?;
                let branch = if holds { &items[1] } else { &items[2] };
                self.resolve(branch, &here)
            }
            "Join" => {
                let items = arg
                    .as_sequence()
                    .filter(|items| items.len() == 2)
                    .ok_or_else(|| ResolveError::new(&here, "takes [delimiter, list]"))?;
                let delimiter = items[0]
                    .as_str()
                    .ok_or_else(|| ResolveError::new(&here, "delimiter must be a string"))?;
                let list = self.resolve(&items[1], &here)?;
                let parts = list
                    .as_array()
                    .ok_or_else(|| ResolveError::new(&here, "second item must be a list"))?
                    .iter()
                    .map(|v| {
                        scalar_string(v)
                            .ok_or_else(|| ResolveError::new(&here, "list items must be strings"))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Json::String(parts.join(delimiter)))
            }
            "Select" => {
                let items = arg
                    .as_sequence()
                    .filter(|items| items.len() == 2)
                    .ok_or_else(|| ResolveError::new(&here, "takes [index, list]"))?;
                let index = scalar_string(&self.resolve(&items[0], &here)?)
                    .and_then(|s| s.parse::<usize>().ok())
                    .ok_or_else(|| ResolveError::new(&here, "index must be a number"))?;
                self.resolve(&items[1], &here)?
                    .as_array()
                    .and_then(|list| list.get(index).cloned())
                    .ok_or_else(|| ResolveError::new(&here, format!("no item {index}")))
            }
            "Equals" | "Not" | "And" | "Or" | "Condition" => {
                self.condition((name, arg), &here).map(Json::Bool)
            }
            other => Err(ResolveError::new(
                &here,
                format!("the local stack does not evaluate Fn::{other}"),
            )),
        }
    }

    /// Evaluates a condition expression (`Fn::Equals`, `Fn::Not`, `Fn::And`, `Fn::Or`,
    /// `Condition`).
    pub fn condition(&self, expr: (&str, &Yaml), path: &Path) -> Result<bool, ResolveError> {
        let (name, arg) = expr;
        let list = |n: usize| {
            arg.as_sequence()
                .filter(|items| n == 0 || items.len() == n)
                .ok_or_else(|| ResolveError::new(path, format!("Fn::{name} takes a list")))
        };
        let nested = |item: &Yaml| -> Result<bool, ResolveError> {
            let (inner, inner_arg) = intrinsic(item)
                .ok_or_else(|| ResolveError::new(path, "expected a condition function"))?;
            self.condition((&inner, inner_arg), path)
        };
        match name {
            "Equals" => {
                let items = list(2)?;
                let a = self.resolve(&items[0], path)?;
                let b = self.resolve(&items[1], path)?;
                Ok(scalar_string(&a)
                    .zip(scalar_string(&b))
                    .map_or(a == b, |(a, b)| a == b))
            }
            "Not" => Ok(!nested(&list(1)?[0])?),
            "And" => list(0)?
                .iter()
                .try_fold(true, |acc, item| Ok(acc && nested(item)?)),
            "Or" => list(0)?
                .iter()
                .try_fold(false, |acc, item| Ok(acc || nested(item)?)),
            "Condition" => {
                let id = arg
                    .as_str()
                    .ok_or_else(|| ResolveError::new(path, "Condition takes a name"))?;
                self.conditions
                    .get(id)
                    .copied()
                    .ok_or_else(|| ResolveError::new(path, format!("no condition named {id}")))
            }
            other => Err(ResolveError::new(
                path,
                format!("Fn::{other} is not a condition"),
            )),
        }
    }

    /// `${Name}`, `${Resource.Attribute}` and `${!Literal}` in a `Fn::Sub` string.
    fn substitute(
        &self,
        text: &str,
        local: &BTreeMap<String, String>,
        path: &Path,
    ) -> Result<String, ResolveError> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| ResolveError::new(path, "unclosed ${ in Fn::Sub"))?;
            let name = &after[..end];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else if let Some(value) = local.get(name) {
                out.push_str(value);
            } else if let Some(value) = self.parameters.get(name) {
                out.push_str(&scalar_string(value).unwrap_or_default());
            } else {
                let (id, attribute) = match name.split_once('.') {
                    Some((id, attr)) => (id, Some(attr)),
                    None => (name, None),
                };
                let value = self.resources.resource(id, attribute).ok_or_else(|| {
                    ResolveError::new(path, format!("${{{name}}} names nothing known here"))
                })?;
                out.push_str(&value);
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// A mapping key as text.
pub fn yaml_key(key: &Yaml, path: &Path) -> Result<String, ResolveError> {
    match key {
        Yaml::String(s) => Ok(s.clone()),
        Yaml::Number(n) => Ok(n.to_string()),
        Yaml::Bool(b) => Ok(b.to_string()),
        _ => Err(ResolveError::new(path, "mapping keys must be scalars")),
    }
}

/// A scalar JSON value as text (`None` for lists, maps and null).
pub fn scalar_string(value: &Json) -> Option<String> {
    match value {
        Json::String(s) => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        Json::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;
    impl ResourceLookup for Fixed {
        fn resource(&self, id: &str, attribute: Option<&str>) -> Option<String> {
            match (id, attribute) {
                ("Queue", None) => Some("http://q/url".into()),
                ("Queue", Some("Arn")) => Some("arn:aws:sqs:us-east-1:1:q".into()),
                _ => None,
            }
        }
    }

    fn eval(yaml: &str) -> Result<Json, ResolveError> {
        let parameters = BTreeMap::from([
            ("Empty".to_owned(), Json::String(String::new())),
            ("AWS::Region".to_owned(), Json::String("us-east-1".into())),
            ("Port".to_owned(), serde_json::json!(5432)),
        ]);
        let conditions = BTreeMap::from([("On".to_owned(), true), ("Off".to_owned(), false)]);
        let ctx = Context {
            parameters: &parameters,
            conditions: &conditions,
            resources: &Fixed,
        };
        let value: Yaml = serde_yaml_ng::from_str(yaml).expect("test YAML");
        ctx.resolve(&value, "X")
    }

    #[test]
    fn short_and_long_forms_resolve_alike() {
        assert_eq!(eval("!Ref Queue").unwrap(), "http://q/url");
        assert_eq!(eval("{Ref: Queue}").unwrap(), "http://q/url");
        assert_eq!(
            eval("!GetAtt Queue.Arn").unwrap(),
            "arn:aws:sqs:us-east-1:1:q"
        );
        assert_eq!(
            eval("{'Fn::GetAtt': [Queue, Arn]}").unwrap(),
            "arn:aws:sqs:us-east-1:1:q"
        );
        assert_eq!(eval("!Ref Port").unwrap(), serde_json::json!(5432));
    }

    #[test]
    fn sub_replaces_parameters_attributes_and_keeps_literals() {
        assert_eq!(
            eval("!Sub '${Queue.Arn}/x ${AWS::Region} ${!Literal} ${Port}'").unwrap(),
            "arn:aws:sqs:us-east-1:1:q/x us-east-1 ${Literal} 5432"
        );
        assert_eq!(
            eval("!Sub ['a-${Name}', {Name: !Ref Queue}]").unwrap(),
            "a-http://q/url"
        );
    }

    #[test]
    fn if_takes_the_branch_of_its_condition_and_no_value_disappears() {
        assert_eq!(eval("!If [On, a, b]").unwrap(), "a");
        assert_eq!(eval("!If [Off, a, b]").unwrap(), "b");
        assert_eq!(
            eval("{A: !If [Off, x, !Ref AWS::NoValue], B: 1}").unwrap(),
            serde_json::json!({"B": 1})
        );
        assert_eq!(eval("!Not [!Equals [!Ref Empty, '']]").unwrap(), false);
        assert_eq!(eval("!Join ['-', [a, !Ref Port]]").unwrap(), "a-5432");
    }

    #[test]
    fn unknown_names_are_errors_that_say_where() {
        let err = eval("{A: {B: !Ref Nothing}}").unwrap_err();
        assert_eq!(err.path, "X.A.B(!Ref)");
        assert!(err.reason.contains("Nothing"), "{err}");
        let err = eval("!Sub '${Nope.Arn}'").unwrap_err();
        assert!(err.reason.contains("Nope.Arn"), "{err}");
        let err = eval("!If [Missing, a, b]").unwrap_err();
        assert!(err.reason.contains("Missing"), "{err}");
        let err = eval("!FindInMap [a, b, c]").unwrap_err();
        assert!(err.reason.contains("FindInMap"), "{err}");
    }
}
