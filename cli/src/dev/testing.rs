//! Test support: one moto server per test binary (`MOTO_ENDPOINT`, else one answering on
//! 127.0.0.1:5000, else a private `scripts/moto.sh serve` on a free port, stopped once the
//! test process is gone).

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use triggeriq::aws::{AwsClients, AwsOptions};

/// The moto endpoint for this test binary.
pub fn endpoint() -> &'static str {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT.get_or_init(|| {
        if let Ok(url) = std::env::var("MOTO_ENDPOINT")
            && !url.is_empty()
        {
            return url;
        }
        if is_moto("127.0.0.1:5000") {
            return "http://127.0.0.1:5000".to_owned();
        }
        start_private_moto()
    })
}

/// True when `addr` answers moto's dashboard path.
pub fn is_moto(addr: &str) -> bool {
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

// The watchdog outlives this process by design (it exits once we are gone); init reaps it.
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
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    // The project's virtualenv has moto when `make setup` ran.
    let path = format!(
        "{root}/.venv/bin:{}",
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new("bash")
        .arg("-c")
        .arg(watchdog)
        .arg("moto-watchdog")
        .arg(std::process::id().to_string())
        .arg(port.to_string())
        .arg(format!("{root}/scripts/moto.sh"))
        .env("PATH", path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("bash to start moto");
    let addr = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if is_moto(&addr) {
            return format!("http://{addr}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("no moto server: set MOTO_ENDPOINT or run `scripts/moto.sh start` (or `make setup`)");
}

/// Clients pointed at moto, with timeouts generous enough for a busy machine.
pub async fn clients() -> AwsClients {
    AwsClients::load(&AwsOptions {
        attempt_timeout: Duration::from_secs(20),
        operation_timeout: Duration::from_secs(60),
        ..AwsOptions::emulator(endpoint())
    })
    .await
}

/// A name no other test uses.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}
