//! The read answers' hand-written protobuf decoding (`proto::wire`), against prost's.

use bytes::Buf;
use prost::Message;

use super::frame::{decode_frame, frame_seeds, seal_frame};
use crate::proto::v1 as pb;
use crate::proto::wire;
use crate::storage::StoredRecord;

/// `GetRecordsResponse` as prost would generate it: the reference for the hand-written one.
#[derive(Clone, PartialEq, prost::Message)]
struct PlainGetRecords {
    #[prost(message, repeated, tag = "1")]
    records: Vec<pb::Record>,
    #[prost(string, tag = "2")]
    next_shard_iterator: String,
    #[prost(int64, tag = "3")]
    millis_behind_latest: i64,
    #[prost(message, repeated, tag = "4")]
    child_shards: Vec<pb::ChildShard>,
    #[prost(bytes = "vec", tag = "5")]
    frames: Vec<u8>,
    #[prost(uint64, tag = "6")]
    frames_first_sequence: u64,
    #[prost(uint64, tag = "7")]
    frames_end_sequence: u64,
}

/// `SubscribeToShardEvent` as prost would generate it.
#[derive(Clone, PartialEq, prost::Message)]
struct PlainSubscribeEvent {
    #[prost(message, repeated, tag = "1")]
    records: Vec<pb::Record>,
    #[prost(uint64, optional, tag = "2")]
    continuation_sequence_number: Option<u64>,
    #[prost(int64, tag = "3")]
    millis_behind_latest: i64,
    #[prost(message, repeated, tag = "4")]
    child_shards: Vec<pb::ChildShard>,
}

/// `ReceiveMessagesResponse` as prost would generate it.
#[derive(Clone, PartialEq, prost::Message)]
struct PlainReceive {
    #[prost(message, repeated, tag = "1")]
    messages: Vec<pb::Message>,
}

/// Decodes `bytes` as `M` from one contiguous buffer, and from two chunks split at `at` (which
/// makes the hand-written decoder take its fallback path).
fn decode_twice<M: Message + Default>(
    bytes: &[u8],
    at: usize,
) -> (Result<M, prost::DecodeError>, Result<M, prost::DecodeError>) {
    let at = at.min(bytes.len());
    let (head, tail) = bytes.split_at(at);
    (M::decode(bytes), M::decode(head.chain(tail)))
}

/// The read answers. Mode `% 3` picks `GetRecordsResponse`, `SubscribeToShardEvent` or
/// `ReceiveMessagesResponse`. The hand-written decoder accepts what prost's generated one
/// accepts, and decodes it to the same fields, from one buffer or two; a decoded answer
/// re-encodes to bytes that decode the same.
pub fn proto_decode(input: &[u8]) {
    let Some((&mode, rest)) = input.split_first() else {
        return;
    };
    let at = usize::from(mode >> 2).wrapping_mul(7);
    match mode % 3 {
        0 => {
            let plain = PlainGetRecords::decode(rest);
            let (whole, split) = decode_twice::<wire::GetRecordsResponse>(rest, at);
            for decoded in [whole, split] {
                match (&decoded, &plain) {
                    (Ok(d), Ok(p)) => {
                        assert_eq!(d.records, p.records);
                        assert_eq!(d.next_shard_iterator, p.next_shard_iterator);
                        assert_eq!(d.millis_behind_latest, p.millis_behind_latest);
                        assert_eq!(d.child_shards, p.child_shards);
                        assert_eq!(d.frames.concat(), p.frames);
                        assert_eq!(d.frames_first_sequence, p.frames_first_sequence);
                        assert_eq!(d.frames_end_sequence, p.frames_end_sequence);
                        assert!(d.outgoing.is_empty());
                        let again = wire::GetRecordsResponse::decode(&d.encode_to_vec()[..])
                            .expect("an encoded answer decodes");
                        assert_eq!(&again, d);
                    }
                    (Err(_), Err(_)) => {}
                    _ => panic!(
                        "hand-written and generated decoding disagree: {decoded:?} / {plain:?}"
                    ),
                }
            }
        }
        1 => {
            let plain = PlainSubscribeEvent::decode(rest);
            let (whole, split) = decode_twice::<wire::SubscribeToShardEvent>(rest, at);
            for decoded in [whole, split] {
                match (&decoded, &plain) {
                    (Ok(d), Ok(p)) => {
                        assert_eq!(d.records, p.records);
                        assert_eq!(
                            d.continuation_sequence_number,
                            p.continuation_sequence_number
                        );
                        assert_eq!(d.millis_behind_latest, p.millis_behind_latest);
                        assert_eq!(d.child_shards, p.child_shards);
                        assert!(d.outgoing.is_empty());
                        let again = wire::SubscribeToShardEvent::decode(&d.encode_to_vec()[..])
                            .expect("an encoded event decodes");
                        assert_eq!(&again, d);
                    }
                    (Err(_), Err(_)) => {}
                    _ => panic!(
                        "hand-written and generated decoding disagree: {decoded:?} / {plain:?}"
                    ),
                }
            }
        }
        _ => {
            let plain = PlainReceive::decode(rest);
            let (whole, split) = decode_twice::<wire::ReceiveMessagesResponse>(rest, at);
            for decoded in [whole, split] {
                match (&decoded, &plain) {
                    (Ok(d), Ok(p)) => {
                        assert_eq!(d.messages, p.messages);
                        assert!(d.outgoing.is_empty());
                        let again = wire::ReceiveMessagesResponse::decode(&d.encode_to_vec()[..])
                            .expect("an encoded answer decodes");
                        assert_eq!(&again, d);
                    }
                    (Err(_), Err(_)) => {}
                    _ => panic!(
                        "hand-written and generated decoding disagree: {decoded:?} / {plain:?}"
                    ),
                }
            }
        }
    }
}

/// Each read answer, encoded by the server's path from stored records.
pub fn proto_decode_seeds() -> Vec<Vec<u8>> {
    let records: Vec<StoredRecord> = frame_seeds()
        .iter()
        .filter_map(|seed| decode_frame(&seal_frame(&seed[1..])).ok())
        .flat_map(|(_, records)| records)
        .collect();
    let child = pb::ChildShard {
        shard_id: "shardId-000000000004".to_owned(),
        parent_shards: vec!["shardId-000000000001".to_owned()],
        starting_hash_key: "0".to_owned(),
        ending_hash_key: "170141183460469231731687303715884105727".to_owned(),
    };
    let get = wire::GetRecordsResponse {
        next_shard_iterator: "AgAAAA".to_owned(),
        millis_behind_latest: 1_500,
        child_shards: vec![child.clone()],
        outgoing: records.clone().into(),
        ..Default::default()
    };
    let event = wire::SubscribeToShardEvent {
        continuation_sequence_number: Some(41),
        millis_behind_latest: 20,
        child_shards: vec![child],
        outgoing: records.clone().into(),
        ..Default::default()
    };
    let receive = wire::ReceiveMessagesResponse {
        outgoing: records
            .into_iter()
            .map(|record| wire::OutgoingMessage {
                record,
                shard_id: "shardId-000000000000".to_owned(),
                receipt_handle: "r-1".to_owned(),
                receive_count: 2,
            })
            .collect(),
        ..Default::default()
    };
    vec![
        [&[0][..], &get.encode_to_vec()].concat(),
        [&[1][..], &event.encode_to_vec()].concat(),
        [&[2][..], &receive.encode_to_vec()].concat(),
    ]
}
