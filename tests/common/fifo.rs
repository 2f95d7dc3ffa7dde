//! FIFO streams over gRPC: streams created with deduplication settings, and puts that carry a
//! message group id and a deduplication id.

use bytes::Bytes;
use shardlog::proto::v1 as pb;

use super::Streams;

/// Creates a stream with the given deduplication settings; returns its description.
pub async fn create(
    c: &mut Streams,
    name: &str,
    shards: u32,
    content_based: bool,
    window_seconds: u32,
    scope: pb::DedupScope,
) -> pb::StreamDescription {
    super::make_stream_with(
        c,
        pb::CreateStreamRequest {
            stream_name: name.into(),
            shard_count: shards,
            content_based_deduplication: content_based,
            dedup_window_seconds: window_seconds,
            dedup_scope: scope as i32,
            ..Default::default()
        },
    )
    .await
}

/// A PutRecord request with a message group id and a deduplication id (either may be empty).
pub fn put(stream: &str, key: &str, data: &str, group: &str, dedup: &str) -> pb::PutRecordRequest {
    pb::PutRecordRequest {
        stream_name: stream.into(),
        partition_key: key.into(),
        data: Bytes::copy_from_slice(data.as_bytes()),
        message_group_id: group.into(),
        deduplication_id: dedup.into(),
        ..Default::default()
    }
}

/// A PutRecords entry with a message group id and a deduplication id (either may be empty).
pub fn entry(key: &str, data: &str, group: &str, dedup: &str) -> pb::PutRecordsRequestEntry {
    pb::PutRecordsRequestEntry {
        partition_key: key.into(),
        data: Bytes::copy_from_slice(data.as_bytes()),
        message_group_id: group.into(),
        deduplication_id: dedup.into(),
        ..Default::default()
    }
}

/// Sends a PutRecord request that must succeed.
pub async fn put_one(c: &mut Streams, req: pb::PutRecordRequest) -> pb::PutRecordResponse {
    let stream = req.stream_name.clone();
    c.put_record(req)
        .await
        .unwrap_or_else(|s| panic!("put to {stream}: {s}"))
        .into_inner()
}
