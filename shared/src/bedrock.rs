//! Amazon Bedrock: the model that answers AI checks ([`crate::ai`]) and drafts triggers
//! (`crate::pipeline::draft`), through the runtime's Converse API.
//!
//! Both force one tool ([`Converse::converse_tool`], the one place a request is built): the
//! model answers only through the tool's structured input, which the caller reads. One
//! Converse call per judgement: the [`JudgeRequest`]'s system prompt, its user message
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

/// Most tokens a verdict may take: a tool call with a 300-character reason takes about 150; the
/// margin lets a verbose model finish its call rather than be cut off mid-input.
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

/// One turn of a conversation sent to the model, as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    pub role: Role,
    pub text: String,
}

impl Turn {
    /// A user turn.
    pub fn user(text: impl Into<String>) -> Self {
        Self {
            role: Role::User,
            text: text.into(),
        }
    }
}

/// Who speaks in a [`Turn`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
}

/// A Converse call that forces one tool: the system prompt, the conversation (ending with a
/// user turn), the only tool the model is given, with its description and input schema, and
/// how many tokens the answer may take. Temperature 0: the same request should get the same
/// kind of answer.
#[derive(Debug, Clone, Copy)]
pub struct ToolCall<'a> {
    pub system: &'a str,
    pub messages: &'a [Turn],
    pub tool: &'a str,
    pub description: &'a str,
    pub schema: &'a Value,
    pub max_tokens: i32,
}

/// What the model did with a [`ToolCall`]: the inputs of its calls of the tool, in order,
/// and what else it did; and what the call cost.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolReply {
    /// The input of each call of the forced tool, in the order of the answer.
    pub inputs: Vec<Value>,
    /// The first other tool the model called (cut to 64 characters), if any.
    pub other_tool: Option<String>,
    /// Whether the answer held a message at all.
    pub message: bool,
    /// Whether the message held text.
    pub text: bool,
    /// Bedrock's stop reason (`tool_use`, `end_turn`, `max_tokens`, …).
    pub stop_reason: String,
    pub usage: Usage,
}

/// Why a [`ToolReply`] holds no input the caller accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missed<E> {
    /// The first call's input, refused by the caller's reader.
    Input(E),
    /// The model called another tool (never given to it) and not this one.
    OtherTool(String),
    /// The model called no tool: it answered in text, or stopped early (the stop reason says).
    NoCall(String),
}

impl ToolReply {
    /// The first input `read` accepts; otherwise why there is none: the first call's refused
    /// input, else the other tool the model called, else what it did instead.
    pub fn first<T, E>(&self, read: impl Fn(&Value) -> Result<T, E>) -> Result<T, Missed<E>> {
        let mut refused = None;
        for input in &self.inputs {
            match read(input) {
                Ok(value) => return Ok(value),
                Err(e) => {
                    refused.get_or_insert(e);
                }
            }
        }
        if let Some(e) = refused {
            return Err(Missed::Input(e));
        }
        if let Some(other) = &self.other_tool {
            return Err(Missed::OtherTool(other.clone()));
        }
        let stop = &self.stop_reason;
        Err(Missed::NoCall(if !self.message {
            format!("no message; stop reason {stop}")
        } else if self.text {
            format!("a text answer; stop reason {stop}")
        } else {
            format!("no tool call; stop reason {stop}")
        }))
    }
}

/// Bedrock's Converse API with one forced tool: what AI checks ([`Judge`]) and trigger
/// drafts (`crate::pipeline::draft`) share, so that the request is built in one place.
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct Converse {
    client: Lazy<aws_sdk_bedrockruntime::Client>,
}

impl Converse {
    pub fn new(client: impl Into<Lazy<aws_sdk_bedrockruntime::Client>>) -> Self {
        Self {
            client: client.into(),
        }
    }

    /// Sends `call` to `model` (a model id, inference profile id or ARN) in one Converse call:
    /// the tool as the only tool and a tool choice that forces it, so the model has no way to
    /// answer but the tool's structured input.
    #[tracing::instrument(skip_all, fields(model = model, tool = call.tool))]
    pub async fn converse_tool(
        &self,
        model: &str,
        call: &ToolCall<'_>,
    ) -> Result<ToolReply, BedrockError> {
        let messages = call
            .messages
            .iter()
            .map(|turn| {
                let role = match turn.role {
                    Role::User => ConversationRole::User,
                    Role::Assistant => ConversationRole::Assistant,
                };
                Message::builder()
                    .role(role)
                    .content(ContentBlock::Text(turn.text.clone()))
                    .build()
                    .map_err(|e| not_built("a message", &e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let output = self
            .client
            .converse()
            .model_id(model)
            .system(SystemContentBlock::Text(call.system.to_owned()))
            .set_messages(Some(messages))
            .tool_config(tool_config(call.tool, call.description, call.schema)?)
            .inference_config(
                InferenceConfiguration::builder()
                    .max_tokens(call.max_tokens)
                    .temperature(0.0)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| classify(&e))?;
        Ok(read_reply(&output, call.tool))
    }
}

/// Asks a Bedrock model AI checks' questions; cheap to clone.
#[derive(Debug, Clone)]
pub struct Judge {
    converse: Converse,
}

impl Judge {
    pub fn new(client: impl Into<Lazy<aws_sdk_bedrockruntime::Client>>) -> Self {
        Self {
            converse: Converse::new(client),
        }
    }

    /// Sends `request` to `model` (a model id, inference profile id or ARN) in one Converse
    /// call and reads the verdict from its answer.
    #[tracing::instrument(skip_all, fields(model = model))]
    pub async fn judge(&self, model: &str, request: &JudgeRequest) -> Result<Answer, BedrockError> {
        let messages = [Turn::user(request.data.clone())];
        let schema = verdict_tool_schema();
        let reply = self
            .converse
            .converse_tool(
                model,
                &ToolCall {
                    system: &request.system,
                    messages: &messages,
                    tool: VERDICT_TOOL,
                    description: VERDICT_TOOL_DESCRIPTION,
                    schema: &schema,
                    max_tokens: MAX_TOKENS,
                },
            )
            .await?;
        let verdict = reply
            .first(Verdict::from_tool_input)
            .map_err(|missed| match missed {
                Missed::Input(malformed) => malformed,
                Missed::OtherTool(name) => Malformed::OtherTool(name),
                Missed::NoCall(what) => Malformed::NoVerdict(what),
            });
        Ok(Answer {
            verdict,
            usage: reply.usage,
        })
    }
}

/// `tool` as the only tool, and the choice that forces the model to call it.
fn tool_config(
    tool: &str,
    description: &str,
    schema: &Value,
) -> Result<ToolConfiguration, BedrockError> {
    let spec = ToolSpecification::builder()
        .name(tool)
        .description(description)
        .input_schema(ToolInputSchema::Json(to_document(schema)))
        .build()
        .map_err(|e| not_built("the tool", &e))?;
    let choice = SpecificToolChoice::builder()
        .name(tool)
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

/// The answer's calls of `tool`, the first other tool it called, whether it held text.
fn read_reply(output: &ConverseOutput, tool: &str) -> ToolReply {
    let mut reply = ToolReply {
        inputs: Vec::new(),
        other_tool: None,
        message: false,
        text: false,
        stop_reason: output.stop_reason().as_str().to_owned(),
        usage: usage(output),
    };
    let Some(Output::Message(message)) = output.output() else {
        return reply;
    };
    reply.message = true;
    for block in message.content() {
        match block {
            ContentBlock::ToolUse(call) if call.name() == tool => {
                reply.inputs.push(to_json(call.input()));
            }
            ContentBlock::ToolUse(call) => {
                reply
                    .other_tool
                    .get_or_insert_with(|| call.name().chars().take(64).collect());
            }
            ContentBlock::Text(_) => reply.text = true,
            _ => {}
        }
    }
    reply
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
        let config = tool_config(
            VERDICT_TOOL,
            VERDICT_TOOL_DESCRIPTION,
            &verdict_tool_schema(),
        )
        .expect("builds");
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
