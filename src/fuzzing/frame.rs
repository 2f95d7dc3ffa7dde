//! The batch frame (`storage::record`): header, CRCs, records and their attribute blocks.

use bytes::Bytes;

use super::SEAL;
pub use crate::storage::record::decode_whole_frame as decode_frame;
use crate::storage::record::{decode_records, FrameError, HEADER_LEN};
use crate::storage::{
    Attribute, AttributeType, Attributes, BatchBuilder, RecordRef, SequenceNumber, StoredRecord,
    Timestamp,
};

/// Frames `records` again with the crate's encoder: one batch from `base`, arrived at `at`.
fn encode_frame(records: &[StoredRecord], base: SequenceNumber, at: Timestamp) -> Vec<u8> {
    fn text(b: &Bytes) -> &str {
        std::str::from_utf8(b).expect("decoded keys and ids are UTF-8")
    }
    let mut builder = BatchBuilder::default();
    for r in records {
        builder
            .push(&RecordRef {
                partition_key: text(&r.partition_key),
                data: &r.data,
                explicit_hash_key: r.explicit_hash_key,
                message_group_id: r.message_group_id.as_ref().map(text),
                deduplication_id: r.deduplication_id.as_ref().map(text),
                attributes: r.attributes.as_bytes(),
            })
            .expect("a decoded record fits a frame");
    }
    let mut batch = builder.finish().expect("a decoded batch has a record");
    batch.stamp(base, at).to_vec()
}

/// `bytes` with both CRCs of its header made to match (when there is a header).
pub(super) fn seal_frame(bytes: &[u8]) -> Vec<u8> {
    let mut f = bytes.to_vec();
    if f.len() >= HEADER_LEN {
        let declared = u32::from_le_bytes([f[36], f[37], f[38], f[39]]) as usize;
        let end = HEADER_LEN.saturating_add(declared).min(f.len());
        let payload_crc = crc32fast::hash(&f[HEADER_LEN..end]);
        f[40..44].copy_from_slice(&payload_crc.to_le_bytes());
        let header_crc = crc32fast::hash(&f[..44]);
        f[44..48].copy_from_slice(&header_crc.to_le_bytes());
    }
    f
}

/// The batch frame. A frame that decodes holds the records its header declares, numbered from
/// its base; re-encoded, they decode to themselves; any part of the batch (a start, a count, a
/// byte budget) decodes to that part of the whole; and one damaged byte in the header or the
/// payload makes it refused.
pub fn frame(input: &[u8]) {
    let Some((&mode, rest)) = input.split_first() else {
        return;
    };
    let bytes = if mode & SEAL != 0 {
        seal_frame(rest)
    } else {
        rest.to_vec()
    };
    let Ok((header, records)) = decode_frame(&bytes) else {
        return;
    };
    assert_eq!(records.len(), header.record_count as usize);
    assert!(
        header
            .base_sequence
            .checked_add(records.len() as u64)
            .is_some(),
        "a batch's sequence range fits a sequence number"
    );
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.sequence, header.base_sequence + i as u64);
        assert_eq!(r.timestamp_ms, header.first_timestamp_ms);
    }

    let again = encode_frame(&records, header.base_sequence, header.first_timestamp_ms);
    let (_, decoded) = decode_frame(&again).expect("a re-encoded batch decodes");
    assert_eq!(
        decoded, records,
        "a re-encoded batch decodes to the same records"
    );

    let payload = Bytes::copy_from_slice(&bytes[HEADER_LEN..header.frame_len()]);
    let skip = usize::from((mode >> 1) & 7) % (records.len() + 1);
    let max = usize::from(mode >> 4) + 1;
    let wanted = &records[skip..records.len().min(skip + max)];
    for budget in [usize::MAX, header.payload_len as usize / 2] {
        let mut out = Vec::new();
        let part = decode_records(
            &header,
            &payload,
            header.base_sequence + skip as u64,
            max,
            budget,
            &mut out,
        )
        .expect("part of a batch that decodes whole decodes");
        assert_eq!(part.pushed, out.len());
        assert!(out.len() <= wanted.len());
        assert_eq!(
            out[..],
            wanted[..out.len()],
            "a part is that part of the whole"
        );
        assert_eq!(out.is_empty(), wanted.is_empty(), "a read makes progress");
        if budget == usize::MAX {
            assert_eq!(out.len(), wanted.len());
        }
    }

    let mut damaged = bytes.clone();
    damaged[usize::from(mode) % HEADER_LEN] ^= 0x20;
    assert!(
        decode_frame(&damaged).is_err(),
        "a damaged header is refused"
    );
    if header.payload_len > 0 {
        let mut damaged = bytes;
        damaged[HEADER_LEN + usize::from(mode) * 7 % header.payload_len as usize] ^= 0x01;
        assert!(
            matches!(decode_frame(&damaged), Err(FrameError::PayloadCrc { .. })),
            "a damaged payload fails its CRC"
        );
    }
}

/// A few valid frames, each behind a mode byte that seals it (so a mutation keeps its CRCs).
pub fn frame_seeds() -> Vec<Vec<u8>> {
    let attributes = seed_attributes();
    let one = |records: &[RecordRef<'_>], base: u64| {
        let mut builder = BatchBuilder::default();
        for r in records {
            builder.push(r).expect("seed records fit a frame");
        }
        let mut batch = builder.finish().expect("seeds have records");
        batch
            .stamp(
                SequenceNumber::new(base),
                Timestamp::from_millis(1_700_000_000_000),
            )
            .to_vec()
    };
    let plain = RecordRef {
        partition_key: "user-7",
        data: b"{\"kind\":\"order\",\"total\":12.5}",
        ..Default::default()
    };
    let full = RecordRef {
        partition_key: "k\u{e9}",
        data: &[0, 1, 2, 255],
        explicit_hash_key: Some(u128::MAX / 3),
        message_group_id: Some("group-1"),
        deduplication_id: Some("dedup-1"),
        attributes: attributes.as_bytes(),
    };
    let mut seeds = Vec::new();
    for frame in [
        one(&[plain], 0),
        one(&[full], 41),
        one(&[plain, full, plain, RecordRef::default()], 1_000),
    ] {
        seeds.push([&[SEAL][..], &frame].concat());
        seeds.push([&[0x10][..], &frame].concat());
    }
    seeds
}

fn seed_attributes() -> Attributes {
    Attributes::encode(&[
        Attribute {
            name: "color",
            kind: AttributeType::String,
            value: b"red",
        },
        Attribute {
            name: "price",
            kind: AttributeType::Number,
            value: b"12.5",
        },
        Attribute {
            name: "blob",
            kind: AttributeType::Binary,
            value: &[0, 255],
        },
    ])
    .expect("seed attributes are valid")
}
