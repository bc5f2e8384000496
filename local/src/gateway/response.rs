//! From a function's answer to an HTTP response, by API Gateway's rules for payload format
//! 2.0, and API Gateway's own answers when there is no usable one.

use axum::body::Body;
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderName, HeaderValue, StatusCode};
use serde_json::{Value, json};

/// API Gateway's own error answers.
pub(super) fn gateway_error(status: StatusCode, message: &str, request_id: &str) -> Response {
    let mut response = Response::new(Body::from(json!({ "message": message }).to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    with_request_id(response, request_id)
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
