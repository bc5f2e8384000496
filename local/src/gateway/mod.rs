//! The local HTTP API: API Gateway (HTTP API, payload format 2.0) in front of the functions.
//!
//! Each request is matched to a route of template.yaml ([`routes`]), its authorizer runs first
//! when the route has one (see [`crate::authorizer`]), and the route's function gets the API
//! Gateway v2 event AWS would send ([`events`]). The function's answer is turned back into an
//! HTTP response by API Gateway's rules; failures get API Gateway's own answers
//! (`{"message": "..."}` with 401, 403, 404, 413, 500, 502 or 503; [`response`]). This file
//! holds the request's way through those steps.

pub mod events;
pub mod response;
pub mod routes;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::apigw::{
    ApiGatewayRequestAuthorizer, ApiGatewayRequestAuthorizerJwtDescription,
};
use axum::extract::{ConnectInfo, State};
use axum::response::Response;
use http::StatusCode;
use serde_json::Value;

pub use self::events::Incoming;
use self::response::{gateway_error, response_of};
pub use self::routes::match_route;
use crate::authorizer::{self, Cache, Decision};
use crate::invoke::{Invoke, InvokeError};
use crate::log::{self, Kind, Outcome};
use crate::template::{IdentitySource, RouteMatch, Template};

/// API Gateway's limit on a request body.
const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;
/// The API id in events and ARNs.
pub const API_ID: &str = "local";

/// A route, ready to serve.
#[derive(Debug, Clone)]
pub struct GatewayRoute {
    pub route_key: String,
    pub matcher: RouteMatch,
    pub binary: String,
    pub timeout: Duration,
    pub authorizer: Option<Arc<GatewayAuthorizer>>,
    /// Set when the route names an authorizer the local stack cannot run: answer 500.
    pub unsupported_authorizer: bool,
}

/// A REQUEST authorizer with its cache.
#[derive(Debug)]
pub struct GatewayAuthorizer {
    pub name: String,
    pub binary: String,
    pub identity_sources: Vec<IdentitySource>,
    pub ttl: Duration,
    pub simple_responses: bool,
    pub timeout: Duration,
    pub cache: Cache,
    /// Set for a JWT authorizer, which runs no function.
    pub jwt: Option<Arc<crate::jwt::JwtVerifier>>,
}

/// The gateway's state.
pub struct Gateway<I> {
    pub routes: Vec<GatewayRoute>,
    pub invoker: Arc<I>,
}

impl<I: Invoke> Gateway<I> {
    /// The routes of `template`.
    pub fn from_template(template: &Template, invoker: Arc<I>) -> Self {
        let mut authorizers = BTreeMap::new();
        for (id, a) in &template.authorizers {
            if let Some(config) = &a.jwt {
                // An issuer the local stack cannot reach leaves its routes unsupported (500).
                let Ok(verifier) = crate::jwt::JwtVerifier::new(&config.issuer, &config.audience)
                else {
                    continue;
                };
                authorizers.insert(
                    id.clone(),
                    Arc::new(GatewayAuthorizer {
                        name: a.name.clone(),
                        binary: String::new(),
                        identity_sources: a.identity_sources.clone(),
                        ttl: Duration::ZERO,
                        simple_responses: false,
                        timeout: Duration::from_secs(10),
                        cache: Cache::default(),
                        jwt: Some(Arc::new(verifier)),
                    }),
                );
                continue;
            }
            let Some(function) = template.function(&a.function) else {
                continue;
            };
            authorizers.insert(
                id.clone(),
                Arc::new(GatewayAuthorizer {
                    name: a.name.clone(),
                    binary: function.binary.clone(),
                    identity_sources: a.identity_sources.clone(),
                    ttl: a.ttl,
                    simple_responses: a.simple_responses,
                    // API Gateway waits at most 10 s for an authorizer.
                    timeout: function.timeout.min(Duration::from_secs(10)),
                    cache: Cache::default(),
                    jwt: None,
                }),
            );
        }
        let routes = template
            .routes
            .iter()
            .filter_map(|r| {
                let function = template.function(&r.function)?;
                let authorizer = r
                    .authorizer
                    .as_ref()
                    .and_then(|a| authorizers.get(a).cloned());
                Some(GatewayRoute {
                    route_key: r.route_key.clone(),
                    matcher: r.matcher.clone(),
                    binary: function.binary.clone(),
                    timeout: r.timeout,
                    unsupported_authorizer: r.authorizer.is_some() && authorizer.is_none(),
                    authorizer,
                })
            })
            .collect();
        Self { routes, invoker }
    }

    /// The axum router that serves every path.
    pub fn router(self) -> axum::Router {
        axum::Router::new()
            .fallback(handle::<I>)
            .with_state(Arc::new(self))
    }
}

async fn handle<I: Invoke>(
    State(gateway): State<Arc<Gateway<I>>>,
    request: axum::extract::Request,
) -> Response {
    let started = Instant::now();
    let source_ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "127.0.0.1".to_owned(), |c| c.0.ip().to_string());
    let (parts, body) = request.into_parts();
    let request_id = uuid::Uuid::new_v4().to_string();
    let label = format!("{} {}", parts.method, parts.uri.path());
    let body = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            let r = gateway_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Request Entity Too Large",
                &request_id,
            );
            log::line(
                Kind::Http,
                Outcome::Warn,
                &format!("{label} 413 (body over 10 MB)"),
                Some(started.elapsed()),
            );
            return r;
        }
    };
    let incoming = Incoming {
        method: parts.method.clone(),
        raw_path: parts.uri.path().to_owned(),
        raw_query: parts.uri.query().unwrap_or_default().to_owned(),
        headers: parts.headers,
        body,
        source_ip,
        request_id: request_id.clone(),
        time: chrono::Utc::now(),
    };
    let (response, function, note) = serve(&gateway, &incoming).await;
    let status = response.status();
    let outcome = if status.is_server_error() {
        Outcome::Fail
    } else if status.is_client_error() {
        Outcome::Warn
    } else {
        Outcome::Ok
    };
    let target = function.map(|f| format!(" → {f}")).unwrap_or_default();
    let note = note.map(|n| format!(" ({n})")).unwrap_or_default();
    log::line(
        Kind::Http,
        outcome,
        &format!("{label}{target} {}{note}", status.as_u16()),
        Some(started.elapsed()),
    );
    response
}

/// Serves one request: the response, the function that answered it, and a note for the log.
async fn serve<'g, I: Invoke>(
    gateway: &'g Gateway<I>,
    incoming: &Incoming,
) -> (Response, Option<&'g str>, Option<String>) {
    let rid = incoming.request_id.as_str();
    let Some((route, params)) = match_route(
        &gateway.routes,
        incoming.method.as_str(),
        &incoming.raw_path,
    ) else {
        return (
            gateway_error(StatusCode::NOT_FOUND, "Not Found", rid),
            None,
            Some("no route".into()),
        );
    };
    let function = Some(route.binary.as_str());
    if route.unsupported_authorizer {
        return (
            gateway_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal Server Error",
                rid,
            ),
            function,
            Some("the route's authorizer is not emulated".into()),
        );
    }
    let mut granted = None;
    if let Some(verifier) = route.authorizer.as_ref().and_then(|a| a.jwt.as_ref()) {
        match verify_jwt(verifier, incoming).await {
            Ok(jwt) => granted = Some(jwt),
            Err(why) => {
                return (
                    gateway_error(StatusCode::UNAUTHORIZED, "Unauthorized", rid),
                    function,
                    Some(why),
                );
            }
        }
    } else if let Some(auth) = &route.authorizer {
        match authorize(gateway, auth, incoming, &route.route_key, &params).await {
            Ok(Decision::Allow { context }) => {
                let mut lambda = ApiGatewayRequestAuthorizer::default();
                lambda.fields = context.into_iter().collect();
                granted = Some(lambda);
            }
            Ok(Decision::Deny) => {
                return (
                    gateway_error(StatusCode::FORBIDDEN, "Forbidden", rid),
                    function,
                    Some("denied by the authorizer".into()),
                );
            }
            Err(AuthFailure::NoIdentity) => {
                return (
                    gateway_error(StatusCode::UNAUTHORIZED, "Unauthorized", rid),
                    function,
                    Some("identity source missing".into()),
                );
            }
            Err(AuthFailure::Broken(why)) => {
                return (
                    gateway_error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "Internal Server Error",
                        rid,
                    ),
                    function,
                    Some(format!("authorizer failed: {why}")),
                );
            }
        }
    }
    let event = incoming.route_event_with(&route.route_key, &params, granted);
    let payload = match events::payload(&event) {
        Ok(payload) => payload,
        Err(e) => {
            return (
                gateway_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Internal Server Error",
                    rid,
                ),
                function,
                Some(format!("the request cannot be written as an event: {e}")),
            );
        }
    };
    match gateway
        .invoker
        .invoke(&route.binary, payload, route.timeout)
        .await
    {
        Ok(result) => match response_of(&result, rid) {
            Ok(response) => (response, function, None),
            Err(why) => (
                gateway_error(StatusCode::BAD_GATEWAY, "Internal Server Error", rid),
                function,
                Some(format!("malformed Lambda proxy response: {why}")),
            ),
        },
        Err(InvokeError::Timeout(after)) => (
            gateway_error(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable", rid),
            function,
            Some(format!(
                "integration timed out after {}",
                log::millis(after)
            )),
        ),
        Err(e) => (
            gateway_error(StatusCode::BAD_GATEWAY, "Internal Server Error", rid),
            function,
            Some(e.to_string()),
        ),
    }
}

/// A JWT authorizer's check of the `Authorization` header: the `jwt` authorizer context, or
/// why the request gets 401.
async fn verify_jwt(
    verifier: &crate::jwt::JwtVerifier,
    incoming: &Incoming,
) -> Result<ApiGatewayRequestAuthorizer, String> {
    let started = Instant::now();
    let Some(identity) = incoming.header("authorization").filter(|v| !v.is_empty()) else {
        return Err("identity source missing".into());
    };
    let verified = verifier.verify(&identity).await;
    let (outcome, text) = match &verified {
        Ok(_) => (Outcome::Ok, "allow".to_owned()),
        Err(why) => (Outcome::Warn, format!("deny: {why}")),
    };
    log::line(
        Kind::Auth,
        outcome,
        &format!("JWT → {text}"),
        Some(started.elapsed()),
    );
    let verified = verified.map_err(|why| format!("JWT refused: {why}"))?;
    let mut jwt = ApiGatewayRequestAuthorizerJwtDescription::default();
    jwt.claims = verified.claims;
    jwt.scopes = verified.scopes;
    let mut authorizer = ApiGatewayRequestAuthorizer::default();
    authorizer.jwt = Some(jwt);
    Ok(authorizer)
}

enum AuthFailure {
    NoIdentity,
    Broken(String),
}

async fn authorize<I: Invoke>(
    gateway: &Gateway<I>,
    auth: &GatewayAuthorizer,
    incoming: &Incoming,
    route_key: &str,
    params: &BTreeMap<String, String>,
) -> Result<Decision, AuthFailure> {
    let query = incoming.query();
    let identity = authorizer::identity(
        &auth.identity_sources,
        |h| incoming.header(h),
        |q| query.get(q).map(|values| values.join(",")),
    )
    .ok_or(AuthFailure::NoIdentity)?;
    let now = tokio::time::Instant::now();
    if let Some(decision) = auth.cache.get(&identity, now) {
        return Ok(decision);
    }
    let started = Instant::now();
    let event = incoming.authorizer_event(route_key, params, &identity);
    let result = match events::payload(&event) {
        Ok(payload) => gateway
            .invoker
            .invoke(&auth.binary, payload, auth.timeout)
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(format!("the request cannot be written as an event: {e}")),
    };
    let decision = result
        .and_then(|bytes| {
            serde_json::from_slice::<Value>(&bytes).map_err(|e| format!("not JSON: {e}"))
        })
        .and_then(|answer| authorizer::decision(&answer, auth.simple_responses));
    let (outcome, text) = match &decision {
        Ok(Decision::Allow { .. }) => (Outcome::Ok, "allow".to_owned()),
        Ok(Decision::Deny) => (Outcome::Warn, "deny".to_owned()),
        Err(why) => (Outcome::Fail, format!("error: {why}")),
    };
    log::line(
        Kind::Auth,
        outcome,
        &format!("{} → {} {text}", auth.name, auth.binary),
        Some(started.elapsed()),
    );
    let decision = decision.map_err(AuthFailure::Broken)?;
    auth.cache.put(identity, decision.clone(), auth.ttl, now);
    Ok(decision)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use serde_json::json;

    use super::*;
    use crate::invoke::fake::FakeInvoker;

    /// A route to `binary` for `key`, with a 2 s integration timeout.
    pub(crate) fn route(
        key: &str,
        binary: &str,
        authorizer: Option<Arc<GatewayAuthorizer>>,
    ) -> GatewayRoute {
        GatewayRoute {
            route_key: key.to_owned(),
            matcher: crate::template::parse_route_key(key).expect("route key"),
            binary: binary.to_owned(),
            timeout: Duration::from_secs(2),
            authorizer,
            unsupported_authorizer: false,
        }
    }

    fn authorizer(ttl: u64) -> Arc<GatewayAuthorizer> {
        Arc::new(GatewayAuthorizer {
            name: "api-key".into(),
            binary: "authorize".into(),
            identity_sources: vec![IdentitySource::Header("authorization".into())],
            ttl: Duration::from_secs(ttl),
            simple_responses: true,
            timeout: Duration::from_secs(2),
            cache: Cache::default(),
            jwt: None,
        })
    }

    async fn start(gateway: Gateway<FakeInvoker>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = gateway
            .router()
            .into_make_service_with_connect_info::<SocketAddr>();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    /// A fake stack: the authorizer allows `Bearer good` (tenant t1), the route echoes what
    /// it was given, `boom` fails, `slow` never answers in time.
    fn fake(authorizer_calls: Arc<AtomicUsize>) -> FakeInvoker {
        FakeInvoker::new(move |binary, event| match binary {
            "authorize" => {
                authorizer_calls.fetch_add(1, Ordering::SeqCst);
                let allowed = event["headers"]["authorization"] == "Bearer good";
                Ok(json!({"isAuthorized": allowed, "context": {"tenant_id": "t1"}}))
            }
            "echo" => Ok(
                json!({"statusCode": 200, "headers": {"content-type": "application/json"},
                "body": json!({"tenant": event["requestContext"]["authorizer"]["lambda"]["tenant_id"],
                               "id": event["pathParameters"]["id"], "q": event["queryStringParameters"]}).to_string()}),
            ),
            "boom" => Err(InvokeError::Function {
                error_type: "Panic".into(),
                message: "no".into(),
            }),
            "slow" => Err(InvokeError::Timeout(Duration::from_secs(2))),
            other => panic!("unexpected function {other}"),
        })
    }

    #[tokio::test]
    async fn requests_pass_the_authorizer_once_per_key_and_reach_their_function() {
        let calls = Arc::new(AtomicUsize::new(0));
        let invoker = Arc::new(fake(calls.clone()));
        let auth = authorizer(300);
        let gateway = Gateway {
            routes: vec![
                route("GET /things/{id}", "echo", Some(auth.clone())),
                route("POST /boom", "boom", Some(auth.clone())),
                route("POST /slow", "slow", None),
            ],
            invoker: invoker.clone(),
        };
        let base = start(gateway).await;
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        let get = |key: Option<&'static str>, path: &'static str| {
            let mut r = client.get(format!("{base}{path}"));
            if let Some(k) = key {
                r = r.header("authorization", k);
            }
            r.send()
        };

        let r = get(Some("Bearer good"), "/things/42?x=1")
            .await
            .expect("answer");
        assert_eq!(r.status(), 200);
        assert!(r.headers().contains_key("apigw-requestid"));
        let body: Value = r.json_body().await;
        assert_eq!(body, json!({"tenant": "t1", "id": "42", "q": {"x": "1"}}));
        let r = get(Some("Bearer good"), "/things/43")
            .await
            .expect("answer");
        assert_eq!(r.status(), 200);
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "the second request used the cached answer"
        );

        let r = get(Some("Bearer bad"), "/things/1").await.expect("answer");
        assert_eq!(r.status(), 403);
        assert_eq!(r.json_body().await, json!({"message": "Forbidden"}));
        let r = get(Some("Bearer bad"), "/things/1").await.expect("answer");
        assert_eq!(r.status(), 403);
        assert_eq!(calls.load(Ordering::SeqCst), 2, "denials are cached too");

        let r = get(None, "/things/1").await.expect("answer");
        assert_eq!(r.status(), 401);
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "no identity, no authorizer call"
        );

        let r = get(Some("Bearer good"), "/nothing").await.expect("answer");
        assert_eq!(r.status(), 404);
        assert_eq!(r.json_body().await, json!({"message": "Not Found"}));

        let r = client
            .post(format!("{base}/boom"))
            .header("authorization", "Bearer good")
            .send()
            .await
            .expect("answer");
        assert_eq!(r.status(), 502);
        let r = client
            .post(format!("{base}/slow"))
            .send()
            .await
            .expect("answer");
        assert_eq!(r.status(), 503);

        assert_eq!(invoker.calls_to("echo").len(), 2);
        assert!(invoker.calls_to("boom").len() == 1);
    }

    /// The Cognito branch: a token signed by the issuer's (local) key reaches the route as the
    /// `jwt` authorizer context, and TriggerIQ's own request code reads the tenant and the
    /// scopes from it; a forged, expired or missing token stops at the gateway with 401.
    #[tokio::test]
    async fn a_signed_jwt_reaches_the_route_as_its_tenant_and_scopes_and_others_get_401() {
        use crate::jwt::tests::{SIGNING_KEY, TENANT, claims, issuer, sign};
        use jsonwebtoken::Algorithm;

        let issuer = issuer().await;
        let verifier =
            crate::jwt::JwtVerifier::new(&issuer, &["app-client".to_owned()]).expect("verifier");
        let auth = Arc::new(GatewayAuthorizer {
            name: "cognito-jwt".into(),
            binary: String::new(),
            identity_sources: vec![IdentitySource::Header("authorization".into())],
            ttl: Duration::ZERO,
            simple_responses: false,
            timeout: Duration::from_secs(2),
            cache: Cache::default(),
            jwt: Some(Arc::new(verifier)),
        });
        // The route runs TriggerIQ's request code on the event the gateway built.
        let invoker = Arc::new(FakeInvoker::new(|binary, event| {
            assert_eq!(binary, "whoami");
            let request = lambda_http::request::from_str(&event.to_string()).map_err(|e| {
                InvokeError::Function {
                    error_type: "BadEvent".into(),
                    message: e.to_string(),
                }
            })?;
            let tenant = triggeriq::api::tenant(&request)
                .map(|t| t.to_string())
                .unwrap_or_default();
            let scopes = triggeriq::api::scopes(&request).to_string();
            Ok(
                json!({"statusCode": 200, "headers": {"content-type": "application/json"},
                      "body": json!({"tenant": tenant, "scopes": scopes}).to_string()}),
            )
        }));
        let gateway = Gateway {
            routes: vec![route("GET /whoami", "whoami", Some(auth))],
            invoker: invoker.clone(),
        };
        let base = start(gateway).await;
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        let call = |authorization: Option<String>| {
            let mut r = client.get(format!("{base}/whoami"));
            if let Some(a) = authorization {
                r = r.header("authorization", a);
            }
            r.send()
        };

        let token = sign(
            &claims(&issuer),
            SIGNING_KEY,
            "jwt-signing-key",
            Algorithm::RS256,
        );
        let r = call(Some(format!("Bearer {token}"))).await.expect("answer");
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.json_body().await,
            json!({"tenant": TENANT, "scopes": "read admin"})
        );

        let mut expired = claims(&issuer);
        expired["exp"] = json!(chrono::Utc::now().timestamp() - 5);
        let expired = sign(&expired, SIGNING_KEY, "jwt-signing-key", Algorithm::RS256);
        let mut forged = token.clone();
        forged.push('A');
        for refused in [Some(format!("Bearer {expired}")), Some(forged), None] {
            let r = call(refused).await.expect("answer");
            assert_eq!(r.status(), 401);
            assert_eq!(r.json_body().await, json!({"message": "Unauthorized"}));
        }
        assert_eq!(
            invoker.calls_to("whoami").len(),
            1,
            "only the valid token got through"
        );
    }

    #[tokio::test]
    async fn an_authorizer_without_cache_runs_on_every_request_and_its_errors_answer_500() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let invoker = Arc::new(FakeInvoker::new(move |binary, _| match binary {
            "authorize" => {
                let n = counted.fetch_add(1, Ordering::SeqCst);
                if n == 2 {
                    Ok(json!({"unexpected": true}))
                } else {
                    Ok(json!({"isAuthorized": true, "context": {"tenant_id": "t"}}))
                }
            }
            _ => Ok(json!({"statusCode": 204})),
        }));
        let gateway = Gateway {
            routes: vec![route("GET /x", "echo", Some(authorizer(0)))],
            invoker,
        };
        let base = start(gateway).await;
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        for expected in [204, 204, 500, 204] {
            let r = client
                .get(format!("{base}/x"))
                .header("authorization", "Bearer k")
                .send()
                .await
                .expect("answer");
            assert_eq!(r.status(), expected);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    trait JsonBody {
        async fn json_body(self) -> Value;
    }
    impl JsonBody for reqwest::Response {
        async fn json_body(self) -> Value {
            serde_json::from_slice(&self.bytes().await.expect("body")).expect("JSON body")
        }
    }
}
