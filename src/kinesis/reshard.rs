//! SplitShard, MergeShards and UpdateShardCount: Kinesis's resharding calls over the broker's
//! atomic switch. Kinesis answers the first two with an empty body and reshards in the
//! background; here the switch is done before the answer, so a client that waits for `ACTIVE`
//! finds it at once.

use super::error::KinesisError;
use super::records::resolve_shard;
use super::schema::{is_hash_key, is_name, member, Member, Rule, Ty, STREAM_ARN, STREAM_NAME};
use super::value::{Out, Value};
use super::Kinesis;

const fn shard_member(name: &'static str) -> Member {
    member(
        name,
        Ty::Str,
        &[
            Rule::Required,
            Rule::MinLen(1),
            Rule::MaxLen(128),
            Rule::Pattern("[a-zA-Z0-9_.-]+", is_name),
        ],
    )
}

/// `SplitShard`'s input.
pub(super) const SPLIT_SHARD: &[Member] = &[
    STREAM_NAME,
    STREAM_ARN,
    shard_member("ShardToSplit"),
    member(
        "NewStartingHashKey",
        Ty::Str,
        &[
            Rule::Required,
            Rule::Pattern("0|([1-9]\\d{0,38})", is_hash_key),
        ],
    ),
];

/// `MergeShards`'s input.
pub(super) const MERGE_SHARDS: &[Member] = &[
    STREAM_NAME,
    STREAM_ARN,
    shard_member("ShardToMerge"),
    shard_member("AdjacentShardToMerge"),
];

/// `UpdateShardCount`'s input.
pub(super) const UPDATE_SHARD_COUNT: &[Member] = &[
    STREAM_NAME,
    STREAM_ARN,
    member(
        "TargetShardCount",
        Ty::Int,
        &[Rule::Required, Rule::Min(1), Rule::Max(100_000)],
    ),
    member(
        "ScalingType",
        Ty::Str,
        &[Rule::Required, Rule::OneOf(&["UNIFORM_SCALING"])],
    ),
];

pub(super) async fn split_shard(k: &Kinesis, r: Value<'_>) -> Result<Out, KinesisError> {
    let name = k.stream_of(&r)?;
    let shard = resolve_shard(k, &name, r.str("ShardToSplit").unwrap_or_default())?;
    let key = r.str("NewStartingHashKey").unwrap_or_default();
    k.broker
        .split_shard(&name, &shard, key)
        .await
        .map_err(|e| k.broker_error(&e))?;
    Ok(Out::Struct(Vec::new()))
}

pub(super) async fn merge_shards(k: &Kinesis, r: Value<'_>) -> Result<Out, KinesisError> {
    let name = k.stream_of(&r)?;
    let shard = resolve_shard(k, &name, r.str("ShardToMerge").unwrap_or_default())?;
    let adjacent = resolve_shard(k, &name, r.str("AdjacentShardToMerge").unwrap_or_default())?;
    k.broker
        .merge_shards(&name, &shard, &adjacent)
        .await
        .map_err(|e| k.broker_error(&e))?;
    Ok(Out::Struct(Vec::new()))
}

pub(super) async fn update_shard_count(k: &Kinesis, r: Value<'_>) -> Result<Out, KinesisError> {
    let name = k.stream_of(&r)?;
    let target = r.int("TargetShardCount").unwrap_or_default();
    let before = k
        .broker
        .describe_stream(&name)
        .map_err(|e| k.broker_error(&e))?
        .open_shards()
        .count();
    let target = u32::try_from(target).unwrap_or(u32::MAX);
    let after = k
        .broker
        .update_shard_count(&name, target)
        .await
        .map_err(|e| k.broker_error(&e))?;
    Ok(Out::Struct(vec![
        ("StreamName", Out::str(name.as_str())),
        ("CurrentShardCount", Out::Int(before as i64)),
        (
            "TargetShardCount",
            Out::Int(after.open_shards().count() as i64),
        ),
        ("StreamARN", Out::str(k.stream_arn(name.as_str()))),
    ]))
}
