//! The HTTP API: routes (route key, the integration's function and timeout, the authorizer)
//! and Lambda REQUEST authorizers, both payload format 2.0 only.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::Value as Json;

use super::{Resource, Template};
use crate::intrinsic::ResolveError;

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

/// A Lambda REQUEST authorizer, or a JWT authorizer (`jwt` set, no function).
#[derive(Debug, Clone)]
pub struct Authorizer {
    pub name: String,
    /// The REQUEST authorizer's function (empty for a JWT authorizer).
    pub function: String,
    /// `JwtConfiguration` of a JWT authorizer.
    pub jwt: Option<JwtConfig>,
    pub identity_sources: Vec<IdentitySource>,
    /// `AuthorizerResultTtlInSeconds` (0: no caching).
    pub ttl: Duration,
    /// `EnableSimpleResponses`: `{isAuthorized, context}` rather than an IAM policy.
    pub simple_responses: bool,
}

/// A JWT authorizer's `JwtConfiguration`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtConfig {
    pub issuer: String,
    pub audience: Vec<String>,
}

impl Template {
    /// Integration logical id → (function logical id, timeout).
    pub(super) fn integrations(
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

    pub(super) fn add_authorizer(
        &mut self,
        r: &Resource<'_>,
        ids: &BTreeMap<String, String>,
    ) -> anyhow::Result<()> {
        let kind = self.string(ids, r.get("AuthorizerType"), &r.path("AuthorizerType"))?;
        if kind.as_deref() == Some("JWT") {
            return self.add_jwt_authorizer(r, ids);
        }
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
                jwt: None,
                identity_sources: sources,
                ttl: Duration::from_secs(ttl),
                simple_responses: simple,
            },
        );
        Ok(())
    }

    /// A JWT authorizer: its issuer and audiences (the identity source is the
    /// `Authorization` header, as API Gateway's default).
    fn add_jwt_authorizer(
        &mut self,
        r: &Resource<'_>,
        ids: &BTreeMap<String, String>,
    ) -> anyhow::Result<()> {
        let config = self
            .json(ids, r.get("JwtConfiguration"), &r.path("JwtConfiguration"))?
            .unwrap_or(Json::Null);
        let issuer = config
            .get("Issuer")
            .and_then(Json::as_str)
            .filter(|i| !i.is_empty())
            .ok_or_else(|| ResolveError::new(&r.path("JwtConfiguration"), "needs an Issuer"))?
            .to_owned();
        let audience = match config.get("Audience") {
            Some(Json::Array(list)) => list
                .iter()
                .filter_map(Json::as_str)
                .map(str::to_owned)
                .collect(),
            Some(Json::String(one)) => vec![one.clone()],
            _ => Vec::new(),
        };
        let name = self
            .string(ids, r.get("Name"), &r.path("Name"))?
            .unwrap_or_else(|| r.id.to_owned());
        self.authorizers.insert(
            r.id.to_owned(),
            Authorizer {
                name,
                function: String::new(),
                jwt: Some(JwtConfig { issuer, audience }),
                identity_sources: vec![IdentitySource::Header("authorization".into())],
                ttl: Duration::ZERO,
                simple_responses: false,
            },
        );
        Ok(())
    }

    pub(super) fn add_route(
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
            "CUSTOM" | "JWT" => Some(self.reference(
                ids,
                r.get("AuthorizerId"),
                &r.path("AuthorizerId"),
                &["AWS::ApiGatewayV2::Authorizer"],
            )?),
            other => anyhow::bail!(
                "{}: authorization type {other} is not emulated locally (only NONE, CUSTOM and JWT)",
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

    pub(super) fn check_references(&self) -> anyhow::Result<()> {
        // A route whose authorizer is not emulated (warned about) answers 500 at run time.
        let mut seen = BTreeSet::new();
        for route in &self.routes {
            if !seen.insert(route.route_key.clone()) {
                anyhow::bail!("route key {:?} is declared twice", route.route_key);
            }
        }
        Ok(())
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::tests::repo_template;

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
        assert_eq!(authorizer.ttl, Duration::from_secs(60));
        assert!(authorizer.simple_responses);
        // The Cognito authorizer's condition is false locally: it is not there at all.
        assert!(t.authorizers.values().all(|a| a.name != "cognito-jwt"));
        assert!(t.routes.iter().all(|r| r.authorizer.is_some()));
    }

    #[test]
    fn with_a_cognito_issuer_every_route_is_behind_the_jwt_authorizer() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
        let overrides = BTreeMap::from([
            (
                "CognitoIssuerUrl".to_owned(),
                "http://127.0.0.1:9/pool".to_owned(),
            ),
            ("CognitoAudience".to_owned(), "app-client".to_owned()),
        ]);
        let t = crate::template::Template::load(
            std::path::Path::new(path),
            "triggeriq-local",
            &overrides,
        )
        .expect("template.yaml loads");
        let (id, jwt) = t
            .authorizers
            .iter()
            .find(|(_, a)| a.name == "cognito-jwt")
            .expect("the JWT authorizer");
        assert_eq!(
            jwt.jwt,
            Some(JwtConfig {
                issuer: "http://127.0.0.1:9/pool".into(),
                audience: vec!["app-client".into()],
            })
        );
        assert!(!t.routes.is_empty());
        assert!(
            t.routes
                .iter()
                .all(|r| r.authorizer.as_deref() == Some(id.as_str())),
            "every route uses it"
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
