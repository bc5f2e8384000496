//! The HTTP edge: turning API Gateway (HTTP API, payload 2.0) requests into domain calls and
//! domain results into responses. Every error leaves here as RFC 9457 problem+json, mapped in
//! one place ([`ApiError::to_problem`]).

#[cfg(all(feature = "postgres", feature = "aws"))]
pub mod deliveries;
#[cfg(feature = "aws")]
pub mod drafts;
#[cfg(feature = "postgres")]
pub mod events;
#[cfg(feature = "postgres")]
pub mod firings;
#[cfg(feature = "aws")]
pub mod ingest;
pub mod page;
pub mod patterns;
pub mod routes;
#[cfg(feature = "aws")]
pub mod signing;
pub mod trials;
#[cfg(feature = "postgres")]
pub mod triggers;
#[cfg(feature = "postgres")]
pub mod views;

use std::future::Future;

use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::json::strict::{self, Unreadable};
use crate::problem::{FieldError, Problem};
use crate::tenant::{Scope, Scopes, TenantId};

/// Everything a route can answer other than success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("the request is not valid")]
    Validation(Vec<FieldError>),
    #[error("bad request")]
    BadRequest(Vec<FieldError>),
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    #[error("body larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// Parts of the body (events of a batch) are over their own limit; one error each.
    #[error("parts of the body are too large")]
    PartsTooLarge(Vec<FieldError>),
    #[error("rate limited")]
    TooManyRequests { retry_after_seconds: u64 },
    /// A dependency failed in a way a retry may fix; `errors` may say what was not done.
    #[error("unavailable: {detail}")]
    Unavailable {
        detail: String,
        retry_after_seconds: u64,
        errors: Vec<FieldError>,
    },
    #[error("unsupported content type")]
    UnsupportedMediaType(Option<String>),
    #[error("conflict: {0}")]
    Conflict(String),
    /// A conflict that resolves by itself: the same request succeeds after `Retry-After`.
    #[error("conflict until later: {detail}")]
    ConflictUntil {
        detail: String,
        retry_after_seconds: u64,
    },
    #[error("precondition failed: {0}")]
    PreconditionFailed(String),
    #[error("precondition required: {0}")]
    PreconditionRequired(String),
    #[error("limit reached: {0}")]
    LimitReached(String),
    /// The tenant's AI tokens for today are used up (drafts, AI checks).
    #[error("AI budget exhausted")]
    AiBudgetExhausted { retry_after_seconds: u64 },
    /// The model could not produce a valid trigger, even after one correction; `errors` are
    /// the problems of its last draft.
    #[error("the model's draft is not valid")]
    DraftInvalid(Vec<FieldError>),
    /// A service the route depends on refused the request for a reason of the deployment's
    /// (the model's settings or permissions), not the caller's.
    #[error("bad gateway: {0}")]
    BadGateway(String),
    #[error("not authenticated")]
    Unauthorized,
    /// A valid key without the scope the route needs.
    #[error("the key lacks the {missing} scope")]
    MissingScope { missing: Scope },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

#[cfg(feature = "postgres")]
impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        ApiError::Internal(err.into())
    }
}

#[cfg(feature = "aws")]
impl From<crate::dynamodb::DynamoError> for ApiError {
    fn from(err: crate::dynamodb::DynamoError) -> Self {
        ApiError::Internal(err.into())
    }
}

#[cfg(feature = "aws")]
impl From<crate::dynamodb::SecretsError> for ApiError {
    fn from(err: crate::dynamodb::SecretsError) -> Self {
        ApiError::Internal(err.into())
    }
}

impl ApiError {
    /// The problem document for this error. Internal errors say nothing about their cause.
    pub fn to_problem(&self) -> Problem {
        match self {
            ApiError::NotFound(what) => {
                let mut title = format!("{what} not found");
                if let Some(first) = title.get_mut(..1) {
                    first.make_ascii_uppercase();
                }
                Problem::new(404, "not-found", title)
            }
            ApiError::Validation(errors) => {
                Problem::new(422, "validation", "The request is not valid")
                    .with_detail(summary(errors))
                    .with_errors(errors.clone())
            }
            ApiError::BadRequest(errors) => Problem::new(400, "bad-request", "Bad request")
                .with_detail(summary(errors))
                .with_errors(errors.clone()),
            ApiError::MalformedJson(detail) => {
                Problem::new(400, "malformed-json", "The body is not valid JSON")
                    .with_detail(detail.clone())
            }
            ApiError::PayloadTooLarge { limit } => {
                Problem::new(413, "payload-too-large", "The body is too large")
                    .with_detail(format!("The body must be at most {limit} bytes."))
            }
            ApiError::PartsTooLarge(errors) => {
                Problem::new(413, "payload-too-large", "Parts of the body are too large")
                    .with_detail(summary(errors))
                    .with_errors(errors.clone())
            }
            ApiError::TooManyRequests {
                retry_after_seconds,
            } => Problem::new(429, "rate-limited", "Too many requests").with_detail(format!(
                "This tenant is sending faster than its limit; retry after {retry_after_seconds} s."
            )),
            ApiError::Unavailable { detail, errors, .. } => {
                Problem::new(503, "unavailable", "Service unavailable")
                    .with_detail(detail.clone())
                    .with_errors(errors.clone())
            }
            ApiError::AiBudgetExhausted {
                retry_after_seconds,
            } => Problem::new(429, "ai-budget-exhausted", "AI budget exhausted").with_detail(
                format!(
                    "This tenant has used its AI tokens for today (UTC); the budget starts \
                     afresh in {retry_after_seconds} s."
                ),
            ),
            ApiError::DraftInvalid(errors) => Problem::new(
                422,
                "draft-invalid",
                "The model could not draft a valid trigger",
            )
            .with_detail(format!(
                "The model could not produce a valid trigger for this text, even after being \
                 told its draft's problems once ({}). Rephrase the text, or give example \
                 events, and try again.",
                summary(errors)
            ))
            .with_errors(errors.clone()),
            ApiError::BadGateway(detail) => {
                Problem::new(502, "bad-gateway", "Bad gateway").with_detail(detail.clone())
            }
            ApiError::UnsupportedMediaType(got) => {
                Problem::new(415, "unsupported-media-type", "Unsupported content type").with_detail(
                    format!(
                        "Send the body as application/json (got {}).",
                        got.as_deref().unwrap_or("no Content-Type")
                    ),
                )
            }
            ApiError::Conflict(detail) | ApiError::ConflictUntil { detail, .. } => {
                Problem::new(409, "conflict", "Conflict").with_detail(detail.clone())
            }
            ApiError::LimitReached(detail) => {
                Problem::new(409, "limit-reached", "Limit reached").with_detail(detail.clone())
            }
            ApiError::PreconditionFailed(detail) => {
                Problem::new(412, "precondition-failed", "Precondition failed")
                    .with_detail(detail.clone())
            }
            ApiError::PreconditionRequired(detail) => {
                Problem::new(428, "precondition-required", "Precondition required")
                    .with_detail(detail.clone())
            }
            ApiError::Unauthorized => Problem::new(401, "unauthorized", "Not authenticated")
                .with_detail("Send Authorization: Bearer <API key>."),
            ApiError::MissingScope { missing } => Problem::new(
                403,
                "missing-scope",
                format!("The {missing} scope is missing"),
            )
            .with_detail(format!(
                "This API key (or token) does not have the {missing} scope, which this route \
                 needs. Use a key that has it (triggeriq api-key create --scope {missing}), or \
                 a Cognito access token granted the resource server's .../{missing} scope."
            )),
            ApiError::Internal(_) => Problem::new(500, "internal", "Internal error").with_detail(
                "Something went wrong on our side. Quote the request id when you contact us.",
            ),
        }
    }
}

fn summary(errors: &[FieldError]) -> String {
    match errors {
        [one] => one.to_string(),
        many => format!("{} problems; see errors.", many.len()),
    }
}

/// What a response needs to know about its request.
#[derive(Debug, Clone, Default)]
pub struct RequestInfo {
    pub request_id: Option<String>,
    pub path: String,
}

impl RequestInfo {
    pub fn of(req: &Request) -> Self {
        let request_id = match req.request_context_ref() {
            Some(RequestContext::ApiGatewayV2(ctx)) => ctx.request_id.clone(),
            _ => None,
        }
        .or_else(|| req.lambda_context_ref().map(|c| c.request_id.clone()));
        Self {
            request_id,
            path: req.uri().path().to_owned(),
        }
    }
}

/// The authorizer's answer for this request (absent: the route is not behind one).
fn authorizer_of(
    req: &Request,
) -> Result<&lambda_http::aws_lambda_events::apigw::ApiGatewayRequestAuthorizer, ApiError> {
    let Some(RequestContext::ApiGatewayV2(ctx)) = req.request_context_ref() else {
        return Err(ApiError::Unauthorized);
    };
    ctx.authorizer.as_ref().ok_or(ApiError::Unauthorized)
}

/// The tenant the authorizer established: the Lambda authorizer's `tenant_id` context value,
/// or a Cognito JWT's `tenant_id` claim. Never from the body, path or query. Which routes a
/// caller may use is checked before the handler runs ([`serve`], [`caller`]).
pub fn tenant(req: &Request) -> Result<TenantId, ApiError> {
    let authorizer = authorizer_of(req)?;
    let raw = match authorizer.fields.get("tenant_id") {
        Some(Value::String(s)) => Some(s.as_str()),
        _ => authorizer
            .jwt
            .as_ref()
            .and_then(|jwt| jwt.claims.get("tenant_id"))
            .map(String::as_str),
    };
    raw.and_then(|s| TenantId::parse(s).ok())
        .ok_or(ApiError::Unauthorized)
}

/// What the caller may do: the one place scopes are read from a request.
///
/// - The API-key authorizer puts the key's scopes in its context as `scopes`, space-separated
///   (`"ingest read"`).
/// - A context without `scopes` grants nothing: a request never gets more than its
///   authorizer said.
/// - A Cognito JWT (the HTTP API's JWT authorizer, which verified it) grants the OAuth scopes
///   of its access token, named `<resource server>/<scope>` (`triggeriq/ingest`): API Gateway
///   lists them as `jwt.scopes`, or the token's `scope` claim holds them space-separated. Only
///   the part after the last `/` counts, spelt exactly as a scope. An ID token has no scopes and
///   gets none.
pub fn scopes(req: &Request) -> Scopes {
    let Ok(authorizer) = authorizer_of(req) else {
        return Scopes::NONE;
    };
    if let Some(Value::String(s)) = authorizer.fields.get("scopes") {
        return Scopes::from_context(s);
    }
    let Some(jwt) = authorizer.jwt.as_ref() else {
        return Scopes::NONE;
    };
    let listed = jwt.scopes.iter().flatten().map(String::as_str);
    let claimed = jwt
        .claims
        .get("scope")
        .map(|s| s.split_ascii_whitespace())
        .into_iter()
        .flatten();
    listed
        .chain(claimed)
        .filter_map(|oauth| oauth.rsplit('/').next()?.parse::<Scope>().ok())
        .collect()
}

/// The tenant of a caller allowed `scope`: 401 without a tenant, 403 (problem+json naming the
/// scope) for a valid caller without the scope.
pub fn caller(req: &Request, scope: Scope) -> Result<TenantId, ApiError> {
    let tenant = tenant(req)?;
    if scopes(req).contains(scope) {
        Ok(tenant)
    } else {
        Err(ApiError::MissingScope { missing: scope })
    }
}

/// The checks every request passes before its handler: the caller has the route's scope, and
/// the tenant a token in the route's bucket ([`crate::pipeline::throttle`]).
#[cfg(feature = "aws")]
pub struct Gate {
    pub route: &'static routes::Route,
    /// `None` for ingest (it counts events itself).
    pub throttle: Option<crate::pipeline::throttle::Throttle>,
}

#[cfg(feature = "aws")]
impl Gate {
    /// The gate of `function`'s route, its limits from the environment
    /// ([`crate::config::ThrottleConfig`]).
    pub fn for_function(
        function: &str,
        clients: &crate::wiring::Clients,
    ) -> Result<Self, crate::wiring::InitError> {
        use crate::pipeline::throttle::{RouteClass, Throttle};
        let route = routes::by_function(function).ok_or_else(|| {
            crate::wiring::InitError::Config(crate::config::ConfigError {
                name: "function".into(),
                reason: format!("{function} serves no route of crate::api::routes"),
            })
        })?;
        let throttle = match route.class {
            RouteClass::Ingest => None,
            RouteClass::Reads | RouteClass::Writes => Some(Throttle::new(
                crate::config::ThrottleConfig::from_env()?,
                clients,
            )?),
        };
        Ok(Self { route, throttle })
    }

    /// Admits `req` (scope first, so a refused key takes no token) or says why not.
    pub async fn admit(&self, req: &Request) -> Result<TenantId, ApiError> {
        use crate::pipeline::throttle::Throttled;
        let tenant = caller(req, self.route.scope)?;
        if let Some(throttle) = &self.throttle {
            throttle
                .admit(tenant, self.route.class, chrono::Utc::now())
                .await
                .map_err(|e| match e {
                    Throttled::Limited {
                        retry_after_seconds,
                    } => ApiError::TooManyRequests {
                        retry_after_seconds,
                    },
                    Throttled::Unavailable(cause) => {
                        tracing::error!(error = %format!("{cause:#}"), "rate limit unavailable");
                        ApiError::Unavailable {
                            detail: "The request was not served; send it again.".into(),
                            retry_after_seconds: 1,
                            errors: Vec::new(),
                        }
                    }
                })?;
        }
        Ok(tenant)
    }
}

/// A path parameter that must be an id. An id that cannot exist is simply not found.
pub fn path_id(req: &Request, name: &str, what: &'static str) -> Result<Uuid, ApiError> {
    req.path_parameters_ref()
        .and_then(|p| p.first(name))
        .and_then(|raw| Uuid::parse_str(raw).ok())
        .ok_or(ApiError::NotFound(what))
}

/// A query-string parameter.
pub fn query<'r>(req: &'r Request, name: &str) -> Option<&'r str> {
    req.query_string_parameters_ref()
        .and_then(|q| q.first(name))
}

/// How deeply a request body may nest: an event (in `POST /v1/patterns/test`) inside the body.
pub const MAX_BODY_DEPTH: usize = crate::event::MAX_EVENT_DEPTH + 1;

/// The JSON body, after checking its content type and size, read by the one JSON rule
/// ([`crate::json::strict`]): malformed is 400, duplicate keys, nesting too deep, numbers
/// beyond a double and U+0000 are 422 with their paths.
pub fn json_body(req: &Request, max_bytes: usize) -> Result<Value, ApiError> {
    let bytes = json_bytes(req, max_bytes)?;
    Ok(strict::read(bytes, MAX_BODY_DEPTH)?)
}

impl From<Unreadable> for ApiError {
    fn from(e: Unreadable) -> Self {
        match e {
            Unreadable::Malformed(detail) => ApiError::MalformedJson(detail),
            Unreadable::Invalid(errors) => ApiError::Validation(errors),
        }
    }
}

/// The raw bytes of a JSON body, after checking its content type, size and that it is not
/// empty (for routes that read the JSON themselves).
pub fn json_bytes(req: &Request, max_bytes: usize) -> Result<&[u8], ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("").to_owned());
    let is_json = content_type.as_deref().is_some_and(|ct| {
        let essence = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        essence == "application/json"
            || (essence.starts_with("application/") && essence.ends_with("+json"))
    });
    if !is_json {
        return Err(ApiError::UnsupportedMediaType(content_type));
    }
    let bytes: &[u8] = req.body().as_ref();
    if bytes.len() > max_bytes {
        return Err(ApiError::PayloadTooLarge { limit: max_bytes });
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::MalformedJson(
            "the body is empty; send a JSON object".into(),
        ));
    }
    Ok(bytes)
}

/// A JSON response.
pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    match serde_json::to_string(value) {
        Ok(text) => with_content_type(status, Body::Text(text), "application/json"),
        Err(err) => problem_response(&ApiError::Internal(err.into()), &RequestInfo::default()),
    }
}

/// A JSON response that holds a secret: `Cache-Control: no-store`, so no browser, proxy or
/// CDN keeps a copy of it.
pub fn secret_json<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    let mut response = json(status, value);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// An empty response.
pub fn empty(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(Body::Empty);
    *response.status_mut() = status;
    response
}

fn with_content_type(status: StatusCode, body: Body, content_type: &'static str) -> Response<Body> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// The problem+json response for `err`; internal errors are logged with their cause chain.
pub fn problem_response(err: &ApiError, info: &RequestInfo) -> Response<Body> {
    if let ApiError::Internal(cause) = err {
        tracing::error!(error = %format!("{cause:#}"), request_id = ?info.request_id, "internal error");
    }
    let mut problem = err.to_problem();
    problem.instance = (!info.path.is_empty()).then(|| info.path.clone());
    problem.request_id = info.request_id.clone();
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::to_string(&problem).unwrap_or_else(|_| String::from("{}"));
    let mut response = with_content_type(status, Body::Text(body), "application/problem+json");
    if let ApiError::TooManyRequests {
        retry_after_seconds,
    }
    | ApiError::AiBudgetExhausted {
        retry_after_seconds,
    }
    | ApiError::Unavailable {
        retry_after_seconds,
        ..
    }
    | ApiError::ConflictUntil {
        retry_after_seconds,
        ..
    } = err
        && let Ok(value) = HeaderValue::from_str(&retry_after_seconds.to_string())
    {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// Runs `handler` and turns its error, if any, into a problem response.
pub async fn respond<F>(req: Request, handler: impl FnOnce(Request) -> F) -> Response<Body>
where
    F: Future<Output = Result<Response<Body>, ApiError>>,
{
    let info = RequestInfo::of(&req);
    match handler(req).await {
        Ok(response) => response,
        Err(err) => problem_response(&err, &info),
    }
}

/// Runs `handler` behind `gate` and turns any error into a problem response: what
/// [`serve`] does with each request.
#[cfg(feature = "aws")]
pub async fn respond_gated<F>(
    gate: &Gate,
    req: Request,
    handler: impl FnOnce(Request) -> F,
) -> Response<Body>
where
    F: Future<Output = Result<Response<Body>, ApiError>>,
{
    respond(req, |req| async move {
        gate.admit(&req).await?;
        handler(req).await
    })
    .await
}

/// Serves `function`'s route for the life of the container: `state` is built once (clients,
/// pools) and lent to every invocation, and every request passes the route's [`Gate`] (its
/// scope, its tenant's bucket) before `handler` sees it. `function` is the function's package
/// name (`env!("CARGO_PKG_NAME")`), which [`routes::ROUTES`] must list.
#[cfg(feature = "aws")]
pub async fn serve<S, F, Fut>(
    function: &str,
    clients: &crate::wiring::Clients,
    state: S,
    handler: F,
) -> Result<(), lambda_http::Error>
where
    S: Sync + 'static,
    F: Fn(&'static S, Request) -> Fut + Copy + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<Body>, ApiError>> + Send + 'static,
{
    let gate: &'static Gate = Box::leak(Box::new(Gate::for_function(function, clients)?));
    let state: &'static S = Box::leak(Box::new(state));
    lambda_http::run(lambda_http::service_fn(move |req: Request| async move {
        Ok::<_, std::convert::Infallible>(respond_gated(gate, req, |req| handler(state, req)).await)
    }))
    .await
}
