//! A GetRecords answer of 1,000 records of 1 KiB (20 stored frames of 50), both ways: the
//! server encoding it and the client decoding it, in the record form (a protobuf `Record` per
//! record) and in the frame form (the stored frames as they are, checked and decoded by the
//! client). The server's side of the frame form is one copy of the frames; the client's is a
//! CRC per frame and zero-copy record slices.
//!
//! Run: `cargo bench --bench read_answer` (`-- --quick` for a short run).

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use prost::Message;
use shardlog::proto::v1 as pb;
use shardlog::storage::record::decode_frames;
use shardlog::storage::{BatchBuilder, RecordRef, SequenceNumber, StoredRecord, Timestamp};

const RECORD_BYTES: usize = 1024;
const FRAMES: u64 = 20;
const PER_FRAME: u64 = 50;
const RECORDS: u64 = FRAMES * PER_FRAME;

/// The stored frames, back to back, and their records as a log read decodes them.
fn stored() -> (Bytes, Vec<StoredRecord>) {
    let data = vec![0x5au8; RECORD_BYTES];
    let mut frames = Vec::new();
    for f in 0..FRAMES {
        let mut builder = BatchBuilder::with_capacity((PER_FRAME as usize) * (RECORD_BYTES + 32));
        for i in 0..PER_FRAME {
            let key = format!("key-{}", f * PER_FRAME + i);
            builder
                .push(&RecordRef {
                    partition_key: &key,
                    data: &data,
                    ..RecordRef::default()
                })
                .expect("a bench record fits a frame");
        }
        let mut batch = builder.finish().expect("records");
        let base = SequenceNumber::new(f * PER_FRAME);
        frames.extend_from_slice(batch.stamp(base, Timestamp::from_millis(1_700_000_000_000)));
    }
    let frames = Bytes::from(frames);
    let mut records = Vec::new();
    decode_frames(
        &frames,
        SequenceNumber::ZERO,
        SequenceNumber::new(RECORDS),
        &mut records,
    )
    .expect("the bench frames check");
    (frames, records)
}

fn answers(c: &mut Criterion) {
    let (frames, records) = stored();
    let mut group = c.benchmark_group("read_answer");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(RECORDS));

    let as_records = || pb::GetRecordsResponse {
        next_shard_iterator: "it".to_owned(),
        outgoing: records.clone().into(),
        ..Default::default()
    };
    let as_frames = || pb::GetRecordsResponse {
        next_shard_iterator: "it".to_owned(),
        frames: vec![frames.clone()],
        frames_first_sequence: 0,
        frames_end_sequence: RECORDS,
        ..Default::default()
    };
    let encode = |answer: &pb::GetRecordsResponse| {
        let mut buf = BytesMut::with_capacity(answer.encoded_len());
        answer.encode(&mut buf).expect("room");
        buf.freeze()
    };
    group.bench_function("server encodes records", |b| {
        b.iter(|| encode(&as_records()).len())
    });
    group.bench_function("server encodes frames", |b| {
        b.iter(|| encode(&as_frames()).len())
    });
    let record_wire = encode(&as_records());
    let frame_wire = encode(&as_frames());
    group.bench_function("client decodes records", |b| {
        b.iter(|| {
            pb::GetRecordsResponse::decode(record_wire.clone())
                .expect("decodes")
                .records
                .len()
        })
    });
    group.bench_function("client decodes frames", |b| {
        b.iter(|| {
            let answer = pb::GetRecordsResponse::decode(frame_wire.clone()).expect("decodes");
            let mut out = Vec::with_capacity(RECORDS as usize);
            decode_frames(
                &answer.frames[0],
                SequenceNumber::new(answer.frames_first_sequence),
                SequenceNumber::new(answer.frames_end_sequence),
                &mut out,
            )
            .expect("frames check");
            out.len()
        })
    });
    group.finish();
}

criterion_group!(benches, answers);
criterion_main!(benches);
