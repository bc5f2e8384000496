//! The Runtime API stand-in against real `lambda_runtime` / `lambda_http` binaries (the hello
//! worlds of this crate, debug builds): one invocation completes, and a connection made before
//! the first request for work is reported.

use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::body::Bytes;
use coldstart::env::lambda_environment;
use coldstart::measure::{Launch, cold_start};
use coldstart::runtime_api::{Outcome, RuntimeApi, Trap};

fn work_dir(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("coldstart-{test}"));
    std::fs::create_dir_all(dir.join("home")).expect("creating the test's work dir");
    dir
}

fn launch(api: &RuntimeApi, trap: &Trap, program: PathBuf, event: &str, dir: &Path) -> Launch {
    Launch {
        name: "hello".to_owned(),
        env: lambda_environment(
            "hello",
            &api.address(),
            trap.port(),
            None,
            dir,
            &dir.join("home"),
        ),
        program,
        event: Bytes::from(event.to_owned()),
        log: dir.join("hello.log"),
    }
}

#[tokio::test(flavor = "current_thread")]
async fn hello_runtime_completes_one_invocation() {
    let api = RuntimeApi::start().await.expect("stand-in starts");
    let trap = Trap::start().await.expect("trap starts");
    let dir = work_dir("runtime");
    let run = launch(
        &api,
        &trap,
        PathBuf::from(env!("CARGO_BIN_EXE_hello-runtime")),
        r#"{"ping":42}"#,
        &dir,
    );
    let sample = cold_start(&api, &trap, &run, 1, Duration::from_secs(30))
        .await
        .expect("the run completes");
    assert!(sample.init.is_some(), "never asked for work: {sample:?}");
    assert!(sample.invoke.is_some(), "never answered: {sample:?}");
    // The hello world echoes its event, so this is the event the stand-in handed out.
    let Some(Outcome::Response { body }) = &sample.outcome else {
        panic!("expected a response, got {sample:?}");
    };
    let echoed: serde_json::Value = serde_json::from_str(body).expect("JSON response");
    assert_eq!(echoed, serde_json::json!({"ping": 42}));
    assert!(sample.peak_rss.is_some_and(|b| b > 0), "{sample:?}");
    assert_eq!(sample.trap_hits_during_init, 0);
    assert!(sample.sockets_at_first_next.is_empty(), "{sample:?}");
    assert!(
        sample.exited.is_none(),
        "the process must still be alive when measured"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn hello_http_answers_an_api_gateway_event() {
    let api = RuntimeApi::start().await.expect("stand-in starts");
    let trap = Trap::start().await.expect("trap starts");
    let dir = work_dir("http");
    let run = launch(
        &api,
        &trap,
        PathBuf::from(env!("CARGO_BIN_EXE_hello-http")),
        include_str!("../events/hello-http.json"),
        &dir,
    );
    let sample = cold_start(&api, &trap, &run, 1, Duration::from_secs(30))
        .await
        .expect("the run completes");
    let Some(Outcome::Response { body }) = &sample.outcome else {
        panic!("expected a response, got {sample:?}");
    };
    let response: serde_json::Value = serde_json::from_str(body).expect("JSON response");
    assert_eq!(response["statusCode"], 200, "{body}");
    assert_eq!(response["body"], "hello world", "{body}");
}

#[tokio::test(flavor = "current_thread")]
async fn a_connection_during_init_is_reported() {
    let api = RuntimeApi::start().await.expect("stand-in starts");
    let trap = Trap::start().await.expect("trap starts");
    let dir = work_dir("network");
    // A bootstrap that calls "its database" (the trap, as DB_PORT would be) before the runtime
    // loop starts, keeping the socket open, then becomes the hello world.
    let script = dir.join("bootstrap");
    std::fs::write(
        &script,
        format!(
            "#!/bin/bash\nexec 3<>/dev/tcp/127.0.0.1/{}\nexec {}\n",
            trap.port(),
            env!("CARGO_BIN_EXE_hello-runtime")
        ),
    )
    .expect("writing the script");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let run = launch(&api, &trap, script, "{}", &dir);
    let sample = cold_start(&api, &trap, &run, 1, Duration::from_secs(30))
        .await
        .expect("the run completes");
    assert!(
        matches!(sample.outcome, Some(Outcome::Response { .. })),
        "{sample:?}"
    );
    assert_eq!(sample.trap_hits_during_init, 1, "{sample:?}");
    assert_eq!(
        sample.sockets_at_first_next,
        vec![format!("tcp 127.0.0.1:{}", trap.port())],
        "{sample:?}"
    );
}
