//! What the Kinesis API's codec costs per record, without the network or the log: reading a
//! PutRecords of 500 records of 1 KiB (decode, type check with base64, constraints) and
//! writing a GetRecords answer of 1,000 such records, in JSON and CBOR.
//!
//! Run: `cargo bench --bench kinesis_codec` (`-- --quick` for a short run).

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use shardlog::kinesis::schema::{check_types, validate};
use shardlog::kinesis::value::{decode, Encoding, Out};
use shardlog::kinesis::{record_out, request_shape};
use shardlog::storage::{Attributes, SequenceNumber, StoredRecord, Timestamp};

/// Bytes of data per record.
const RECORD_BYTES: usize = 1024;
/// Records per PutRecords.
const PUT_RECORDS: usize = 500;
/// Records per GetRecords answer.
const GET_RECORDS: usize = 1000;

fn put_records_body(encoding: Encoding) -> Vec<u8> {
    let data = vec![0x3cu8; RECORD_BYTES];
    match encoding {
        Encoding::Json => {
            let records: Vec<serde_json::Value> = (0..PUT_RECORDS)
                .map(|i| {
                    serde_json::json!({"PartitionKey": format!("key-{i}"), "Data": STANDARD.encode(&data)})
                })
                .collect();
            serde_json::to_vec(&serde_json::json!({"StreamName": "bench", "Records": records}))
                .unwrap()
        }
        Encoding::Cbor => {
            use ciborium::Value as C;
            let text = |s: &str| C::Text(s.into());
            let records = (0..PUT_RECORDS)
                .map(|i| {
                    C::Map(vec![
                        (text("PartitionKey"), text(&format!("key-{i}"))),
                        (text("Data"), C::Bytes(data.clone())),
                    ])
                })
                .collect();
            let body = C::Map(vec![
                (text("StreamName"), text("bench")),
                (text("Records"), C::Array(records)),
            ]);
            let mut out = Vec::new();
            ciborium::into_writer(&body, &mut out).unwrap();
            out
        }
    }
}

fn records() -> Vec<StoredRecord> {
    let data = Bytes::from(vec![0x3cu8; RECORD_BYTES]);
    (0..GET_RECORDS)
        .map(|i| StoredRecord {
            sequence: SequenceNumber::new(1_000_000 + i as u64),
            timestamp_ms: Timestamp::from_millis(1_700_000_000_000),
            partition_key: Bytes::from(format!("key-{i}")),
            data: data.clone(),
            explicit_hash_key: None,
            message_group_id: None,
            deduplication_id: None,
            attributes: Attributes::default(),
        })
        .collect()
}

fn codec(c: &mut Criterion) {
    let shape = request_shape("PutRecords").expect("PutRecords is served");
    let mut group = c.benchmark_group("kinesis_codec");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    for (name, encoding) in [("json", Encoding::Json), ("cbor", Encoding::Cbor)] {
        let body = put_records_body(encoding);
        group.throughput(Throughput::Elements(PUT_RECORDS as u64));
        group.bench_function(BenchmarkId::new("read_put_records", name), |b| {
            b.iter(|| {
                let mut v = decode(&body, encoding).expect("decodes");
                check_types(&mut v, shape, encoding).expect("types");
                validate(&v, shape).expect("constraints");
                v
            })
        });
        let stored = records();
        group.throughput(Throughput::Elements(GET_RECORDS as u64));
        group.bench_function(BenchmarkId::new("write_get_records", name), |b| {
            b.iter(|| {
                let out = Out::Struct(vec![(
                    "Records",
                    Out::List(stored.iter().cloned().map(record_out).collect()),
                )]);
                out.encode(encoding).len()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
