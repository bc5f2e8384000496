//! The local HTTP API: API Gateway (HTTP API, payload format 2.0) in front of the functions.
//!
//! Each request is matched to a route of template.yaml (literal segments before `{vars}`,
//! a specific method before `ANY`, greedy `{proxy+}` after both, `$default` last), its
//! authorizer runs first when the route has one (see [`super::authorizer`]), and the route's
//! function gets the API Gateway v2 event AWS would send. The function's answer is turned
//! back into an HTTP response by API Gateway's rules; failures get API Gateway's own answers
//! (`{"message": "..."}` with 401, 403, 404, 413, 500, 502 or 503).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use serde_json::{Map, Value, json};

use super::authorizer::{self, Cache, Decision};
use super::invoke::{Invoke, InvokeError};
use super::log::{self, Kind, Outcome};
use super::template::{ACCOUNT_ID, IdentitySource, REGION, RouteMatch, Template};

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

/// The route for `method` and `path`, with its path parameters.
pub fn match_route<'a>(
    routes: &'a [GatewayRoute],
    method: &str,
    path: &str,
) -> Option<(&'a GatewayRoute, BTreeMap<String, String>)> {
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    // (not greedy, literal segments, specific method): the larger, the more specific.
    type Score = (bool, usize, bool);
    let mut best: Option<(Score, &GatewayRoute, BTreeMap<String, String>)> = None;
    let mut fallback = None;
    for route in routes {
        let (route_method, route_path) = match &route.matcher {
            RouteMatch::Default => {
                fallback = Some(route);
                continue;
            }
            RouteMatch::Path { method, path } => (method, path),
        };
        if route_method != "ANY" && route_method != method {
            continue;
        }
        let Some((params, literals, greedy)) = match_path(route_path, &segments) else {
            continue;
        };
        let score = (!greedy, literals, route_method != "ANY");
        if best.as_ref().is_none_or(|(s, _, _)| score > *s) {
            best = Some((score, route, params));
        }
    }
    best.map(|(_, r, p)| (r, p))
        .or_else(|| fallback.map(|r| (r, BTreeMap::new())))
}

/// Matches a route path against request segments: parameters, literal count, greedy or not.
fn match_path(
    route_path: &str,
    segments: &[&str],
) -> Option<(BTreeMap<String, String>, usize, bool)> {
    let pattern: Vec<&str> = route_path.split('/').skip(1).collect();
    let mut params = BTreeMap::new();
    let mut literals = 0;
    for (i, part) in pattern.iter().enumerate() {
        if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix("+}")) {
            if i >= segments.len() {
                return None;
            }
            let rest = segments[i..].join("/");
            if rest.is_empty() {
                return None;
            }
            params.insert(name.to_owned(), decode(&rest));
            return Some((params, literals, true));
        }
        let segment = segments.get(i)?;
        if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            if segment.is_empty() {
                return None;
            }
            params.insert(name.to_owned(), decode(segment));
        } else if part == segment {
            literals += 1;
        } else {
            return None;
        }
    }
    (pattern.len() == segments.len()).then_some((params, literals, false))
}

fn decode(raw: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", raw.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// API Gateway's own error answers.
fn gateway_error(status: StatusCode, message: &str, request_id: &str) -> Response {
    let mut response = Response::new(Body::from(json!({ "message": message }).to_string()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = HeaderValue::from_str(request_id) {
        headers.insert("apigw-requestid", v);
    }
    response
}

/// The request as the event builders need it.
pub struct Incoming {
    pub method: Method,
    pub raw_path: String,
    pub raw_query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub source_ip: String,
    pub request_id: String,
    pub time: chrono::DateTime<chrono::Utc>,
}

impl Incoming {
    /// Header values joined by commas, as API Gateway v2 does; `cookie` is left to `cookies`.
    fn header_map(&self) -> Map<String, Value> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, value) in &self.headers {
            if name == http::header::COOKIE {
                continue;
            }
            out.entry(name.as_str().to_owned())
                .or_default()
                .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
        }
        let mut map: Map<String, Value> = out
            .into_iter()
            .map(|(k, v)| (k, Value::String(v.join(","))))
            .collect();
        // What API Gateway adds in front of every integration.
        map.entry("x-forwarded-for")
            .or_insert_with(|| Value::String(self.source_ip.clone()));
        map.entry("x-forwarded-proto")
            .or_insert_with(|| Value::String("http".into()));
        map
    }

    fn header(&self, name: &str) -> Option<String> {
        let values: Vec<String> = self
            .headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        (!values.is_empty()).then(|| values.join(","))
    }

    fn query_map(&self) -> Map<String, Value> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, v) in url::form_urlencoded::parse(self.raw_query.as_bytes()) {
            out.entry(k.into_owned()).or_default().push(v.into_owned());
        }
        out.into_iter()
            .map(|(k, v)| (k, Value::String(v.join(","))))
            .collect()
    }

    fn cookies(&self) -> Vec<Value> {
        self.headers
            .get_all(http::header::COOKIE)
            .iter()
            .flat_map(|v| {
                String::from_utf8_lossy(v.as_bytes())
                    .split(';')
                    .map(|c| c.trim().to_owned())
                    .filter(|c| !c.is_empty())
                    .collect::<Vec<_>>()
            })
            .map(Value::String)
            .collect()
    }

    fn request_context(&self, route_key: &str) -> Value {
        let host = self.header("host").unwrap_or_else(|| "localhost".into());
        let prefix = host.split(['.', ':']).next().unwrap_or_default().to_owned();
        json!({
            "accountId": ACCOUNT_ID,
            "apiId": API_ID,
            "domainName": host,
            "domainPrefix": prefix,
            "http": {
                "method": self.method.as_str(),
                "path": self.raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": self.source_ip,
                "userAgent": self.header("user-agent").unwrap_or_default(),
            },
            "requestId": self.request_id,
            "routeKey": route_key,
            "stage": "$default",
            "time": self.time.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
            "timeEpoch": self.time.timestamp_millis(),
        })
    }

    fn common(&self, route_key: &str, params: &BTreeMap<String, String>) -> Map<String, Value> {
        let mut event = Map::new();
        event.insert("version".into(), json!("2.0"));
        event.insert("routeKey".into(), json!(route_key));
        event.insert("rawPath".into(), json!(self.raw_path));
        event.insert("rawQueryString".into(), json!(self.raw_query));
        let cookies = self.cookies();
        if !cookies.is_empty() {
            event.insert("cookies".into(), Value::Array(cookies));
        }
        event.insert("headers".into(), Value::Object(self.header_map()));
        let query = self.query_map();
        if !query.is_empty() {
            event.insert("queryStringParameters".into(), Value::Object(query));
        }
        if !params.is_empty() {
            event.insert("pathParameters".into(), json!(params));
        }
        event.insert("requestContext".into(), self.request_context(route_key));
        event
    }

    /// The API Gateway v2 event for a route function.
    pub fn route_event(
        &self,
        route_key: &str,
        params: &BTreeMap<String, String>,
        authorizer_context: Option<&Map<String, Value>>,
    ) -> Value {
        let mut event = self.common(route_key, params);
        if let (Some(ctx), Some(Value::Object(rc))) =
            (authorizer_context, event.get_mut("requestContext"))
        {
            rc.insert("authorizer".into(), json!({ "lambda": ctx }));
        }
        if !self.body.is_empty() {
            let textual = self.header("content-type").is_none_or(|t| is_textual(&t));
            match std::str::from_utf8(&self.body) {
                Ok(text) if textual => {
                    event.insert("body".into(), json!(text));
                    event.insert("isBase64Encoded".into(), json!(false));
                }
                _ => {
                    event.insert("body".into(), json!(STANDARD.encode(&self.body)));
                    event.insert("isBase64Encoded".into(), json!(true));
                }
            }
        } else {
            event.insert("isBase64Encoded".into(), json!(false));
        }
        Value::Object(event)
    }

    /// The REQUEST authorizer event (payload format 2.0).
    pub fn authorizer_event(
        &self,
        route_key: &str,
        params: &BTreeMap<String, String>,
        identity: &[String],
    ) -> Value {
        let mut event = self.common(route_key, params);
        event.insert("type".into(), json!("REQUEST"));
        let (method, path) = route_key.split_once(' ').unwrap_or(("ANY", "/"));
        event.insert(
            "routeArn".into(),
            json!(format!(
                "arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{API_ID}/$default/{method}{path}"
            )),
        );
        event.insert("identitySource".into(), json!(identity));
        Value::Object(event)
    }
}

fn is_textual(content_type: &str) -> bool {
    let t = content_type.to_ascii_lowercase();
    t.starts_with("text/")
        || t.contains("json")
        || t.contains("xml")
        || t.contains("javascript")
        || t.starts_with("application/x-www-form-urlencoded")
}

/// Turns a payload-format-2.0 function result into an HTTP response.
pub fn response_of(result: &[u8], request_id: &str) -> Result<Response, String> {
    let value: Value =
        serde_json::from_slice(result).map_err(|e| format!("the result is not JSON: {e}"))?;
    let structured = value.as_object().filter(|o| o.contains_key("statusCode"));
    let Some(object) = structured else {
        // No statusCode: API Gateway answers 200 with the result as a JSON body.
        let mut response = Response::new(Body::from(result.to_vec()));
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        return Ok(with_request_id(response, request_id));
    };
    let status = object
        .get("statusCode")
        .and_then(Value::as_u64)
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .ok_or("statusCode is not an HTTP status")?;
    let body = match object.get("body") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) if object.get("isBase64Encoded") == Some(&Value::Bool(true)) => {
            STANDARD
                .decode(s)
                .map_err(|_| "isBase64Encoded is true but body is not base64")?
        }
        Some(Value::String(s)) => s.clone().into_bytes(),
        Some(other) => other.to_string().into_bytes(),
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    let mut add = |name: &str, value: &Value| -> Result<(), String> {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("bad header name {name:?}"))?;
        let text = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let value =
            HeaderValue::from_str(&text).map_err(|_| format!("bad value for header {name}"))?;
        headers.append(name, value);
        Ok(())
    };
    if let Some(Value::Object(map)) = object.get("headers") {
        for (k, v) in map {
            add(k, v)?;
        }
    }
    if let Some(Value::Object(map)) = object.get("multiValueHeaders") {
        for (k, values) in map {
            for v in values.as_array().into_iter().flatten() {
                add(k, v)?;
            }
        }
    }
    if let Some(Value::Array(cookies)) = object.get("cookies") {
        for c in cookies {
            add("set-cookie", c)?;
        }
    }
    Ok(with_request_id(response, request_id))
}

fn with_request_id(mut response: Response, request_id: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert("apigw-requestid", v);
    }
    response
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
    let mut context = None;
    if let Some(auth) = &route.authorizer {
        match authorize(gateway, auth, incoming, &route.route_key, &params).await {
            Ok(Decision::Allow { context: c }) => context = Some(c),
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
    let event = incoming.route_event(&route.route_key, &params, context.as_ref());
    let payload = Bytes::from(event.to_string());
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
    let query = incoming.query_map();
    let identity = authorizer::identity(
        &auth.identity_sources,
        |h| incoming.header(h),
        |q| query.get(q).and_then(Value::as_str).map(str::to_owned),
    )
    .ok_or(AuthFailure::NoIdentity)?;
    let now = tokio::time::Instant::now();
    if let Some(decision) = auth.cache.get(&identity, now) {
        return Ok(decision);
    }
    let started = Instant::now();
    let event = incoming.authorizer_event(route_key, params, &identity);
    let result = gateway
        .invoker
        .invoke(&auth.binary, Bytes::from(event.to_string()), auth.timeout)
        .await;
    let decision = result
        .map_err(|e| e.to_string())
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
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use aws_lambda_events::apigw::{
        ApiGatewayV2CustomAuthorizerV2Request, ApiGatewayV2httpRequest,
    };

    use super::super::invoke::fake::FakeInvoker;
    use super::*;

    fn route(key: &str, binary: &str, authorizer: Option<Arc<GatewayAuthorizer>>) -> GatewayRoute {
        GatewayRoute {
            route_key: key.to_owned(),
            matcher: super::super::template::parse_route_key(key).expect("route key"),
            binary: binary.to_owned(),
            timeout: Duration::from_secs(2),
            authorizer,
            unsupported_authorizer: false,
        }
    }

    #[test]
    fn the_most_specific_route_wins() {
        let routes = vec![
            route("GET /v1/triggers/{id}", "get", None),
            route("POST /v1/triggers/draft", "draft", None),
            route("POST /v1/triggers/{id}", "post-id", None),
            route("ANY /v1/triggers/{id}", "any-id", None),
            route("ANY /{proxy+}", "proxy", None),
            route("$default", "default", None),
        ];
        let pick = |m: &str, p: &str| {
            match_route(&routes, m, p).map(|(r, params)| (r.binary.clone(), params))
        };
        assert_eq!(
            pick("POST", "/v1/triggers/draft").map(|x| x.0),
            Some("draft".into())
        );
        let (binary, params) = pick("GET", "/v1/triggers/a%20b").expect("a route");
        assert_eq!(binary, "get");
        assert_eq!(params["id"], "a b");
        assert_eq!(
            pick("POST", "/v1/triggers/7").map(|x| x.0),
            Some("post-id".into())
        );
        assert_eq!(
            pick("DELETE", "/v1/triggers/7").map(|x| x.0),
            Some("any-id".into())
        );
        let (binary, params) = pick("GET", "/v1/other/deep/path").expect("a route");
        assert_eq!(
            (binary.as_str(), params["proxy"].as_str()),
            ("proxy", "v1/other/deep/path")
        );
        assert_eq!(pick("GET", "/").map(|x| x.0), Some("default".into()));
        assert!(match_route(&routes[..2], "GET", "/v1/triggers").is_none());
    }

    fn incoming(
        method: Method,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Incoming {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        Incoming {
            method,
            raw_path: path.to_owned(),
            raw_query: query.to_owned(),
            headers: map,
            body: Bytes::from(body.to_owned()),
            source_ip: "127.0.0.1".into(),
            request_id: "rid".into(),
            time: chrono::Utc::now(),
        }
    }

    fn keys(v: &Value) -> Vec<String> {
        let mut k: Vec<String> = v
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        k.sort();
        k
    }

    fn sample(name: &str) -> Value {
        let path = format!("{}/../events/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(path).expect("sample")).expect("sample JSON")
    }

    /// The events the gateway sends have the shape of the samples in events/, which the
    /// functions' tests feed them, and parse as the Lambda runtime's types.
    #[test]
    fn events_have_the_shape_of_the_samples_and_of_aws() {
        let req = incoming(
            Method::POST,
            "/v1/triggers",
            &[
                ("authorization", "Bearer k"),
                ("content-type", "application/json"),
                ("host", "127.0.0.1:3000"),
                ("user-agent", "curl/8"),
            ],
            r#"{"name":"x"}"#,
        );
        let ctx = json!({"tenant_id": "t", "api_key_id": "k"})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let event = req.route_event("POST /v1/triggers", &BTreeMap::new(), Some(&ctx));
        let sample_event = sample("create-trigger.json");
        assert_eq!(keys(&event), keys(&sample_event));
        assert_eq!(
            keys(&event["requestContext"]),
            keys(&sample_event["requestContext"])
        );
        assert_eq!(
            keys(&event["requestContext"]["http"]),
            keys(&sample_event["requestContext"]["http"])
        );
        let parsed: ApiGatewayV2httpRequest =
            serde_json::from_value(event.clone()).expect("an API Gateway v2 request");
        assert_eq!(parsed.body.as_deref(), Some(r#"{"name":"x"}"#));
        assert_eq!(
            parsed
                .request_context
                .authorizer
                .expect("authorizer")
                .fields["tenant_id"],
            "t"
        );

        let auth = req.authorizer_event(
            "POST /v1/triggers",
            &BTreeMap::new(),
            &["Bearer k".to_owned()],
        );
        let sample_auth = sample("authorize-request.json");
        assert_eq!(keys(&auth), keys(&sample_auth));
        assert_eq!(auth["routeArn"], sample_auth["routeArn"]);
        let parsed: ApiGatewayV2CustomAuthorizerV2Request =
            serde_json::from_value(auth).expect("an authorizer request");
        assert_eq!(parsed.identity_source, Some(vec!["Bearer k".to_owned()]));
    }

    #[test]
    fn headers_queries_cookies_and_binary_bodies_are_carried_as_api_gateway_does() {
        let req = incoming(
            Method::PUT,
            "/x?a=1&a=2&b=%20",
            &[
                ("x-dup", "1"),
                ("x-dup", "2"),
                ("cookie", "s=1; t=2"),
                ("content-type", "application/octet-stream"),
            ],
            "\u{0}\u{1}",
        );
        let event = req.route_event("ANY /x", &BTreeMap::new(), None);
        assert_eq!(event["headers"]["x-dup"], "1,2");
        assert!(event["headers"].get("cookie").is_none());
        assert_eq!(event["cookies"], json!(["s=1", "t=2"]));
        assert_eq!(
            event["queryStringParameters"],
            json!({"a": "1,2", "b": " "})
        );
        assert_eq!(event["isBase64Encoded"], true);
        assert_eq!(event["body"], STANDARD.encode([0u8, 1]));
    }

    #[tokio::test]
    async fn function_results_become_responses() {
        let structured = json!({"statusCode": 201, "headers": {"content-type": "application/problem+json"},
            "multiValueHeaders": {"x-a": ["1", "2"]}, "cookies": ["c=1"], "body": "{\"ok\":true}", "isBase64Encoded": false});
        let r = response_of(structured.to_string().as_bytes(), "rid").expect("a response");
        assert_eq!(r.status(), StatusCode::CREATED);
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        assert_eq!(r.headers().get_all("x-a").iter().count(), 2);
        assert_eq!(r.headers()["set-cookie"], "c=1");
        let body = axum::body::to_bytes(r.into_body(), 1000)
            .await
            .expect("body");
        assert_eq!(&body[..], b"{\"ok\":true}");

        let bare = response_of(b"{\"hello\":1}", "rid").expect("a response");
        assert_eq!(bare.status(), StatusCode::OK);
        assert_eq!(bare.headers()["content-type"], "application/json");

        let b64 = json!({"statusCode": 200, "body": STANDARD.encode(b"\x00\x01"), "isBase64Encoded": true});
        let r = response_of(b64.to_string().as_bytes(), "rid").expect("a response");
        assert_eq!(
            &axum::body::to_bytes(r.into_body(), 100)
                .await
                .expect("body")[..],
            b"\x00\x01"
        );

        assert!(response_of(b"not json", "rid").is_err());
        assert!(response_of(br#"{"statusCode": 9999}"#, "rid").is_err());
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
