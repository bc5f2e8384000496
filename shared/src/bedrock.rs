//! Amazon Bedrock: the model that answers AI checks ([`crate::ai`]), through the runtime's
//! Converse API.
//!
//! One Converse call per judgement: the [`JudgeRequest`]'s system prompt, its user message
//! (the delimited event data), the verdict tool as the only tool and a tool choice that forces
//! it, at temperature 0. The model has nothing else it could call and no way to answer but the
//! tool's structured input, which is read into a [`Verdict`] or found [`Malformed`]; what to do
//! with a malformed answer (ask once more, then the check's `on_error`) is the caller's.
//!
//! Failures are sorted by whether a later attempt can succeed. Throttling, an unavailable
//! service or model, 5xx, timeouts and network failures are [`BedrockError::Retryable`]: the
//! message goes back to its queue, whose visibility timeout is the backoff, so no function
//! sleeps (billed) waiting for Bedrock; the client [`crate::aws::bedrock_client`] builds makes
//! one attempt per call for the same reason. A refused request (validation, access denied, an
//! unknown model, the model's own error) is [`BedrockError::Permanent`].

use aws_sdk_bedrockruntime::error::{ProvideErrorMetadata as _, SdkError};
use aws_sdk_bedrockruntime::operation::converse::{ConverseError, ConverseOutput};
use aws_sdk_bedrockruntime::types::{
    ContentBlock, ConversationRole, ConverseOutput as Output, InferenceConfiguration, Message,
    SpecificToolChoice, SystemContentBlock, Tool, ToolChoice, ToolConfiguration, ToolInputSchema,
    ToolSpecification,
};
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::{Document, Number};
use serde_json::Value;

use crate::ai::{
    JudgeRequest, Malformed, VERDICT_TOOL, VERDICT_TOOL_DESCRIPTION, Verdict, verdict_tool_schema,
};
use crate::aws::Lazy;

/// Most tokens the model may answer with: a tool call with a 300-character reason takes about
/// 150; the margin lets a verbose model finish its call rather than be cut off mid-input.
pub const MAX_TOKENS: i32 = 400;

/// Tokens a call used, as Bedrock counts (and bills) them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// What the model answered: a verdict, or why its answer is not one; and what it cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub verdict: Result<Verdict, Malformed>,
    pub usage: Usage,
}

/// Why a Converse call gave no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BedrockError {
    /// Throttled, unavailable, timed out or not reached: the same call may succeed later.
    #[error("Bedrock Converse failed, for now: {0}")]
    Retryable(String),
    /// Refused (validation, access denied, unknown model, the model's error): asking again
    /// gets the same answer.
    #[error("Bedrock Converse failed: {0}")]
    Permanent(String),
}

impl BedrockError {
    /// True when the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Retryable(_))
    }
}

/// Asks a Bedrock model AI checks' questions; cheap to clone.
#[derive(Debug, Clone)]
pub struct Judge {
    client: Lazy<aws_sdk_bedrockruntime::Client>,
}

impl Judge {
    pub fn new(client: impl Into<Lazy<aws_sdk_bedrockruntime::Client>>) -> Self {
        Self {
            client: client.into(),
        }
    }

    /// Sends `request` to `model` (a model id, inference profile id or ARN) in one Converse
    /// call and reads the verdict from its answer.
    #[tracing::instrument(skip_all, fields(model = model))]
    pub async fn judge(&self, model: &str, request: &JudgeRequest) -> Result<Answer, BedrockError> {
        let message = Message::builder()
            .role(ConversationRole::User)
            .content(ContentBlock::Text(request.data.clone()))
            .build()
            .map_err(|e| not_built("the user message", &e))?;
        let output = self
            .client
            .converse()
            .model_id(model)
            .system(SystemContentBlock::Text(request.system.clone()))
            .messages(message)
            .tool_config(verdict_tool_config()?)
            .inference_config(
                InferenceConfiguration::builder()
                    .max_tokens(MAX_TOKENS)
                    .temperature(0.0)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| classify(&e))?;
        Ok(Answer {
            verdict: read_verdict(&output),
            usage: usage(&output),
        })
    }
}

/// The verdict tool as the only tool, and the choice that forces the model to call it.
fn verdict_tool_config() -> Result<ToolConfiguration, BedrockError> {
    let spec = ToolSpecification::builder()
        .name(VERDICT_TOOL)
        .description(VERDICT_TOOL_DESCRIPTION)
        .input_schema(ToolInputSchema::Json(to_document(&verdict_tool_schema())))
        .build()
        .map_err(|e| not_built("the verdict tool", &e))?;
    let choice = SpecificToolChoice::builder()
        .name(VERDICT_TOOL)
        .build()
        .map_err(|e| not_built("the tool choice", &e))?;
    ToolConfiguration::builder()
        .tools(Tool::ToolSpec(spec))
        .tool_choice(ToolChoice::Tool(choice))
        .build()
        .map_err(|e| not_built("the tool configuration", &e))
}

/// A builder refused a part of the request: only a missing required field does that, which
/// would be a bug here, and would fail every call alike.
fn not_built(what: &str, e: &aws_smithy_types::error::operation::BuildError) -> BedrockError {
    BedrockError::Permanent(format!("{what} could not be built: {e}"))
}

/// The first call of the verdict tool whose input is a verdict; otherwise why there is none:
/// the first verdict call's bad input, else the other tool the model called, else what it
/// did instead (text, or stopping early).
fn read_verdict(output: &ConverseOutput) -> Result<Verdict, Malformed> {
    let stop = output.stop_reason().as_str();
    let Some(Output::Message(message)) = output.output() else {
        return Err(Malformed::NoVerdict(format!(
            "no message; stop reason {stop}"
        )));
    };
    let mut bad_input = None;
    let mut other_tool = None;
    let mut text = false;
    for block in message.content() {
        match block {
            ContentBlock::ToolUse(call) if call.name() == VERDICT_TOOL => {
                match Verdict::from_tool_input(&to_json(call.input())) {
                    Ok(verdict) => return Ok(verdict),
                    Err(e) => {
                        bad_input.get_or_insert(e);
                    }
                }
            }
            ContentBlock::ToolUse(call) => {
                other_tool.get_or_insert_with(|| call.name().chars().take(64).collect());
            }
            ContentBlock::Text(_) => text = true,
            _ => {}
        }
    }
    Err(bad_input
        .or(other_tool.map(Malformed::OtherTool))
        .unwrap_or_else(|| {
            Malformed::NoVerdict(if text {
                format!("a text answer; stop reason {stop}")
            } else {
                format!("no tool call; stop reason {stop}")
            })
        }))
}

fn usage(output: &ConverseOutput) -> Usage {
    output
        .usage()
        .map(|u| Usage {
            input_tokens: u64::try_from(u.input_tokens()).unwrap_or(0),
            output_tokens: u64::try_from(u.output_tokens()).unwrap_or(0),
        })
        .unwrap_or_default()
}

/// Whether a failed call may succeed later. The modelled errors decide by their kind; others
/// by their code (throttling by any name) and HTTP status (429 and 5xx but 501: Bedrock's
/// throttling and unavailability); a failure to reach Bedrock or to read its answer is
/// retryable unless the request itself was at fault.
fn classify(e: &SdkError<ConverseError>) -> BedrockError {
    let detail = || DisplayErrorContext(e).to_string();
    match e {
        SdkError::TimeoutError(_) => BedrockError::Retryable(format!("timed out: {}", detail())),
        SdkError::DispatchFailure(failure) if failure.is_user() => {
            BedrockError::Permanent(format!("could not be sent: {}", detail()))
        }
        SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            BedrockError::Retryable(format!("no answer: {}", detail()))
        }
        SdkError::ConstructionFailure(_) => {
            BedrockError::Permanent(format!("could not be built: {}", detail()))
        }
        SdkError::ServiceError(context) => {
            let err = context.err();
            let status = context.raw().status().as_u16();
            let what = format!(
                "{} (HTTP {status}): {}",
                err.code().unwrap_or("unknown error"),
                err.message().unwrap_or("no message")
            );
            let refused = err.is_access_denied_exception()
                || err.is_validation_exception()
                || err.is_resource_not_found_exception()
                || err.is_model_error_exception();
            let transient = err.is_throttling_exception()
                || err.is_service_unavailable_exception()
                || err.is_model_not_ready_exception()
                || err.is_model_timeout_exception()
                || err.is_internal_server_exception()
                || err.code().is_some_and(|c| c.contains("Throttl"))
                || status == 429
                || ((500..600).contains(&status) && status != 501);
            if !refused && transient {
                BedrockError::Retryable(what)
            } else {
                BedrockError::Permanent(what)
            }
        }
        // A kind of failure this SDK version does not know: the queue's redelivery limit
        // bounds the retries.
        _ => BedrockError::Retryable(detail()),
    }
}

/// A JSON value as a Smithy document (the tool's schema). Numbers keep their kind: an
/// integer stays an integer on the wire.
pub fn to_document(value: &Value) -> Document {
    match value {
        Value::Null => Document::Null,
        Value::Bool(b) => Document::Bool(*b),
        Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => Document::Number(Number::PosInt(u)),
            (None, Some(i), _) => Document::Number(Number::NegInt(i)),
            (None, None, Some(f)) => Document::Number(Number::Float(f)),
            (None, None, None) => Document::Null,
        },
        Value::String(s) => Document::String(s.clone()),
        Value::Array(items) => Document::Array(items.iter().map(to_document).collect()),
        Value::Object(map) => Document::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), to_document(v)))
                .collect(),
        ),
    }
}

/// A Smithy document (a tool call's input) as a JSON value; a float JSON cannot hold (NaN,
/// infinite) becomes `null`, which no schema number accepts.
pub fn to_json(document: &Document) -> Value {
    match document {
        Document::Null => Value::Null,
        Document::Bool(b) => Value::Bool(*b),
        Document::Number(Number::PosInt(u)) => Value::from(*u),
        Document::Number(Number::NegInt(i)) => Value::from(*i),
        Document::Number(Number::Float(f)) => serde_json::Number::from_f64(*f)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        Document::String(s) => Value::String(s.clone()),
        Document::Array(items) => Value::Array(items.iter().map(to_json).collect()),
        Document::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), to_json(v))).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn json_and_documents_convert_both_ways_keeping_number_kinds() {
        let value = json!({"a": [1, -2, 0.5, null, true, "s"], "b": {"c": u64::MAX}});
        let document = to_document(&value);
        assert_eq!(to_json(&document), value);
        let schema = to_document(&verdict_tool_schema());
        let maximum = schema
            .as_object()
            .and_then(|s| s.get("properties"))
            .and_then(Document::as_object)
            .and_then(|p| p.get("confidence"))
            .and_then(Document::as_object)
            .and_then(|c| c.get("maximum"));
        assert_eq!(maximum, Some(&Document::Number(Number::PosInt(1))));
    }

    #[test]
    fn a_float_json_cannot_hold_becomes_null() {
        let input = Document::Object(
            [(
                "confidence".to_owned(),
                Document::Number(Number::Float(f64::NAN)),
            )]
            .into_iter()
            .collect(),
        );
        assert_eq!(to_json(&input), json!({"confidence": null}));
    }

    #[test]
    fn the_tool_configuration_offers_only_the_verdict_tool_and_forces_it() {
        let config = verdict_tool_config().expect("builds");
        assert_eq!(config.tools().len(), 1);
        let Some(Tool::ToolSpec(spec)) = config.tools().first() else {
            panic!("a tool spec: {config:?}");
        };
        assert_eq!(spec.name(), VERDICT_TOOL);
        assert_eq!(
            spec.input_schema(),
            Some(&ToolInputSchema::Json(to_document(&verdict_tool_schema())))
        );
        assert!(matches!(
            config.tool_choice(),
            Some(ToolChoice::Tool(choice)) if choice.name() == VERDICT_TOOL
        ));
    }
}
