//! Message attributes over real gRPC: stored with the record, read back, refused with the
//! entry and attribute named, counted in content-based deduplication and in the record size.

mod common;

use std::collections::HashMap;

use bytes::Bytes;
use shardlog::proto::v1 as pb;
use shardlog::BrokerConfig;
use tonic::Code;

const SHARD: &str = "shardId-000000000000";

fn string(value: &str) -> pb::AttributeValue {
    pb::AttributeValue {
        data_type: "String".into(),
        string_value: value.into(),
        ..Default::default()
    }
}

fn attrs(pairs: &[(&str, pb::AttributeValue)]) -> HashMap<String, pb::AttributeValue> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn entry(
    data: &str,
    attributes: HashMap<String, pb::AttributeValue>,
) -> pb::PutRecordsRequestEntry {
    pb::PutRecordsRequestEntry {
        partition_key: "k".into(),
        data: Bytes::copy_from_slice(data.as_bytes()),
        attributes,
        ..Default::default()
    }
}

#[tokio::test]
async fn a_bad_attribute_rejects_the_request_naming_the_entry_and_the_attribute_and_stores_nothing()
{
    let server = common::TestServer::start().await;
    let mut c = server.streams().await;
    common::make_stream(&mut c, "s", 1).await;
    let cases: Vec<(HashMap<String, pb::AttributeValue>, &str, &str)> = vec![
        (
            attrs(&[("AWS.reserved", string("x"))]),
            "AWS.reserved",
            "reserved",
        ),
        (attrs(&[("bad name", string("x"))]), "bad name", "A-Z"),
        (
            attrs(&[(
                "n",
                pb::AttributeValue {
                    data_type: "Number".into(),
                    string_value: "twelve".into(),
                    ..Default::default()
                },
            )]),
            "n",
            "not a number",
        ),
        (
            attrs(&[(
                "t",
                pb::AttributeValue {
                    data_type: "Float".into(),
                    string_value: "1".into(),
                    ..Default::default()
                },
            )]),
            "t",
            "data_type",
        ),
        (
            (0..11).map(|i| (format!("a{i}"), string("v"))).collect(),
            "entry 1",
            "more than 10",
        ),
    ];
    for (bad, name, why) in cases {
        let request = pb::PutRecordsRequest {
            stream_name: "s".into(),
            records: vec![entry("good", HashMap::new()), entry("bad", bad)],
        };
        let status = c.put_records(request).await.expect_err("refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        for part in ["entry 1", name, why] {
            assert!(
                status.message().contains(part),
                "{:?} lacks {part:?}",
                status.message()
            );
        }
    }
    assert!(common::read_shard(&mut c, "s", SHARD).await.is_empty());
}

#[tokio::test]
async fn attributes_count_against_the_record_size() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = BrokerConfig::new(tmp.path());
    config.max_record_bytes = 100;
    let server = common::TestServer::start_with(config).await;
    let mut c = server.streams().await;
    common::make_stream(&mut c, "s", 1).await;
    let fits = c
        .put_record(pb::PutRecordRequest {
            stream_name: "s".into(),
            partition_key: "k".into(),
            data: Bytes::from(vec![1u8; 100]),
            ..Default::default()
        })
        .await;
    assert!(fits.is_ok(), "{fits:?}");
    let too_big = c
        .put_record(pb::PutRecordRequest {
            stream_name: "s".into(),
            partition_key: "k".into(),
            data: Bytes::from(vec![1u8; 90]),
            attributes: attrs(&[("note", string("more than ten bytes"))]),
            ..Default::default()
        })
        .await;
    common::assert_rejected(too_big, Code::InvalidArgument, "attributes");
}

/// Stream `s`, one shard, deduplicating records without an id by their content.
async fn content_deduplicated_stream(c: &mut common::Streams) {
    common::make_stream_with(
        c,
        pb::CreateStreamRequest {
            stream_name: "s".into(),
            shard_count: 1,
            content_based_deduplication: true,
            ..Default::default()
        },
    )
    .await;
}

#[tokio::test]
async fn content_based_deduplication_counts_the_attributes() {
    let server = common::TestServer::start().await;
    let mut c = server.streams().await;
    content_deduplicated_stream(&mut c).await;
    let red = attrs(&[("color", string("red")), ("size", string("L"))]);
    let blue = attrs(&[("color", string("blue")), ("size", string("L"))]);
    let put = |a: HashMap<String, pb::AttributeValue>| pb::PutRecordRequest {
        stream_name: "s".into(),
        partition_key: "k".into(),
        data: Bytes::from_static(b"same data"),
        attributes: a,
        ..Default::default()
    };
    let first = c.put_record(put(red.clone())).await.unwrap().into_inner();
    let other = c.put_record(put(blue)).await.unwrap().into_inner();
    let plain = c
        .put_record(put(HashMap::new()))
        .await
        .unwrap()
        .into_inner();
    // The same map, built in another order: the same content.
    let mut reordered = HashMap::new();
    reordered.insert("size".to_owned(), string("L"));
    reordered.insert("color".to_owned(), string("red"));
    let again = c.put_record(put(reordered)).await.unwrap().into_inner();
    assert!(!first.duplicate && !other.duplicate && !plain.duplicate);
    assert!(again.duplicate, "{again:?}");
    assert_eq!(again.sequence_number, first.sequence_number);
    let stored = common::read_shard(&mut c, "s", SHARD).await;
    assert_eq!(stored.len(), 3);
    assert_eq!(stored[0].attributes, red);
}

#[tokio::test]
async fn attributes_survive_a_restart_and_dedup_by_content_still_sees_them() {
    let server = common::TestServer::start().await;
    let mut c = server.streams().await;
    content_deduplicated_stream(&mut c).await;
    let a = attrs(&[
        (
            "n",
            pb::AttributeValue {
                data_type: "Number".into(),
                string_value: "3.015e2".into(),
                ..Default::default()
            },
        ),
        (
            "b",
            pb::AttributeValue {
                data_type: "Binary".into(),
                binary_value: Bytes::from_static(&[0, 1, 255]),
                ..Default::default()
            },
        ),
    ]);
    let put = pb::PutRecordRequest {
        stream_name: "s".into(),
        partition_key: "k".into(),
        data: Bytes::from_static(b"payload"),
        attributes: a.clone(),
        ..Default::default()
    };
    let first = c.put_record(put.clone()).await.unwrap().into_inner();
    let server = server.restart().await;
    let mut c = server.streams().await;
    let stored = common::read_shard(&mut c, "s", SHARD).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].attributes, a);
    // The dedup window rebuilt from the log keys the record by data and attributes.
    let again = c.put_record(put).await.unwrap().into_inner();
    assert!(again.duplicate);
    assert_eq!(again.sequence_number, first.sequence_number);
}
