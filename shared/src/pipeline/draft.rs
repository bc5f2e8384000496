//! Drafting a trigger from a sentence (`POST /v1/triggers/draft`): the tenant's token budget,
//! one Converse call, and, when its draft is refused, one more carrying the problems back;
//! then the example events matched against the draft. Nothing is created or enabled: the
//! answer is a body the client may send to `POST /v1/triggers`.
//!
//! 1. The budget: the tenant's tokens today ([`TokenBudget::check`], the `AIUSAGE#` item AI
//!    checks are charged to as well) must be under the deployment's daily limit, or nothing
//!    is asked ([`DraftError::OverBudget`]).
//! 2. The first call: [`DraftPrompt`] (the guide, the request text, the example events) with
//!    the `draft` tool forced. Each call's tokens are charged as soon as it answers, so a
//!    request may overshoot the limit by its own calls, never more.
//! 3. The answer is held to the tool's schema ([`DraftReply`]) and the draft to
//!    create-trigger's validator ([`check_draft`]). A refused answer (a malformed input, no
//!    call of the tool, an invalid trigger) is sent back once with its problems; a second
//!    refusal ends the request ([`DraftError::Invalid`]), with the second answer's problems.
//! 4. The example events, if any, are matched against the draft's pattern
//!    ([`match_examples`]).
//!
//! Bedrock's failures are not retried here: the client that called has a request timeout of
//! its own, and a throttled model answers sooner by telling the client to come back
//! ([`DraftError::Model`], which the edge answers 503 or 502). Both calls share one time
//! budget ([`DRAFT_TIME_BUDGET`], 26 s): each Converse call may take 20 s
//! (`crate::aws::bedrock_client`), and two of them would outlast the HTTP API's 30 s, so the
//! correction gets what the first call left, and a correction cut short is a timeout.

use std::time::Duration;

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use crate::ai::draft::{
    CheckedDraft, DRAFT_TOOL, DRAFT_TOOL_DESCRIPTION, DraftInput, DraftLimits, DraftPrompt,
    DraftReply, ExampleMatch, MAX_DRAFT_TOKENS, check_draft, draft_tool_schema, match_examples,
    warnings,
};
use crate::bedrock::{BedrockError, Converse, Missed, ToolCall, ToolReply, Turn, Usage};
use crate::dynamodb::ai::utc_day;
use crate::dynamodb::{DynamoError, TokenBudget};
use crate::ids::TenantId;
use crate::problem::FieldError;
use crate::trigger::TriggerLimits;

/// How long one draft's Converse calls may take together: inside draft-trigger's 29 s timeout
/// (template.yaml), which is inside the HTTP API's 30 s, with room for the budget's reads and
/// writes.
pub const DRAFT_TIME_BUDGET: Duration = Duration::from_secs(26);

/// A draft, valid: what `POST /v1/triggers/draft` answers.
#[derive(Debug, Clone, Serialize)]
pub struct Drafted {
    /// A body `POST /v1/triggers` accepts as it is (disabled; a placeholder webhook when the
    /// request named none).
    pub draft: Value,
    /// The model's words on what the draft watches for and what it assumed.
    pub explanation: String,
    pub warnings: Vec<String>,
    /// Which example events the draft's pattern matches (only when the request gave some).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub example_matches: Option<Vec<ExampleMatch>>,
    /// The Converse calls made (1, or 2 after a correction), not shown.
    #[serde(skip)]
    pub calls: u8,
    /// Their tokens together, not shown.
    #[serde(skip)]
    pub usage: Usage,
}

/// Why there is no draft.
#[derive(Debug, thiserror::Error)]
pub enum DraftError {
    /// The tenant used its AI tokens for today; nothing was asked.
    #[error("the tenant's AI tokens for today are used up")]
    OverBudget {
        /// Seconds until the next UTC day, when the budget starts afresh.
        retry_after_seconds: u64,
    },
    /// The model's answer was refused twice; these are the second answer's problems, with
    /// paths into the answer (`$.draft.condition.count`, `$.explanation`).
    #[error("the model could not produce a valid trigger")]
    Invalid(Vec<FieldError>),
    /// Bedrock gave no answer.
    #[error(transparent)]
    Model(BedrockError),
    /// The budget could not be read: nothing was asked.
    #[error("the token budget could not be read: {0}")]
    Budget(#[from] DynamoError),
}

/// Drafts triggers with one model for a deployment; built once per container.
#[derive(Debug, Clone)]
pub struct Drafter {
    converse: Converse,
    budget: TokenBudget,
    model: String,
    tokens_per_day: u64,
    triggers: TriggerLimits,
    limits: DraftLimits,
    time_budget: Duration,
}

impl Drafter {
    /// Drafts with `model`, holding drafts to `triggers` (the deployment's, as create-trigger
    /// holds bodies to them) and each tenant to `tokens_per_day` in `budget`.
    pub fn new(
        converse: Converse,
        budget: TokenBudget,
        model: impl Into<String>,
        tokens_per_day: u64,
        triggers: TriggerLimits,
        limits: DraftLimits,
    ) -> Self {
        Self {
            converse,
            budget,
            model: model.into(),
            tokens_per_day,
            triggers,
            limits,
            time_budget: DRAFT_TIME_BUDGET,
        }
    }

    /// The same drafter with another time budget for the calls of one draft (tests).
    pub fn with_time_budget(mut self, time_budget: Duration) -> Self {
        self.time_budget = time_budget;
        self
    }

    /// The bounds on a request, for reading one.
    pub fn limits(&self) -> &DraftLimits {
        &self.limits
    }

    /// Drafts a trigger for `input` on `tenant`'s budget (the UTC day of `now`).
    #[tracing::instrument(skip_all, fields(tenant = %tenant, model = %self.model))]
    pub async fn draft(
        &self,
        tenant: TenantId,
        input: &DraftInput,
        now: DateTime<Utc>,
    ) -> Result<Drafted, DraftError> {
        let day = utc_day(now);
        if !self.budget.check(tenant, day, self.tokens_per_day).await? {
            return Err(DraftError::OverBudget {
                retry_after_seconds: seconds_to_next_day(now),
            });
        }
        let deadline = tokio::time::Instant::now() + self.time_budget;
        let prompt = DraftPrompt::new(input, &self.triggers);
        let first = self
            .ask(tenant, day, &prompt.system, &prompt.user, deadline)
            .await?;
        let mut usage = first.usage;
        let mut calls = 1;
        let (reply, checked, corrected) = match self.attempt(&first) {
            Ok((reply, checked)) => (reply, checked, Vec::new()),
            Err((previous, problems)) => {
                tracing::info!(
                    problems = problems.len(),
                    "first draft refused; asking once more"
                );
                let correction = prompt.correction(previous.as_ref(), &problems);
                let second = self
                    .ask(tenant, day, &prompt.system, &correction, deadline)
                    .await?;
                usage.input_tokens += second.usage.input_tokens;
                usage.output_tokens += second.usage.output_tokens;
                calls += 1;
                match self.attempt(&second) {
                    Ok((reply, checked)) => (reply, checked, problems),
                    Err((_, problems)) => return Err(DraftError::Invalid(problems)),
                }
            }
        };
        let (example_matches, match_warning) = if input.examples.is_empty() {
            (None, None)
        } else {
            let (matches, warning) =
                match_examples(&checked.spec, &input.examples, self.limits.max_match_steps);
            (Some(matches), warning)
        };
        let mut said = warnings(&checked, &corrected, example_matches.as_deref());
        said.extend(match_warning);
        Ok(Drafted {
            draft: checked.body,
            explanation: reply.explanation,
            warnings: said,
            example_matches,
            calls,
            usage,
        })
    }

    /// One Converse call with the draft tool forced, answered by `deadline`, its tokens
    /// charged to the tenant.
    async fn ask(
        &self,
        tenant: TenantId,
        day: chrono::NaiveDate,
        system: &str,
        user: &str,
        deadline: tokio::time::Instant,
    ) -> Result<ToolReply, DraftError> {
        let messages = [Turn::user(user)];
        let schema = draft_tool_schema();
        let call = ToolCall {
            system,
            messages: &messages,
            tool: DRAFT_TOOL,
            description: DRAFT_TOOL_DESCRIPTION,
            schema: &schema,
            max_tokens: MAX_DRAFT_TOKENS,
        };
        let reply =
            tokio::time::timeout_at(deadline, self.converse.converse_tool(&self.model, &call))
                .await
                .map_err(|_| {
                    DraftError::Model(BedrockError::Retryable(format!(
                        "the draft's calls took more than {} s",
                        self.time_budget.as_secs()
                    )))
                })?
                .map_err(DraftError::Model)?;
        let Usage {
            input_tokens,
            output_tokens,
        } = reply.usage;
        // The call is made and paid for: a charge that fails is logged rather than failing a
        // draft the tenant already has, and the next request's check still reads the budget.
        if let Err(e) = self
            .budget
            .add(tenant, day, input_tokens, output_tokens)
            .await
        {
            tracing::error!(error = %crate::error_chain(&e), input_tokens, output_tokens,
                "a draft's tokens could not be charged");
        }
        Ok(reply)
    }

    /// The answer's draft, valid; or what to send back: the answer as the model gave it (the
    /// tool's input, when there was one) and its problems, with paths into that input.
    fn attempt(
        &self,
        reply: &ToolReply,
    ) -> Result<(DraftReply, CheckedDraft), (Option<Value>, Vec<FieldError>)> {
        match reply.first(DraftReply::from_tool_input) {
            Ok(read) => match check_draft(&read.draft, &self.triggers) {
                Ok(checked) => Ok((read, checked)),
                Err(problems) => Err((
                    Some(json!({"draft": read.draft, "explanation": read.explanation})),
                    problems,
                )),
            },
            Err(Missed::Input(problem)) => Err((reply.inputs.first().cloned(), vec![problem])),
            Err(Missed::OtherTool(name)) => Err((
                None,
                vec![FieldError::new(
                    "$",
                    format!("the answer called a tool named {name:?}; call the draft tool"),
                )],
            )),
            Err(Missed::NoCall(what)) => Err((
                None,
                vec![FieldError::new(
                    "$",
                    format!("the answer did not call the draft tool ({what})"),
                )],
            )),
        }
    }
}

/// Seconds from `now` to the next UTC midnight, at least 1.
fn seconds_to_next_day(now: DateTime<Utc>) -> u64 {
    let next = utc_day(now)
        .succ_opt()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .unwrap_or(now + ChronoDuration::days(1));
    u64::try_from((next - now).num_seconds())
        .unwrap_or(1)
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_starts_afresh_at_the_next_utc_midnight() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).expect("time").to_utc();
        assert_eq!(seconds_to_next_day(at("2026-04-01T23:59:30Z")), 30);
        assert_eq!(seconds_to_next_day(at("2026-04-01T00:00:00Z")), 86_400);
        assert_eq!(seconds_to_next_day(at("2026-04-01T23:59:59.900Z")), 1);
    }
}
