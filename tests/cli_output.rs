//! The CLI as people script it: `--output json` answers, ISO 8601 times in tables, Kinesis's
//! default of 4 shards, and shell completions.

mod common;

use common::cli::shardlog;
use common::TestServer;
use serde_json::Value;

fn json(text: &str) -> Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

// The CLI runs as a child process while this test waits on it: the server needs threads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_output_iso_times_default_shards_and_completions() {
    let server = TestServer::start().await;
    // No --shards: four, as an on-demand Kinesis stream starts.
    let created = json(&shardlog(
        &server,
        &["stream", "create", "scripted", "--output", "json"],
    ));
    assert_eq!(
        created["shards"].as_array().map(Vec::len),
        Some(4),
        "{created}"
    );
    let created_at = created["created"].as_str().unwrap().to_owned();
    assert!(
        created_at.len() == 24 && created_at.ends_with('Z') && created_at.as_bytes()[10] == b'T',
        "{created_at}"
    );
    // The table says the same time.
    let table = shardlog(&server, &["stream", "describe", "scripted"]);
    assert!(
        table.contains(&format!("created    {created_at}")),
        "{table}"
    );

    let listed = json(&shardlog(&server, &["stream", "list", "--output", "json"]));
    assert_eq!(listed, serde_json::json!(["scripted"]));

    let put = json(&shardlog(
        &server,
        &[
            "put",
            "scripted",
            "--partition-key",
            "k",
            "--output",
            "json",
            "{\"n\": 1}",
        ],
    ));
    let shard = put["shard_id"].as_str().unwrap().to_owned();
    assert_eq!(put["duplicate"], false);
    let got = shardlog(
        &server,
        &["get", "scripted", "--shard", &shard, "--output", "json"],
    );
    let records: Vec<Value> = got.lines().map(json).collect();
    assert_eq!(records.len(), 1, "{got}");
    assert_eq!(records[0]["data"], "{\"n\": 1}");
    assert_eq!(records[0]["partition_key"], "k");
    assert_eq!(records[0]["sequence_number"], put["sequence_number"]);

    let deleted = json(&shardlog(
        &server,
        &["stream", "delete", "scripted", "--output", "json"],
    ));
    assert_eq!(deleted["done"], "deleted stream scripted");

    let script = std::process::Command::new(env!("CARGO_BIN_EXE_shardlog"))
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(script.status.success());
    let script = String::from_utf8(script.stdout).unwrap();
    assert!(
        script.contains("_shardlog") && script.contains("--output"),
        "{script}"
    );
    server.stop().await;
}
