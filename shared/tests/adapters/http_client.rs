//! triggeriq's own HTTPS client for the SDK (`triggeriq::sdk_http`), against local servers that
//! misbehave in the ways that matter: a certificate from an unknown root, a connection closed
//! before the answer, an answer that never comes. (Plain-http calls to moto are every other
//! test in this binary.)

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_sdk_sqs::error::SdkError;
use tokio::io::AsyncReadExt as _;
use tokio::net::TcpListener;
use triggeriq::aws::{AwsOptions, load_sdk_config};

use triggeriq::testing::tls_server::untrusted_tls_server;

/// An answer the SQS client accepts for ListQueues (JSON protocol).
const LIST_QUEUES_ANSWER: &[u8] =
    b"HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: 2\r\n\r\n{}";

/// What a test server does with each connection.
#[derive(Clone, Copy)]
enum Behaviour {
    /// Reads the request head and closes without a word.
    Hangs,
    /// Reads the request head and never answers.
    Stalls,
}

/// Counts connections and treats each as `behaviour` says.
async fn plain_server(behaviour: Behaviour) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let count = connections.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                if let Behaviour::Stalls = behaviour {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                }
                drop(socket);
            });
        }
    });
    (format!("http://{address}"), connections)
}

fn options(endpoint: String) -> AwsOptions {
    AwsOptions {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(1),
        attempt_timeout: Duration::from_secs(5),
        operation_timeout: Duration::from_secs(10),
        ..AwsOptions::emulator(endpoint)
    }
}

#[tokio::test]
async fn https_to_a_certificate_from_an_unknown_root_is_refused() {
    // A server that would answer ListQueues correctly, over TLS with a self-signed certificate.
    let (address, mut handshakes) = untrusted_tls_server(LIST_QUEUES_ANSWER).await;
    let sdk = load_sdk_config(&options(format!("https://{address}"))).await;
    let client = aws_sdk_sqs::Client::new(&sdk);

    let result = client.list_queues().send().await;

    let err = result.expect_err("a certificate from an unknown root must not be accepted");
    assert!(matches!(err, SdkError::DispatchFailure(_)), "{err:?}");
    let chain = format!("{err:?}");
    assert!(chain.contains("UnknownIssuer"), "{chain}");
    // The server saw a failed handshake: the client refused before sending anything.
    let first = handshakes.recv().await.expect("the client connected");
    assert!(first.is_err(), "the handshake succeeded");
}

#[tokio::test]
async fn a_connection_closed_before_the_answer_is_transient_and_retried() {
    let (endpoint, connections) = plain_server(Behaviour::Hangs).await;
    let client = aws_sdk_sqs::Client::new(&load_sdk_config(&options(endpoint)).await);

    let err = client.list_queues().send().await.expect_err("no answer");

    assert!(matches!(err, SdkError::DispatchFailure(_)), "{err:?}");
    // One connection per attempt: the error was classified as retryable.
    assert_eq!(connections.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn an_answer_that_never_comes_hits_the_read_timeout_and_is_retried() {
    let (endpoint, connections) = plain_server(Behaviour::Stalls).await;
    let sdk = load_sdk_config(&options(endpoint)).await;
    let config = aws_sdk_sqs::config::Builder::from(&sdk)
        .timeout_config(
            TimeoutConfig::builder()
                .read_timeout(Duration::from_millis(200))
                .build(),
        )
        .build();
    let client = aws_sdk_sqs::Client::from_conf(config);

    let err = client.list_queues().send().await.expect_err("no answer");

    let SdkError::DispatchFailure(failure) = &err else {
        panic!("{err:?}");
    };
    assert!(failure.is_timeout(), "{err:?}");
    assert_eq!(connections.load(Ordering::SeqCst), 3);
}
