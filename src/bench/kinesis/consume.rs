//! Kinesis catch-up readers: every shard that stored records is read from TRIM_HORIZON by
//! GetRecords, following NextShardIterator, until the newest record the fill stored there has
//! been read. Each shard's reader has a keep-alive HTTP/1.1 connection of its own (HTTP/1.1
//! carries one request at a time): the same concurrency as the gRPC readers, whose shards
//! share their consumer's HTTP/2 connection.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use tokio::task::JoinSet;

use super::http::{CallError, Connection, KinesisEndpoint};
use super::wire::{
    compare_decimal, BodyWriter, GetRecordsOutput, KinesisSequence, ShardIteratorOutput,
};
use crate::bench::consume::MAX_CONSECUTIVE_ERRORS;
use crate::bench::stats::Meter;

/// Most records one GetRecords asks for (Kinesis's own limit).
pub const GET_RECORDS_LIMIT: u32 = 10_000;

/// A shard to read, and the newest record it stored.
#[derive(Debug)]
pub struct ShardEnd {
    pub shard_id: String,
    pub last: KinesisSequence,
}

/// A reader's connection, opened before the read is timed.
pub struct ShardReader {
    connection: Connection,
    end: ShardEnd,
}

/// One connection for each shard's reader.
pub async fn open_readers(
    endpoint: &KinesisEndpoint,
    ends: Vec<ShardEnd>,
) -> Result<Vec<ShardReader>, CallError> {
    let mut readers = Vec::with_capacity(ends.len());
    for end in ends {
        readers.push(ShardReader {
            connection: Connection::open(endpoint).await?,
            end,
        });
    }
    Ok(readers)
}

/// Reads every shard up to its end (or until `deadline`); returns how long the reads took.
pub async fn read_all(
    readers: Vec<ShardReader>,
    endpoint: Arc<KinesisEndpoint>,
    stream: &str,
    deadline: Instant,
    meter: Arc<Meter>,
) -> Duration {
    let start = Instant::now();
    let stream: Arc<str> = Arc::from(stream);
    let mut tasks = JoinSet::new();
    for reader in readers {
        tasks.spawn(poll_shard(
            reader,
            Arc::clone(&endpoint),
            Arc::clone(&stream),
            deadline,
            Arc::clone(&meter),
        ));
    }
    while let Some(joined) = tasks.join_next().await {
        if let Err(error) = joined {
            meter.add_rpc_error(|| format!("a reader task failed: {error}"));
        }
    }
    start.elapsed()
}

/// One shard's read: the reader's connection (reopened after an error that broke it) and the
/// buffers its requests and decoded data reuse.
struct ShardPoll {
    connection: Option<Connection>,
    endpoint: Arc<KinesisEndpoint>,
    meter: Arc<Meter>,
}

impl ShardPoll {
    /// Calls `operation`; a failure is counted and gives `None`.
    async fn call(&mut self, operation: &'static str, body: Bytes) -> Option<Bytes> {
        let connection = match self.connection.as_mut() {
            Some(open) => open,
            None => match Connection::open(&self.endpoint).await {
                Ok(open) => self.connection.insert(open),
                Err(error) => {
                    self.meter.add_rpc_error(|| error.full_message());
                    return None;
                }
            },
        };
        match connection.call(operation, body).await {
            Ok(answer) => Some(answer),
            Err(error) => {
                if error.breaks_connection() {
                    self.connection = None;
                }
                self.meter.add_rpc_error(|| error.full_message());
                None
            }
        }
    }

    fn decode_error(&self, operation: &'static str, source: serde_json::Error) {
        self.meter
            .add_rpc_error(|| CallError::Decode { operation, source }.full_message());
    }
}

async fn poll_shard(
    reader: ShardReader,
    endpoint: Arc<KinesisEndpoint>,
    stream: Arc<str>,
    deadline: Instant,
    meter: Arc<Meter>,
) {
    let ShardReader { connection, end } = reader;
    let mut poll = ShardPoll {
        connection: Some(connection),
        endpoint,
        meter,
    };
    let request = serde_json::json!({
        "StreamName": &*stream,
        "ShardId": &end.shard_id,
        "ShardIteratorType": "TRIM_HORIZON",
    });
    let Some(answer) = poll
        .call("GetShardIterator", Bytes::from(request.to_string()))
        .await
    else {
        return;
    };
    let mut iterator = match serde_json::from_slice::<ShardIteratorOutput>(&answer) {
        Ok(out) => out.shard_iterator,
        Err(source) => return poll.decode_error("GetShardIterator", source),
    };
    let mut writer = BodyWriter::default();
    let mut data = Vec::new();
    let mut failures = 0;
    while Instant::now() < deadline && failures < MAX_CONSECUTIVE_ERRORS {
        let asked = Instant::now();
        let body = writer.get_records(&iterator, GET_RECORDS_LIMIT);
        let Some(answer) = poll.call("GetRecords", body).await else {
            failures += 1;
            continue;
        };
        let out = match serde_json::from_slice::<GetRecordsOutput<'_>>(&answer) {
            Ok(out) => out,
            Err(source) => {
                failures += 1;
                poll.decode_error("GetRecords", source);
                continue;
            }
        };
        failures = 0;
        poll.meter.record_latency(asked.elapsed());
        let mut bytes = 0;
        for record in &out.records {
            data.clear();
            match STANDARD.decode_vec(record.data.as_bytes(), &mut data) {
                Ok(()) => bytes += data.len() as u64,
                Err(error) => poll.meter.add_rpc_error(|| {
                    format!(
                        "record {} of {} has Data that is not base64: {error}",
                        record.sequence_number, end.shard_id
                    )
                }),
            }
        }
        poll.meter.add_records(out.records.len() as u64, bytes);
        let reached = out
            .records
            .last()
            .is_some_and(|r| compare_decimal(&r.sequence_number, end.last.as_str()).is_ge());
        let at_end = out.records.is_empty() && out.millis_behind_latest == 0;
        match out.next_shard_iterator {
            Some(next) if !(reached || at_end) => iterator = next.into_owned(),
            // Read to the end, or the shard is closed and read out.
            _ => return,
        }
    }
}
