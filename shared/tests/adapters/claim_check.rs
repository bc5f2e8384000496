//! The S3 claim check against moto: large events travel by reference and
//! arrive whole; anything that does not match its reference is refused.

use chrono::{TimeZone, Utc};
use sha2::Digest as _;
use triggeriq::ids::TenantId;
use triggeriq::s3::{ClaimCheck, ClaimCheckError, DEFAULT_THRESHOLD};
use triggeriq::sqs::{OutgoingMessage, SqsSender};

use triggeriq::testing::moto as support;

fn event_of_size(id: &str, bytes: usize) -> String {
    let head = format!(r#"{{"id":"{id}","type":"blob.uploaded","data":{{"payload":""#);
    let tail = r#""}}"#;
    let filler: String = (0..bytes.saturating_sub(head.len() + tail.len()))
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    format!("{head}{filler}{tail}")
}

#[tokio::test]
async fn a_300_kb_event_travels_through_s3_and_arrives_whole() {
    let clients = support::clients().await;
    let bucket = support::bucket(&clients).await;
    let queue = support::queue(&clients).await;
    let check = ClaimCheck::new(clients.s3.clone(), &bucket);
    let now = Utc.with_ymd_and_hms(2026, 6, 30, 23, 0, 0).unwrap();
    let event = event_of_size("evt-big", 300 * 1024);
    assert_eq!(event.len(), 300 * 1024);
    let tenant = TenantId::new();

    let queued = check.wrap(tenant, "evt-big", &event, now).await.unwrap();
    let claim = queued.claim.clone().expect("a 300 KB event is claimed");
    assert_eq!(
        claim.key,
        format!(
            "claims/{tenant}/2026-06-30/{}.json",
            hex::encode(sha2::Sha256::digest(b"evt-big"))
        )
    );
    assert_eq!(claim.size, event.len() as u64);
    assert!(
        queued.body.len() < 512,
        "the queued reference is small: {}",
        queued.body
    );

    // Through a real queue and back.
    let sent = SqsSender::new(clients.sqs.clone())
        .send_one(&queue, OutgoingMessage::new("evt-big", queued.body.clone()))
        .await
        .unwrap();
    let received = support::drain(&clients, &queue, 1).await;
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].message_id(), Some(sent.message_id.as_str()));
    let restored = check.unwrap(received[0].body().unwrap()).await.unwrap();
    assert!(restored == event, "the event must arrive byte for byte");
}

#[tokio::test]
async fn small_events_stay_inline_and_verbatim() {
    let clients = support::clients().await;
    let bucket = support::bucket(&clients).await;
    let check = ClaimCheck::new(clients.s3.clone(), &bucket);
    // Odd spacing and key order must survive: the body is embedded raw.
    let event = r#"{ "type" : "a.b",  "id":"e1", "data": {"z":1,"a":[1, 2]} }"#;
    let queued = check
        .wrap(TenantId::new(), "e1", event, Utc::now())
        .await
        .unwrap();
    assert_eq!(queued.claim, None);
    assert_eq!(queued.body, format!(r#"{{"v":1,"inline":{event}}}"#));
    assert_eq!(check.unwrap(&queued.body).await.unwrap(), event);
    let listed = clients
        .s3
        .list_objects_v2()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.key_count(), Some(0), "nothing written to S3");
}

#[tokio::test]
async fn the_threshold_is_the_envelope_size() {
    let clients = support::clients().await;
    let bucket = support::bucket(&clients).await;
    let check = ClaimCheck::new(clients.s3.clone(), &bucket).with_threshold(1000);
    let overhead = r#"{"v":1,"inline":}"#.len();
    let fits = event_of_size("a", 1000 - overhead);
    let over = event_of_size("b", 1001 - overhead);
    assert!(
        check
            .wrap(TenantId::new(), "a", &fits, Utc::now())
            .await
            .unwrap()
            .claim
            .is_none()
    );
    assert!(
        check
            .wrap(TenantId::new(), "b", &over, Utc::now())
            .await
            .unwrap()
            .claim
            .is_some()
    );
    assert_eq!(
        ClaimCheck::new(clients.s3.clone(), &bucket).threshold(),
        DEFAULT_THRESHOLD
    );
}

#[tokio::test]
async fn a_tampered_or_truncated_object_is_refused() {
    let clients = support::clients().await;
    let bucket = support::bucket(&clients).await;
    let check = ClaimCheck::new(clients.s3.clone(), &bucket).with_threshold(100);
    let event = event_of_size("e", 2000);
    let queued = check
        .wrap(TenantId::new(), "e", &event, Utc::now())
        .await
        .unwrap();
    let claim = queued.claim.clone().unwrap();

    // Same length, one byte changed.
    let mut tampered = event.clone().into_bytes();
    tampered[1000] = b'!';
    put(&clients, &bucket, &claim.key, tampered).await;
    match check.unwrap(&queued.body).await {
        Err(ClaimCheckError::Mismatch { reason, .. }) => {
            assert!(reason.contains("SHA-256"), "{reason}")
        }
        other => panic!("{other:?}"),
    }

    put(
        &clients,
        &bucket,
        &claim.key,
        event.as_bytes()[..1500].to_vec(),
    )
    .await;
    match check.unwrap(&queued.body).await {
        Err(ClaimCheckError::Mismatch { reason, .. }) => {
            assert!(reason.contains("1500 bytes"), "{reason}")
        }
        other => panic!("{other:?}"),
    }

    // Discarded (or expired by the lifecycle rule): the S3 error is reported.
    check.discard(&claim).await.unwrap();
    assert!(matches!(
        check.unwrap(&queued.body).await,
        Err(ClaimCheckError::S3 {
            operation: "GetObject",
            ..
        })
    ));
}

#[tokio::test]
async fn bad_input_is_refused_with_the_field() {
    let clients = support::clients().await;
    let check = ClaimCheck::new(clients.s3.clone(), "unused");
    match check
        .wrap(TenantId::new(), "e", "{not json", Utc::now())
        .await
    {
        Err(ClaimCheckError::InvalidInput { field, .. }) => assert_eq!(field, "body"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        check.unwrap("{}").await,
        Err(ClaimCheckError::InvalidEnvelope(_))
    ));
    assert!(matches!(
        check.unwrap(r#"{"v":9,"inline":1}"#).await,
        Err(ClaimCheckError::UnsupportedVersion(9))
    ));
}

async fn put(clients: &triggeriq::aws::AwsClients, bucket: &str, key: &str, bytes: Vec<u8>) {
    clients
        .s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(bytes.into())
        .send()
        .await
        .unwrap();
}
