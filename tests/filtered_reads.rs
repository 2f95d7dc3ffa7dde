//! Content filters over real gRPC: every operator of the pattern language in both scopes,
//! through filtered GetRecords, SubscribeToShard and TestPattern; filtered readers move past
//! the records they skip; invalid patterns are refused with the path of the fault.

mod common;

use std::collections::HashMap;

use bytes::Bytes;
use shardlog::proto::v1 as pb;
use shardlog::proto::v1::router_client::RouterClient;
use shardlog::proto::v1::ShardIteratorType as It;
use tonic::Code;

const SHARD: &str = "shardId-000000000000";

fn data_filter(pattern: &str) -> Option<pb::Filter> {
    Some(pb::Filter {
        pattern: pattern.into(),
        scope: pb::FilterScope::Data as i32,
    })
}

fn attribute_filter(pattern: &str) -> Option<pb::Filter> {
    Some(pb::Filter {
        pattern: pattern.into(),
        scope: pb::FilterScope::Attributes as i32,
    })
}

fn attr(data_type: &str, value: &str) -> pb::AttributeValue {
    pb::AttributeValue {
        data_type: data_type.into(),
        string_value: value.into(),
        ..Default::default()
    }
}

async fn filtered_iterator(
    c: &mut common::Streams,
    stream: &str,
    filter: Option<pb::Filter>,
) -> Result<String, tonic::Status> {
    c.get_shard_iterator(pb::GetShardIteratorRequest {
        stream_name: stream.into(),
        shard_id: SHARD.into(),
        shard_iterator_type: It::TrimHorizon as i32,
        filter,
        ..Default::default()
    })
    .await
    .map(|r| r.into_inner().shard_iterator)
}

/// One operator: a pattern, a record that matches it and one that does not.
struct Case {
    name: &'static str,
    pattern: &'static str,
    yes: &'static str,
    no: &'static str,
}

const DATA_CASES: &[Case] = &[
    Case {
        name: "exact string",
        pattern: r#"{"source":["shop"]}"#,
        yes: r#"{"source":"shop"}"#,
        no: r#"{"source":"Shop"}"#,
    },
    Case {
        name: "exact number",
        pattern: r#"{"n":[300]}"#,
        yes: r#"{"n":3e2}"#,
        no: r#"{"n":"300"}"#,
    },
    Case {
        name: "true",
        pattern: r#"{"ok":[true]}"#,
        yes: r#"{"ok":true}"#,
        no: r#"{"ok":"true"}"#,
    },
    Case {
        name: "null",
        pattern: r#"{"v":[null]}"#,
        yes: r#"{"v":null}"#,
        no: r#"{"w":1}"#,
    },
    Case {
        name: "array in the event",
        pattern: r#"{"tags":["b"]}"#,
        yes: r#"{"tags":["a","b"]}"#,
        no: r#"{"tags":["a","c"]}"#,
    },
    Case {
        name: "nested object",
        pattern: r#"{"detail":{"state":["running"]}}"#,
        yes: r#"{"detail":{"state":"running"}}"#,
        no: r#"{"detail":{"state":"stopped"}}"#,
    },
    Case {
        name: "prefix",
        pattern: r#"{"time":[{"prefix":"2026-12"}]}"#,
        yes: r#"{"time":"2026-12-07"}"#,
        no: r#"{"time":"2026-11-30"}"#,
    },
    Case {
        name: "prefix ignoring case",
        pattern: r#"{"k":[{"prefix":{"equals-ignore-case":"ab"}}]}"#,
        yes: r#"{"k":"ABc"}"#,
        no: r#"{"k":"xab"}"#,
    },
    Case {
        name: "suffix",
        pattern: r#"{"file":[{"suffix":".png"}]}"#,
        yes: r#"{"file":"a.png"}"#,
        no: r#"{"file":"a.PNG"}"#,
    },
    Case {
        name: "suffix ignoring case",
        pattern: r#"{"file":[{"suffix":{"equals-ignore-case":".png"}}]}"#,
        yes: r#"{"file":"a.PNG"}"#,
        no: r#"{"file":"a.jpg"}"#,
    },
    Case {
        name: "anything-but value",
        pattern: r#"{"state":[{"anything-but":"init"}]}"#,
        yes: r#"{"state":"done"}"#,
        no: r#"{"state":"init"}"#,
    },
    Case {
        name: "anything-but numbers",
        pattern: r#"{"n":[{"anything-but":[1,2]}]}"#,
        yes: r#"{"n":3}"#,
        no: r#"{"n":2.0}"#,
    },
    Case {
        name: "anything-but prefix",
        pattern: r#"{"s":[{"anything-but":{"prefix":"tmp"}}]}"#,
        yes: r#"{"s":"keep"}"#,
        no: r#"{"s":"tmp-1"}"#,
    },
    Case {
        name: "anything-but suffix",
        pattern: r#"{"s":[{"anything-but":{"suffix":".tmp"}}]}"#,
        yes: r#"{"s":"a.txt"}"#,
        no: r#"{"s":"a.tmp"}"#,
    },
    Case {
        name: "anything-but wildcard",
        pattern: r#"{"s":[{"anything-but":{"wildcard":"*/lib/*"}}]}"#,
        yes: r#"{"s":"/usr/bin/x"}"#,
        no: r#"{"s":"/usr/lib/x"}"#,
    },
    Case {
        name: "anything-but ignoring case",
        pattern: r#"{"s":[{"anything-but":{"equals-ignore-case":["a","B"]}}]}"#,
        yes: r#"{"s":"c"}"#,
        no: r#"{"s":"b"}"#,
    },
    Case {
        name: "numeric range",
        pattern: r#"{"price":[{"numeric":[">",10,"<=",20]}]}"#,
        yes: r#"{"price":20}"#,
        no: r#"{"price":10}"#,
    },
    Case {
        name: "numeric one bound",
        pattern: r#"{"price":[{"numeric":["<",0]}]}"#,
        yes: r#"{"price":-0.5}"#,
        no: r#"{"price":"-1"}"#,
    },
    Case {
        name: "exists true",
        pattern: r#"{"id":[{"exists":true}]}"#,
        yes: r#"{"id":null}"#,
        no: r#"{"other":1}"#,
    },
    Case {
        name: "exists false",
        pattern: r#"{"id":[{"exists":false}]}"#,
        yes: r#"{"other":1}"#,
        no: r#"{"id":""}"#,
    },
    Case {
        name: "equals-ignore-case",
        pattern: r#"{"city":[{"equals-ignore-case":"αθηνα"}]}"#,
        yes: r#"{"city":"ΑΘΗΝΑ"}"#,
        no: r#"{"city":"athens"}"#,
    },
    Case {
        name: "wildcard",
        pattern: r#"{"arn":[{"wildcard":"arn:*:bus/*"}]}"#,
        yes: r#"{"arn":"arn:x:bus/y"}"#,
        no: r#"{"arn":"arn:x:queue/y"}"#,
    },
    Case {
        name: "cidr",
        pattern: r#"{"ip":[{"cidr":"10.0.0.0/24"}]}"#,
        yes: r#"{"ip":"10.0.0.255"}"#,
        no: r#"{"ip":"10.0.1.0"}"#,
    },
    Case {
        name: "$or",
        pattern: r#"{"$or":[{"a":[1]},{"b":[2]}]}"#,
        yes: r#"{"b":2}"#,
        no: r#"{"a":2,"b":1}"#,
    },
];

const ATTRIBUTE_CASES: &[Case] = &[
    Case {
        name: "string",
        pattern: r#"{"store":["example"]}"#,
        yes: "store=String:example",
        no: "store=String:other",
    },
    Case {
        name: "number",
        pattern: r#"{"price":[{"numeric":[">=",301.5]}]}"#,
        yes: "price=Number:3.015e2",
        no: "price=String:400",
    },
    Case {
        name: "string array",
        pattern: r#"{"tags":["b"]}"#,
        yes: r#"tags=String.Array:["a","b"]"#,
        no: r#"tags=String.Array:["c"]"#,
    },
    Case {
        name: "prefix",
        pattern: r#"{"store":[{"prefix":"ex"}]}"#,
        yes: "store=String:example",
        no: "store=String:my-example",
    },
    Case {
        name: "exists false",
        pattern: r#"{"debug":[{"exists":false}]}"#,
        yes: "store=String:x",
        no: "debug=String:1",
    },
    Case {
        name: "anything-but",
        pattern: r#"{"store":[{"anything-but":["a"]}]}"#,
        yes: "store=String:b",
        no: "store=String:a",
    },
    Case {
        name: "anything-but prefix",
        pattern: r#"{"store":[{"anything-but":{"prefix":"tmp"}}]}"#,
        yes: "store=String:keep",
        no: "store=String:tmp-1",
    },
    Case {
        name: "suffix",
        pattern: r#"{"file":[{"suffix":".png"}]}"#,
        yes: "file=String:a.png",
        no: "file=String:a.jpg",
    },
    Case {
        name: "prefix ignoring case",
        pattern: r#"{"store":[{"prefix":{"equals-ignore-case":"EX"}}]}"#,
        yes: "store=String:example",
        no: "store=String:other",
    },
    Case {
        name: "equals-ignore-case",
        pattern: r#"{"city":[{"equals-ignore-case":"zürich"}]}"#,
        yes: "city=String:ZÜRICH",
        no: "city=String:Zurich",
    },
    Case {
        name: "numeric range",
        pattern: r#"{"n":[{"numeric":[">",0,"<=",5]}]}"#,
        yes: "n=Number:5",
        no: "n=Number:5.5",
    },
    Case {
        name: "exists true",
        pattern: r#"{"debug":[{"exists":true}]}"#,
        yes: "debug=String:1",
        no: "store=String:x",
    },
    Case {
        name: "wildcard",
        pattern: r#"{"arn":[{"wildcard":"arn:*:bus/*"}]}"#,
        yes: "arn=String:arn:x:bus/y",
        no: "arn=String:arn:x:queue/y",
    },
    Case {
        name: "cidr",
        pattern: r#"{"ip":[{"cidr":"10.0.0.0/24"}]}"#,
        yes: "ip=String:10.0.0.7",
        no: "ip=String:10.0.1.7",
    },
    Case {
        name: "$or",
        pattern: r#"{"$or":[{"a":["1"]},{"b":[2]}]}"#,
        yes: "b=Number:2",
        no: "a=String:2",
    },
    Case {
        name: "number in a string array",
        pattern: r#"{"sizes":[{"numeric":[">",40]}]}"#,
        yes: "sizes=String.Array:[38, 42]",
        no: r#"sizes=String.Array:["42"]"#,
    },
];

/// `name=Type:value` as one attribute.
fn attributes_of(spec: &str) -> HashMap<String, pb::AttributeValue> {
    let (name, rest) = spec.split_once('=').expect("name=Type:value");
    let (data_type, value) = rest.split_once(':').expect("Type:value");
    [(name.to_owned(), attr(data_type, value))].into()
}

async fn put_pair(
    c: &mut common::Streams,
    stream: &str,
    yes: pb::PutRecordsRequestEntry,
    no: pb::PutRecordsRequestEntry,
) {
    // Non-matching records on both sides, so a reader must skip some to find the match.
    let out = common::put_records(c, stream, vec![no.clone(), yes, no]).await;
    assert_eq!(out.failed_record_count, 0, "{out:?}");
}

#[tokio::test]
async fn every_operator_filters_get_records_in_the_data_scope() {
    let server = common::TestServer::start().await;
    let mut c = server.streams().await;
    for (i, case) in DATA_CASES.iter().enumerate() {
        let stream = format!("data-{i}");
        common::make_stream(&mut c, &stream, 1).await;
        let entry = |data: &str| pb::PutRecordsRequestEntry {
            partition_key: "k".into(),
            data: Bytes::copy_from_slice(data.as_bytes()),
            ..Default::default()
        };
        put_pair(&mut c, &stream, entry(case.yes), entry(case.no)).await;
        let it = filtered_iterator(&mut c, &stream, data_filter(case.pattern))
            .await
            .unwrap_or_else(|s| panic!("{}: {s}", case.name));
        let got = common::read_to_end(&mut c, &it).await;
        let datas: Vec<_> = got
            .iter()
            .map(|r| String::from_utf8_lossy(&r.data).into_owned())
            .collect();
        assert_eq!(datas, [case.yes], "{}", case.name);
        assert_eq!(got[0].sequence_number, 1, "{}", case.name);
    }
}

#[tokio::test]
async fn every_operator_filters_a_subscription_in_the_attribute_scope() {
    let server = common::TestServer::start().await;
    let mut c = server.streams().await;
    for (i, case) in ATTRIBUTE_CASES.iter().enumerate() {
        let stream = format!("attrs-{i}");
        common::make_stream(&mut c, &stream, 1).await;
        let entry = |spec: &str| pb::PutRecordsRequestEntry {
            partition_key: "k".into(),
            data: Bytes::from_static(b"not json at all"),
            attributes: attributes_of(spec),
            ..Default::default()
        };
        put_pair(&mut c, &stream, entry(case.yes), entry(case.no)).await;
        let mut events = c
            .subscribe_to_shard(pb::SubscribeToShardRequest {
                stream_name: stream.clone(),
                shard_id: SHARD.into(),
                starting_position: Some(pb::StartingPosition {
                    r#type: It::TrimHorizon as i32,
                    ..Default::default()
                }),
                filter: attribute_filter(case.pattern),
            })
            .await
            .unwrap_or_else(|s| panic!("{}: {s}", case.name))
            .into_inner();
        let got = common::receive_records(&mut events, 1).await;
        assert_eq!(got.len(), 1, "{}", case.name);
        assert_eq!(got[0].sequence_number, 1, "{}", case.name);
        assert_eq!(got[0].attributes, attributes_of(case.yes), "{}", case.name);
    }
}

#[tokio::test]
async fn a_filtered_reader_moves_past_the_records_it_skips() {
    let server = common::TestServer::start().await;
    let mut c = server.streams().await;
    common::make_stream(&mut c, "s", 1).await;
    for i in 0..20 {
        let data = format!(r#"{{"i":{i},"even":{}}}"#, i % 2 == 0);
        common::put(&mut c, "s", "k", data).await;
    }
    // Only the last record matches: one read returns it and the next iterator is past it.
    let it = filtered_iterator(&mut c, "s", data_filter(r#"{"i":[19]}"#))
        .await
        .unwrap();
    let first = common::get_records(&mut c, &it, 0).await;
    assert_eq!(first.records.len(), 1);
    assert_eq!(first.records[0].sequence_number, 19);
    assert_eq!(first.millis_behind_latest, 0);
    let after = common::get_records(&mut c, &first.next_shard_iterator, 0).await;
    assert!(after.records.is_empty());
    // Records that do not match at all still move the reader: the next read starts after them.
    let none = filtered_iterator(&mut c, "s", data_filter(r#"{"i":["nineteen"]}"#))
        .await
        .unwrap();
    let read = common::get_records(&mut c, &none, 0).await;
    assert!(read.records.is_empty());
    common::put(&mut c, "s", "k", r#"{"i":"nineteen"}"#).await;
    let next = common::get_records(&mut c, &read.next_shard_iterator, 0).await;
    assert_eq!(next.records.len(), 1);
    assert_eq!(next.records[0].sequence_number, 20);

    // A subscription's continuation covers the skipped records.
    let mut events = c
        .subscribe_to_shard(pb::SubscribeToShardRequest {
            stream_name: "s".into(),
            shard_id: SHARD.into(),
            starting_position: Some(pb::StartingPosition {
                r#type: It::TrimHorizon as i32,
                ..Default::default()
            }),
            filter: data_filter(r#"{"even":[true]}"#),
        })
        .await
        .unwrap()
        .into_inner();
    let evens = common::receive_records(&mut events, 10).await;
    let seqs: Vec<u64> = evens.iter().map(|r| r.sequence_number).collect();
    assert_eq!(seqs, (0..20).step_by(2).collect::<Vec<u64>>());
    // Caught up past record 20 (which does not match): a keep-alive names it.
    loop {
        let ev = common::next_event(&mut events)
            .await
            .unwrap()
            .expect("event");
        assert!(ev.records.is_empty(), "{ev:?}");
        if ev.continuation_sequence_number == Some(20) {
            break;
        }
    }
}

#[tokio::test]
async fn an_invalid_pattern_is_refused_with_the_path_of_the_fault() {
    let server = common::TestServer::start().await;
    let mut c = server.streams().await;
    common::make_stream(&mut c, "s", 1).await;
    let bad = r#"{"detail":{"price":[{"numeric":[">"]}]}}"#;
    let refused = filtered_iterator(&mut c, "s", data_filter(bad)).await;
    common::assert_rejected(refused, Code::InvalidArgument, "$.detail.price");
    let refused = c
        .subscribe_to_shard(pb::SubscribeToShardRequest {
            stream_name: "s".into(),
            shard_id: SHARD.into(),
            starting_position: Some(pb::StartingPosition {
                r#type: It::Latest as i32,
                ..Default::default()
            }),
            filter: data_filter(r#"{"a":"not an array"}"#),
        })
        .await;
    common::assert_rejected(refused, Code::InvalidArgument, "$.a");
    let mut router = RouterClient::new(server.channel().await);
    let refused = router
        .test_pattern(pb::TestPatternRequest {
            filter: data_filter(r#"{"a":[{"EXISTS":true}]}"#),
            ..Default::default()
        })
        .await;
    common::assert_rejected(refused, Code::InvalidArgument, "filter.pattern");
    let nested = router
        .test_pattern(pb::TestPatternRequest {
            filter: attribute_filter(r#"{"a":{"b":["c"]}}"#),
            ..Default::default()
        })
        .await;
    common::assert_rejected(nested, Code::InvalidArgument, "nested");
}

#[tokio::test]
async fn test_pattern_answers_for_both_scopes() {
    let server = common::TestServer::start().await;
    let mut router = RouterClient::new(server.channel().await);
    for (i, case) in DATA_CASES.iter().enumerate() {
        for (data, expected) in [(case.yes, true), (case.no, false)] {
            let got = router
                .test_pattern(pb::TestPatternRequest {
                    filter: data_filter(case.pattern),
                    data: Bytes::copy_from_slice(data.as_bytes()),
                    attributes: HashMap::new(),
                })
                .await
                .unwrap_or_else(|s| panic!("case {i} {}: {s}", case.name))
                .into_inner();
            assert_eq!(got.matches, expected, "{}: {data}", case.name);
        }
    }
    for case in ATTRIBUTE_CASES {
        for (spec, expected) in [(case.yes, true), (case.no, false)] {
            let got = router
                .test_pattern(pb::TestPatternRequest {
                    filter: attribute_filter(case.pattern),
                    data: Bytes::new(),
                    attributes: attributes_of(spec),
                })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(got.matches, expected, "{}: {spec}", case.name);
        }
    }
    // SNS: a record with no attributes at all matches no attribute policy, not even exists:false.
    let empty = router
        .test_pattern(pb::TestPatternRequest {
            filter: attribute_filter(r#"{"debug":[{"exists":false}]}"#),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!empty.matches);
}
