//! The Kinesis endpoint driven by real AWS SDKs: the boto3 suite (`tests/kinesis/boto3_suite.py`,
//! JSON over HTTP/1.1) and the AWS SDK for JavaScript v3 suite (`tests/kinesis/node/suite.mjs`,
//! every call over HTTP/2 cleartext, SubscribeToShard's event stream included), each run as a
//! child process against a server started in this process.
//!
//! They need `python3` with boto3 (`pip install boto3`) and `node` with the suite's packages
//! (`npm ci --prefix tests/kinesis/node`); a missing one fails the test and says so.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::TestServer;

/// How long one suite may run before it is killed and the test fails.
const SUITE_TIMEOUT: Duration = Duration::from_secs(120);

/// What a finished (or killed) child printed.
struct Outcome {
    status: Option<ExitStatus>,
    stdout: String,
    stderr: String,
}

impl Outcome {
    fn report(&self, what: &str) -> String {
        let ended = match self.status {
            Some(s) => format!("exited with {s}"),
            None => format!("was killed after {} s", SUITE_TIMEOUT.as_secs()),
        };
        format!(
            "{what} {ended}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout, self.stderr
        )
    }

    fn passed(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Reads a child's pipe to the end on a thread of its own, so a chatty child never blocks.
fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut out = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut out);
        }
        String::from_utf8_lossy(&out).into_owned()
    })
}

/// Runs `program args` in `dir`, killing it after [`SUITE_TIMEOUT`].
fn run_blocking(program: &str, args: &[String], dir: &Path) -> Outcome {
    let mut child = Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `{program}` (is it on PATH?): {e}"));
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let deadline = Instant::now() + SUITE_TIMEOUT;
    let status = loop {
        match child.try_wait().expect("wait for the suite") {
            Some(status) => break Some(status),
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    Outcome {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// Runs a suite against `server`'s Kinesis endpoint, off the runtime's worker threads (the
/// server runs on them).
async fn run_suite(program: &'static str, script: PathBuf, server: &TestServer) -> Outcome {
    let args = vec![script.to_string_lossy().into_owned(), server.kinesis_url()];
    let dir = manifest_dir();
    tokio::task::spawn_blocking(move || run_blocking(program, &args, &dir))
        .await
        .expect("the suite runner")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_suite_passes() {
    let server = TestServer::start().await;
    let script = manifest_dir().join("tests/kinesis/boto3_suite.py");
    let outcome = run_suite("python3", script, &server).await;
    server.stop().await;
    assert!(
        outcome.passed(),
        "{}",
        outcome.report("the boto3 suite (needs `pip install boto3`)")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_sdk_http2_suite_passes() {
    let suite_dir = manifest_dir().join("tests/kinesis/node");
    let sdk = suite_dir.join("node_modules/@aws-sdk/client-kinesis");
    let handler = suite_dir.join("node_modules/@smithy/node-http-handler");
    assert!(
        sdk.is_dir() && handler.is_dir(),
        "the Node suite's packages are not installed ({} missing): run \
         `npm ci --prefix tests/kinesis/node` first",
        if sdk.is_dir() { handler } else { sdk }.display()
    );
    let server = TestServer::start().await;
    let outcome = run_suite("node", suite_dir.join("suite.mjs"), &server).await;
    server.stop().await;
    assert!(
        outcome.passed(),
        "{}",
        outcome.report("the Node (HTTP/2) suite")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_signatures_verify_against_the_auth_file_and_grants_decide() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("auth.toml");
    std::fs::write(
        &file,
        r#"
[[principal]]
name = "admin"
access_keys = [{ id = "AKIDADMIN", secret = "admin-secret" }]
[[principal.allow]]
streams = "*"
actions = ["read", "write", "admin"]

[[principal]]
name = "reader"
access_keys = [{ id = "AKIDREADER", secret = "reader-secret" }]
[[principal.allow]]
streams = "auth-*"
actions = ["read"]
"#,
    )
    .unwrap();
    let auth = shardlog::auth::Auth::from_file(&file).unwrap();
    let config = shardlog::BrokerConfig::new(tmp.path().join("data"));
    let server = TestServer::start_with_auth(config, auth).await;
    let script = manifest_dir().join("tests/kinesis/boto3_auth.py");
    let outcome = run_suite("python3", script, &server).await;
    server.stop().await;
    assert!(
        outcome.passed(),
        "{}",
        outcome.report("the boto3 auth checks (needs `pip install boto3`)")
    );
}
