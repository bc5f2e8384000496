//! The events API Gateway sends for a request (HTTP API, payload format 2.0): the route
//! function's `ApiGatewayV2httpRequest` and the REQUEST authorizer's
//! `ApiGatewayV2CustomAuthorizerV2Request`, built as the `aws_lambda_events` types the functions
//! deserialize, so that what the emulator sends and what the functions read cannot drift apart.

use std::collections::{BTreeMap, HashMap};

use aws_lambda_events::apigw::{
    ApiGatewayRequestAuthorizer, ApiGatewayV2CustomAuthorizerV2Request, ApiGatewayV2httpRequest,
    ApiGatewayV2httpRequestContext, ApiGatewayV2httpRequestContextHttpDescription,
};
use aws_lambda_events::query_map::QueryMap;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};
use serde::Serialize;
use serde_json::{Map, Value};

use super::API_ID;
use crate::template::{ACCOUNT_ID, REGION};

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
    /// All values of a header, joined by commas as API Gateway joins them.
    pub(super) fn header(&self, name: &str) -> Option<String> {
        let values: Vec<String> = self
            .headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        (!values.is_empty()).then(|| values.join(","))
    }

    /// The event's headers: one value per name (repeated headers joined by commas), `cookie`
    /// left to `cookies`, and what API Gateway adds in front of every integration.
    fn event_headers(&self) -> HeaderMap {
        let mut out = HeaderMap::new();
        for name in self.headers.keys() {
            if name == http::header::COOKIE {
                continue;
            }
            // Lossy: the event is JSON text, whatever bytes the client sent.
            let joined = self.header(name.as_str()).unwrap_or_default();
            if let Ok(value) = HeaderValue::from_str(&joined) {
                out.insert(name.clone(), value);
            }
        }
        let added = [
            ("x-forwarded-for", self.source_ip.as_str()),
            ("x-forwarded-proto", "http"),
        ];
        for (name, value) in added {
            if let (false, Ok(value)) = (out.contains_key(name), HeaderValue::from_str(value)) {
                out.insert(name, value);
            }
        }
        out
    }

    /// Query parameters, every value of a repeated name kept (the event joins them by commas).
    pub(super) fn query(&self) -> HashMap<String, Vec<String>> {
        let mut out: HashMap<String, Vec<String>> = HashMap::new();
        for (k, v) in url::form_urlencoded::parse(self.raw_query.as_bytes()) {
            out.entry(k.into_owned()).or_default().push(v.into_owned());
        }
        out
    }

    fn cookies(&self) -> Vec<String> {
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
            .collect()
    }

    fn request_context(&self, route_key: &str) -> ApiGatewayV2httpRequestContext {
        let host = self.header("host").unwrap_or_else(|| "localhost".into());
        let prefix = host.split(['.', ':']).next().unwrap_or_default().to_owned();
        let mut http = ApiGatewayV2httpRequestContextHttpDescription::default();
        http.method = self.method.clone();
        http.path = Some(self.raw_path.clone());
        http.protocol = Some("HTTP/1.1".into());
        http.source_ip = Some(self.source_ip.clone());
        http.user_agent = Some(self.header("user-agent").unwrap_or_default());
        let mut context = ApiGatewayV2httpRequestContext::default();
        context.route_key = Some(route_key.to_owned());
        context.account_id = Some(ACCOUNT_ID.to_owned());
        context.stage = Some("$default".into());
        context.request_id = Some(self.request_id.clone());
        context.apiid = Some(API_ID.to_owned());
        context.domain_name = Some(host);
        context.domain_prefix = Some(prefix);
        context.time = Some(self.time.format("%d/%b/%Y:%H:%M:%S %z").to_string());
        context.time_epoch = self.time.timestamp_millis();
        context.http = http;
        context
    }

    /// The event for a route's function; `authorizer_context` is what the authorizer allowed
    /// the request with (`requestContext.authorizer.lambda`).
    pub fn route_event(
        &self,
        route_key: &str,
        params: &BTreeMap<String, String>,
        authorizer_context: Option<&Map<String, Value>>,
    ) -> ApiGatewayV2httpRequest {
        let authorizer = authorizer_context.map(|fields| {
            let mut authorizer = ApiGatewayRequestAuthorizer::default();
            authorizer.fields = fields.clone().into_iter().collect();
            authorizer
        });
        self.route_event_with(route_key, params, authorizer)
    }

    /// The event for a route's function with `authorizer` as `requestContext.authorizer`
    /// (a Lambda authorizer's `lambda` context, or a JWT authorizer's `jwt` claims).
    pub fn route_event_with(
        &self,
        route_key: &str,
        params: &BTreeMap<String, String>,
        authorizer: Option<ApiGatewayRequestAuthorizer>,
    ) -> ApiGatewayV2httpRequest {
        let mut event = ApiGatewayV2httpRequest::default();
        event.version = Some("2.0".into());
        event.route_key = Some(route_key.to_owned());
        event.raw_path = Some(self.raw_path.clone());
        event.raw_query_string = Some(self.raw_query.clone());
        let cookies = self.cookies();
        event.cookies = (!cookies.is_empty()).then_some(cookies);
        event.headers = self.event_headers();
        event.query_string_parameters = QueryMap::from(self.query());
        event.path_parameters = params.clone().into_iter().collect();
        event.request_context = self.request_context(route_key);
        event.request_context.authorizer = authorizer;
        if !self.body.is_empty() {
            let textual = self.header("content-type").is_none_or(|t| is_textual(&t));
            match std::str::from_utf8(&self.body) {
                Ok(text) if textual => event.body = Some(text.to_owned()),
                _ => {
                    event.body = Some(STANDARD.encode(&self.body));
                    event.is_base64_encoded = true;
                }
            }
        }
        event
    }

    /// The REQUEST authorizer's event; `identity` holds the identity-source values.
    pub fn authorizer_event(
        &self,
        route_key: &str,
        params: &BTreeMap<String, String>,
        identity: &[String],
    ) -> ApiGatewayV2CustomAuthorizerV2Request {
        let (method, path) = route_key.split_once(' ').unwrap_or(("ANY", "/"));
        let mut event = ApiGatewayV2CustomAuthorizerV2Request::default();
        event.version = Some("2.0".into());
        event.type_ = Some("REQUEST".into());
        event.route_arn = Some(format!(
            "arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{API_ID}/$default/{method}{path}"
        ));
        event.identity_source = Some(identity.to_vec());
        event.route_key = Some(route_key.to_owned());
        event.raw_path = Some(self.raw_path.clone());
        event.raw_query_string = Some(self.raw_query.clone());
        event.cookies = self.cookies();
        event.headers = self.event_headers();
        event.query_string_parameters = self
            .query()
            .into_iter()
            .map(|(k, v)| (k, v.join(",")))
            .collect();
        event.path_parameters = params.clone().into_iter().collect();
        event.request_context = self.request_context(route_key);
        event
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

/// The fields the request type keeps for payload format 1.0 authorizers; a 2.0 event never has
/// them (and `httpMethod` would read "GET" whatever the method).
const PAYLOAD_1_FIELDS: [&str; 6] = [
    "type",
    "methodArn",
    "httpMethod",
    "identitySource",
    "authorizationToken",
    "resource",
];

/// An event as JSON, shaped as API Gateway sends it: the types serialize absent fields as
/// `null`, `{}` or `[]`, which API Gateway leaves out, and the route event's payload-1.0
/// fields (see [`PAYLOAD_1_FIELDS`]) are dropped.
pub fn event_json(event: &impl Serialize) -> serde_json::Result<Value> {
    let mut value = serde_json::to_value(event)?;
    let is_route_event = value.get("type").is_none_or(Value::is_null);
    if let Value::Object(fields) = &mut value {
        fields.retain(|name, v| {
            let absent = match v {
                Value::Null => true,
                Value::Object(map) => map.is_empty(),
                Value::Array(items) => items.is_empty(),
                _ => false,
            };
            let payload_1 = is_route_event && PAYLOAD_1_FIELDS.contains(&name.as_str());
            !(absent || payload_1)
        });
    }
    Ok(value)
}

/// What a function is invoked with: [`event_json`] as bytes.
pub fn payload(event: &impl Serialize) -> serde_json::Result<Bytes> {
    serde_json::to_vec(&event_json(event)?).map(Bytes::from)
}

#[cfg(test)]
mod tests {
    use http::HeaderName;
    use serde_json::json;

    use super::*;

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

    /// The events the gateway sends have the fields of the samples in events/ (which the
    /// functions' tests feed them, copied from what AWS sends), no more and no fewer, and
    /// read back as the Lambda runtime's types.
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
        let json = event_json(&event).expect("JSON");
        let sample_event = sample("create-trigger.json");
        assert_eq!(keys(&json), keys(&sample_event));
        assert_eq!(
            keys(&json["requestContext"]),
            keys(&sample_event["requestContext"])
        );
        assert_eq!(
            keys(&json["requestContext"]["http"]),
            keys(&sample_event["requestContext"]["http"])
        );
        assert_eq!(json["requestContext"]["http"]["method"], "POST");
        let parsed: ApiGatewayV2httpRequest =
            serde_json::from_value(json).expect("an API Gateway v2 request");
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
        let json = event_json(&auth).expect("JSON");
        let sample_auth = sample("authorize-request.json");
        assert_eq!(keys(&json), keys(&sample_auth));
        assert_eq!(json["routeArn"], sample_auth["routeArn"]);
        assert_eq!(json["type"], "REQUEST");
        let parsed: ApiGatewayV2CustomAuthorizerV2Request =
            serde_json::from_value(json).expect("an authorizer request");
        assert_eq!(parsed.identity_source, Some(vec!["Bearer k".to_owned()]));
    }

    #[test]
    fn headers_queries_cookies_and_binary_bodies_are_carried_as_api_gateway_does() {
        let req = incoming(
            Method::PUT,
            "/x/a%20b?a=1&a=2&b=%20",
            &[
                ("x-dup", "1"),
                ("x-dup", "2"),
                ("cookie", "s=1; t=2"),
                ("content-type", "application/octet-stream"),
            ],
            "\u{0}\u{1}",
        );
        let params = BTreeMap::from([("id".to_owned(), "a b".to_owned())]);
        let event = event_json(&req.route_event("ANY /x/{id}", &params, None)).expect("JSON");
        assert_eq!(event["headers"]["x-dup"], "1,2");
        assert_eq!(event["headers"]["x-forwarded-for"], "127.0.0.1");
        assert!(event["headers"].get("cookie").is_none());
        assert_eq!(event["cookies"], json!(["s=1", "t=2"]));
        assert_eq!(
            event["queryStringParameters"],
            json!({"a": "1,2", "b": " "})
        );
        assert_eq!(event["rawPath"], "/x/a%20b");
        assert_eq!(event["pathParameters"], json!({"id": "a b"}));
        assert_eq!(event["isBase64Encoded"], true);
        assert_eq!(event["body"], STANDARD.encode([0u8, 1]));

        let auth =
            event_json(&req.authorizer_event("ANY /x/{id}", &params, &["k".into()])).expect("JSON");
        assert_eq!(auth["queryStringParameters"], json!({"a": "1,2", "b": " "}));
        assert_eq!(auth["cookies"], json!(["s=1", "t=2"]));
    }

    #[test]
    fn a_request_without_body_query_or_cookies_leaves_them_out() {
        let req = incoming(Method::GET, "/x", &[], "");
        let event = event_json(&req.route_event("GET /x", &BTreeMap::new(), None)).expect("JSON");
        for absent in [
            "body",
            "cookies",
            "queryStringParameters",
            "pathParameters",
            "stageVariables",
            "httpMethod",
        ] {
            assert!(event.get(absent).is_none(), "{absent} in {event}");
        }
        assert_eq!(event["isBase64Encoded"], false);
        assert_eq!(event["rawQueryString"], "");
        assert!(event["requestContext"].get("authorizer").is_none());
    }
}
