//! The read and operate routes: list-firings filters and pages, every route is scoped by
//! tenant, and the signing secret rotates.

use chrono::Utc;
use serde_json::json;
use sqlx::PgPool;
use triggeriq::api::{
    deliveries as delivery_routes, events as event_routes, firings, ingest, signing,
};
use triggeriq::tenant::TenantId;

use super::harness::{Req, Stack, call};

/// A tenant with two triggers and four firings: three of `a`, one of `b`.
async fn four_firings(stack: &Stack) -> (TenantId, String, String) {
    let t = stack.tenant().await;
    let a = stack
        .trigger(
            t,
            json!({"name": "A", "pattern": {"type": ["a"]}, "actions": [{"url": "https://hooks.example.com/a"}]}),
        )
        .await;
    let b = stack
        .trigger(
            t,
            json!({"name": "B", "pattern": {"type": ["b"]}, "actions": [{"url": "https://hooks.example.com/b"}]}),
        )
        .await;
    let body = json!({"events": [
        {"id": "1", "type": "a"}, {"id": "2", "type": "a"}, {"id": "3", "type": "b"}, {"id": "4", "type": "a"}
    ]});
    let answer = call(
        &stack.ingest(),
        ingest::ingest,
        Req::new("ingest-events", t).body(&body),
    )
    .await;
    assert_eq!(answer.body["accepted"], 4);
    assert!(stack.evaluate_all(&stack.evaluator(), 4).await.is_empty());
    (t, a.id.to_string(), b.id.to_string())
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn firings_are_listed_newest_first_by_trigger_and_time_a_page_at_a_time(pool: PgPool) {
    let stack = Stack::new(pool).await;
    let (t, a, b) = four_firings(&stack).await;
    let api = stack.reads();

    let first = call(
        &api,
        firings::list,
        Req::new("list-firings", t).query(&[("limit", "3")]),
    )
    .await;
    assert_eq!(first.status, 200, "{}", first.body);
    let items = first.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    let times: Vec<&str> = items
        .iter()
        .map(|f| f["matched_at"].as_str().unwrap())
        .collect();
    let mut sorted = times.clone();
    sorted.sort_by(|x, y| y.cmp(x));
    assert_eq!(times, sorted, "newest first");
    let cursor = first.body["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let second = call(
        &api,
        firings::list,
        Req::new("list-firings", t).query(&[("limit", "3"), ("cursor", &cursor)]),
    )
    .await;
    assert_eq!(second.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(second.body["next_cursor"], json!(null));
    let mut seen: Vec<String> = items
        .iter()
        .chain(second.body["items"].as_array().unwrap())
        .map(|f| f["event_id"].as_str().unwrap().to_owned())
        .collect();
    seen.sort();
    assert_eq!(seen, ["1", "2", "3", "4"]);

    // The sample asks for one trigger's firings.
    let of_b = call(
        &api,
        firings::list,
        Req::new("list-firings", t).query(&[("trigger_id", &b)]),
    )
    .await;
    let of_b: Vec<&str> = of_b.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(of_b, ["3"]);
    let of_a = call(
        &api,
        firings::list,
        Req::new("list-firings", t).query(&[("trigger_id", &a)]),
    )
    .await;
    assert_eq!(of_a.body["items"].as_array().unwrap().len(), 3);

    let later = (Utc::now() + chrono::Duration::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let earlier = (Utc::now() - chrono::Duration::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let none = call(
        &api,
        firings::list,
        Req::new("list-firings", t).query(&[("since", &later)]),
    )
    .await;
    assert_eq!(none.body["items"], json!([]));
    let all = call(
        &api,
        firings::list,
        Req::new("list-firings", t).query(&[("since", &earlier), ("until", &later)]),
    )
    .await;
    assert_eq!(all.body["items"].as_array().unwrap().len(), 4);

    let bad = call(
        &api,
        firings::list,
        Req::new("list-firings", t).query(&[
            ("trigger_id", "nope"),
            ("since", "yesterday"),
            ("limit", "0"),
            ("cursor", "junk"),
        ]),
    )
    .await;
    assert_eq!(bad.status, 400);
    assert_eq!(
        bad.error_paths(),
        ["?cursor", "?limit", "?since", "?trigger_id"]
    );
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn another_tenants_events_firings_and_deliveries_answer_404(pool: PgPool) {
    let stack = Stack::new(pool).await;
    let (t, _, _) = four_firings(&stack).await;
    let reads = stack.reads();
    let mine = call(&reads, event_routes::get, Req::new("get-event", t).id("1")).await;
    assert_eq!(mine.status, 200);
    let firing_id = mine.body["firings"][0]["id"].as_str().unwrap().to_owned();
    let firing = call(
        &reads,
        firings::get,
        Req::new("get-firing", t).id(&firing_id),
    )
    .await;
    let delivery_id = firing.body["deliveries"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(firing.body["deliveries"][0]["status"], "pending");

    let other = stack.tenant().await;
    let event = call(
        &reads,
        event_routes::get,
        Req::new("get-event", other).id("1"),
    )
    .await;
    assert_eq!(event.status, 404);
    let firing = call(
        &reads,
        firings::get,
        Req::new("get-firing", other).id(&firing_id),
    )
    .await;
    assert_eq!(firing.status, 404);
    let retry = call(
        &stack.retry_api(),
        delivery_routes::retry,
        Req::new("retry-delivery", other).id(&delivery_id),
    )
    .await;
    assert_eq!(retry.status, 404);
    let list = call(
        &reads,
        firings::list,
        Req::new("list-firings", other).query(&[]),
    )
    .await;
    assert_eq!(list.body["items"], json!([]));

    // The samples name ids nobody has: not found, never a 500.
    for (name, answer) in [
        (
            "get-firing",
            call(&reads, firings::get, Req::new("get-firing", t)).await,
        ),
        (
            "get-event",
            call(&reads, event_routes::get, Req::new("get-event", t)).await,
        ),
        (
            "retry-delivery",
            call(
                &stack.retry_api(),
                delivery_routes::retry,
                Req::new("retry-delivery", t),
            )
            .await,
        ),
    ] {
        assert_eq!(answer.status, 404, "{name}: {}", answer.body);
    }
    // A pending delivery is not retried.
    let pending = call(
        &stack.retry_api(),
        delivery_routes::retry,
        Req::new("retry-delivery", t).id(&delivery_id),
    )
    .await;
    assert_eq!(pending.status, 409);
}

/// The secrets that sign the tenant's webhooks now, current first.
async fn active_secrets(stack: &Stack, t: TenantId) -> Vec<String> {
    stack
        .secrets()
        .get(t)
        .await
        .unwrap()
        .expect("the tenant's secrets")
        .active(Utc::now())
        .iter()
        .map(|s| s.expose().to_owned())
        .collect()
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn rotating_the_signing_secret_returns_a_new_one_and_keeps_the_old_for_a_day(pool: PgPool) {
    let stack = Stack::new(pool).await;
    let t = stack.tenant_without_secret().await;
    let api = stack.signing();
    let first = call(&api, signing::rotate, Req::new("rotate-signing-secret", t)).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let second = call(&api, signing::rotate, Req::new("rotate-signing-secret", t)).await;
    let (s1, s2) = (
        first.body["secret"].as_str().unwrap(),
        second.body["secret"].as_str().unwrap(),
    );
    assert!(s1.starts_with("whsec_") && s2.starts_with("whsec_"));
    assert_ne!(s1, s2);
    let until = chrono::DateTime::parse_from_rfc3339(
        second.body["previous_secrets_valid_until"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let hours = (until.with_timezone(&Utc) - Utc::now()).num_minutes() as f64 / 60.0;
    assert!((23.9..=24.0).contains(&hours), "{hours}");
    let active = active_secrets(&stack, t).await;
    assert_eq!(active, [s2, s1]);
    let unauthenticated = {
        let mut req = Req::new("rotate-signing-secret", t);
        if let Some(ctx) = req.0["requestContext"].as_object_mut() {
            ctx.remove("authorizer");
        }
        call(&api, signing::rotate, req).await
    };
    assert_eq!(unauthenticated.status, 401);
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn a_rotation_that_would_end_a_replaced_secret_early_answers_409_with_when_to_retry(
    pool: PgPool,
) {
    let stack = Stack::new(pool).await;
    let t = stack.tenant_without_secret().await;
    let api = stack.signing();
    let mut shown = Vec::new();
    // The first rotation makes the first secret; the next four each replace one, which keeps
    // signing for its 24 hours: four replaced secrets, the most that sign at once.
    for _ in 0..5 {
        let rotated = call(&api, signing::rotate, Req::new("rotate-signing-secret", t)).await;
        assert_eq!(rotated.status, 200, "{}", rotated.body);
        shown.push(rotated.body["secret"].as_str().unwrap().to_owned());
    }
    let refused = call(&api, signing::rotate, Req::new("rotate-signing-secret", t)).await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    let wait: i64 = refused
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((23 * 3600..=24 * 3600).contains(&wait), "{wait}");
    let detail = refused.body["detail"].as_str().unwrap();
    assert!(detail.contains("next rotation is possible at"), "{detail}");
    // Every secret a rotation showed still signs: none was cut short.
    let active = active_secrets(&stack, t).await;
    assert_eq!(active.len(), 5);
    for secret in &shown {
        assert!(active.contains(secret), "{secret} stopped early");
    }
}
