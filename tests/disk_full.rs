//! A full disk over the real APIs: puts fail with a code of their own that names the cause
//! (not a throughput code that tells a client to slow down), reads go on, nothing stored is
//! harmed, and puts succeed again once there is space, without a restart.

mod common;

use std::sync::Arc;

use base64::Engine;
use common::kinesis;
use common::TestServer;
use shardlog::fsio::faulty::FaultyIo;
use shardlog::proto::v1 as pb;

fn entry(key: &str, data: &str) -> pb::PutRecordsRequestEntry {
    pb::PutRecordsRequestEntry {
        partition_key: key.into(),
        data: bytes::Bytes::from(data.to_owned()),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_full_disk_has_its_own_error_and_puts_resume_once_space_is_freed() {
    let dir = tempfile::tempdir().unwrap();
    let io = FaultyIo::new();
    let server = TestServer::start_with_io(
        shardlog::broker::BrokerConfig::new(dir.path()),
        Arc::new(io.clone()),
    )
    .await;
    let mut s = server.streams().await;
    common::make_stream(&mut s, "logs", 1).await;
    common::put(&mut s, "logs", "k", "before").await;

    io.set_space_left(Some(0));
    // gRPC PutRecords: each entry fails alone, with the disk-full code and the cause.
    let answer = s
        .put_records(pb::PutRecordsRequest {
            stream_name: "logs".into(),
            records: vec![entry("a", "one"), entry("b", "two")],
        })
        .await
        .expect("the request itself succeeds")
        .into_inner();
    assert_eq!(answer.failed_record_count, 2);
    for r in &answer.records {
        assert_eq!(r.error_code, "DiskFullException", "{r:?}");
        assert!(r.error_message.contains("no space left on device"), "{r:?}");
    }
    // gRPC PutRecord: RESOURCE_EXHAUSTED naming the cause.
    let refused = s
        .put_record(pb::PutRecordRequest {
            stream_name: "logs".into(),
            partition_key: "c".into(),
            data: bytes::Bytes::from_static(b"three"),
            ..Default::default()
        })
        .await
        .expect_err("no space");
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
    assert!(
        refused.message().contains("no space left on device"),
        "{refused:?}"
    );
    // The Kinesis API: an internal failure that says why, never a throughput error.
    let data = base64::engine::general_purpose::STANDARD.encode("four");
    let put = kinesis::json(
        server.kinesis_addr,
        "PutRecords",
        serde_json::json!({
            "StreamName": "logs",
            "Records": [{ "PartitionKey": "d", "Data": data }],
        }),
    )
    .await;
    assert_eq!(put.status, hyper::StatusCode::OK);
    let body = put.json();
    assert_eq!(body["Records"][0]["ErrorCode"], "InternalFailure", "{body}");
    let message = body["Records"][0]["ErrorMessage"].as_str().unwrap();
    assert!(message.contains("no space left on device"), "{body}");
    let single = kinesis::json(
        server.kinesis_addr,
        "PutRecord",
        serde_json::json!({ "StreamName": "logs", "PartitionKey": "e", "Data": data }),
    )
    .await;
    assert_eq!(single.status, hyper::StatusCode::INTERNAL_SERVER_ERROR);
    let (kind, message) = single.error();
    assert_eq!(kind, "InternalFailure");
    assert!(message.contains("no space left on device"), "{message}");

    // Reads go on, and what was stored is whole.
    let shard = "shardId-000000000000";
    let it = common::iterator(
        &mut s,
        "logs",
        shard,
        pb::ShardIteratorType::TrimHorizon,
        None,
        None,
    )
    .await;
    let read = common::get_records(&mut s, &it, 100).await;
    let data: Vec<_> = read.records.iter().map(|r| r.data.clone()).collect();
    assert_eq!(data, vec![bytes::Bytes::from_static(b"before")]);

    // Space is freed: puts succeed again, without a restart.
    io.set_space_left(None);
    common::put(&mut s, "logs", "k", "after").await;
    let read = common::get_records(&mut s, &it, 100).await;
    let data: Vec<_> = read.records.iter().map(|r| r.data.clone()).collect();
    assert_eq!(
        data,
        vec![
            bytes::Bytes::from_static(b"before"),
            bytes::Bytes::from_static(b"after")
        ]
    );
    server.stop().await;
}
