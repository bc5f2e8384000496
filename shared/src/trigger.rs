//! Triggers: what a tenant asks us to watch for, and what to do when it happens.
//!
//! Request bodies are read from `serde_json::Value` with [`crate::json::Fields`] so that every
//! problem is reported at once with its JSON path; only a fully valid body becomes a
//! [`TriggerSpec`], so the rest of the code never re-checks.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::json::{self, Fields, Problems, type_name};
use crate::pattern::{Pattern, PatternLimits};
use crate::problem::FieldError;
use crate::tenant::TenantId;
use crate::webhook::ssrf::{SsrfError, TargetPolicy};

/// Limits on trigger definitions; each is configurable per deployment.
#[derive(Debug, Clone)]
pub struct TriggerLimits {
    pub max_name_chars: usize,
    pub max_description_chars: usize,
    pub max_actions: usize,
    pub max_url_chars: usize,
    pub max_triggers_per_tenant: i64,
    /// The most values to match a tenant's enabled triggers may hold in all (the sum of their
    /// patterns' [`Pattern::cost`], `$or`s expanded): what one tenant's compiled set costs in
    /// memory and in matching work. Default 200,000 (about 14 MiB compiled).
    pub max_pattern_cost_per_tenant: usize,
    pub min_cooldown: Duration,
    pub max_cooldown: Duration,
    /// Which webhook targets actions may name: https on public hosts and the allowed ports;
    /// plain http and loopback only where the deployment allows them (local development).
    pub webhook_targets: TargetPolicy,
    pub pattern: PatternLimits,
    pub condition: ConditionLimits,
}

impl Default for TriggerLimits {
    fn default() -> Self {
        Self {
            max_name_chars: 200,
            max_description_chars: 2000,
            max_actions: 10,
            max_url_chars: 2048,
            max_triggers_per_tenant: 1000,
            max_pattern_cost_per_tenant: 200_000,
            min_cooldown: Duration::from_secs(1),
            max_cooldown: Duration::from_secs(30 * 24 * 3600),
            webhook_targets: TargetPolicy::strict(),
            pattern: PatternLimits::default(),
            condition: ConditionLimits::default(),
        }
    }
}

pub use crate::condition::{Condition, ConditionLimits};
pub use crate::ids::{ActionId, TriggerId};

/// A validated webhook URL: absolute, https (http where the deployment allows it), with a
/// host that may be a target and an allowed port, without credentials or fragment.
///
/// Whatever can be judged without DNS is judged here, when the action is created or changed,
/// by the same [`TargetPolicy`] deliver-webhooks applies to every attempt: an IP-literal host
/// in a refused range (`https://169.254.169.254/`, `https://[::1]/`, `https://10.0.0.1/`), a
/// name that can only be local (`localhost`, `metadata`, `*.internal`), a port outside the
/// allowed ones. A name's addresses are judged when it is resolved, at delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WebhookUrl(String);

impl WebhookUrl {
    pub fn parse(raw: &str, limits: &TriggerLimits) -> Result<Self, String> {
        if raw.chars().count() > limits.max_url_chars {
            return Err(format!(
                "must be at most {} characters",
                limits.max_url_chars
            ));
        }
        let url = url::Url::parse(raw).map_err(|e| format!("is not a valid absolute URL ({e})"))?;
        // Percent-encoding can triple a character; the delivery message leaves room for the
        // URL as it is sent, so the limit holds for that form too.
        if url.as_str().len() > limits.max_url_chars {
            return Err(format!(
                "must be at most {} characters once percent-encoded",
                limits.max_url_chars
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not contain credentials; authenticate the receiver with the webhook signature".into());
        }
        if url.fragment().is_some() {
            return Err("must not contain a fragment (#...)".into());
        }
        limits
            .webhook_targets
            .check(&url)
            .map_err(|e| target_problem(&e))?;
        Ok(Self(url.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a refused target means for the tenant writing the action.
fn target_problem(e: &SsrfError) -> String {
    match e {
        SsrfError::UnsupportedScheme(other) => format!("must use https, not {other:?}"),
        SsrfError::PlainHttp => {
            "must use https (plain http is allowed only in local development)".into()
        }
        SsrfError::MissingHost => "must have a host".into(),
        SsrfError::Refused(refusal) => {
            format!("must be a public address: {refusal}; webhooks are sent only to public hosts")
        }
        SsrfError::RefusedName { host, reason } => format!(
            "must name a public host: `{host}` is {reason}; webhooks are sent only to public hosts"
        ),
        SsrfError::PortNotAllowed { port, allowed } => {
            let allowed: Vec<String> = allowed.iter().map(u16::to_string).collect();
            format!(
                "must use an allowed port ({}), not {port}",
                allowed.join(", ")
            )
        }
        other => other.to_string(),
    }
}

/// An action as stored and shown: a webhook with a server-assigned id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    pub id: ActionId,
    #[serde(rename = "type")]
    pub kind: ActionKind,
    pub url: WebhookUrl,
    pub enabled: bool,
    /// Why delivery turned the action off (e.g. the receiver answered 410 Gone).
    #[serde(default)]
    pub disabled_reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    Webhook,
}

/// An action as a client sends it. `id` keeps an existing action's identity across updates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionSpec {
    pub id: Option<ActionId>,
    pub url: WebhookUrl,
    pub enabled: bool,
}

/// A trigger's cooldown: after firing, the trigger stays quiet this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cooldown(Duration);

impl Cooldown {
    pub fn parse(raw: &str, limits: &TriggerLimits) -> Result<Self, String> {
        let duration = humantime::parse_duration(raw.trim())
            .map_err(|e| format!("is not a duration like \"30s\", \"5m\" or \"1h 30m\" ({e})"))?;
        if duration.subsec_nanos() != 0 {
            return Err("must be a whole number of seconds".into());
        }
        if duration < limits.min_cooldown || duration > limits.max_cooldown {
            return Err(format!(
                "must be between {} and {}",
                humantime::format_duration(limits.min_cooldown),
                humantime::format_duration(limits.max_cooldown)
            ));
        }
        Ok(Self(duration))
    }

    pub fn from_secs(secs: u64) -> Self {
        Self(Duration::from_secs(secs))
    }

    pub fn as_secs(&self) -> u64 {
        self.0.as_secs()
    }

    pub fn as_duration(&self) -> Duration {
        self.0
    }

    /// The canonical text form, e.g. `1h 30m`.
    pub fn to_text(&self) -> String {
        humantime::format_duration(self.0).to_string()
    }
}

/// A complete, valid trigger definition as a client sent it.
#[derive(Debug, Clone)]
pub struct TriggerSpec {
    pub name: String,
    pub description: String,
    pub enabled: bool,
    pub pattern: Pattern,
    pub condition: Condition,
    pub cooldown: Option<Cooldown>,
    pub actions: Vec<ActionSpec>,
}

/// Whether a body creates a trigger or replaces one (which may carry its version and echo
/// the read-only fields a `GET` returned).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    Create,
    Replace,
}

/// A parsed create or replace body.
#[derive(Debug, Clone)]
pub struct TriggerBody {
    pub spec: TriggerSpec,
    /// The version the client based its change on (replace only).
    pub version: Option<i64>,
    /// The id the client echoed back (replace only); must equal the path's id.
    pub id: Option<TriggerId>,
}

const READ_ONLY_FIELDS: &[&str] = &["created_at", "updated_at"];

impl TriggerBody {
    /// Reads and validates a body; every problem is reported with its path.
    pub fn parse(
        body: &Value,
        kind: BodyKind,
        limits: &TriggerLimits,
    ) -> Result<Self, Vec<FieldError>> {
        let mut problems = Problems::default();
        let Some(mut fields) = Fields::of(body, "$", &mut problems) else {
            return Err(problems.0);
        };

        let name = match fields.required("name", &mut problems) {
            Some(Value::String(name)) => {
                check_name(name, &fields.path_of("name"), limits, &mut problems)
            }
            Some(other) => {
                problems.push(
                    fields.path_of("name"),
                    format!("must be a string, not {}", type_name(other)),
                );
                None
            }
            None => None,
        };
        let description = fields
            .opt_str("description", &mut problems)
            .unwrap_or_default();
        if description.chars().count() > limits.max_description_chars {
            problems.push(
                fields.path_of("description"),
                format!(
                    "must be at most {} characters",
                    limits.max_description_chars
                ),
            );
        }
        let enabled = fields.opt_bool("enabled", &mut problems).unwrap_or(true);
        let pattern = fields.required("pattern", &mut problems).and_then(|value| {
            Pattern::from_value(value, &limits.pattern)
                .map_err(|invalid| {
                    for e in invalid.errors {
                        problems.push(json::reroot("$.pattern", &e.path), e.message);
                    }
                })
                .ok()
        });
        let condition = match fields.get("condition") {
            None | Some(Value::Null) => Some(Condition::Every),
            Some(value) => Condition::parse(value, "$.condition", &limits.condition, &mut problems),
        };
        let cooldown = fields.opt_str("cooldown", &mut problems).and_then(|raw| {
            Cooldown::parse(raw, limits)
                .map_err(|m| problems.push("$.cooldown", m))
                .ok()
        });
        let actions = fields
            .required("actions", &mut problems)
            .and_then(|value| parse_actions(value, kind, limits, &mut problems));

        let (mut version, mut id) = (None, None);
        if kind == BodyKind::Replace {
            version = match fields.get("version") {
                None | Some(Value::Null) => None,
                Some(Value::Number(n)) if n.as_i64().is_some_and(|v| v >= 1) => n.as_i64(),
                Some(_) => {
                    problems.push(
                        "$.version",
                        "must be a positive integer (the version you read)",
                    );
                    None
                }
            };
            id = fields.opt_str("id", &mut problems).and_then(|raw| {
                TriggerId::parse(raw)
                    .map_err(|_| problems.push("$.id", "is not a trigger id"))
                    .ok()
            });
            fields.ignore(READ_ONLY_FIELDS);
        }
        fields.finish(&mut problems);

        match (name, pattern, condition, actions) {
            (Some(name), Some(pattern), Some(condition), Some(actions)) if problems.is_empty() => {
                Ok(Self {
                    spec: TriggerSpec {
                        name,
                        description: description.to_owned(),
                        enabled,
                        pattern,
                        condition,
                        cooldown,
                        actions,
                    },
                    version,
                    id,
                })
            }
            _ => Err(problems.0),
        }
    }
}

fn check_name(
    name: &str,
    path: &str,
    limits: &TriggerLimits,
    problems: &mut Problems,
) -> Option<String> {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        problems.push(path, "must not be empty");
        return None;
    }
    if trimmed.chars().count() > limits.max_name_chars {
        problems.push(
            path,
            format!("must be at most {} characters", limits.max_name_chars),
        );
        return None;
    }
    if trimmed.chars().any(char::is_control) {
        problems.push(path, "must not contain control characters");
        return None;
    }
    Some(trimmed.to_owned())
}

fn parse_actions(
    value: &Value,
    kind: BodyKind,
    limits: &TriggerLimits,
    problems: &mut Problems,
) -> Option<Vec<ActionSpec>> {
    let Value::Array(items) = value else {
        problems.push(
            "$.actions",
            format!("must be an array, not {}", type_name(value)),
        );
        return None;
    };
    if items.is_empty() || items.len() > limits.max_actions {
        problems.push(
            "$.actions",
            format!(
                "must hold 1 to {} actions, not {}",
                limits.max_actions,
                items.len()
            ),
        );
        return None;
    }
    let before = problems.0.len();
    let mut actions = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = json::index("$.actions", i);
        let Some(mut fields) = Fields::of(item, &path, problems) else {
            continue;
        };
        match fields.get("type") {
            None | Some(Value::Null) => {}
            Some(Value::String(t)) if t == "webhook" => {}
            Some(other) => problems.push(
                fields.path_of("type"),
                format!("unknown action type {other}; supported: \"webhook\""),
            ),
        }
        let url = match fields.required("url", problems) {
            Some(Value::String(raw)) => WebhookUrl::parse(raw, limits)
                .map_err(|m| problems.push(fields.path_of("url"), m))
                .ok(),
            Some(other) => {
                problems.push(
                    fields.path_of("url"),
                    format!("must be a string, not {}", type_name(other)),
                );
                None
            }
            None => None,
        };
        let enabled = fields.opt_bool("enabled", problems).unwrap_or(true);
        let mut id = None;
        if kind == BodyKind::Replace {
            id = fields.opt_str("id", problems).and_then(|raw| {
                ActionId::parse(raw)
                    .map_err(|_| problems.push(fields.path_of("id"), "is not an action id"))
                    .ok()
            });
            fields.ignore(&["disabled_reason"]);
        }
        fields.finish(problems);
        if let Some(url) = url {
            actions.push(ActionSpec { id, url, enabled });
        }
    }
    (problems.0.len() == before).then_some(actions)
}

/// A stored trigger, as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Trigger {
    pub id: TriggerId,
    #[serde(skip)]
    pub tenant_id: Option<TenantId>,
    pub name: String,
    pub description: String,
    pub enabled: bool,
    pub pattern: Value,
    pub condition: Condition,
    /// Canonical text form, e.g. `"5m"`; `null` when the trigger has none.
    pub cooldown: Option<String>,
    pub actions: Vec<Action>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Turns the actions of a spec into stored actions: ids the client sent back that belong to
/// `previous` keep their identity (and their disabled reason while still disabled); all other
/// actions get fresh ids.
pub fn assign_action_ids(spec: &[ActionSpec], previous: &[Action]) -> Vec<Action> {
    let mut used = Vec::new();
    spec.iter()
        .map(|a| {
            let kept =
                a.id.and_then(|id| previous.iter().find(|p| p.id == id && !used.contains(&id)));
            let id = kept.map_or_else(ActionId::new, |p| p.id);
            used.push(id);
            let disabled_reason = if a.enabled {
                None
            } else {
                kept.and_then(|p| p.disabled_reason.clone())
            };
            Action {
                id,
                kind: ActionKind::Webhook,
                url: a.url.clone(),
                enabled: a.enabled,
                disabled_reason,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::AddressPolicy;
    use serde_json::json;

    fn paths(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.path.as_str()).collect()
    }

    fn valid() -> Value {
        json!({
            "name": "Payment failed",
            "pattern": {"type": ["payment.failed"]},
            "actions": [{"url": "https://example.com/hook"}]
        })
    }

    #[test]
    fn a_minimal_body_gets_defaults() {
        let body = TriggerBody::parse(&valid(), BodyKind::Create, &TriggerLimits::default())
            .expect("valid");
        assert!(body.spec.enabled);
        assert_eq!(body.spec.condition, Condition::Every);
        assert_eq!(body.spec.cooldown, None);
        assert_eq!(body.spec.actions.len(), 1);
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let body = json!({
            "name": "",
            "enabled": "yes",
            "pattern": [],
            "condition": {"kind": "sometimes"},
            "cooldown": "soon",
            "actions": [{"url": "http://example.com"}, {"url": 5, "extra": 1}],
            "colour": "red"
        });
        let errors =
            TriggerBody::parse(&body, BodyKind::Create, &TriggerLimits::default()).unwrap_err();
        let mut got = paths(&errors);
        got.sort();
        assert_eq!(
            got,
            vec![
                "$.actions[0].url",
                "$.actions[1].extra",
                "$.actions[1].url",
                "$.colour",
                "$.condition.kind",
                "$.cooldown",
                "$.enabled",
                "$.name",
                "$.pattern",
            ]
        );
    }

    #[test]
    fn version_is_an_unknown_field_on_create_but_read_on_replace() {
        let mut body = valid();
        body["version"] = json!(3);
        let errors =
            TriggerBody::parse(&body, BodyKind::Create, &TriggerLimits::default()).unwrap_err();
        assert_eq!(paths(&errors), vec!["$.version"]);
        let parsed =
            TriggerBody::parse(&body, BodyKind::Replace, &TriggerLimits::default()).expect("valid");
        assert_eq!(parsed.version, Some(3));
    }

    #[test]
    fn http_urls_are_refused_unless_the_deployment_allows_them() {
        let mut limits = TriggerLimits::default();
        assert!(WebhookUrl::parse("http://hooks.example.com/hook", &limits).is_err());
        limits.webhook_targets = TargetPolicy::new(AddressPolicy::strict(), true, None);
        assert!(WebhookUrl::parse("http://hooks.example.com/hook", &limits).is_ok());
        assert!(WebhookUrl::parse("ftp://example.com", &limits).is_err());
        assert!(WebhookUrl::parse("https://user:pw@example.com", &limits).is_err());
    }

    #[test]
    fn unroutable_targets_are_refused_without_dns() {
        let limits = TriggerLimits::default();
        for (url, says) in [
            (
                "https://169.254.169.254/latest/meta-data/",
                "cloud metadata",
            ),
            ("https://[::1]/", "loopback"),
            ("https://10.0.0.1/", "private"),
            ("https://[fd00:ec2::254]/", "cloud metadata"),
            ("https://[::ffff:127.0.0.1]/", "loopback"),
            ("https://2130706433/", "loopback"),
            ("https://100.64.0.1/", "carrier-grade"),
            ("https://[fe80::1]/", "link-local"),
            ("https://[4000::1]/", "global"),
            ("https://localhost/hook", "loopback name"),
            ("https://metadata/computeMetadata/v1/", "single-label"),
            ("https://metadata.google.internal/", "local network"),
            ("https://hooks.example.com:22/", "allowed port"),
        ] {
            let message = WebhookUrl::parse(url, &limits).expect_err(url);
            assert!(message.contains(says), "{url}: {message}");
        }
        assert!(WebhookUrl::parse("https://hooks.example.com:8443/x", &limits).is_ok());
        assert!(WebhookUrl::parse("https://93.184.216.34/x", &limits).is_ok());
    }

    #[test]
    fn local_development_allows_loopback_receivers_and_nothing_private() {
        let limits = TriggerLimits {
            webhook_targets: TargetPolicy::local_development(),
            ..TriggerLimits::default()
        };
        for url in [
            "http://127.0.0.1:9100/hooks/demo",
            "http://localhost:9000/hook",
            "http://[::1]:4000/x",
        ] {
            assert!(WebhookUrl::parse(url, &limits).is_ok(), "{url}");
        }
        for url in [
            "http://10.0.0.1:9100/x",
            "http://192.168.1.20/x",
            "http://169.254.169.254/",
            "http://printer.local/x",
        ] {
            assert!(WebhookUrl::parse(url, &limits).is_err(), "{url}");
        }
    }

    #[test]
    fn the_url_limit_holds_once_percent_encoded() {
        let limits = TriggerLimits::default();
        let raw = format!("https://hooks.example.com/{}", "é".repeat(1000));
        assert!(raw.chars().count() <= limits.max_url_chars);
        let message = WebhookUrl::parse(&raw, &limits).unwrap_err();
        assert!(message.contains("percent-encoded"), "{message}");
    }

    #[test]
    fn names_are_limited_in_characters_not_bytes() {
        let limits = TriggerLimits::default();
        let mut body = valid();
        body["name"] = json!("é".repeat(200));
        assert!(TriggerBody::parse(&body, BodyKind::Create, &limits).is_ok());
        body["name"] = json!("é".repeat(201));
        let errors = TriggerBody::parse(&body, BodyKind::Create, &limits).unwrap_err();
        assert_eq!(errors[0].message, "must be at most 200 characters");
    }

    #[test]
    fn cooldowns_read_human_durations_within_bounds() {
        let limits = TriggerLimits::default();
        assert_eq!(
            Cooldown::parse("1h 30m", &limits).map(|c| c.as_secs()),
            Ok(5400)
        );
        assert_eq!(
            Cooldown::parse("90s", &limits).map(|c| c.to_text()),
            Ok("1m 30s".to_owned())
        );
        assert!(Cooldown::parse("0s", &limits).is_err());
        assert!(Cooldown::parse("400d", &limits).is_err());
        assert!(Cooldown::parse("1.5s", &limits).is_err());
    }

    #[test]
    fn replaced_actions_keep_the_ids_the_client_sent_back() {
        let limits = TriggerLimits::default();
        let url = WebhookUrl::parse("https://example.com/a", &limits).expect("url");
        let old = Action {
            id: ActionId::new(),
            kind: ActionKind::Webhook,
            url: url.clone(),
            enabled: false,
            disabled_reason: Some("410 Gone".into()),
        };
        let spec = vec![
            ActionSpec {
                id: Some(old.id),
                url: url.clone(),
                enabled: false,
            },
            ActionSpec {
                id: Some(old.id),
                url: url.clone(),
                enabled: true,
            },
            ActionSpec {
                id: Some(ActionId::new()),
                url,
                enabled: true,
            },
        ];
        let new = assign_action_ids(&spec, std::slice::from_ref(&old));
        assert_eq!(new[0].id, old.id);
        assert_eq!(new[0].disabled_reason.as_deref(), Some("410 Gone"));
        assert_ne!(new[1].id, old.id, "an id is kept at most once");
        assert_ne!(new[2].id, old.id);
        assert_eq!(new[2].disabled_reason, None);
    }
}
