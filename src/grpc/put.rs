//! The produce adapters: PutRecords entries in, per-entry results out, and the loop that
//! serves a PutRecordsStream call.
//!
//! ```text
//!  requests ─► begin_put (one at a time, in order: routes, reserves ids, queues batches)
//!                 │
//!                 ▼  at most `put_stream_window` unanswered
//!              in flight: [finish, finish, …]  (each waits for its appends)
//!                 │  oldest first
//!                 ▼
//!  answers ◄─ PutRecordsStreamResponse { request_index, result | error }
//! ```
//!
//! Beginning each put before reading the next request is what keeps a call's order: the
//! batches of request *n* are queued at every shard's committer before those of *n + 1*, and
//! a committer appends in queue order. Waiting for the appends is what overlaps.

use std::collections::VecDeque;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};

use super::convert;
use super::status::{entry_error_code, to_status};
use crate::auth::{Action, Caller};
use crate::broker::{Broker, BrokerError, PutEntry, PutResult};
use crate::proto::v1 as pb;
use crate::stream::{ShardId, StreamName};

/// The broker's entries for a request's records.
pub fn entries(records: Vec<pb::PutRecordsRequestEntry>) -> Vec<PutEntry> {
    records
        .into_iter()
        .map(|e| {
            convert::put_entry(
                e.partition_key,
                e.data,
                e.explicit_hash_key,
                e.message_group_id,
                e.deduplication_id,
                e.attributes,
            )
        })
        .collect()
}

/// The answer to a PutRecords whose entries ended as `results`: the stream form, with each
/// shard id formatted once, spelled out per entry.
pub fn response(results: Vec<PutResult>) -> pb::PutRecordsResponse {
    stream_result(results).into_response()
}

/// The compact answer to an accepted PutRecordsStream request: each shard id is formatted
/// and sent once, entries refer to it by position.
pub fn stream_result(results: Vec<PutResult>) -> pb::PutRecordsStreamResult {
    let mut failed = 0;
    let mut shards: Vec<ShardId> = Vec::new();
    let records = results
        .into_iter()
        .map(|res| match res {
            Ok(o) => {
                let shard = match shards.iter().position(|&id| id == o.shard) {
                    Some(at) => at,
                    None => {
                        shards.push(o.shard);
                        shards.len() - 1
                    }
                };
                pb::PutRecordsStreamEntry {
                    // A request names at most `max_put_entries` shards.
                    shard: u32::try_from(shard).unwrap_or(u32::MAX),
                    sequence_number: o.sequence.get(),
                    error_code: String::new(),
                    error_message: String::new(),
                    duplicate: o.duplicate,
                }
            }
            Err(e) => {
                failed += 1;
                pb::PutRecordsStreamEntry {
                    error_code: entry_error_code(&e).to_owned(),
                    error_message: e.to_string(),
                    ..Default::default()
                }
            }
        })
        .collect();
    pb::PutRecordsStreamResult {
        failed_record_count: failed,
        shard_ids: shards.iter().map(ShardId::to_string).collect(),
        records,
    }
}

type Answer = Result<pb::PutRecordsStreamResponse, Status>;
/// A begun put of a call, by its request index: the task that finishes it.
type InFlight = (u64, JoinHandle<Result<Vec<PutResult>, Status>>);

/// Serves one PutRecordsStream call: reads its requests, begins each put in order, keeps at
/// most the broker's `put_stream_window` unanswered, and answers them in request order. The
/// call ends once the client has closed its side and everything is answered, when the client
/// goes away (puts already begun still complete: their batches are queued), or with
/// UNAVAILABLE once the server starts stopping (after answering what was begun).
pub fn serve_stream(
    broker: Broker,
    caller: Caller,
    mut inbound: Streaming<pb::PutRecordsRequest>,
) -> ReceiverStream<Answer> {
    let window = broker.config().put_stream_window.max(1);
    let (tx, rx) = mpsc::channel(window);
    tokio::spawn(async move {
        let mut shutdown = broker.shutdown_signal();
        let mut in_flight: VecDeque<InFlight> = VecDeque::with_capacity(window);
        let mut next_index = 0u64;
        let mut reading = true;
        let mut stopping = false;
        loop {
            tokio::select! {
                biased;
                joined = async {
                    match in_flight.front_mut() {
                        Some((_, task)) => task.await,
                        None => std::future::pending().await,
                    }
                }, if !in_flight.is_empty() => {
                    let Some((request_index, _)) = in_flight.pop_front() else { break };
                    let outcome = match joined {
                        Ok(Ok(results)) => pb::put_records_stream_response::Outcome::Result(
                            stream_result(results),
                        ),
                        Ok(Err(status)) => rejected(status),
                        Err(source) => rejected(to_status(BrokerError::TaskFailed {
                            task: "put",
                            source,
                        })),
                    };
                    let answer = pb::PutRecordsStreamResponse {
                        request_index,
                        outcome: Some(outcome),
                    };
                    if tx.send(Ok(answer)).await.is_err() {
                        return;
                    }
                }
                // A closed signal (the broker is gone) stops the call as well.
                _ = async { shutdown.wait_for(|stopping| *stopping).await.is_ok() }, if reading => {
                    reading = false;
                    stopping = true;
                }
                message = inbound.message(), if reading && in_flight.len() < window => {
                    match message {
                        Ok(Some(request)) => {
                            let begun = match StreamName::new(request.stream_name) {
                                Ok(stream) => match caller
                                    .check(Action::Write, stream.as_str())
                                    .map_err(Status::permission_denied)
                                    .and_then(|()| {
                                        super::auth::admit_bytes(&caller, request_bytes(&request.records))
                                    }) {
                                    Ok(()) => broker
                                        .begin_put(&stream, entries(request.records))
                                        .await
                                        .map_err(to_status),
                                    Err(refused) => Err(refused),
                                },
                                Err(invalid) => Err(to_status(invalid.into())),
                            };
                            let task = match begun {
                                Ok(pending) => tokio::spawn(async move { Ok(pending.finish().await) }),
                                Err(e) => tokio::spawn(async move { Err(e) }),
                            };
                            in_flight.push_back((next_index, task));
                            next_index += 1;
                        }
                        Ok(None) => reading = false,
                        // The client's side broke: nobody is left to answer.
                        Err(_) => return,
                    }
                }
                else => break,
            }
        }
        if stopping {
            let _ = tx.send(Err(to_status(BrokerError::ShuttingDown))).await;
        }
    });
    ReceiverStream::new(rx)
}

/// Bytes of data and partition keys in a PutRecords: what a principal's byte rate counts.
pub(super) fn request_bytes(records: &[pb::PutRecordsRequestEntry]) -> usize {
    records
        .iter()
        .map(|r| r.data.len() + r.partition_key.len())
        .sum()
}

/// The answer to a request rejected as a whole: the status PutRecords would have ended with.
fn rejected(status: Status) -> pb::put_records_stream_response::Outcome {
    pb::put_records_stream_response::Outcome::Error(pb::RequestError {
        code: status.code() as i32,
        message: status.message().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::PutOutcome;

    fn stored(shard: u32, sequence: u64) -> PutResult {
        Ok(PutOutcome {
            shard: ShardId(shard),
            sequence: crate::storage::SequenceNumber::new(sequence),
            duplicate: false,
        })
    }

    #[test]
    fn a_stream_result_names_each_shard_once_and_keeps_entry_order() {
        let results = vec![
            stored(3, 10),
            stored(1, 4),
            Err(BrokerError::invalid("data", "too big")),
            stored(3, 11),
        ];
        let compact = stream_result(results);
        assert_eq!(compact.failed_record_count, 1);
        assert_eq!(
            compact.shard_ids,
            [ShardId(3).to_string(), ShardId(1).to_string()]
        );
        let named: Vec<_> = compact
            .records
            .iter()
            .map(|e| (compact.shard_id(e).map(str::to_owned), e.sequence_number))
            .collect();
        assert_eq!(
            named,
            [
                (Some(ShardId(3).to_string()), 10),
                (Some(ShardId(1).to_string()), 4),
                (None, 0),
                (Some(ShardId(3).to_string()), 11),
            ]
        );
        assert!(!compact.records[2].error_code.is_empty());
    }

    #[test]
    fn a_stream_result_says_the_same_as_the_put_records_answer() {
        let results = || {
            vec![
                stored(0, 1),
                Err(BrokerError::invalid("data", "too big")),
                stored(2, 7),
            ]
        };
        assert_eq!(
            stream_result(results()).into_response(),
            response(results())
        );
    }
}
