//! The `StreamLog` gRPC service: streams, shards, produce and consume.

use std::pin::Pin;

use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use super::auth::{self, check};
use super::convert::{self, PositionError};
use super::put;
use super::status::to_status;
use crate::auth::{Action, Caller};
use crate::broker::{Broker, BrokerError, ShardFilter};
use crate::proto::v1 as pb;
use crate::proto::v1::stream_log_server::StreamLog;
use crate::storage::{SequenceNumber, Timestamp};
use crate::stream::{DedupScope, StreamName, StreamSettings};

/// The `StreamLog` service.
#[derive(Debug, Clone)]
pub struct StreamLogService {
    broker: Broker,
}

impl StreamLogService {
    /// A service over `broker`.
    pub fn new(broker: Broker) -> Self {
        StreamLogService { broker }
    }
}

fn invalid(p: PositionError) -> Status {
    to_status(BrokerError::invalid(p.field, p.reason))
}

type PutAnswerStream =
    Pin<Box<dyn Stream<Item = Result<pb::PutRecordsStreamResponse, Status>> + Send>>;
type EventStream = Pin<Box<dyn Stream<Item = Result<pb::SubscribeToShardEvent, Status>> + Send>>;

impl StreamLogService {
    /// The stream's description, `UPDATING` while a reshard runs.
    fn description(&self, name: &StreamName) -> Result<pb::StreamDescription, Status> {
        let d = self.broker.describe_stream(name).map_err(to_status)?;
        let mut out = convert::stream(&d);
        if self.broker.stream_updating(name).map_err(to_status)? {
            out.status = pb::StreamStatus::Updating as i32;
        }
        Ok(out)
    }
}

#[tonic::async_trait]
impl StreamLog for StreamLogService {
    #[tracing::instrument(skip_all, fields(stream = %request.get_ref().stream_name))]
    async fn create_stream(
        &self,
        request: Request<pb::CreateStreamRequest>,
    ) -> Result<Response<pb::CreateStreamResponse>, Status> {
        let caller = auth::caller(&request);
        let r = request.into_inner();
        check(&caller, Action::Admin, &r.stream_name)?;
        let scope = match pb::DedupScope::try_from(r.dedup_scope) {
            Ok(pb::DedupScope::Stream) => DedupScope::Stream,
            Ok(pb::DedupScope::MessageGroup) => DedupScope::MessageGroup,
            Err(_) => {
                return Err(to_status(BrokerError::invalid(
                    "dedup_scope",
                    format!("{} is not STREAM or MESSAGE_GROUP", r.dedup_scope),
                )))
            }
        };
        let settings = StreamSettings::from_request(
            r.retention_period_hours,
            r.content_based_deduplication,
            r.dedup_window_seconds,
            scope,
            &self.broker.config().stream_limits,
        )
        .map_err(|e| to_status(e.into()))?;
        let d = self
            .broker
            .create_stream(
                convert::stream_name(&r.stream_name)?,
                r.shard_count,
                settings,
            )
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::CreateStreamResponse {
            stream: Some(convert::stream(&d)),
        }))
    }

    #[tracing::instrument(skip_all, fields(stream = %request.get_ref().stream_name))]
    async fn delete_stream(
        &self,
        request: Request<pb::DeleteStreamRequest>,
    ) -> Result<Response<pb::DeleteStreamResponse>, Status> {
        let caller = auth::caller(&request);
        let r = request.into_inner();
        check(&caller, Action::Admin, &r.stream_name)?;
        self.broker
            .delete_stream(&convert::stream_name(&r.stream_name)?)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::DeleteStreamResponse {}))
    }

    async fn describe_stream(
        &self,
        request: Request<pb::DescribeStreamRequest>,
    ) -> Result<Response<pb::DescribeStreamResponse>, Status> {
        let name = convert::stream_name(&request.get_ref().stream_name)?;
        auth::allow(&request, Action::Read, name.as_str())?;
        Ok(Response::new(pb::DescribeStreamResponse {
            stream: Some(self.description(&name)?),
        }))
    }

    async fn list_streams(
        &self,
        request: Request<pb::ListStreamsRequest>,
    ) -> Result<Response<pb::ListStreamsResponse>, Status> {
        // A principal sees only the streams it may read.
        let caller = auth::caller(&request);
        Ok(Response::new(pb::ListStreamsResponse {
            stream_names: self
                .broker
                .list_streams()
                .into_iter()
                .filter(|name| caller.may(Action::Read, name))
                .collect(),
        }))
    }

    async fn list_shards(
        &self,
        request: Request<pb::ListShardsRequest>,
    ) -> Result<Response<pb::ListShardsResponse>, Status> {
        let caller = auth::caller(&request);
        let r = request.into_inner();
        check(&caller, Action::Read, &r.stream_name)?;
        let name = convert::stream_name(&r.stream_name)?;
        let filter = match r.shard_filter {
            None => ShardFilter::All,
            Some(f) => match pb::ShardFilterType::try_from(f.r#type) {
                Ok(pb::ShardFilterType::Unspecified) => ShardFilter::All,
                Ok(pb::ShardFilterType::AtLatest) => ShardFilter::AtLatest,
                Ok(pb::ShardFilterType::AtTrimHorizon) => ShardFilter::AtTrimHorizon,
                Ok(pb::ShardFilterType::FromTrimHorizon) => ShardFilter::FromTrimHorizon,
                Ok(
                    kind @ (pb::ShardFilterType::AtTimestamp | pb::ShardFilterType::FromTimestamp),
                ) => {
                    let Some(ms) = f.timestamp_ms else {
                        return Err(to_status(BrokerError::invalid(
                            "shard_filter.timestamp_ms",
                            "AT_TIMESTAMP and FROM_TIMESTAMP need a time",
                        )));
                    };
                    let at = u64::try_from(ms).map(Timestamp::from_millis).map_err(|_| {
                        to_status(BrokerError::invalid(
                            "shard_filter.timestamp_ms",
                            format!("{ms} is negative"),
                        ))
                    })?;
                    if kind == pb::ShardFilterType::AtTimestamp {
                        ShardFilter::AtTimestamp(at)
                    } else {
                        ShardFilter::FromTimestamp(at)
                    }
                }
                Ok(pb::ShardFilterType::AfterShardId) => {
                    let id = f.shard_id.unwrap_or_default();
                    ShardFilter::AfterShardId(id.parse().map_err(|_| {
                        to_status(BrokerError::invalid(
                            "shard_filter.shard_id",
                            format!("{id:?} is not a shard id (AFTER_SHARD_ID needs one)"),
                        ))
                    })?)
                }
                Err(_) => {
                    return Err(to_status(BrokerError::invalid(
                        "shard_filter.type",
                        format!("{} is not a shard filter type", f.r#type),
                    )))
                }
            },
        };
        let shards = self.broker.list_shards(&name, filter).map_err(to_status)?;
        Ok(Response::new(pb::ListShardsResponse {
            shards: shards.iter().map(convert::shard).collect(),
        }))
    }

    #[tracing::instrument(skip_all, fields(stream = %request.get_ref().stream_name))]
    async fn split_shard(
        &self,
        request: Request<pb::SplitShardRequest>,
    ) -> Result<Response<pb::SplitShardResponse>, Status> {
        let caller = auth::caller(&request);
        let r = request.into_inner();
        check(&caller, Action::Admin, &r.stream_name)?;
        let name = convert::stream_name(&r.stream_name)?;
        let d = self
            .broker
            .split_shard(&name, &r.shard_to_split, &r.new_starting_hash_key)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::SplitShardResponse {
            stream: Some(convert::stream(&d)),
        }))
    }

    #[tracing::instrument(skip_all, fields(stream = %request.get_ref().stream_name))]
    async fn merge_shards(
        &self,
        request: Request<pb::MergeShardsRequest>,
    ) -> Result<Response<pb::MergeShardsResponse>, Status> {
        let caller = auth::caller(&request);
        let r = request.into_inner();
        check(&caller, Action::Admin, &r.stream_name)?;
        let name = convert::stream_name(&r.stream_name)?;
        let d = self
            .broker
            .merge_shards(&name, &r.shard_to_merge, &r.adjacent_shard_to_merge)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::MergeShardsResponse {
            stream: Some(convert::stream(&d)),
        }))
    }

    #[tracing::instrument(skip_all, fields(stream = %request.get_ref().stream_name))]
    async fn update_shard_count(
        &self,
        request: Request<pb::UpdateShardCountRequest>,
    ) -> Result<Response<pb::UpdateShardCountResponse>, Status> {
        let caller = auth::caller(&request);
        let r = request.into_inner();
        check(&caller, Action::Admin, &r.stream_name)?;
        let name = convert::stream_name(&r.stream_name)?;
        match pb::ScalingType::try_from(r.scaling_type) {
            Ok(pb::ScalingType::Unspecified | pb::ScalingType::UniformScaling) => {}
            Err(_) => {
                return Err(to_status(BrokerError::invalid(
                    "scaling_type",
                    format!("{} is not UNIFORM_SCALING", r.scaling_type),
                )))
            }
        }
        let before = self.broker.describe_stream(&name).map_err(to_status)?;
        let d = self
            .broker
            .update_shard_count(&name, r.target_shard_count)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::UpdateShardCountResponse {
            current_shard_count: before.open_shards().count() as u32,
            target_shard_count: d.open_shards().count() as u32,
            stream: Some(convert::stream(&d)),
        }))
    }

    #[tracing::instrument(skip_all, fields(stream = %request.get_ref().stream_name))]
    async fn put_record(
        &self,
        request: Request<pb::PutRecordRequest>,
    ) -> Result<Response<pb::PutRecordResponse>, Status> {
        let caller = auth::caller(&request);
        let r = request.into_inner();
        check(&caller, Action::Write, &r.stream_name)?;
        auth::admit_bytes(&caller, r.data.len() + r.partition_key.len())?;
        let entry = convert::put_entry(
            r.partition_key,
            r.data,
            r.explicit_hash_key,
            r.message_group_id,
            r.deduplication_id,
            r.attributes,
        );
        let out = self
            .broker
            .put_record(&convert::stream_name(&r.stream_name)?, entry)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::PutRecordResponse {
            shard_id: out.shard.to_string(),
            sequence_number: out.sequence.get(),
            duplicate: out.duplicate,
        }))
    }

    #[tracing::instrument(skip_all, fields(stream = %request.get_ref().stream_name, records = request.get_ref().records.len()))]
    async fn put_records(
        &self,
        request: Request<pb::PutRecordsRequest>,
    ) -> Result<Response<pb::PutRecordsResponse>, Status> {
        let caller = auth::caller(&request);
        let r = request.into_inner();
        check(&caller, Action::Write, &r.stream_name)?;
        auth::admit_bytes(&caller, put::request_bytes(&r.records))?;
        let results = self
            .broker
            .put_records(
                &convert::stream_name(&r.stream_name)?,
                put::entries(r.records),
            )
            .await
            .map_err(to_status)?;
        Ok(Response::new(put::response(results)))
    }

    type PutRecordsStreamStream = PutAnswerStream;

    async fn put_records_stream(
        &self,
        request: Request<Streaming<pb::PutRecordsRequest>>,
    ) -> Result<Response<Self::PutRecordsStreamStream>, Status> {
        Ok(Response::new(Box::pin(put::serve_stream(
            self.broker.clone(),
            auth::caller(&request),
            request.into_inner(),
        ))))
    }

    async fn get_shard_iterator(
        &self,
        request: Request<pb::GetShardIteratorRequest>,
    ) -> Result<Response<pb::GetShardIteratorResponse>, Status> {
        let caller = auth::caller(&request);
        let r = request.into_inner();
        check(&caller, Action::Read, &r.stream_name)?;
        let kind = convert::iterator_kind(
            r.shard_iterator_type,
            r.starting_sequence_number,
            r.timestamp_ms,
            "",
        )
        .map_err(invalid)?;
        let shard_iterator = self
            .broker
            .get_shard_iterator(
                &convert::stream_name(&r.stream_name)?,
                &r.shard_id,
                kind,
                convert::filter(r.filter),
            )
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::GetShardIteratorResponse {
            shard_iterator,
        }))
    }

    async fn get_records(
        &self,
        request: Request<pb::GetRecordsRequest>,
    ) -> Result<Response<pb::GetRecordsResponse>, Status> {
        let caller = auth::caller(&request);
        let r = request.into_inner();
        if let Caller::Principal(_) = caller {
            let stream = self
                .broker
                .iterator_stream(&r.shard_iterator)
                .map_err(to_status)?;
            check(&caller, Action::Read, stream.as_str())?;
        }
        if r.as_frames {
            let out = self
                .broker
                .get_records_frames(&r.shard_iterator, r.limit)
                .await
                .map_err(to_status)?;
            return Ok(Response::new(pb::GetRecordsResponse {
                next_shard_iterator: out.next_shard_iterator.unwrap_or_default(),
                millis_behind_latest: convert::millis_i64(out.behind_latest),
                child_shards: out.child_shards.iter().map(convert::child_shard).collect(),
                frames: out.frames,
                frames_first_sequence: out.first.get(),
                frames_end_sequence: out.end.get(),
                ..Default::default()
            }));
        }
        let out = self
            .broker
            .get_records(&r.shard_iterator, r.limit)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::GetRecordsResponse {
            next_shard_iterator: out.next_shard_iterator.unwrap_or_default(),
            millis_behind_latest: convert::millis_i64(out.behind_latest),
            child_shards: out.child_shards.iter().map(convert::child_shard).collect(),
            outgoing: out.records.into(),
            ..Default::default()
        }))
    }

    type SubscribeToShardStream = EventStream;

    #[tracing::instrument(skip_all, fields(stream = %request.get_ref().stream_name, shard = %request.get_ref().shard_id))]
    async fn subscribe_to_shard(
        &self,
        request: Request<pb::SubscribeToShardRequest>,
    ) -> Result<Response<Self::SubscribeToShardStream>, Status> {
        let caller = auth::caller(&request);
        let r = request.into_inner();
        check(&caller, Action::Read, &r.stream_name)?;
        let pos = r
            .starting_position
            .ok_or_else(|| to_status(BrokerError::invalid("starting_position", "is required")))?;
        let kind = convert::iterator_kind(
            pos.r#type,
            pos.sequence_number,
            pos.timestamp_ms,
            "starting_position",
        )
        .map_err(invalid)?;
        let events = self
            .broker
            .subscribe(
                &convert::stream_name(&r.stream_name)?,
                &r.shard_id,
                kind,
                convert::filter(r.filter),
            )
            .await
            .map_err(to_status)?;
        // The next event is asked for once the last one is encoded: its budget goes back then.
        let events = events.map(|item| match item {
            Ok(ev) => Ok(pb::SubscribeToShardEvent {
                records: Vec::new(),
                continuation_sequence_number: ev.continuation_sequence.map(SequenceNumber::get),
                millis_behind_latest: convert::millis_i64(ev.behind_latest),
                child_shards: ev.child_shards.iter().map(convert::child_shard).collect(),
                outgoing: ev.records.into(),
            }),
            Err(e) => Err(to_status(e)),
        });
        Ok(Response::new(Box::pin(events)))
    }
}
