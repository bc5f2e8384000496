//! The demo webhook receiver: `POST /hooks/{tenant_id}` verifies the Standard Webhooks
//! signature with the tenant's signing secrets (read from the stack's DynamoDB table, current
//! and previous ones, so it keeps verifying across a rotation), prints the delivery, and
//! answers 204 — or 401 for a bad signature, 400 when it cannot tell.
//!
//! Verification uses the `standardwebhooks` crate, not TriggerIQ's signing code, so the demo
//! also shows that any Standard Webhooks receiver accepts what TriggerIQ sends.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use bytes::Bytes;
use triggeriq::dynamodb::{SigningSecretStore, Table};
use triggeriq::kms::Sealer;

use crate::log::{self, Kind, Outcome};

/// The receiver's state: where the secrets are.
pub struct Receiver {
    pub secrets: SigningSecretStore,
}

impl Receiver {
    /// Reads secrets from `table`, opening them with the KMS key `signing_key`.
    pub fn new(clients: &triggeriq::aws::AwsClients, table: &str, signing_key: &str) -> Self {
        Self {
            secrets: SigningSecretStore::new(
                Table::new(clients.dynamodb.clone(), table),
                Sealer::new(clients.kms.clone(), signing_key),
            ),
        }
    }

    /// The receiver's routes.
    pub fn router(self) -> axum::Router {
        axum::Router::new()
            .route("/hooks/{tenant}", post(receive))
            .route("/hooks/{tenant}/{*rest}", post(receive_nested))
            .with_state(Arc::new(self))
    }
}

async fn receive_nested(
    state: State<Arc<Receiver>>,
    Path((tenant, _)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    receive(state, Path(tenant), headers, body).await
}

/// Why a delivery was not accepted.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Verified,
    BadSignature(String),
    CannotVerify(String),
}

impl Receiver {
    /// Checks one delivery against the tenant's active secrets.
    pub async fn verify(&self, tenant: &str, headers: &HeaderMap, body: &[u8]) -> Verdict {
        let Ok(tenant) = triggeriq::tenant::TenantId::parse(tenant) else {
            return Verdict::CannotVerify(format!("{tenant:?} is not a tenant id"));
        };
        let secrets = match self.secrets.get(tenant).await {
            Ok(Some(s)) => s.active(chrono::Utc::now()),
            Ok(None) => {
                return Verdict::CannotVerify(format!("tenant {tenant} has no signing secret yet"));
            }
            Err(e) => return Verdict::CannotVerify(format!("reading the signing secrets: {e}")),
        };
        let mut last = String::from("no secret");
        for secret in &secrets {
            let hook = match standardwebhooks::Webhook::new(secret.expose()) {
                Ok(h) => h,
                Err(e) => {
                    return Verdict::CannotVerify(format!("a stored secret is unusable: {e}"));
                }
            };
            match hook.verify(body, headers) {
                Ok(()) => return Verdict::Verified,
                Err(e) => last = e.to_string(),
            }
        }
        Verdict::BadSignature(last)
    }
}

async fn receive(
    State(receiver): State<Arc<Receiver>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let started = Instant::now();
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("(no webhook-id)")
        .to_owned();
    let verdict = receiver.verify(&tenant, &headers, &body).await;
    let summary = summarize(&body);
    match verdict {
        Verdict::Verified => {
            log::line(
                Kind::Webhook,
                Outcome::Ok,
                &format!("✓ signature verified  {id}  tenant {tenant}  {summary}"),
                Some(started.elapsed()),
            );
            print_body(&body);
            (StatusCode::NO_CONTENT, String::new())
        }
        Verdict::BadSignature(why) => {
            log::line(
                Kind::Webhook,
                Outcome::Fail,
                &format!("✗ bad signature ({why})  {id}  tenant {tenant}  {summary} → 401"),
                Some(started.elapsed()),
            );
            (StatusCode::UNAUTHORIZED, format!("bad signature: {why}\n"))
        }
        Verdict::CannotVerify(why) => {
            log::line(
                Kind::Webhook,
                Outcome::Warn,
                &format!("? cannot verify ({why})  {id}  {summary} → 400"),
                Some(started.elapsed()),
            );
            (StatusCode::BAD_REQUEST, format!("cannot verify: {why}\n"))
        }
    }
}

/// `type` and size of a delivery, for the log line.
fn summarize(body: &[u8]) -> String {
    let kind = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get("type")
                .or_else(|| v.pointer("/event/type"))
                .and_then(|t| t.as_str().map(str::to_owned))
        })
        .map(|t| format!("type {t}, "))
        .unwrap_or_default();
    format!("({kind}{} bytes)", body.len())
}

/// The delivery's JSON, indented under its log line (at most 40 lines).
fn print_body(body: &[u8]) {
    let text = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    let lines: Vec<&str> = text.lines().collect();
    for line in lines.iter().take(40) {
        println!("             │ {line}");
    }
    if lines.len() > 40 {
        println!("             │ … {} more lines", lines.len() - 40);
    }
}

#[cfg(test)]
mod tests {
    use triggeriq::webhook::sign;

    use super::*;
    use crate::testing;

    #[tokio::test]
    async fn signed_deliveries_are_accepted_and_forged_ones_refused() {
        let clients = testing::clients().await;
        let table = testing::unique("receiver");
        triggeriq::dynamodb::create_table(&clients.dynamodb, &table)
            .await
            .expect("table");
        let key = triggeriq::testing::moto::kms_key(&clients).await;
        let receiver = Receiver::new(&clients, &table, &key);
        let tenant_id = triggeriq::tenant::TenantId::new();
        let tenant = tenant_id.to_string();
        let now = chrono::Utc::now();
        let secrets = receiver
            .secrets
            .get_or_create(tenant_id, now)
            .await
            .expect("a first secret")
            .active(now);

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, receiver.router()).await });
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        let post = |tenant: String, body: &'static str, signature: String| {
            client
                .post(format!("http://{addr}/hooks/{tenant}"))
                .header("webhook-id", "msg_1")
                .header("webhook-timestamp", now.timestamp().to_string())
                .header("webhook-signature", signature)
                .body(body)
                .send()
        };
        let body = r#"{"type":"payment.failed"}"#;
        let signature = sign("msg_1", now.timestamp(), body.as_bytes(), &secrets).expect("signed");
        let ok = post(tenant.clone(), body, signature.clone())
            .await
            .expect("answer");
        assert_eq!(ok.status(), 204);
        let forged = post(
            tenant.clone(),
            r#"{"type":"payment.ok"}"#,
            signature.clone(),
        )
        .await
        .expect("answer");
        assert_eq!(forged.status(), 401);
        let stranger = post(uuid::Uuid::new_v4().to_string(), body, signature)
            .await
            .expect("answer");
        assert_eq!(stranger.status(), 400);
    }
}
