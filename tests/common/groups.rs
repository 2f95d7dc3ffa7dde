//! Consumer groups over gRPC: one helper per call, taking the stream, group and member as
//! plain names, and streams holding a chosen number of records per shard.

use shardlog::proto::v1 as pb;
use shardlog::proto::v1::consumer_groups_client::ConsumerGroupsClient;
use tonic::transport::Channel;
use tonic::Status;

use super::Streams;

/// The generated `ConsumerGroups` client over a plain channel.
pub type Groups = ConsumerGroupsClient<Channel>;

/// Joins `group` on `stream` as `member` (a `session_timeout_ms` of 0 asks for the server
/// default).
pub async fn join(
    g: &mut Groups,
    stream: &str,
    group: &str,
    member: &str,
    session_timeout_ms: u32,
) -> pb::JoinGroupResponse {
    try_join(g, stream, group, member, session_timeout_ms)
        .await
        .unwrap_or_else(|e| panic!("{member} joins {group}: {e:?}"))
}

/// A JoinGroup call that may be refused.
pub async fn try_join(
    g: &mut Groups,
    stream: &str,
    group: &str,
    member: &str,
    session_timeout_ms: u32,
) -> Result<pb::JoinGroupResponse, Status> {
    g.join_group(pb::JoinGroupRequest {
        stream_name: stream.into(),
        group_name: group.into(),
        member_id: member.into(),
        session_timeout_ms,
    })
    .await
    .map(tonic::Response::into_inner)
}

pub async fn heartbeat(
    g: &mut Groups,
    stream: &str,
    group: &str,
    member: &str,
) -> Result<pb::HeartbeatResponse, Status> {
    g.heartbeat(pb::HeartbeatRequest {
        stream_name: stream.into(),
        group_name: group.into(),
        member_id: member.into(),
    })
    .await
    .map(tonic::Response::into_inner)
}

pub async fn leave_group(
    g: &mut Groups,
    stream: &str,
    group: &str,
    member: &str,
) -> Result<(), Status> {
    g.leave_group(pb::LeaveGroupRequest {
        stream_name: stream.into(),
        group_name: group.into(),
        member_id: member.into(),
    })
    .await
    .map(drop)
}

/// Commits `sequence` as `member`'s checkpoint of `shard` under the lease `epoch`; `reset` lets
/// it move backwards.
#[allow(clippy::too_many_arguments)]
pub async fn commit(
    g: &mut Groups,
    stream: &str,
    group: &str,
    member: &str,
    shard: &str,
    epoch: u64,
    sequence: u64,
    reset: bool,
) -> Result<(), Status> {
    g.commit_checkpoint(pb::CommitCheckpointRequest {
        stream_name: stream.into(),
        group_name: group.into(),
        member_id: member.into(),
        shard_id: shard.into(),
        lease_epoch: epoch,
        sequence_number: sequence,
        reset,
    })
    .await
    .map(drop)
}

pub async fn describe(
    g: &mut Groups,
    stream: &str,
    group: &str,
) -> Result<pb::DescribeGroupResponse, Status> {
    g.describe_group(pb::DescribeGroupRequest {
        stream_name: stream.into(),
        group_name: group.into(),
    })
    .await
    .map(tonic::Response::into_inner)
}

pub async fn delete_group(g: &mut Groups, stream: &str, group: &str) -> Result<(), Status> {
    g.delete_group(pb::DeleteGroupRequest {
        stream_name: stream.into(),
        group_name: group.into(),
    })
    .await
    .map(drop)
}

pub async fn list_groups(g: &mut Groups, stream: &str) -> Result<Vec<String>, Status> {
    g.list_groups(pb::ListGroupsRequest {
        stream_name: stream.into(),
    })
    .await
    .map(|r| r.into_inner().group_names)
}

/// Creates `stream` with `shards` shards and puts `per_shard[i]` records (`r0`, `r1`, …) into
/// shard `i` by explicit hash key. Returns the shard ids in order.
pub async fn stream_with_records(
    c: &mut Streams,
    stream: &str,
    shards: u32,
    per_shard: &[u64],
) -> Vec<String> {
    let d = super::make_stream(c, stream, shards).await;
    for (shard, &n) in d.shards.iter().zip(per_shard) {
        put_into(c, stream, shard, n).await;
    }
    d.shards.into_iter().map(|s| s.shard_id).collect()
}

/// Puts `n` records (`r0`, `r1`, …) into `shard` by its starting hash key.
pub async fn put_into(c: &mut Streams, stream: &str, shard: &pb::Shard, n: u64) {
    for i in 0..n {
        let r = super::put_at_hash_key(
            c,
            stream,
            "k",
            format!("r{i}"),
            shard.starting_hash_key.clone(),
        )
        .await;
        assert_eq!(r.shard_id, shard.shard_id);
    }
}
