//! Route calls for the integration tests: the API Gateway v2 samples in `events/`, edited per
//! test, handed to a handler through `api::respond` as the Lambda runtime would, and every
//! answer checked — errors are problem+json with the HTTP status in the body, and the whole
//! exchange agrees with `openapi.yaml` (`super::openapi`).

use crate::api::{self, ApiError};
use crate::tenant::TenantId;
use lambda_http::{Body, Request, Response};
use serde_json::{Value, json};

use super::openapi;

/// `events/<name>.json`.
pub fn sample(name: &str) -> Value {
    let path = format!("{}/../events/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A sample request, edited: the tenant and scopes in the authorizer context, a body,
/// headers, the path id, the query.
pub struct Req(pub Value);

impl Req {
    /// The sample, from `tenant` with a key of every scope (the authorizer's context).
    pub fn new(sample_name: &str, tenant: TenantId) -> Self {
        let mut event = sample(sample_name);
        event["requestContext"]["authorizer"]["lambda"]["tenant_id"] = json!(tenant.to_string());
        event["requestContext"]["authorizer"]["lambda"]["scopes"] =
            json!(crate::tenant::Scopes::ALL.to_string());
        Req(event)
    }
    /// The authorizer context's `scopes`, as the authorizer writes it (`"ingest read"`).
    pub fn scopes(mut self, scopes: &str) -> Self {
        self.0["requestContext"]["authorizer"]["lambda"]["scopes"] = json!(scopes);
        self
    }
    /// An authorizer context without `scopes` at all.
    pub fn without_scopes(mut self) -> Self {
        if let Some(ctx) = self.0["requestContext"]["authorizer"]["lambda"].as_object_mut() {
            ctx.remove("scopes");
        }
        self
    }
    /// The authorizer of a Cognito JWT instead of the API-key authorizer's context: the
    /// token's `claims` and the OAuth scopes API Gateway lists (`None`: no `scopes` list).
    pub fn jwt(mut self, claims: Value, scopes: Option<&[&str]>) -> Self {
        self.0["requestContext"]["authorizer"] =
            json!({"jwt": {"claims": claims, "scopes": scopes}});
        self
    }
    /// A JSON body (and its content type).
    pub fn body(mut self, body: &Value) -> Self {
        self.0["body"] = json!(body.to_string());
        self.0["headers"]["content-type"] = json!("application/json");
        self
    }
    /// Body text as it is, content type unchanged.
    pub fn raw_body(mut self, body: &str) -> Self {
        self.0["body"] = json!(body);
        self
    }
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.0["headers"][name] = json!(value);
        self
    }
    pub fn without_header(mut self, name: &str) -> Self {
        if let Some(h) = self.0["headers"].as_object_mut() {
            h.remove(name);
        }
        self
    }
    pub fn id(mut self, id: &str) -> Self {
        self.0["pathParameters"]["id"] = json!(id);
        self
    }
    pub fn query(mut self, pairs: &[(&str, &str)]) -> Self {
        let map: serde_json::Map<String, Value> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        self.0["rawQueryString"] = json!(
            pairs
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("&")
        );
        self.0["queryStringParameters"] = Value::Object(map);
        self
    }
    pub fn no_authorizer(mut self) -> Self {
        if let Some(ctx) = self.0["requestContext"].as_object_mut() {
            ctx.remove("authorizer");
        }
        self
    }
    pub fn build(self) -> Request {
        lambda_http::request::from_str(&self.0.to_string()).expect("a valid API Gateway v2 request")
    }
}

/// A route's answer, its body parsed.
pub struct Answer {
    pub status: u16,
    pub headers: lambda_http::http::HeaderMap,
    pub body: Value,
    /// The body as sent (numbers exactly as written).
    pub text: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    /// The paths of a problem's `errors`, sorted.
    pub fn error_paths(&self) -> Vec<String> {
        let mut paths: Vec<String> = self.body["errors"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e["path"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        paths.sort();
        paths
    }
}

/// Reads a response; an error must be problem+json whose `status` is the HTTP status.
pub fn answer(response: Response<Body>) -> Answer {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes: &[u8] = response.body().as_ref();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(bytes).expect("JSON body")
    };
    if status >= 400 {
        assert_eq!(
            headers.get("content-type").and_then(|v| v.to_str().ok()),
            Some("application/problem+json"),
            "errors are problem+json: {body}"
        );
        assert_eq!(
            body["status"],
            json!(status),
            "problem status mirrors the HTTP status"
        );
    }
    Answer {
        status,
        headers,
        body,
        text: String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// Calls a route's handler behind its gate (scope, rate limit), as `api::serve` does, and
/// checks the exchange against `openapi.yaml`.
#[cfg(feature = "aws")]
pub async fn call_gated<'a, S, F>(
    gate: &api::Gate,
    state: &'a S,
    handler: fn(&'a S, Request) -> F,
    req: Req,
) -> Answer
where
    F: std::future::Future<Output = Result<Response<Body>, ApiError>> + 'a,
{
    let route_key = req.0["routeKey"].as_str().expect("routeKey").to_owned();
    let request_body: Option<Value> = req.0["body"]
        .as_str()
        .and_then(|b| serde_json::from_str(b).ok());
    let got = answer(api::respond_gated(gate, req.build(), |r| handler(state, r)).await);
    openapi::check(&route_key, request_body.as_ref(), got.status, &got.body);
    got
}

/// Calls a route's handler with a request, as the Lambda runtime would, and checks the
/// exchange against `openapi.yaml`.
pub async fn call<'a, S, F>(state: &'a S, handler: fn(&'a S, Request) -> F, req: Req) -> Answer
where
    F: std::future::Future<Output = Result<Response<Body>, ApiError>> + 'a,
{
    let route_key = req.0["routeKey"].as_str().expect("routeKey").to_owned();
    let request_body: Option<Value> = req.0["body"]
        .as_str()
        .and_then(|b| serde_json::from_str(b).ok());
    let got = answer(api::respond(req.build(), |r| handler(state, r)).await);
    openapi::check(&route_key, request_body.as_ref(), got.status, &got.body);
    got
}
