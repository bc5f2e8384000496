//! Storage: DynamoDB tables (keys, TTL) and S3 buckets (versioning).

use std::collections::BTreeMap;

use serde_json::Value as Json;

use super::{Resource, Template};

/// A DynamoDB table.
#[derive(Debug, Clone)]
pub struct TableDef {
    pub logical_id: String,
    pub name: String,
    /// `(name, type)` pairs.
    pub attributes: Vec<(String, String)>,
    /// `(name, HASH|RANGE)` pairs.
    pub key_schema: Vec<(String, String)>,
    pub ttl_attribute: Option<String>,
}

/// An S3 bucket.
#[derive(Debug, Clone)]
pub struct BucketDef {
    pub logical_id: String,
    pub name: String,
    pub versioning: bool,
}

impl Template {
    pub(super) fn add_table(
        &mut self,
        r: &Resource<'_>,
        ids: &BTreeMap<String, String>,
    ) -> anyhow::Result<()> {
        let name = self.string(ids, r.get("TableName"), &r.path("TableName"))?;
        let pairs = |property: &str, a: &str, b: &str| -> anyhow::Result<Vec<(String, String)>> {
            let value = self
                .json(ids, r.get(property), &r.path(property))?
                .ok_or_else(|| anyhow::anyhow!("{}: missing", r.path(property)))?;
            value
                .as_array()
                .ok_or_else(|| anyhow::anyhow!("{}: must be a list", r.path(property)))?
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let x = item.get(a).and_then(Json::as_str);
                    let y = item.get(b).and_then(Json::as_str);
                    x.zip(y)
                        .map(|(x, y)| (x.to_owned(), y.to_owned()))
                        .ok_or_else(|| {
                            anyhow::anyhow!("{}[{i}]: needs {a} and {b}", r.path(property))
                        })
                })
                .collect()
        };
        let attributes = pairs("AttributeDefinitions", "AttributeName", "AttributeType")?;
        let key_schema = pairs("KeySchema", "AttributeName", "KeyType")?;
        let ttl = self.json(
            ids,
            r.get("TimeToLiveSpecification"),
            &r.path("TimeToLiveSpecification"),
        )?;
        let ttl_attribute = ttl.as_ref().and_then(|t| {
            let on = t.get("Enabled").is_none_or(|e| e == true || e == "true");
            on.then(|| {
                t.get("AttributeName")
                    .and_then(Json::as_str)
                    .map(str::to_owned)
            })
            .flatten()
        });
        for unsupported in [
            "GlobalSecondaryIndexes",
            "LocalSecondaryIndexes",
            "StreamSpecification",
        ] {
            if r.get(unsupported).is_some() {
                self.warnings.push(format!(
                    "{}: {unsupported} is not created locally",
                    r.path(unsupported)
                ));
            }
        }
        self.tables.insert(
            r.id.to_owned(),
            TableDef {
                logical_id: r.id.to_owned(),
                name: self.physical_name(name, r.id),
                attributes,
                key_schema,
                ttl_attribute,
            },
        );
        Ok(())
    }

    pub(super) fn add_bucket(
        &mut self,
        r: &Resource<'_>,
        ids: &BTreeMap<String, String>,
    ) -> anyhow::Result<()> {
        let name = self.string(ids, r.get("BucketName"), &r.path("BucketName"))?;
        let versioning = self
            .json(
                ids,
                r.get("VersioningConfiguration"),
                &r.path("VersioningConfiguration"),
            )?
            .and_then(|v| {
                v.get("Status")
                    .and_then(Json::as_str)
                    .map(|s| s == "Enabled")
            })
            .unwrap_or(false);
        // Bucket names are lower case; CloudFormation's generated names are too.
        let name = self.physical_name(name, r.id).to_ascii_lowercase();
        self.buckets.insert(
            r.id.to_owned(),
            BucketDef {
                logical_id: r.id.to_owned(),
                name,
                versioning,
            },
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::template::tests::repo_template;

    #[test]
    fn the_table_and_bucket_are_read_as_declared() {
        let t = repo_template();
        let table = t.tables.values().next().expect("a table");
        assert_eq!(
            table.key_schema,
            vec![("pk".into(), "HASH".into()), ("sk".into(), "RANGE".into())]
        );
        assert_eq!(table.ttl_attribute.as_deref(), Some("expires_at"));
        let bucket = t.buckets.values().next().expect("a bucket");
        assert_eq!(bucket.name, "triggeriq-local-bucket");
        assert!(bucket.versioning);
    }
}
