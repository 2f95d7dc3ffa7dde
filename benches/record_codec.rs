//! What the batch frame codec costs, per byte of record payload: encoding 1 KiB records into a
//! batch (with its payload CRC), stamping its header, and decoding it back (CRC check and
//! zero-copy record slices), for batches of 1, 100 and 500 records.
//!
//! Run: `cargo bench --bench record_codec` (`-- --quick` for a short run).

use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use shardlog::storage::record::{decode_records, verify_payload, BatchHeader, HEADER_LEN};
use shardlog::storage::{BatchBuilder, EncodedBatch, RecordRef, SequenceNumber, Timestamp};

/// Bytes of data per record.
const RECORD_BYTES: usize = 1024;
/// Base sequence and arrival time stamped on the bench batches: any value does.
const BASE: SequenceNumber = SequenceNumber::new(1_000);
const ARRIVED: Timestamp = Timestamp::from_millis(1_700_000_000_000);
/// Records per batch.
const BATCH_SIZES: [usize; 3] = [1, 100, 500];

fn encode(keys: &[String], data: &[u8]) -> EncodedBatch {
    let mut builder = BatchBuilder::with_capacity(keys.len() * (RECORD_BYTES + 32));
    for key in keys {
        builder
            .push(&RecordRef {
                partition_key: key,
                data,
                ..RecordRef::default()
            })
            .expect("a bench record fits a frame");
    }
    builder.finish().expect("at least one record")
}

fn codec(c: &mut Criterion) {
    let data = vec![0x3cu8; RECORD_BYTES];
    let mut group = c.benchmark_group("record_codec");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    for records in BATCH_SIZES {
        let keys: Vec<String> = (0..records).map(|i| format!("key-{i}")).collect();
        group.throughput(Throughput::Bytes((records * RECORD_BYTES) as u64));
        group.bench_function(BenchmarkId::new("encode", records), |b| {
            b.iter(|| encode(&keys, &data))
        });
        let mut batch = encode(&keys, &data);
        group.bench_function(BenchmarkId::new("stamp", records), |b| {
            b.iter(|| batch.stamp(BASE, ARRIVED).len())
        });
        let frame = Bytes::copy_from_slice(batch.stamp(BASE, ARRIVED));
        group.bench_function(BenchmarkId::new("decode", records), |b| {
            let mut out = Vec::with_capacity(records);
            b.iter(|| {
                out.clear();
                let header = BatchHeader::decode(&frame).expect("header");
                let payload = frame.slice(HEADER_LEN..header.frame_len());
                verify_payload(&header, &payload).expect("crc");
                decode_records(
                    &header,
                    &payload,
                    SequenceNumber::ZERO,
                    usize::MAX,
                    usize::MAX,
                    &mut out,
                )
                .expect("records")
                .pushed
            })
        });
    }
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
