//! The control plane: streams, shards listing, retention, mode, limits, tags, monitoring, and
//! the operations that have no meaning here (KMS, resource policies), answered as Kinesis
//! answers an account where they are unavailable.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::error::{ErrorKind, KinesisError};
use super::schema::{
    is_consumer_arn, is_name, member, Member, Rule, Shape, Ty, STREAM_ARN, STREAM_NAME,
};
use super::token::PageToken;
use super::value::{Out, Value};
use super::{Kinesis, DEFAULT_ON_DEMAND_SHARDS};
use crate::broker::ShardFilter;
use crate::storage::Timestamp;
use crate::stream::{
    DedupScope, ShardDescriptor, StreamChange, StreamDescriptor, StreamMode, StreamName,
    StreamOptions, StreamSettings, MAX_RETENTION_HOURS,
};

const SECS_PER_HOUR: u64 = 3600;
/// Shards one DescribeStream page holds by default (Kinesis: 100).
pub const DESCRIBE_STREAM_PAGE: usize = 100;
/// Shards one ListShards page holds by default (Kinesis: 1,000).
pub const LIST_SHARDS_PAGE: usize = 1000;
/// Streams one ListStreams page holds by default (Kinesis: 100).
pub const LIST_STREAMS_PAGE: usize = 100;
/// Tags one ListTagsForStream page holds by default (Kinesis: 50).
pub const LIST_TAGS_PAGE: usize = 50;

const MODES: &[&str] = &["PROVISIONED", "ON_DEMAND"];
const MODE_DETAILS: &[Member] = &[member(
    "StreamMode",
    Ty::Str,
    &[Rule::Required, Rule::OneOf(MODES)],
)];
const TAG_VALUE: Shape = Shape {
    ty: Ty::Str,
    rules: &[Rule::MinLen(0), Rule::MaxLen(256)],
};
const TAG_KEY: Shape = Shape {
    ty: Ty::Str,
    rules: &[Rule::MinLen(1), Rule::MaxLen(128)],
};
const TAGS_RULES: &[Rule] = &[Rule::MinLen(1), Rule::MaxLen(200), Rule::KeyLen(1, 128)];
const RESOURCE_ARN: Member = member(
    "ResourceARN",
    Ty::Str,
    &[
        Rule::Required,
        Rule::MinLen(1),
        Rule::MaxLen(2048),
        Rule::Pattern("arn:aws.*:kinesis:.*:\\d{12}:.+", is_kinesis_resource),
    ],
);
const METRICS: &[&str] = &[
    "IncomingBytes",
    "IncomingRecords",
    "OutgoingBytes",
    "OutgoingRecords",
    "WriteProvisionedThroughputExceeded",
    "ReadProvisionedThroughputExceeded",
    "IteratorAgeMilliseconds",
    "ALL",
];
const METRIC: Shape = Shape {
    ty: Ty::Str,
    rules: &[Rule::OneOf(METRICS)],
};

fn is_kinesis_resource(s: &str) -> bool {
    super::arn::parse_stream(s).is_some() || is_consumer_arn(s)
}

pub(super) const STREAM_ONLY: &[Member] = &[STREAM_NAME, STREAM_ARN];
pub(super) const RESOURCE_ONLY: &[Member] = &[RESOURCE_ARN];
pub(super) const CREATE_STREAM: &[Member] = &[
    member(
        "StreamName",
        Ty::Str,
        &[
            Rule::Required,
            Rule::MinLen(1),
            Rule::MaxLen(128),
            Rule::Pattern("[a-zA-Z0-9_.-]+", is_name),
        ],
    ),
    member("ShardCount", Ty::Int, &[Rule::Min(1)]),
    member("StreamModeDetails", Ty::Struct(MODE_DETAILS), &[]),
    member("Tags", Ty::Map(&TAG_VALUE), TAGS_RULES),
];
pub(super) const DELETE_STREAM: &[Member] = &[
    STREAM_NAME,
    STREAM_ARN,
    member("EnforceConsumerDeletion", Ty::Bool, &[]),
];
pub(super) const DESCRIBE_STREAM: &[Member] = &[
    STREAM_NAME,
    STREAM_ARN,
    member("Limit", Ty::Int, &[Rule::Min(1), Rule::Max(10_000)]),
    member(
        "ExclusiveStartShardId",
        Ty::Str,
        &[
            Rule::MinLen(1),
            Rule::MaxLen(128),
            Rule::Pattern("[a-zA-Z0-9_.-]+", is_name),
        ],
    ),
];
pub(super) const LIST_STREAMS: &[Member] = &[
    member("Limit", Ty::Int, &[Rule::Min(1), Rule::Max(10_000)]),
    member(
        "ExclusiveStartStreamName",
        Ty::Str,
        &[
            Rule::MinLen(1),
            Rule::MaxLen(128),
            Rule::Pattern("[a-zA-Z0-9_.-]+", is_name),
        ],
    ),
    member(
        "NextToken",
        Ty::Str,
        &[Rule::MinLen(1), Rule::MaxLen(1_048_576)],
    ),
];
const SHARD_FILTER_TYPES: &[&str] = &[
    "AFTER_SHARD_ID",
    "AT_TRIM_HORIZON",
    "FROM_TRIM_HORIZON",
    "AT_LATEST",
    "AT_TIMESTAMP",
    "FROM_TIMESTAMP",
];
const SHARD_FILTER: &[Member] = &[
    member(
        "Type",
        Ty::Str,
        &[Rule::Required, Rule::OneOf(SHARD_FILTER_TYPES)],
    ),
    member(
        "ShardId",
        Ty::Str,
        &[
            Rule::MinLen(1),
            Rule::MaxLen(128),
            Rule::Pattern("[a-zA-Z0-9_.-]+", is_name),
        ],
    ),
    member("Timestamp", Ty::Time, &[]),
];
pub(super) const LIST_SHARDS: &[Member] = &[
    STREAM_NAME,
    STREAM_ARN,
    member(
        "NextToken",
        Ty::Str,
        &[Rule::MinLen(1), Rule::MaxLen(1_048_576)],
    ),
    member(
        "ExclusiveStartShardId",
        Ty::Str,
        &[
            Rule::MinLen(1),
            Rule::MaxLen(128),
            Rule::Pattern("[a-zA-Z0-9_.-]+", is_name),
        ],
    ),
    member("MaxResults", Ty::Int, &[Rule::Min(1), Rule::Max(10_000)]),
    member("StreamCreationTimestamp", Ty::Time, &[]),
    member("ShardFilter", Ty::Struct(SHARD_FILTER), &[]),
];
pub(super) const RETENTION: &[Member] = &[
    STREAM_NAME,
    STREAM_ARN,
    member(
        "RetentionPeriodHours",
        Ty::Int,
        &[
            Rule::Required,
            Rule::Min(1),
            Rule::Max(MAX_RETENTION_HOURS as i64),
        ],
    ),
];
pub(super) const UPDATE_STREAM_MODE: &[Member] = &[
    member("StreamARN", STREAM_ARN.shape.ty, &[Rule::Required]),
    member(
        "StreamModeDetails",
        Ty::Struct(MODE_DETAILS),
        &[Rule::Required],
    ),
];
pub(super) const ADD_TAGS: &[Member] = &[
    STREAM_NAME,
    STREAM_ARN,
    member(
        "Tags",
        Ty::Map(&TAG_VALUE),
        &[
            Rule::Required,
            Rule::MinLen(1),
            Rule::MaxLen(10),
            Rule::KeyLen(1, 128),
        ],
    ),
];
pub(super) const REMOVE_TAGS: &[Member] = &[
    STREAM_NAME,
    STREAM_ARN,
    member(
        "TagKeys",
        Ty::List(&TAG_KEY),
        &[Rule::Required, Rule::MinLen(1), Rule::MaxLen(50)],
    ),
];
pub(super) const LIST_TAGS_FOR_STREAM: &[Member] = &[
    STREAM_NAME,
    STREAM_ARN,
    member(
        "ExclusiveStartTagKey",
        Ty::Str,
        &[Rule::MinLen(1), Rule::MaxLen(128)],
    ),
    member("Limit", Ty::Int, &[Rule::Min(1), Rule::Max(50)]),
];
pub(super) const TAG_RESOURCE: &[Member] = &[
    RESOURCE_ARN,
    member(
        "Tags",
        Ty::Map(&TAG_VALUE),
        &[
            Rule::Required,
            Rule::MinLen(1),
            Rule::MaxLen(50),
            Rule::KeyLen(1, 128),
        ],
    ),
];
pub(super) const UNTAG_RESOURCE: &[Member] = &[
    RESOURCE_ARN,
    member(
        "TagKeys",
        Ty::List(&TAG_KEY),
        &[Rule::Required, Rule::MinLen(1), Rule::MaxLen(50)],
    ),
];
pub(super) const MONITORING: &[Member] = &[
    STREAM_NAME,
    STREAM_ARN,
    member(
        "ShardLevelMetrics",
        Ty::List(&METRIC),
        &[Rule::Required, Rule::MinLen(1), Rule::MaxLen(7)],
    ),
];
pub(super) const ENCRYPTION: &[Member] = &[
    STREAM_NAME,
    STREAM_ARN,
    member(
        "EncryptionType",
        Ty::Str,
        &[Rule::Required, Rule::OneOf(&["NONE", "KMS"])],
    ),
    member(
        "KeyId",
        Ty::Str,
        &[Rule::Required, Rule::MinLen(1), Rule::MaxLen(2048)],
    ),
];

/// Streams are created and deleted synchronously: one that can be described is active, or
/// updating while a reshard runs.
fn status_of(k: &Kinesis, d: &StreamDescriptor) -> &'static str {
    if k.broker.stream_updating(&d.name).unwrap_or(false) {
        "UPDATING"
    } else {
        "ACTIVE"
    }
}

fn mode_details(options: &StreamOptions) -> Out {
    Out::Struct(vec![("StreamMode", Out::str(options.mode.as_str()))])
}

fn shard_out(shard: &ShardDescriptor) -> Out {
    Out::Struct(vec![
        ("ShardId", Out::str(shard.id.to_string())),
        (
            "ParentShardId",
            shard.parent.map_or(Out::Null, |p| Out::str(p.to_string())),
        ),
        (
            "AdjacentParentShardId",
            shard
                .adjacent_parent
                .map_or(Out::Null, |p| Out::str(p.to_string())),
        ),
        (
            "HashKeyRange",
            Out::Struct(vec![
                ("StartingHashKey", Out::str(shard.range.start.to_string())),
                ("EndingHashKey", Out::str(shard.range.end.to_string())),
            ]),
        ),
        (
            "SequenceNumberRange",
            Out::Struct(vec![
                (
                    "StartingSequenceNumber",
                    Out::str(shard.starting_sequence.get().to_string()),
                ),
                (
                    // Kinesis names the last record's number (the first one for an empty
                    // shard); the store keeps one past it.
                    "EndingSequenceNumber",
                    shard.ending_sequence.map_or(Out::Null, |s| {
                        let last = s.checked_sub(1).unwrap_or(s);
                        Out::str(last.get().to_string())
                    }),
                ),
            ]),
        ),
    ])
}

fn monitoring(options: &StreamOptions) -> Out {
    Out::List(vec![Out::Struct(vec![(
        "ShardLevelMetrics",
        Out::List(
            options
                .shard_level_metrics
                .iter()
                .map(|m| Out::str(m.clone()))
                .collect(),
        ),
    )])])
}

fn describe(k: &Kinesis, name: &StreamName) -> Result<StreamDescriptor, KinesisError> {
    k.broker
        .describe_stream(name)
        .map_err(|e| k.broker_error(&e))
}

pub(super) async fn create_stream(k: &Kinesis, r: Value<'_>) -> Result<Out, KinesisError> {
    let name = k.stream_of(&r)?;
    let mode = match r.get("StreamModeDetails").and_then(|d| d.str("StreamMode")) {
        Some(m) => StreamMode::parse(m).unwrap_or_default(),
        None => StreamMode::Provisioned,
    };
    let shard_count = match (mode, r.int("ShardCount")) {
        (_, Some(n)) => n,
        (StreamMode::OnDemand, None) => i64::from(DEFAULT_ON_DEMAND_SHARDS),
        (StreamMode::Provisioned, None) => {
            return Err(KinesisError::new(
                ErrorKind::Validation,
                "1 validation error detected: Value null at 'shardCount' failed to satisfy \
                 constraint: Member must not be null",
            ))
        }
    };
    let limits = &k.broker.config().stream_limits;
    if shard_count > i64::from(limits.max_shard_count) {
        return Err(KinesisError::new(
            ErrorKind::LimitExceeded,
            format!(
                "This request would exceed the shard limit for the account {} in {}. \
                 Current shard count for the account: 0. Limit: {}. Number of additional shards \
                 that would have resulted from this request: {shard_count}. Refer to the AWS \
                 Service Limits page \
                 (http://docs.aws.amazon.com/general/latest/gr/aws_service_limits.html) for \
                 current limits and how to request higher limits.",
                k.config.account, k.config.region, limits.max_shard_count
            ),
        ));
    }
    let tags: BTreeMap<String, String> = r
        .map("Tags")
        .unwrap_or_default()
        .iter()
        .map(|(key, v)| (key.to_string(), v.as_str().unwrap_or_default().to_owned()))
        .collect();
    check_tag_text(
        k,
        name.as_str(),
        true,
        tags.iter().flat_map(|(key, v)| [key.as_str(), v.as_str()]),
    )?;
    if tags.len() > limits.max_tags {
        return Err(KinesisError::invalid(format!(
            "Failed to add tags to stream {name} under account {} because a given stream cannot \
             have more than {} tags associated with it.",
            k.config.account, limits.max_tags
        )));
    }
    let settings = StreamSettings::from_request(0, false, 0, DedupScope::Stream, limits)
        .map_err(|e| KinesisError::invalid(e.to_string()))?;
    let options = StreamOptions {
        mode,
        tags,
        ..StreamOptions::default()
    };
    k.broker
        .create_stream_with(name, shard_count as u32, settings, options)
        .await
        .map_err(|e| k.broker_error(&e))?;
    Ok(Out::Struct(vec![]))
}

pub(super) async fn delete_stream(k: &Kinesis, r: Value<'_>) -> Result<Out, KinesisError> {
    let name = k.stream_of(&r)?;
    let d = describe(k, &name)?;
    if !d.options.consumers.is_empty() && r.bool("EnforceConsumerDeletion") != Some(true) {
        return Err(KinesisError::new(
            ErrorKind::ResourceInUse,
            format!(
                "Stream {name} under account {} has {} registered consumers; deregister them or \
                 set EnforceConsumerDeletion.",
                k.config.account,
                d.options.consumers.len()
            ),
        ));
    }
    k.broker
        .delete_stream(&name)
        .await
        .map_err(|e| k.broker_error(&e))?;
    Ok(Out::Struct(vec![]))
}

/// The shards after `after` (exclusive), at most `limit` of them, and whether more follow.
fn page<'a>(
    shards: impl Iterator<Item = &'a ShardDescriptor>,
    after: Option<&str>,
    limit: usize,
) -> (Vec<&'a ShardDescriptor>, bool) {
    let mut rest = shards.filter(|s| after.is_none_or(|a| s.id.to_string().as_str() > a));
    let chosen: Vec<_> = rest.by_ref().take(limit).collect();
    (chosen, rest.next().is_some())
}

pub(super) fn describe_stream(k: &Kinesis, r: Value<'_>) -> Result<Out, KinesisError> {
    let name = k.stream_of(&r)?;
    let d = describe(k, &name)?;
    let limit = r.int("Limit").map_or(DESCRIBE_STREAM_PAGE, |n| n as usize);
    let (shards, more) = page(d.listed_shards(), r.str("ExclusiveStartShardId"), limit);
    Ok(Out::Struct(vec![(
        "StreamDescription",
        Out::Struct(vec![
            ("StreamName", Out::str(name.as_str())),
            ("StreamARN", Out::str(k.stream_arn(name.as_str()))),
            ("StreamStatus", Out::str(status_of(k, &d))),
            ("StreamModeDetails", mode_details(&d.options)),
            (
                "Shards",
                Out::List(shards.into_iter().map(shard_out).collect()),
            ),
            ("HasMoreShards", Out::Bool(more)),
            (
                "RetentionPeriodHours",
                Out::Int(i64::from(d.settings.retention_period_hours())),
            ),
            ("StreamCreationTimestamp", Out::Time(d.created_at_ms)),
            ("EnhancedMonitoring", monitoring(&d.options)),
            ("EncryptionType", Out::str("NONE")),
        ]),
    )]))
}

pub(super) fn describe_stream_summary(k: &Kinesis, r: Value<'_>) -> Result<Out, KinesisError> {
    let name = k.stream_of(&r)?;
    let d = describe(k, &name)?;
    let open = d
        .shards()
        .iter()
        .filter(|s| s.ending_sequence.is_none())
        .count();
    Ok(Out::Struct(vec![(
        "StreamDescriptionSummary",
        Out::Struct(vec![
            ("StreamName", Out::str(name.as_str())),
            ("StreamARN", Out::str(k.stream_arn(name.as_str()))),
            ("StreamStatus", Out::str(status_of(k, &d))),
            ("StreamModeDetails", mode_details(&d.options)),
            (
                "RetentionPeriodHours",
                Out::Int(i64::from(d.settings.retention_period_hours())),
            ),
            ("StreamCreationTimestamp", Out::Time(d.created_at_ms)),
            ("EnhancedMonitoring", monitoring(&d.options)),
            ("EncryptionType", Out::str("NONE")),
            ("OpenShardCount", Out::Int(open as i64)),
            ("ConsumerCount", Out::Int(d.options.consumers.len() as i64)),
        ]),
    )]))
}

pub(super) fn list_streams(
    k: &Kinesis,
    r: Value<'_>,
    caller: &crate::auth::Caller,
) -> Result<Out, KinesisError> {
    let (after, limit) = match r.str("NextToken") {
        Some(text) => {
            let t = PageToken::decode(text, "streams", Timestamp::now(), k.config.next_token_ttl)?;
            (
                Some(t.after),
                r.int("Limit").map_or(t.limit, |n| n as usize),
            )
        }
        None => (
            r.str("ExclusiveStartStreamName").map(str::to_owned),
            r.int("Limit").map_or(LIST_STREAMS_PAGE, |n| n as usize),
        ),
    };
    // A principal sees only the streams it may read.
    let names: Vec<String> = k
        .broker
        .list_streams()
        .into_iter()
        .filter(|n| caller.may(crate::auth::Action::Read, n))
        .collect();
    let mut rest = names
        .iter()
        .filter(|n| after.as_deref().is_none_or(|a| n.as_str() > a));
    let chosen: Vec<&String> = rest.by_ref().take(limit).collect();
    let more = rest.next().is_some();
    let summaries = chosen
        .iter()
        .filter_map(|n| {
            let d = StreamName::new(n.as_str())
                .ok()
                .and_then(|name| k.broker.describe_stream(&name).ok())?;
            Some(Out::Struct(vec![
                ("StreamName", Out::str(n.as_str())),
                ("StreamARN", Out::str(k.stream_arn(n))),
                ("StreamStatus", Out::str(status_of(k, &d))),
                ("StreamModeDetails", mode_details(&d.options)),
                ("StreamCreationTimestamp", Out::Time(d.created_at_ms)),
            ]))
        })
        .collect();
    let next = match (more, chosen.last()) {
        (true, Some(last)) => Out::str(
            PageToken {
                kind: "streams".into(),
                stream: String::new(),
                after: (*last).clone(),
                limit,
                issued_at: Timestamp::now(),
            }
            .encode(),
        ),
        _ => Out::Null,
    };
    Ok(Out::Struct(vec![
        (
            "StreamNames",
            Out::List(chosen.iter().map(|n| Out::str(n.as_str())).collect()),
        ),
        ("HasMoreStreams", Out::Bool(more)),
        ("NextToken", next),
        ("StreamSummaries", Out::List(summaries)),
    ]))
}

pub(super) fn list_shards(k: &Kinesis, r: Value<'_>) -> Result<Out, KinesisError> {
    let (name, after, limit, filter) = match r.str("NextToken") {
        Some(text) => {
            if r.str("StreamName").is_some() || r.str("StreamARN").is_some() {
                return Err(KinesisError::invalid(
                    "NextToken and StreamName cannot be provided together.",
                ));
            }
            if r.str("ExclusiveStartShardId").is_some() {
                return Err(KinesisError::invalid(
                    "NextToken and ExclusiveStartShardId cannot be provided together.",
                ));
            }
            let t = PageToken::decode(text, "shards", Timestamp::now(), k.config.next_token_ttl)?;
            let name = StreamName::new(t.stream.as_str())
                .map_err(|_| KinesisError::invalid(format!("Invalid NextToken: {text}")))?;
            let limit = r.int("MaxResults").map_or(t.limit, |n| n as usize);
            (name, Some(t.after), limit, None)
        }
        None if r.str("StreamName").is_none() && r.str("StreamARN").is_none() => {
            return Err(KinesisError::invalid(
                "Either NextToken or StreamName should be provided.",
            ))
        }
        None => (
            k.stream_of(&r)?,
            r.str("ExclusiveStartShardId").map(str::to_owned),
            r.int("MaxResults").map_or(LIST_SHARDS_PAGE, |n| n as usize),
            r.get("ShardFilter"),
        ),
    };
    let mut after = after;
    let chosen_filter = match filter.and_then(|f| f.str("Type")) {
        Some("AFTER_SHARD_ID") => {
            let Some(id) = filter.and_then(|f| f.str("ShardId")) else {
                return Err(KinesisError::invalid(
                    "ShardFilter of type AFTER_SHARD_ID must name a ShardId.",
                ));
            };
            after = Some(after.map_or(id.to_owned(), |a| a.max(id.to_owned())));
            ShardFilter::All
        }
        Some("AT_TIMESTAMP" | "FROM_TIMESTAMP")
            if filter.and_then(|f| f.time("Timestamp")).is_none() =>
        {
            return Err(KinesisError::invalid(
                "ShardFilter of type AT_TIMESTAMP or FROM_TIMESTAMP must give a Timestamp.",
            ))
        }
        Some("AT_LATEST") => ShardFilter::AtLatest,
        Some("AT_TRIM_HORIZON") => ShardFilter::AtTrimHorizon,
        Some("FROM_TRIM_HORIZON") => ShardFilter::FromTrimHorizon,
        Some(kind @ ("AT_TIMESTAMP" | "FROM_TIMESTAMP")) => {
            // Checked present above; a time before 1970 reads as the stream's creation.
            let ms = filter.and_then(|f| f.time("Timestamp")).unwrap_or(0);
            let at = Timestamp::from_millis(u64::try_from(ms).unwrap_or(0));
            if kind == "AT_TIMESTAMP" {
                ShardFilter::AtTimestamp(at)
            } else {
                ShardFilter::FromTimestamp(at)
            }
        }
        _ => ShardFilter::All,
    };
    let listed = k
        .broker
        .list_shards(&name, chosen_filter)
        .map_err(|e| k.broker_error(&e))?;
    let (chosen, more) = page(listed.iter(), after.as_deref(), limit);
    let next = match (more, chosen.last()) {
        (true, Some(last)) => Out::str(
            PageToken {
                kind: "shards".into(),
                stream: name.to_string(),
                after: last.id.to_string(),
                limit,
                issued_at: Timestamp::now(),
            }
            .encode(),
        ),
        _ => Out::Null,
    };
    Ok(Out::Struct(vec![
        (
            "Shards",
            Out::List(chosen.into_iter().map(shard_out).collect()),
        ),
        ("NextToken", next),
    ]))
}

pub(super) async fn change_retention(
    k: &Kinesis,
    r: Value<'_>,
    increase: bool,
) -> Result<Out, KinesisError> {
    let name = k.stream_of(&r)?;
    let hours = r.int("RetentionPeriodHours").unwrap_or_default();
    let d = describe(k, &name)?;
    let current = i64::from(d.settings.retention_period_hours());
    let min = i64::from(k.config.min_retention_hours);
    if hours < min {
        return Err(KinesisError::invalid(format!(
            "Minimum allowed retention period is {min} hours. Requested retention period \
             ({hours} hours) is too short."
        )));
    }
    if increase && hours < current {
        return Err(KinesisError::invalid(format!(
            "Requested retention period ({hours} hours) for stream {name} can not be shorter \
             than existing retention period ({current} hours). Use DecreaseRetentionPeriod API."
        )));
    }
    if !increase && hours > current {
        return Err(KinesisError::invalid(format!(
            "Requested retention period ({hours} hours) for stream {name} can not be longer \
             than existing retention period ({current} hours). Use IncreaseRetentionPeriod API."
        )));
    }
    let retention = Duration::from_secs(hours as u64 * SECS_PER_HOUR);
    k.broker
        .update_stream(&name, StreamChange::Retention(retention))
        .await
        .map_err(|e| k.broker_error(&e))?;
    Ok(Out::Struct(vec![]))
}

pub(super) async fn update_stream_mode(k: &Kinesis, r: Value<'_>) -> Result<Out, KinesisError> {
    let name = k.stream_of(&r)?;
    let mode = r
        .get("StreamModeDetails")
        .and_then(|d| d.str("StreamMode"))
        .and_then(StreamMode::parse)
        .unwrap_or_default();
    k.broker
        .update_stream(&name, StreamChange::Mode(mode))
        .await
        .map_err(|e| k.broker_error(&e))?;
    Ok(Out::Struct(vec![]))
}

pub(super) fn describe_limits(k: &Kinesis) -> Result<Out, KinesisError> {
    let mut open = 0;
    let mut on_demand = 0;
    for n in k.broker.list_streams() {
        let Some(d) = StreamName::new(n)
            .ok()
            .and_then(|name| k.broker.describe_stream(&name).ok())
        else {
            continue;
        };
        open += d
            .shards()
            .iter()
            .filter(|s| s.ending_sequence.is_none())
            .count();
        on_demand += usize::from(d.options.mode == StreamMode::OnDemand);
    }
    let limits = &k.broker.config().stream_limits;
    Ok(Out::Struct(vec![
        // The limit is per stream here; an account has as many streams as the disk holds.
        ("ShardLimit", Out::Int(i64::from(limits.max_shard_count))),
        ("OpenShardCount", Out::Int(open as i64)),
        ("OnDemandStreamCount", Out::Int(on_demand as i64)),
        ("OnDemandStreamCountLimit", Out::Int(i64::from(u32::MAX))),
    ]))
}

/// Whether a tag key or value holds only what Kinesis allows: Unicode letters and digits,
/// spaces, and `_ . / = + - @`.
fn tag_text_ok(text: &str) -> bool {
    text.chars()
        .all(|c| c.is_alphanumeric() || matches!(c, ' ' | '_' | '.' | '/' | '=' | '+' | '-' | '@'))
}

/// Refuses tags with characters Kinesis does not allow, in its words (which differ for `%`).
fn check_tag_text<'t>(
    k: &Kinesis,
    stream: &str,
    adding: bool,
    mut texts: impl Iterator<Item = &'t str>,
) -> Result<(), KinesisError> {
    let Some(bad) = texts.find(|t| !tag_text_ok(t)) else {
        return Ok(());
    };
    if bad.contains('%') {
        return Err(KinesisError::invalid(format!(
            "Failed to {} tags {} stream {stream} under account {} because some tags contained \
             illegal characters. The allowed characters are Unicode letters, white-spaces, \
             '_',',','/','=','+','-','@'.",
            if adding { "add" } else { "remove" },
            if adding { "to" } else { "from" },
            k.config.account
        )));
    }
    Err(KinesisError::invalid(
        "Some tags contain invalid characters. Valid characters: Unicode letters, digits, white \
         space, _ . / = + - % @.",
    ))
}

fn tags_of(members: &[(std::borrow::Cow<'_, str>, Value<'_>)]) -> BTreeMap<String, String> {
    members
        .iter()
        .map(|(key, v)| (key.to_string(), v.as_str().unwrap_or_default().to_owned()))
        .collect()
}

fn keys_of(items: &[Value<'_>]) -> Vec<String> {
    items
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

pub(super) async fn add_tags(k: &Kinesis, r: Value<'_>) -> Result<Out, KinesisError> {
    let name = k.stream_of(&r)?;
    let tags = tags_of(r.map("Tags").unwrap_or_default());
    let texts = tags.iter().flat_map(|(key, v)| [key.as_str(), v.as_str()]);
    check_tag_text(k, name.as_str(), true, texts)?;
    change(k, &name, StreamChange::AddTags(tags)).await
}

pub(super) async fn remove_tags(k: &Kinesis, r: Value<'_>) -> Result<Out, KinesisError> {
    let name = k.stream_of(&r)?;
    let keys = keys_of(r.list("TagKeys").unwrap_or_default());
    check_tag_text(k, name.as_str(), false, keys.iter().map(String::as_str))?;
    change(k, &name, StreamChange::RemoveTags(keys)).await
}

async fn change(k: &Kinesis, name: &StreamName, c: StreamChange) -> Result<Out, KinesisError> {
    k.broker
        .update_stream(name, c)
        .await
        .map_err(|e| k.broker_error(&e))?;
    Ok(Out::Struct(vec![]))
}

fn tag_list<'a>(tags: impl Iterator<Item = (&'a String, &'a String)>) -> Out {
    Out::List(
        tags.map(|(key, value)| {
            Out::Struct(vec![
                ("Key", Out::str(key.as_str())),
                ("Value", Out::str(value.as_str())),
            ])
        })
        .collect(),
    )
}

pub(super) fn list_tags_for_stream(k: &Kinesis, r: Value<'_>) -> Result<Out, KinesisError> {
    let name = k.stream_of(&r)?;
    let d = describe(k, &name)?;
    let limit = r.int("Limit").map_or(LIST_TAGS_PAGE, |n| n as usize);
    let after = r.str("ExclusiveStartTagKey");
    let mut rest = d
        .options
        .tags
        .iter()
        .filter(|(key, _)| after.is_none_or(|a| key.as_str() > a));
    let chosen: Vec<_> = rest.by_ref().take(limit).collect();
    let more = rest.next().is_some();
    Ok(Out::Struct(vec![
        ("Tags", tag_list(chosen.into_iter())),
        ("HasMoreTags", Out::Bool(more)),
    ]))
}

/// The stream a `ResourceARN` names; tags are kept for streams only.
fn tagged_stream(k: &Kinesis, r: &Value<'_>) -> Result<StreamName, KinesisError> {
    let text = r.str("ResourceARN").unwrap_or_default();
    let Some(name) = super::arn::parse_stream(text) else {
        return Err(KinesisError::invalid(format!(
            "{text} is not a stream ARN: this server keeps tags for streams only."
        )));
    };
    let name = StreamName::new(name).map_err(|e| KinesisError::invalid(e.to_string()))?;
    describe(k, &name)?;
    Ok(name)
}

pub(super) async fn tag_resource(k: &Kinesis, r: Value<'_>) -> Result<Out, KinesisError> {
    let name = tagged_stream(k, &r)?;
    let tags = tags_of(r.map("Tags").unwrap_or_default());
    let texts = tags.iter().flat_map(|(key, v)| [key.as_str(), v.as_str()]);
    check_tag_text(k, name.as_str(), true, texts)?;
    change(k, &name, StreamChange::AddTags(tags)).await
}

pub(super) async fn untag_resource(k: &Kinesis, r: Value<'_>) -> Result<Out, KinesisError> {
    let name = tagged_stream(k, &r)?;
    let keys = keys_of(r.list("TagKeys").unwrap_or_default());
    check_tag_text(k, name.as_str(), false, keys.iter().map(String::as_str))?;
    change(k, &name, StreamChange::RemoveTags(keys)).await
}

pub(super) fn list_tags_for_resource(k: &Kinesis, r: Value<'_>) -> Result<Out, KinesisError> {
    let name = tagged_stream(k, &r)?;
    let d = describe(k, &name)?;
    Ok(Out::Struct(vec![("Tags", tag_list(d.options.tags.iter()))]))
}

pub(super) async fn set_monitoring(
    k: &Kinesis,
    r: Value<'_>,
    enable: bool,
) -> Result<Out, KinesisError> {
    let name = k.stream_of(&r)?;
    let asked: BTreeSet<String> = keys_of(r.list("ShardLevelMetrics").unwrap_or_default())
        .into_iter()
        .flat_map(|m| {
            if m == "ALL" {
                METRICS[..METRICS.len() - 1]
                    .iter()
                    .map(|s| s.to_string())
                    .collect()
            } else {
                vec![m]
            }
        })
        .collect();
    let current = describe(k, &name)?.options.shard_level_metrics;
    let desired: BTreeSet<String> = if enable {
        current.union(&asked).cloned().collect()
    } else {
        current.difference(&asked).cloned().collect()
    };
    k.broker
        .update_stream(&name, StreamChange::ShardLevelMetrics(desired.clone()))
        .await
        .map_err(|e| k.broker_error(&e))?;
    let list =
        |set: &BTreeSet<String>| Out::List(set.iter().map(|m| Out::str(m.as_str())).collect());
    Ok(Out::Struct(vec![
        ("StreamName", Out::str(name.as_str())),
        ("CurrentShardLevelMetrics", list(&current)),
        ("DesiredShardLevelMetrics", list(&desired)),
        ("StreamARN", Out::str(k.stream_arn(name.as_str()))),
    ]))
}

pub(super) fn start_encryption(k: &Kinesis, r: Value<'_>) -> Result<Out, KinesisError> {
    let name = k.stream_of(&r)?;
    describe(k, &name)?;
    Err(KinesisError::new(
        ErrorKind::KmsNotFound,
        format!(
            "The KMS key {} was not found: this server has no KMS, and keeps stream {name} \
             unencrypted at the API level (encrypt the disk it stores to instead).",
            r.str("KeyId").unwrap_or_default()
        ),
    ))
}

pub(super) fn stop_encryption(k: &Kinesis, r: Value<'_>) -> Result<Out, KinesisError> {
    // A stream here is never KMS-encrypted, so it is already as asked.
    let name = k.stream_of(&r)?;
    describe(k, &name)?;
    Ok(Out::Struct(vec![]))
}

pub(super) fn no_resource_policies() -> KinesisError {
    KinesisError::new(
        ErrorKind::AccessDenied,
        "Resource-based policies are not available on this server.",
    )
}

pub(super) fn update_max_record_size(k: &Kinesis, r: Value<'_>) -> Result<Out, KinesisError> {
    let name = k.stream_of(&r)?;
    describe(k, &name)?;
    Err(KinesisError::invalid(format!(
        "The record size limit is the server's ({} bytes, set by --max-record-bytes), not a \
         stream's.",
        k.broker.config().max_record_bytes
    )))
}
