//! Power cuts through the I/O seam: the server runs in this process over a `FaultyIo`, under
//! the crash campaign's workload (`common/campaign.rs`). At a random acknowledged count the
//! power goes: from that instant nothing reaches the disk. The server is stopped, the disk
//! keeps what was synced plus a random part of what was not (a torn write, sometimes with a
//! damaged byte), and a new server recovers the directory.
//! - `--fsync always`: every check of the crash loop, round after round on one directory.
//! - `interval` and `never`: acknowledged records may go, but only a tail of each shard, never a
//!   record before a stored one; with `interval`, only records acknowledged within the last
//!   interval (and a margin for a loaded machine). Each round a fresh directory.
//!
//! `SHARDLOG_POWER_ROUNDS` (default [`CI_ROUNDS`]) and `SHARDLOG_POWER_SEED` choose the
//! campaign. RELIABILITY.md has the command of the long campaign and its figures.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::campaign::{Campaign, Rng, Workload, STUCK};
use common::TestServer;
use shardlog::broker::BrokerConfig;
use shardlog::client::Client;
use shardlog::fsio::faulty::{FaultyIo, Loss};
use shardlog::storage::FsyncPolicy;

/// Rounds when `SHARDLOG_POWER_ROUNDS` is not set.
const CI_ROUNDS: u64 = 12;

/// The sync interval of the `interval` campaign.
const INTERVAL: Duration = Duration::from_millis(100);

/// What a loaded machine may add to the interval: the committer's timer firing late, the sync
/// itself taking long.
const INTERVAL_MARGIN: Duration = Duration::from_secs(2);

fn config(dir: &Path, policy: FsyncPolicy) -> BrokerConfig {
    let mut config = BrokerConfig::new(dir);
    config.commit.policy = policy;
    config
}

/// Cuts the power under a running server, stops it, and lets the disk lose what it may.
async fn cut(mut server: TestServer, io: &FaultyIo, rng: &mut Rng) -> Instant {
    io.cut_power();
    let at = Instant::now();
    // Its last syncs fail: it stops with that error, which is right.
    assert!(
        tokio::time::timeout(STUCK, server.stop_as_it_may())
            .await
            .is_ok(),
        "the server did not stop after the power cut"
    );
    io.power_loss(Loss::Torn { seed: rng.next() });
    at
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_cuts_with_fsync_always_lose_nothing_acknowledged() {
    let rounds = Campaign::rounds("SHARDLOG_POWER_ROUNDS", CI_ROUNDS);
    let seed = Campaign::seed("SHARDLOG_POWER_SEED");
    let mut campaign = Campaign::new(seed, Workload::Mixed);
    let mut cuts = Rng(!seed);
    let dir = tempfile::tempdir().unwrap();
    let io = FaultyIo::new();
    let start = || {
        TestServer::start_with_io(
            config(dir.path(), FsyncPolicy::Always),
            Arc::new(io.clone()),
        )
    };
    let mut server = start().await;
    campaign
        .set_up(&Client::connect(server.url()).await.unwrap())
        .await;
    for round in 0..rounds {
        let client = Client::connect(server.url()).await.unwrap();
        let mut running = campaign.start(&client, round).await;
        assert!(running.reach_kill_point().await, "round {round}: stuck");
        cut(server, &io, &mut cuts).await;
        assert!(running.drain().await, "round {round}: a workload task hung");
        server = start().await;
        let client = Client::connect(server.url()).await.unwrap();
        campaign.check(&client, round).await;
    }
    server.stop().await;
    println!("power loss, fsync always: {}", campaign.summary());
    assert!(campaign.acked() > 0, "the workload put nothing");
}

/// Rounds of one weaker policy, each on a fresh directory; the acknowledged and lost records.
async fn tail_losses(policy: FsyncPolicy, window: Option<Duration>) -> (u64, u64) {
    let rounds = Campaign::rounds("SHARDLOG_POWER_ROUNDS", CI_ROUNDS);
    let mut rng = Rng(Campaign::seed("SHARDLOG_POWER_SEED"));
    let (mut acked, mut lost) = (0, 0);
    for round in 0..rounds {
        let mut campaign = Campaign::new(rng.next(), Workload::Producers);
        let dir = tempfile::tempdir().unwrap();
        let io = FaultyIo::new();
        let start = || TestServer::start_with_io(config(dir.path(), policy), Arc::new(io.clone()));
        let server = start().await;
        let client = Client::connect(server.url()).await.unwrap();
        campaign.set_up(&client).await;
        let mut running = campaign.start(&client, round).await;
        assert!(running.reach_kill_point().await, "round {round}: stuck");
        let at = cut(server, &io, &mut rng).await;
        assert!(running.drain().await, "round {round}: a producer hung");
        let server = start().await;
        let client = Client::connect(server.url()).await.unwrap();
        let (a, l) = campaign.check_tail(&client, round, at, window).await;
        acked += a;
        lost += l;
        server.stop().await;
    }
    (acked, lost)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_cuts_with_fsync_interval_lose_only_the_last_interval_and_only_a_tail() {
    let (acked, lost) = tail_losses(
        FsyncPolicy::Interval(INTERVAL),
        Some(INTERVAL + INTERVAL_MARGIN),
    )
    .await;
    println!("power loss, fsync interval {INTERVAL:?}: {acked} acknowledged, {lost} lost, all in the last interval, none in the middle");
    assert!(acked > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_cuts_with_fsync_never_lose_only_a_tail() {
    let (acked, lost) = tail_losses(FsyncPolicy::Never, None).await;
    println!("power loss, fsync never: {acked} acknowledged, {lost} lost, none in the middle");
    assert!(acked > 0);
}
