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
/// Never-reading subscriptions per connection.
const SUBSCRIPTIONS_PER_CONNECTION: usize = 100;
/// How fast a slow subscriber takes what it is sent: after each event, it waits as long as
/// taking its bytes at this rate would.
const SLOW_READ_BYTES_PER_SEC: u64 = 64 * 1024;
/// Longest a slow subscriber waits for its next event before the test calls it stalled.
const STALLED: Duration = Duration::from_secs(30);
/// Resident memory may grow by this much over the second half of the loaded run beyond its
/// first half's peak, and by this fraction.
const RSS_SLACK_BYTES: u64 = 32 << 20;
const RSS_SLACK_FRACTION: f64 = 0.25;
/// What one subscription may cost the server at most: its buffer (`subscribe_buffer_bytes`),
/// one event's encoding waiting for the HTTP/2 connection, the encoder's buffer it was made
/// in, and room for the allocator.
const SUBSCRIPTION_BYTES: u64 = (shardlog::broker::DEFAULT_SUBSCRIBE_BUFFER_BYTES
    + 2 * shardlog::broker::DEFAULT_SUBSCRIBE_EVENT_BYTES
    + 512 * 1024) as u64;
/// Descriptors the server may open beyond those it held once everything was connected.
const FD_SLACK: usize = 16;
/// Each shard keeps this much log (the producers write far more): the segments, and the
/// descriptors open on them, are bounded by retention, not by the run's length.
const SHARD_RETENTION: &str = "134217728";
const SEGMENT_BYTES: &str = "33554432";
/// Segments a retention pass may find over the limit at once (written since the last pass).
const SEGMENTS_BETWEEN_PASSES: usize = 8;
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

/// The server's open descriptors, by what they are open on.
#[derive(Debug, Clone, Copy, Default)]
struct Descriptors {
    /// Files in the data directory: segments, their indexes, the metadata journal.
    data: usize,
    /// Files of the data directory already deleted (retention): held open, they would leak.
    deleted: usize,
    /// Everything else: sockets, pipes, the runtime's own.
    other: usize,
}

fn descriptors(pid: u32, data_dir: &std::path::Path) -> Descriptors {
    let mut d = Descriptors::default();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap() {
        // A descriptor closed since the listing has no target any more.
        let Ok(target) = std::fs::read_link(fd.unwrap().path()) else {
            continue;
        };
        let target = target.to_string_lossy();
        if !target.starts_with(&*data_dir.to_string_lossy()) {
            d.other += 1;
        } else if target.ends_with(" (deleted)") {
            d.deleted += 1;
        } else {
            d.data += 1;
        }
    }
    d
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

/// Runs `work`, sampling the server's resident memory and descriptors every second meanwhile.
async fn sampled<T>(
    pid: u32,
    data_dir: &std::path::Path,
    work: impl std::future::Future<Output = T>,
) -> (T, Vec<(u64, Descriptors)>) {
    let mut samples = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut work = std::pin::pin!(work);
    loop {
        tokio::select! {
            done = &mut work => return (done, samples),
            _ = tick.tick() => samples.push((rss(pid), descriptors(pid, data_dir))),
        }
    }
}

// A child process and many clients: the runtime needs its threads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_peers_grow_neither_memory_nor_descriptors_nor_put_latency() {
    let secs = setting("SHARDLOG_OVERLOAD_SECS", 16);
    let subscriptions = setting("SHARDLOG_OVERLOAD_SUBSCRIPTIONS", 200) as usize;
    let producers = setting("SHARDLOG_OVERLOAD_PRODUCERS", 4);
    let idle = setting("SHARDLOG_OVERLOAD_IDLE", 20) as usize;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    let data_dir = dir.path().join("data");
    let settings = [
        ("SHARDLOG_SHARD_RETENTION_BYTES", SHARD_RETENTION),
        ("SHARDLOG_SEGMENT_MAX_BYTES", SEGMENT_BYTES),
        ("SHARDLOG_RETENTION_CHECK_INTERVAL_SECS", "1"),
    ];
    let server = ChildServer::spawn_with_env(&data_dir, &log, &settings).await;
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
    let (mut alone, alone_samples) =
        sampled(pid, &data_dir, produce(&url, producers, baseline_run)).await;
    let p99_alone = p99(&mut alone);
    // What the producers alone make the server hold (its commit rounds, their requests).
    let rss_alone = alone_samples.iter().map(|s| s.0).max().unwrap();

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
    let (stop, _) = tokio::sync::watch::channel(false);
    let mut never_reading = Vec::new();
    let mut slow = JoinSet::new();
    // Never-reading subscriptions share connections; each slow one has its own, as a slow
    // consumer process would. On a shared connection, what one subscriber leaves unread holds
    // the connection's flow-control window on the client side and starves the others (a
    // client's matter, not the server's).
    let mut never_client = client.clone();
    for i in 0..subscriptions {
        if i % (2 * SUBSCRIPTIONS_PER_CONNECTION) == 0 {
            never_client = Client::connect(url.clone()).await.unwrap();
        }
        let slow_client;
        let client = if i % 2 == 0 {
            &never_client
        } else {
            slow_client = Client::connect(url.clone()).await.unwrap();
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
            let mut stop = stop.subscribe();
            slow.spawn(async move {
                let mut events = events;
                let (mut records, mut bytes) = (0u64, 0u64);
                loop {
                    let event = tokio::select! {
                        event = tokio::time::timeout(STALLED, events.message()) => event,
                        _ = stop.changed() => break,
                    };
                    let taken = match event {
                        Ok(Ok(Some(event))) => event
                            .records
                            .iter()
                            .map(|r| r.data.len() as u64)
                            .sum::<u64>(),
                        other => panic!("a slow subscription ended or stalled: {other:?}"),
                    };
                    bytes += taken;
                    records += taken / RECORD_BYTES as u64;
                    let pace =
                        Duration::from_secs_f64(taken as f64 / SLOW_READ_BYTES_PER_SEC as f64);
                    tokio::select! {
                        () = tokio::time::sleep(pace) => {}
                        _ = stop.changed() => break,
                    }
                }
                (records, bytes)
            });
        }
    }
    let fds_connected = descriptors(pid, &data_dir).other;

    // The loaded run, with the server's memory sampled every second.
    let (mut loaded, samples) = sampled(
        pid,
        &data_dir,
        produce(&url, producers, Duration::from_secs(secs)),
    )
    .await;
    let p99_loaded = p99(&mut loaded);
    stop.send_replace(true);
    let (mut delivered, mut delivered_bytes) = (0, 0);
    while let Some(got) = slow.join_next().await {
        let (records, bytes) = got.unwrap();
        delivered += records;
        delivered_bytes += bytes;
    }
    if std::env::var_os("SHARDLOG_OVERLOAD_SAMPLES").is_some() {
        for (i, (rss, d)) in samples.iter().enumerate() {
            println!("overload: {i:>4} s  resident {:>5} MiB  {d:?}", rss >> 20);
        }
    }
    let half = samples.len() / 2;
    let first_peak = samples[..half].iter().map(|s| s.0).max().unwrap();
    let second_peak = samples[half..].iter().map(|s| s.0).max().unwrap();
    let most_fds = samples.iter().map(|s| s.1.other).max().unwrap();
    let most_deleted = samples.iter().map(|s| s.1.deleted).max().unwrap();
    let data_fds = |samples: &[(u64, Descriptors)]| samples.iter().map(|s| s.1.data).max().unwrap();
    let (first_data_fds, second_data_fds) =
        (data_fds(&samples[..half]), data_fds(&samples[half..]));
    let per_subscription =
        first_peak.max(second_peak).saturating_sub(rss_alone) / subscriptions.max(1) as u64;
    println!(
        "overload: at the end, resident {} MiB of which mapped files {} MiB",
        status(pid, "VmRSS:") >> 20,
        status(pid, "RssFile:") >> 20
    );
    println!(
        "overload: {producers} producers, {subscriptions} subscriptions (half never reading, \
         half taking {} KiB/s: {delivered} records, {} KiB/s together), {idle} idle \
         connections, {secs} s; put p99 {p99_alone:?} alone ({} puts), {p99_loaded:?} loaded \
         ({} puts); resident memory {} MiB alone, peak {} MiB in the first half, {} MiB in the \
         second ({} KiB a subscription); descriptors other than data files {fds_connected} \
         connected, at most {most_fds}; on data files at most {first_data_fds} in the first \
         half, {second_data_fds} in the second, at most {most_deleted} on deleted files",
        SLOW_READ_BYTES_PER_SEC >> 10,
        (delivered_bytes / secs) >> 10,
        alone.len(),
        loaded.len(),
        rss_alone >> 20,
        first_peak >> 20,
        second_peak >> 20,
        per_subscription >> 10,
    );
    assert!(
        second_peak as f64
            <= first_peak as f64 * (1.0 + RSS_SLACK_FRACTION) + RSS_SLACK_BYTES as f64,
        "resident memory kept growing: {} MiB, then {} MiB",
        first_peak >> 20,
        second_peak >> 20
    );
    assert!(
        per_subscription <= SUBSCRIPTION_BYTES,
        "each subscription costs the server {} KiB, more than what its buffer and one event in \
         flight hold ({} KiB)",
        per_subscription >> 10,
        SUBSCRIPTION_BYTES >> 10
    );
    assert!(
        most_fds <= fds_connected + FD_SLACK,
        "descriptors grew from {fds_connected} to {most_fds}"
    );
    assert!(
        second_data_fds <= first_data_fds + 3 * SHARDS as usize * SEGMENTS_BETWEEN_PASSES,
        "descriptors on data files kept growing: {first_data_fds}, then {second_data_fds}"
    );
    assert!(
        most_deleted <= 3 * SHARDS as usize * SEGMENTS_BETWEEN_PASSES,
        "{most_deleted} descriptors held on deleted segments"
    );
    assert!(
        p99_loaded <= p99_alone * 2 + P99_ALLOWANCE,
        "put p99 {p99_loaded:?} under slow and idle peers, {p99_alone:?} without"
    );
    drop(never_reading);
    drop(idle_connections);
}
