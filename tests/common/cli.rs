//! The `shardlog` binary run against a test server, as people script it.

use std::process::{Command, Output};

use super::TestServer;

/// Runs `shardlog ARGS --server URL` and returns what it did, whether it succeeded or not.
pub fn run(server: &TestServer, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shardlog"))
        .args(args)
        .arg("--server")
        .arg(server.url())
        .output()
        .expect("run the shardlog binary")
}

/// Runs `shardlog ARGS --server URL` and returns its standard output; fails the test when the
/// command fails.
pub fn shardlog(server: &TestServer, args: &[&str]) -> String {
    let out = run(server, args);
    assert!(
        out.status.success(),
        "shardlog {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}
