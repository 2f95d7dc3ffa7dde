//! GetRecords in its frame form (`as_frames`): the server sends the stored frames and the Rust
//! client checks and decodes them. Whatever the starting point and the limit, across segment
//! boundaries and to the end of a closed shard, it returns exactly the records the record
//! form returns, and continues where the record form does.

mod common;

use bytes::Bytes;
use common::TestServer;
use shardlog::broker::BrokerConfig;
use shardlog::client::{Client, Position};
use shardlog::proto::v1 as pb;
use shardlog::storage::StoredRecord;
use tonic::Code;

const STREAM: &str = "f";
const SHARD: &str = common::FIRST_SHARD;

/// What a reader sees of a record, from either form.
type Seen = (u64, String, Bytes, i64, String, String);

fn seen_pb(r: &pb::Record) -> Seen {
    (
        r.sequence_number,
        r.partition_key.clone(),
        r.data.clone(),
        r.approximate_arrival_timestamp_ms,
        r.explicit_hash_key.clone(),
        r.message_group_id.clone(),
    )
}

fn seen_stored(r: &StoredRecord) -> Seen {
    let text = |b: &Option<Bytes>| {
        b.as_ref()
            .map(|b| String::from_utf8(b.to_vec()).unwrap())
            .unwrap_or_default()
    };
    (
        r.sequence.get(),
        String::from_utf8(r.partition_key.to_vec()).unwrap(),
        r.data.clone(),
        r.timestamp_ms.as_millis() as i64,
        r.explicit_hash_key
            .map(|k| k.to_string())
            .unwrap_or_default(),
        text(&r.message_group_id),
    )
}

/// Batches of 1 to 13 records of 40 to 400 bytes, some with an explicit hash key or a message
/// group: frames of many sizes, over many small segments.
async fn fill(client: &Client) -> u64 {
    let mut n = 0u64;
    for batch in 0..60u64 {
        let entries = (0..batch % 13 + 1)
            .map(|i| {
                let k = n + i;
                pb::PutRecordsRequestEntry {
                    partition_key: format!("key-{k}"),
                    data: Bytes::from(vec![(k % 251) as u8; 40 + (k as usize * 37) % 360]),
                    explicit_hash_key: if k % 5 == 0 {
                        "7".into()
                    } else {
                        String::new()
                    },
                    message_group_id: if k % 3 == 0 {
                        format!("g{}", k % 4)
                    } else {
                        String::new()
                    },
                    ..Default::default()
                }
            })
            .collect::<Vec<_>>();
        n += entries.len() as u64;
        let answer = client.put_records(STREAM, entries).await.unwrap();
        assert_eq!(answer.failed_record_count, 0);
    }
    n
}

/// A server whose segments hold 8 KiB (in the directory returned first), with the stream
/// filled: many segments.
async fn filled_in_small_segments() -> (tempfile::TempDir, TestServer, Client, u64) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = BrokerConfig::new(dir.path());
    config.log.segment_max_bytes = 8 * 1024;
    let server = TestServer::start_with(config).await;
    let client = Client::connect(server.url()).await.unwrap();
    client.create_stream(STREAM, 1).await.unwrap();
    let total = fill(&client).await;
    (dir, server, client, total)
}

/// Every record from `at` on, `limit` at a time, in one form or the other, and the sizes of
/// the answers.
async fn read_all(
    client: &Client,
    at: Position,
    limit: u32,
    frames: bool,
) -> (Vec<Seen>, Vec<usize>) {
    let mut iterator = client.get_shard_iterator(STREAM, SHARD, at).await.unwrap();
    let (mut seen, mut answers) = (Vec::new(), Vec::new());
    loop {
        let (got, next, behind) = if frames {
            let r = client.get_stored_records(&iterator, limit).await.unwrap();
            let got: Vec<Seen> = r.records.iter().map(seen_stored).collect();
            (got, r.next_shard_iterator, r.millis_behind_latest)
        } else {
            let r = client.get_records(&iterator, limit).await.unwrap();
            let got: Vec<Seen> = r.records.iter().map(seen_pb).collect();
            (got, r.next_shard_iterator, r.millis_behind_latest)
        };
        if got.is_empty() && behind == 0 {
            return (seen, answers);
        }
        answers.push(got.len());
        seen.extend(got);
        if next.is_empty() {
            return (seen, answers);
        }
        iterator = next;
    }
}

#[tokio::test]
async fn the_frame_form_returns_exactly_what_the_record_form_does_from_anywhere_at_any_limit() {
    let (_dir, _server, client, total) = filled_in_small_segments().await;
    assert!(total > 300, "{total}");

    let starts = [
        Position::TrimHorizon,
        Position::AtSequence(1),
        Position::AtSequence(total / 3),
        Position::AfterSequence(total / 2),
        Position::AtSequence(total - 1),
    ];
    for at in starts {
        for limit in [1, 3, 7, 50, 0] {
            let (records, record_answers) = read_all(&client, at, limit, false).await;
            let (frames, frame_answers) = read_all(&client, at, limit, true).await;
            let first = records.first().map(|r| r.0);
            assert_eq!(
                records.len() as u64,
                total - first.unwrap(),
                "{at:?} {limit}"
            );
            assert_eq!(frames, records, "from {at:?}, {limit} at a time");
            if limit > 0 {
                assert!(
                    frame_answers.iter().all(|&n| n <= limit as usize),
                    "{frame_answers:?} past the limit {limit}"
                );
            }
            assert_eq!(frame_answers.len(), record_answers.len(), "{at:?} {limit}");
        }
    }
}

/// Every record from the trim horizon until a read fails, and its code.
async fn read_until_failure(client: &Client, frames: bool) -> (Vec<Seen>, Option<Code>) {
    let mut iterator = client
        .get_shard_iterator(STREAM, SHARD, Position::TrimHorizon)
        .await
        .unwrap();
    let mut seen = Vec::new();
    loop {
        let (got, next) = if frames {
            match client.get_stored_records(&iterator, 0).await {
                Ok(r) => (
                    r.records.iter().map(seen_stored).collect(),
                    r.next_shard_iterator,
                ),
                Err(e) => return (seen, e.code()),
            }
        } else {
            match client.get_records(&iterator, 0).await {
                Ok(r) => (
                    r.records.iter().map(seen_pb).collect::<Vec<_>>(),
                    r.next_shard_iterator,
                ),
                Err(e) => return (seen, e.code()),
            }
        };
        if got.is_empty() {
            return (seen, None);
        }
        seen.extend(got);
        iterator = next;
    }
}

#[tokio::test]
async fn a_damaged_frame_is_reported_as_in_the_record_form_and_never_served() {
    let (_dir, server, client, total) = filled_in_small_segments().await;
    // Flip a byte in the middle of the second segment (sealed, and so read from its mapping).
    let shard_dir = server.data_dir().join("streams").join(STREAM).join(SHARD);
    let mut logs: Vec<_> = std::fs::read_dir(&shard_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    let damaged = &logs[1];
    let mut bytes = std::fs::read(damaged).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    std::fs::write(damaged, &bytes).unwrap();

    let (records, record_failure) = read_until_failure(&client, false).await;
    let (frames, frame_failure) = read_until_failure(&client, true).await;
    assert_eq!(
        record_failure,
        Some(Code::DataLoss),
        "the record form reports it"
    );
    assert_eq!(
        frame_failure, record_failure,
        "the frame form reports it alike"
    );
    assert_eq!(frames, records, "the same records precede it");
    assert!((records.len() as u64) < total);
}

#[tokio::test]
async fn a_closed_shard_read_in_frames_ends_with_its_children_and_nothing_past_its_end() {
    let server = TestServer::start().await;
    let client = Client::connect(server.url()).await.unwrap();
    client.create_stream(STREAM, 1).await.unwrap();
    let before = fill(&client).await;
    client
        .split_shard(STREAM, SHARD, "170141183460469231731687303715884105728")
        .await
        .unwrap();
    // Records put after the split go to the children.
    fill(&client).await;
    let mut iterator = client
        .get_shard_iterator(STREAM, SHARD, Position::TrimHorizon)
        .await
        .unwrap();
    let mut read = 0u64;
    loop {
        let r = client.get_stored_records(&iterator, 0).await.unwrap();
        read += r.records.len() as u64;
        if r.next_shard_iterator.is_empty() {
            assert_eq!(r.child_shards.len(), 2, "the children are named at the end");
            break;
        }
        iterator = r.next_shard_iterator;
    }
    assert_eq!(
        read, before,
        "the parent's records, and none of the children's"
    );
}

#[tokio::test]
async fn a_filtered_iterator_is_refused_in_the_frame_form_naming_the_field() {
    let server = TestServer::start().await;
    let client = Client::connect(server.url()).await.unwrap();
    client.create_stream(STREAM, 1).await.unwrap();
    fill(&client).await;
    let filter = pb::Filter {
        pattern: r#"{"a": [1]}"#.to_owned(),
        ..Default::default()
    };
    let iterator = client
        .get_shard_iterator_filtered(STREAM, SHARD, Position::TrimHorizon, Some(filter))
        .await
        .unwrap();
    let refused = client.get_stored_records(&iterator, 0).await.unwrap_err();
    assert_eq!(refused.code(), Some(Code::InvalidArgument), "{refused}");
    assert!(refused.to_string().contains("as_frames"), "{refused}");
}
