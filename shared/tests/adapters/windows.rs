//! Threshold windows against moto: an event counts once however often it is observed, a
//! firing is written once however many evaluations race for it, and concurrent evaluations
//! of one group produce exactly one firing per crossing.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};
use triggeriq::condition::threshold::{Entry, Sample};
use triggeriq::condition::{Condition, GroupKey, Threshold, Windowed};
use triggeriq::dynamodb::{CooldownLock, DynamoError, WindowKey, WindowStore};
use triggeriq::event::{Event, EventId};
use triggeriq::ids::{TenantId, TriggerId};
use triggeriq::pipeline::conditions::{Conditions, Outcome};
use triggeriq::pipeline::trigger_cache::CompiledTrigger;

use triggeriq::testing::moto as support;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 4, 1, 9, 0, 0).unwrap()
}

fn threshold(condition: Value) -> Threshold {
    match serde_json::from_value(condition).expect("valid") {
        Condition::Threshold(t) => t,
        other => panic!("{other:?}"),
    }
}

fn group(t: &Threshold, customer: &str) -> GroupKey {
    t.group_by
        .key_of(&json!({"data": {"customer": customer}}))
        .expect("grouped")
}

fn one(at: DateTime<Utc>) -> Entry {
    Entry {
        at_ms: at.timestamp_millis(),
        sample: Sample::One,
        reason: None,
        consumed: false,
    }
}

fn compiled(condition: Value, cooldown: Option<Duration>) -> CompiledTrigger {
    CompiledTrigger {
        id: TriggerId::new(),
        name: "Payments failing".into(),
        version: 1,
        condition_version: 1,
        condition: serde_json::from_value(condition).expect("valid"),
        cooldown,
        actions: Vec::new(),
    }
}

fn event(id: &str, customer: &str, at: DateTime<Utc>) -> (Event, Value) {
    let event: Event = serde_json::from_value(json!({
        "id": id, "type": "payment.failed", "time": at.to_rfc3339(),
        "data": {"customer": customer}
    }))
    .expect("event");
    let document = serde_json::to_value(&event).expect("json");
    (event, document)
}

#[tokio::test]
async fn an_event_observed_twice_counts_once_and_the_window_comes_back_either_way() {
    let clients = support::clients().await;
    let store = WindowStore::new(support::table(&clients).await);
    let t = threshold(json!({"kind": "threshold", "count": 3, "within": "1h",
                             "group_by": ["$.data.customer"]}));
    let g = group(&t, "c-1");
    let key = WindowKey {
        tenant: TenantId::new(),
        trigger: TriggerId::new(),
        version: 1,
        group: &g,
    };
    let keep = t0() + chrono::Duration::days(2);
    let first = store
        .observe(key, &EventId::new("a"), &one(t0()), keep)
        .await
        .unwrap();
    assert!(first.new);
    assert_eq!(first.window.entries.len(), 1);
    let again = store
        .observe(key, &EventId::new("a"), &one(t0()), keep)
        .await
        .unwrap();
    assert!(!again.new, "a redelivery is refused");
    assert_eq!(again.window, first.window, "and sees the window as it is");
    let b = store
        .observe(key, &EventId::new("b#with%odd/chars"), &one(t0()), keep)
        .await
        .unwrap();
    assert_eq!(b.window.entries.len(), 2);
    assert!(
        b.window
            .entries
            .contains_key(&EventId::new("b#with%odd/chars"))
    );
    assert_eq!(store.read(key).await.unwrap(), b.window);
}

#[tokio::test]
async fn of_two_writers_that_saw_the_same_crossing_one_fires() {
    let clients = support::clients().await;
    let store = WindowStore::new(support::table(&clients).await);
    let t = threshold(json!({"kind": "threshold", "count": 2, "within": "1h"}));
    let g = t.group_by.key_of(&json!({})).expect("one group");
    let key = WindowKey {
        tenant: TenantId::new(),
        trigger: TriggerId::new(),
        version: 1,
        group: &g,
    };
    let keep = t0() + chrono::Duration::days(2);
    let (a, b) = (EventId::new("a"), EventId::new("b"));
    store.observe(key, &a, &one(t0()), keep).await.unwrap();
    let seen = store
        .observe(key, &b, &one(t0()), keep)
        .await
        .unwrap()
        .window;
    let crossing = t.crossing(&seen, &b).expect("two within the hour");
    let reason = t.reason(&g, &crossing);
    let (first, second) = tokio::join!(
        store.fire(key, seen.epoch, &crossing, &b, &reason, &[]),
        store.fire(key, seen.epoch, &crossing, &b, &reason, &[]),
    );
    let wins = [first.unwrap(), second.unwrap()];
    assert_eq!(wins.iter().filter(|w| **w).count(), 1, "{wins:?}");
    let after = store.read(key).await.unwrap();
    assert_eq!(after.epoch, seen.epoch + 1);
    assert_eq!(after.fired_reason(&b), Some(&reason));
    assert!(t.crossing(&after, &a).is_none(), "both consumed");
    assert!(
        !store
            .fire(key, seen.epoch, &crossing, &b, &reason, &[])
            .await
            .unwrap(),
        "a stale epoch never writes"
    );
}

#[tokio::test]
async fn pruning_removes_entries_and_never_creates_a_window() {
    let clients = support::clients().await;
    let store = WindowStore::new(support::table(&clients).await);
    let t = threshold(json!({"kind": "threshold", "count": 500, "within": "1m"}));
    let g = t.group_by.key_of(&json!({})).expect("one group");
    let key = WindowKey {
        tenant: TenantId::new(),
        trigger: TriggerId::new(),
        version: 1,
        group: &g,
    };
    store.prune(key, &[EventId::new("x")]).await.unwrap();
    assert_eq!(
        store.read(key).await.unwrap(),
        Default::default(),
        "no item made"
    );
    let keep = t0() + chrono::Duration::days(2);
    let mut window = Default::default();
    for i in 0..40 {
        // Two hours of one event every three minutes: most are long out of the window.
        let at = t0() + chrono::Duration::minutes(3 * i);
        window = store
            .observe(key, &EventId::new(format!("e{i}")), &one(at), keep)
            .await
            .unwrap()
            .window;
    }
    let stale = window.prunable(t.within);
    assert!(stale.len() >= 15, "{}", stale.len());
    store.prune(key, &stale).await.unwrap();
    let after = store.read(key).await.unwrap();
    assert_eq!(after.entries.len(), 40 - stale.len());
    assert!(stale.iter().all(|id| !after.entries.contains_key(id)));
}

#[tokio::test]
async fn concurrent_evaluations_of_one_group_fire_once_per_crossing() {
    let clients = support::clients().await;
    let table = support::table(&clients).await;
    let conditions = Arc::new(Conditions::new(
        WindowStore::new(table.clone()),
        CooldownLock::new(table),
    ));
    let trigger = Arc::new(compiled(
        json!({"kind": "threshold", "count": 3, "within": "1h", "group_by": ["$.data.customer"]}),
        None,
    ));
    let tenant = TenantId::new();
    // 30 events of one customer in the same minute, each evaluated twice (an SQS
    // redelivery), by 60 tasks at once; and 2 of another customer.
    let mut tasks = tokio::task::JoinSet::new();
    let mut ids = Vec::new();
    for i in 0..32 {
        let customer = if i < 30 { "c-1" } else { "c-2" };
        let (ev, doc) = event(
            &format!("evt-{i}"),
            customer,
            t0() + chrono::Duration::seconds(i),
        );
        ids.push((ev.id.clone(), customer));
        for _ in 0..2 {
            let (conditions, trigger, ev, doc) =
                (conditions.clone(), trigger.clone(), ev.clone(), doc.clone());
            tasks.spawn(async move {
                let Condition::Threshold(t) = &trigger.condition else {
                    unreachable!()
                };
                // Contention fails the message, and SQS delivers it again.
                for _ in 0..10 {
                    match conditions
                        .windowed(tenant, &trigger, Windowed::Threshold(t), &ev, &doc, t0())
                        .await
                    {
                        Ok(outcome) => return (ev.id.clone(), outcome),
                        Err(DynamoError::Contention { .. }) => continue,
                        Err(e) => panic!("store failure: {e}"),
                    }
                }
                panic!("still contended after 10 deliveries")
            });
        }
    }
    let mut reasons: Vec<(EventId, Value)> = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let (id, outcome) = done.expect("task");
        if let Outcome::Fire(reason) = outcome {
            reasons.push((id, reason));
        }
    }
    // A firer may be told twice (its redelivery gets the same reason): one firing per firer.
    let mut firers: Vec<&EventId> = reasons.iter().map(|(id, _)| id).collect();
    firers.sort();
    firers.dedup();
    let distinct: Vec<&Value> = firers
        .iter()
        .map(|f| &reasons.iter().find(|(id, _)| id == *f).expect("fired").1)
        .collect();
    let mut counted = HashSet::new();
    for reason in &distinct {
        assert_eq!(reason["group"], json!(["c-1"]));
        let events = reason["event_ids"].as_array().expect("ids");
        assert_eq!(events.len(), 3, "a firing consumes what it needs: {reason}");
        for e in events {
            assert!(
                counted.insert(e.as_str().expect("text").to_owned()),
                "{e} counted in two firings"
            );
        }
    }
    assert!(
        30 - counted.len() < 3,
        "at most two events of c-1 left waiting: {} counted in {} firings",
        counted.len(),
        distinct.len()
    );
    for (id, customer) in &ids {
        if *customer == "c-2" {
            assert!(!counted.contains(id.as_str()));
        }
    }
}

#[tokio::test]
async fn a_cooldown_holds_a_met_threshold_until_it_ends() {
    let clients = support::clients().await;
    let table = support::table(&clients).await;
    let conditions = Conditions::new(WindowStore::new(table.clone()), CooldownLock::new(table));
    let trigger = compiled(
        json!({"kind": "threshold", "count": 2, "within": "1d", "group_by": ["$.data.customer"]}),
        Some(Duration::from_secs(3600)),
    );
    let Condition::Threshold(t) = &trigger.condition else {
        unreachable!()
    };
    let tenant = TenantId::new();
    let mut outcomes = Vec::new();
    // Events a minute apart, received when they happen; then one two hours later.
    for (i, minutes) in [0i64, 1, 2, 3, 120].into_iter().enumerate() {
        let at = t0() + chrono::Duration::minutes(minutes);
        let (ev, doc) = event(&format!("e{i}"), "c-1", at);
        let outcome = conditions
            .windowed(tenant, &trigger, Windowed::Threshold(t), &ev, &doc, at)
            .await
            .unwrap();
        outcomes.push(match outcome {
            Outcome::Fire(_) => "fire",
            Outcome::CoolingDown(_) => "cooling",
            Outcome::InProgress(_) => "counting",
            Outcome::NotCounted(_) => "ignored",
        });
    }
    assert_eq!(
        outcomes,
        ["counting", "fire", "counting", "cooling", "fire"]
    );
    // An event without the group field takes no part.
    let (ev, doc) = event("no-group", "x", t0());
    let mut doc = doc;
    doc["data"] = json!({});
    let outcome = conditions
        .windowed(tenant, &trigger, Windowed::Threshold(t), &ev, &doc, t0())
        .await
        .unwrap();
    let Outcome::NotCounted(why) = outcome else {
        panic!("{outcome:?}");
    };
    assert!(why.starts_with("no group"), "{why}");
}
