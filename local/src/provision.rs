//! Creates in the emulator (moto) the queues, tables and buckets template.yaml declares, and
//! answers what `!Ref`/`!GetAtt` of them are locally (queue URLs, ARNs, names).
//!
//! Safe to run again: existing resources are kept (with their messages and items) and their
//! attributes set to what the template says. The KMS settings of tables, queues and buckets are
//! left out (moto stores data in the clear anyway); the one key the functions call themselves,
//! the signing secrets' ([`SIGNING_KEY_ALIAS`]), is made in moto, once, under an alias, so that
//! secrets sealed by an earlier run still open.

use std::collections::BTreeMap;

use anyhow::Context as _;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    TimeToLiveSpecification,
};
use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
use aws_sdk_sqs::types::QueueAttributeName;
use triggeriq::aws::AwsClients;

use crate::intrinsic::ResourceLookup;
use crate::template::{ACCOUNT_ID, REGION, Template};

pub use crate::template::SIGNING_KEY_ALIAS;

/// The key behind [`SIGNING_KEY_ALIAS`], made (with the alias) if the emulator has none.
pub async fn ensure_signing_key(clients: &AwsClients) -> anyhow::Result<()> {
    let found = clients
        .kms
        .describe_key()
        .key_id(SIGNING_KEY_ALIAS)
        .send()
        .await;
    match found {
        Ok(_) => return Ok(()),
        Err(e) => {
            let e = aws_sdk_kms::Error::from(e);
            if !matches!(e, aws_sdk_kms::Error::NotFoundException(_)) {
                return Err(anyhow::anyhow!(e).context("DescribeKey"));
            }
        }
    }
    let key = clients
        .kms
        .create_key()
        .description("triggeriq local stack: webhook signing secrets")
        .send()
        .await
        .map_err(|e| anyhow::anyhow!(aws_sdk_kms::Error::from(e)))
        .context("CreateKey")?;
    let key_id = key
        .key_metadata()
        .map(|m| m.key_id().to_owned())
        .context("CreateKey answered without a key")?;
    clients
        .kms
        .create_alias()
        .alias_name(SIGNING_KEY_ALIAS)
        .target_key_id(key_id)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!(aws_sdk_kms::Error::from(e)))
        .context("CreateAlias")?;
    Ok(())
}

/// The local physical values of the template's resources.
#[derive(Debug, Clone, Default)]
pub struct Provisioned {
    /// Logical id → (`Ref` value, attributes for `GetAtt`).
    resources: BTreeMap<String, (String, BTreeMap<String, String>)>,
}

impl Provisioned {
    fn add(&mut self, id: &str, reference: String, attributes: &[(&str, String)]) {
        let attributes = attributes
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        self.resources
            .insert(id.to_owned(), (reference, attributes));
    }

    /// Records a resource by hand (tests of what resolves against it).
    #[cfg(test)]
    pub fn insert_for_test(&mut self, id: &str, reference: &str) {
        self.add(
            id,
            reference.to_owned(),
            &[("Arn", format!("arn:local:{id}"))],
        );
    }

    /// The local URL of the queue with logical id `id`.
    pub fn queue_url(&self, id: &str) -> Option<&str> {
        self.resources.get(id).map(|(r, _)| r.as_str())
    }

    /// The local ARN of a resource.
    pub fn arn(&self, id: &str) -> Option<&str> {
        self.resources
            .get(id)
            .and_then(|(_, a)| a.get("Arn"))
            .map(String::as_str)
    }
}

impl ResourceLookup for Provisioned {
    fn resource(&self, id: &str, attribute: Option<&str>) -> Option<String> {
        let (reference, attributes) = self.resources.get(id)?;
        match attribute {
            None => Some(reference.clone()),
            Some(a) => attributes.get(a).cloned(),
        }
    }
}

/// Creates (or updates) every queue, table and bucket of `template`; also records the
/// functions' names and ARNs.
pub async fn provision(template: &Template, clients: &AwsClients) -> anyhow::Result<Provisioned> {
    let mut out = Provisioned::default();
    for f in template.functions.values() {
        let arn = format!("arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{}", f.name);
        out.add(&f.logical_id, f.name.clone(), &[("Arn", arn)]);
    }
    provision_queues(template, clients, &mut out).await?;
    ensure_signing_key(clients)
        .await
        .context("the signing secrets' KMS key")?;
    for table in template.tables.values() {
        ensure_table(clients, table)
            .await
            .with_context(|| format!("table {}", table.name))?;
        let arn = format!(
            "arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{}",
            table.name
        );
        out.add(&table.logical_id, table.name.clone(), &[("Arn", arn)]);
    }
    for bucket in template.buckets.values() {
        ensure_bucket(clients, &bucket.name, bucket.versioning)
            .await
            .with_context(|| format!("bucket {}", bucket.name))?;
        let arn = format!("arn:aws:s3:::{}", bucket.name);
        out.add(
            &bucket.logical_id,
            bucket.name.clone(),
            &[
                ("Arn", arn),
                ("DomainName", format!("{}.s3.amazonaws.com", bucket.name)),
            ],
        );
    }
    Ok(out)
}

async fn provision_queues(
    template: &Template,
    clients: &AwsClients,
    out: &mut Provisioned,
) -> anyhow::Result<()> {
    // Dead-letter queues first: a redrive policy names its DLQ's ARN.
    let mut pending: Vec<_> = template.queues.values().collect();
    while !pending.is_empty() {
        let before = pending.len();
        let mut later = Vec::new();
        for queue in pending {
            let dlq_arn = match &queue.redrive {
                Some((dlq, _)) => match out.arn(dlq) {
                    Some(arn) => Some(arn.to_owned()),
                    None => {
                        later.push(queue);
                        continue;
                    }
                },
                None => None,
            };
            let mut attributes = queue.attributes.clone();
            if let (Some(arn), Some((_, max))) = (dlq_arn, &queue.redrive) {
                attributes.insert(
                    "RedrivePolicy".into(),
                    serde_json::json!({ "deadLetterTargetArn": arn, "maxReceiveCount": max })
                        .to_string(),
                );
            }
            let (url, arn) = ensure_queue(clients, &queue.name, &attributes)
                .await
                .with_context(|| format!("queue {}", queue.name))?;
            out.add(
                &queue.logical_id,
                url.clone(),
                &[
                    ("Arn", arn),
                    ("QueueName", queue.name.clone()),
                    ("QueueUrl", url),
                ],
            );
        }
        if later.len() == before {
            anyhow::bail!(
                "queues whose dead-letter queues form a cycle: {:?}",
                later.iter().map(|q| &q.logical_id).collect::<Vec<_>>()
            );
        }
        pending = later;
    }
    Ok(())
}

/// Creates the queue if needed and sets its attributes; returns its URL and ARN.
pub async fn ensure_queue(
    clients: &AwsClients,
    name: &str,
    attributes: &BTreeMap<String, String>,
) -> anyhow::Result<(String, String)> {
    let mut create = clients.sqs.create_queue().queue_name(name);
    // Only a queue's FIFO-ness is fixed at creation; everything else is set below, which also
    // brings an existing queue in line with the template.
    for fixed in ["FifoQueue"] {
        if let Some(v) = attributes.get(fixed) {
            create = create.attributes(QueueAttributeName::from(fixed), v);
        }
    }
    let url = create
        .send()
        .await
        .map_err(|e| anyhow::anyhow!(aws_sdk_sqs::Error::from(e)))
        .context("CreateQueue")?
        .queue_url()
        .context("CreateQueue returned no URL")?
        .to_owned();
    let settable: BTreeMap<_, _> = attributes
        .iter()
        .filter(|(k, _)| k.as_str() != "FifoQueue")
        .collect();
    if !settable.is_empty() {
        let mut set = clients.sqs.set_queue_attributes().queue_url(&url);
        for (k, v) in settable {
            set = set.attributes(QueueAttributeName::from(k.as_str()), v);
        }
        set.send()
            .await
            .map_err(|e| anyhow::anyhow!(aws_sdk_sqs::Error::from(e)))
            .context("SetQueueAttributes")?;
    }
    let arn = clients
        .sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!(aws_sdk_sqs::Error::from(e)))
        .context("GetQueueAttributes")?
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .context("the queue has no ARN")?;
    Ok((url, arn))
}

async fn ensure_table(
    clients: &AwsClients,
    table: &crate::template::TableDef,
) -> anyhow::Result<()> {
    let exists = match clients
        .dynamodb
        .describe_table()
        .table_name(&table.name)
        .send()
        .await
    {
        Ok(_) => true,
        Err(e) => {
            let e = aws_sdk_dynamodb::Error::from(e);
            if matches!(e, aws_sdk_dynamodb::Error::ResourceNotFoundException(_)) {
                false
            } else {
                return Err(anyhow::anyhow!(e).context("DescribeTable"));
            }
        }
    };
    if !exists {
        let mut create = clients
            .dynamodb
            .create_table()
            .table_name(&table.name)
            .billing_mode(BillingMode::PayPerRequest);
        for (name, kind) in &table.attributes {
            create = create.attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(name)
                    .attribute_type(ScalarAttributeType::from(kind.as_str()))
                    .build()?,
            );
        }
        for (name, kind) in &table.key_schema {
            create = create.key_schema(
                KeySchemaElement::builder()
                    .attribute_name(name)
                    .key_type(KeyType::from(kind.as_str()))
                    .build()?,
            );
        }
        create
            .send()
            .await
            .map_err(|e| anyhow::anyhow!(aws_sdk_dynamodb::Error::from(e)))
            .context("CreateTable")?;
    }
    if let Some(attribute) = &table.ttl_attribute {
        let current = clients
            .dynamodb
            .describe_time_to_live()
            .table_name(&table.name)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!(aws_sdk_dynamodb::Error::from(e)))
            .context("DescribeTimeToLive")?;
        let on = current
            .time_to_live_description()
            .and_then(|d| d.attribute_name())
            .is_some_and(|a| a == attribute);
        if !on {
            clients
                .dynamodb
                .update_time_to_live()
                .table_name(&table.name)
                .time_to_live_specification(
                    TimeToLiveSpecification::builder()
                        .attribute_name(attribute)
                        .enabled(true)
                        .build()?,
                )
                .send()
                .await
                .map_err(|e| anyhow::anyhow!(aws_sdk_dynamodb::Error::from(e)))
                .context("UpdateTimeToLive")?;
        }
    }
    Ok(())
}

async fn ensure_bucket(clients: &AwsClients, name: &str, versioning: bool) -> anyhow::Result<()> {
    if clients.s3.head_bucket().bucket(name).send().await.is_err() {
        clients
            .s3
            .create_bucket()
            .bucket(name)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!(aws_sdk_s3::Error::from(e)))
            .context("CreateBucket")?;
    }
    if versioning {
        clients
            .s3
            .put_bucket_versioning()
            .bucket(name)
            .versioning_configuration(
                VersioningConfiguration::builder()
                    .status(BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| anyhow::anyhow!(aws_sdk_s3::Error::from(e)))
            .context("PutBucketVersioning")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::testing;

    #[tokio::test]
    async fn the_templates_resources_exist_as_declared_and_a_second_run_changes_nothing() {
        let clients = testing::clients().await;
        let stack = testing::unique("tiq");
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
        let template = Template::load(Path::new(path), &stack, &BTreeMap::new()).expect("template");
        let first = provision(&template, &clients).await.expect("provisioned");

        let events_url = first
            .queue_url("EventsQueue")
            .expect("events queue")
            .to_owned();
        clients
            .sqs
            .send_message()
            .queue_url(&events_url)
            .message_body("kept")
            .send()
            .await
            .expect("send");
        let second = provision(&template, &clients)
            .await
            .expect("provisioned again");
        assert_eq!(second.queue_url("EventsQueue"), Some(events_url.as_str()));

        let attributes = clients
            .sqs
            .get_queue_attributes()
            .queue_url(&events_url)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .expect("attributes");
        let attributes = attributes.attributes().expect("attributes");
        assert_eq!(attributes[&QueueAttributeName::VisibilityTimeout], "360");
        assert_eq!(
            attributes[&QueueAttributeName::MessageRetentionPeriod],
            "604800"
        );
        assert_eq!(
            attributes[&QueueAttributeName::ApproximateNumberOfMessages],
            "1",
            "messages survive a re-run"
        );
        let redrive: serde_json::Value =
            serde_json::from_str(&attributes[&QueueAttributeName::RedrivePolicy]).expect("JSON");
        assert_eq!(redrive["maxReceiveCount"], 5);
        assert_eq!(
            redrive["deadLetterTargetArn"],
            first.arn("EventsDeadLetterQueue").expect("dlq arn")
        );

        let table = template.tables.values().next().expect("table");
        let described = clients
            .dynamodb
            .describe_table()
            .table_name(&table.name)
            .send()
            .await
            .expect("table");
        let keys: Vec<_> = described
            .table()
            .and_then(|t| t.key_schema.clone())
            .unwrap_or_default()
            .iter()
            .map(|k| {
                (
                    k.attribute_name().to_owned(),
                    k.key_type().as_str().to_owned(),
                )
            })
            .collect();
        assert_eq!(
            keys,
            vec![("pk".into(), "HASH".into()), ("sk".into(), "RANGE".into())]
        );
        let ttl = clients
            .dynamodb
            .describe_time_to_live()
            .table_name(&table.name)
            .send()
            .await
            .expect("ttl");
        assert_eq!(
            ttl.time_to_live_description()
                .and_then(|d| d.attribute_name()),
            Some("expires_at")
        );

        let bucket = template.buckets.values().next().expect("bucket");
        // moto's GetBucketVersioning answer has a root element the SDK rejects; read it raw.
        let versioning = reqwest::get(format!(
            "{}/{}?versioning",
            testing::endpoint(),
            bucket.name
        ))
        .await
        .expect("GetBucketVersioning")
        .text()
        .await
        .expect("body");
        assert!(
            versioning.contains("<Status>Enabled</Status>"),
            "{versioning}"
        );

        // What functions see: their environment resolves to these local values.
        let ingest_like = template
            .function_running("create-trigger")
            .expect("a function");
        assert!(template.environment(ingest_like, &second).is_ok());
        assert_eq!(
            second.resource("Table", None).as_deref(),
            Some(table.name.as_str())
        );
    }
}
