//! Settings the server refuses at start-up, with a message that names the problem.

use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_metering-server");

/// Runs `metering-server serve` on a memory store with `args` and `env`; it must exit.
fn serve(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(BIN);
    command
        .args(["--store", "memory://", "--quota-cache", "memory://"])
        .args(["serve", "--bind", "127.0.0.1:0"])
        .args(args)
        .env_remove("METERING_CORS_ORIGINS")
        .env_remove("METERING_CORS_ALLOW_CREDENTIALS")
        .env("METERING_ADMIN_KEY", "mk_startup_test_admin_0123456789");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("run metering-server")
}

fn assert_refused(output: &Output, message: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "started: {stderr}");
    assert!(stderr.contains(message), "stderr: {stderr}");
    assert!(stderr.contains("--cors-origin"), "stderr: {stderr}");
}

#[test]
fn a_malformed_cors_origin_stops_start_up() {
    for origin in [
        "localhost:3000",
        "http://localhost:3000/",
        "ftp://files.example",
    ] {
        let output = serve(&["--cors-origin", origin], &[]);
        assert_refused(&output, "invalid CORS origin");
        assert!(String::from_utf8_lossy(&output.stderr).contains(origin));
    }
    let output = serve(
        &[],
        &[(
            "METERING_CORS_ORIGINS",
            "http://localhost:3000,localhost:5173",
        )],
    );
    assert_refused(&output, "invalid CORS origin \"localhost:5173\"");
}

#[test]
fn a_wildcard_origin_with_credentials_stops_start_up() {
    let output = serve(&["--cors-origin", "*", "--cors-allow-credentials"], &[]);
    assert_refused(&output, "cannot be combined with credentials");
}
