//! What deduplication costs on the put path: `Broker::put_records` of 100 records of 1 KiB, in
//! process on a temporary directory with fsync off, once with a unique deduplication id on every
//! record and once without ids. The ratio of the two throughputs is the price of dedup (key
//! derivation, reserve under the window's lock, commit after the ack, window growth).
//!
//! Run: `cargo bench --bench dedup`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use shardlog::broker::{Broker, BrokerConfig, PutEntry};
use shardlog::storage::io::RealIo;
use shardlog::storage::FsyncPolicy;
use shardlog::stream::StreamSettings;

/// Records per PutRecords.
const BATCH: usize = 100;
/// Bytes of data per record.
const RECORD_BYTES: usize = 1024;
/// Shards of the benchmarked stream.
const SHARDS: u32 = 4;
/// Ids the window may hold: far above what one run puts, so no put is ever throttled.
const MAX_DEDUP_IDS: usize = 50_000_000;

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

fn put_records(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = BrokerConfig::new(dir.path());
    config.commit.policy = FsyncPolicy::Never;
    config.max_dedup_ids = MAX_DEDUP_IDS;
    let broker = rt
        .block_on(Broker::open(config, RealIo::shared()))
        .expect("open broker");
    for stream in ["plain", "deduplicated"] {
        rt.block_on(broker.create_stream(stream, SHARDS, StreamSettings::default()))
            .expect("create stream");
    }
    let data = Bytes::from(vec![0x5a; RECORD_BYTES]);
    let next_id = AtomicU64::new(0);

    let mut group = c.benchmark_group("put_records_100_x_1KiB");
    group.throughput(Throughput::Elements(BATCH as u64));
    for (name, stream, ids) in [
        ("without_dedup_ids", "plain", None),
        ("with_unique_dedup_ids", "deduplicated", Some(&next_id)),
    ] {
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                let results = rt
                    .block_on(broker.put_records(stream, entries(&data, ids)))
                    .expect("put records");
                // A throttled or failed entry would make the comparison meaningless.
                assert!(results
                    .iter()
                    .all(|r| r.as_ref().is_ok_and(|o| !o.duplicate)));
                results
            })
        });
    }
    group.finish();
    rt.block_on(broker.shutdown()).expect("shutdown");
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = put_records
}
criterion_main!(benches);
