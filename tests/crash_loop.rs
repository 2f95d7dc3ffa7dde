//! The crash loop: the real server as a child process under a mixed workload over gRPC, killed
//! with SIGKILL at a random moment and restarted, round after round, every promise checked
//! after every restart (`common/campaign.rs` lists them).
//!
//! `SHARDLOG_CRASH_ROUNDS` (default [`CI_ROUNDS`]) and `SHARDLOG_CRASH_SEED` (default: from the
//! clock) choose the campaign; the test prints its figures at the end. RELIABILITY.md has the
//! command of the long campaign and its figures.

mod common;

use common::campaign::{Campaign, Workload};
use common::ChildServer;
use shardlog::client::Client;

/// Rounds when `SHARDLOG_CRASH_ROUNDS` is not set: a loop short enough for every test run.
const CI_ROUNDS: u64 = 12;

// A child process, and a runtime that waits on it while the workload runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_promise_holds_across_sigkill_under_mixed_load() {
    let rounds = Campaign::rounds("SHARDLOG_CRASH_ROUNDS", CI_ROUNDS);
    let mut campaign = Campaign::new(Campaign::seed("SHARDLOG_CRASH_SEED"), Workload::Mixed);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("server.log");

    let mut server = ChildServer::spawn(&data, &log).await;
    campaign
        .set_up(&Client::connect(server.url()).await.unwrap())
        .await;
    for round in 0..rounds {
        let client = Client::connect(server.url()).await.unwrap();
        let mut running = campaign.start(&client, round).await;
        assert!(
            running.reach_kill_point().await,
            "round {round}: the workload did not reach {} acknowledged records; the server's \
             output:\n{}",
            running.kill_at,
            server.output()
        );
        server.kill_9();
        assert!(running.drain().await, "round {round}: a workload task hung");
        server = ChildServer::spawn(&data, &log).await;
        let client = Client::connect(server.url()).await.unwrap();
        campaign.check(&client, round).await;
    }
    println!("crash loop: {}", campaign.summary());
    assert!(campaign.acked() > 0, "the workload put nothing");
}
