//! The `Queues` gRPC service: receive, delete and change the visibility of single messages of
//! a queue group.

use std::time::Duration;

use tonic::{Request, Response, Status};

use super::auth::{self, check};
use super::convert;
use super::status::to_status;
use crate::auth::Action;
use crate::broker::{Broker, DeleteFailure};
use crate::meta::MoveStatus;
use crate::proto::v1 as pb;
use crate::proto::v1::queues_server::Queues;
use crate::proto::wire::OutgoingMessage;

/// `error_code` of a handle this server did not give for the group.
pub const RECEIPT_HANDLE_INVALID: &str = "RECEIPT_HANDLE_INVALID";
/// `error_code` of a handle whose message was received again, or (FIFO) became visible.
pub const RECEIPT_HANDLE_EXPIRED: &str = "RECEIPT_HANDLE_EXPIRED";

/// The `Queues` service.
#[derive(Debug, Clone)]
pub struct QueuesService {
    broker: Broker,
}

impl QueuesService {
    /// A service over `broker`.
    pub fn new(broker: Broker) -> Self {
        QueuesService { broker }
    }
}

#[tonic::async_trait]
impl Queues for QueuesService {
    #[tracing::instrument(skip_all, fields(stream = %request.get_ref().stream_name, group = %request.get_ref().group_name))]
    async fn receive_messages(
        &self,
        request: Request<pb::ReceiveMessagesRequest>,
    ) -> Result<Response<pb::ReceiveMessagesResponse>, Status> {
        let caller = auth::caller(&request);
        let r = request.into_inner();
        check(&caller, Action::Read, &r.stream_name)?;
        let messages = self
            .broker
            .receive_messages(
                &convert::stream_name(&r.stream_name)?,
                &r.group_name,
                r.max_messages as usize,
                r.visibility_timeout_seconds
                    .map(|s| Duration::from_secs(u64::from(s))),
                Duration::from_millis(u64::from(r.wait_time_ms)),
            )
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::ReceiveMessagesResponse {
            messages: Vec::new(),
            outgoing: messages
                .into_iter()
                .map(|m| OutgoingMessage {
                    record: m.record,
                    shard_id: m.shard.to_string(),
                    receipt_handle: m.receipt_handle,
                    receive_count: m.receive_count,
                })
                .collect(),
        }))
    }

    #[tracing::instrument(skip_all, fields(stream = %request.get_ref().stream_name, group = %request.get_ref().group_name))]
    async fn delete_messages(
        &self,
        request: Request<pb::DeleteMessagesRequest>,
    ) -> Result<Response<pb::DeleteMessagesResponse>, Status> {
        let caller = auth::caller(&request);
        let r = request.into_inner();
        check(&caller, Action::Read, &r.stream_name)?;
        let results = self
            .broker
            .delete_messages(
                &convert::stream_name(&r.stream_name)?,
                &r.group_name,
                &r.receipt_handles,
            )
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::DeleteMessagesResponse {
            results: r
                .receipt_handles
                .into_iter()
                .zip(results)
                .map(|(receipt_handle, result)| {
                    let (code, message) = match result {
                        Ok(()) => ("", String::new()),
                        Err(DeleteFailure::Invalid(m)) => (RECEIPT_HANDLE_INVALID, m),
                        Err(DeleteFailure::Expired(m)) => (RECEIPT_HANDLE_EXPIRED, m),
                    };
                    pb::DeleteMessageResult {
                        receipt_handle,
                        error_code: code.to_owned(),
                        error_message: message,
                    }
                })
                .collect(),
        }))
    }

    #[tracing::instrument(skip_all, fields(stream = %request.get_ref().stream_name, group = %request.get_ref().group_name))]
    async fn change_message_visibility(
        &self,
        request: Request<pb::ChangeMessageVisibilityRequest>,
    ) -> Result<Response<pb::ChangeMessageVisibilityResponse>, Status> {
        let caller = auth::caller(&request);
        let r = request.into_inner();
        check(&caller, Action::Read, &r.stream_name)?;
        self.broker
            .change_message_visibility(
                &convert::stream_name(&r.stream_name)?,
                &r.group_name,
                &r.receipt_handle,
                Duration::from_secs(u64::from(r.visibility_timeout_seconds)),
            )
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::ChangeMessageVisibilityResponse {}))
    }

    #[tracing::instrument(skip_all, fields(source = %request.get_ref().source_stream))]
    async fn move_messages(
        &self,
        request: Request<pb::MoveMessagesRequest>,
    ) -> Result<Response<pb::MoveMessagesResponse>, Status> {
        let caller = auth::caller(&request);
        let r = request.into_inner();
        check(&caller, Action::Admin, &r.source_stream)?;
        check(&caller, Action::Write, &r.destination_stream)?;
        let source = convert::named_stream("source_stream", &r.source_stream)?;
        let destination = match r.destination_stream.as_str() {
            "" => None,
            d => Some(convert::named_stream("destination_stream", d)?),
        };
        let task_id = self
            .broker
            .move_messages(&source, destination, r.max_messages_per_second)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::MoveMessagesResponse { task_id }))
    }

    async fn list_move_tasks(
        &self,
        request: Request<pb::ListMoveTasksRequest>,
    ) -> Result<Response<pb::ListMoveTasksResponse>, Status> {
        let source = convert::named_stream("source_stream", &request.get_ref().source_stream)?;
        auth::allow(&request, Action::Read, source.as_str())?;
        let tasks = self.broker.list_move_tasks(&source).map_err(to_status)?;
        Ok(Response::new(pb::ListMoveTasksResponse {
            tasks: tasks
                .into_iter()
                .map(|t| pb::MoveTask {
                    task_id: t.task_id,
                    source_stream: t.source.to_string(),
                    destination_stream: t.destination.map(|d| d.to_string()).unwrap_or_default(),
                    status: match t.status {
                        MoveStatus::Running => pb::MoveTaskStatus::Running,
                        MoveStatus::Completed => pb::MoveTaskStatus::Completed,
                        MoveStatus::Cancelled => pb::MoveTaskStatus::Cancelled,
                        MoveStatus::Failed => pb::MoveTaskStatus::Failed,
                    } as i32,
                    messages_moved: t.moved,
                    messages_to_move: t.to_move,
                    failure_reason: t.failure_reason,
                    started_at_ms: t.started_at_ms.as_millis(),
                    max_messages_per_second: t.max_per_second,
                })
                .collect(),
        }))
    }
}
