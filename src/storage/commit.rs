//! Group commit: appends to one shard queue up; a committer drains the queue, writes every
//! waiting batch with one `write`, syncs per the fsync policy, then acknowledges them all.
//!
//! ```text
//!  put A ─┐                        ┌─ spawn_blocking ──────────────────┐
//!  put B ─┼─▶ bounded queue ─▶ task│ stamp A,B,C → write → fdatasync    │─▶ publish ─▶ ack A,B,C
//!  put C ─┘   (full past deadline  └───────────────────────────────────┘
//!              → Busy)
//! ```
//!
//! Under `always` the sync of a round runs behind the write of the next one (at most one sync
//! in flight; rounds are written in queue order, and a round is published and acknowledged
//! only after a sync that started after its write):
//!
//! ```text
//!  round 1: write ─ fdatasync ─ publish, ack
//!  round 2:         write ───── fdatasync ─ publish, ack
//!  round 3:                     write ───── fdatasync ─ ...
//! ```
//!
//! The committer owns the fsync policy: it alone decides when the log syncs
//! ([`ShardLog::sync`]) and whether a round is readable before its sync ([`Publish`]).
//!
//! The committer task owns each job once it is queued, so a caller that goes away (a cancelled
//! gRPC request) cannot tear a write: the batch is written or refused as a whole regardless.
//! File I/O and fsync run on tokio's blocking pool, never on an async worker thread.

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, Semaphore};

use super::error::StorageError;
use super::log::{AppendAck, Publish, ShardLog};
use super::record::EncodedBatch;
use super::sequence::SequenceNumber;
use super::time::Timestamp;

/// Default depth of a shard's append queue, in batches.
pub const DEFAULT_QUEUE_DEPTH: usize = 4096;
/// Default time an append waits for room in a full queue before failing with `Busy`.
pub const DEFAULT_ENQUEUE_TIMEOUT: Duration = Duration::from_secs(5);
/// Default bytes gathered into one round (one write, one sync).
pub const DEFAULT_MAX_ROUND_BYTES: usize = 16 * 1024 * 1024;
/// Under `always`, rounds of at least this many bytes are written while the previous round
/// syncs; smaller ones wait for that sync and gather the producers it acknowledges.
pub const PIPELINE_MIN_ROUND_BYTES: usize = 256 * 1024;
/// Default sync period of the `interval` policy.
pub const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_millis(100);

/// When appended bytes are made durable, and what an acknowledgement therefore promises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FsyncPolicy {
    /// Sync before acknowledging: an acknowledged record survives power loss. The default.
    #[default]
    Always,
    /// Acknowledge after the write; sync at most every period. A process crash loses nothing
    /// acknowledged; a power loss may lose up to one period.
    Interval(Duration),
    /// Acknowledge after the write and leave syncing to the OS (sealed segments included). A
    /// process crash loses nothing acknowledged; a power loss may lose whatever the OS had not
    /// written back, and recovery then ends the log at the first batch lost.
    Never,
}

impl FromStr for FsyncPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "always" => Ok(FsyncPolicy::Always),
            "interval" => Ok(FsyncPolicy::Interval(DEFAULT_SYNC_INTERVAL)),
            "never" => Ok(FsyncPolicy::Never),
            other => Err(format!(
                "unknown fsync policy {other:?}: expected always, interval or never"
            )),
        }
    }
}

/// Settings of a committer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitConfig {
    /// When appends are synced, and so what an acknowledgement promises after a crash
    /// (default `always`).
    pub policy: FsyncPolicy,
    /// Batches that may wait in the queue (default 4096).
    pub queue_depth: usize,
    /// How long an append waits for room in a full queue (default 5 s).
    pub enqueue_timeout: Duration,
    /// Bytes gathered into one write (default 16 MiB).
    pub max_round_bytes: usize,
}

impl Default for CommitConfig {
    fn default() -> Self {
        CommitConfig {
            policy: FsyncPolicy::Always,
            queue_depth: DEFAULT_QUEUE_DEPTH,
            enqueue_timeout: DEFAULT_ENQUEUE_TIMEOUT,
            max_round_bytes: DEFAULT_MAX_ROUND_BYTES,
        }
    }
}

struct Job {
    batch: EncodedBatch,
    reply: oneshot::Sender<Result<AppendAck, StorageError>>,
}

/// A batch the committer has queued: resolves to its acknowledgement.
#[derive(Debug)]
pub struct PendingAppend {
    rx: oneshot::Receiver<Result<AppendAck, StorageError>>,
    log: Arc<ShardLog>,
}

impl PendingAppend {
    /// Waits until the batch is acknowledged per the policy, or has failed.
    pub async fn acked(self) -> Result<AppendAck, StorageError> {
        self.rx.await.unwrap_or_else(|_| {
            Err(StorageError::Closed {
                dir: self.log.dir().to_owned(),
            })
        })
    }
}

/// The handle producers append through. Cheap to clone; the committer task stops (after a
/// final sync) when every handle is dropped.
#[derive(Debug, Clone)]
pub struct Committer {
    tx: mpsc::Sender<Job>,
    log: Arc<ShardLog>,
    enqueue_timeout: Duration,
}

impl Committer {
    /// Starts the committer task of `log` on the current tokio runtime.
    pub fn spawn(log: Arc<ShardLog>, config: CommitConfig) -> Committer {
        let (tx, rx) = mpsc::channel(config.queue_depth.max(1));
        tokio::spawn(run(Arc::clone(&log), rx, config));
        Committer {
            tx,
            log,
            enqueue_timeout: config.enqueue_timeout,
        }
    }

    /// Batches queued and not yet taken by the committer.
    pub fn queue_depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Appends one batch and waits until it is acknowledged per the policy.
    pub async fn append(&self, batch: EncodedBatch) -> Result<AppendAck, StorageError> {
        self.submit(batch).await?.acked().await
    }

    /// Queues one batch behind those queued before it and returns once it is queued: from
    /// then on the committer owns it, so it is appended (in queue order) even if the caller
    /// goes away. A caller that queues its batches one after another has them appended in
    /// that order. Waits at most the enqueue timeout for room in the queue.
    pub async fn submit(&self, batch: EncodedBatch) -> Result<PendingAppend, StorageError> {
        let (reply, rx) = oneshot::channel();
        let job = Job { batch, reply };
        match self.tx.send_timeout(job, self.enqueue_timeout).await {
            Ok(()) => Ok(PendingAppend {
                rx,
                log: Arc::clone(&self.log),
            }),
            Err(mpsc::error::SendTimeoutError::Timeout(_)) => Err(StorageError::Busy {
                dir: self.log.dir().to_owned(),
            }),
            Err(mpsc::error::SendTimeoutError::Closed(_)) => Err(StorageError::Closed {
                dir: self.log.dir().to_owned(),
            }),
        }
    }

    /// The log this committer writes.
    pub fn log(&self) -> &Arc<ShardLog> {
        &self.log
    }
}

async fn run(log: Arc<ShardLog>, mut rx: mpsc::Receiver<Job>, config: CommitConfig) {
    let mut last_sync = Instant::now();
    let mut dirty = false;
    let mut jobs: Vec<Job> = Vec::new();
    // Under `always`, a round's sync runs in its own task while the next round is gathered
    // and written: one sync at most runs behind the writer, so the disk syncs one round while
    // the next is copied into the page cache.
    let sync_slot = Arc::new(Semaphore::new(1));
    loop {
        let first = match (config.policy, dirty) {
            (FsyncPolicy::Interval(period), true) => {
                let due = period.saturating_sub(last_sync.elapsed());
                match tokio::time::timeout(due, rx.recv()).await {
                    Ok(job) => job,
                    Err(_elapsed) => {
                        let l = Arc::clone(&log);
                        match tokio::task::spawn_blocking(move || l.sync(None)).await {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => tracing::error!(error = %e, "periodic sync failed"),
                            Err(e) => tracing::error!(error = %e, "periodic sync task failed"),
                        }
                        last_sync = Instant::now();
                        dirty = false;
                        continue;
                    }
                }
            }
            _ => rx.recv().await,
        };
        let Some(first) = first else { break };
        if config.policy == FsyncPolicy::Always {
            // The producers the last round acknowledged are runnable but may not have queued
            // their next batch yet: letting them run first puts them in this round instead of
            // costing them a sync of their own. One scheduler hop against one fsync.
            tokio::task::yield_now().await;
        }
        let mut bytes = first.batch.frame_len();
        jobs.push(first);
        drain(&mut rx, &mut jobs, &mut bytes, config.max_round_bytes);
        let mut sync_turn = None;
        if config.policy == FsyncPolicy::Always && bytes < PIPELINE_MIN_ROUND_BYTES {
            // A small round gains nothing from being written during the previous round's
            // sync, and would leave behind the producers that sync is about to acknowledge:
            // it waits for that sync and takes them along.
            sync_turn = Some(
                Arc::clone(&sync_slot)
                    .acquire_owned()
                    .await
                    .expect("the sync slot is never closed"),
            );
            tokio::task::yield_now().await;
            drain(&mut rx, &mut jobs, &mut bytes, config.max_round_bytes);
        }
        let mut batches: Vec<EncodedBatch> = Vec::with_capacity(jobs.len());
        let mut replies = Vec::with_capacity(jobs.len());
        for job in jobs.drain(..) {
            batches.push(job.batch);
            replies.push(job.reply);
        }
        if config.policy == FsyncPolicy::Always {
            let l = Arc::clone(&log);
            let written = tokio::task::spawn_blocking(move || {
                l.write(&mut batches, Timestamp::now(), Publish::AfterSync)
            })
            .await;
            let acks = match written {
                Ok(Ok(acks)) => acks,
                failed => {
                    answer(&log, replies, failed);
                    continue;
                }
            };
            let end = acks
                .last()
                .map_or(SequenceNumber::ZERO, AppendAck::next_sequence);
            // Waits for the previous round's sync: this round was written meanwhile.
            let permit = match sync_turn {
                Some(permit) => permit,
                None => Arc::clone(&sync_slot)
                    .acquire_owned()
                    .await
                    .expect("the sync slot is never closed"),
            };
            let l = Arc::clone(&log);
            tokio::spawn(async move {
                let syncing = Arc::clone(&l);
                let synced = tokio::task::spawn_blocking(move || syncing.sync(Some(end))).await;
                answer(&l, replies, synced.map(|r| r.map(|()| acks)));
                drop(permit);
            });
            continue;
        }
        let sync = match config.policy {
            FsyncPolicy::Always => true,
            FsyncPolicy::Interval(period) => last_sync.elapsed() >= period,
            FsyncPolicy::Never => false,
        };
        let l = Arc::clone(&log);
        let result = tokio::task::spawn_blocking(move || {
            if !sync {
                return l.write(&mut batches, Timestamp::now(), Publish::Now);
            }
            let acks = l.write(&mut batches, Timestamp::now(), Publish::AfterSync)?;
            if let Some(last) = acks.last() {
                l.sync(Some(last.next_sequence()))?;
            }
            Ok(acks)
        })
        .await;
        if sync {
            last_sync = Instant::now();
            dirty = false;
        } else {
            dirty = true;
        }
        answer(&log, replies, result);
    }
    // The last round's sync finishes (and acknowledges) before the log closes.
    let _last = sync_slot.acquire().await;
    let l = Arc::clone(&log);
    if let Ok(Err(e)) = tokio::task::spawn_blocking(move || l.close()).await {
        tracing::error!(error = %e, "final sync failed");
    }
}

/// Moves queued jobs into the round until it holds `max_bytes` or the queue is empty.
fn drain(rx: &mut mpsc::Receiver<Job>, jobs: &mut Vec<Job>, bytes: &mut usize, max_bytes: usize) {
    while *bytes < max_bytes {
        match rx.try_recv() {
            Ok(job) => {
                *bytes += job.batch.frame_len();
                jobs.push(job);
            }
            Err(_) => break,
        }
    }
}

/// Sends each waiter of a round its ack, or the round's error.
fn answer(
    log: &ShardLog,
    replies: Vec<oneshot::Sender<Result<AppendAck, StorageError>>>,
    result: Result<Result<Vec<AppendAck>, StorageError>, tokio::task::JoinError>,
) {
    match result {
        Ok(Ok(acks)) => {
            for (reply, ack) in replies.into_iter().zip(acks) {
                let _ = reply.send(Ok(ack));
            }
        }
        Ok(Err(e)) => {
            for reply in replies {
                let _ = reply.send(Err(e.duplicate()));
            }
        }
        Err(join) => {
            tracing::error!(error = %join, "append task failed");
            let cause = Arc::new(std::io::Error::other(join));
            for reply in replies {
                let _ = reply.send(Err(StorageError::Poisoned {
                    dir: log.dir().to_owned(),
                    op: "run the append task of",
                    path: log.dir().to_owned(),
                    cause: Arc::clone(&cause),
                }));
            }
        }
    }
}
