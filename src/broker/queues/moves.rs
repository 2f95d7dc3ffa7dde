//! Move tasks: what a dead-letter stream holds goes back to the stream each message came from
//! (or into another stream), each message once, at a bounded rate, as a durable task that a
//! restart resumes (SQS's StartMessageMoveTask over a log).
//!
//! ```text
//!  MoveMessages ─▶ StartMoveTask{start = where the source's last task stopped, end = its end now}
//!  runner: read a batch ─▶ put each message (id move/<source>/<shard>/<seq>) ─▶ MoveProgress
//!          … until every shard reaches its end ─▶ MoveProgress{Completed}
//! ```
//!
//! A message is put before the progress past it is journaled; after a crash between the two
//! (or a task that failed halfway and a new one), it is put again under the same deduplication
//! id — named by the source stream, shard and sequence number — which the destination's window
//! (rebuilt from its log on start) recognises, so it is stored once as long as the restart
//! comes within that window.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::dead_letter::{RECEIVE_COUNT_ATTRIBUTE, SOURCE_STREAM_ATTRIBUTE};
use crate::broker::put::Origin;
use crate::broker::{blocking, Broker, BrokerError, PutEntry};
use crate::meta::{MetaCommand, MoveStatus, MoveTaskRecord};
use crate::storage::{SequenceNumber, StoredRecord, Timestamp};
use crate::stream::{ShardId, StreamName};

/// Default highest rate a move task may be given, in messages per second.
pub const DEFAULT_MAX_MOVE_RATE: u32 = 10_000;
/// Messages read, put and recorded as progress in one step of a move task.
const MOVE_BATCH: usize = 500;
/// Prefix of the deduplication ids of moved messages.
pub const MOVED_ID_PREFIX: &str = "move/";

/// The deduplication id of the moved copy of one message of a dead-letter stream: the same
/// whichever task moves it, so a task that failed halfway and the next one store it once.
fn moved_id(source: &StreamName, shard: ShardId, sequence: SequenceNumber) -> String {
    // Names can be long; a digest keeps the id within the id length limit.
    let digest = Sha256::digest(source.as_str().as_bytes());
    let tag: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{MOVED_ID_PREFIX}{tag}/{}/{}",
        shard.index(),
        sequence.get()
    )
}

/// A move task as ListMoveTasks shows it.
pub type MoveTaskInfo = MoveTaskRecord;

impl Broker {
    /// Starts a task moving what `source` holds — from where its previous task stopped to its
    /// end now — back to each message's source stream, or into `destination`. At most
    /// `max_per_second` messages per second (0: as fast as the destination takes them).
    pub async fn move_messages(
        &self,
        source: &StreamName,
        destination: Option<StreamName>,
        max_per_second: u32,
    ) -> Result<String, BrokerError> {
        let handle = self.stream(source)?;
        let source = handle.descriptor.name.clone();
        let max = self.config().queues.max_move_rate;
        if max_per_second > max {
            return Err(BrokerError::invalid(
                "max_messages_per_second",
                format!("{max_per_second}; at most {max} (0: no limit)"),
            ));
        }
        if let Some(d) = &destination {
            if d == &source {
                return Err(BrokerError::invalid(
                    "destination_stream",
                    "must not be the source stream",
                ));
            }
            self.stream(d)?;
        }
        let (is_dead_letter_stream, previous) = {
            let meta = self.inner.meta.lock().unwrap_or_else(|p| p.into_inner());
            let state = meta.state();
            let dlq = state.groups.values().any(|g| {
                g.queue
                    .as_ref()
                    .is_some_and(|q| q.definition.dead_letter_stream.as_ref() == Some(&source))
            });
            let mut previous: BTreeMap<ShardId, SequenceNumber> = BTreeMap::new();
            for t in state.move_tasks.values().filter(|t| t.source == source) {
                for (shard, next) in &t.next {
                    let at = previous.entry(*shard).or_insert(*next);
                    *at = (*at).max(*next);
                }
            }
            (dlq, previous)
        };
        if !is_dead_letter_stream {
            return Err(BrokerError::invalid(
                "source_stream",
                format!("{source} is not the dead-letter stream of any queue group"),
            ));
        }
        let mut start = BTreeMap::new();
        let mut end = BTreeMap::new();
        let mut to_move = 0;
        for sh in handle.shards() {
            let from = sh.log.first_sequence().max(
                previous
                    .get(&sh.id)
                    .copied()
                    .unwrap_or(SequenceNumber::ZERO),
            );
            let to = sh.log.next_sequence().max(from);
            to_move += to.saturating_distance_from(from);
            start.insert(sh.id, from);
            end.insert(sh.id, to);
        }
        let mut id = [0u8; 8];
        getrandom::fill(&mut id).map_err(|source| BrokerError::Randomness {
            purpose: "a move task id",
            source,
        })?;
        let task_id: String = id.iter().map(|b| format!("{b:02x}")).collect();
        let task = MoveTaskRecord {
            task_id: task_id.clone(),
            source,
            destination,
            max_per_second,
            started_at_ms: Timestamp::now(),
            next: start.clone(),
            start,
            end,
            to_move,
            moved: 0,
            status: MoveStatus::Running,
            failure_reason: String::new(),
        };
        self.execute_meta(MetaCommand::StartMoveTask(task.clone()))
            .await?;
        self.spawn_move(task);
        Ok(task_id)
    }

    /// The move tasks of `source`, newest first.
    pub fn list_move_tasks(&self, source: &StreamName) -> Result<Vec<MoveTaskInfo>, BrokerError> {
        self.stream(source)?;
        let meta = self.inner.meta.lock().unwrap_or_else(|p| p.into_inner());
        let mut tasks: Vec<MoveTaskInfo> = meta
            .state()
            .move_tasks
            .values()
            .filter(|t| &t.source == source)
            .cloned()
            .collect();
        tasks.sort_by_key(|t| std::cmp::Reverse(t.started_at_ms));
        Ok(tasks)
    }

    /// Resumes the tasks a restart interrupted.
    pub(crate) fn resume_moves(&self, tasks: Vec<MoveTaskRecord>) {
        for task in tasks {
            if task.status == MoveStatus::Running {
                self.spawn_move(task);
            }
        }
    }

    fn spawn_move(&self, task: MoveTaskRecord) {
        let broker = self.clone();
        tokio::spawn(async move {
            let id = task.task_id.clone();
            let mut shutdown = broker.shutdown_signal();
            tokio::select! {
                outcome = broker.run_move(task) => {
                    if let Err(e) = outcome {
                        tracing::error!(task = %id, error = %e, "move task stopped");
                    }
                }
                // Left running in the metadata: the next start resumes it.
                _ = shutdown.wait_for(|stop| *stop) => {}
            }
        });
    }

    async fn run_move(&self, mut task: MoveTaskRecord) -> Result<(), BrokerError> {
        let started = tokio::time::Instant::now();
        let moved_at_start = task.moved;
        let shards: Vec<ShardId> = task.end.keys().copied().collect();
        for shard in shards {
            let end = task.end[&shard];
            loop {
                let from = task.next.get(&shard).copied().unwrap_or(end);
                if from >= end {
                    break;
                }
                let records = match self.read_dead_letters(&task.source, shard, from, end).await {
                    Ok(r) => r,
                    Err(e) => {
                        return self
                            .fail_move(&mut task, format!("reading {shard}: {e}"))
                            .await
                    }
                };
                let Some(last) = records.last().map(|r| r.sequence) else {
                    // Retention removed the rest of the range.
                    task.next.insert(shard, end);
                    break;
                };
                if let Err(reason) = self.put_moved(&task, shard, &records).await {
                    return self.fail_move(&mut task, reason).await;
                }
                task.moved += records.len() as u64;
                task.next.insert(shard, last.next());
                self.record_move(&task).await?;
                if task.max_per_second > 0 {
                    let due = Duration::from_secs_f64(
                        (task.moved - moved_at_start) as f64 / f64::from(task.max_per_second),
                    );
                    tokio::time::sleep_until(started + due).await;
                }
            }
        }
        task.status = MoveStatus::Completed;
        self.record_move(&task).await
    }

    async fn read_dead_letters(
        &self,
        source: &StreamName,
        shard: ShardId,
        from: SequenceNumber,
        end: SequenceNumber,
    ) -> Result<Vec<StoredRecord>, BrokerError> {
        let handle = self.stream(source)?;
        let log = handle
            .shard(shard)
            .map(|s| Arc::clone(&s.log))
            .ok_or_else(|| BrokerError::ShardNotFound {
                stream: source.clone(),
                shard: shard.to_string(),
            })?;
        let from = from.max(log.first_sequence());
        let limit = (end.saturating_distance_from(from) as usize).min(MOVE_BATCH);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let max_bytes = self.config().max_read_bytes;
        let batch = blocking("move read", move || log.read(from, limit, max_bytes)).await??;
        Ok(batch
            .records
            .into_iter()
            .filter(|r| r.sequence < end)
            .collect())
    }

    /// Puts one batch into its destinations; the reason of the first failure otherwise.
    async fn put_moved(
        &self,
        task: &MoveTaskRecord,
        shard: ShardId,
        records: &[StoredRecord],
    ) -> Result<(), String> {
        let mut by_destination: BTreeMap<StreamName, Vec<PutEntry>> = BTreeMap::new();
        for r in records {
            let destination = match &task.destination {
                Some(d) => d.clone(),
                None => {
                    let named = r
                        .attributes
                        .get(SOURCE_STREAM_ATTRIBUTE)
                        .and_then(|a| a.text())
                        .and_then(|s| StreamName::new(s).ok());
                    match named {
                        Some(s) => s,
                        None => {
                            tracing::warn!(task = %task.task_id, %shard, sequence = %r.sequence, "a message names no source stream; it stays where it is");
                            continue;
                        }
                    }
                }
            };
            let mut entry = PutEntry::from_stored(r);
            entry.attributes.retain(|a| {
                !a.name.starts_with("shardlog.source.") && a.name != RECEIVE_COUNT_ATTRIBUTE
            });
            entry.deduplication_id = Some(moved_id(&task.source, shard, r.sequence));
            by_destination.entry(destination).or_default().push(entry);
        }
        for (destination, entries) in by_destination {
            let put = match self
                .begin_put_as(&destination, entries, Origin::System)
                .await
            {
                Ok(pending) => pending.finish().await,
                Err(e) => return Err(format!("destination {destination}: {e}")),
            };
            if let Some(e) = put.into_iter().find_map(Result::err) {
                return Err(format!("destination {destination}: {e}"));
            }
        }
        Ok(())
    }

    async fn record_move(&self, task: &MoveTaskRecord) -> Result<(), BrokerError> {
        self.execute_meta(MetaCommand::MoveProgress {
            task_id: task.task_id.clone(),
            next: task.next.clone(),
            moved: task.moved,
            status: task.status,
            failure_reason: task.failure_reason.clone(),
        })
        .await
    }

    async fn fail_move(
        &self,
        task: &mut MoveTaskRecord,
        reason: String,
    ) -> Result<(), BrokerError> {
        tracing::warn!(task = %task.task_id, %reason, "move task failed");
        task.status = MoveStatus::Failed;
        task.failure_reason = reason;
        self.record_move(task).await
    }
}
