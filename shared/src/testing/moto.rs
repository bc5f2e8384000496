//! Shared setup: one moto server per test binary (`MOTO_ENDPOINT`, else one answering on
//! 127.0.0.1:5000, else a private `scripts/moto.sh serve` on a free port, stopped once the
//! test process is gone), clients, and uniquely named tables, queues and buckets per test.
//! The cli's local-stack tests use it too.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::aws::{AwsClients, AwsOptions};
use crate::dynamodb::Table;

const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:5000";

/// The moto endpoint for this test binary (started on first use if needed).
pub fn endpoint() -> &'static str {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT.get_or_init(|| {
        for var in ["MOTO_ENDPOINT", "AWS_ENDPOINT_URL"] {
            if let Ok(url) = std::env::var(var) {
                if !url.is_empty() {
                    return url;
                }
            }
        }
        if is_moto(DEFAULT_ENDPOINT.trim_start_matches("http://")) {
            return DEFAULT_ENDPOINT.to_owned();
        }
        start_private_moto()
    })
}

/// True when an HTTP server on `addr` answers moto's dashboard path.
fn is_moto(addr: &str) -> bool {
    let Ok(addr) = addr.parse::<SocketAddr>() else {
        return false;
    };
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(300)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /moto-api/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 16];
    let Ok(read) = stream.read(&mut head) else {
        return false;
    };
    let head = String::from_utf8_lossy(&head[..read]);
    head.starts_with("HTTP/1.") && head.contains(" 200")
}

/// Starts `scripts/moto.sh serve` (moto with requests serialised, see there)
/// on a free port under a watchdog shell that stops it once this test process
/// is gone (statics are never dropped, so no Drop could do it).
// The watchdog outlives this process by design (it only exits once we are
// gone), so there is nothing to wait for; init reaps it.
#[allow(clippy::zombie_processes)]
fn start_private_moto() -> String {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free local port")
        .port();
    let watchdog = r#"
        bash "$3" serve "$2" >/dev/null 2>&1 &
        moto=$!
        while kill -0 "$1" 2>/dev/null && kill -0 "$moto" 2>/dev/null; do sleep 1; done
        kill "$moto" 2>/dev/null
    "#;
    Command::new("bash")
        .arg("-c")
        .arg(watchdog)
        .arg("moto-watchdog")
        .arg(std::process::id().to_string())
        .arg(port.to_string())
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/moto.sh"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("bash to start moto_server");
    let addr = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if is_moto(&addr) {
            return format!("http://{addr}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!(
        "no moto server: set MOTO_ENDPOINT or run `scripts/moto.sh start` \
         (moto could not be started from scripts/moto.sh: is python3 with pip there?)"
    );
}

/// Options pointing at moto, with timeouts generous enough for a busy CI machine.
pub fn options() -> AwsOptions {
    AwsOptions {
        attempt_timeout: Duration::from_secs(20),
        operation_timeout: Duration::from_secs(60),
        ..AwsOptions::emulator(endpoint())
    }
}

/// Clients pointed at moto.
pub async fn clients() -> AwsClients {
    AwsClients::load(&options()).await
}

/// A name no other test uses (short: some become parts of S3 bucket names).
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// A fresh table shaped as the stores expect.
pub async fn table(clients: &AwsClients) -> Table {
    let name = unique("triggeriq");
    crate::dynamodb::create_table(&clients.dynamodb, &name)
        .await
        .expect("create table");
    Table::new(clients.dynamodb.clone(), name)
}

/// A fresh symmetric KMS key (what `SIGNING_KEY_ID` names); returns its id.
pub async fn kms_key(clients: &AwsClients) -> String {
    clients
        .kms
        .create_key()
        .description("triggeriq test: webhook signing secrets")
        .send()
        .await
        .expect("create key")
        .key_metadata()
        .expect("key metadata")
        .key_id()
        .to_owned()
}

/// The signing-secret store over a fresh KMS key, in `table`.
pub async fn secret_store(
    clients: &AwsClients,
    table: Table,
) -> crate::dynamodb::SigningSecretStore {
    let key = kms_key(clients).await;
    crate::dynamodb::SigningSecretStore::new(
        table,
        crate::kms::Sealer::new(clients.kms.clone(), key),
    )
}

/// A fresh standard queue; returns its URL.
pub async fn queue(clients: &AwsClients) -> String {
    clients
        .sqs
        .create_queue()
        .queue_name(unique("events"))
        .send()
        .await
        .expect("create queue")
        .queue_url()
        .expect("queue url")
        .to_owned()
}

/// A fresh bucket; returns its name.
pub async fn bucket(clients: &AwsClients) -> String {
    let name = unique("claims");
    clients
        .s3
        .create_bucket()
        .bucket(&name)
        .send()
        .await
        .expect("create bucket");
    name
}

/// Every message currently visible on `queue_url` (bodies with attributes),
/// polling until `expected` arrived or a few seconds passed.
pub async fn drain(
    clients: &AwsClients,
    queue_url: &str,
    expected: usize,
) -> Vec<aws_sdk_sqs::types::Message> {
    let mut received = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while received.len() < expected && Instant::now() < deadline {
        let output = clients
            .sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive");
        received.extend(output.messages().iter().cloned());
    }
    received
}
