//! The Kinesis API on the wire, below any SDK: both encodings byte for byte, every error shape,
//! records shared with gRPC, SubscribeToShard's event stream over HTTP/2, and stream options
//! surviving a restart. The SDK suites (`kinesis_sdk.rs`) check the same from the clients' side.

mod common;

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::{Bytes, BytesMut};
use common::kinesis::{self as k, cbor_get, cbor_map};
use common::{TestServer, EVENT_TIMEOUT};
use http_body_util::BodyExt;
use hyper::StatusCode;
use serde_json::json;
use shardlog::broker::BrokerConfig;
use shardlog::kinesis::eventstream::Message;
use shardlog::kinesis::KinesisConfig;
use shardlog::proto::v1 as pb;

async fn create(server: &TestServer, name: &str, shards: u32) {
    k::ok(
        server.kinesis_addr,
        "CreateStream",
        json!({"StreamName": name, "ShardCount": shards}),
    )
    .await;
}

fn all_bytes() -> Vec<u8> {
    (0..=255u8).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_travel_byte_for_byte_through_json_cbor_and_grpc() {
    let server = TestServer::start().await;
    let addr = server.kinesis_addr;
    create(&server, "mixed", 1).await;

    // JSON: base64 data.
    let put = k::ok(
        addr,
        "PutRecord",
        json!({"StreamName": "mixed", "PartitionKey": "j", "Data": STANDARD.encode(all_bytes())}),
    )
    .await;
    assert_eq!(put["SequenceNumber"], "0");
    assert_eq!(put["ShardId"], "shardId-000000000000");
    // CBOR: a byte string.
    let a = k::cbor(
        addr,
        "PutRecord",
        cbor_map(vec![
            ("StreamName", "mixed".into()),
            ("PartitionKey", "c".into()),
            ("Data", ciborium::Value::Bytes(b"\x00cbor\xff".to_vec())),
        ]),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.headers["content-type"], k::CBOR);
    assert_eq!(cbor_get(&a.cbor(), "SequenceNumber").as_text(), Some("1"));
    // gRPC.
    let mut grpc = server.streams().await;
    grpc.put_record(pb::PutRecordRequest {
        stream_name: "mixed".into(),
        partition_key: "g".into(),
        data: Bytes::from_static(b"from grpc"),
        ..Default::default()
    })
    .await
    .expect("grpc put");

    let iterator = k::ok(
        addr,
        "GetShardIterator",
        json!({"StreamName": "mixed", "ShardId": "shardId-000000000000", "ShardIteratorType": "TRIM_HORIZON"}),
    )
    .await["ShardIterator"]
        .as_str()
        .unwrap()
        .to_owned();
    // Read back in JSON.
    let got = k::ok(addr, "GetRecords", json!({"ShardIterator": iterator})).await;
    let records = got["Records"].as_array().unwrap();
    let datas: Vec<Vec<u8>> = records
        .iter()
        .map(|r| STANDARD.decode(r["Data"].as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(
        datas,
        [all_bytes(), b"\x00cbor\xff".to_vec(), b"from grpc".to_vec()]
    );
    let keys: Vec<&str> = records
        .iter()
        .map(|r| r["PartitionKey"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["j", "c", "g"]);
    let arrival = records[0]["ApproximateArrivalTimestamp"].as_f64().unwrap();
    let now = common::now_ms() as f64 / 1000.0;
    assert!(
        (now - arrival).abs() < 60.0,
        "arrival {arrival} is epoch seconds"
    );
    assert_eq!(got["MillisBehindLatest"], 0);
    assert!(got["NextShardIterator"].is_string());

    // Read back in CBOR: bytes stay bytes, times are tag 1 on epoch milliseconds.
    let a = k::cbor(
        addr,
        "GetRecords",
        cbor_map(vec![("ShardIterator", iterator.as_str().into())]),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    let body = a.cbor();
    let first = &cbor_get(&body, "Records").as_array().unwrap()[0];
    assert_eq!(cbor_get(first, "Data").as_bytes(), Some(&all_bytes()));
    match cbor_get(first, "ApproximateArrivalTimestamp") {
        ciborium::Value::Tag(1, ms) => {
            let ms = i128::from(ms.as_integer().expect("an integer"));
            assert!(
                (ms as f64 / 1000.0 - arrival).abs() < 0.002,
                "{ms} vs {arrival}"
            );
        }
        other => panic!("not a tag 1 timestamp: {other:?}"),
    }

    // gRPC reads the record Kinesis stored.
    let from_grpc = common::read_from_start(&mut grpc, "mixed", "shardId-000000000000").await;
    assert_eq!(from_grpc[0].data.as_ref(), &all_bytes()[..]);
    assert_eq!(from_grpc[0].sequence_number, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_iterator_type_starts_where_kinesis_says() {
    let server = TestServer::start().await;
    let addr = server.kinesis_addr;
    create(&server, "it", 1).await;
    for i in 0..5 {
        k::ok(
            addr,
            "PutRecord",
            json!({"StreamName": "it", "PartitionKey": "p", "Data": STANDARD.encode(format!("r{i}"))}),
        )
        .await;
    }
    let read = |kind: &'static str, extra: serde_json::Value| async move {
        let mut req = json!({"StreamName": "it", "ShardId": "shardId-000000000000", "ShardIteratorType": kind});
        for (key, v) in extra.as_object().unwrap() {
            req[key] = v.clone();
        }
        let it = k::ok(addr, "GetShardIterator", req).await["ShardIterator"].clone();
        let got = k::ok(
            addr,
            "GetRecords",
            json!({"ShardIterator": it, "Limit": 10}),
        )
        .await;
        got["Records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["SequenceNumber"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        read("TRIM_HORIZON", json!({})).await,
        ["0", "1", "2", "3", "4"]
    );
    assert!(read("LATEST", json!({})).await.is_empty());
    assert_eq!(
        read("AT_SEQUENCE_NUMBER", json!({"StartingSequenceNumber": "3"})).await,
        ["3", "4"]
    );
    assert_eq!(
        read(
            "AFTER_SEQUENCE_NUMBER",
            json!({"StartingSequenceNumber": "3"})
        )
        .await,
        ["4"]
    );
    assert_eq!(
        read("AT_TIMESTAMP", json!({"Timestamp": 0})).await,
        ["0", "1", "2", "3", "4"]
    );
    // A type and a parameter that do not go together.
    let a = k::json(
        addr,
        "GetShardIterator",
        json!({"StreamName": "it", "ShardId": "shardId-000000000000", "ShardIteratorType": "LATEST", "StartingSequenceNumber": "1"}),
    )
    .await;
    let (kind, message) = a.error();
    assert_eq!(kind, "InvalidArgumentException");
    assert!(
        message.starts_with("Must either specify (1) AT_SEQUENCE_NUMBER"),
        "{message}"
    );
    // Limit pages through.
    let it = k::ok(
        addr,
        "GetShardIterator",
        json!({"StreamName": "it", "ShardId": "shardId-000000000000", "ShardIteratorType": "TRIM_HORIZON"}),
    )
    .await["ShardIterator"]
        .clone();
    let page = k::ok(addr, "GetRecords", json!({"ShardIterator": it, "Limit": 2})).await;
    assert_eq!(page["Records"].as_array().unwrap().len(), 2);
    assert!(page["MillisBehindLatest"].as_i64().unwrap() >= 0);
    let next = k::ok(
        addr,
        "GetRecords",
        json!({"ShardIterator": page["NextShardIterator"], "Limit": 10}),
    )
    .await;
    assert_eq!(next["Records"][0]["SequenceNumber"], "2");
}

/// One error case: what is sent, and the status, exception and message start expected.
struct Case {
    what: &'static str,
    method: &'static str,
    target: Option<&'static str>,
    content_type: &'static str,
    body: Vec<u8>,
    status: u16,
    kind: &'static str,
    message: &'static str,
}

fn case(
    what: &'static str,
    target: &'static str,
    body: serde_json::Value,
    status: u16,
    kind: &'static str,
    message: &'static str,
) -> Case {
    Case {
        what,
        method: "POST",
        target: Some(target),
        content_type: k::JSON,
        body: serde_json::to_vec(&body).unwrap(),
        status,
        kind,
        message,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_comes_in_the_shape_the_sdks_parse() {
    let server = TestServer::start().await;
    let addr = server.kinesis_addr;
    create(&server, "taken", 1).await;
    let old_token = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode("shards\ntaken\nshardId-000000000000\n1\n1000");
    let cases = vec![
        Case {
            what: "a GET",
            method: "GET",
            target: None,
            content_type: k::JSON,
            body: Vec::new(),
            status: 400,
            kind: "AccessDeniedException",
            message: "Unable to determine",
        },
        Case {
            what: "no target",
            method: "POST",
            target: None,
            content_type: k::JSON,
            body: b"{}".to_vec(),
            status: 400,
            kind: "UnknownOperationException",
            message: "",
        },
        case("an unknown operation", "FlyToTheMoon", json!({}), 400, "UnknownOperationException", "Operation FlyToTheMoon"),
        Case {
            what: "broken JSON",
            method: "POST",
            target: Some("ListStreams"),
            content_type: k::JSON,
            body: b"{\"Limit\":".to_vec(),
            status: 400,
            kind: "SerializationException",
            message: "",
        },
        case(
            "a wrong type",
            "DescribeStream",
            json!({"StreamName": 5}),
            400,
            "SerializationException",
            "class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to an String",
        ),
        case(
            "bad base64",
            "PutRecord",
            json!({"StreamName": "taken", "PartitionKey": "k", "Data": "abc"}),
            400,
            "SerializationException",
            "'abc' can not be converted to a Blob",
        ),
        case(
            "constraints",
            "CreateStream",
            json!({"StreamName": "a b", "ShardCount": 0}),
            400,
            "ValidationException",
            "2 validation errors detected: Value 'a b' at 'streamName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+; Value '0' at 'shardCount' failed to satisfy constraint: Member must have value greater than or equal to 1",
        ),
        case(
            "a missing member",
            "PutRecord",
            json!({"StreamName": "taken", "Data": "aGk="}),
            400,
            "ValidationException",
            "1 validation error detected: Value null at 'partitionKey' failed to satisfy constraint: Member must not be null",
        ),
        case(
            "a missing stream",
            "DescribeStream",
            json!({"StreamName": "nope"}),
            400,
            "ResourceNotFoundException",
            "Stream nope under account 000000000000 not found.",
        ),
        case(
            "a missing stream by ARN",
            "DescribeStreamSummary",
            json!({"StreamARN": "arn:aws:kinesis:us-east-1:000000000000:stream/nope"}),
            400,
            "ResourceNotFoundException",
            "Stream nope under account",
        ),
        case(
            "a missing shard",
            "GetShardIterator",
            json!({"StreamName": "taken", "ShardId": "shardId-000000000009", "ShardIteratorType": "LATEST"}),
            400,
            "ResourceNotFoundException",
            "Shard shardId-000000000009 in stream taken under account 000000000000 does not exist",
        ),
        case(
            "a taken name",
            "CreateStream",
            json!({"StreamName": "taken", "ShardCount": 1}),
            400,
            "ResourceInUseException",
            "Stream taken under account 000000000000 already exists.",
        ),
        case(
            "a garbage iterator",
            "GetRecords",
            json!({"ShardIterator": "garbage"}),
            400,
            "InvalidArgumentException",
            "Invalid ShardIterator.",
        ),
        case(
            "a hash key beyond 2^128-1",
            "PutRecord",
            json!({"StreamName": "taken", "PartitionKey": "k", "Data": "aGk=", "ExplicitHashKey": "340282366920938463463374607431768211456"}),
            400,
            "InvalidArgumentException",
            "Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. Specified value was 340282366920938463463374607431768211456",
        ),
        case(
            "padding inside base64",
            "PutRecord",
            json!({"StreamName": "taken", "PartitionKey": "k", "Data": "=+/="}),
            400,
            "SerializationException",
            "'=+/=' can not be converted to a Blob: Invalid Base64 character: '='",
        ),
        case(
            "a shard id that names no index",
            "GetShardIterator",
            json!({"StreamName": "taken", "ShardId": "shardId-abc", "ShardIteratorType": "LATEST"}),
            400,
            "ResourceNotFoundException",
            "Could not find shard shardId-abc in stream taken under account 000000000000.",
        ),
        case(
            "a tag key with a semicolon",
            "AddTagsToStream",
            json!({"StreamName": "taken", "Tags": {"a;b": "x"}}),
            400,
            "InvalidArgumentException",
            "Some tags contain invalid characters.",
        ),
        case(
            "a list member too short",
            "RemoveTagsFromStream",
            json!({"StreamName": "taken", "TagKeys": ["a", "", "b"]}),
            400,
            "ValidationException",
            "1 validation error detected: Value '[a, , b]' at 'tagKeys' failed to satisfy constraint: Member must satisfy constraint: [Member must have length less than or equal to 128, Member must have length greater than or equal to 1]",
        ),
        case(
            "retention under a day",
            "DecreaseStreamRetentionPeriod",
            json!({"StreamName": "taken", "RetentionPeriodHours": 23}),
            400,
            "InvalidArgumentException",
            "Minimum allowed retention period is 24 hours. Requested retention period (23 hours) is too short.",
        ),
        case(
            "no stream and no token",
            "ListShards",
            json!({}),
            400,
            "InvalidArgumentException",
            "Either NextToken or StreamName should be provided.",
        ),
        case(
            "too many shards",
            "CreateStream",
            json!({"StreamName": "huge", "ShardCount": 100000}),
            400,
            "LimitExceededException",
            "This request would exceed the shard limit",
        ),
        case(
            "an old page token",
            "ListShards",
            json!({"NextToken": old_token}),
            400,
            "ExpiredNextTokenException",
            "",
        ),
        case(
            "a KMS key",
            "StartStreamEncryption",
            json!({"StreamName": "taken", "EncryptionType": "KMS", "KeyId": "alias/x"}),
            400,
            "KMSNotFoundException",
            "The KMS key alias/x was not found",
        ),
        case(
            "a resource policy",
            "PutResourcePolicy",
            json!({"ResourceARN": "arn:aws:kinesis:us-east-1:000000000000:stream/taken", "Policy": "{}"}),
            400,
            "AccessDeniedException",
            "Resource-based policies",
        ),
    ];
    for c in cases {
        let a = k::raw(addr, c.method, c.target, c.content_type, c.body).await;
        assert_eq!(a.status.as_u16(), c.status, "{}: {:?}", c.what, a.body);
        let (kind, message) = a.error();
        assert_eq!(kind, c.kind, "{}: {message}", c.what);
        assert!(message.starts_with(c.message), "{}: {message}", c.what);
        assert_eq!(a.headers["x-amzn-errortype"], c.kind, "{}", c.what);
        assert!(a.headers.contains_key("x-amzn-requestid"), "{}", c.what);
    }
    // A CBOR request gets its error in CBOR.
    let a = k::cbor(
        addr,
        "DescribeStream",
        cbor_map(vec![("StreamName", "nope".into())]),
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        cbor_get(&a.cbor(), "__type").as_text(),
        Some("ResourceNotFoundException")
    );
    // Nothing a refused request carried was stored.
    let it = k::ok(
        addr,
        "GetShardIterator",
        json!({"StreamName": "taken", "ShardId": "shardId-000000000000", "ShardIteratorType": "TRIM_HORIZON"}),
    )
    .await["ShardIterator"]
        .clone();
    let got = k::ok(addr, "GetRecords", json!({"ShardIterator": it})).await;
    assert_eq!(got["Records"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_iterator_past_its_lifetime_is_expired() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = BrokerConfig::new(tmp.path());
    config.iterator_ttl = Duration::from_millis(200);
    let server = TestServer::start_with(config).await;
    create(&server, "short", 1).await;
    let it = k::ok(
        server.kinesis_addr,
        "GetShardIterator",
        json!({"StreamName": "short", "ShardId": "shardId-000000000000", "ShardIteratorType": "LATEST"}),
    )
    .await["ShardIterator"]
        .clone();
    // The lifetime is a span of wall-clock time: waiting it out is the event.
    common::wait_until_clock_passes(common::now_ms() + 300).await;
    let a = k::json(
        server.kinesis_addr,
        "GetRecords",
        json!({"ShardIterator": it}),
    )
    .await;
    let (kind, message) = a.error();
    assert_eq!(kind, "ExpiredIteratorException", "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_larger_than_the_limit_is_refused_and_stores_nothing() {
    let server = TestServer::start().await;
    create(&server, "big", 1).await;
    let data = STANDARD.encode(vec![7u8; 7 * 1024 * 1024]);
    let a = k::json(
        server.kinesis_addr,
        "PutRecord",
        json!({"StreamName": "big", "PartitionKey": "k", "Data": data}),
    )
    .await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    let mut grpc = server.streams().await;
    assert!(
        common::read_from_start(&mut grpc, "big", "shardId-000000000000")
            .await
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_shards_and_list_streams_page_with_tokens() {
    let server = TestServer::start().await;
    let addr = server.kinesis_addr;
    create(&server, "pages", 5).await;
    create(&server, "other", 1).await;
    let mut ids = Vec::new();
    let mut page = k::ok(
        addr,
        "ListShards",
        json!({"StreamName": "pages", "MaxResults": 2}),
    )
    .await;
    loop {
        for s in page["Shards"].as_array().unwrap() {
            ids.push(s["ShardId"].as_str().unwrap().to_owned());
        }
        let Some(token) = page["NextToken"].as_str().map(str::to_owned) else {
            break;
        };
        page = k::ok(addr, "ListShards", json!({"NextToken": token})).await;
    }
    let expected: Vec<String> = (0..5).map(|i| format!("shardId-{i:012}")).collect();
    assert_eq!(ids, expected);
    let after = k::ok(
        addr,
        "ListShards",
        json!({"StreamName": "pages", "ShardFilter": {"Type": "AFTER_SHARD_ID", "ShardId": "shardId-000000000002"}}),
    )
    .await;
    assert_eq!(after["Shards"].as_array().unwrap().len(), 2);

    let first = k::ok(addr, "ListStreams", json!({"Limit": 1})).await;
    assert_eq!(first["StreamNames"], json!(["other"]));
    assert_eq!(first["HasMoreStreams"], true);
    assert_eq!(
        first["StreamSummaries"][0]["StreamARN"],
        "arn:aws:kinesis:us-east-1:000000000000:stream/other"
    );
    let second = k::ok(
        addr,
        "ListStreams",
        json!({"NextToken": first["NextToken"]}),
    )
    .await;
    assert_eq!(second["StreamNames"], json!(["pages"]));
    assert_eq!(second["HasMoreStreams"], false);

    let described = k::ok(
        addr,
        "DescribeStream",
        json!({"StreamName": "pages", "Limit": 3}),
    )
    .await;
    let d = &described["StreamDescription"];
    assert_eq!(d["Shards"].as_array().unwrap().len(), 3);
    assert_eq!(d["HasMoreShards"], true);
    assert_eq!(
        d["Shards"][4 - 4]["HashKeyRange"]["StartingHashKey"],
        "0",
        "shards cover the key space from 0"
    );
}

/// The event-stream messages of `body` until `count` have arrived.
async fn messages(
    body: &mut hyper::body::Incoming,
    buf: &mut BytesMut,
    count: usize,
) -> Vec<Message> {
    let mut out = Vec::new();
    while out.len() < count {
        if let Some((m, used)) = Message::decode(buf).expect("a valid frame") {
            let _ = buf.split_to(used);
            out.push(m);
            continue;
        }
        let frame = tokio::time::timeout(EVENT_TIMEOUT, body.frame())
            .await
            .expect("an event in time")
            .expect("the stream is open")
            .expect("a frame");
        if let Ok(data) = frame.into_data() {
            buf.extend_from_slice(&data);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_to_shard_streams_events_over_http2_until_its_lifetime_ends() {
    let tmp = tempfile::tempdir().unwrap();
    let kinesis = KinesisConfig {
        subscription_lifetime: Duration::from_secs(2),
        ..KinesisConfig::default()
    };
    let server = TestServer::start_full(
        BrokerConfig::new(tmp.path()),
        shardlog::fsio::RealIo::shared(),
        kinesis,
    )
    .await;
    let addr = server.kinesis_addr;
    create(&server, "push", 1).await;
    let stream_arn = "arn:aws:kinesis:us-east-1:000000000000:stream/push";
    let consumer = k::ok(
        addr,
        "RegisterStreamConsumer",
        json!({"StreamARN": stream_arn, "ConsumerName": "fan"}),
    )
    .await;
    let consumer_arn = consumer["Consumer"]["ConsumerARN"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(consumer_arn.starts_with(&format!("{stream_arn}/consumer/fan:")));
    k::ok(
        addr,
        "PutRecord",
        json!({"StreamName": "push", "PartitionKey": "p", "Data": STANDARD.encode("before")}),
    )
    .await;

    let (status, mut body) = k::h2(
        addr,
        "SubscribeToShard",
        json!({"ConsumerARN": consumer_arn, "ShardId": "shardId-000000000000", "StartingPosition": {"Type": "TRIM_HORIZON"}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let mut buf = BytesMut::new();
    let first = messages(&mut body, &mut buf, 2).await;
    assert_eq!(first[0].header(":event-type"), Some("initial-response"));
    assert_eq!(first[1].header(":message-type"), Some("event"));
    assert_eq!(
        first[1].header(":event-type"),
        Some("SubscribeToShardEvent")
    );
    let event: serde_json::Value = serde_json::from_slice(&first[1].payload).unwrap();
    assert_eq!(event["Records"][0]["Data"], STANDARD.encode("before"));
    assert_eq!(event["ContinuationSequenceNumber"], "0");

    k::ok(
        addr,
        "PutRecord",
        json!({"StreamName": "push", "PartitionKey": "p", "Data": STANDARD.encode("after")}),
    )
    .await;
    let next = loop {
        let m = messages(&mut body, &mut buf, 1).await.remove(0);
        let event: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
        if !event["Records"].as_array().unwrap().is_empty() {
            break event;
        }
    };
    assert_eq!(next["Records"][0]["Data"], STANDARD.encode("after"));
    assert_eq!(next["ContinuationSequenceNumber"], "1");

    // A second subscription of the same consumer and shard right away is refused.
    let a = k::json(
        addr,
        "SubscribeToShard",
        json!({"ConsumerARN": consumer_arn, "ShardId": "shardId-000000000000", "StartingPosition": {"Type": "LATEST"}}),
    )
    .await;
    assert_eq!(a.error().0, "ResourceInUseException");

    // The subscription ends by itself when its lifetime is over.
    let ended = tokio::time::timeout(EVENT_TIMEOUT, async {
        loop {
            match body.frame().await {
                None => break,
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("the stream failed instead of ending: {e}"),
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the subscription outlived its lifetime");

    // An unregistered consumer cannot subscribe.
    let a = k::json(
        addr,
        "SubscribeToShard",
        json!({"ConsumerARN": format!("{stream_arn}/consumer/ghost:1"), "ShardId": "shardId-000000000000", "StartingPosition": {"Type": "LATEST"}}),
    )
    .await;
    assert_eq!(a.error().0, "ResourceNotFoundException");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_subscription_takes_over_an_earlier_one() {
    let tmp = tempfile::tempdir().unwrap();
    let kinesis = KinesisConfig {
        resubscribe_interval: Duration::from_millis(300),
        ..KinesisConfig::default()
    };
    let server = TestServer::start_full(
        BrokerConfig::new(tmp.path()),
        shardlog::fsio::RealIo::shared(),
        kinesis,
    )
    .await;
    let addr = server.kinesis_addr;
    create(&server, "over", 1).await;
    let consumer = k::ok(
        addr,
        "RegisterStreamConsumer",
        json!({"StreamARN": "arn:aws:kinesis:us-east-1:000000000000:stream/over", "ConsumerName": "c"}),
    )
    .await;
    let request = json!({"ConsumerARN": consumer["Consumer"]["ConsumerARN"], "ShardId": "shardId-000000000000", "StartingPosition": {"Type": "LATEST"}});
    let (status, mut first) = k::h2(addr, "SubscribeToShard", request.clone()).await;
    assert_eq!(status, StatusCode::OK);
    let mut buf = BytesMut::new();
    messages(&mut first, &mut buf, 1).await;
    let started = common::now_ms();
    let refused = k::json(addr, "SubscribeToShard", request.clone()).await;
    assert_eq!(refused.error().0, "ResourceInUseException");
    // The interval is a span of wall-clock time: waiting it out is the event.
    common::wait_until_clock_passes(started + 400).await;
    let (status, mut second) = k::h2(addr, "SubscribeToShard", request).await;
    assert_eq!(status, StatusCode::OK);
    let mut buf2 = BytesMut::new();
    assert_eq!(
        messages(&mut second, &mut buf2, 1).await[0].header(":event-type"),
        Some("initial-response")
    );
    // The first one ends: its body finishes.
    let ended = tokio::time::timeout(EVENT_TIMEOUT, async {
        while let Some(frame) = first.frame().await {
            frame.expect("the first stream ends cleanly");
        }
    })
    .await;
    assert!(ended.is_ok(), "the subscription taken over did not end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_consumers_retention_mode_and_monitoring_survive_a_restart() {
    let server = TestServer::start().await;
    let addr = server.kinesis_addr;
    create(&server, "kept", 2).await;
    let arn = "arn:aws:kinesis:us-east-1:000000000000:stream/kept";
    k::ok(
        addr,
        "AddTagsToStream",
        json!({"StreamName": "kept", "Tags": {"team": "data", "env": "dev"}}),
    )
    .await;
    k::ok(
        addr,
        "RemoveTagsFromStream",
        json!({"StreamName": "kept", "TagKeys": ["env"]}),
    )
    .await;
    k::ok(
        addr,
        "TagResource",
        json!({"ResourceARN": arn, "Tags": {"cost": "7"}}),
    )
    .await;
    k::ok(
        addr,
        "IncreaseStreamRetentionPeriod",
        json!({"StreamName": "kept", "RetentionPeriodHours": 48}),
    )
    .await;
    k::ok(
        addr,
        "UpdateStreamMode",
        json!({"StreamARN": arn, "StreamModeDetails": {"StreamMode": "ON_DEMAND"}}),
    )
    .await;
    k::ok(
        addr,
        "EnableEnhancedMonitoring",
        json!({"StreamName": "kept", "ShardLevelMetrics": ["IncomingBytes"]}),
    )
    .await;
    k::ok(
        addr,
        "RegisterStreamConsumer",
        json!({"StreamARN": arn, "ConsumerName": "c1"}),
    )
    .await;
    let refused = k::json(
        addr,
        "DecreaseStreamRetentionPeriod",
        json!({"StreamName": "kept", "RetentionPeriodHours": 72}),
    )
    .await;
    assert_eq!(refused.error().0, "InvalidArgumentException");

    let server = server.restart().await;
    let addr = server.kinesis_addr;
    let tags = k::ok(addr, "ListTagsForStream", json!({"StreamName": "kept"})).await;
    assert_eq!(
        tags["Tags"],
        json!([{"Key": "cost", "Value": "7"}, {"Key": "team", "Value": "data"}])
    );
    let summary = k::ok(addr, "DescribeStreamSummary", json!({"StreamName": "kept"})).await;
    let s = &summary["StreamDescriptionSummary"];
    assert_eq!(s["RetentionPeriodHours"], 48);
    assert_eq!(s["StreamModeDetails"]["StreamMode"], "ON_DEMAND");
    assert_eq!(s["ConsumerCount"], 1);
    assert_eq!(
        s["EnhancedMonitoring"][0]["ShardLevelMetrics"],
        json!(["IncomingBytes"])
    );
    let consumers = k::ok(addr, "ListStreamConsumers", json!({"StreamARN": arn})).await;
    assert_eq!(consumers["Consumers"][0]["ConsumerName"], "c1");
    // gRPC sees the retention too.
    let d = common::describe_stream(&mut server.streams().await, "kept").await;
    assert_eq!(d.retention_period_hours, 48);

    // A stream with a consumer is deleted only when told to take it along.
    let a = k::json(addr, "DeleteStream", json!({"StreamName": "kept"})).await;
    assert_eq!(a.error().0, "ResourceInUseException");
    k::ok(
        addr,
        "DeleteStream",
        json!({"StreamName": "kept", "EnforceConsumerDeletion": true}),
    )
    .await;
    let a = k::json(addr, "DescribeStream", json!({"StreamName": "kept"})).await;
    assert_eq!(a.error().0, "ResourceNotFoundException");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_records_answers_every_entry_in_order() {
    let server = TestServer::start().await;
    let addr = server.kinesis_addr;
    create(&server, "batch", 4).await;
    let records: Vec<serde_json::Value> = (0..500)
        .map(|i| json!({"PartitionKey": format!("key-{i}"), "Data": STANDARD.encode(format!("v{i}"))}))
        .collect();
    let a = k::ok(
        addr,
        "PutRecords",
        json!({"StreamName": "batch", "Records": records}),
    )
    .await;
    assert_eq!(a["FailedRecordCount"], 0);
    let results = a["Records"].as_array().unwrap();
    assert_eq!(results.len(), 500);
    let shards = common::list_shards(&mut server.streams().await, "batch").await;
    for (i, r) in results.iter().enumerate() {
        let expected = common::shard_holding(&shards, common::md5_hash_key(&format!("key-{i}")));
        assert_eq!(r["ShardId"], expected, "entry {i}");
        assert!(r["SequenceNumber"].as_str().unwrap().parse::<u64>().is_ok());
    }
    // An explicit hash key picks the shard whose range holds it.
    let a = k::ok(
        addr,
        "PutRecord",
        json!({"StreamName": "batch", "PartitionKey": "x", "Data": "aGk=", "ExplicitHashKey": "340282366920938463463374607431768211455"}),
    )
    .await;
    assert_eq!(a["ShardId"], "shardId-000000000003");
    // 501 entries break the shape.
    let records: Vec<serde_json::Value> = (0..501)
        .map(|i| json!({"PartitionKey": format!("{i}"), "Data": "aGk="}))
        .collect();
    let a = k::json(
        addr,
        "PutRecords",
        json!({"StreamName": "batch", "Records": records}),
    )
    .await;
    let (kind, message) = a.error();
    assert_eq!(kind, "ValidationException");
    assert!(
        message.contains("Member must have length less than or equal to 500"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resharding_over_kinesis_shows_lineage_child_shards_and_filters() {
    let server = TestServer::start().await;
    let addr = server.kinesis_addr;
    create(&server, "grow", 1).await;
    k::ok(
        addr,
        "PutRecord",
        json!({"StreamName": "grow", "PartitionKey": "a", "Data": STANDARD.encode(b"first")}),
    )
    .await;
    let middle = (1u128 << 127).to_string();
    let split = k::json(
        addr,
        "SplitShard",
        json!({"StreamName": "grow", "ShardToSplit": "shardId-000000000000", "NewStartingHashKey": middle}),
    )
    .await;
    assert_eq!(split.status, StatusCode::OK, "{:?}", split.json());
    let latest = k::ok(
        addr,
        "ListShards",
        json!({"StreamName": "grow", "ShardFilter": {"Type": "AT_LATEST"}}),
    )
    .await;
    let ids: Vec<&str> = latest["Shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["ShardId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["shardId-000000000001", "shardId-000000000002"]);
    let all = k::ok(addr, "ListShards", json!({"StreamName": "grow"})).await;
    let parent = &all["Shards"][0];
    // One record, sequence 0: the last record's number, as Kinesis gives it.
    assert_eq!(parent["SequenceNumberRange"]["EndingSequenceNumber"], "0");
    assert_eq!(all["Shards"][2]["ParentShardId"], "shardId-000000000000");
    // Read the closed parent to its end: its record, then the children and no iterator.
    let it = k::ok(
        addr,
        "GetShardIterator",
        json!({"StreamName": "grow", "ShardId": "shardId-000000000000", "ShardIteratorType": "TRIM_HORIZON"}),
    )
    .await;
    let read = k::ok(
        addr,
        "GetRecords",
        json!({"ShardIterator": it["ShardIterator"]}),
    )
    .await;
    assert_eq!(read["Records"].as_array().unwrap().len(), 1);
    assert!(read.get("NextShardIterator").is_none(), "{read}");
    let children: Vec<&str> = read["ChildShards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["ShardId"].as_str().unwrap())
        .collect();
    assert_eq!(children, ["shardId-000000000001", "shardId-000000000002"]);
    assert_eq!(
        read["ChildShards"][0]["ParentShards"],
        json!(["shardId-000000000000"])
    );
    // Merge the children back, then scale; the errors are Kinesis's.
    k::ok(
        addr,
        "MergeShards",
        json!({"StreamName": "grow", "ShardToMerge": "shardId-000000000001", "AdjacentShardToMerge": "shardId-000000000002"}),
    )
    .await;
    let scaled = k::ok(
        addr,
        "UpdateShardCount",
        json!({"StreamName": "grow", "TargetShardCount": 2, "ScalingType": "UNIFORM_SCALING"}),
    )
    .await;
    assert_eq!(scaled["CurrentShardCount"], 1);
    assert_eq!(scaled["TargetShardCount"], 2);
    let too_far = k::json(
        addr,
        "UpdateShardCount",
        json!({"StreamName": "grow", "TargetShardCount": 5, "ScalingType": "UNIFORM_SCALING"}),
    )
    .await;
    assert_eq!(too_far.error().0, "LimitExceededException");
    let closed = k::json(
        addr,
        "SplitShard",
        json!({"StreamName": "grow", "ShardToSplit": "shardId-000000000000", "NewStartingHashKey": "5"}),
    )
    .await;
    assert_eq!(closed.error().0, "InvalidArgumentException");
}
