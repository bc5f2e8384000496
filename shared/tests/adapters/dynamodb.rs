//! DynamoDB stores against moto: conditional writes really conflict.

use std::collections::HashSet;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, TimeZone, Utc};
use triggeriq::dynamodb::{
    Claim, CooldownLock, DynamoError, IdempotencyStore, Lock, RateDecision, RateLimit, RateLimiter,
    Rotation, SealOutcome, SecretsError,
};
use triggeriq::event::EventId;
use triggeriq::ids::TenantId;
use triggeriq::webhook::signing::sign;

use triggeriq::testing::moto as support;
use triggeriq::testing::names::{ev, tenant, trigger};

const DAY: Duration = Duration::from_secs(24 * 3600);

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 4, 1, 9, 0, 0).unwrap()
}

fn secs(n: i64) -> chrono::Duration {
    chrono::Duration::seconds(n)
}

// ---------------------------------------------------------------- idempotency

/// Claims `id` for tenant "t" and marks it queued, as an ingest that sent it would.
async fn claim_and_queue(store: &IdempotencyStore, id: &str, ttl: Duration, at: DateTime<Utc>) {
    let claim = store.claim(tenant("t"), &ev(id), ttl, at).await.unwrap();
    assert!(matches!(claim, Claim::Claimed(_)), "{claim:?}");
    store
        .mark_queued(tenant("t"), &[(&ev(id), at)], ttl)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_second_claim_is_pending_until_the_first_is_queued_then_a_duplicate() {
    let clients = support::clients().await;
    let store = IdempotencyStore::new(support::table(&clients).await);

    let first = store
        .claim(tenant("tenant-a"), &ev("evt-1"), DAY, t0())
        .await
        .unwrap();
    assert!(matches!(first, Claim::Claimed(_)), "{first:?}");
    // Not confirmed on the queue: a repeat sends again, as received the first time.
    let during = store
        .claim(tenant("tenant-a"), &ev("evt-1"), DAY, t0() + secs(5))
        .await
        .unwrap();
    assert_eq!(during, Claim::Pending { received_at: t0() });

    store
        .mark_queued(tenant("tenant-a"), &[(&ev("evt-1"), t0())], DAY)
        .await
        .unwrap();
    let after = store
        .claim(tenant("tenant-a"), &ev("evt-1"), DAY, t0() + secs(6))
        .await
        .unwrap();
    assert_eq!(
        after,
        Claim::Duplicate {
            first_seen: Some(t0())
        }
    );
}

#[tokio::test]
async fn concurrent_claims_of_one_event_have_exactly_one_winner() {
    let clients = support::clients().await;
    let store = IdempotencyStore::new(support::table(&clients).await);
    let (tenant, id) = (tenant("tenant-a"), ev("evt-race"));
    let claims =
        futures::future::join_all((0..12).map(|_| store.claim(tenant, &id, DAY, t0()))).await;
    let winners = claims
        .iter()
        .filter(|c| matches!(c, Ok(Claim::Claimed(_))))
        .count();
    let pending = claims
        .iter()
        .filter(|c| matches!(c, Ok(Claim::Pending { .. })))
        .count();
    assert_eq!((winners, pending), (1, 11), "{claims:?}");
}

#[tokio::test]
async fn an_expired_claim_counts_as_absent_before_ttl_deletes_it() {
    let clients = support::clients().await;
    let store = IdempotencyStore::new(support::table(&clients).await);
    let ttl = Duration::from_secs(3600);
    claim_and_queue(&store, "evt", ttl, t0()).await;
    // Still inside the hour: duplicate.
    assert!(matches!(
        store
            .claim(tenant("t"), &ev("evt"), ttl, t0() + secs(3599))
            .await
            .unwrap(),
        Claim::Duplicate { .. }
    ));
    // The item is still in the table (moto, like DynamoDB, has not deleted it), but expired.
    assert!(matches!(
        store
            .claim(tenant("t"), &ev("evt"), ttl, t0() + secs(3600))
            .await
            .unwrap(),
        Claim::Claimed(_)
    ));
}

#[tokio::test]
async fn release_frees_a_pending_claim_only_for_its_token_holder_and_never_a_queued_one() {
    let clients = support::clients().await;
    let store = IdempotencyStore::new(support::table(&clients).await);
    let (t, id) = (tenant("t"), ev("evt"));
    let Claim::Claimed(first) = store.claim(t, &id, DAY, t0()).await.unwrap() else {
        panic!("first claim must win");
    };
    assert!(store.release(t, &id, &first).await.unwrap());
    // Released: the client's retry is a first request again.
    let Claim::Claimed(second) = store.claim(t, &id, DAY, t0()).await.unwrap() else {
        panic!("claim after release must win");
    };
    assert_ne!(first, second);
    // A stale token cannot remove the new claim.
    assert!(!store.release(t, &id, &first).await.unwrap());
    assert!(matches!(
        store.claim(t, &id, DAY, t0()).await.unwrap(),
        Claim::Pending { .. }
    ));
    // Once queued, not even its own token releases it.
    store.mark_queued(t, &[(&id, t0())], DAY).await.unwrap();
    assert!(!store.release(t, &id, &second).await.unwrap());
    assert!(matches!(
        store.claim(t, &id, DAY, t0()).await.unwrap(),
        Claim::Duplicate { .. }
    ));
}

#[tokio::test]
async fn marking_queued_covers_more_than_one_batch_write_and_keeps_each_receipt() {
    let clients = support::clients().await;
    let store = IdempotencyStore::new(support::table(&clients).await);
    let ids: Vec<EventId> = (0..60).map(|i| ev(&format!("m-{i}"))).collect();
    let marks: Vec<(&EventId, DateTime<Utc>)> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id, t0() + secs(i as i64)))
        .collect();
    store.mark_queued(tenant("t"), &marks, DAY).await.unwrap();
    for (id, at) in &marks {
        assert_eq!(
            store
                .claim(tenant("t"), id, DAY, t0() + secs(100))
                .await
                .unwrap(),
            Claim::Duplicate {
                first_seen: Some(*at)
            },
            "{id}"
        );
    }
}

#[tokio::test]
async fn tenants_and_escaped_ids_never_share_a_claim() {
    let clients = support::clients().await;
    let store = IdempotencyStore::new(support::table(&clients).await);
    for (name, id) in [("t", "a#b"), ("t", "a"), ("other", "a#b"), ("t", "a%23b")] {
        let claim = store.claim(tenant(name), &ev(id), DAY, t0()).await.unwrap();
        assert!(
            matches!(claim, Claim::Claimed(_)),
            "{name} / {id}: {claim:?}"
        );
    }
}

#[tokio::test]
async fn claim_many_answers_in_input_order() {
    let clients = support::clients().await;
    let store = IdempotencyStore::new(support::table(&clients).await);
    claim_and_queue(&store, "seen", DAY, t0()).await;

    let results = store
        .claim_many(
            tenant("t"),
            &["new-1", "seen", "new-2", "dup", "dup", ""]
                .map(ev)
                .iter()
                .collect::<Vec<_>>(),
            DAY,
            t0(),
        )
        .await;
    assert_eq!(results.len(), 6);
    assert!(matches!(results[0], Ok(Claim::Claimed(_))));
    assert!(matches!(results[1], Ok(Claim::Duplicate { .. })));
    assert!(matches!(results[2], Ok(Claim::Claimed(_))));
    // The same id twice in one call: one claims it, the other finds it pending.
    let dup_wins = [&results[3], &results[4]]
        .iter()
        .filter(|r| matches!(r, Ok(Claim::Claimed(_))))
        .count();
    assert_eq!(dup_wins, 1);
    assert!(
        [&results[3], &results[4]]
            .iter()
            .any(|r| matches!(r, Ok(Claim::Pending { .. })))
    );
    match &results[5] {
        Err(DynamoError::InvalidInput { field, .. }) => assert_eq!(*field, "event_id"),
        other => panic!("{other:?}"),
    }

    // Release what was claimed in this request; a retry then claims again.
    let tokens: Vec<(EventId, _)> = [("new-1", &results[0]), ("new-2", &results[2])]
        .into_iter()
        .map(|(id, r)| match r {
            Ok(Claim::Claimed(token)) => (ev(id), token.clone()),
            other => panic!("{other:?}"),
        })
        .collect();
    let refs: Vec<(&EventId, &_)> = tokens.iter().map(|(id, t)| (id, t)).collect();
    let released = store.release_many(tenant("t"), &refs).await;
    assert!(
        released.iter().all(|r| matches!(r, Ok(true))),
        "{released:?}"
    );
    assert!(matches!(
        store
            .claim(tenant("t"), &ev("new-1"), DAY, t0())
            .await
            .unwrap(),
        Claim::Claimed(_)
    ));
}

// ---------------------------------------------------------------- rate limit

#[tokio::test]
async fn a_full_bucket_allows_a_burst_then_limits_with_retry_after() {
    let clients = support::clients().await;
    let limiter = RateLimiter::new(support::table(&clients).await);
    let limit = RateLimit {
        capacity: 5,
        per_second: 1.0,
    };

    assert_eq!(
        limiter.acquire(tenant("t"), limit, 5, t0()).await.unwrap(),
        RateDecision::Allowed
    );
    let denied = limiter.acquire(tenant("t"), limit, 1, t0()).await.unwrap();
    assert_eq!(
        denied,
        RateDecision::Limited {
            retry_after: Duration::from_secs(1)
        }
    );
    assert_eq!(denied.retry_after_seconds(), Some(1));

    // One second later one token has come back, and only one.
    let later = t0() + secs(1);
    assert_eq!(
        limiter.acquire(tenant("t"), limit, 1, later).await.unwrap(),
        RateDecision::Allowed
    );
    assert!(matches!(
        limiter.acquire(tenant("t"), limit, 1, later).await.unwrap(),
        RateDecision::Limited { .. }
    ));

    // A batch that needs more tokens than have come back is told how long to wait.
    assert_eq!(
        limiter.acquire(tenant("t"), limit, 3, later).await.unwrap(),
        RateDecision::Limited {
            retry_after: Duration::from_secs(3)
        }
    );

    // After an idle hour the bucket is full again.
    assert_eq!(
        limiter
            .acquire(tenant("t"), limit, 5, t0() + secs(3600))
            .await
            .unwrap(),
        RateDecision::Allowed
    );
}

#[tokio::test]
async fn named_buckets_are_independent_of_each_other_of_the_event_bucket_and_of_tenants() {
    let clients = support::clients().await;
    let limiter = RateLimiter::new(support::table(&clients).await);
    let limit = RateLimit {
        capacity: 2,
        per_second: 1.0,
    };
    for _ in 0..2 {
        assert_eq!(
            limiter
                .acquire_in(tenant("t"), "reads", limit, 1, t0())
                .await
                .unwrap(),
            RateDecision::Allowed
        );
    }
    assert!(matches!(
        limiter
            .acquire_in(tenant("t"), "reads", limit, 1, t0())
            .await
            .unwrap(),
        RateDecision::Limited { .. }
    ));
    // The same tenant's other buckets, and another tenant's reads, are full.
    assert_eq!(
        limiter
            .acquire_in(tenant("t"), "writes", limit, 2, t0())
            .await
            .unwrap(),
        RateDecision::Allowed
    );
    assert_eq!(
        limiter.acquire(tenant("t"), limit, 2, t0()).await.unwrap(),
        RateDecision::Allowed
    );
    assert_eq!(
        limiter
            .acquire_in(tenant("u"), "reads", limit, 2, t0())
            .await
            .unwrap(),
        RateDecision::Allowed
    );
    // A bucket name that could collide with another key is refused.
    for bad in ["", "Reads", "reads#x", "a b"] {
        assert!(matches!(
            limiter.acquire_in(tenant("t"), bad, limit, 1, t0()).await,
            Err(DynamoError::InvalidInput {
                field: "bucket",
                ..
            })
        ));
    }
}

#[tokio::test]
async fn costs_accumulate_until_the_capacity() {
    let clients = support::clients().await;
    let limiter = RateLimiter::new(support::table(&clients).await);
    let limit = RateLimit {
        capacity: 10,
        per_second: 2.0,
    };
    assert_eq!(
        limiter.acquire(tenant("t"), limit, 4, t0()).await.unwrap(),
        RateDecision::Allowed
    );
    assert_eq!(
        limiter.acquire(tenant("t"), limit, 4, t0()).await.unwrap(),
        RateDecision::Allowed
    );
    // 8 of 10 used: 4 more would need 1 s of refill (2 tokens at 2/s).
    assert_eq!(
        limiter.acquire(tenant("t"), limit, 4, t0()).await.unwrap(),
        RateDecision::Limited {
            retry_after: Duration::from_secs(1)
        }
    );
    assert_eq!(
        limiter.acquire(tenant("t"), limit, 2, t0()).await.unwrap(),
        RateDecision::Allowed
    );
}

#[tokio::test]
async fn concurrent_requests_never_overdraw_the_bucket() {
    let clients = support::clients().await;
    let limiter = RateLimiter::new(support::table(&clients).await);
    let limit = RateLimit {
        capacity: 20,
        per_second: 0.001,
    };
    let decisions =
        futures::future::join_all((0..30).map(|_| limiter.acquire(tenant("t"), limit, 1, t0())))
            .await;
    let allowed = decisions
        .iter()
        .filter(|d| matches!(d, Ok(RateDecision::Allowed)))
        .count();
    let limited = decisions
        .iter()
        .filter(|d| matches!(d, Ok(RateDecision::Limited { .. })))
        .count();
    assert_eq!((allowed, limited), (20, 10), "{decisions:?}");
}

#[tokio::test]
async fn tenants_have_separate_buckets() {
    let clients = support::clients().await;
    let limiter = RateLimiter::new(support::table(&clients).await);
    let limit = RateLimit {
        capacity: 2,
        per_second: 1.0,
    };
    assert_eq!(
        limiter.acquire(tenant("a"), limit, 2, t0()).await.unwrap(),
        RateDecision::Allowed
    );
    assert!(matches!(
        limiter.acquire(tenant("a"), limit, 1, t0()).await.unwrap(),
        RateDecision::Limited { .. }
    ));
    assert_eq!(
        limiter.acquire(tenant("b"), limit, 2, t0()).await.unwrap(),
        RateDecision::Allowed
    );
}

#[tokio::test]
async fn a_cost_above_the_capacity_is_an_error_naming_the_field() {
    let clients = support::clients().await;
    let limiter = RateLimiter::new(support::table(&clients).await);
    let limit = RateLimit {
        capacity: 100,
        per_second: 10.0,
    };
    match limiter.acquire(tenant("t"), limit, 500, t0()).await {
        Err(DynamoError::InvalidInput { field, reason }) => {
            assert_eq!(field, "cost");
            assert!(reason.contains("500") && reason.contains("100"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------- cooldown

#[tokio::test]
async fn a_cooldown_blocks_until_it_has_passed() {
    let clients = support::clients().await;
    let lock = CooldownLock::new(support::table(&clients).await);
    let cooldown = Duration::from_secs(600);
    assert!(
        lock.try_acquire(tenant("t"), trigger("trg-1"), cooldown, t0())
            .await
            .unwrap()
    );
    assert!(
        !lock
            .try_acquire(tenant("t"), trigger("trg-1"), cooldown, t0() + secs(599))
            .await
            .unwrap()
    );
    assert!(
        lock.try_acquire(tenant("t"), trigger("trg-1"), cooldown, t0() + secs(600))
            .await
            .unwrap()
    );
    // Another trigger, and a group of the same trigger, have their own cooldowns.
    assert!(
        lock.try_acquire(tenant("t"), trigger("trg-2"), cooldown, t0())
            .await
            .unwrap()
    );
    assert!(
        lock.try_acquire_group(tenant("t"), trigger("trg-1"), "cust-9", cooldown, t0())
            .await
            .unwrap()
    );
    assert!(
        !lock
            .try_acquire_group(
                tenant("t"),
                trigger("trg-1"),
                "cust-9",
                cooldown,
                t0() + secs(1)
            )
            .await
            .unwrap()
    );
    assert!(
        lock.try_acquire_group(
            tenant("t"),
            trigger("trg-1"),
            "cust-10",
            cooldown,
            t0() + secs(1)
        )
        .await
        .unwrap()
    );
}

#[tokio::test]
async fn an_owned_cooldown_is_granted_again_to_its_owner_and_to_no_one_else() {
    let clients = support::clients().await;
    let lock = CooldownLock::new(support::table(&clients).await);
    let hour = Duration::from_secs(3600);
    assert!(
        lock.try_acquire_for(tenant("t"), trigger("trg"), &ev("evt-a"), hour, t0())
            .await
            .unwrap()
            .granted()
    );
    // The same event, evaluated again (a redelivery), keeps its own cooldown…
    assert!(
        lock.try_acquire_for(tenant("t"), trigger("trg"), &ev("evt-a"), hour, t0())
            .await
            .unwrap()
            .granted()
    );
    // …while another event is refused until the cooldown has passed, and told until when.
    assert_eq!(
        lock.try_acquire_for(
            tenant("t"),
            trigger("trg"),
            &ev("evt-b"),
            hour,
            t0() + secs(5)
        )
        .await
        .unwrap(),
        Lock::Held {
            until: Some(t0() + secs(3600))
        }
    );
    assert!(
        !lock
            .try_acquire_for(
                tenant("t"),
                trigger("trg"),
                &ev("evt-b"),
                hour,
                t0() + secs(10)
            )
            .await
            .unwrap()
            .granted()
    );
    assert!(
        !lock
            .try_acquire(tenant("t"), trigger("trg"), hour, t0() + secs(10))
            .await
            .unwrap()
    );
    assert!(
        lock.try_acquire_for(
            tenant("t"),
            trigger("trg"),
            &ev("evt-b"),
            hour,
            t0() + secs(3600)
        )
        .await
        .unwrap()
        .granted()
    );
    // Now evt-b owns it: evt-a's late redelivery is refused, as the first answer would be now.
    assert!(
        !lock
            .try_acquire_for(
                tenant("t"),
                trigger("trg"),
                &ev("evt-a"),
                hour,
                t0() + secs(3601)
            )
            .await
            .unwrap()
            .granted()
    );
    assert!(matches!(
        lock.try_acquire_for(tenant("t"), trigger("trg"), &ev(""), hour, t0())
            .await,
        Err(DynamoError::InvalidInput { field: "owner", .. })
    ));
}

#[tokio::test]
async fn of_concurrent_evaluations_exactly_one_takes_the_cooldown() {
    let clients = support::clients().await;
    let lock = CooldownLock::new(support::table(&clients).await);
    let results = futures::future::join_all(
        (0..10)
            .map(|_| lock.try_acquire(tenant("t"), trigger("trg"), Duration::from_secs(60), t0())),
    )
    .await;
    let taken = results.iter().filter(|r| matches!(r, Ok(true))).count();
    assert_eq!(taken, 1, "{results:?}");
}

// ---------------------------------------------------------------- signing secrets

#[tokio::test]
async fn the_first_secret_is_created_once() {
    let clients = support::clients().await;
    let store = support::secret_store(&clients, support::table(&clients).await).await;
    assert_eq!(store.get(tenant("t")).await.unwrap(), None);
    let created = store.get_or_create(tenant("t"), t0()).await.unwrap();
    let again = store
        .get_or_create(tenant("t"), t0() + secs(10))
        .await
        .unwrap();
    assert_eq!(created, again);
    assert_eq!(
        store.active(tenant("t"), t0()).await.unwrap(),
        vec![created.current]
    );
}

#[tokio::test]
async fn concurrent_first_reads_agree_on_one_secret() {
    let clients = support::clients().await;
    let store = support::secret_store(&clients, support::table(&clients).await).await;
    let all =
        futures::future::join_all((0..6).map(|_| store.get_or_create(tenant("t"), t0()))).await;
    let distinct: HashSet<String> = all
        .iter()
        .map(|r| r.as_ref().unwrap().current.expose().to_owned())
        .collect();
    assert_eq!(distinct.len(), 1);
}

#[tokio::test]
async fn rotation_signs_with_both_secrets_for_24_hours() {
    let clients = support::clients().await;
    let store = support::secret_store(&clients, support::table(&clients).await).await;
    let old = store
        .get_or_create(tenant("t"), t0())
        .await
        .unwrap()
        .current;
    let new = store
        .rotate(tenant("t"), t0() + secs(60))
        .await
        .unwrap()
        .rotated()
        .expect("rotated");
    assert_ne!(old, new);

    let during = store.active(tenant("t"), t0() + secs(3600)).await.unwrap();
    assert_eq!(during, vec![new.clone(), old.clone()]);

    // A receiver holding either secret verifies the webhook (independent implementation).
    let body = br#"{"type":"order.created"}"#;
    let timestamp = Utc::now().timestamp();
    let header = sign("msg_1", timestamp, body, &during).unwrap();
    let mut headers = http::HeaderMap::new();
    headers.insert("webhook-id", "msg_1".parse().unwrap());
    headers.insert("webhook-timestamp", timestamp.to_string().parse().unwrap());
    headers.insert("webhook-signature", header.parse().unwrap());
    for secret in [&old, &new] {
        standardwebhooks::Webhook::new(secret.expose())
            .unwrap()
            .verify(body, &headers)
            .expect("signature verifies with either secret");
    }

    // 24 hours after the rotation only the new secret signs.
    let after = store
        .active(tenant("t"), t0() + secs(60) + secs(24 * 3600))
        .await
        .unwrap();
    assert_eq!(after, vec![new]);
}

#[tokio::test]
async fn rotating_again_within_a_day_keeps_every_recent_secret() {
    let clients = support::clients().await;
    let store = support::secret_store(&clients, support::table(&clients).await).await;
    let a = store
        .get_or_create(tenant("t"), t0())
        .await
        .unwrap()
        .current;
    let b = store
        .rotate(tenant("t"), t0() + secs(10))
        .await
        .unwrap()
        .rotated()
        .expect("rotated");
    let c = store
        .rotate(tenant("t"), t0() + secs(20))
        .await
        .unwrap()
        .rotated()
        .expect("rotated");
    assert_eq!(
        store.active(tenant("t"), t0() + secs(30)).await.unwrap(),
        vec![c.clone(), b.clone(), a]
    );
    // a expires 24 h after the first rotation, b 24 h after the second.
    assert_eq!(
        store
            .active(tenant("t"), t0() + secs(15) + secs(24 * 3600))
            .await
            .unwrap(),
        vec![c, b]
    );
}

#[tokio::test]
async fn concurrent_rotations_lose_no_secret() {
    let clients = support::clients().await;
    let store = support::secret_store(&clients, support::table(&clients).await).await;
    let original = store
        .get_or_create(tenant("t"), t0())
        .await
        .unwrap()
        .current;
    let rotated: Vec<_> =
        futures::future::join_all((0..4).map(|_| store.rotate(tenant("t"), t0() + secs(1))))
            .await
            .into_iter()
            .map(|r| {
                r.expect("every rotation succeeds")
                    .rotated()
                    .expect("rotated")
            })
            .collect();
    let active = store.active(tenant("t"), t0() + secs(2)).await.unwrap();
    assert_eq!(active.len(), 5, "current + 4 previous");
    for secret in rotated.iter().chain([&original]) {
        assert!(active.contains(secret), "a rotated secret was lost");
    }
    let stored = store.get(tenant("t")).await.unwrap().unwrap();
    assert_eq!(stored.version, 5);
}

#[tokio::test]
async fn a_rotation_that_would_end_a_replaced_secret_early_is_refused_until_the_oldest_expires() {
    let clients = support::clients().await;
    let store = support::secret_store(&clients, support::table(&clients).await).await;
    let first = store
        .get_or_create(tenant("t"), t0())
        .await
        .unwrap()
        .current;
    let mut issued = vec![first];
    for i in 1..=4 {
        let rotation = store
            .rotate(tenant("t"), t0() + secs(i * 60))
            .await
            .unwrap();
        issued.push(rotation.rotated().expect("within the cap"));
    }
    // Four replaced secrets sign: a fifth rotation would end the first one's 24 hours early.
    let at = t0() + secs(5 * 60);
    assert_eq!(
        store.rotate(tenant("t"), at).await.unwrap(),
        Rotation::Refused {
            next_possible_at: t0() + secs(60) + secs(24 * 3600)
        }
    );
    let active = store.active(tenant("t"), at).await.unwrap();
    assert_eq!(active.len(), 5);
    for secret in &issued {
        assert!(active.contains(secret), "a secret stopped early");
    }
    // Once the oldest has had its 24 hours, rotating works again.
    let later = t0() + secs(60) + secs(24 * 3600) + secs(1);
    assert!(
        store
            .rotate(tenant("t"), later)
            .await
            .unwrap()
            .rotated()
            .is_some()
    );
}

#[tokio::test]
async fn a_malformed_secret_item_is_reported_not_used() {
    let clients = support::clients().await;
    let table = support::table(&clients).await;
    let pk = format!("SIGNING#{}", tenant("t"));
    clients
        .dynamodb
        .put_item()
        .table_name(table.name())
        .item("pk", aws_sdk_dynamodb::types::AttributeValue::S(pk.clone()))
        .item(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("SIGNING".into()),
        )
        .item(
            "current",
            aws_sdk_dynamodb::types::AttributeValue::S("not-a-secret".into()),
        )
        .item(
            "version",
            aws_sdk_dynamodb::types::AttributeValue::N("1".into()),
        )
        .send()
        .await
        .unwrap();
    let store = support::secret_store(&clients, table).await;
    match store.get(tenant("t")).await {
        Err(SecretsError::Store(DynamoError::CorruptItem {
            pk: reported,
            reason,
        })) => {
            assert_eq!(reported, pk);
            assert!(reason.contains("current"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------- sealed with KMS

/// Every string in the stored item, however deeply nested, and every binary as lossy text.
fn item_text(item: &std::collections::HashMap<String, AttributeValue>) -> String {
    fn walk(v: &AttributeValue, out: &mut String) {
        match v {
            AttributeValue::S(s) | AttributeValue::N(s) => out.push_str(s),
            AttributeValue::B(b) => out.push_str(&String::from_utf8_lossy(b.as_ref())),
            AttributeValue::M(m) => m.iter().for_each(|(k, v)| {
                out.push_str(k);
                walk(v, out);
            }),
            AttributeValue::L(l) => l.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = String::new();
    item.iter().for_each(|(k, v)| {
        out.push_str(k);
        walk(v, &mut out);
    });
    out
}

async fn raw_item(
    clients: &triggeriq::aws::AwsClients,
    table: &triggeriq::dynamodb::Table,
    t: TenantId,
) -> std::collections::HashMap<String, AttributeValue> {
    clients
        .dynamodb
        .get_item()
        .table_name(table.name())
        .key("pk", AttributeValue::S(format!("SIGNING#{t}")))
        .key("sk", AttributeValue::S("SIGNING".into()))
        .send()
        .await
        .unwrap()
        .item()
        .cloned()
        .expect("item")
}

#[tokio::test]
async fn secrets_are_stored_sealed_and_open_only_with_their_key() {
    let clients = support::clients().await;
    let table = support::table(&clients).await;
    let store = support::secret_store(&clients, table.clone()).await;
    let first = store
        .get_or_create(tenant("t"), t0())
        .await
        .unwrap()
        .current;
    let second = store
        .rotate(tenant("t"), t0() + secs(60))
        .await
        .unwrap()
        .rotated()
        .expect("rotated");
    let item = raw_item(&clients, &table, tenant("t")).await;
    let text = item_text(&item);
    for secret in [&first, &second] {
        assert!(!text.contains(secret.expose()), "a secret in clear: {text}");
        let key_b64 = secret.expose().trim_start_matches("whsec_");
        assert!(!text.contains(key_b64), "a secret's key in clear");
    }
    assert!(!text.contains("whsec_"), "{text}");
    assert!(item.contains_key("sealed") && !item.contains_key("current"));
    assert_eq!(store.is_clear(tenant("t")).await.unwrap(), Some(false));

    // The same table read with another KMS key: nothing opens.
    let other_key = support::secret_store(&clients, table.clone()).await;
    assert!(
        matches!(
            other_key.get(tenant("t")).await,
            Err(SecretsError::Sealing { .. })
        ),
        "opened with another key"
    );
    // With the right key, both secrets sign, the new one first.
    assert_eq!(
        store.active(tenant("t"), t0() + secs(61)).await.unwrap(),
        vec![second, first]
    );
}

#[tokio::test]
async fn a_sealed_value_copied_to_another_tenant_does_not_open() {
    let clients = support::clients().await;
    let table = support::table(&clients).await;
    let store = support::secret_store(&clients, table.clone()).await;
    store.get_or_create(tenant("victim"), t0()).await.unwrap();
    store.get_or_create(tenant("thief"), t0()).await.unwrap();
    // Someone with write access to the table copies the victim's sealed secrets into the
    // thief's item (same version, so only the tenant differs).
    let mut stolen = raw_item(&clients, &table, tenant("victim")).await;
    stolen.insert(
        "pk".into(),
        AttributeValue::S(format!("SIGNING#{}", tenant("thief"))),
    );
    clients
        .dynamodb
        .put_item()
        .table_name(table.name())
        .set_item(Some(stolen))
        .send()
        .await
        .unwrap();
    match store.get(tenant("thief")).await {
        Err(SecretsError::Sealing { pk, .. }) => {
            assert_eq!(pk, format!("SIGNING#{}", tenant("thief")));
        }
        other => panic!("opened another tenant's secrets: {other:?}"),
    }
}

#[tokio::test]
async fn secrets_stored_in_clear_are_read_then_sealed_unchanged() {
    let clients = support::clients().await;
    let table = support::table(&clients).await;
    let store = support::secret_store(&clients, table.clone()).await;
    // An item as the store wrote it before the encryption.
    let old = triggeriq::webhook::signing::SigningSecret::generate();
    let older = triggeriq::webhook::signing::SigningSecret::generate();
    clients
        .dynamodb
        .put_item()
        .table_name(table.name())
        .item("pk", AttributeValue::S(format!("SIGNING#{}", tenant("t"))))
        .item("sk", AttributeValue::S("SIGNING".into()))
        .item("current", AttributeValue::S(old.expose().into()))
        .item(
            "current_since",
            AttributeValue::N(t0().timestamp().to_string()),
        )
        .item(
            "previous",
            AttributeValue::L(vec![AttributeValue::M(
                [
                    (
                        "secret".to_owned(),
                        AttributeValue::S(older.expose().into()),
                    ),
                    (
                        "expires_at".to_owned(),
                        AttributeValue::N((t0() + secs(3600)).timestamp().to_string()),
                    ),
                ]
                .into(),
            )]),
        )
        .item("version", AttributeValue::N("3".into()))
        .send()
        .await
        .unwrap();
    assert_eq!(store.is_clear(tenant("t")).await.unwrap(), Some(true));
    let before = store
        .get(tenant("t"))
        .await
        .unwrap()
        .expect("read in clear");
    assert_eq!(before.active(t0()), vec![old.clone(), older.clone()]);

    assert_eq!(
        store.seal_legacy(tenant("t"), t0()).await.unwrap(),
        SealOutcome::Sealed
    );
    assert_eq!(store.is_clear(tenant("t")).await.unwrap(), Some(false));
    assert!(!item_text(&raw_item(&clients, &table, tenant("t")).await).contains("whsec_"));
    let after = store.get(tenant("t")).await.unwrap().expect("sealed");
    assert_eq!(
        after.active(t0()),
        vec![old, older],
        "the same secrets sign"
    );
    assert_eq!(after.current_since, before.current_since);
    assert_eq!(after.version, before.version + 1);
    // Again: nothing to do. A tenant without an item gets its first secret, sealed.
    assert_eq!(
        store.seal_legacy(tenant("t"), t0()).await.unwrap(),
        SealOutcome::AlreadySealed
    );
    assert_eq!(
        store.seal_legacy(tenant("new"), t0()).await.unwrap(),
        SealOutcome::Created
    );
    assert_eq!(store.is_clear(tenant("new")).await.unwrap(), Some(false));
}

#[tokio::test]
async fn signing_never_makes_a_secret() {
    let clients = support::clients().await;
    let store = support::secret_store(&clients, support::table(&clients).await).await;
    match store.active(tenant("t"), t0()).await {
        Err(SecretsError::Missing(t)) => assert_eq!(t, tenant("t")),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        store.get(tenant("t")).await.unwrap(),
        None,
        "nothing was made"
    );
}
