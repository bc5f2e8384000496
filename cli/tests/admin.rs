//! The CLI refuses bad input before it touches the database.

use std::process::Command;

fn triggeriq(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_triggeriq"))
        .args(args)
        // Nothing listens here: reaching the database would be a connection error instead.
        .env("DATABASE_URL", "postgres://nobody:nothing@127.0.0.1:1/none")
        .output()
        .expect("run triggeriq");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_chosen_api_key_must_look_like_a_tiq_key() {
    for bad in [
        "sk_live_123",
        "tiq_short",
        &format!("tiq_{}", "!".repeat(43)),
    ] {
        let (ok, stderr) = triggeriq(&["tenant", "create", "demo", "--api-key", bad]);
        assert!(!ok, "{bad} was accepted");
        assert!(
            stderr.contains("--api-key") && stderr.contains("tiq_"),
            "{stderr}"
        );
    }
}
