//! Schedules: EventBridge rules with a schedule expression and EventBridge Scheduler
//! schedules whose target is a function of the template (SAM `Schedule`/`ScheduleV2` events are
//! read with the function, in [`super::functions`]).

use std::collections::BTreeMap;

use serde_json::Value as Json;
use serde_yaml_ng::Value as Yaml;

use super::{Resource, Template};

/// What starts a scheduled function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduleKind {
    /// An EventBridge rule (`AWS::Events::Rule`, SAM `Schedule`).
    Rule,
    /// EventBridge Scheduler (`AWS::Scheduler::Schedule`, SAM `ScheduleV2`).
    Scheduler,
}

/// A schedule that invokes a function.
#[derive(Debug, Clone)]
pub struct ScheduleDef {
    /// The resource's logical id, or `Function.EventName` for SAM events.
    pub id: String,
    pub name: String,
    pub function: String,
    /// `rate(...)`, `cron(...)` or `at(...)`.
    pub expression: String,
    /// The target's `Input` (JSON); `None` sends the service's default event.
    pub input: Option<Json>,
    pub kind: ScheduleKind,
}

impl Template {
    pub(super) fn add_rule(
        &mut self,
        r: &Resource<'_>,
        ids: &BTreeMap<String, String>,
    ) -> anyhow::Result<()> {
        let Some(expression) = self.string(
            ids,
            r.get("ScheduleExpression"),
            &r.path("ScheduleExpression"),
        )?
        else {
            return Ok(()); // an event-pattern rule: nothing to run on a clock
        };
        if !self.enabled(
            ids,
            None,
            r.get("State"),
            &format!("Resources.{}.Properties", r.id),
        )? {
            return Ok(());
        }
        let name = self
            .string(ids, r.get("Name"), &r.path("Name"))?
            .unwrap_or_else(|| format!("{}-{}", self.stack_name, r.id));
        let targets = r
            .get("Targets")
            .and_then(Yaml::as_sequence)
            .cloned()
            .unwrap_or_default();
        for (i, target) in targets.iter().enumerate() {
            let path = format!("{}[{i}]", r.path("Targets"));
            let Ok(function) = self.function_of_uri(ids, target.get("Arn"), &format!("{path}.Arn"))
            else {
                self.warnings.push(format!(
                    "{path}: target is not a function of this template; not emulated"
                ));
                continue;
            };
            if target.get("InputPath").is_some() || target.get("InputTransformer").is_some() {
                self.warnings.push(format!(
                    "{path}: InputPath/InputTransformer are not emulated; the default event is sent"
                ));
            }
            let input = self.input(ids, target.get("Input"), &format!("{path}.Input"))?;
            self.schedules.push(ScheduleDef {
                id: format!("{}[{i}]", r.id),
                name: name.clone(),
                function,
                expression: expression.clone(),
                input,
                kind: ScheduleKind::Rule,
            });
        }
        Ok(())
    }

    pub(super) fn add_scheduler_schedule(
        &mut self,
        r: &Resource<'_>,
        ids: &BTreeMap<String, String>,
    ) -> anyhow::Result<()> {
        let expression = self
            .string(
                ids,
                r.get("ScheduleExpression"),
                &r.path("ScheduleExpression"),
            )?
            .ok_or_else(|| anyhow::anyhow!("{}: missing", r.path("ScheduleExpression")))?;
        if !self.enabled(
            ids,
            None,
            r.get("State"),
            &format!("Resources.{}.Properties", r.id),
        )? {
            return Ok(());
        }
        let target = r.get("Target");
        let path = r.path("Target");
        let Ok(function) = self.function_of_uri(
            ids,
            target.and_then(|t| t.get("Arn")),
            &format!("{path}.Arn"),
        ) else {
            self.warnings.push(format!(
                "{path}: target is not a function of this template; not emulated"
            ));
            return Ok(());
        };
        if r.get("ScheduleExpressionTimezone").is_some() {
            self.warnings.push(format!(
                "{}: ScheduleExpressionTimezone is ignored locally; the schedule runs in UTC",
                r.id
            ));
        }
        let input = self.input(
            ids,
            target.and_then(|t| t.get("Input")),
            &format!("{path}.Input"),
        )?;
        let name = self
            .string(ids, r.get("Name"), &r.path("Name"))?
            .unwrap_or_else(|| format!("{}-{}", self.stack_name, r.id));
        self.schedules.push(ScheduleDef {
            id: r.id.to_owned(),
            name,
            function,
            expression,
            input,
            kind: ScheduleKind::Scheduler,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::template::tests::SMALL;

    #[test]
    fn schedules_come_from_sam_events_rules_and_scheduler_resources() {
        let t = Template::parse(SMALL, "s", &BTreeMap::new()).expect("parses");
        let mut got: Vec<(String, String, Option<Json>)> = t
            .schedules
            .iter()
            .map(|s| (s.id.clone(), s.expression.clone(), s.input.clone()))
            .collect();
        got.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            got,
            vec![
                (
                    "Fn.Every".into(),
                    "rate(5 minutes)".into(),
                    Some(serde_json::json!({"a": 1}))
                ),
                ("Rule[0]".into(), "cron(0/15 * * * ? *)".into(), None),
            ]
        );
        let on = BTreeMap::from([("Flag".to_owned(), "yes".to_owned())]);
        let t = Template::parse(SMALL, "s", &on).expect("parses");
        let ids: BTreeSet<&str> = t.schedules.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, BTreeSet::from(["Fn.Every", "Skipped"]));
    }
}
