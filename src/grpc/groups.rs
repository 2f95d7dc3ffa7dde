//! The `ConsumerGroups` gRPC service: membership, leases, checkpoints and lag.

use std::time::Duration;

use tonic::{Request, Response, Status};

use super::convert;
use super::status::to_status;
use crate::broker::{Broker, MemberAssignments};
use crate::proto::v1 as pb;
use crate::proto::v1::consumer_groups_server::ConsumerGroups;
use crate::storage::SequenceNumber;

/// The `ConsumerGroups` service.
#[derive(Debug, Clone)]
pub struct ConsumerGroupsService {
    broker: Broker,
}

impl ConsumerGroupsService {
    /// A service over `broker`.
    pub fn new(broker: Broker) -> Self {
        ConsumerGroupsService { broker }
    }
}

fn leases(a: &MemberAssignments) -> Vec<pb::ShardLease> {
    a.leases
        .iter()
        .map(|l| pb::ShardLease {
            shard_id: l.shard.to_string(),
            lease_epoch: l.epoch,
            checkpoint: l.checkpoint.map(SequenceNumber::get),
        })
        .collect()
}

fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

#[tonic::async_trait]
impl ConsumerGroups for ConsumerGroupsService {
    #[tracing::instrument(skip_all, fields(stream = %request.get_ref().stream_name, group = %request.get_ref().group_name, member = %request.get_ref().member_id))]
    async fn join_group(
        &self,
        request: Request<pb::JoinGroupRequest>,
    ) -> Result<Response<pb::JoinGroupResponse>, Status> {
        let r = request.into_inner();
        let timeout = (r.session_timeout_ms > 0)
            .then(|| Duration::from_millis(u64::from(r.session_timeout_ms)));
        let a = self
            .broker
            .join_group(
                &convert::stream_name(&r.stream_name)?,
                &r.group_name,
                &r.member_id,
                timeout,
            )
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::JoinGroupResponse {
            assignments: leases(&a),
            heartbeat_interval_ms: millis(a.heartbeat_interval),
            session_timeout_ms: millis(a.session_timeout),
        }))
    }

    async fn heartbeat(
        &self,
        request: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        let r = request.into_inner();
        let a = self
            .broker
            .heartbeat(
                &convert::stream_name(&r.stream_name)?,
                &r.group_name,
                &r.member_id,
            )
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::HeartbeatResponse {
            assignments: leases(&a),
            heartbeat_interval_ms: millis(a.heartbeat_interval),
            session_timeout_ms: millis(a.session_timeout),
        }))
    }

    async fn leave_group(
        &self,
        request: Request<pb::LeaveGroupRequest>,
    ) -> Result<Response<pb::LeaveGroupResponse>, Status> {
        let r = request.into_inner();
        self.broker
            .leave_group(
                &convert::stream_name(&r.stream_name)?,
                &r.group_name,
                &r.member_id,
            )
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::LeaveGroupResponse {}))
    }

    #[tracing::instrument(skip_all, fields(stream = %request.get_ref().stream_name, group = %request.get_ref().group_name, shard = %request.get_ref().shard_id))]
    async fn commit_checkpoint(
        &self,
        request: Request<pb::CommitCheckpointRequest>,
    ) -> Result<Response<pb::CommitCheckpointResponse>, Status> {
        let r = request.into_inner();
        self.broker
            .commit_checkpoint(
                &convert::stream_name(&r.stream_name)?,
                &r.group_name,
                &r.member_id,
                &r.shard_id,
                r.lease_epoch,
                SequenceNumber::new(r.sequence_number),
                r.reset,
            )
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::CommitCheckpointResponse {}))
    }

    async fn describe_group(
        &self,
        request: Request<pb::DescribeGroupRequest>,
    ) -> Result<Response<pb::DescribeGroupResponse>, Status> {
        let r = request.into_inner();
        let d = self
            .broker
            .describe_group(&convert::stream_name(&r.stream_name)?, &r.group_name)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::DescribeGroupResponse {
            members: d
                .members
                .into_iter()
                .map(|m| pb::GroupMember {
                    member_id: m.member_id,
                    session_timeout_ms: millis(m.session_timeout),
                    shard_ids: m.shards.iter().map(ToString::to_string).collect(),
                })
                .collect(),
            shards: d
                .shards
                .into_iter()
                .map(|s| pb::ShardProgress {
                    shard_id: s.shard.to_string(),
                    owner_member_id: s.owner.unwrap_or_default(),
                    lease_epoch: s.epoch,
                    checkpoint: s.checkpoint.map(SequenceNumber::get),
                    latest_sequence_number: s.latest_sequence.map(SequenceNumber::get),
                    lag_records: s.lag_records,
                    millis_behind_latest: convert::millis_i64(s.behind_latest),
                })
                .collect(),
        }))
    }

    async fn list_groups(
        &self,
        request: Request<pb::ListGroupsRequest>,
    ) -> Result<Response<pb::ListGroupsResponse>, Status> {
        let names = self
            .broker
            .list_groups(&convert::stream_name(&request.get_ref().stream_name)?)
            .map_err(to_status)?;
        Ok(Response::new(pb::ListGroupsResponse { group_names: names }))
    }

    async fn delete_group(
        &self,
        request: Request<pb::DeleteGroupRequest>,
    ) -> Result<Response<pb::DeleteGroupResponse>, Status> {
        let r = request.into_inner();
        self.broker
            .delete_group(&convert::stream_name(&r.stream_name)?, &r.group_name)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::DeleteGroupResponse {}))
    }
}
