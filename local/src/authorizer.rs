//! Lambda REQUEST authorizers as API Gateway HTTP APIs run them: the identity sources must all
//! be present (else 401 without calling the function), the function's answer is read as a
//! simple response (`{isAuthorized, context}`) or an IAM policy, and the answer — allow or deny
//! — is cached per identity-source values for `AuthorizerResultTtlInSeconds`. Errors are not
//! cached.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::time::Instant;

use crate::template::IdentitySource;

/// What an authorizer decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Let the request through; `context` becomes `requestContext.authorizer.lambda`.
    Allow {
        context: Map<String, Value>,
    },
    Deny,
}

/// The identity-source values of a request, in the authorizer's order, or `None` when one is
/// missing or empty (API Gateway then answers 401 without calling the authorizer).
pub fn identity(
    sources: &[IdentitySource],
    header: impl Fn(&str) -> Option<String>,
    query: impl Fn(&str) -> Option<String>,
) -> Option<Vec<String>> {
    sources
        .iter()
        .map(|source| match source {
            IdentitySource::Header(name) => header(name),
            IdentitySource::Query(name) => query(name),
        })
        .map(|v| v.filter(|v| !v.is_empty()))
        .collect()
}

/// Reads an authorizer function's answer.
pub fn decision(answer: &Value, simple: bool) -> Result<Decision, String> {
    let context = match answer.get("context") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(map)) => map.clone(),
        Some(_) => return Err("`context` must be an object".into()),
    };
    let allowed = if simple {
        answer
            .get("isAuthorized")
            .and_then(Value::as_bool)
            .ok_or("a simple response needs a boolean `isAuthorized`")?
    } else {
        let statements = answer
            .pointer("/policyDocument/Statement")
            .and_then(Value::as_array)
            .ok_or("an IAM policy response needs policyDocument.Statement")?;
        let effect = |e: &str| {
            statements
                .iter()
                .any(|s| s.get("Effect").and_then(Value::as_str) == Some(e))
        };
        effect("Allow") && !effect("Deny")
    };
    Ok(if allowed {
        Decision::Allow { context }
    } else {
        Decision::Deny
    })
}

/// Cached decisions of one authorizer, keyed by identity-source values.
#[derive(Debug, Default)]
pub struct Cache {
    entries: Mutex<HashMap<Vec<String>, (Decision, Instant)>>,
}

impl Cache {
    /// The cached decision for `identity`, if still fresh at `now`.
    pub fn get(&self, identity: &[String], now: Instant) -> Option<Decision> {
        let mut entries = self.entries.lock().ok()?;
        match entries.get(identity) {
            Some((decision, expires)) if *expires > now => Some(decision.clone()),
            Some(_) => {
                entries.remove(identity);
                None
            }
            None => None,
        }
    }

    /// Remembers `decision` for `ttl` from `now` (nothing when `ttl` is zero).
    pub fn put(&self, identity: Vec<String>, decision: Decision, ttl: Duration, now: Instant) {
        if ttl.is_zero() {
            return;
        }
        if let Ok(mut entries) = self.entries.lock() {
            // Bounded: a client cycling through keys must not grow the gateway without end.
            if entries.len() >= 10_000 {
                entries.retain(|_, (_, expires)| *expires > now);
            }
            entries.insert(identity, (decision, now + ttl));
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_identity_source_must_be_present_and_non_empty() {
        let sources = [
            IdentitySource::Header("authorization".into()),
            IdentitySource::Query("tenant".into()),
        ];
        let query = |_: &str| Some("t".to_owned());
        assert_eq!(
            identity(&sources, |_| Some("Bearer k".to_owned()), query),
            Some(vec!["Bearer k".into(), "t".into()])
        );
        assert_eq!(identity(&sources, |_| None, query), None);
        assert_eq!(identity(&sources, |_| Some(String::new()), query), None);
    }

    #[test]
    fn simple_and_policy_answers_are_read() {
        let allow = decision(
            &json!({"isAuthorized": true, "context": {"tenant_id": "t"}}),
            true,
        );
        assert_eq!(
            allow,
            Ok(Decision::Allow {
                context: json!({"tenant_id": "t"})
                    .as_object()
                    .cloned()
                    .unwrap_or_default()
            })
        );
        assert_eq!(
            decision(&json!({"isAuthorized": false}), true),
            Ok(Decision::Deny)
        );
        assert!(decision(&json!({"isAuthorized": "yes"}), true).is_err());
        assert!(decision(&json!({"isAuthorized": true, "context": 3}), true).is_err());
        let policy = |effects: &[&str]| {
            json!({"principalId": "p", "policyDocument": {"Version": "2012-10-17",
                "Statement": effects.iter().map(|e| json!({"Action": "execute-api:Invoke", "Effect": e, "Resource": "*"})).collect::<Vec<_>>()}})
        };
        assert!(matches!(
            decision(&policy(&["Allow"]), false),
            Ok(Decision::Allow { .. })
        ));
        assert_eq!(
            decision(&policy(&["Allow", "Deny"]), false),
            Ok(Decision::Deny)
        );
        assert!(decision(&json!({}), false).is_err());
    }

    #[test]
    fn decisions_are_cached_per_identity_until_the_ttl_runs_out() {
        let cache = Cache::default();
        let t0 = Instant::now();
        let key = vec!["Bearer a".to_owned()];
        cache.put(key.clone(), Decision::Deny, Duration::from_secs(300), t0);
        assert_eq!(
            cache.get(&key, t0 + Duration::from_secs(299)),
            Some(Decision::Deny)
        );
        assert_eq!(cache.get(&["Bearer b".to_owned()], t0), None);
        assert_eq!(cache.get(&key, t0 + Duration::from_secs(300)), None);
        cache.put(key.clone(), Decision::Deny, Duration::ZERO, t0);
        assert_eq!(cache.get(&key, t0), None);
    }
}
