//! What reading a shard sequentially costs when its segments are in the page cache: the whole
//! log, 1 KiB records written in batches of 500, read front to back with `ShardLog::read` at
//! two byte budgets per call (1 MiB and 10 MiB, at most 10,000 records, as GetRecords takes).
//! Twice: with segments so large that every record is in the active segment (read by copying
//! into pooled buffers), and with 16 MiB segments, nearly all sealed (read through their
//! read-only mappings). Throughput is record payload bytes per second.
//!
//! Run: `cargo bench --bench storage_read` (`-- --quick` for a short run). The log is written
//! under `$SHARDLOG_BENCH_DIR` when set, else the system's temporary directory.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use shardlog::fsio::RealIo;
use shardlog::storage::log::MAX_SEGMENT_MAX_BYTES;
use shardlog::storage::{BatchBuilder, LogConfig, Publish, RecordRef, ShardLog, Timestamp};

/// Bytes of data per record.
const RECORD_BYTES: usize = 1024;
/// Records per appended batch.
const BATCH: usize = 500;
/// Records in the log: 500 MiB of payload in 1,024 batches.
const RECORDS: usize = 1024 * BATCH;
/// Segment size of the log whose records are nearly all in sealed segments.
const SMALL_SEGMENT_BYTES: u64 = 16 * 1024 * 1024;
/// Most records one read returns.
const MAX_RECORDS: usize = 10_000;

fn bench_dir() -> tempfile::TempDir {
    match std::env::var_os("SHARDLOG_BENCH_DIR") {
        Some(dir) => tempfile::tempdir_in(dir).expect("temporary directory in SHARDLOG_BENCH_DIR"),
        None => tempfile::tempdir().expect("temporary directory"),
    }
}

fn fill(log: &ShardLog) {
    let data = vec![0x5au8; RECORD_BYTES];
    for n in 0..RECORDS / BATCH {
        let mut builder = BatchBuilder::with_capacity(BATCH * (RECORD_BYTES + 32));
        for i in 0..BATCH {
            let key = format!("key-{n}-{i}");
            builder
                .push(&RecordRef {
                    partition_key: &key,
                    data: &data,
                    ..RecordRef::default()
                })
                .expect("a bench record fits a frame");
        }
        let batch = builder.finish().expect("at least one record");
        log.write(&mut [batch], Timestamp::now(), Publish::Now)
            .expect("append");
    }
}

/// Reads every record once, `max_bytes` per call; returns the records read.
fn read_all(log: &ShardLog, max_bytes: usize) -> usize {
    let mut next = log.first_sequence();
    let mut count = 0;
    loop {
        let batch = log.read(next, MAX_RECORDS, max_bytes).expect("read");
        if batch.records.is_empty() {
            return count;
        }
        count += batch.records.len();
        next = batch.next_sequence;
    }
}

fn read_sequential(c: &mut Criterion) {
    let mut group = c.benchmark_group("read_sequential");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Bytes((RECORDS * RECORD_BYTES) as u64));
    for (segments, segment_max_bytes) in [
        ("active", MAX_SEGMENT_MAX_BYTES),
        ("sealed", SMALL_SEGMENT_BYTES),
    ] {
        let dir = bench_dir();
        let config = LogConfig {
            segment_max_bytes,
            ..LogConfig::default()
        };
        let log = ShardLog::open(RealIo::shared(), dir.path(), config).expect("open log");
        fill(&log);
        // Every page was just written, so it is in the page cache; one pass warms the rest.
        assert_eq!(read_all(&log, 1 << 20), RECORDS);
        for (budget, max_bytes) in [("budget_1MiB", 1usize << 20), ("budget_10MiB", 10 << 20)] {
            let id = BenchmarkId::new(segments, budget);
            group.bench_function(id, |b| {
                b.iter(|| assert_eq!(read_all(&log, max_bytes), RECORDS))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, read_sequential);
criterion_main!(benches);
