//! What appending to one shard costs: 1 KiB records in batches of 1, 100 and 500, with fsync
//! `never` and `always`, from 1 and 16 concurrent appenders, all through the group committer
//! on a tokio runtime. Throughput is record payload bytes per second (records × 1 KiB).
//!
//! Each benchmark appends to its own log; between samples, retention trims it to
//! [`KEEP_BYTES`]. Every appender hands the committer a fresh copy
//! of a pre-encoded batch, as a producer hands over the batch it encoded.
//!
//! Run: `cargo bench --bench storage_append` (`-- --quick` for a short run). The logs are
//! written under `$SHARDLOG_BENCH_DIR` when set, else the system's temporary directory.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use shardlog::fsio::RealIo;
use shardlog::storage::commit::CommitConfig;
use shardlog::storage::{
    BatchBuilder, Committer, EncodedBatch, FsyncPolicy, LogConfig, Publish, RecordRef, ShardLog,
    Timestamp,
};

/// Bytes of data per record.
const RECORD_BYTES: usize = 1024;
/// Records per batch.
const BATCH_SIZES: [usize; 3] = [1, 100, 500];
/// Concurrent appending tasks.
const APPENDERS: [usize; 2] = [1, 16];
/// Log bytes kept between samples: none but the active segment. Deleted segments take their
/// dirty pages with them, so a sample never waits on writeback of an earlier one (a 2 GiB
/// `dd` into the page cache does not either), and a run never fills the disk.
const KEEP_BYTES: u64 = 0;

/// A batch of `records` records of [`RECORD_BYTES`] bytes each.
fn batch_of(records: usize) -> EncodedBatch {
    let data = vec![0xa5u8; RECORD_BYTES];
    let mut builder = BatchBuilder::with_capacity(records * (RECORD_BYTES + 32));
    for i in 0..records {
        let key = format!("key-{i}");
        builder
            .push(&RecordRef {
                partition_key: &key,
                data: &data,
                ..RecordRef::default()
            })
            .expect("a bench record fits a frame");
    }
    builder.finish().expect("at least one record")
}

fn bench_dir() -> tempfile::TempDir {
    match std::env::var_os("SHARDLOG_BENCH_DIR") {
        Some(dir) => tempfile::tempdir_in(dir).expect("temporary directory in SHARDLOG_BENCH_DIR"),
        None => tempfile::tempdir().expect("temporary directory"),
    }
}

/// `appenders` tasks each append `iters` copies of `template` and wait for every ack.
async fn append_concurrently(
    committer: &Committer,
    template: &EncodedBatch,
    appenders: usize,
    iters: u64,
) -> Duration {
    let start = Instant::now();
    let tasks: Vec<_> = (0..appenders)
        .map(|_| {
            let committer = committer.clone();
            let template = template.clone();
            tokio::spawn(async move {
                for _ in 0..iters {
                    committer
                        .append(template.clone())
                        .await
                        .expect("bench append");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("appending task");
    }
    start.elapsed()
}

fn append(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    for (name, policy) in [
        ("never", FsyncPolicy::Never),
        ("always", FsyncPolicy::Always),
    ] {
        let mut group = c.benchmark_group(format!("append_fsync_{name}"));
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(3));
        for appenders in APPENDERS {
            for records in BATCH_SIZES {
                let template = batch_of(records);
                group.throughput(Throughput::Bytes(
                    (appenders * records * RECORD_BYTES) as u64,
                ));
                let dir = bench_dir();
                let config = LogConfig {
                    retention_bytes: Some(KEEP_BYTES),
                    ..LogConfig::default()
                };
                let log = Arc::new(
                    ShardLog::open(RealIo::shared(), dir.path(), config).expect("open log"),
                );
                let committer = runtime.block_on(async {
                    Committer::spawn(
                        Arc::clone(&log),
                        CommitConfig {
                            policy,
                            ..CommitConfig::default()
                        },
                    )
                });
                group.bench_function(
                    BenchmarkId::new(format!("appenders_{appenders}"), format!("batch_{records}")),
                    |b| {
                        b.iter_custom(|iters| {
                            log.apply_retention(Timestamp::now()).expect("retention");
                            runtime.block_on(append_concurrently(
                                &committer, &template, appenders, iters,
                            ))
                        })
                    },
                );
                let stats = log.stats();
                eprintln!(
                    "  fsync {name}, {appenders} appender(s), batch {records}: {} batches in {} writes and {} syncs",
                    stats.batches_appended, stats.writes, stats.syncs
                );
                // The committer closes the log (a last sync) once its handles are gone; wait
                // for that before the directory is removed.
                let mut durable = log.subscribe();
                durable.borrow_and_update();
                drop(committer);
                runtime.block_on(durable.changed()).expect("the log closed");
            }
        }
        group.finish();
    }
}

/// The log alone, without the committer: one thread copies a batch (as a producer would
/// encode it) and appends it with fsync never. Set against the committer's numbers, this
/// separates what the log costs from what handing each round to another thread costs.
fn append_direct(c: &mut Criterion) {
    let mut group = c.benchmark_group("append_direct_fsync_never");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for records in BATCH_SIZES {
        let template = batch_of(records);
        group.throughput(Throughput::Bytes((records * RECORD_BYTES) as u64));
        let dir = bench_dir();
        let config = LogConfig {
            retention_bytes: Some(KEEP_BYTES),
            ..LogConfig::default()
        };
        let log = ShardLog::open(RealIo::shared(), dir.path(), config).expect("open log");
        group.bench_function(
            BenchmarkId::new("appenders_1", format!("batch_{records}")),
            |b| {
                b.iter_custom(|iters| {
                    log.apply_retention(Timestamp::now()).expect("retention");
                    let start = Instant::now();
                    for _ in 0..iters {
                        log.write(&mut [template.clone()], Timestamp::now(), Publish::Now)
                            .expect("bench append");
                    }
                    start.elapsed()
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, append, append_direct);
criterion_main!(benches);
