//! What deduplication costs on the put path: `Broker::put_records` of 100 records of 1 KiB, in
//! process on a temporary directory with fsync off, once with a unique deduplication id on every
//! record and once without ids. The ratio of the two throughputs is the price of dedup (key
//! derivation, reserve under the window's lock, commit after the ack, expiry of old ids).
//!
//! Run: `cargo bench --bench dedup`. After criterion's two benchmarks it prints a paired
//! comparison (the two kinds of batch interleaved, medians compared), which a machine whose
//! load drifts during the run skews far less than two benchmarks run one after the other.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use shardlog::broker::{Broker, BrokerConfig, PutEntry};
use shardlog::fsio::RealIo;
use shardlog::storage::FsyncPolicy;
use shardlog::stream::{StreamName, StreamSettings};

/// Records per PutRecords.
const BATCH: usize = 100;
/// Bytes of data per record.
const RECORD_BYTES: usize = 1024;
/// Shards of the benchmarked stream.
const SHARDS: u32 = 4;
/// The deduplicated stream's window. Short, so that at benchmark rates ids expire as fast as
/// they arrive and the window stays at a steady size of a few hundred thousand ids — what the
/// default 300 s window holds at about 1,000 deduplicated records per second. A window that only
/// grew during the run would measure an ever larger table instead (and hit the id cap).
const DEDUP_WINDOW: Duration = Duration::from_secs(1);

fn entries(data: &Bytes, next_id: Option<&AtomicU64>) -> Vec<PutEntry> {
    (0..BATCH)
        .map(|i| PutEntry {
            partition_key: format!("key-{i}"),
            data: data.clone(),
            deduplication_id: next_id.map(|n| format!("id-{}", n.fetch_add(1, Ordering::Relaxed))),
            ..PutEntry::default()
        })
        .collect()
}

/// A broker on a temporary directory with one plain and one deduplicated stream.
struct Setup {
    rt: tokio::runtime::Runtime,
    broker: Broker,
    plain: StreamName,
    deduplicated: StreamName,
    data: Bytes,
    next_id: AtomicU64,
    _dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = BrokerConfig::new(dir.path());
        config.commit.policy = FsyncPolicy::Never;
        let broker = rt
            .block_on(Broker::open(config, RealIo::shared()))
            .expect("open broker");
        let deduplicated = StreamSettings {
            dedup_window: DEDUP_WINDOW,
            ..StreamSettings::default()
        };
        let plain = StreamName::new("plain").expect("a valid name");
        let dedup = StreamName::new("deduplicated").expect("a valid name");
        for (stream, settings) in [(&plain, StreamSettings::default()), (&dedup, deduplicated)] {
            rt.block_on(broker.create_stream(stream.clone(), SHARDS, settings))
                .expect("create stream");
        }
        Setup {
            rt,
            broker,
            plain,
            deduplicated: dedup,
            data: Bytes::from(vec![0x5a; RECORD_BYTES]),
            next_id: AtomicU64::new(0),
            _dir: dir,
        }
    }

    /// One PutRecords of `BATCH` records, with unique dedup ids or without.
    fn put(&self, with_ids: bool) {
        let (stream, ids) = if with_ids {
            (&self.deduplicated, Some(&self.next_id))
        } else {
            (&self.plain, None)
        };
        let results = self
            .rt
            .block_on(self.broker.put_records(stream, entries(&self.data, ids)))
            .expect("put records");
        // A throttled or failed entry would make the comparison meaningless.
        assert!(results
            .iter()
            .all(|r| r.as_ref().is_ok_and(|o| !o.duplicate)));
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        self.rt.block_on(self.broker.shutdown()).expect("shutdown");
    }
}

fn put_records(c: &mut Criterion) {
    let setup = Setup::new();
    let mut group = c.benchmark_group("put_records_100_x_1KiB");
    group.throughput(Throughput::Elements(BATCH as u64));
    for (name, with_ids) in [
        ("without_dedup_ids", false),
        ("with_unique_dedup_ids", true),
    ] {
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| setup.put(with_ids))
        });
    }
    group.finish();
}

/// Rounds of the paired comparison.
const PAIRED_ROUNDS: usize = 2000;

/// The same comparison with the two kinds of batch interleaved, so a machine whose load
/// drifts during the run slows both alike; prints the median batch time of each and their
/// ratio (criterion measures one benchmark after the other).
fn paired_ratio() {
    let setup = Setup::new();
    let mut plain = Vec::with_capacity(PAIRED_ROUNDS);
    let mut dedup = Vec::with_capacity(PAIRED_ROUNDS);
    for round in 0..PAIRED_ROUNDS {
        // Alternate which goes first, so neither always follows the other.
        for with_ids in [round % 2 == 0, round % 2 == 1] {
            let start = Instant::now();
            setup.put(with_ids);
            let took = start.elapsed();
            if with_ids {
                dedup.push(took);
            } else {
                plain.push(took);
            }
        }
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort_unstable();
        v[v.len() / 2]
    };
    let (p, d) = (median(&mut plain), median(&mut dedup));
    println!(
        "paired, {PAIRED_ROUNDS} batches each: median {p:?} without ids, {d:?} with unique ids; \
         dedup costs {:+.1}% per batch",
        (d.as_secs_f64() / p.as_secs_f64() - 1.0) * 100.0
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = put_records
}

fn main() {
    benches();
    paired_ratio();
    Criterion::default().configure_from_args().final_summary();
}
