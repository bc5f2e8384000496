//! A stand-in for the Bedrock runtime's Converse API, for local runs without Bedrock.
//!
//! Functions reach it through `AWS_ENDPOINT_URL_BEDROCK_RUNTIME`. It answers
//! `POST /model/{modelId}/converse` deterministically and without any model: when the request
//! forces a tool (`toolChoice` `tool` or `any`), with a `toolUse` block whose input is a
//! minimal instance of the tool's JSON schema (so structured-output code paths run end to
//! end); otherwise with a short text that quotes the last user message. Usage figures are
//! rough token estimates. `converse-stream` and other operations answer an error Bedrock's
//! clients understand.

use std::time::Instant;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use crate::log::{self, Kind, Outcome};

/// The stand-in's routes.
pub fn router() -> axum::Router {
    axum::Router::new()
        .route("/model/{model}/converse", post(converse))
        .route("/model/{model}/converse-stream", post(not_emulated))
        .route("/model/{model}/invoke", post(not_emulated))
        .fallback(not_emulated)
}

fn json_response(status: StatusCode, value: &Value) -> Response {
    let mut response = (status, value.to_string()).into_response();
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn error(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Response {
    let mut response = json_response(status, &json!({ "message": message.into() }));
    response
        .headers_mut()
        .insert("x-amzn-errortype", HeaderValue::from_static(kind));
    response
}

async fn not_emulated() -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "ValidationException",
        "the local Bedrock stand-in answers Converse only; set AWS_ENDPOINT_URL_BEDROCK_RUNTIME for a real endpoint",
    )
}

async fn converse(Path(model): Path<String>, body: axum::body::Bytes) -> Response {
    let started = Instant::now();
    let request: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "ValidationException",
                format!("the body is not JSON: {e}"),
            );
        }
    };
    let answer = match answer(&request) {
        Ok(a) => a,
        Err(why) => {
            log::line(
                Kind::Bedrock,
                Outcome::Warn,
                &format!("converse {model}: {why}"),
                Some(started.elapsed()),
            );
            return error(StatusCode::BAD_REQUEST, "ValidationException", why);
        }
    };
    let what = if answer["stopReason"] == "tool_use" {
        "tool use"
    } else {
        "text"
    };
    log::line(
        Kind::Bedrock,
        Outcome::Ok,
        &format!("converse {model} → {what} (stand-in)"),
        Some(started.elapsed()),
    );
    json_response(StatusCode::OK, &answer)
}

/// The Converse answer for a request, or why the request is invalid.
pub fn answer(request: &Value) -> Result<Value, String> {
    let messages = request
        .get("messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
        .ok_or("messages: must be a non-empty list")?;
    for (i, m) in messages.iter().enumerate() {
        match m.get("role").and_then(Value::as_str) {
            Some("user" | "assistant") => {}
            _ => return Err(format!("messages[{i}].role: must be user or assistant")),
        }
        if !m.get("content").is_some_and(Value::is_array) {
            return Err(format!("messages[{i}].content: must be a list"));
        }
    }
    let prompt: String = messages
        .iter()
        .chain(request.get("system"))
        .flat_map(|m| {
            m.get("content")
                .unwrap_or(m)
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|c| c.get("text").and_then(Value::as_str).map(str::to_owned))
        .collect::<Vec<_>>()
        .join(" ");
    let input_tokens = estimate_tokens(&prompt);

    let forced = request
        .pointer("/toolConfig/toolChoice")
        .and_then(|choice| {
            if let Some(name) = choice.pointer("/tool/name").and_then(Value::as_str) {
                Some(Some(name.to_owned()))
            } else if choice.get("any").is_some() {
                Some(None)
            } else {
                None
            }
        });
    let content = if let Some(wanted) = &forced {
        let tools = request
            .pointer("/toolConfig/tools")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let spec = tools
            .iter()
            .filter_map(|t| t.get("toolSpec"))
            .find(|s| {
                wanted
                    .as_deref()
                    .is_none_or(|w| s.get("name").and_then(Value::as_str) == Some(w))
            })
            .ok_or("toolConfig.toolChoice: names a tool that toolConfig.tools does not declare")?;
        let name = spec.get("name").and_then(Value::as_str).unwrap_or("tool");
        let schema = spec
            .pointer("/inputSchema/json")
            .cloned()
            .unwrap_or(json!({}));
        json!([{ "toolUse": {
            "toolUseId": format!("tooluse_{}", uuid::Uuid::new_v4().simple()),
            "name": name,
            "input": example_of(&schema, 0),
        }}])
    } else {
        let last = messages
            .iter()
            .rev()
            .find(|m| m.get("role") == Some(&json!("user")))
            .and_then(|m| {
                m.get("content")?
                    .as_array()?
                    .iter()
                    .find_map(|c| c.get("text")?.as_str())
            })
            .unwrap_or_default();
        let quoted: String = last.chars().take(120).collect();
        json!([{ "text": format!("[local Bedrock stand-in, no model behind it] You said: {quoted}") }])
    };
    let output_tokens = estimate_tokens(&content.to_string());
    let stop = if forced.is_some() {
        "tool_use"
    } else {
        "end_turn"
    };
    Ok(json!({
        "output": { "message": { "role": "assistant", "content": content } },
        "stopReason": stop,
        "usage": { "inputTokens": input_tokens, "outputTokens": output_tokens, "totalTokens": input_tokens + output_tokens },
        "metrics": { "latencyMs": 1 },
    }))
}

/// About four characters per token, as a rule of thumb for English text.
fn estimate_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4).max(1)
}

/// A small value that satisfies `schema` (JSON Schema: type, properties, required, enum,
/// const, default, items, minItems, minimum, minLength).
pub fn example_of(schema: &Value, depth: usize) -> Value {
    if depth > 16 {
        return Value::Null;
    }
    if let Some(v) = schema.get("const").or_else(|| schema.get("default")) {
        return v.clone();
    }
    if let Some(first) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    if let Some(first) = ["anyOf", "oneOf", "allOf"].iter().find_map(|k| {
        schema
            .get(*k)
            .and_then(Value::as_array)
            .and_then(|a| a.first())
    }) {
        return example_of(first, depth + 1);
    }
    let kind = match schema.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(Value::Array(types)) => types
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("null"),
        _ if schema.get("properties").is_some() => "object",
        _ => "null",
    };
    match kind {
        "object" => {
            let mut out = serde_json::Map::new();
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (name, sub) in props {
                    out.insert(name.clone(), example_of(sub, depth + 1));
                }
            }
            Value::Object(out)
        }
        "array" => {
            let n = schema
                .get("minItems")
                .and_then(Value::as_u64)
                .unwrap_or(0)
                .min(8) as usize;
            let item = schema
                .get("items")
                .map_or(Value::Null, |i| example_of(i, depth + 1));
            Value::Array(vec![item; n])
        }
        "string" => {
            let n = schema
                .get("minLength")
                .and_then(Value::as_u64)
                .unwrap_or(0)
                .min(64) as usize;
            Value::String("x".repeat(n))
        }
        "integer" | "number" => schema
            .get("minimum")
            .or_else(|| schema.get("exclusiveMinimum"))
            .cloned()
            .unwrap_or(json!(0)),
        "boolean" => Value::Bool(false),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_bedrockruntime::types::{
        ContentBlock, ConversationRole, Message, SpecificToolChoice, Tool, ToolChoice,
        ToolConfiguration, ToolInputSchema, ToolSpecification,
    };
    use aws_smithy_types::Document;

    use super::*;

    async fn client() -> aws_sdk_bedrockruntime::Client {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, router()).await });
        let config = triggeriq::aws::load_sdk_config(&triggeriq::aws::AwsOptions::emulator(
            format!("http://{addr}"),
        ))
        .await;
        aws_sdk_bedrockruntime::Client::new(&config)
    }

    fn user(text: &str) -> Message {
        Message::builder()
            .role(ConversationRole::User)
            .content(ContentBlock::Text(text.into()))
            .build()
            .expect("message")
    }

    /// The real SDK talks to the stand-in as it would to Bedrock.
    #[tokio::test]
    async fn the_bedrock_sdk_gets_text_and_forced_tool_answers() {
        let client = client().await;
        let out = client
            .converse()
            .model_id("anthropic.claude-3-haiku-20240307-v1:0")
            .messages(user("Does this ticket read like intent to cancel?"))
            .send()
            .await
            .expect("converse");
        let text = match out.output() {
            Some(aws_sdk_bedrockruntime::types::ConverseOutput::Message(m)) => {
                m.content()[0].as_text().expect("text").clone()
            }
            other => panic!("unexpected output {other:?}"),
        };
        assert!(text.contains("intent to cancel"), "{text}");
        assert!(out.usage().expect("usage").input_tokens() > 0);

        let schema: Document = serde_json::from_value::<Value>(json!({
            "type": "object",
            "properties": {"verdict": {"type": "boolean"}, "confidence": {"type": "number", "minimum": 0.5},
                           "reason": {"type": "string", "minLength": 3}, "label": {"enum": ["churn", "ok"]}},
            "required": ["verdict", "confidence"]
        }))
        .map(to_document)
        .expect("schema");
        let tool = Tool::ToolSpec(
            ToolSpecification::builder()
                .name("judge")
                .input_schema(ToolInputSchema::Json(schema))
                .build()
                .expect("spec"),
        );
        let out = client
            .converse()
            .model_id("m")
            .messages(user("judge this"))
            .tool_config(
                ToolConfiguration::builder()
                    .tools(tool)
                    .tool_choice(ToolChoice::Tool(
                        SpecificToolChoice::builder()
                            .name("judge")
                            .build()
                            .expect("choice"),
                    ))
                    .build()
                    .expect("tool config"),
            )
            .send()
            .await
            .expect("converse with a tool");
        assert_eq!(out.stop_reason().as_str(), "tool_use");
        let Some(aws_sdk_bedrockruntime::types::ConverseOutput::Message(m)) = out.output() else {
            panic!("no message");
        };
        let tool_use = m.content()[0].as_tool_use().expect("a tool use");
        assert_eq!(tool_use.name(), "judge");
        let input = from_document(tool_use.input());
        assert_eq!(
            input,
            json!({"verdict": false, "confidence": 0.5, "reason": "xxx", "label": "churn"})
        );

        let err = client
            .converse()
            .model_id("m")
            .send()
            .await
            .expect_err("no messages");
        assert!(format!("{:?}", err.into_service_error()).contains("ValidationException"));
    }

    fn to_document(v: Value) -> Document {
        match v {
            Value::Null => Document::Null,
            Value::Bool(b) => Document::Bool(b),
            Value::Number(n) => n
                .as_u64()
                .map(|u| Document::Number(aws_smithy_types::Number::PosInt(u)))
                .or_else(|| {
                    n.as_i64()
                        .map(|i| Document::Number(aws_smithy_types::Number::NegInt(i)))
                })
                .unwrap_or_else(|| {
                    Document::Number(aws_smithy_types::Number::Float(n.as_f64().unwrap_or(0.0)))
                }),
            Value::String(s) => Document::String(s),
            Value::Array(a) => Document::Array(a.into_iter().map(to_document).collect()),
            Value::Object(o) => {
                Document::Object(o.into_iter().map(|(k, v)| (k, to_document(v))).collect())
            }
        }
    }

    fn from_document(d: &Document) -> Value {
        match d {
            Document::Null => Value::Null,
            Document::Bool(b) => json!(b),
            Document::Number(aws_smithy_types::Number::PosInt(u)) => json!(u),
            Document::Number(aws_smithy_types::Number::NegInt(i)) => json!(i),
            Document::Number(aws_smithy_types::Number::Float(f)) => json!(f),
            Document::String(s) => json!(s),
            Document::Array(a) => Value::Array(a.iter().map(from_document).collect()),
            Document::Object(o) => Value::Object(
                o.iter()
                    .map(|(k, v)| (k.clone(), from_document(v)))
                    .collect(),
            ),
        }
    }

    #[test]
    fn requests_bedrock_would_refuse_are_refused() {
        assert!(answer(&json!({})).is_err());
        assert!(answer(&json!({"messages": [{"role": "robot", "content": []}]})).is_err());
        let unknown_tool = json!({"messages": [{"role": "user", "content": [{"text": "x"}]}],
            "toolConfig": {"tools": [], "toolChoice": {"tool": {"name": "nope"}}}});
        assert!(answer(&unknown_tool).is_err());
    }
}
