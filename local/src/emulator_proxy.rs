//! A pass-through in front of the AWS emulator for the functions, which tells the SQS pollers
//! when a message was sent to their queue.
//!
//! Lambda's pollers long-poll SQS, so a message is picked up as soon as it is sent. The local
//! moto serialises requests (see scripts/moto.sh), so a long poll there would hold every other
//! call up, and polling often enough to be quick would keep moto busy with empty receives. So
//! the functions talk to moto through this proxy; when it forwards a successful
//! `SendMessage`, `SendMessageBatch` or `ChangeMessageVisibility(Batch)`, it bumps that queue's
//! counter, and the queue's pollers receive at once. Otherwise they poll slowly, which is
//! enough for delayed messages and expired visibility timeouts.
//!
//! Requests and responses pass unchanged (SigV4 signatures are not checked by moto).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use http::{HeaderMap, HeaderValue, StatusCode};
use tokio::sync::watch;

/// Hop-by-hop headers, which a proxy must not forward.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
];

/// Per queue name, a counter of sends; pollers watch it.
#[derive(Clone, Default)]
pub struct Wakers {
    queues: Arc<Mutex<HashMap<String, watch::Sender<u64>>>>,
}

impl Wakers {
    /// A receiver that changes whenever a message is sent to the queue named `queue`.
    pub fn subscribe(&self, queue: &str) -> watch::Receiver<u64> {
        let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        queues
            .entry(queue.to_owned())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    /// Tells the pollers of `queue` that it has news.
    pub fn wake(&self, queue: &str) {
        let queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(sender) = queues.get(queue) {
            sender.send_modify(|n| *n = n.wrapping_add(1));
        }
    }
}

/// The proxy's state.
pub struct EmulatorProxy {
    pub upstream: String,
    pub client: reqwest::Client,
    pub wakers: Wakers,
}

impl EmulatorProxy {
    /// A proxy to `upstream` (`http://127.0.0.1:5000`).
    pub fn new(upstream: &str, wakers: Wakers) -> anyhow::Result<Self> {
        Ok(Self {
            upstream: upstream.trim_end_matches('/').to_owned(),
            client: reqwest::Client::builder().no_proxy().build()?,
            wakers,
        })
    }

    /// The axum router forwarding every request.
    pub fn router(self) -> axum::Router {
        axum::Router::new()
            .fallback(forward)
            .with_state(Arc::new(self))
    }
}

/// The queue a request puts messages into (or makes visible), by name, if it is one of those.
pub fn woken_queue(headers: &HeaderMap, body: &[u8]) -> Option<String> {
    const WAKING: [&str; 4] = [
        "SendMessage",
        "SendMessageBatch",
        "ChangeMessageVisibility",
        "ChangeMessageVisibilityBatch",
    ];
    // The JSON protocol (current SDKs): `X-Amz-Target: AmazonSQS.<Action>`, QueueUrl in the body.
    if let Some(target) = headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
        let action = target.strip_prefix("AmazonSQS.")?;
        if !WAKING.contains(&action) {
            return None;
        }
        let json: serde_json::Value = serde_json::from_slice(body).ok()?;
        return queue_name(json.get("QueueUrl")?.as_str()?);
    }
    // The query protocol (older SDKs): a form with Action and QueueUrl.
    let form = url::form_urlencoded::parse(body);
    let mut action = None;
    let mut queue = None;
    for (k, v) in form {
        match k.as_ref() {
            "Action" => action = Some(v.into_owned()),
            "QueueUrl" => queue = Some(v.into_owned()),
            _ => {}
        }
    }
    WAKING
        .contains(&action?.as_str())
        .then(|| queue.as_deref().and_then(queue_name))
        .flatten()
}

fn queue_name(url: &str) -> Option<String> {
    url.trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

async fn forward(
    State(proxy): State<Arc<EmulatorProxy>>,
    request: axum::extract::Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 256 * 1024 * 1024).await else {
        return status(StatusCode::PAYLOAD_TOO_LARGE);
    };
    let woken = woken_queue(&parts.headers, &body);
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut headers = parts.headers.clone();
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    let upstream = proxy
        .client
        .request(parts.method, format!("{}{path}", proxy.upstream))
        .headers(headers)
        .body(body)
        .send()
        .await;
    let upstream = match upstream {
        Ok(r) => r,
        Err(_) => return status(StatusCode::BAD_GATEWAY),
    };
    let code = upstream.status();
    let mut headers = upstream.headers().clone();
    for name in HOP_BY_HOP.iter().chain(["content-length"].iter()) {
        headers.remove(*name);
    }
    let Ok(bytes) = upstream.bytes().await else {
        return status(StatusCode::BAD_GATEWAY);
    };
    if code.is_success()
        && let Some(queue) = woken
    {
        proxy.wakers.wake(&queue);
    }
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = code;
    *response.headers_mut() = headers;
    response
}

fn status(code: StatusCode) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = code;
    response
        .headers_mut()
        .insert(http::header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    response
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::testing;

    #[test]
    fn sends_name_their_queue_in_both_protocols() {
        let mut json = HeaderMap::new();
        json.insert(
            "x-amz-target",
            HeaderValue::from_static("AmazonSQS.SendMessageBatch"),
        );
        assert_eq!(
            woken_queue(
                &json,
                br#"{"QueueUrl":"http://h:5000/123456789012/events","Entries":[]}"#
            ),
            Some("events".into())
        );
        json.insert(
            "x-amz-target",
            HeaderValue::from_static("AmazonSQS.ReceiveMessage"),
        );
        assert_eq!(
            woken_queue(&json, br#"{"QueueUrl":"http://h/1/events"}"#),
            None
        );
        let form = b"Action=SendMessage&QueueUrl=http%3A%2F%2Fh%2F1%2Fdeliveries&MessageBody=x";
        assert_eq!(
            woken_queue(&HeaderMap::new(), form),
            Some("deliveries".into())
        );
        assert_eq!(woken_queue(&HeaderMap::new(), b"Action=ListQueues"), None);
    }

    /// The SDK works through the proxy, and a send wakes the queue's subscribers.
    #[tokio::test]
    async fn the_sdk_works_through_the_proxy_and_sends_wake_their_queue() {
        let wakers = Wakers::default();
        let proxy = EmulatorProxy::new(testing::endpoint(), wakers.clone()).expect("proxy");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, proxy.router()).await });
        let clients = triggeriq::aws::AwsClients::load(&triggeriq::aws::AwsOptions::emulator(
            format!("http://{addr}"),
        ))
        .await;

        let name = testing::unique("woken");
        let url = clients
            .sqs
            .create_queue()
            .queue_name(&name)
            .send()
            .await
            .expect("create through the proxy")
            .queue_url
            .expect("url");
        let mut woken = wakers.subscribe(&name);
        woken.borrow_and_update();
        clients
            .sqs
            .send_message()
            .queue_url(&url)
            .message_body("hi")
            .send()
            .await
            .expect("send");
        tokio::time::timeout(Duration::from_secs(5), woken.changed())
            .await
            .expect("woken in time")
            .expect("sender alive");
        let got = clients
            .sqs
            .receive_message()
            .queue_url(&url)
            .send()
            .await
            .expect("receive through the proxy");
        assert_eq!(got.messages().len(), 1);

        // Other services pass through too.
        let table = testing::unique("proxied");
        triggeriq::dynamodb::create_table(&clients.dynamodb, &table)
            .await
            .expect("DynamoDB through the proxy");
    }
}
