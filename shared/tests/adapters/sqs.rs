//! The SQS batch sender against moto.

use std::collections::HashMap;

use triggeriq::sqs::{CallFailure, OutgoingMessage, SendError, SqsSender};

use triggeriq::testing::moto as support;

fn body(i: usize) -> String {
    format!(r#"{{"id":"evt-{i}","type":"order.created"}}"#)
}

#[tokio::test]
async fn every_message_of_a_large_batch_arrives_once() {
    let clients = support::clients().await;
    let queue = support::queue(&clients).await;
    let sender = SqsSender::new(clients.sqs.clone());
    let messages: Vec<_> = (0..23)
        .map(|i| {
            OutgoingMessage::new(format!("evt-{i}"), body(i)).with_attribute("tenant_id", "t1")
        })
        .collect();

    let results = sender.send_batch(&queue, messages).await;
    assert_eq!(results.len(), 23);
    for (i, (id, result)) in results.iter().enumerate() {
        assert_eq!(id, &format!("evt-{i}"), "results keep input order");
        assert!(result.is_ok(), "{id}: {result:?}");
    }

    let received = support::drain(&clients, &queue, 23).await;
    let mut bodies: Vec<String> = received
        .iter()
        .map(|m| m.body().unwrap().to_owned())
        .collect();
    bodies.sort();
    let mut expected: Vec<String> = (0..23).map(body).collect();
    expected.sort();
    assert_eq!(bodies, expected);
    let attribute = received[0]
        .message_attributes()
        .unwrap()
        .get("tenant_id")
        .unwrap();
    assert_eq!(attribute.string_value(), Some("t1"));
    // Message ids reported as sent are the ones SQS delivered.
    let sent: std::collections::HashSet<&str> = results
        .iter()
        .map(|(_, r)| r.as_ref().unwrap().message_id.as_str())
        .collect();
    assert!(
        received
            .iter()
            .all(|m| sent.contains(m.message_id().unwrap()))
    );
}

#[tokio::test]
async fn repeated_caller_ids_are_sent_and_reported_separately() {
    let clients = support::clients().await;
    let queue = support::queue(&clients).await;
    let sender = SqsSender::new(clients.sqs.clone());
    let results = sender
        .send_batch(
            &queue,
            vec![
                OutgoingMessage::new("same", "{\"n\":1}"),
                OutgoingMessage::new("same", "{\"n\":2}"),
            ],
        )
        .await;
    assert!(
        results.iter().all(|(id, r)| id == "same" && r.is_ok()),
        "{results:?}"
    );
    assert_eq!(support::drain(&clients, &queue, 2).await.len(), 2);
}

#[tokio::test]
async fn invalid_messages_fail_alone_and_their_neighbours_are_sent() {
    let clients = support::clients().await;
    let queue = support::queue(&clients).await;
    let sender = SqsSender::new(clients.sqs.clone());
    let messages = vec![
        OutgoingMessage::new("ok-1", body(1)),
        OutgoingMessage::new("huge", "x".repeat(262_145)),
        OutgoingMessage::new("control", "bad \u{1} char"),
        OutgoingMessage::new("delay", body(2)).with_delay(901),
        OutgoingMessage::new("attr", body(3)).with_attribute("AWS.reserved", "x"),
        OutgoingMessage::new("ok-2", body(4)),
    ];
    let results: HashMap<String, Result<_, SendError>> = sender
        .send_batch(&queue, messages)
        .await
        .into_iter()
        .collect();
    assert!(results["ok-1"].is_ok());
    assert!(results["ok-2"].is_ok());
    assert!(matches!(
        results["huge"],
        Err(SendError::TooLarge {
            size: 262_145,
            limit: 262_144
        })
    ));
    for id in ["control", "delay", "attr"] {
        assert!(
            matches!(results[id], Err(SendError::Invalid { .. })),
            "{id}: {:?}",
            results[id]
        );
        assert!(!results[id].as_ref().unwrap_err().is_retryable());
    }
    assert_eq!(support::drain(&clients, &queue, 2).await.len(), 2);
}

#[tokio::test]
async fn batches_stay_under_the_byte_limit() {
    let clients = support::clients().await;
    let queue = support::queue(&clients).await;
    let sender = SqsSender::new(clients.sqs.clone());
    // Five 100 KB messages: at most two per 256 KiB batch (the faults tests check the split).
    let messages: Vec<_> = (0..5)
        .map(|i| OutgoingMessage::new(format!("big-{i}"), format!("\"{}\"", "y".repeat(100_000))))
        .collect();
    let results = sender.send_batch(&queue, messages).await;
    assert!(results.iter().all(|(_, r)| r.is_ok()), "{results:?}");
    assert_eq!(support::drain(&clients, &queue, 5).await.len(), 5);
}

#[tokio::test]
async fn a_missing_queue_fails_every_message_and_sends_none() {
    let clients = support::clients().await;
    let sender = SqsSender::new(clients.sqs.clone());
    let missing = format!(
        "{}/123456789012/{}",
        support::endpoint(),
        support::unique("missing")
    );
    let results = sender
        .send_batch(
            &missing,
            (0..12)
                .map(|i| OutgoingMessage::new(format!("m{i}"), body(i)))
                .collect(),
        )
        .await;
    assert_eq!(results.len(), 12);
    for (id, result) in results {
        match result {
            Err(SendError::CallFailed { kind, .. }) => {
                assert_eq!(kind, CallFailure::Service, "{id}")
            }
            other => panic!("{id}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn delayed_messages_are_not_visible_at_once() {
    let clients = support::clients().await;
    let queue = support::queue(&clients).await;
    let sender = SqsSender::new(clients.sqs.clone());
    sender
        .send_one(
            &queue,
            OutgoingMessage::new("later", body(1)).with_delay(30),
        )
        .await
        .unwrap();
    let now = clients
        .sqs
        .receive_message()
        .queue_url(&queue)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    assert!(
        now.messages().is_empty(),
        "a 30 s delayed message arrived at once"
    );
}
