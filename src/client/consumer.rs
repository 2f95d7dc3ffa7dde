//! `GroupConsumer`: the reference consumer of a consumer group — join, heartbeat, read every
//! leased shard from its checkpoint, hand records to the application, checkpoint, follow
//! rebalances, leave on stop.
//!
//! ```text
//!            join ──▶ leases ──▶ reconcile: stop workers of lost shards,
//!             ▲                             start workers of gained shards
//!   NOT_FOUND │                                   │
//!          heartbeat ◀── every heartbeat interval ┘
//!
//!   worker (one per leased shard):
//!     iterator at checkpoint ─▶ GetRecords ─▶ handler(batch) ─▶ CommitCheckpoint(epoch) ─┐
//!                 ▲                                                                       │
//!                 └───────────────────────────────────────────────────────────────────────┘
//!     FAILED_PRECONDITION on commit: the lease went to another member → the worker ends
//! ```
//!
//! Delivery is at least once: a checkpoint is committed only after the handler returned, so a
//! batch whose handler ran but whose commit was lost (crash, lease moved) is handed again, to
//! this member or to the shard's next owner. Handlers should be idempotent.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::{sleep, sleep_until, Instant};
use tonic::Code;

use super::{Client, ClientError, Membership, Position};
use crate::proto::v1::{Record, ShardLease};

/// Default most records asked for per `GetRecords`.
pub const DEFAULT_POLL_LIMIT: u32 = 1000;
/// Default pause after a `GetRecords` that returned nothing, before asking again.
pub const DEFAULT_IDLE_WAIT: Duration = Duration::from_millis(200);
/// Floor of the heartbeat interval, whatever the server says: a zero would spin.
pub const MIN_HEARTBEAT_INTERVAL: Duration = Duration::from_millis(50);

/// What a record handler may fail with.
pub type HandlerError = Box<dyn std::error::Error + Send + Sync>;

/// Settings of a [`GroupConsumer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerConfig {
    /// The stream, group and member id this consumer joins as.
    pub membership: Membership,
    /// How long the server keeps the membership without a heartbeat; `None` takes the
    /// server's default.
    pub session_timeout: Option<Duration>,
    /// Most records per `GetRecords` (default [`DEFAULT_POLL_LIMIT`]).
    pub poll_limit: u32,
    /// Pause after an empty read (default [`DEFAULT_IDLE_WAIT`]).
    pub idle_wait: Duration,
    /// Only records matching this filter reach the handler (an EventBridge pattern on the data
    /// or the attributes); the others are skipped by the server.
    pub filter: Option<crate::proto::v1::Filter>,
}

impl ConsumerConfig {
    /// Defaults for everything but who joins.
    pub fn new(membership: Membership) -> Self {
        ConsumerConfig {
            membership,
            session_timeout: None,
            poll_limit: DEFAULT_POLL_LIMIT,
            idle_wait: DEFAULT_IDLE_WAIT,
            filter: None,
        }
    }
}

/// A member id unlikely to collide with another process's: `member-` and 16 random hex digits.
/// A process that wants its shards back after a restart should pass a stable id instead.
pub fn random_member_id() -> String {
    let mut bytes = [0u8; 8];
    match getrandom::fill(&mut bytes) {
        Ok(()) => format!("member-{:016x}", u64::from_le_bytes(bytes)),
        // Without an entropy source, the process id still separates members on one machine.
        Err(_) => format!("member-pid-{}", std::process::id()),
    }
}

/// Records of one shard, handed to the handler in sequence order.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// The shard the records come from.
    pub shard_id: String,
    /// The epoch of the lease they were read under.
    pub lease_epoch: u64,
    /// The records; never empty.
    pub records: Vec<Record>,
    /// How far this read is behind the shard's newest record, in milliseconds.
    pub millis_behind_latest: i64,
}

/// Why a [`GroupConsumer`] stopped before being asked to.
#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    /// Joining the group failed (the stream does not exist, the server is unreachable, …).
    #[error("joining the group failed")]
    Join(#[source] ClientError),
    /// The handler returned an error; the batch it failed on was not checkpointed.
    #[error("the record handler failed on {shard_id}")]
    Handler {
        /// The shard of the batch.
        shard_id: String,
        /// The handler's error.
        #[source]
        source: HandlerError,
    },
    /// The worker of a shard panicked (in the handler, most likely).
    #[error("the worker of {shard_id} panicked")]
    WorkerPanicked {
        /// The shard the worker read.
        shard_id: String,
        /// The panic, as the task's join error.
        #[source]
        source: tokio::task::JoinError,
    },
}

/// How a shard worker ended.
#[derive(Debug)]
enum WorkerExit {
    /// Asked to stop: the shard was lost in a rebalance, or the consumer is stopping.
    Stopped,
    /// A checkpoint was refused with `FAILED_PRECONDITION`: another member holds the lease now.
    LeaseLost,
    /// The shard is closed and was read to its end.
    ShardEnded,
    /// A call failed; the worker is started again at the next heartbeat if the lease remains.
    Failed(ClientError),
    /// The handler failed; the consumer stops.
    HandlerFailed(HandlerError),
}

/// Consumes a stream as one member of a consumer group. See the module documentation.
#[derive(Debug, Clone)]
pub struct GroupConsumer {
    client: Client,
    config: Arc<ConsumerConfig>,
}

impl GroupConsumer {
    /// A consumer of `config`'s group that talks to the server through `client`; it joins
    /// when run.
    pub fn new(client: Client, config: ConsumerConfig) -> Self {
        GroupConsumer {
            client,
            config: Arc::new(config),
        }
    }

    /// Runs until `stop` resolves (then finishes the batches in hand, commits them, and leaves
    /// the group) or until the handler fails.
    ///
    /// `handler` is called with each batch of each leased shard; batches of one shard come one
    /// at a time in order, batches of different shards concurrently.
    pub async fn run<H, Fut, E>(
        self,
        handler: H,
        stop: impl Future<Output = ()>,
    ) -> Result<(), ConsumerError>
    where
        H: Fn(Batch) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<HandlerError> + 'static,
    {
        let mut stop = std::pin::pin!(stop);
        let member = &self.config.membership;
        let mut workers = Workers::new(self.client.clone(), Arc::clone(&self.config), handler);
        let (mut leases, mut interval) = self.join().await?;
        workers.reconcile(&leases);
        let mut next_heartbeat = Instant::now() + interval;

        let outcome = loop {
            tokio::select! {
                () = &mut stop => break Ok(()),
                () = sleep_until(next_heartbeat) => {
                    match self.client.heartbeat(member).await {
                        Ok(response) => {
                            leases = response.assignments;
                            interval = heartbeat_interval(response.heartbeat_interval_ms);
                        }
                        Err(e) if e.code() == Some(Code::NotFound) => {
                            tracing::warn!(member = %member.member_id, "membership expired; joining again");
                            (leases, interval) = match self.join().await {
                                Ok(joined) => joined,
                                Err(e) => break Err(e),
                            };
                        }
                        // A missed heartbeat is not fatal: the session outlives a few of them.
                        Err(e) => tracing::warn!(error = %e, "heartbeat failed; retrying"),
                    }
                    next_heartbeat = Instant::now() + interval;
                    // Workers start only here (and after joining), so a shard whose worker keeps
                    // failing is retried once per heartbeat, not in a tight loop.
                    workers.reconcile(&leases);
                }
                Some(ended) = workers.next_ended() => {
                    if let Err(e) = ended {
                        break Err(e);
                    }
                }
            }
        };

        // Let every worker finish (and checkpoint) the batch in hand, then leave, so the group
        // hands this member's shards to the others at once instead of after the session timeout.
        workers.stop_all().await;
        if let Err(e) = self.client.leave_group(member).await {
            tracing::warn!(error = %e, "leaving the group failed; the session will expire instead");
        }
        outcome
    }

    async fn join(&self) -> Result<(Vec<ShardLease>, Duration), ConsumerError> {
        let response = self
            .client
            .join_group(&self.config.membership, self.config.session_timeout)
            .await
            .map_err(ConsumerError::Join)?;
        tracing::info!(
            member = %self.config.membership.member_id,
            shards = response.assignments.len(),
            "joined group"
        );
        Ok((
            response.assignments,
            heartbeat_interval(response.heartbeat_interval_ms),
        ))
    }
}

/// The server's heartbeat interval, floored so a zero cannot spin.
fn heartbeat_interval(ms: u32) -> Duration {
    Duration::from_millis(u64::from(ms)).max(MIN_HEARTBEAT_INTERVAL)
}

/// The shard workers of one consumer: one task per leased shard, each known by its lease.
struct Workers<H> {
    client: Client,
    config: Arc<ConsumerConfig>,
    handler: Arc<H>,
    /// The worker of each leased shard: its lease epoch and its stop signal.
    running: HashMap<String, (u64, watch::Sender<bool>)>,
    tasks: JoinSet<WorkerExit>,
    /// Shard and epoch of every task still in `tasks`, including stopped workers that have not
    /// finished yet; a task that panics is named through it.
    task_leases: HashMap<tokio::task::Id, (String, u64)>,
    /// Closed shards read to their end, with the epoch: not restarted under the same lease.
    ended: HashSet<(String, u64)>,
}

impl<H, Fut, E> Workers<H>
where
    H: Fn(Batch) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Into<HandlerError> + 'static,
{
    fn new(client: Client, config: Arc<ConsumerConfig>, handler: H) -> Self {
        Workers {
            client,
            config,
            handler: Arc::new(handler),
            running: HashMap::new(),
            tasks: JoinSet::new(),
            task_leases: HashMap::new(),
            ended: HashSet::new(),
        }
    }

    /// Makes the running workers match `leases`: one worker per leased shard, under the lease's
    /// epoch. A shard leased again under a new epoch was lost and regained in between, so its
    /// worker restarts from the (possibly newer) checkpoint.
    fn reconcile(&mut self, leases: &[ShardLease]) {
        self.running.retain(|shard_id, (epoch, stop)| {
            let kept = leases
                .iter()
                .any(|l| &l.shard_id == shard_id && l.lease_epoch == *epoch);
            if !kept {
                tracing::info!(shard = %shard_id, "shard no longer leased; stopping its worker");
                stop.send_replace(true);
            }
            kept
        });
        for lease in leases {
            let key = (lease.shard_id.clone(), lease.lease_epoch);
            if self.running.contains_key(&lease.shard_id) || self.ended.contains(&key) {
                continue;
            }
            tracing::info!(shard = %lease.shard_id, epoch = lease.lease_epoch, checkpoint = ?lease.checkpoint, "starting shard worker");
            let (stop, stopped) = watch::channel(false);
            let worker = ShardWorker {
                client: self.client.clone(),
                config: Arc::clone(&self.config),
                lease: lease.clone(),
            };
            let task = self
                .tasks
                .spawn(worker.run(Arc::clone(&self.handler), stopped));
            self.task_leases.insert(task.id(), key);
            self.running
                .insert(lease.shard_id.clone(), (lease.lease_epoch, stop));
        }
    }

    /// Waits for the next worker to end and accounts for it. `None` when none is running;
    /// an error when the consumer must stop (the handler failed or panicked).
    async fn next_ended(&mut self) -> Option<Result<(), ConsumerError>> {
        let joined = self.tasks.join_next_with_id().await?;
        let task = match &joined {
            Ok((task, _)) => *task,
            Err(e) => e.id(),
        };
        // Every spawned task is recorded in `task_leases` (see `reconcile`), so the lookup
        // finds it; the empty fallback only keeps a broken invariant from panicking here.
        let (shard_id, epoch) = self.task_leases.remove(&task).unwrap_or_default();
        if self
            .running
            .get(&shard_id)
            .is_some_and(|(e, _)| *e == epoch)
        {
            self.running.remove(&shard_id);
        }
        let exit = match joined {
            Ok((_, exit)) => exit,
            Err(source) => return Some(Err(ConsumerError::WorkerPanicked { shard_id, source })),
        };
        Some(match exit {
            WorkerExit::Stopped => Ok(()),
            WorkerExit::LeaseLost => {
                tracing::info!(shard = %shard_id, epoch, "lease lost to another member");
                Ok(())
            }
            WorkerExit::ShardEnded => {
                tracing::info!(shard = %shard_id, "closed shard read to its end");
                self.ended.insert((shard_id, epoch));
                Ok(())
            }
            WorkerExit::Failed(e) => {
                tracing::warn!(shard = %shard_id, error = %e, "shard worker failed; restarting it at the next heartbeat");
                Ok(())
            }
            WorkerExit::HandlerFailed(source) => Err(ConsumerError::Handler { shard_id, source }),
        })
    }

    /// Stops every worker and waits until each has finished the batch in hand.
    async fn stop_all(&mut self) {
        for (_, stop) in self.running.values() {
            stop.send_replace(true);
        }
        while let Some(ended) = self.next_ended().await {
            if let Err(e) = ended {
                tracing::warn!(error = %e, "shard worker failed while stopping");
            }
        }
    }
}

/// Reads one leased shard and checkpoints it.
struct ShardWorker {
    client: Client,
    config: Arc<ConsumerConfig>,
    lease: ShardLease,
}

impl ShardWorker {
    /// Checkpoints a closed shard at its last record, unless `position` (where the worker
    /// checkpointed last) is there already. A shard that never held a record needs none.
    async fn checkpoint_shard_end(&self, position: Position) -> Result<(), ClientError> {
        let stream = &self.config.membership.stream;
        let shard_id = &self.lease.shard_id;
        let shards = self.client.list_shards(stream).await?;
        // The end a closed shard reports is one past its last record.
        let Some(last) = shards
            .iter()
            .find(|s| &s.shard_id == shard_id)
            .and_then(|s| s.ending_sequence_number)
            .and_then(|end| end.checked_sub(1))
        else {
            return Ok(());
        };
        if matches!(position, Position::AfterSequence(at) if at >= last) {
            return Ok(());
        }
        let membership = &self.config.membership;
        self.client
            .commit_checkpoint(membership, shard_id, self.lease.lease_epoch, last)
            .await
    }

    async fn run<H, Fut, E>(self, handler: Arc<H>, mut stop: watch::Receiver<bool>) -> WorkerExit
    where
        H: Fn(Batch) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<HandlerError> + 'static,
    {
        let stream = &self.config.membership.stream;
        let shard_id = &self.lease.shard_id;
        // Resume right after the group's checkpoint; a shard never checkpointed starts at the
        // oldest retained record.
        let mut position = self
            .lease
            .checkpoint
            .map_or(Position::TrimHorizon, Position::AfterSequence);
        let mut iterator = match self
            .client
            .get_shard_iterator_filtered(stream, shard_id, position, self.config.filter.clone())
            .await
        {
            Ok(iterator) => iterator,
            Err(e) => return WorkerExit::Failed(e),
        };
        loop {
            let read = tokio::select! {
                _ = stop.changed() => return WorkerExit::Stopped,
                read = self.client.get_records(&iterator, self.config.poll_limit) => read,
            };
            let read = match read {
                Ok(read) => read,
                // The iterator expired (a slow handler outlived it): take a new one where we are.
                Err(e) if e.code() == Some(Code::FailedPrecondition) => {
                    match self
                        .client
                        .get_shard_iterator_filtered(
                            stream,
                            shard_id,
                            position,
                            self.config.filter.clone(),
                        )
                        .await
                    {
                        Ok(fresh) => {
                            iterator = fresh;
                            continue;
                        }
                        Err(e) => return WorkerExit::Failed(e),
                    }
                }
                Err(e) => return WorkerExit::Failed(e),
            };
            if let Some(last) = read.records.last().map(|r| r.sequence_number) {
                let batch = Batch {
                    shard_id: shard_id.clone(),
                    lease_epoch: self.lease.lease_epoch,
                    records: read.records,
                    millis_behind_latest: read.millis_behind_latest,
                };
                if let Err(e) = handler(batch).await {
                    return WorkerExit::HandlerFailed(e.into());
                }
                let membership = &self.config.membership;
                let epoch = self.lease.lease_epoch;
                match self
                    .client
                    .commit_checkpoint(membership, shard_id, epoch, last)
                    .await
                {
                    Ok(()) => position = Position::AfterSequence(last),
                    Err(e) if e.code() == Some(Code::FailedPrecondition) => {
                        return WorkerExit::LeaseLost
                    }
                    Err(e) => return WorkerExit::Failed(e),
                }
            } else {
                tokio::select! {
                    _ = stop.changed() => return WorkerExit::Stopped,
                    () = sleep(self.config.idle_wait) => {}
                }
            }
            if read.next_shard_iterator.is_empty() {
                // With a filter the shard's last records may not have come: the group is
                // done with the shard (and leases its children) only at its last record.
                return match self.checkpoint_shard_end(position).await {
                    Ok(()) => WorkerExit::ShardEnded,
                    Err(e) if e.code() == Some(Code::FailedPrecondition) => WorkerExit::LeaseLost,
                    Err(e) => WorkerExit::Failed(e),
                };
            }
            iterator = read.next_shard_iterator;
        }
    }
}
