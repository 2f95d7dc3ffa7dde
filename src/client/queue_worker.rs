//! `QueueWorker`: the reference consumer of a queue group — receive with a long poll, hand each
//! message to the application, delete what it handled (one `DeleteMessages` per receive), make
//! what it failed on visible again at once, and keep the messages in hand invisible meanwhile.
//!
//! ```text
//!   ReceiveMessages(wait) ─▶ lanes: FIFO one per message group, in order; standard one per message
//!          ▲                   │ up to `concurrency` handlers at once, at most one per lane
//!          │                   ▼
//!          │        handler Ok  ─▶ kept for the delete
//!          │        handler Err ─▶ ChangeMessageVisibility(0) on it and on the rest of its lane
//!          │                   │ every lane done (or stopping: running handlers done, the
//!          │                   ▼ messages not started made visible again)
//!          └────────── DeleteMessages(every message handled from this receive)
//!
//!   every `extend_every` while a receive's messages are in hand:
//!       ChangeMessageVisibility(extend_by) on each message neither made visible again nor deleted
//! ```
//!
//! Delivery is at least once: a message is deleted only after its handler returned `Ok`, so a
//! message whose delete was lost (crash, visibility ran out first) is handed again, to this
//! worker or another. Handlers should be idempotent.
//!
//! FIFO order holds across workers because the server hands out no message of a group while
//! an earlier one is in flight; within one receive, the worker keeps it by running a group's
//! messages one after the other and, when one fails, making the rest of the group visible
//! again unhandled, so the failed one is received (first) again.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{interval_at, sleep, Instant, Interval, MissedTickBehavior};
use tonic::Code;

use super::consumer::{HandlerError, DEFAULT_IDLE_WAIT};
use super::{Client, ClientError};
use crate::proto::v1::{GroupType, Message};

/// Default most messages asked for per `ReceiveMessages` (SQS's most).
pub const DEFAULT_RECEIVE_MAX_MESSAGES: u32 = 10;
/// Default long-poll wait of a receive: the server's longest (20 s).
pub const DEFAULT_RECEIVE_WAIT: Duration = Duration::from_secs(20);
/// Default number of messages handled at once.
pub const DEFAULT_HANDLER_CONCURRENCY: usize = 1;
/// Default visibility each extension gives a message in hand, counted from the extension.
pub const DEFAULT_VISIBILITY_EXTENSION: Duration = Duration::from_secs(30);
/// Default pause after a receive failed with a status a retry can help (the server is
/// restarting, the connection dropped), before receiving again.
pub const DEFAULT_RECEIVE_RETRY_BACKOFF: Duration = Duration::from_secs(1);
/// The server counts visibility timeouts in whole seconds: a shorter one is zero, which makes
/// a message visible at once.
const VISIBILITY_GRANULARITY: Duration = Duration::from_secs(1);

/// Settings of a [`QueueWorker`]. Every field but the names has a `DEFAULT_*` constant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueWorkerConfig {
    /// The stream of the queue group.
    pub stream: String,
    /// The queue group (FIFO or standard), created beforehand.
    pub group: String,
    /// Most messages per receive, 1 to the server's cap (default
    /// [`DEFAULT_RECEIVE_MAX_MESSAGES`]).
    pub max_messages: u32,
    /// How long a receive waits for a message when none is available, up to the server's cap
    /// of 20 s (default [`DEFAULT_RECEIVE_WAIT`]). With zero, an empty receive is followed by
    /// a pause of [`DEFAULT_IDLE_WAIT`] so the worker does not spin.
    pub wait: Duration,
    /// How long received messages stay invisible, in whole seconds, at least 1 s; `None` takes
    /// the group's visibility timeout.
    pub visibility: Option<Duration>,
    /// While the messages of a receive are in hand, extend their visibility this often;
    /// `None` never extends. Set it when a handler (or a whole receive's worth of handlers)
    /// can outlast the visibility timeout; otherwise the message is handed to another
    /// worker meanwhile.
    pub extend_every: Option<Duration>,
    /// The visibility each extension sets, counted from the extension, in whole seconds; it
    /// must be longer than `extend_every` (default [`DEFAULT_VISIBILITY_EXTENSION`]).
    pub extend_by: Duration,
    /// Messages handled at once, at least 1 (default [`DEFAULT_HANDLER_CONCURRENCY`]). The
    /// messages of one FIFO message group are handled one at a time whatever this says.
    pub concurrency: usize,
    /// Pause before receiving again after a receive failed with a status a retry can help
    /// (default [`DEFAULT_RECEIVE_RETRY_BACKOFF`]).
    pub retry_backoff: Duration,
}

impl QueueWorkerConfig {
    /// Defaults for everything but which group is consumed.
    pub fn new(stream: impl Into<String>, group: impl Into<String>) -> Self {
        QueueWorkerConfig {
            stream: stream.into(),
            group: group.into(),
            max_messages: DEFAULT_RECEIVE_MAX_MESSAGES,
            wait: DEFAULT_RECEIVE_WAIT,
            visibility: None,
            extend_every: None,
            extend_by: DEFAULT_VISIBILITY_EXTENSION,
            concurrency: DEFAULT_HANDLER_CONCURRENCY,
            retry_backoff: DEFAULT_RECEIVE_RETRY_BACKOFF,
        }
    }

    /// Checks the settings the worker itself depends on; the server checks the rest (the
    /// caps of `max_messages` and `wait`) on the first receive.
    pub fn validate(&self) -> Result<(), QueueWorkerError> {
        let invalid =
            |setting, problem: String| Err(QueueWorkerError::InvalidConfig { setting, problem });
        if self.max_messages == 0 {
            return invalid("max_messages", "0; a receive takes at least 1".into());
        }
        if self.concurrency == 0 {
            return invalid("concurrency", "0; no message would ever be handled".into());
        }
        if let Some(v) = self.visibility.filter(|v| *v < VISIBILITY_GRANULARITY) {
            return invalid(
                "visibility",
                format!("{v:?}; at least 1 s, or a received message is visible again at once"),
            );
        }
        if let Some(every) = self.extend_every {
            if every.is_zero() {
                return invalid("extend_every", "0; use None to never extend".into());
            }
            if self.extend_by < VISIBILITY_GRANULARITY || self.extend_by <= every {
                return invalid(
                    "extend_by",
                    format!(
                        "{:?}; at least 1 s and longer than extend_every ({every:?}), or a \
                         message is visible between two extensions",
                        self.extend_by
                    ),
                );
            }
        }
        Ok(())
    }
}

/// What a [`QueueWorker`] did before it stopped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueWorkerStats {
    /// Messages whose handler returned `Ok`.
    pub handled: u64,
    /// Messages whose handler failed (or panicked); each was made visible again.
    pub failed: u64,
    /// Handled messages the delete did not remove (the handle had expired, or the call
    /// failed): they will be received again.
    pub not_deleted: u64,
    /// Messages received but never handed to the handler, made visible again: the worker
    /// was stopping, or an earlier message of their FIFO group failed.
    pub released: u64,
}

/// Why a [`QueueWorker`] stopped before being asked to, or did not start.
#[derive(Debug, thiserror::Error)]
pub enum QueueWorkerError {
    /// A setting of [`QueueWorkerConfig`] is out of range.
    #[error("invalid queue worker setting {setting}: {problem}")]
    InvalidConfig {
        /// The field.
        setting: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// Describing the group, to learn its type, failed.
    #[error("when describing group {group} of stream {stream}")]
    Describe {
        /// The stream.
        stream: String,
        /// The group.
        group: String,
        /// The failed call.
        #[source]
        source: ClientError,
    },
    /// The group is a shard-lease group: [`super::GroupConsumer`] consumes those.
    #[error("group {group} of stream {stream} is a shard-lease group, not a queue group")]
    NotAQueue {
        /// The stream.
        stream: String,
        /// The group.
        group: String,
    },
    /// A receive failed with a status a retry cannot help (the group was deleted, a setting
    /// is past the server's cap, …).
    #[error("when receiving from group {group} of stream {stream}")]
    Receive {
        /// The stream.
        stream: String,
        /// The group.
        group: String,
        /// The failed call.
        #[source]
        source: ClientError,
    },
    /// The handler panicked; the message was made visible again and the worker stopped after
    /// the rest of its receive.
    #[error("the handler panicked on record {sequence_number} of {shard_id}")]
    HandlerPanicked {
        /// The message's shard.
        shard_id: String,
        /// The message's sequence number.
        sequence_number: u64,
        /// The panic, as the task's join error.
        #[source]
        source: tokio::task::JoinError,
    },
}

/// Consumes a queue group. See the module documentation.
#[derive(Debug, Clone)]
pub struct QueueWorker {
    client: Client,
    config: Arc<QueueWorkerConfig>,
}

impl QueueWorker {
    /// A worker of `config`'s group that talks to the server through `client`.
    pub fn new(client: Client, config: QueueWorkerConfig) -> Self {
        QueueWorker {
            client,
            config: Arc::new(config),
        }
    }

    /// Runs until `stop` resolves, then lets the handlers running finish, deletes what they
    /// handled, makes the messages not started visible again, and returns what it did. A
    /// handler's error does not stop the worker: the message is made visible again and
    /// received anew. A receive in progress when `stop` resolves is abandoned; whatever the
    /// server handed out in it is received again after its visibility timeout.
    pub async fn run<H, Fut, E>(
        self,
        handler: H,
        stop: impl Future<Output = ()>,
    ) -> Result<QueueWorkerStats, QueueWorkerError>
    where
        H: Fn(Message) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<HandlerError> + 'static,
    {
        self.config.validate()?;
        let ordered = self.ordered().await?;
        let handler = Arc::new(handler);
        let mut stop = std::pin::pin!(stop);
        let mut stopping = false;
        let mut stats = QueueWorkerStats::default();
        let config = &self.config;
        while !stopping {
            let received = tokio::select! {
                () = stop.as_mut() => break,
                received = self.client.receive_messages(
                    &config.stream,
                    &config.group,
                    config.max_messages,
                    config.visibility,
                    config.wait,
                ) => received,
            };
            let messages = match received {
                Ok(messages) => messages,
                Err(e) if retryable(&e) => {
                    tracing::warn!(error = %e, "receive failed; retrying");
                    tokio::select! {
                        () = stop.as_mut() => break,
                        () = sleep(config.retry_backoff) => continue,
                    }
                }
                Err(source) => {
                    return Err(QueueWorkerError::Receive {
                        stream: config.stream.clone(),
                        group: config.group.clone(),
                        source,
                    })
                }
            };
            if messages.is_empty() {
                if config.wait.is_zero() {
                    tokio::select! {
                        () = stop.as_mut() => break,
                        () = sleep(DEFAULT_IDLE_WAIT) => {}
                    }
                }
                continue;
            }
            let in_hand = InHand::new(messages, ordered);
            let outcome = in_hand
                .work(
                    self.client.clone(),
                    config,
                    &handler,
                    stop.as_mut(),
                    &mut stopping,
                )
                .await;
            stats.handled += outcome.stats.handled;
            stats.failed += outcome.stats.failed;
            stats.not_deleted += outcome.stats.not_deleted;
            stats.released += outcome.stats.released;
            if let Some(panic) = outcome.panic {
                return Err(panic);
            }
        }
        Ok(stats)
    }

    /// Whether the group is FIFO (its message groups are handled in order); an error for a
    /// lease group.
    async fn ordered(&self) -> Result<bool, QueueWorkerError> {
        let described = self
            .client
            .describe_group(&self.config.stream, &self.config.group)
            .await
            .map_err(|source| QueueWorkerError::Describe {
                stream: self.config.stream.clone(),
                group: self.config.group.clone(),
                source,
            })?;
        match GroupType::try_from(described.r#type) {
            Ok(GroupType::QueueFifo) => Ok(true),
            Ok(GroupType::QueueStandard) => Ok(false),
            // An unknown type is a newer server's; only a queue has the `queue` status.
            Ok(GroupType::ShardLeases) | Err(_) if described.queue.is_none() => {
                Err(QueueWorkerError::NotAQueue {
                    stream: self.config.stream.clone(),
                    group: self.config.group.clone(),
                })
            }
            // A queue of a type this client does not know: order kept, to be safe.
            Ok(GroupType::ShardLeases) | Err(_) => Ok(true),
        }
    }
}

/// Whether a failed receive may succeed if tried again.
fn retryable(error: &ClientError) -> bool {
    matches!(
        error.code(),
        Some(
            Code::Unavailable
                | Code::Unknown
                | Code::DeadlineExceeded
                | Code::ResourceExhausted
                | Code::Aborted
        )
    )
}

/// Which messages of one receive must be handled one after the other: a FIFO message group
/// (its id, or its partition key without one) within its shard, as the server groups them.
#[derive(Debug, PartialEq, Eq, Hash)]
enum LaneKey<'a> {
    Group { shard: &'a str, id: &'a str },
    Key { shard: &'a str, key: &'a str },
    Alone(usize),
}

fn lane_key(index: usize, message: &Message, ordered: bool) -> LaneKey<'_> {
    let shard = message.shard_id.as_str();
    match &message.record {
        Some(r) if ordered && !r.message_group_id.is_empty() => LaneKey::Group {
            shard,
            id: &r.message_group_id,
        },
        Some(r) if ordered => LaneKey::Key {
            shard,
            key: &r.partition_key,
        },
        _ => LaneKey::Alone(index),
    }
}

/// The message a handler task works on, by what names it.
#[derive(Debug)]
struct Running {
    lane: usize,
    receipt_handle: String,
    shard_id: String,
    sequence_number: u64,
}

/// What handling one receive came to.
#[derive(Debug, Default)]
struct Outcome {
    stats: QueueWorkerStats,
    /// The first handler panic, which stops the worker.
    panic: Option<QueueWorkerError>,
}

/// The messages of one receive while the worker holds them.
///
/// Invariant: every message received is in exactly one of `lanes` (not started), the tasks of
/// `running`, `handled` (to delete), or nowhere once made visible again; `held` lists the
/// handles of the first three, the ones an extension keeps invisible.
#[derive(Debug)]
struct InHand {
    lanes: Vec<VecDeque<Message>>,
    /// Lanes whose next message may start: none of theirs is running.
    ready: VecDeque<usize>,
    running: JoinSet<Result<(), HandlerError>>,
    tasks: HashMap<tokio::task::Id, Running>,
    handled: Vec<String>,
    held: Vec<String>,
    outcome: Outcome,
}

impl InHand {
    fn new(messages: Vec<Message>, ordered: bool) -> Self {
        let held = messages.iter().map(|m| m.receipt_handle.clone()).collect();
        let (placement, count) = {
            let mut index_of: HashMap<LaneKey<'_>, usize> = HashMap::new();
            let placement: Vec<usize> = messages
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    let next = index_of.len();
                    *index_of.entry(lane_key(i, m, ordered)).or_insert(next)
                })
                .collect();
            (placement, index_of.len())
        };
        let mut lanes: Vec<VecDeque<Message>> = Vec::new();
        lanes.resize_with(count, VecDeque::new);
        for (lane, message) in placement.into_iter().zip(messages) {
            lanes[lane].push_back(message);
        }
        InHand {
            ready: (0..lanes.len()).collect(),
            lanes,
            running: JoinSet::new(),
            tasks: HashMap::new(),
            handled: Vec::new(),
            held,
            outcome: Outcome::default(),
        }
    }

    /// Handles every message (or, once `stop` resolves, the running ones), deletes the
    /// handled ones, and makes the rest visible again.
    async fn work<H, Fut, E>(
        mut self,
        client: Client,
        config: &QueueWorkerConfig,
        handler: &Arc<H>,
        mut stop: Pin<&mut impl Future<Output = ()>>,
        stopping: &mut bool,
    ) -> Outcome
    where
        H: Fn(Message) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<HandlerError> + 'static,
    {
        let queue = Queue {
            client,
            stream: config.stream.clone(),
            group: config.group.clone(),
        };
        let mut ticker = config.extend_every.map(|every| {
            let mut ticker = interval_at(Instant::now() + every, every);
            ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
            ticker
        });
        // The extension round in progress: awaited before any message is made visible again
        // or deleted, so that no extension lands after it and hides the message anew.
        let mut extension: Option<JoinHandle<()>> = None;
        loop {
            if !*stopping {
                self.start(handler, config.concurrency);
            }
            if self.running.is_empty() && (*stopping || self.ready.is_empty()) {
                break;
            }
            tokio::select! {
                () = stop.as_mut(), if !*stopping => *stopping = true,
                Some(joined) = self.running.join_next_with_id() => {
                    let (id, result) = match joined {
                        Ok((id, result)) => (id, Ok(result)),
                        Err(e) => (e.id(), Err(e)),
                    };
                    // Every task is recorded when spawned (see `start`).
                    let Some(task) = self.tasks.remove(&id) else { continue };
                    match result {
                        Ok(Ok(())) => {
                            self.outcome.stats.handled += 1;
                            self.handled.push(task.receipt_handle);
                            self.ready.push_back(task.lane);
                        }
                        Ok(Err(error)) => {
                            tracing::warn!(shard = %task.shard_id, sequence = task.sequence_number, error = %error, "handler failed; the message will be received again");
                            self.failed(&queue, task, &mut extension).await;
                        }
                        Err(source) => {
                            tracing::error!(shard = %task.shard_id, sequence = task.sequence_number, "handler panicked; the message will be received again");
                            if self.outcome.panic.is_none() {
                                self.outcome.panic = Some(QueueWorkerError::HandlerPanicked {
                                    shard_id: task.shard_id.clone(),
                                    sequence_number: task.sequence_number,
                                    source,
                                });
                            }
                            // A panic stops the worker; nothing more of this receive starts.
                            *stopping = true;
                            self.failed(&queue, task, &mut extension).await;
                        }
                    }
                }
                () = tick(&mut ticker) => {
                    // A round still going when the next is due (a slow server) is left to
                    // finish: the next tick extends again.
                    if extension.as_ref().is_none_or(JoinHandle::is_finished) {
                        extension = Some(tokio::spawn(queue.clone().extend(self.held.clone(), config.extend_by)));
                    }
                }
                // Unreachable: the loop ends above when no handler runs, and a running one
                // keeps the join branch enabled.
                else => break,
            }
        }
        finish_extension(&mut extension).await;
        let unstarted: Vec<String> = self
            .lanes
            .iter_mut()
            .flat_map(|lane| lane.drain(..))
            .map(|m| m.receipt_handle)
            .collect();
        self.outcome.stats.released += unstarted.len() as u64;
        queue.release(&unstarted).await;
        self.outcome.stats.not_deleted += queue.delete(self.handled).await;
        self.outcome
    }

    /// Starts the next message of ready lanes while fewer than `concurrency` run.
    fn start<H, Fut, E>(&mut self, handler: &Arc<H>, concurrency: usize)
    where
        H: Fn(Message) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<HandlerError> + 'static,
    {
        while self.running.len() < concurrency {
            let Some(lane) = self.ready.pop_front() else {
                return;
            };
            let Some(message) = self.lanes[lane].pop_front() else {
                continue;
            };
            let running = Running {
                lane,
                receipt_handle: message.receipt_handle.clone(),
                shard_id: message.shard_id.clone(),
                sequence_number: message.record.as_ref().map_or(0, |r| r.sequence_number),
            };
            let handler = Arc::clone(handler);
            let task = self
                .running
                .spawn(async move { handler(message).await.map_err(Into::into) });
            self.tasks.insert(task.id(), running);
        }
    }

    /// A handler failed: its message, and the rest of its lane unhandled, become visible
    /// again, in order.
    async fn failed(
        &mut self,
        queue: &Queue,
        task: Running,
        extension: &mut Option<JoinHandle<()>>,
    ) {
        self.outcome.stats.failed += 1;
        let rest: Vec<String> = self.lanes[task.lane]
            .drain(..)
            .map(|m| m.receipt_handle)
            .collect();
        self.outcome.stats.released += rest.len() as u64;
        let mut released = vec![task.receipt_handle];
        released.extend(rest);
        self.held.retain(|h| !released.contains(h));
        finish_extension(extension).await;
        queue.release(&released).await;
    }
}

/// The next tick of the extension ticker; never, without one.
async fn tick(ticker: &mut Option<Interval>) {
    match ticker {
        Some(ticker) => {
            ticker.tick().await;
        }
        None => std::future::pending().await,
    }
}

async fn finish_extension(extension: &mut Option<JoinHandle<()>>) {
    if let Some(round) = extension.take() {
        if let Err(e) = round.await {
            tracing::warn!(error = %e, "visibility extension task failed");
        }
    }
}

/// The calls on the messages of one group.
#[derive(Debug, Clone)]
struct Queue {
    client: Client,
    stream: String,
    group: String,
}

impl Queue {
    /// Sets the visibility of each message to `by` from now, all at once.
    async fn extend(self, handles: Vec<String>, by: Duration) {
        let queue = &self;
        let calls = handles.iter().map(|handle| async move {
            let changed = queue
                .client
                .change_message_visibility(&queue.stream, &queue.group, handle, by)
                .await;
            if let Err(e) = changed {
                // The message may be received elsewhere now; its delete will say so.
                tracing::warn!(error = %e, "extending a message's visibility failed");
            }
        });
        futures_util::future::join_all(calls).await;
    }

    /// Makes each message visible again at once, in order (a FIFO group's earliest first).
    async fn release(&self, handles: &[String]) {
        for handle in handles {
            let changed = self
                .client
                .change_message_visibility(&self.stream, &self.group, handle, Duration::ZERO)
                .await;
            if let Err(e) = changed {
                // It becomes visible anyway when its visibility timeout runs out.
                tracing::warn!(error = %e, "making a message visible again failed");
            }
        }
    }

    /// Deletes the handled messages in one call; returns how many were not deleted.
    async fn delete(&self, handles: Vec<String>) -> u64 {
        if handles.is_empty() {
            return 0;
        }
        let count = handles.len() as u64;
        match self
            .client
            .delete_messages(&self.stream, &self.group, handles)
            .await
        {
            Ok(results) => {
                let mut refused = 0;
                for r in results.iter().filter(|r| !r.error_code.is_empty()) {
                    refused += 1;
                    tracing::warn!(code = %r.error_code, message = %r.error_message, "a handled message was not deleted; it will be received again");
                }
                refused
            }
            Err(e) => {
                tracing::warn!(error = %e, messages = count, "deleting handled messages failed; they will be received again");
                count
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> QueueWorkerConfig {
        QueueWorkerConfig::new("orders", "workers")
    }

    fn refused_setting(config: &QueueWorkerConfig) -> Option<&'static str> {
        match config.validate() {
            Err(QueueWorkerError::InvalidConfig { setting, .. }) => Some(setting),
            Err(_) | Ok(()) => None,
        }
    }

    #[test]
    fn the_defaults_are_valid() {
        assert!(config().validate().is_ok());
    }

    #[test]
    fn settings_that_would_stall_or_spin_the_worker_are_refused_by_name() {
        let cases = [
            (
                QueueWorkerConfig {
                    concurrency: 0,
                    ..config()
                },
                "concurrency",
            ),
            (
                QueueWorkerConfig {
                    max_messages: 0,
                    ..config()
                },
                "max_messages",
            ),
            (
                QueueWorkerConfig {
                    visibility: Some(Duration::from_millis(500)),
                    ..config()
                },
                "visibility",
            ),
            (
                QueueWorkerConfig {
                    extend_every: Some(Duration::ZERO),
                    ..config()
                },
                "extend_every",
            ),
            (
                QueueWorkerConfig {
                    extend_every: Some(Duration::from_secs(2)),
                    extend_by: Duration::from_secs(2),
                    ..config()
                },
                "extend_by",
            ),
            (
                QueueWorkerConfig {
                    extend_every: Some(Duration::from_millis(200)),
                    extend_by: Duration::from_millis(900),
                    ..config()
                },
                "extend_by",
            ),
        ];
        for (config, setting) in cases {
            assert_eq!(refused_setting(&config), Some(setting), "{config:?}");
        }
    }

    fn message(shard: &str, group: &str, key: &str, handle: &str) -> Message {
        Message {
            record: Some(crate::proto::v1::Record {
                message_group_id: group.into(),
                partition_key: key.into(),
                ..Default::default()
            }),
            shard_id: shard.into(),
            receipt_handle: handle.into(),
            receive_count: 1,
        }
    }

    fn lanes(in_hand: &InHand) -> Vec<Vec<&str>> {
        in_hand
            .lanes
            .iter()
            .map(|l| l.iter().map(|m| m.receipt_handle.as_str()).collect())
            .collect()
    }

    #[test]
    fn fifo_messages_share_a_lane_per_message_group_and_shard_in_receive_order() {
        let received = vec![
            message("s0", "a", "k", "1"),
            message("s0", "b", "k", "2"),
            message("s0", "a", "x", "3"),
            message("s1", "a", "k", "4"),
            message("s0", "", "k", "5"),
            message("s0", "", "k", "6"),
        ];
        let in_hand = InHand::new(received, true);
        assert_eq!(
            lanes(&in_hand),
            [vec!["1", "3"], vec!["2"], vec!["4"], vec!["5", "6"]]
        );
    }

    #[test]
    fn standard_messages_each_get_a_lane() {
        let received = vec![message("s0", "a", "k", "1"), message("s0", "a", "k", "2")];
        assert_eq!(lanes(&InHand::new(received, false)), [vec!["1"], vec!["2"]]);
    }
}
