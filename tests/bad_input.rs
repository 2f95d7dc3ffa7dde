//! Bad input over gRPC: every rejected request gets the right status code and a message naming
//! the field, and a rejected request changes nothing stored.

mod common;

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use common::{assert_rejected, make_stream, put, Streams, TestServer};
use shardlog::broker::BrokerConfig;
use shardlog::proto::v1 as pb;
use shardlog::proto::v1::ShardIteratorType as It;
use tonic::Code;

const SHARD: &str = "shardId-000000000000";
const MIB: usize = 1024 * 1024;
/// 2^128, one past the largest hash key.
const TWO_TO_THE_128: &str = "340282366920938463463374607431768211456";

fn record(partition_key: &str, data: impl Into<Bytes>) -> pb::PutRecordRequest {
    pb::PutRecordRequest {
        stream_name: "s".into(),
        partition_key: partition_key.into(),
        data: data.into(),
        ..Default::default()
    }
}

fn entry(partition_key: &str, data: impl Into<Bytes>) -> pb::PutRecordsRequestEntry {
    pb::PutRecordsRequestEntry {
        partition_key: partition_key.into(),
        data: data.into(),
        ..Default::default()
    }
}

async fn put_records(
    c: &mut Streams,
    records: Vec<pb::PutRecordsRequestEntry>,
) -> Result<tonic::Response<pb::PutRecordsResponse>, tonic::Status> {
    c.put_records(pb::PutRecordsRequest {
        stream_name: "s".into(),
        records,
    })
    .await
}

/// Every record of every shard of stream `s`.
async fn everything_stored(c: &mut Streams) -> Vec<pb::Record> {
    let mut out = Vec::new();
    for shard in common::list_shards(c, "s").await {
        out.extend(common::read_from_start(c, "s", &shard.shard_id).await);
    }
    out
}

#[tokio::test]
async fn record_data_over_one_mebibyte_is_rejected_naming_data() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    make_stream(&mut c, "s", 1).await;
    let too_big = Bytes::from(vec![7u8; MIB + 1]);
    assert_rejected(
        c.put_record(record("k", too_big.clone())).await,
        Code::InvalidArgument,
        "data",
    );
    assert_rejected(
        put_records(&mut c, vec![entry("k", too_big)]).await,
        Code::InvalidArgument,
        "data",
    );
    // Exactly 1 MiB is allowed.
    let acked = put(&mut c, "s", "k", Bytes::from(vec![7u8; MIB])).await;
    assert_eq!(acked.sequence_number, 0, "the rejected puts stored nothing");
}

#[tokio::test]
async fn an_empty_or_overlong_partition_key_is_rejected_naming_partition_key() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    make_stream(&mut c, "s", 1).await;
    for bad in [String::new(), "k".repeat(257), "é".repeat(257)] {
        assert_rejected(
            c.put_record(record(&bad, "v")).await,
            Code::InvalidArgument,
            "partition_key",
        );
        assert_rejected(
            put_records(&mut c, vec![entry(&bad, "v")]).await,
            Code::InvalidArgument,
            "partition_key",
        );
    }
    // 256 characters are allowed, however many bytes they take.
    put(&mut c, "s", &"k".repeat(256), "v").await;
    put(&mut c, "s", &"é".repeat(256), "v").await;
    assert_eq!(everything_stored(&mut c).await.len(), 2);
}

#[tokio::test]
async fn a_bad_explicit_hash_key_is_rejected_naming_explicit_hash_key() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    make_stream(&mut c, "s", 2).await;
    for bad in [
        "abc",
        "12x",
        "-1",
        "01",
        "1.5",
        " 1",
        TWO_TO_THE_128,
        &"9".repeat(40),
    ] {
        let req = pb::PutRecordRequest {
            explicit_hash_key: bad.into(),
            ..record("k", "v")
        };
        assert_rejected(
            c.put_record(req).await,
            Code::InvalidArgument,
            "explicit_hash_key",
        );
        let e = pb::PutRecordsRequestEntry {
            explicit_hash_key: bad.into(),
            ..entry("k", "v")
        };
        assert_rejected(
            put_records(&mut c, vec![e]).await,
            Code::InvalidArgument,
            "explicit_hash_key",
        );
    }
    // The largest key, 2^128 - 1, is fine.
    let req = pb::PutRecordRequest {
        explicit_hash_key: u128::MAX.to_string(),
        ..record("k", "v")
    };
    let acked = c.put_record(req).await.unwrap().into_inner();
    assert_eq!(acked.shard_id, "shardId-000000000001");
    assert_eq!(everything_stored(&mut c).await.len(), 1);
}

#[tokio::test]
async fn put_records_with_no_entries_or_more_than_500_is_rejected_naming_records() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    make_stream(&mut c, "s", 1).await;
    assert_rejected(
        put_records(&mut c, Vec::new()).await,
        Code::InvalidArgument,
        "records",
    );
    let many: Vec<_> = (0..501).map(|i| entry(&format!("k{i}"), "v")).collect();
    assert_rejected(
        put_records(&mut c, many).await,
        Code::InvalidArgument,
        "records",
    );
    assert!(everything_stored(&mut c).await.is_empty());
    let exactly: Vec<_> = (0..500).map(|i| entry(&format!("k{i}"), "v")).collect();
    let res = put_records(&mut c, exactly).await.unwrap().into_inner();
    assert_eq!(res.failed_record_count, 0);
    assert_eq!(everything_stored(&mut c).await.len(), 500);
}

#[tokio::test]
async fn a_put_records_request_over_five_mebibytes_is_rejected_and_stores_nothing() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    make_stream(&mut c, "s", 2).await;
    // Six records of 1 MiB each: every record is within its limit, the request is not.
    let big: Vec<_> = (0..6)
        .map(|i| entry(&format!("k{i}"), vec![1u8; MIB]))
        .collect();
    assert_rejected(
        put_records(&mut c, big).await,
        Code::InvalidArgument,
        "records",
    );
    assert!(everything_stored(&mut c).await.is_empty());
    // Data plus keys of exactly 5 MiB goes through; one byte more does not.
    let exactly = |extra: usize| -> Vec<pb::PutRecordsRequestEntry> {
        let mut v: Vec<_> = (0..4)
            .map(|i| entry(&format!("k{i}"), vec![1u8; MIB]))
            .collect();
        // Five 2-byte keys: the last record's data makes up the rest.
        v.push(entry("k4", vec![1u8; MIB - 10 + extra]));
        v
    };
    assert_rejected(
        put_records(&mut c, exactly(1)).await,
        Code::InvalidArgument,
        "records",
    );
    assert!(everything_stored(&mut c).await.is_empty());
    let fits = exactly(0);
    let res = put_records(&mut c, fits).await.unwrap().into_inner();
    assert_eq!(res.failed_record_count, 0);
    assert_eq!(everything_stored(&mut c).await.len(), 5);
}

#[tokio::test]
async fn a_put_records_with_one_bad_entry_stores_none_of_its_entries() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    make_stream(&mut c, "s", 3).await;
    let good = || -> Vec<pb::PutRecordsRequestEntry> {
        (0..10)
            .map(|i| entry(&format!("k{i}"), format!("v{i}")))
            .collect()
    };
    let bad_entries = [
        ("data", entry("k", vec![0u8; MIB + 1])),
        ("partition_key", entry("", "v")),
        (
            "explicit_hash_key",
            pb::PutRecordsRequestEntry {
                explicit_hash_key: TWO_TO_THE_128.into(),
                ..entry("k", "v")
            },
        ),
    ];
    for (field, bad) in bad_entries {
        // The bad entry last, so every good one was already validated and routed.
        let mut records = good();
        records.push(bad);
        assert_rejected(
            put_records(&mut c, records).await,
            Code::InvalidArgument,
            field,
        );
    }
    assert!(
        everything_stored(&mut c).await.is_empty(),
        "a rejected request stored some of its entries"
    );
    // No sequence number was used up either.
    let res = put_records(&mut c, good()).await.unwrap().into_inner();
    for shard in common::list_shards(&mut c, "s").await {
        let seqs: Vec<u64> = res
            .records
            .iter()
            .filter(|r| r.shard_id == shard.shard_id)
            .map(|r| r.sequence_number)
            .collect();
        assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>());
    }
}

#[tokio::test]
async fn a_limit_above_ten_thousand_is_rejected_naming_limit() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    make_stream(&mut c, "s", 1).await;
    put(&mut c, "s", "k", "v").await;
    let it = common::trim_horizon(&mut c, "s", SHARD).await;
    let r = c
        .get_records(pb::GetRecordsRequest {
            shard_iterator: it.clone(),
            limit: 10_001,
            as_frames: false,
        })
        .await;
    assert_rejected(r, Code::InvalidArgument, "limit");
    let ok = common::get_records(&mut c, &it, 10_000).await;
    assert_eq!(ok.records.len(), 1);
}

#[tokio::test]
async fn a_malformed_or_tampered_iterator_is_rejected_naming_shard_iterator() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    make_stream(&mut c, "s", 1).await;
    put(&mut c, "s", "k", "v").await;
    let genuine = common::trim_horizon(&mut c, "s", SHARD).await;
    let raw = URL_SAFE_NO_PAD
        .decode(&genuine)
        .expect("an iterator is base64");
    let mut tampered = Vec::new();
    // Flip one bit in every byte position in turn: the sequence, the shard, the stream name,
    // the issue time and the signature are all covered.
    for i in 0..raw.len() {
        let mut edited = raw.clone();
        edited[i] ^= 0x01;
        tampered.push(URL_SAFE_NO_PAD.encode(edited));
    }
    let mut truncated = raw.clone();
    truncated.pop();
    let mut malformed = vec![
        String::new(),
        "garbage".to_owned(),
        "not base64 !!".to_owned(),
        URL_SAFE_NO_PAD.encode(truncated),
        format!("{genuine}AA"),
    ];
    malformed.extend(tampered);
    for bad in malformed {
        let r = c
            .get_records(pb::GetRecordsRequest {
                shard_iterator: bad.clone(),
                limit: 0,
                as_frames: false,
            })
            .await;
        assert_rejected(r, Code::InvalidArgument, "shard_iterator");
    }
    assert_eq!(
        common::get_records(&mut c, &genuine, 0).await.records.len(),
        1
    );
}

#[tokio::test]
async fn an_iterator_from_another_server_is_rejected() {
    let a = TestServer::start().await;
    let b = TestServer::start().await;
    let mut ca = a.streams().await;
    let mut cb = b.streams().await;
    make_stream(&mut ca, "s", 1).await;
    make_stream(&mut cb, "s", 1).await;
    let from_a = common::trim_horizon(&mut ca, "s", SHARD).await;
    let r = cb
        .get_records(pb::GetRecordsRequest {
            shard_iterator: from_a,
            limit: 0,
            as_frames: false,
        })
        .await;
    assert_rejected(r, Code::InvalidArgument, "shard_iterator");
}

#[tokio::test]
async fn an_expired_iterator_is_a_failed_precondition_naming_shard_iterator() {
    const TTL: Duration = Duration::from_millis(300);
    let tmp = tempfile::tempdir().unwrap();
    let mut config = BrokerConfig::new(tmp.path());
    config.iterator_ttl = TTL;
    let server = TestServer::start_with(config).await;
    let mut c = server.streams().await;
    make_stream(&mut c, "s", 1).await;
    put(&mut c, "s", "k", "v").await;
    let it = common::trim_horizon(&mut c, "s", SHARD).await;
    let issued_by = common::now_ms();
    // Fresh, it works, and hands back a fresh iterator.
    let fresh = common::get_records(&mut c, &it, 0).await;
    assert_eq!(fresh.records.len(), 1);
    // Once the lifetime has passed on the clock the server reads, both are refused.
    common::wait_until_clock_passes(issued_by + TTL.as_millis() as i64 + 1).await;
    let r = c
        .get_records(pb::GetRecordsRequest {
            shard_iterator: it,
            limit: 0,
            as_frames: false,
        })
        .await;
    assert_rejected(r, Code::FailedPrecondition, "shard_iterator");
    let next_issued_by = common::now_ms();
    common::wait_until_clock_passes(next_issued_by + TTL.as_millis() as i64 + 1).await;
    let r = c
        .get_records(pb::GetRecordsRequest {
            shard_iterator: fresh.next_shard_iterator,
            limit: 0,
            as_frames: false,
        })
        .await;
    assert_rejected(r, Code::FailedPrecondition, "shard_iterator");
}

#[tokio::test]
async fn an_invalid_stream_name_is_rejected_naming_stream_name() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    let long = "a".repeat(129);
    for bad in [
        "",
        "has space",
        "slash/y",
        "back\\slash",
        "ü",
        ".",
        "..",
        "a:b",
        &long,
    ] {
        let r = c
            .create_stream(pb::CreateStreamRequest {
                stream_name: bad.into(),
                shard_count: 1,
                ..Default::default()
            })
            .await;
        assert_rejected(r, Code::InvalidArgument, "stream_name");
        let r = c
            .describe_stream(pb::DescribeStreamRequest {
                stream_name: bad.into(),
            })
            .await;
        assert_rejected(r, Code::InvalidArgument, "stream_name");
        let r = c
            .put_record(pb::PutRecordRequest {
                stream_name: bad.into(),
                ..record("k", "v")
            })
            .await;
        assert_rejected(r, Code::InvalidArgument, "stream_name");
    }
    let names = common::list_stream_names(&mut c).await;
    assert!(names.is_empty(), "{names:?}");
    // The longest allowed name, with every allowed character class.
    let ok = format!("Az09_.-{}", "x".repeat(121));
    make_stream(&mut c, &ok, 1).await;
}

#[tokio::test]
async fn a_shard_count_of_zero_or_above_the_cap_is_rejected_naming_shard_count() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    for bad in [0, 1025, u32::MAX] {
        let r = c
            .create_stream(pb::CreateStreamRequest {
                stream_name: "s".into(),
                shard_count: bad,
                ..Default::default()
            })
            .await;
        assert_rejected(r, Code::InvalidArgument, "shard_count");
    }

    let tmp = tempfile::tempdir().unwrap();
    let mut config = BrokerConfig::new(tmp.path());
    config.stream_limits.max_shard_count = 4;
    let capped = TestServer::start_with(config).await;
    let mut c = capped.streams().await;
    let r = c
        .create_stream(pb::CreateStreamRequest {
            stream_name: "s".into(),
            shard_count: 5,
            ..Default::default()
        })
        .await;
    assert_rejected(r, Code::InvalidArgument, "shard_count");
    assert_eq!(make_stream(&mut c, "s", 4).await.shards.len(), 4);
}

#[tokio::test]
async fn bad_stream_settings_are_rejected_naming_the_setting() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    let cases = [
        (
            "retention_period_hours",
            pb::CreateStreamRequest {
                retention_period_hours: 8761,
                ..Default::default()
            },
        ),
        (
            "dedup_window_seconds",
            pb::CreateStreamRequest {
                dedup_window_seconds: 3601,
                ..Default::default()
            },
        ),
        (
            "dedup_scope",
            pb::CreateStreamRequest {
                dedup_scope: 7,
                ..Default::default()
            },
        ),
    ];
    for (field, req) in cases {
        let req = pb::CreateStreamRequest {
            stream_name: "s".into(),
            shard_count: 1,
            ..req
        };
        assert_rejected(c.create_stream(req).await, Code::InvalidArgument, field);
    }
}

#[tokio::test]
async fn a_bad_iterator_type_or_missing_position_is_rejected_naming_the_field() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    make_stream(&mut c, "s", 1).await;
    put(&mut c, "s", "k", "v").await;
    let ask = |kind: i32, seq: Option<u64>, ts: Option<i64>| pb::GetShardIteratorRequest {
        stream_name: "s".into(),
        shard_id: SHARD.into(),
        shard_iterator_type: kind,
        starting_sequence_number: seq,
        timestamp_ms: ts,
        filter: None,
    };
    let cases = [
        ("shard_iterator_type", ask(0, None, None)),
        ("shard_iterator_type", ask(99, None, None)),
        (
            "starting_sequence_number",
            ask(It::AtSequenceNumber as i32, None, None),
        ),
        (
            "starting_sequence_number",
            ask(It::AfterSequenceNumber as i32, None, None),
        ),
        ("timestamp_ms", ask(It::AtTimestamp as i32, None, None)),
        ("timestamp_ms", ask(It::AtTimestamp as i32, None, Some(-1))),
    ];
    for (field, req) in cases {
        assert_rejected(
            c.get_shard_iterator(req).await,
            Code::InvalidArgument,
            field,
        );
    }
    let no_position = c
        .subscribe_to_shard(pb::SubscribeToShardRequest {
            stream_name: "s".into(),
            shard_id: SHARD.into(),
            starting_position: None,
            filter: None,
        })
        .await;
    assert_rejected(no_position, Code::InvalidArgument, "starting_position");
    let no_type = c
        .subscribe_to_shard(pb::SubscribeToShardRequest {
            stream_name: "s".into(),
            shard_id: SHARD.into(),
            starting_position: Some(pb::StartingPosition::default()),
            filter: None,
        })
        .await;
    assert_rejected(no_type, Code::InvalidArgument, "starting_position.type");
}

#[tokio::test]
async fn an_unknown_stream_is_not_found_on_every_rpc() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    make_stream(&mut c, "s", 1).await;
    let missing = "missing";
    assert_rejected(
        c.describe_stream(pb::DescribeStreamRequest {
            stream_name: missing.into(),
        })
        .await,
        Code::NotFound,
        missing,
    );
    assert_rejected(
        c.list_shards(pb::ListShardsRequest {
            stream_name: missing.into(),
            shard_filter: None,
        })
        .await,
        Code::NotFound,
        missing,
    );
    assert_rejected(
        c.delete_stream(pb::DeleteStreamRequest {
            stream_name: missing.into(),
        })
        .await,
        Code::NotFound,
        missing,
    );
    assert_rejected(
        c.put_record(pb::PutRecordRequest {
            stream_name: missing.into(),
            ..record("k", "v")
        })
        .await,
        Code::NotFound,
        missing,
    );
    assert_rejected(
        c.put_records(pb::PutRecordsRequest {
            stream_name: missing.into(),
            records: vec![entry("k", "v")],
        })
        .await,
        Code::NotFound,
        missing,
    );
    assert_rejected(
        c.get_shard_iterator(pb::GetShardIteratorRequest {
            stream_name: missing.into(),
            shard_id: SHARD.into(),
            shard_iterator_type: It::TrimHorizon as i32,
            ..Default::default()
        })
        .await,
        Code::NotFound,
        missing,
    );
    assert_rejected(
        common::subscribe(&mut c, missing, SHARD, It::TrimHorizon, None).await,
        Code::NotFound,
        missing,
    );
    assert!(everything_stored(&mut c).await.is_empty());
}

#[tokio::test]
async fn an_unknown_shard_is_not_found() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    make_stream(&mut c, "s", 2).await;
    for shard in ["shardId-000000000002", "shardId-000000999999"] {
        let r = c
            .get_shard_iterator(pb::GetShardIteratorRequest {
                stream_name: "s".into(),
                shard_id: shard.into(),
                shard_iterator_type: It::TrimHorizon as i32,
                ..Default::default()
            })
            .await;
        assert_rejected(r, Code::NotFound, shard);
        assert_rejected(
            common::subscribe(&mut c, "s", shard, It::Latest, None).await,
            Code::NotFound,
            shard,
        );
    }
}

#[tokio::test]
async fn creating_a_stream_twice_is_already_exists_and_leaves_the_first_intact() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    let first = make_stream(&mut c, "s", 2).await;
    put(&mut c, "s", "k", "kept").await;
    let again = c
        .create_stream(pb::CreateStreamRequest {
            stream_name: "s".into(),
            shard_count: 5,
            retention_period_hours: 48,
            ..Default::default()
        })
        .await;
    assert_rejected(again, Code::AlreadyExists, "s");
    let now = common::describe_stream(&mut c, "s").await;
    assert_eq!(now, first);
    let stored = everything_stored(&mut c).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].data, Bytes::from("kept"));
}
