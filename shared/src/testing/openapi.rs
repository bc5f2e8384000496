//! Holds the API to its OpenAPI description: every response a test sees must be declared
//! for its operation and status and match the declared schema, and every request the API
//! accepted must match the declared request schema.

use std::sync::OnceLock;

use serde_json::{Value, json};

pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        let path = format!("{}/../openapi.yaml", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
    })
}

fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// Validates `instance` against the schema at JSON pointer `pointer` of the document.
fn validate(pointer: &str, instance: &Value, what: &str) {
    let mut schema = document().clone();
    // A JSON pointer inside a URI fragment: braces of path templates must be percent-encoded.
    let fragment = pointer.replace('{', "%7B").replace('}', "%7D");
    schema["$ref"] = json!(format!("#{fragment}"));
    schema["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
    let validator =
        jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("schema at {pointer}: {e}"));
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{what} disagrees with openapi.yaml ({pointer}):\n{}\n{instance:#}",
        errors.join("\n")
    );
}

/// Resolves a `$ref` within the document, or returns the value itself.
fn resolve(value: &Value) -> (&Value, Option<String>) {
    match value.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let pointer = reference.trim_start_matches('#').to_owned();
            (
                document()
                    .pointer(&pointer)
                    .unwrap_or_else(|| panic!("dangling $ref {reference}")),
                Some(pointer),
            )
        }
        None => (value, None),
    }
}

/// Checks one exchange: `route_key` is API Gateway's `"METHOD /path/{param}"`.
pub fn check(route_key: &str, request_body: Option<&Value>, status: u16, response_body: &Value) {
    let (method, route) = route_key
        .split_once(' ')
        .unwrap_or_else(|| panic!("route key {route_key:?}"));
    let method = method.to_ascii_lowercase();
    let op_pointer = format!("/paths/{}/{method}", escape(route));
    let operation = document()
        .pointer(&op_pointer)
        .unwrap_or_else(|| panic!("openapi.yaml has no operation {route_key}"));
    let declared = operation["responses"].get(status.to_string()).unwrap_or_else(|| {
        panic!("openapi.yaml does not declare status {status} for {route_key}; the API answered {response_body}")
    });
    let (response, response_pointer) = resolve(declared);
    let response_pointer =
        response_pointer.unwrap_or_else(|| format!("{op_pointer}/responses/{status}"));
    match response.get("content").and_then(Value::as_object) {
        Some(content) => {
            let (media, _) = content
                .iter()
                .next()
                .unwrap_or_else(|| panic!("{response_pointer}: empty content"));
            let pointer = format!("{response_pointer}/content/{}/schema", escape(media));
            validate(
                &pointer,
                response_body,
                &format!("{route_key} {status} response"),
            );
        }
        None => assert!(
            response_body.is_null(),
            "{route_key} {status} is declared without a body but had {response_body}"
        ),
    }
    if (200..300).contains(&status)
        && let Some(body) = request_body
    {
        let pointer = format!("{op_pointer}/requestBody/content/application~1json/schema");
        if document().pointer(&pointer).is_some() {
            validate(
                &pointer,
                body,
                &format!("{route_key} request the API accepted"),
            );
        }
    }
}

/// Every operation, as `(route key, x-function)`.
pub fn operations() -> Vec<(String, String)> {
    let mut all = Vec::new();
    for (path, item) in document()["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            if let Some(function) = op.get("x-function").and_then(Value::as_str) {
                all.push((
                    format!("{} {path}", method.to_ascii_uppercase()),
                    function.to_owned(),
                ));
            }
        }
    }
    all.sort();
    all
}
