//! What finding a read's starting point costs: `OffsetIndex::lookup` (sequence → position) and
//! `TimeIndex::last_before` (time → sequence) over a full segment's sparse index, at random
//! targets. The default segment of 256 MiB with an entry every 4 KiB holds 65,536 entries.
//!
//! Run: `cargo bench --bench index_lookup` (`-- --quick` for a short run).

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use shardlog::fsio::RealIo;
use shardlog::storage::index::{OffsetEntry, OffsetIndex, TimeEntry, TimeIndex};
use shardlog::storage::Timestamp;

/// Entries per index: one segment's worth at the default sizes, and a small one.
const ENTRIES: [usize; 2] = [1_024, 65_536];
/// Records between two entries (a 4 KiB interval of ~1 KiB records).
const RECORDS_PER_ENTRY: u32 = 4;
/// Targets looked up per iteration.
const LOOKUPS: usize = 1_024;

/// Pseudo-random targets below `bound`, the same on every run.
fn targets(bound: u64) -> Vec<u64> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..LOOKUPS)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % bound
        })
        .collect()
}

fn lookups(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut group = c.benchmark_group("index_lookup");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    for entries in ENTRIES {
        let mut offsets = OffsetIndex::open_active(
            &RealIo,
            &dir.path().join(format!("{entries}.index")),
            entries,
        )
        .expect("offset index");
        let mut times = TimeIndex::open_active(
            &RealIo,
            &dir.path().join(format!("{entries}.timeindex")),
            entries,
        )
        .expect("time index");
        for i in 1..=entries as u32 {
            assert!(offsets.push(OffsetEntry {
                relative_sequence: i * RECORDS_PER_ENTRY,
                position: i * 4096,
            }));
            assert!(times.push(TimeEntry {
                timestamp_ms: Timestamp::from_millis(1_700_000_000_000 + u64::from(i) * 10),
                relative_sequence: i * RECORDS_PER_ENTRY,
            }));
        }
        let sequences = targets(entries as u64 * u64::from(RECORDS_PER_ENTRY));
        group.bench_function(BenchmarkId::new("sequence", entries), |b| {
            b.iter(|| {
                for &s in &sequences {
                    black_box(offsets.lookup(black_box(s)));
                }
            })
        });
        let times_ms: Vec<Timestamp> = targets(entries as u64 * 10)
            .into_iter()
            .map(|t| Timestamp::from_millis(1_700_000_000_000 + t))
            .collect();
        group.bench_function(BenchmarkId::new("time", entries), |b| {
            b.iter(|| {
                for &t in &times_ms {
                    black_box(times.last_before(black_box(t)));
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, lookups);
criterion_main!(benches);
