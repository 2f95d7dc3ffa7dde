//! The `ConsumerGroups` gRPC service: membership, leases, checkpoints and lag.

use std::time::Duration;

use tonic::{Request, Response, Status};

use super::auth::{self, check};
use super::convert;
use super::status::to_status;
use crate::auth::Action;
use crate::broker::{Broker, GroupSpec, GroupType, MemberAssignments, QueueStart};
use crate::meta::QueueKind;
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

fn group_type_to_pb(t: GroupType) -> pb::GroupType {
    match t {
        GroupType::ShardLeases => pb::GroupType::ShardLeases,
        GroupType::QueueFifo => pb::GroupType::QueueFifo,
        GroupType::QueueStandard => pb::GroupType::QueueStandard,
    }
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
        let caller = auth::caller(&request);
        let r = request.into_inner();
        check(&caller, Action::Read, &r.stream_name)?;
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
        let caller = auth::caller(&request);
        let r = request.into_inner();
        check(&caller, Action::Read, &r.stream_name)?;
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
        let caller = auth::caller(&request);
        let r = request.into_inner();
        check(&caller, Action::Read, &r.stream_name)?;
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
        let caller = auth::caller(&request);
        let r = request.into_inner();
        check(&caller, Action::Read, &r.stream_name)?;
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
        let caller = auth::caller(&request);
        let r = request.into_inner();
        check(&caller, Action::Read, &r.stream_name)?;
        let stream = convert::stream_name(&r.stream_name)?;
        if let Some(kind) = self.broker.queue_kind(&stream, &r.group_name) {
            let q = self
                .broker
                .describe_queue(&stream, &r.group_name)
                .await
                .map_err(to_status)?;
            return Ok(Response::new(pb::DescribeGroupResponse {
                members: Vec::new(),
                shards: Vec::new(),
                r#type: match kind {
                    QueueKind::Fifo => pb::GroupType::QueueFifo,
                    QueueKind::Standard => pb::GroupType::QueueStandard,
                } as i32,
                queue: Some(pb::QueueStatus {
                    messages_visible: q.visible,
                    messages_in_flight: q.in_flight,
                    oldest_message_age_ms: u64::try_from(q.oldest_age.as_millis())
                        .unwrap_or(u64::MAX),
                    messages_received: q.counters.received,
                    messages_deleted: q.counters.deleted,
                    messages_dead_lettered: q.counters.dead_lettered,
                    messages_expired: q.counters.expired,
                    visibility_timeout_seconds: u32::try_from(
                        q.definition.visibility_timeout.as_secs(),
                    )
                    .unwrap_or(u32::MAX),
                    max_receive_count: q.definition.max_receive_count,
                    dead_letter_stream: q
                        .definition
                        .dead_letter_stream
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                    filter: q.definition.filter.as_ref().map(convert::filter_to_pb),
                    dead_letter_error: q.dead_letter_error.clone().unwrap_or_default(),
                }),
            }));
        }
        let d = self
            .broker
            .describe_group(&stream, &r.group_name)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::DescribeGroupResponse {
            r#type: pb::GroupType::ShardLeases as i32,
            queue: None,
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
        let groups = self
            .broker
            .list_groups(&{
                let stream = convert::stream_name(&request.get_ref().stream_name)?;
                auth::allow(&request, Action::Read, stream.as_str())?;
                stream
            })
            .map_err(to_status)?;
        Ok(Response::new(pb::ListGroupsResponse {
            group_names: groups.iter().map(|(name, _)| name.clone()).collect(),
            groups: groups
                .into_iter()
                .map(|(group_name, t)| pb::GroupSummary {
                    group_name,
                    r#type: group_type_to_pb(t) as i32,
                })
                .collect(),
        }))
    }

    #[tracing::instrument(skip_all, fields(stream = %request.get_ref().stream_name, group = %request.get_ref().group_name))]
    async fn create_group(
        &self,
        request: Request<pb::CreateGroupRequest>,
    ) -> Result<Response<pb::CreateGroupResponse>, Status> {
        let caller = auth::caller(&request);
        let r = request.into_inner();
        check(&caller, Action::Admin, &r.stream_name)?;
        check(&caller, Action::Write, &r.dead_letter_stream)?;
        let kind = match pb::GroupType::try_from(r.r#type) {
            Ok(pb::GroupType::ShardLeases) => GroupType::ShardLeases,
            Ok(pb::GroupType::QueueFifo) => GroupType::QueueFifo,
            Ok(pb::GroupType::QueueStandard) => GroupType::QueueStandard,
            Err(_) => {
                return Err(Status::invalid_argument(format!(
                    "invalid type: unknown group type {}",
                    r.r#type
                )))
            }
        };
        let start = match pb::QueueStartPosition::try_from(r.start_position) {
            Ok(pb::QueueStartPosition::TrimHorizon) => QueueStart::TrimHorizon,
            Ok(pb::QueueStartPosition::Latest) => QueueStart::Latest,
            Err(_) => {
                return Err(Status::invalid_argument(format!(
                    "invalid start_position: unknown position {}",
                    r.start_position
                )))
            }
        };
        let dead_letter_stream = if r.dead_letter_stream.is_empty() {
            None
        } else {
            Some(convert::named_stream(
                "dead_letter_stream",
                &r.dead_letter_stream,
            )?)
        };
        self.broker
            .create_group(
                &convert::stream_name(&r.stream_name)?,
                &r.group_name,
                GroupSpec {
                    kind,
                    visibility_timeout: r
                        .visibility_timeout_seconds
                        .map(|s| Duration::from_secs(u64::from(s))),
                    max_receive_count: r.max_receive_count,
                    dead_letter_stream,
                    start,
                    filter: convert::filter(r.filter),
                    owner: match &caller {
                        crate::auth::Caller::Principal(p) => Some(p.name.clone()),
                        crate::auth::Caller::Anyone => None,
                    },
                },
            )
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::CreateGroupResponse {}))
    }

    async fn delete_group(
        &self,
        request: Request<pb::DeleteGroupRequest>,
    ) -> Result<Response<pb::DeleteGroupResponse>, Status> {
        let caller = auth::caller(&request);
        let r = request.into_inner();
        check(&caller, Action::Admin, &r.stream_name)?;
        self.broker
            .delete_group(&convert::stream_name(&r.stream_name)?, &r.group_name)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::DeleteGroupResponse {}))
    }
}
