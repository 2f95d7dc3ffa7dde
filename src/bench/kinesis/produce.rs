//! Kinesis producers: each on one keep-alive HTTP/1.1 connection, in a closed loop — a
//! PutRecords body written, sent, its answer counted, then the next. Nothing is retried: a
//! failed entry is counted as one, a failed call as one failed call, as the gRPC producers do.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::task::JoinSet;

use super::http::{CallError, Connection, KinesisEndpoint};
use super::wire::{BodyWriter, KinesisSequence, PutRecordsOutput};
use crate::bench::produce::{Cursor, ProducePhase, PutAnswer, RecordShape};

impl PutAnswer for PutRecordsOutput<'_> {
    fn answered(&self) -> u64 {
        self.records.len() as u64
    }

    fn failed(&self) -> impl Iterator<Item = (&str, &str)> {
        self.records.iter().filter_map(|e| {
            let code = e.error_code.as_deref()?;
            Some((code, e.error_message.as_deref().unwrap_or_default()))
        })
    }

    /// Only the sequence numbers that fit 64 bits (shardlog's) are passed: the acknowledged
    /// tail of an e2e run is the only user, and e2e runs are gRPC ones. A Kinesis run keeps
    /// its tail in a [`StoredTail`].
    fn for_each_stored(&self, mut f: impl FnMut(&str, u64)) {
        for e in self.records.iter().filter(|e| e.error_code.is_none()) {
            let sequence = e.sequence_number.as_deref().and_then(|s| s.parse().ok());
            if let (Some(shard_id), Some(sequence)) = (e.shard_id.as_deref(), sequence) {
                f(shard_id, sequence);
            }
        }
    }

    fn stored(&self) -> impl Iterator<Item = bool> {
        self.records.iter().map(|e| e.error_code.is_none())
    }

    /// `FailedRecordCount` is the answer's own count; the entries say why.
    fn failures(&self) -> (u64, Option<String>) {
        let mut failed = self.failed();
        let first = failed
            .next()
            .map(|(code, message)| format!("{code}: {message}"));
        let listed = u64::from(first.is_some()) + failed.count() as u64;
        let count = self.failed_record_count.max(listed);
        let first = first.or_else(|| {
            (count > 0).then(|| format!("FailedRecordCount {count}, and no entry says why"))
        });
        (count, first)
    }
}

/// The newest sequence number stored in each shard, from the PutRecords answers: where a
/// consume run's reads end.
#[derive(Debug, Default)]
pub struct StoredTail(Mutex<HashMap<String, KinesisSequence>>);

impl StoredTail {
    fn note(&self, answer: &PutRecordsOutput<'_>) {
        let mut tail = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for e in answer.records.iter().filter(|e| e.error_code.is_none()) {
            let (Some(shard_id), Some(sequence)) = (
                e.shard_id.as_deref(),
                e.sequence_number.as_deref().and_then(KinesisSequence::new),
            ) else {
                continue;
            };
            match tail.get_mut(shard_id) {
                Some(last) if *last >= sequence => {}
                Some(last) => *last = sequence,
                None => {
                    tail.insert(shard_id.to_owned(), sequence);
                }
            }
        }
    }

    /// Every shard that stored a record, with its newest sequence number, by shard id.
    pub fn ends(&self) -> Vec<(String, KinesisSequence)> {
        let tail = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut ends: Vec<_> = tail.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        ends.sort();
        ends
    }
}

/// Writes the PutRecords body of the next `n` records of a producer. Every record of a batch
/// carries the same data, as with gRPC; each is encoded to base64 on its own, as a client
/// with distinct records would.
fn write_batch(
    shape: &RecordShape,
    cursor: &mut Cursor,
    n: u64,
    sent: Instant,
    writer: &mut BodyWriter,
) -> Bytes {
    let data = shape.data(sent);
    writer.begin_put_records(&shape.stream, n as usize, data.len());
    for _ in 0..n {
        writer.put_record(cursor.next_key(shape), &data);
    }
    writer.finish_put_records()
}

/// Runs one closed-loop producer per connection until the deadline or the budget ends the
/// phase; with `tail`, notes where each shard's stored records end. Returns how long the
/// phase took.
pub async fn run_producers(
    phase: Arc<ProducePhase>,
    connections: Vec<Connection>,
    endpoint: Arc<KinesisEndpoint>,
    tail: Option<Arc<StoredTail>>,
) -> Duration {
    let mut producers = JoinSet::new();
    for (index, connection) in connections.into_iter().enumerate() {
        producers.spawn(closed_loop(
            Arc::clone(&phase),
            connection,
            Arc::clone(&endpoint),
            Cursor::new(index),
            tail.clone(),
        ));
    }
    while let Some(joined) = producers.join_next().await {
        if let Err(error) = joined {
            phase
                .meter
                .add_rpc_error(|| format!("a producer task failed: {error}"));
        }
    }
    phase.start.elapsed()
}

async fn closed_loop(
    phase: Arc<ProducePhase>,
    connection: Connection,
    endpoint: Arc<KinesisEndpoint>,
    mut cursor: Cursor,
    tail: Option<Arc<StoredTail>>,
) {
    let batch = phase.shape.batch_size as u64;
    let mut writer = BodyWriter::default();
    let mut connection = Some(connection);
    while Instant::now() < phase.deadline {
        let n = phase.budget.claim(batch);
        if n == 0 {
            break;
        }
        let open = match connection.as_mut() {
            Some(open) => open,
            None => match Connection::open(&endpoint).await {
                Ok(open) => connection.insert(open),
                Err(error) => {
                    // Without a connection this producer can do nothing more.
                    return phase.meter.add_rpc_error(|| error.full_message());
                }
            },
        };
        let sent = Instant::now();
        let body = write_batch(&phase.shape, &mut cursor, n, sent, &mut writer);
        let answer = open.call("PutRecords", body).await;
        let latency = sent.elapsed();
        let answer = match &answer {
            Ok(bytes) => serde_json::from_slice::<PutRecordsOutput<'_>>(bytes).map_err(|source| {
                CallError::Decode {
                    operation: "PutRecords",
                    source,
                }
                .full_message()
            }),
            Err(error) => {
                if error.breaks_connection() {
                    connection = None;
                }
                Err(error.full_message())
            }
        };
        if let (Some(tail), Ok(out)) = (&tail, &answer) {
            tail.note(out);
        }
        phase.account(Ok(answer), latency, n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(json: &str) -> PutRecordsOutput<'_> {
        serde_json::from_str(json).expect("parses")
    }

    #[test]
    fn failed_entries_are_counted_by_failed_record_count_with_the_first_reason() {
        let out = answer(
            r#"{"FailedRecordCount":2,"Records":[{"SequenceNumber":"1","ShardId":"shardId-000000000000"},
            {"ErrorCode":"ProvisionedThroughputExceededException","ErrorMessage":"Rate exceeded"},
            {"ErrorCode":"InternalFailure","ErrorMessage":"Internal Service Failure"}]}"#,
        );
        assert_eq!(
            out.failures(),
            (
                2,
                Some("ProvisionedThroughputExceededException: Rate exceeded".to_owned())
            )
        );
        assert_eq!(out.stored().collect::<Vec<_>>(), [true, false, false]);
        let unexplained = answer(r#"{"FailedRecordCount":1,"Records":[{"SequenceNumber":"1"}]}"#);
        assert_eq!(unexplained.failures().0, 1);
    }

    #[test]
    fn the_tail_keeps_each_shards_newest_stored_sequence_number() {
        let tail = StoredTail::default();
        tail.note(&answer(
            r#"{"FailedRecordCount":1,"Records":[{"SequenceNumber":"9","ShardId":"shardId-000000000001"},
            {"SequenceNumber":"10","ShardId":"shardId-000000000001"},
            {"ErrorCode":"InternalFailure","ErrorMessage":"x"},
            {"SequenceNumber":"49546986683135544286507457936321625675700192471156785154","ShardId":"shardId-000000000000"}]}"#,
        ));
        tail.note(&answer(
            r#"{"Records":[{"SequenceNumber":"8","ShardId":"shardId-000000000001"}]}"#,
        ));
        let ends: Vec<(String, String)> = tail
            .ends()
            .into_iter()
            .map(|(shard, last)| (shard, last.as_str().to_owned()))
            .collect();
        assert_eq!(
            ends,
            [
                (
                    "shardId-000000000000".to_owned(),
                    "49546986683135544286507457936321625675700192471156785154".to_owned()
                ),
                ("shardId-000000000001".to_owned(), "10".to_owned()),
            ]
        );
    }
}
