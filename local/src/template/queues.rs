//! SQS queues (attributes, redrive policy) and the event source mappings that feed them to
//! functions.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value as Json;

use super::{Resource, Template};
use crate::intrinsic::{LogicalIds, ResolveError, scalar_string};

/// An SQS queue.
#[derive(Debug, Clone)]
pub struct QueueDef {
    pub logical_id: String,
    /// The local queue name: `QueueName`, else `<stack>-<LogicalId>`.
    pub name: String,
    /// SQS attributes to create it with (KMS settings left out: there is no KMS locally).
    pub attributes: BTreeMap<String, String>,
    /// The dead-letter queue's logical id and `maxReceiveCount`.
    pub redrive: Option<(String, u32)>,
    pub visibility_timeout: Duration,
}

/// An SQS event source mapping: which function consumes which queue, how.
#[derive(Debug, Clone)]
pub struct QueueMapping {
    pub logical_id: String,
    pub function: String,
    pub queue: String,
    pub batch_size: usize,
    pub batching_window: Duration,
    pub report_batch_item_failures: bool,
    pub max_concurrency: Option<u32>,
}

impl Template {
    pub(super) fn add_queue(
        &mut self,
        r: &Resource<'_>,
        ids: &BTreeMap<String, String>,
    ) -> anyhow::Result<()> {
        let name = self.string(ids, r.get("QueueName"), &r.path("QueueName"))?;
        let mut attributes = BTreeMap::new();
        for (property, attribute) in [
            ("VisibilityTimeout", "VisibilityTimeout"),
            ("MessageRetentionPeriod", "MessageRetentionPeriod"),
            ("DelaySeconds", "DelaySeconds"),
            ("MaximumMessageSize", "MaximumMessageSize"),
            (
                "ReceiveMessageWaitTimeSeconds",
                "ReceiveMessageWaitTimeSeconds",
            ),
            ("FifoQueue", "FifoQueue"),
            ("ContentBasedDeduplication", "ContentBasedDeduplication"),
        ] {
            if let Some(value) = self.json(ids, r.get(property), &r.path(property))? {
                let text = scalar_string(&value).ok_or_else(|| {
                    ResolveError::new(&r.path(property), "must be a number or a boolean")
                })?;
                attributes.insert(attribute.to_owned(), text);
            }
        }
        let visibility = attributes
            .get("VisibilityTimeout")
            .map_or(Ok(30), |v| v.parse::<u64>())
            .map_err(|_| ResolveError::new(&r.path("VisibilityTimeout"), "must be a number"))?;
        let redrive = match r.get("RedrivePolicy") {
            None => None,
            Some(policy) => {
                let path = r.path("RedrivePolicy");
                let target = policy
                    .get("deadLetterTargetArn")
                    .ok_or_else(|| ResolveError::new(&path, "deadLetterTargetArn is missing"))?;
                let dlq = self.reference(
                    ids,
                    Some(target),
                    &format!("{path}.deadLetterTargetArn"),
                    &["AWS::SQS::Queue"],
                )?;
                let max = self.number(
                    ids,
                    policy.get("maxReceiveCount"),
                    &format!("{path}.maxReceiveCount"),
                    0,
                )?;
                if max == 0 {
                    return Err(
                        ResolveError::new(&path, "maxReceiveCount must be at least 1").into(),
                    );
                }
                Some((dlq, u32::try_from(max).unwrap_or(u32::MAX)))
            }
        };
        let mut name = self.physical_name(name, r.id);
        if attributes.get("FifoQueue").is_some_and(|v| v == "true") && !name.ends_with(".fifo") {
            name.push_str(".fifo");
        }
        self.queues.insert(
            r.id.to_owned(),
            QueueDef {
                logical_id: r.id.to_owned(),
                name,
                attributes,
                redrive,
                visibility_timeout: Duration::from_secs(visibility),
            },
        );
        Ok(())
    }

    pub(super) fn add_mapping(
        &mut self,
        r: &Resource<'_>,
        ids: &BTreeMap<String, String>,
    ) -> anyhow::Result<()> {
        let function = self.function_of_uri(ids, r.get("FunctionName"), &r.path("FunctionName"))?;
        let lookup = LogicalIds(ids);
        let source = r
            .get("EventSourceArn")
            .map(|v| {
                self.structural(&lookup)
                    .resolve_string(v, &r.path("EventSourceArn"))
            })
            .transpose()?;
        let queue = match source {
            Some(id) if ids.get(&id).is_some_and(|k| k == "AWS::SQS::Queue") => id,
            other => {
                self.warnings.push(format!(
                    "{}: event source {other:?} is not an SQS queue of this template; not emulated",
                    r.id
                ));
                return Ok(());
            }
        };
        if !self.enabled(
            ids,
            r.get("Enabled"),
            None,
            &format!("Resources.{}.Properties", r.id),
        )? {
            return Ok(());
        }
        let batch_size = self.number(ids, r.get("BatchSize"), &r.path("BatchSize"), 10)?;
        if batch_size == 0 {
            anyhow::bail!("{}: must be at least 1", r.path("BatchSize"));
        }
        let window = self.number(
            ids,
            r.get("MaximumBatchingWindowInSeconds"),
            &r.path("MaximumBatchingWindowInSeconds"),
            0,
        )?;
        let report = self
            .json(
                ids,
                r.get("FunctionResponseTypes"),
                &r.path("FunctionResponseTypes"),
            )?
            .is_some_and(|v| reports_failures(&v));
        let concurrency = self
            .json(ids, r.get("ScalingConfig"), &r.path("ScalingConfig"))?
            .and_then(|s| s.get("MaximumConcurrency").and_then(scalar_string))
            .and_then(|s| s.parse().ok());
        self.mappings.push(QueueMapping {
            logical_id: r.id.to_owned(),
            function,
            queue,
            batch_size: batch_size as usize,
            batching_window: Duration::from_secs(window),
            report_batch_item_failures: report,
            max_concurrency: concurrency,
        });
        Ok(())
    }

    /// The binaries of the functions that consume queues, once each.
    pub fn consumer_binaries(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .mappings
            .iter()
            .filter_map(|m| self.functions.get(&m.function))
            .map(|f| f.binary.clone())
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

/// Whether `FunctionResponseTypes` asks for partial batch failures.
pub(super) fn reports_failures(value: &Json) -> bool {
    value
        .as_array()
        .is_some_and(|types| types.iter().any(|t| t == "ReportBatchItemFailures"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::tests::repo_template;

    #[test]
    fn queues_keep_their_redrive_policies_and_mappings_their_batching() {
        let t = repo_template();
        for mapping in &t.mappings {
            let queue = &t.queues[&mapping.queue];
            let (dlq, max) = queue
                .redrive
                .as_ref()
                .expect("every consumed queue has a DLQ");
            assert!(t.queues.contains_key(dlq));
            assert!(*max >= 1);
            assert!(mapping.report_batch_item_failures, "{}", mapping.logical_id);
        }
        let record = t
            .mappings
            .iter()
            .find(|m| t.functions[&m.function].binary == "record-deliveries")
            .expect("record-deliveries consumes a queue");
        assert_eq!(record.batch_size, 50);
        assert_eq!(record.batching_window, Duration::from_secs(2));
        assert_eq!(record.max_concurrency, Some(5));
        let events = &t.queues["EventsQueue"];
        assert_eq!(events.name, "triggeriq-local-EventsQueue");
        assert_eq!(events.attributes["VisibilityTimeout"], "360");
        assert!(!events.attributes.contains_key("KmsMasterKeyId"));
        assert_eq!(events.redrive, Some(("EventsDeadLetterQueue".into(), 5)));
    }

    #[test]
    fn queue_consumers_are_the_mapped_functions() {
        let t = repo_template();
        assert_eq!(
            t.consumer_binaries(),
            vec!["deliver-webhooks", "evaluate-events", "record-deliveries"]
        );
    }
}
