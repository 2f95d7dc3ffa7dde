//! Catch-up readers: how far each shard reaches (probed through a throwaway consumer group),
//! then every shard read from TRIM_HORIZON to that end, by GetRecords polling or by
//! SubscribeToShard. Each consumer has its own connection and reads its share of the shards,
//! one task per shard.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use super::args::ConsumeMode;
use super::stats::Meter;
use super::{BenchError, DEFAULT_RPC_TIMEOUT};
use shardlog::client::{Client, ClientError, Membership, Position, StoredRecords};
use shardlog::proto::v1::{GetRecordsResponse, Record};

/// Failed calls in a row after which a reader gives its shard up.
pub const MAX_CONSECUTIVE_ERRORS: u32 = 3;

/// How far a shard reaches when the read starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardEnd {
    pub shard_id: String,
    /// The shard's newest sequence number; `None` while it holds no record.
    pub last: Option<u64>,
    /// Records the shard retains.
    pub records: u64,
}

/// The newest sequence number and record count of every shard of `stream`.
///
/// The contract has no call that says how far a shard reaches; a consumer group's description
/// does (`latest_sequence_number`, and `lag_records` counts every retained record while the
/// group has no checkpoint). The probe joins a group of its own, reads its description, and
/// deletes it again.
pub async fn probe_ends(
    client: &Client,
    stream: &str,
    run_id: &str,
) -> Result<Vec<ShardEnd>, BenchError> {
    let member = Membership::new(stream, format!("bench-probe-{run_id}"), "probe");
    let step = |step: &'static str| move |source| BenchError::Client { step, source };
    client
        .join_group(&member, None)
        .await
        .map_err(step("joining the probe group"))?;
    let described = client
        .describe_group(stream, &member.group)
        .await
        .map_err(step("describing the probe group"));
    // Clean up whatever the description said; a probe group left behind is harmless but
    // untidy, so failing to delete it only warns.
    if let Err(error) = client.delete_group(stream, &member.group).await {
        tracing::warn!(%error, group = %member.group, "cannot delete the bench's probe group");
    }
    Ok(described?
        .shards
        .into_iter()
        .map(|shard| ShardEnd {
            shard_id: shard.shard_id,
            last: shard.latest_sequence_number,
            records: shard.lag_records,
        })
        .collect())
}

/// Reads every shard up to its end (or until `deadline`), consumer `c` of `C` taking shards
/// `c`, `c + C`, …; returns how long the reads took.
pub async fn read_all(
    clients: Vec<Client>,
    stream: &str,
    ends: Vec<ShardEnd>,
    mode: ConsumeMode,
    deadline: Instant,
    meter: Arc<Meter>,
) -> Duration {
    let start = Instant::now();
    let stream: Arc<str> = Arc::from(stream);
    let mut readers = JoinSet::new();
    for (i, end) in ends.into_iter().enumerate() {
        let Some(last) = end.last else { continue };
        let client = clients[i % clients.len().max(1)].clone();
        let shard = ShardRead {
            client,
            stream: Arc::clone(&stream),
            shard_id: end.shard_id,
            last,
            deadline,
            meter: Arc::clone(&meter),
        };
        match mode {
            ConsumeMode::GetRecords => {
                readers.spawn(poll_shard(shard, false));
            }
            ConsumeMode::GetRecordsFrames => {
                readers.spawn(poll_shard(shard, true));
            }
            ConsumeMode::Subscribe => {
                readers.spawn(subscribe_shard(shard));
            }
        }
    }
    while let Some(joined) = readers.join_next().await {
        if let Err(error) = joined {
            meter.add_rpc_error(|| format!("a reader task failed: {error}"));
        }
    }
    start.elapsed()
}

fn data_bytes(records: &[Record]) -> u64 {
    records.iter().map(|r| r.data.len() as u64).sum()
}

/// Runs one call of `rpc` within the RPC timeout; a failure or a timeout is counted on `meter`
/// and gives `None`.
pub(super) async fn within_timeout<T>(
    meter: &Meter,
    rpc: &'static str,
    call: impl Future<Output = Result<T, ClientError>>,
) -> Option<T> {
    match tokio::time::timeout(DEFAULT_RPC_TIMEOUT, call).await {
        Ok(Ok(answer)) => Some(answer),
        Ok(Err(error)) => {
            meter.add_rpc_error(|| error.to_string());
            None
        }
        Err(_elapsed) => {
            meter.add_rpc_error(|| format!("{rpc} timed out after {DEFAULT_RPC_TIMEOUT:?}"));
            None
        }
    }
}

/// One shard's catch-up read.
struct ShardRead {
    client: Client,
    stream: Arc<str>,
    shard_id: String,
    /// The read is complete once this sequence number has been read.
    last: u64,
    deadline: Instant,
    meter: Arc<Meter>,
}

/// What the catch-up loop takes from one GetRecords answer, in either form.
struct Answer {
    records: u64,
    bytes: u64,
    last: Option<u64>,
    caught_up: bool,
    next_shard_iterator: String,
}

impl Answer {
    fn of_records(r: GetRecordsResponse) -> Answer {
        Answer {
            records: r.records.len() as u64,
            bytes: data_bytes(&r.records),
            last: r.records.last().map(|r| r.sequence_number),
            caught_up: r.millis_behind_latest == 0,
            next_shard_iterator: r.next_shard_iterator,
        }
    }

    fn of_frames(r: StoredRecords) -> Answer {
        Answer {
            records: r.records.len() as u64,
            bytes: r.records.iter().map(|r| r.data.len() as u64).sum(),
            last: r.records.last().map(|r| r.sequence.get()),
            caught_up: r.millis_behind_latest == 0,
            next_shard_iterator: r.next_shard_iterator,
        }
    }
}

/// GetShardIterator at TRIM_HORIZON, then GetRecords (in the frame form with `frames`) until
/// the shard's last record.
async fn poll_shard(shard: ShardRead, frames: bool) {
    let ShardRead {
        client,
        stream,
        shard_id,
        last,
        deadline,
        meter,
    } = shard;
    let start = client.get_shard_iterator(&stream, &shard_id, Position::TrimHorizon);
    let Some(mut iterator) = within_timeout(&meter, "GetShardIterator", start).await else {
        return;
    };
    let mut failures = 0;
    while Instant::now() < deadline && failures < MAX_CONSECUTIVE_ERRORS {
        let asked = Instant::now();
        // 0: the server's own limit, the largest read it allows.
        let read = async {
            if frames {
                client
                    .get_stored_records(&iterator, 0)
                    .await
                    .map(Answer::of_frames)
            } else {
                client
                    .get_records(&iterator, 0)
                    .await
                    .map(Answer::of_records)
            }
        };
        match within_timeout(&meter, "GetRecords", read).await {
            Some(answer) => {
                failures = 0;
                meter.record_latency(asked.elapsed());
                meter.add_records(answer.records, answer.bytes);
                let reached = answer.last.is_some_and(|seq| seq >= last);
                let at_end = answer.records == 0 && answer.caught_up;
                if reached || at_end || answer.next_shard_iterator.is_empty() {
                    return;
                }
                iterator = answer.next_shard_iterator;
            }
            None => failures += 1,
        }
    }
}

async fn subscribe_shard(shard: ShardRead) {
    let ShardRead {
        client,
        stream,
        shard_id,
        last,
        deadline,
        meter,
    } = shard;
    let mut waiting_since = Instant::now();
    let subscribe = client.subscribe_to_shard(&stream, &shard_id, Position::TrimHorizon);
    let Some(mut events) = within_timeout(&meter, "SubscribeToShard", subscribe).await else {
        return;
    };
    loop {
        match tokio::time::timeout_at(deadline.into(), events.message()).await {
            Err(_deadline) => return,
            Ok(Ok(Some(event))) => {
                let records = &event.records;
                if records.is_empty() {
                    // A keep-alive: nothing was read.
                    continue;
                }
                meter.record_latency(waiting_since.elapsed());
                waiting_since = Instant::now();
                meter.add_records(records.len() as u64, data_bytes(records));
                if records.last().is_some_and(|r| r.sequence_number >= last) {
                    return;
                }
            }
            Ok(Ok(None)) => {
                return meter.add_rpc_error(|| {
                    format!("the subscription to {shard_id} ended before its last record")
                })
            }
            Ok(Err(status)) => {
                return meter.add_rpc_error(|| {
                    ClientError::Rpc {
                        rpc: "SubscribeToShard",
                        source: status,
                    }
                    .to_string()
                })
            }
        }
    }
}
