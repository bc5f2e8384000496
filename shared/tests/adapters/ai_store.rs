//! The AI judgement stores against moto: the verdict cache, judging claims and the token
//! budget; and one throttled charge through aws-smithy-mocks.

use std::time::Duration;

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::error::ProvisionedThroughputExceededException;
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use aws_smithy_types::error::ErrorMetadata;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use serde_json::json;
use triggeriq::dynamodb::{
    CachedVerdict, DayUsage, DynamoError, Finished, Judging, JudgingClaim, Table, TokenBudget,
    VerdictCache,
};

use triggeriq::testing::moto as support;
use triggeriq::testing::names::{ev, tenant, trigger};

const LEASE: Duration = Duration::from_secs(60);

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 4, 1, 9, 0, 0).unwrap()
}

fn secs(n: i64) -> chrono::Duration {
    chrono::Duration::seconds(n)
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 4, d).unwrap()
}

/// A cache key as the judge makes it: a SHA-256 in hex.
fn digest(text: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(text))
}

fn verdict(yes: bool) -> CachedVerdict {
    CachedVerdict {
        verdict: yes,
        confidence: 0.9,
        reason: "found \"cancel\"".to_owned(),
        model: "anthropic.claude-3-haiku-20240307-v1:0".to_owned(),
    }
}

// ---------------------------------------------------------------- verdict cache

#[tokio::test]
async fn a_cached_verdict_is_found_until_it_expires_and_only_by_its_tenant() {
    let clients = support::clients().await;
    let cache = VerdictCache::new(support::table(&clients).await);
    let key = digest("model|prompt|{\"text\":\"please cancel\"}");

    assert_eq!(cache.get(tenant("a"), &key, t0()).await.unwrap(), None);
    cache
        .put(tenant("a"), &key, &verdict(true), t0())
        .await
        .unwrap();

    assert_eq!(
        cache.get(tenant("a"), &key, t0() + secs(1)).await.unwrap(),
        Some(verdict(true))
    );
    // The same digest in upper case is the same key.
    assert_eq!(
        cache
            .get(tenant("a"), &key.to_uppercase(), t0())
            .await
            .unwrap(),
        Some(verdict(true))
    );
    // Another tenant judging the same text learns nothing from the first tenant's cache.
    assert_eq!(cache.get(tenant("b"), &key, t0()).await.unwrap(), None);
    // Another key misses.
    let other = digest("model|prompt|{\"text\":\"thanks\"}");
    assert_eq!(cache.get(tenant("a"), &other, t0()).await.unwrap(), None);

    // Seven days on, the item is still in the table (TTL deletes lazily) but absent.
    let week = secs(7 * 24 * 3600);
    assert_eq!(
        cache
            .get(tenant("a"), &key, t0() + week - secs(1))
            .await
            .unwrap(),
        Some(verdict(true))
    );
    assert_eq!(
        cache.get(tenant("a"), &key, t0() + week).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn a_cached_reason_is_cut_and_bad_verdicts_are_refused() {
    let clients = support::clients().await;
    let cache = VerdictCache::new(support::table(&clients).await);
    let key = digest("long");

    let mut long = verdict(false);
    long.reason = "é".repeat(400);
    cache.put(tenant("a"), &key, &long, t0()).await.unwrap();
    let got = cache.get(tenant("a"), &key, t0()).await.unwrap().unwrap();
    assert_eq!(got.reason, "é".repeat(300));

    let mut bad = verdict(true);
    bad.confidence = 1.5;
    let err = cache.put(tenant("a"), &key, &bad, t0()).await.unwrap_err();
    assert!(err.to_string().starts_with("confidence:"), "{err}");
    let mut bad = verdict(true);
    bad.model = "m".repeat(201);
    let err = cache.put(tenant("a"), &key, &bad, t0()).await.unwrap_err();
    assert!(err.to_string().starts_with("model:"), "{err}");
    let err = cache.get(tenant("a"), "zz", t0()).await.unwrap_err();
    assert!(err.to_string().starts_with("key_hex:"), "{err}");
}

// ---------------------------------------------------------------- judging claims

#[tokio::test]
async fn a_claim_is_won_once_held_by_others_and_done_with_its_outcome() {
    let clients = support::clients().await;
    let claims = JudgingClaim::new(support::table(&clients).await);
    let (t, tr, e) = (tenant("a"), trigger("churn"), ev("evt-1"));

    assert_eq!(
        claims.claim(t, tr, &e, "first", t0(), LEASE).await.unwrap(),
        Judging::Won
    );
    // A redelivery during the lease waits.
    assert_eq!(
        claims
            .claim(t, tr, &e, "second", t0() + secs(5), LEASE)
            .await
            .unwrap(),
        Judging::Held {
            lease_until: Some(t0() + secs(60))
        }
    );
    // The same delivery retrying its own claim keeps it.
    assert_eq!(
        claims
            .claim(t, tr, &e, "first", t0() + secs(6), LEASE)
            .await
            .unwrap(),
        Judging::Won
    );
    // Other triggers and tenants judging the same event id are other claims.
    assert_eq!(
        claims
            .claim(t, trigger("other"), &e, "x", t0(), LEASE)
            .await
            .unwrap(),
        Judging::Won
    );
    assert_eq!(
        claims
            .claim(tenant("b"), tr, &e, "x", t0(), LEASE)
            .await
            .unwrap(),
        Judging::Won
    );

    let outcome = json!({"verdict": true, "confidence": 0.9, "reason": "found \"cancel\"", "input_tokens": 120});
    assert_eq!(
        claims
            .finish(t, tr, &e, "first", &outcome, t0() + secs(7))
            .await
            .unwrap(),
        Finished::Recorded
    );
    // Every later delivery gets the recorded outcome, even long after the lease.
    for (owner, at) in [("second", secs(8)), ("third", secs(3600))] {
        assert_eq!(
            claims
                .claim(t, tr, &e, owner, t0() + at, LEASE)
                .await
                .unwrap(),
            Judging::Done(outcome.clone())
        );
    }
    // The winner claiming again is told it is done, too.
    assert_eq!(
        claims
            .claim(t, tr, &e, "first", t0() + secs(9), LEASE)
            .await
            .unwrap(),
        Judging::Done(outcome.clone())
    );
}

#[tokio::test]
async fn a_claim_whose_judge_died_is_taken_over_after_the_lease_and_the_first_outcome_stands() {
    let clients = support::clients().await;
    let claims = JudgingClaim::new(support::table(&clients).await);
    let (t, tr, e) = (tenant("a"), trigger("churn"), ev("evt-1"));

    assert_eq!(
        claims.claim(t, tr, &e, "dies", t0(), LEASE).await.unwrap(),
        Judging::Won
    );
    assert!(matches!(
        claims
            .claim(t, tr, &e, "redelivery", t0() + secs(59), LEASE)
            .await
            .unwrap(),
        Judging::Held { .. }
    ));
    assert_eq!(
        claims
            .claim(t, tr, &e, "redelivery", t0() + secs(60), LEASE)
            .await
            .unwrap(),
        Judging::Won
    );
    // The first judge, back from the dead, cannot take the claim back while the new lease runs.
    assert_eq!(
        claims
            .claim(t, tr, &e, "dies", t0() + secs(61), LEASE)
            .await
            .unwrap(),
        Judging::Held {
            lease_until: Some(t0() + secs(120))
        }
    );

    let slow = json!({"verdict": false});
    let fast = json!({"verdict": true});
    assert_eq!(
        claims
            .finish(t, tr, &e, "redelivery", &fast, t0() + secs(70))
            .await
            .unwrap(),
        Finished::Recorded
    );
    // The overtaken judge's answer does not replace the recorded one; it learns that one.
    assert_eq!(
        claims
            .finish(t, tr, &e, "dies", &slow, t0() + secs(71))
            .await
            .unwrap(),
        Finished::AlreadyDone(fast.clone())
    );
    assert_eq!(
        claims
            .claim(t, tr, &e, "later", t0() + secs(80), LEASE)
            .await
            .unwrap(),
        Judging::Done(fast)
    );
}

#[tokio::test]
async fn of_twenty_concurrent_claims_exactly_one_wins() {
    let clients = support::clients().await;
    let claims = JudgingClaim::new(support::table(&clients).await);
    let e = ev("evt-1");
    let owners: Vec<String> = (0..20).map(|i| format!("delivery-{i}")).collect();

    let results = futures::future::join_all(
        owners
            .iter()
            .map(|o| claims.claim(tenant("a"), trigger("churn"), &e, o, t0(), LEASE)),
    )
    .await;

    let mut won = 0;
    for result in results {
        match result.unwrap() {
            Judging::Won => won += 1,
            Judging::Held { lease_until } => {
                assert_eq!(lease_until, Some(t0() + secs(60)));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(won, 1);
}

#[tokio::test]
async fn an_oversized_outcome_is_refused() {
    let clients = support::clients().await;
    let claims = JudgingClaim::new(support::table(&clients).await);
    let huge = json!({"reason": "x".repeat(9000)});
    let err = claims
        .finish(tenant("a"), trigger("t"), &ev("e"), "o", &huge, t0())
        .await
        .unwrap_err();
    assert!(err.to_string().starts_with("outcome:"), "{err}");
    let err = claims
        .claim(tenant("a"), trigger("t"), &ev("e"), "", t0(), LEASE)
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "owner: must not be empty");
}

// ---------------------------------------------------------------- token budget

#[tokio::test]
async fn twenty_concurrent_charges_add_up_exactly() {
    let clients = support::clients().await;
    let budget = TokenBudget::new(support::table(&clients).await);

    let results =
        futures::future::join_all((1..=20u64).map(|i| budget.add(tenant("a"), day(1), i, 2 * i)))
            .await;
    for r in results {
        r.unwrap();
    }

    // 1 + … + 20 = 210.
    assert_eq!(
        budget.usage(tenant("a"), day(1), day(1)).await.unwrap(),
        vec![DayUsage {
            day: day(1),
            input_tokens: 210,
            output_tokens: 420,
            checks: 20,
        }]
    );
}

#[tokio::test]
async fn the_budget_check_flips_at_the_limit() {
    let clients = support::clients().await;
    let budget = TokenBudget::new(support::table(&clients).await);
    let (t, d) = (tenant("a"), day(1));

    assert!(budget.check(t, d, 100).await.unwrap());
    let after = budget.add(t, d, 60, 39).await.unwrap();
    assert_eq!(after.tokens(), 99);
    assert_eq!(after.checks, 1);
    assert!(budget.check(t, d, 100).await.unwrap());
    let after = budget.add(t, d, 0, 1).await.unwrap();
    assert_eq!(after.tokens(), 100);
    assert!(!budget.check(t, d, 100).await.unwrap());
    assert!(budget.check(t, d, 101).await.unwrap());
    // The next day starts afresh; so does another tenant.
    assert!(budget.check(t, day(2), 100).await.unwrap());
    assert!(budget.check(tenant("b"), d, 100).await.unwrap());
}

#[tokio::test]
async fn usage_reads_the_days_of_a_range_in_order_and_only_the_tenants_own() {
    let clients = support::clients().await;
    let budget = TokenBudget::new(support::table(&clients).await);

    // Written out of order, with days outside the range and another tenant's usage.
    for d in [5, 2, 9, 3, 1] {
        budget
            .add(tenant("a"), day(d), u64::from(d) * 10, 1)
            .await
            .unwrap();
    }
    budget.add(tenant("b"), day(3), 999, 999).await.unwrap();

    let got = budget.usage(tenant("a"), day(2), day(5)).await.unwrap();
    let days: Vec<_> = got.iter().map(|u| (u.day, u.input_tokens)).collect();
    assert_eq!(days, vec![(day(2), 20), (day(3), 30), (day(5), 50)]);

    assert_eq!(
        budget.usage(tenant("b"), day(1), day(30)).await.unwrap(),
        vec![DayUsage {
            day: day(3),
            input_tokens: 999,
            output_tokens: 999,
            checks: 1,
        }]
    );
    assert!(
        budget
            .usage(tenant("c"), day(1), day(30))
            .await
            .unwrap()
            .is_empty()
    );

    // Bounded ranges only.
    let err = budget
        .usage(
            tenant("a"),
            day(1),
            NaiveDate::from_ymd_opt(2026, 5, 2).unwrap(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().starts_with("to:"), "{err}");
    let err = budget.usage(tenant("a"), day(2), day(1)).await.unwrap_err();
    assert!(err.to_string().starts_with("to:"), "{err}");
    // 31 days is the most, and allowed.
    let may = NaiveDate::from_ymd_opt(2026, 5, 1).unwrap();
    assert_eq!(
        budget.usage(tenant("a"), day(1), may).await.unwrap().len(),
        5
    );
}

#[tokio::test]
async fn a_throttled_charge_is_an_error() {
    let throttled = mock!(aws_sdk_dynamodb::Client::update_item).then_error(|| {
        UpdateItemError::ProvisionedThroughputExceededException(
            ProvisionedThroughputExceededException::builder()
                .message("slow down")
                .meta(
                    ErrorMetadata::builder()
                        .code("ProvisionedThroughputExceededException")
                        .build(),
                )
                .build(),
        )
    });
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&throttled], |c| c
        .retry_config(
            aws_config::retry::RetryConfig::standard()
                .with_max_attempts(3)
                .with_initial_backoff(Duration::from_millis(1))
        ));
    let budget = TokenBudget::new(Table::new(client, "table"));

    let charged = budget.add(tenant("a"), day(1), 10, 10).await;

    assert!(
        matches!(
            charged,
            Err(DynamoError::Sdk {
                operation: "UpdateItem",
                ..
            })
        ),
        "{charged:?}"
    );
    // Retried by the SDK, then reported.
    assert_eq!(throttled.num_calls(), 3);
}
