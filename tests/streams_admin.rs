//! Stream administration over gRPC: CreateStream, DescribeStream, ListStreams, ListShards (hash
//! ranges split as Kinesis splits them) and DeleteStream (after which readers and subscribers
//! get NOT_FOUND).

mod common;

use common::{list_shards, make_stream, put, TestServer};
use shardlog::proto::v1 as pb;
use shardlog::proto::v1::ShardIteratorType as It;
use tonic::Code;

/// floor(2^128 / n) for n >= 2, derived independently of the server: a power of two divides
/// 2^128 exactly, anything else does not, so floor(2^128 / n) = floor((2^128 − 1) / n).
fn kinesis_step(n: u32) -> u128 {
    assert!(
        n >= 2,
        "one shard holds all 2^128 keys, which a u128 cannot count"
    );
    let n = u128::from(n);
    if n.is_power_of_two() {
        1u128 << (128 - n.trailing_zeros())
    } else {
        u128::MAX / n
    }
}

#[tokio::test]
async fn create_stream_describes_the_new_stream_with_its_settings_and_shards() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    let before = common::now_ms();
    let created = c
        .create_stream(pb::CreateStreamRequest {
            stream_name: "orders.v1-eu_west".into(),
            shard_count: 3,
            retention_period_hours: 48,
            content_based_deduplication: true,
            dedup_window_seconds: 60,
            dedup_scope: pb::DedupScope::MessageGroup as i32,
        })
        .await
        .unwrap()
        .into_inner()
        .stream
        .unwrap();
    let after = common::now_ms();
    assert_eq!(created.stream_name, "orders.v1-eu_west");
    assert_eq!(created.status, pb::StreamStatus::Active as i32);
    assert_eq!(created.retention_period_hours, 48);
    assert!(created.content_based_deduplication);
    assert_eq!(created.dedup_window_seconds, 60);
    assert_eq!(created.dedup_scope, pb::DedupScope::MessageGroup as i32);
    assert!((before..=after).contains(&created.created_at_ms));
    let ids: Vec<&str> = created.shards.iter().map(|s| s.shard_id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "shardId-000000000000",
            "shardId-000000000001",
            "shardId-000000000002"
        ]
    );
    for s in &created.shards {
        assert_eq!(s.starting_sequence_number, 0);
        assert_eq!(s.ending_sequence_number, None, "a new shard is open");
        assert_eq!(s.parent_shard_id, None);
        assert_eq!(s.adjacent_parent_shard_id, None);
    }

    let described = common::describe_stream(&mut c, "orders.v1-eu_west").await;
    assert_eq!(described, created);
    assert_eq!(
        list_shards(&mut c, "orders.v1-eu_west").await,
        created.shards
    );
    server.stop().await;
}

#[tokio::test]
async fn a_stream_created_with_zero_settings_gets_the_documented_defaults() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    let d = make_stream(&mut c, "defaults", 1).await;
    assert_eq!(d.retention_period_hours, 24);
    assert_eq!(d.dedup_window_seconds, 300);
    assert!(!d.content_based_deduplication);
    assert_eq!(d.dedup_scope, pb::DedupScope::Stream as i32);
    server.stop().await;
}

#[tokio::test]
async fn three_shards_split_the_key_space_exactly_as_kinesis_does() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    make_stream(&mut c, "three", 3).await;
    let ranges: Vec<(String, String)> = list_shards(&mut c, "three")
        .await
        .into_iter()
        .map(|s| (s.starting_hash_key, s.ending_hash_key))
        .collect();
    // The values AWS reports for a 3-shard stream.
    let expected = [
        ("0", "113427455640312821154458202477256070484"),
        (
            "113427455640312821154458202477256070485",
            "226854911280625642308916404954512140969",
        ),
        (
            "226854911280625642308916404954512140970",
            "340282366920938463463374607431768211455",
        ),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(ranges, expected);
    server.stop().await;
}

#[tokio::test]
async fn shard_ranges_are_contiguous_over_the_whole_key_space_for_any_shard_count() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    for n in [1u32, 2, 3, 4, 5, 7, 10, 16, 33] {
        let name = format!("split-{n}");
        make_stream(&mut c, &name, n).await;
        let shards = list_shards(&mut c, &name).await;
        assert_eq!(shards.len(), n as usize, "{name}");
        let mut expected_start = 0u128;
        for (i, s) in shards.iter().enumerate() {
            assert_eq!(s.shard_id, format!("shardId-{i:012}"), "{name}");
            let (start, end) = common::hash_range(s);
            assert_eq!(
                start, expected_start,
                "{name}: shard {i} starts where {i}-1 ended"
            );
            if i + 1 < shards.len() {
                assert_eq!(
                    end - start + 1,
                    kinesis_step(n),
                    "{name}: shard {i} holds floor(2^128/n) keys"
                );
                expected_start = end + 1;
            } else {
                assert_eq!(end, u128::MAX, "{name}: the last shard ends at 2^128-1");
            }
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn list_streams_returns_every_name_sorted() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    let empty = c
        .list_streams(pb::ListStreamsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(empty.stream_names.is_empty());
    for name in ["zeta", "alpha", "Mid", "alpha-2", "0-first"] {
        make_stream(&mut c, name, 1).await;
    }
    let names = common::list_stream_names(&mut c).await;
    assert_eq!(names, ["0-first", "Mid", "alpha", "alpha-2", "zeta"]);
    server.stop().await;
}

#[tokio::test]
async fn deleting_a_stream_removes_it_and_its_readers_get_not_found() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    make_stream(&mut c, "doomed", 2).await;
    make_stream(&mut c, "kept", 1).await;
    let acked = put(&mut c, "doomed", "k", "v").await;
    let it = common::trim_horizon(&mut c, "doomed", &acked.shard_id).await;
    let mut sub = common::subscribe(&mut c, "doomed", &acked.shard_id, It::TrimHorizon, None)
        .await
        .unwrap();
    assert_eq!(common::receive_records(&mut sub, 1).await.len(), 1);

    common::delete_stream(&mut c, "doomed").await;

    // The live subscription ends with NOT_FOUND (keep-alives may come first).
    let ended = loop {
        match common::next_event(&mut sub).await {
            Ok(Some(ev)) => assert!(ev.records.is_empty(), "no record after the delete"),
            Ok(None) => panic!("the subscription ended without saying why"),
            Err(status) => break status,
        }
    };
    assert_eq!(ended.code(), Code::NotFound, "{ended:?}");

    let names = common::list_stream_names(&mut c).await;
    assert_eq!(names, ["kept"]);
    let describe = c
        .describe_stream(pb::DescribeStreamRequest {
            stream_name: "doomed".into(),
        })
        .await;
    common::assert_rejected(describe, Code::NotFound, "doomed");
    let shards = c
        .list_shards(pb::ListShardsRequest {
            stream_name: "doomed".into(),
            shard_filter: None,
        })
        .await;
    common::assert_rejected(shards, Code::NotFound, "doomed");
    let read = c
        .get_records(pb::GetRecordsRequest {
            shard_iterator: it,
            limit: 0,
            as_frames: false,
        })
        .await;
    common::assert_rejected(read, Code::NotFound, "doomed");
    let new_iterator = c
        .get_shard_iterator(pb::GetShardIteratorRequest {
            stream_name: "doomed".into(),
            shard_id: acked.shard_id.clone(),
            shard_iterator_type: It::TrimHorizon as i32,
            ..Default::default()
        })
        .await;
    common::assert_rejected(new_iterator, Code::NotFound, "doomed");
    let resubscribe = common::subscribe(&mut c, "doomed", &acked.shard_id, It::Latest, None).await;
    common::assert_rejected(resubscribe, Code::NotFound, "doomed");
    let put_again = c
        .put_record(pb::PutRecordRequest {
            stream_name: "doomed".into(),
            partition_key: "k".into(),
            data: "v".into(),
            ..Default::default()
        })
        .await;
    common::assert_rejected(put_again, Code::NotFound, "doomed");
    let delete_again = c
        .delete_stream(pb::DeleteStreamRequest {
            stream_name: "doomed".into(),
        })
        .await;
    common::assert_rejected(delete_again, Code::NotFound, "doomed");

    // The other stream is untouched.
    put(&mut c, "kept", "k", "still here").await;
    let kept = common::read_from_start(&mut c, "kept", common::FIRST_SHARD).await;
    assert_eq!(kept.len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn a_stream_created_again_after_deletion_starts_empty_and_old_iterators_stay_void() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    make_stream(&mut c, "again", 1).await;
    for i in 0..3 {
        put(&mut c, "again", "k", format!("old-{i}")).await;
    }
    let old = common::trim_horizon(&mut c, "again", common::FIRST_SHARD).await;
    common::delete_stream(&mut c, "again").await;
    make_stream(&mut c, "again", 1).await;

    assert!(
        common::read_from_start(&mut c, "again", common::FIRST_SHARD)
            .await
            .is_empty()
    );
    let first = put(&mut c, "again", "k", "new").await;
    assert_eq!(first.sequence_number, 0, "sequences start over");
    let stale = c
        .get_records(pb::GetRecordsRequest {
            shard_iterator: old,
            limit: 0,
            as_frames: false,
        })
        .await;
    common::assert_rejected(stale, Code::NotFound, "again");
    server.stop().await;
}
