//! Domain ⇄ protobuf conversions of the gRPC adapters.

use crate::broker::{IteratorKind, PutAttribute, PutEntry};
use crate::proto::v1 as pb;
use tonic::Status;

use super::status::to_status;
use crate::storage::{SequenceNumber, Timestamp};
use crate::stream::{ChildShard, DedupScope, ShardDescriptor, StreamDescriptor, StreamName};

/// A request's `stream_name`, validated: an invalid one is `INVALID_ARGUMENT` naming it.
pub fn stream_name(name: &str) -> Result<StreamName, Status> {
    StreamName::new(name).map_err(|e| to_status(e.into()))
}

/// A stream name given in another field than `stream_name`, validated; an invalid one is
/// `INVALID_ARGUMENT` naming `field`.
pub fn named_stream(field: &'static str, name: &str) -> Result<StreamName, Status> {
    StreamName::new(name).map_err(|_invalid| {
        to_status(crate::broker::BrokerError::invalid(
            field,
            format!("{name:?} is not a stream name ([a-zA-Z0-9_.-]{{1,128}})"),
        ))
    })
}

/// A span of time as the wire's `millis_behind_latest` carries it: whole ms, saturating.
pub fn millis_i64(span: std::time::Duration) -> i64 {
    i64::try_from(span.as_millis()).unwrap_or(i64::MAX)
}

/// An empty protobuf string means "not given".
pub fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// A shard as described to clients.
pub fn shard(s: &ShardDescriptor) -> pb::Shard {
    pb::Shard {
        shard_id: s.id.to_string(),
        parent_shard_id: s.parent.map(|p| p.to_string()),
        adjacent_parent_shard_id: s.adjacent_parent.map(|p| p.to_string()),
        starting_hash_key: s.range.start.to_string(),
        ending_hash_key: s.range.end.to_string(),
        starting_sequence_number: s.starting_sequence.get(),
        ending_sequence_number: s.ending_sequence.map(SequenceNumber::get),
    }
}

/// A child shard as readers are told of it.
pub fn child_shard(c: &ChildShard) -> pb::ChildShard {
    pb::ChildShard {
        shard_id: c.id.to_string(),
        parent_shards: c.parents.iter().map(ToString::to_string).collect(),
        starting_hash_key: c.range.start.to_string(),
        ending_hash_key: c.range.end.to_string(),
    }
}

/// A stream as described to clients (`ACTIVE`; the caller marks it `UPDATING`).
pub fn stream(d: &StreamDescriptor) -> pb::StreamDescription {
    pb::StreamDescription {
        stream_name: d.name.as_str().to_owned(),
        status: pb::StreamStatus::Active as i32,
        retention_period_hours: d.settings.retention_period_hours(),
        created_at_ms: d.created_at_ms.as_millis() as i64,
        shards: d.listed_shards().map(shard).collect(),
        content_based_deduplication: d.settings.content_based_deduplication,
        dedup_window_seconds: d.settings.dedup_window_seconds(),
        dedup_scope: match d.settings.dedup_scope {
            DedupScope::Stream => pb::DedupScope::Stream as i32,
            DedupScope::MessageGroup => pb::DedupScope::MessageGroup as i32,
        },
    }
}

/// A put entry from its protobuf fields.
pub fn put_entry(
    partition_key: String,
    data: bytes::Bytes,
    explicit_hash_key: String,
    message_group_id: String,
    deduplication_id: String,
    attributes: std::collections::HashMap<String, pb::AttributeValue>,
) -> PutEntry {
    PutEntry {
        partition_key,
        data,
        explicit_hash_key: non_empty(explicit_hash_key),
        message_group_id: non_empty(message_group_id),
        deduplication_id: non_empty(deduplication_id),
        attributes: put_attributes(attributes),
    }
}

/// A request's attributes map, as the broker checks it.
pub fn put_attributes(
    attributes: std::collections::HashMap<String, pb::AttributeValue>,
) -> Vec<PutAttribute> {
    attributes
        .into_iter()
        .map(|(name, v)| PutAttribute {
            name,
            data_type: v.data_type,
            string_value: v.string_value,
            binary_value: v.binary_value,
        })
        .collect()
}

/// A request's filter: `None` when absent or its pattern is empty (no filtering).
pub fn filter(filter: Option<pb::Filter>) -> Option<crate::route::Filter> {
    let f = filter?;
    if f.pattern.is_empty() {
        return None;
    }
    let scope = match pb::FilterScope::try_from(f.scope) {
        Ok(pb::FilterScope::Attributes) => crate::route::FilterScope::Attributes,
        // Unknown values read as the default scope, as protobuf enums do.
        _ => crate::route::FilterScope::Data,
    };
    Some(crate::route::Filter {
        pattern: f.pattern,
        scope,
    })
}

/// A filter as the wire carries it.
pub fn filter_to_pb(filter: &crate::route::Filter) -> pb::Filter {
    pb::Filter {
        pattern: filter.pattern.clone(),
        scope: match filter.scope {
            crate::route::FilterScope::Data => pb::FilterScope::Data as i32,
            crate::route::FilterScope::Attributes => pb::FilterScope::Attributes as i32,
        },
    }
}

/// Why a starting position could not be understood.
#[derive(Debug)]
pub struct PositionError {
    pub field: &'static str,
    pub reason: String,
}

/// An iterator type with its sequence number or timestamp.
pub fn iterator_kind(
    kind: i32,
    sequence: Option<u64>,
    timestamp_ms: Option<i64>,
    prefix: &'static str,
) -> Result<IteratorKind, PositionError> {
    let (type_field, seq_field, ts_field) = match prefix {
        "starting_position" => (
            "starting_position.type",
            "starting_position.sequence_number",
            "starting_position.timestamp_ms",
        ),
        _ => (
            "shard_iterator_type",
            "starting_sequence_number",
            "timestamp_ms",
        ),
    };
    let need_seq = || {
        sequence.map(SequenceNumber::new).ok_or(PositionError {
            field: seq_field,
            reason: "is required for this iterator type".into(),
        })
    };
    match pb::ShardIteratorType::try_from(kind) {
        Ok(pb::ShardIteratorType::TrimHorizon) => Ok(IteratorKind::TrimHorizon),
        Ok(pb::ShardIteratorType::Latest) => Ok(IteratorKind::Latest),
        Ok(pb::ShardIteratorType::AtSequenceNumber) => Ok(IteratorKind::AtSequence(need_seq()?)),
        Ok(pb::ShardIteratorType::AfterSequenceNumber) => {
            Ok(IteratorKind::AfterSequence(need_seq()?))
        }
        Ok(pb::ShardIteratorType::AtTimestamp) => match timestamp_ms {
            Some(ts) if ts >= 0 => Ok(IteratorKind::AtTimestamp(Timestamp::from_millis(ts as u64))),
            Some(ts) => Err(PositionError {
                field: ts_field,
                reason: format!("{ts} is negative"),
            }),
            None => Err(PositionError {
                field: ts_field,
                reason: "is required for AT_TIMESTAMP".into(),
            }),
        },
        Ok(pb::ShardIteratorType::Unspecified) | Err(_) => Err(PositionError {
            field: type_field,
            reason: format!("{kind} is not one of TRIM_HORIZON, LATEST, AT_SEQUENCE_NUMBER, AFTER_SEQUENCE_NUMBER, AT_TIMESTAMP"),
        }),
    }
}
