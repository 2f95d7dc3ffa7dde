//! The data plane: PutRecord, PutRecords, GetShardIterator, GetRecords. Sequence numbers are
//! the log's own, written as decimal strings.

use bytes::Bytes;

use super::error::{ErrorKind, KinesisError};
use super::schema::{
    is_hash_key, is_sequence_number, member, Member, Rule, Shape, Ty, SHARD_ID, STREAM_ARN,
    STREAM_NAME,
};
use super::value::{Out, Value};
use super::Kinesis;
use crate::broker::{IteratorKind, PutEntry, PutResult};
use crate::grpc::status::entry_error_code;
use crate::storage::{SequenceNumber, StoredRecord, Timestamp};

/// Largest `Data` of one record, before base64 (Kinesis: 1 MiB).
pub const MAX_DATA_BYTES: usize = 1024 * 1024;
/// Most entries of one PutRecords (Kinesis: 500).
pub const MAX_PUT_RECORDS_ENTRIES: usize = 500;
/// Most records one GetRecords returns (Kinesis: 10,000).
pub const MAX_GET_RECORDS_LIMIT: i64 = 10_000;

const ITERATOR_TYPES: &[&str] = &[
    "AFTER_SEQUENCE_NUMBER",
    "LATEST",
    "AT_TIMESTAMP",
    "AT_SEQUENCE_NUMBER",
    "TRIM_HORIZON",
];
const PARTITION_KEY: Member = member(
    "PartitionKey",
    Ty::Str,
    &[Rule::Required, Rule::MinLen(1), Rule::MaxLen(256)],
);
const DATA: Member = member(
    "Data",
    Ty::Blob,
    &[Rule::Required, Rule::MaxLen(MAX_DATA_BYTES)],
);
const EXPLICIT_HASH_KEY: Member = member(
    "ExplicitHashKey",
    Ty::Str,
    &[Rule::Pattern("0|([1-9]\\d{0,38})", is_hash_key)],
);
const ENTRY: &[Member] = &[PARTITION_KEY, EXPLICIT_HASH_KEY, DATA];
const ENTRY_SHAPE: Shape = Shape {
    ty: Ty::Struct(ENTRY),
    rules: &[],
};

pub(super) const PUT_RECORD: &[Member] = &[
    PARTITION_KEY,
    EXPLICIT_HASH_KEY,
    STREAM_NAME,
    STREAM_ARN,
    member(
        "SequenceNumberForOrdering",
        Ty::Str,
        &[Rule::Pattern("0|([1-9]\\d{0,128})", is_sequence_number)],
    ),
    DATA,
];
pub(super) const PUT_RECORDS: &[Member] = &[
    member(
        "Records",
        Ty::List(&ENTRY_SHAPE),
        &[
            Rule::Required,
            Rule::MinLen(1),
            Rule::MaxLen(MAX_PUT_RECORDS_ENTRIES),
        ],
    ),
    STREAM_NAME,
    STREAM_ARN,
];
pub(super) const GET_SHARD_ITERATOR: &[Member] = &[
    SHARD_ID,
    member(
        "ShardIteratorType",
        Ty::Str,
        &[Rule::Required, Rule::OneOf(ITERATOR_TYPES)],
    ),
    member(
        "StartingSequenceNumber",
        Ty::Str,
        &[Rule::Pattern("0|([1-9]\\d{0,128})", is_sequence_number)],
    ),
    STREAM_NAME,
    STREAM_ARN,
    member("Timestamp", Ty::Time, &[]),
];
pub(super) const GET_RECORDS: &[Member] = &[
    member(
        "ShardIterator",
        Ty::Str,
        &[Rule::Required, Rule::MinLen(1), Rule::MaxLen(512)],
    ),
    member(
        "Limit",
        Ty::Int,
        &[Rule::Min(1), Rule::Max(MAX_GET_RECORDS_LIMIT)],
    ),
    STREAM_ARN,
];

/// A put entry from a request entry, its data moved out of the request.
fn entry_of(v: &mut Value<'_>) -> PutEntry {
    let data = match v {
        Value::Map(members) => members
            .iter_mut()
            .find(|(k, _)| k == "Data")
            .map(|(_, d)| match std::mem::replace(d, Value::Null) {
                Value::Bytes(b) => Bytes::from(b.into_owned()),
                _ => Bytes::new(),
            })
            .unwrap_or_default(),
        _ => Bytes::new(),
    };
    PutEntry {
        partition_key: v.str("PartitionKey").unwrap_or_default().to_owned(),
        data,
        explicit_hash_key: v.str("ExplicitHashKey").map(str::to_owned),
        ..PutEntry::default()
    }
}

/// Refuses an explicit hash key beyond the key space, in Kinesis's words.
fn check_hash_key(key: Option<&str>) -> Result<(), KinesisError> {
    match key {
        Some(k) if k.parse::<u128>().is_err() => Err(KinesisError::invalid(format!(
            "Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. \
             Specified value was {k}"
        ))),
        _ => Ok(()),
    }
}

pub(super) async fn put_record(k: &Kinesis, mut r: Value<'_>) -> Result<Out, KinesisError> {
    let name = k.stream_of(&r)?;
    check_hash_key(r.str("ExplicitHashKey"))?;
    if let Some(seq) = r.str("SequenceNumberForOrdering") {
        // Every sequence number of the log fits 64 bits: a larger one was never handed out.
        if seq.parse::<u64>().is_err() {
            return Err(KinesisError::invalid(format!(
                "ExclusiveMinimumSequenceNumber {seq} used in PutRecord on stream {name} under \
                 account {} is invalid.",
                k.config.account
            )));
        }
    }
    let entry = entry_of(&mut r);
    let out = k
        .broker
        .put_record(&name, entry)
        .await
        .map_err(|e| k.broker_error(&e))?;
    Ok(Out::Struct(vec![
        ("ShardId", Out::str(out.shard.to_string())),
        ("SequenceNumber", Out::str(out.sequence.get().to_string())),
        ("EncryptionType", Out::str("NONE")),
    ]))
}

pub(super) async fn put_records(k: &Kinesis, mut r: Value<'_>) -> Result<Out, KinesisError> {
    let name = k.stream_of(&r)?;
    for entry in r.list("Records").unwrap_or_default() {
        check_hash_key(entry.str("ExplicitHashKey"))?;
    }
    let entries: Vec<PutEntry> = match &mut r {
        Value::Map(members) => members
            .iter_mut()
            .find(|(key, _)| key == "Records")
            .map(|(_, records)| match records {
                Value::List(items) => items.iter_mut().map(entry_of).collect(),
                _ => Vec::new(),
            })
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    let results = k
        .broker
        .put_records(&name, entries)
        .await
        .map_err(|e| k.broker_error(&e))?;
    Ok(put_records_answer(k, results))
}

fn put_records_answer(k: &Kinesis, results: Vec<PutResult>) -> Out {
    let mut failed = 0;
    let records = results
        .into_iter()
        .map(|result| match result {
            Ok(o) => Out::Struct(vec![
                ("SequenceNumber", Out::str(o.sequence.get().to_string())),
                ("ShardId", Out::str(o.shard.to_string())),
            ]),
            Err(e) => {
                failed += 1;
                let code = entry_error_code(&e);
                // Kinesis knows two entry codes; a full disk is an internal failure whose
                // message says so (SDKs retry it; nothing tells them to slow down).
                let (code, message) = if code == crate::grpc::status::DISK_FULL_ENTRY_CODE {
                    ("InternalFailure", e.to_string())
                } else if code == "InternalFailure" {
                    (code, "Internal Service Failure".to_owned())
                } else if matches!(e, crate::broker::BrokerError::Throttled { .. }) {
                    (code, k.broker_error(&e).message)
                } else {
                    (code, e.to_string())
                };
                Out::Struct(vec![
                    ("ErrorCode", Out::str(code)),
                    ("ErrorMessage", Out::Str(message)),
                ])
            }
        })
        .collect();
    Out::Struct(vec![
        ("FailedRecordCount", Out::Int(failed)),
        ("Records", Out::List(records)),
        ("EncryptionType", Out::str("NONE")),
    ])
}

/// A sequence number of a request, which must fit the log's 64 bits to name a record.
fn sequence(
    text: &str,
    shard: &str,
    stream: &str,
    account: &str,
) -> Result<SequenceNumber, KinesisError> {
    text.parse::<u64>().map(SequenceNumber::new).map_err(|_| {
        KinesisError::invalid(format!(
            "StartingSequenceNumber {text} used in GetShardIterator on shard {shard} in stream \
             {stream} under account {account} is invalid."
        ))
    })
}

/// Where an iterator or subscription starts: the type and its one parameter, checked as
/// Kinesis checks them.
pub(super) fn position(
    kind: &str,
    sequence_number: Option<&str>,
    timestamp_ms: Option<i64>,
    shard: &str,
    stream: &str,
    account: &str,
) -> Result<IteratorKind, KinesisError> {
    let with_sequence = matches!(kind, "AT_SEQUENCE_NUMBER" | "AFTER_SEQUENCE_NUMBER");
    if with_sequence != sequence_number.is_some() && kind != "AT_TIMESTAMP" {
        return Err(KinesisError::invalid(format!(
            "Must either specify (1) AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER and \
             StartingSequenceNumber or (2) TRIM_HORIZON or LATEST and no StartingSequenceNumber. \
             Request specified {kind} and {}.",
            match sequence_number {
                Some(_) => "also a StartingSequenceNumber",
                None => "no StartingSequenceNumber",
            }
        )));
    }
    Ok(match kind {
        "TRIM_HORIZON" => IteratorKind::TrimHorizon,
        "LATEST" => IteratorKind::Latest,
        "AT_SEQUENCE_NUMBER" => IteratorKind::AtSequence(sequence(
            sequence_number.unwrap_or_default(),
            shard,
            stream,
            account,
        )?),
        "AFTER_SEQUENCE_NUMBER" => IteratorKind::AfterSequence(sequence(
            sequence_number.unwrap_or_default(),
            shard,
            stream,
            account,
        )?),
        _ => {
            let Some(ms) = timestamp_ms else {
                return Err(KinesisError::invalid(
                    "Must specify timestampInMillis parameter for iterator of type AT_TIMESTAMP. \
                     Current request has no timestamp parameter.",
                ));
            };
            let now = Timestamp::now().as_millis() as i64;
            if ms > now {
                return Err(KinesisError::invalid(format!(
                    "The timestampInMillis parameter cannot be greater than the \
                     currentTimestampInMillis. timestampInMillis: {ms}, currentTimestampInMillis: \
                     {now}"
                )));
            }
            IteratorKind::AtTimestamp(Timestamp::from_millis(ms.max(0) as u64))
        }
    })
}

/// The largest shard index a shard id may name (Java's `Integer.MAX_VALUE`).
const MAX_SHARD_INDEX: u64 = i32::MAX as u64;

/// A shard id as Kinesis reads it: the digits after the first `-` (or the whole id without
/// one) are the index, so `shardId-0`, `shard-7` and `7` name shards 0 and 7. The canonical
/// form, or `None` when the id names no index.
pub(super) fn canonical_shard_id(id: &str) -> Option<String> {
    let digits = id.split_once('-').map_or(id, |(_, rest)| rest);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let index = digits
        .parse::<u64>()
        .ok()
        .filter(|&i| i <= MAX_SHARD_INDEX)?;
    Some(crate::stream::ShardId(index as u32).to_string())
}

/// The shard a request names, canonical; `ResourceNotFoundException` in Kinesis's words when
/// it names none, or the stream lacks it.
pub(super) fn resolve_shard(
    k: &Kinesis,
    stream: &crate::stream::StreamName,
    id: &str,
) -> Result<String, KinesisError> {
    let account = &k.config.account;
    let Some(canonical) = canonical_shard_id(id) else {
        return Err(KinesisError::new(
            ErrorKind::ResourceNotFound,
            format!("Could not find shard {id} in stream {stream} under account {account}."),
        ));
    };
    let exists = k
        .broker
        .describe_stream(stream)
        .ok()
        .is_some_and(|d| d.listed_shards().any(|s| s.id.to_string() == canonical));
    if !exists {
        return Err(KinesisError::new(
            ErrorKind::ResourceNotFound,
            format!("Shard {canonical} in stream {stream} under account {account} does not exist"),
        ));
    }
    Ok(canonical)
}

pub(super) async fn get_shard_iterator(k: &Kinesis, r: Value<'_>) -> Result<Out, KinesisError> {
    let name = k.stream_of(&r)?;
    let shard = resolve_shard(k, &name, r.str("ShardId").unwrap_or_default())?;
    let shard = shard.as_str();
    let kind = position(
        r.str("ShardIteratorType").unwrap_or_default(),
        r.str("StartingSequenceNumber"),
        r.time("Timestamp"),
        shard,
        name.as_str(),
        &k.config.account,
    )?;
    let iterator = k
        .broker
        .get_shard_iterator(&name, shard, kind, None)
        .await
        .map_err(|e| k.broker_error(&e))?;
    Ok(Out::Struct(vec![("ShardIterator", Out::Str(iterator))]))
}

/// A record as Kinesis returns it.
pub fn record_out(r: StoredRecord) -> Out {
    Out::Struct(vec![
        ("SequenceNumber", Out::str(r.sequence.get().to_string())),
        ("ApproximateArrivalTimestamp", Out::Time(r.timestamp_ms)),
        ("Data", Out::Blob(r.data)),
        (
            "PartitionKey",
            Out::Str(String::from_utf8_lossy(&r.partition_key).into_owned()),
        ),
    ])
}

pub(super) async fn get_records(k: &Kinesis, r: Value<'_>) -> Result<Out, KinesisError> {
    let iterator = r.str("ShardIterator").unwrap_or_default();
    let limit = r.int("Limit").unwrap_or(MAX_GET_RECORDS_LIMIT);
    let limit = u32::try_from(limit)
        .unwrap_or(u32::MAX)
        .min(k.broker.config().get_records_limit);
    let out = k
        .broker
        .get_records(iterator, limit)
        .await
        .map_err(|e| k.broker_error(&e))?;
    Ok(Out::Struct(vec![
        (
            "Records",
            Out::List(out.records.into_iter().map(record_out).collect()),
        ),
        (
            "NextShardIterator",
            out.next_shard_iterator.map_or(Out::Null, Out::Str),
        ),
        (
            "MillisBehindLatest",
            Out::Int(i64::try_from(out.behind_latest.as_millis()).unwrap_or(i64::MAX)),
        ),
        ("ChildShards", child_shards_out(&out.child_shards)),
    ]))
}

/// `ChildShards` of a read that reached the end of a closed shard; null (left out) otherwise.
pub(super) fn child_shards_out(children: &[crate::stream::ChildShard]) -> Out {
    if children.is_empty() {
        return Out::Null;
    }
    Out::List(
        children
            .iter()
            .map(|c| {
                Out::Struct(vec![
                    ("ShardId", Out::str(c.id.to_string())),
                    (
                        "ParentShards",
                        Out::List(c.parents.iter().map(|p| Out::str(p.to_string())).collect()),
                    ),
                    (
                        "HashKeyRange",
                        Out::Struct(vec![
                            ("StartingHashKey", Out::str(c.range.start.to_string())),
                            ("EndingHashKey", Out::str(c.range.end.to_string())),
                        ]),
                    ),
                ])
            })
            .collect(),
    )
}
