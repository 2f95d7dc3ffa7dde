//! The Kinesis API's JSON 1.1 and CBOR 1.1 request bodies (`kinesis::value`), then the
//! schema's checks.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::kinesis::schema::{check_types, validate};
use crate::kinesis::value::{self, Encoding};

/// The operations the Kinesis API serves, by `X-Amz-Target` name: the first input byte picks
/// the one whose shape the body is checked against.
const OPERATIONS: &[&str] = &[
    "PutRecords",
    "PutRecord",
    "GetRecords",
    "GetShardIterator",
    "CreateStream",
    "DeleteStream",
    "DescribeStream",
    "DescribeStreamSummary",
    "ListStreams",
    "ListShards",
    "IncreaseStreamRetentionPeriod",
    "DecreaseStreamRetentionPeriod",
    "UpdateStreamMode",
    "DescribeLimits",
    "AddTagsToStream",
    "RemoveTagsFromStream",
    "ListTagsForStream",
    "TagResource",
    "UntagResource",
    "ListTagsForResource",
    "EnableEnhancedMonitoring",
    "DisableEnhancedMonitoring",
    "StartStreamEncryption",
    "StopStreamEncryption",
    "UpdateMaxRecordSize",
    "SplitShard",
    "MergeShards",
    "UpdateShardCount",
    "RegisterStreamConsumer",
    "DescribeStreamConsumer",
    "ListStreamConsumers",
    "DeregisterStreamConsumer",
    "SubscribeToShard",
];

/// A Kinesis JSON 1.1 body: the first byte picks the operation (see [`kinesis_cbor`]). The
/// body decodes exactly when `serde_json` reads it as JSON.
pub fn kinesis_json(input: &[u8]) {
    kinesis_body(input, Encoding::Json);
}

/// A Kinesis CBOR 1.1 body: the first byte picks the operation, the rest is the body. A body
/// that decodes is CBOR to `ciborium`; a decoded body goes through the schema's type check and
/// validation as a request does, without panicking.
pub fn kinesis_cbor(input: &[u8]) {
    kinesis_body(input, Encoding::Cbor);
}

fn kinesis_body(input: &[u8], encoding: Encoding) {
    let Some((&op, body)) = input.split_first() else {
        return;
    };
    let operation = OPERATIONS[usize::from(op) % OPERATIONS.len()];
    let shape = crate::kinesis::request_shape(operation).expect("every listed operation is served");
    let decoded = value::decode(body, encoding);
    if !body.iter().all(u8::is_ascii_whitespace) {
        match encoding {
            Encoding::Json => {
                let reference = serde_json::from_slice::<serde_json::Value>(body).is_ok();
                // `serde_json::Value` refuses objects whose key is one of its own markers
                // (`$serde_json::private::RawValue`, with the `raw_value` feature a dependency
                // turns on): valid JSON all the same, which the decoder rightly reads.
                let marker = decoded.as_ref().is_ok_and(has_serde_json_marker);
                assert!(
                    decoded.is_ok() == reference || marker && !reference,
                    "a body decodes exactly when it is JSON"
                );
            }
            Encoding::Cbor => assert!(
                decoded.is_err() || ciborium::from_reader::<ciborium::Value, _>(body).is_ok(),
                "a body that decodes is CBOR"
            ),
        }
    }
    let Ok(mut request) = decoded else {
        return;
    };
    if check_types(&mut request, shape, encoding).is_ok() {
        let _ = validate(&request, shape);
    }
}

/// True when a map anywhere in `value` has a key that `serde_json::Value` reserves.
fn has_serde_json_marker(value: &value::Value<'_>) -> bool {
    match value {
        value::Value::List(items) => items.iter().any(has_serde_json_marker),
        value::Value::Map(members) => members
            .iter()
            .any(|(k, v)| k.starts_with("$serde_json::private::") || has_serde_json_marker(v)),
        _ => false,
    }
}

/// Typical bodies of the operations, as the SDKs send them: `(operation, JSON body)`.
fn kinesis_bodies() -> Vec<(&'static str, serde_json::Value)> {
    use serde_json::json;
    vec![
        (
            "PutRecords",
            json!({"StreamName": "orders", "Records": [
                {"Data": "aGVsbG8=", "PartitionKey": "k1"},
                {"Data": "", "PartitionKey": "k2", "ExplicitHashKey": "170141183460469231731687303715884105728"}
            ]}),
        ),
        (
            "PutRecord",
            json!({"StreamARN": "arn:aws:kinesis:us-east-1:000000000000:stream/orders",
                   "Data": "eyJhIjoxfQ==", "PartitionKey": "k", "SequenceNumberForOrdering": "12"}),
        ),
        (
            "GetRecords",
            json!({"ShardIterator": "AgAAAAAA", "Limit": 100}),
        ),
        (
            "GetShardIterator",
            json!({"StreamName": "orders", "ShardId": "shardId-000000000000",
                   "ShardIteratorType": "AT_TIMESTAMP", "Timestamp": 1_700_000_000.5}),
        ),
        (
            "CreateStream",
            json!({"StreamName": "orders", "ShardCount": 2,
                   "StreamModeDetails": {"StreamMode": "PROVISIONED"}, "Tags": {"team": "a"}}),
        ),
        (
            "ListShards",
            json!({"StreamName": "orders", "MaxResults": 10,
                   "ShardFilter": {"Type": "AFTER_SHARD_ID", "ShardId": "shardId-000000000001"}}),
        ),
        (
            "ListStreams",
            json!({"Limit": 5, "ExclusiveStartStreamName": "a"}),
        ),
        (
            "AddTagsToStream",
            json!({"StreamName": "orders", "Tags": {"a": "b", "c": ""}}),
        ),
        (
            "SplitShard",
            json!({"StreamName": "orders", "ShardToSplit": "shardId-000000000000",
                   "NewStartingHashKey": "85070591730234615865843651857942052864"}),
        ),
        (
            "SubscribeToShard",
            json!({"ConsumerARN": "arn:aws:kinesis:us-east-1:000000000000:stream/orders/consumer/c:1",
                   "ShardId": "shardId-000000000000",
                   "StartingPosition": {"Type": "AT_SEQUENCE_NUMBER", "SequenceNumber": "7"}}),
        ),
        (
            "EnableEnhancedMonitoring",
            json!({"StreamName": "orders", "ShardLevelMetrics": ["IncomingBytes", "ALL"]}),
        ),
    ]
}

/// The byte of `operation` in [`OPERATIONS`].
fn operation_byte(operation: &str) -> u8 {
    OPERATIONS
        .iter()
        .position(|o| *o == operation)
        .expect("a listed operation") as u8
}

/// Typical JSON bodies behind their operation's byte.
pub fn kinesis_json_seeds() -> Vec<Vec<u8>> {
    kinesis_bodies()
        .into_iter()
        .map(|(operation, body)| {
            let text = serde_json::to_vec(&body).expect("a JSON value serialises");
            [&[operation_byte(operation)][..], &text].concat()
        })
        .collect()
}

/// The same bodies in CBOR, as the SDKs write them: `Data` a byte string, `Timestamp` tag 1 on
/// epoch milliseconds.
pub fn kinesis_cbor_seeds() -> Vec<Vec<u8>> {
    fn cbor(name: Option<&str>, value: &serde_json::Value) -> ciborium::Value {
        use ciborium::Value as C;
        use serde_json::Value as J;
        match (name, value) {
            (Some("Data"), J::String(text)) => {
                C::Bytes(STANDARD.decode(text).expect("seed data is base64"))
            }
            (Some("Timestamp"), J::Number(n)) => C::Tag(
                1,
                Box::new(C::Integer(
                    ((n.as_f64().unwrap_or(0.0) * 1000.0) as i64).into(),
                )),
            ),
            (_, J::Null) => C::Null,
            (_, J::Bool(b)) => C::Bool(*b),
            (_, J::Number(n)) => match n.as_i64() {
                Some(i) => C::Integer(i.into()),
                None => C::Float(n.as_f64().unwrap_or(0.0)),
            },
            (_, J::String(s)) => C::Text(s.clone()),
            (_, J::Array(items)) => C::Array(items.iter().map(|v| cbor(None, v)).collect()),
            (_, J::Object(members)) => C::Map(
                members
                    .iter()
                    .map(|(k, v)| (C::Text(k.clone()), cbor(Some(k), v)))
                    .collect(),
            ),
        }
    }
    kinesis_bodies()
        .into_iter()
        .map(|(operation, body)| {
            let mut bytes = vec![operation_byte(operation)];
            ciborium::into_writer(&cbor(None, &body), &mut bytes).expect("a CBOR value encodes");
            bytes
        })
        .collect()
}
