//! Overload and slow peers: the server process under producers at full speed while
//! subscriptions read slowly or never and idle connections sit open. Checked:
//! - the server's resident memory levels off: no subscriber's backlog is kept in memory;
//! - its open file descriptors do not grow;
//! - the producers' p99 put latency stays within 2× (plus a small allowance for timer noise)
//!   of the same producers without the subscribers and the idle connections.
//!
//! CI runs a short version. The campaign (1,000 subscriptions, 16 producers, 100 idle
//! connections, 10 minutes) is `SHARDLOG_OVERLOAD_SECS=600 SHARDLOG_OVERLOAD_SUBSCRIPTIONS=1000
//! SHARDLOG_OVERLOAD_PRODUCERS=16 SHARDLOG_OVERLOAD_IDLE=100 cargo test --release --test
//! overload -- --nocapture`; RELIABILITY.md has its figures.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::ChildServer;
use shardlog::client::{Client, Position};
use shardlog::proto::v1 as pb;
use tokio::task::JoinSet;
use tonic::transport::Channel;

const STREAM: &str = "load";
const SHARDS: u32 = 4;
/// Records per put and bytes per record.
const BATCH: usize = 50;
const RECORD_BYTES: usize = 1024;
/// Subscriptions per connection.
const SUBSCRIPTIONS_PER_CONNECTION: usize = 100;
/// How often a slow subscriber takes one event.
const SLOW_READ_EVERY: Duration = Duration::from_secs(1);
/// Resident memory may grow by this much over the second half of the loaded run beyond its
/// first half's peak, and by this fraction.
const RSS_SLACK_BYTES: u64 = 32 << 20;
const RSS_SLACK_FRACTION: f64 = 0.25;
/// Descriptors the server may open beyond those it held once everything was connected.
const FD_SLACK: usize = 16;
/// Timer noise allowed on top of twice the unloaded p99.
const P99_ALLOWANCE: Duration = Duration::from_millis(5);

fn setting(name: &str, ci: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map_or(ci, |v| v.parse().unwrap_or_else(|_| panic!("{name}")))
}

/// One line of `/proc/PID/status`, in bytes.
fn status(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field}"));
    kib * 1024
}

/// Resident memory of `pid` that is not a mapped file (mapped segments come and go with the
/// page cache): heap and stacks, where a backlog would sit.
fn rss(pid: u32) -> u64 {
    status(pid, "RssAnon:")
}

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

fn p99(latencies: &mut [Duration]) -> Duration {
    latencies.sort_unstable();
    latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)]
}

/// `producers` producers putting as fast as they can for `run`; every put's latency.
async fn produce(url: &str, producers: u64, run: Duration) -> Vec<Duration> {
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = JoinSet::new();
    for p in 0..producers {
        let client = Client::connect(url.to_owned()).await.unwrap();
        let latencies = latencies.clone();
        tasks.spawn(async move {
            let data = Bytes::from(vec![b'x'; RECORD_BYTES]);
            let until = Instant::now() + run;
            let mut n = 0u64;
            while Instant::now() < until {
                let entries = (0..BATCH)
                    .map(|i| pb::PutRecordsRequestEntry {
                        partition_key: format!("p{p}-{}", n * BATCH as u64 + i as u64),
                        data: data.clone(),
                        ..Default::default()
                    })
                    .collect();
                let started = Instant::now();
                let answer = client.put_records(STREAM, entries).await.unwrap();
                let took = started.elapsed();
                assert_eq!(answer.failed_record_count, 0);
                latencies.lock().unwrap().push(took);
                n += 1;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let latencies = std::mem::take(&mut *latencies.lock().unwrap());
    latencies
}

// A child process and many clients: the runtime needs its threads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the overload campaign does not pass yet: see RELIABILITY.md, \"Overload\""]
async fn slow_and_idle_peers_grow_neither_memory_nor_descriptors_nor_put_latency() {
    let secs = setting("SHARDLOG_OVERLOAD_SECS", 16);
    let subscriptions = setting("SHARDLOG_OVERLOAD_SUBSCRIPTIONS", 200) as usize;
    let producers = setting("SHARDLOG_OVERLOAD_PRODUCERS", 4);
    let idle = setting("SHARDLOG_OVERLOAD_IDLE", 20) as usize;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    let server = ChildServer::spawn(&dir.path().join("data"), &log).await;
    let url = server.url();
    let pid = server.pid();
    let client = Client::connect(url.clone()).await.unwrap();
    client.create_stream(STREAM, SHARDS).await.unwrap();
    let shards: Vec<String> = client
        .list_shards(STREAM)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.shard_id)
        .collect();

    // The same producers alone, first.
    let baseline_run = Duration::from_secs((secs / 4).max(4));
    let mut alone = produce(&url, producers, baseline_run).await;
    let p99_alone = p99(&mut alone);

    // Idle connections, and subscriptions that never read or read one event a second.
    let mut idle_connections = Vec::new();
    for _ in 0..idle {
        idle_connections.push(
            Channel::from_shared(url.clone())
                .unwrap()
                .connect()
                .await
                .unwrap(),
        );
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mut never_reading = Vec::new();
    let mut slow = JoinSet::new();
    // Never-reading and slow subscriptions on connections of their own: a stream nobody reads
    // holds its connection's flow-control window on the client side, which would stall the
    // slow readers sharing it (a client's matter, not the server's).
    let (mut never_client, mut slow_client) = (client.clone(), client.clone());
    for i in 0..subscriptions {
        if i % (2 * SUBSCRIPTIONS_PER_CONNECTION) < 2 {
            if i % 2 == 0 {
                never_client = Client::connect(url.clone()).await.unwrap();
            } else {
                slow_client = Client::connect(url.clone()).await.unwrap();
            }
        }
        let client = if i % 2 == 0 {
            &never_client
        } else {
            &slow_client
        };
        let shard = &shards[i % shards.len()];
        let events = client
            .subscribe_to_shard(STREAM, shard, Position::TrimHorizon)
            .await
            .unwrap();
        if i % 2 == 0 {
            never_reading.push(events);
        } else {
            let stop = stop.clone();
            slow.spawn(async move {
                let mut events = events;
                let mut got = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    match tokio::time::timeout(SLOW_READ_EVERY * 10, events.message()).await {
                        Ok(Ok(Some(event))) => got += event.records.len() as u64,
                        other => panic!("a slow subscription ended or stalled: {other:?}"),
                    }
                    tokio::time::sleep(SLOW_READ_EVERY).await;
                }
                got
            });
        }
    }
    let fds_connected = fds(pid);

    // The loaded run, with the server's memory sampled every second.
    let samples = Arc::new(Mutex::new(Vec::new()));
    let sampler = {
        let samples = samples.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                samples.lock().unwrap().push((rss(pid), fds(pid)));
            }
        })
    };
    let mut loaded = produce(&url, producers, Duration::from_secs(secs)).await;
    let p99_loaded = p99(&mut loaded);
    stop.store(true, Ordering::Relaxed);
    sampler.await.unwrap();
    let mut delivered = 0;
    while let Some(got) = slow.join_next().await {
        delivered += got.unwrap();
    }
    let samples = std::mem::take(&mut *samples.lock().unwrap());
    let half = samples.len() / 2;
    let first_peak = samples[..half].iter().map(|s| s.0).max().unwrap();
    let second_peak = samples[half..].iter().map(|s| s.0).max().unwrap();
    let most_fds = samples.iter().map(|s| s.1).max().unwrap();
    println!(
        "overload: at the end, resident {} MiB of which mapped files {} MiB",
        status(pid, "VmRSS:") >> 20,
        status(pid, "RssFile:") >> 20
    );
    println!(
        "overload: {producers} producers, {subscriptions} subscriptions (half never reading, \
         half one event a second: {delivered} records), {idle} idle connections, {secs} s; \
         put p99 {p99_alone:?} alone, {p99_loaded:?} loaded; resident memory peak {} MiB in \
         the first half, {} MiB in the second; descriptors {fds_connected} connected, at most \
         {most_fds}; {} puts",
        first_peak >> 20,
        second_peak >> 20,
        loaded.len(),
    );
    assert!(
        second_peak as f64
            <= first_peak as f64 * (1.0 + RSS_SLACK_FRACTION) + RSS_SLACK_BYTES as f64,
        "resident memory kept growing: {} MiB, then {} MiB",
        first_peak >> 20,
        second_peak >> 20
    );
    assert!(
        most_fds <= fds_connected + FD_SLACK,
        "descriptors grew from {fds_connected} to {most_fds}"
    );
    assert!(
        p99_loaded <= p99_alone * 2 + P99_ALLOWANCE,
        "put p99 {p99_loaded:?} under slow and idle peers, {p99_alone:?} without"
    );
    drop(never_reading);
    drop(idle_connections);
}
