//! Queue groups in the broker: consumer groups that hand out single messages with visibility
//! timeouts, over the same log that lease groups, rules and subscriptions read.
//!
//! ```text
//!  ReceiveMessages ─▶ each shard (locked): expire, take ready messages, fetch more from the
//!                     log into the window if short ─▶ journal the leases ─▶ wait durable
//!                  ─▶ move messages past their receive limit to the dead-letter stream
//!                  ─▶ nothing yet and a wait asked? sleep until a put, a release, a
//!                     visibility deadline or the wait's end, then try again
//!  DeleteMessages  ─▶ shard (locked): done ─▶ journal ─▶ wait durable ─▶ answer
//! ```
//!
//! The live state of each shard is a `consumer::QueueShard`; what must survive a crash (low-water
//! marks, done messages above them, receive counts and deadlines) is journaled in the metadata
//! store through `journal::QueueJournal`, in batches with one sync each.

mod dead_letter;
mod journal;
mod moves;
pub(crate) mod receipt;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::Notify;

use super::{blocking, filter, Broker, BrokerError, ShardHandle, StreamHandle};
use crate::consumer::queue::{Deleted, HandleRefusal, Selection, WindowLimits};
use crate::consumer::QueueShard;
use crate::meta::{
    DoneCounts, MetaCommand, MetaState, MetaStore, QueueCounters, QueueDefinition, QueueKind,
};
use crate::route::{Filter, Matcher};
use crate::storage::{SequenceNumber, ShardLog, StoredRecord, Timestamp};
use crate::stream::{GroupName, ShardId, StreamName};

pub use crate::consumer::MAX_VISIBILITY_TIMEOUT;
pub use dead_letter::{
    DEAD_LETTER_ID_PREFIX, RECEIVE_COUNT_ATTRIBUTE, SOURCE_GROUP_ATTRIBUTE,
    SOURCE_SEQUENCE_ATTRIBUTE, SOURCE_SHARD_ATTRIBUTE, SOURCE_STREAM_ATTRIBUTE,
};
pub use moves::{MoveTaskInfo, DEFAULT_MAX_MOVE_RATE, MOVED_ID_PREFIX};
pub use receipt::RECEIPT_HANDLE_CHARS;

/// Default most messages one ReceiveMessages returns (SQS's is 10; a log can afford more).
pub const DEFAULT_MAX_RECEIVE_MESSAGES: usize = 1_000;
/// Default longest wait of a long poll (as SQS).
pub const DEFAULT_MAX_RECEIVE_WAIT: Duration = Duration::from_secs(20);
/// Default most messages in flight in one queue group (SQS's figure).
pub const DEFAULT_MAX_IN_FLIGHT: usize = 120_000;
/// Default most messages a queue group keeps track of per shard above its low-water mark.
pub const DEFAULT_QUEUE_WINDOW: usize = 200_000;
/// Default most bytes of fetched records a queue group keeps ready per shard.
pub const DEFAULT_QUEUE_WINDOW_BYTES: usize = 8 * 1024 * 1024;
/// Default visibility timeout of a queue group created without one (as SQS).
pub const DEFAULT_VISIBILITY_TIMEOUT: Duration = Duration::from_secs(30);
/// Default receive limit of a queue group with a dead-letter stream and no limit given.
pub const DEFAULT_MAX_RECEIVE_COUNT: u32 = 10;
/// Most a queue group's receive limit may be.
pub const MAX_MAX_RECEIVE_COUNT: u32 = 1_000;
/// Most receipt handles in one DeleteMessages.
pub const DEFAULT_MAX_DELETE_HANDLES: usize = 1_000;
/// Fewest records one fetch into a queue group's window reads.
const MIN_FETCH: usize = 256;
/// How many times what it wants one receive fetches at most per shard.
const FETCH_AHEAD: usize = 4;
/// Sequence numbers apart that one read of a shard still covers when messages are read again:
/// the records between are read and dropped, which costs less than another read.
const REREAD_GAP: u64 = 32;

/// Limits and defaults of queue groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueConfig {
    /// Most messages one receive returns.
    pub max_receive_messages: usize,
    /// Longest wait of a long poll.
    pub max_receive_wait: Duration,
    /// Most messages in flight per group; past it, receives return nothing.
    pub max_in_flight: usize,
    /// Most messages tracked per shard above the low-water mark.
    pub window: usize,
    /// Most bytes of fetched records kept ready per shard.
    pub window_bytes: usize,
    /// Visibility timeout of a group created without one.
    pub default_visibility_timeout: Duration,
    /// Most receipt handles per delete.
    pub max_delete_handles: usize,
    /// Highest rate a move task may be given, in messages per second.
    pub max_move_rate: u32,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            max_receive_messages: DEFAULT_MAX_RECEIVE_MESSAGES,
            max_receive_wait: DEFAULT_MAX_RECEIVE_WAIT,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            window: DEFAULT_QUEUE_WINDOW,
            window_bytes: DEFAULT_QUEUE_WINDOW_BYTES,
            default_visibility_timeout: DEFAULT_VISIBILITY_TIMEOUT,
            max_delete_handles: DEFAULT_MAX_DELETE_HANDLES,
            max_move_rate: DEFAULT_MAX_MOVE_RATE,
        }
    }
}

/// What kind of consumer group CreateGroup makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupType {
    /// Members lease whole shards and checkpoint (JoinGroup's kind).
    ShardLeases,
    /// Single messages, per message group in order.
    QueueFifo,
    /// Single messages, any order.
    QueueStandard,
}

/// Where a new queue group starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueStart {
    /// At the oldest record stored.
    TrimHorizon,
    /// After the newest: only records put from now on.
    Latest,
}

/// CreateGroup's request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSpec {
    /// The kind of group.
    pub kind: GroupType,
    /// Queue groups: the default visibility timeout; `None` takes the server's default.
    pub visibility_timeout: Option<Duration>,
    /// Queue groups: receives after which a message goes to the dead-letter stream; 0 takes
    /// [`DEFAULT_MAX_RECEIVE_COUNT`] when a dead-letter stream is given.
    pub max_receive_count: u32,
    /// Queue groups: where messages received too often go.
    pub dead_letter_stream: Option<StreamName>,
    /// Queue groups: where they start.
    pub start: QueueStart,
    /// Queue groups: only matching records enter the queue.
    pub filter: Option<Filter>,
    /// Queue groups: the principal making it, whose rights move messages to the dead-letter
    /// stream (checked at every move); `None` without an auth file.
    pub owner: Option<String>,
}

/// One message a receive hands out.
#[derive(Debug, Clone)]
pub struct ReceivedMessage {
    /// The record.
    pub record: StoredRecord,
    /// Its shard.
    pub shard: ShardId,
    /// Deletes it or changes its visibility, until it is received again.
    pub receipt_handle: String,
    /// How many times it was received, this time included.
    pub receive_count: u32,
}

/// Why one receipt handle of a DeleteMessages did not delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteFailure {
    /// Not a handle this server gave for this group.
    Invalid(String),
    /// The message was received again since, or (FIFO) its visibility ran out.
    Expired(String),
}

/// What a queue group reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueDescription {
    /// Its definition (FIFO or standard among it).
    pub definition: QueueDefinition,
    /// Messages visible now (approximate with a filter: records not yet looked at count).
    pub visible: u64,
    /// Messages in flight.
    pub in_flight: u64,
    /// Age of the oldest message not done.
    pub oldest_age: Duration,
    /// Durable counters.
    pub counters: QueueCounters,
    /// Why the last move to the dead-letter stream failed, when it did (the messages stay in
    /// the queue and are moved at a later receive); `None` once one succeeds.
    pub dead_letter_error: Option<String>,
}

type GroupKey = (StreamName, GroupName);

/// A shard and the receipts of one delete that name it, with their places in the request.
type ShardReceipts = (Arc<LiveShard>, Vec<(usize, receipt::Receipt)>);

/// One shard of a live queue group.
struct LiveShard {
    id: ShardId,
    log: Arc<ShardLog>,
    /// The stream's shard: says where it ended once a reshard closed it.
    shard: Arc<ShardHandle>,
    /// The shards it was split or merged from.
    parents: Vec<ShardId>,
    state: tokio::sync::Mutex<QueueShard>,
    /// The state's in-flight count as of its last change, readable without the lock.
    in_flight: AtomicUsize,
    /// Set once this shard and every shard it descends from are closed and done: its
    /// children need not look behind it again. Never unset.
    settled: AtomicBool,
}

impl LiveShard {
    /// Publishes the state's in-flight count; called after every change, before any await,
    /// so a request cancelled at an await cannot leave it stale.
    fn mirror(&self, state: &QueueShard) {
        self.in_flight.store(state.in_flight(), Ordering::Relaxed);
    }
}

/// A live queue group.
pub(crate) struct QueueGroup {
    stream: StreamName,
    group: GroupName,
    created_at_ms: Timestamp,
    definition: QueueDefinition,
    matcher: Option<Arc<Matcher>>,
    /// Every shard of the stream not retired, open and closed, by increasing id; a reshard
    /// appends the new ones.
    shards: RwLock<Arc<Vec<Arc<LiveShard>>>>,
    /// Where the next receive starts its round of the shards.
    next_shard: AtomicUsize,
    /// Woken when messages may have become ready without a put: a release, a delete that
    /// unblocks a FIFO group, a dead letter done.
    wake: Notify,
    /// Why the last move to the dead-letter stream failed; cleared by one that succeeds.
    dead_letter_error: std::sync::Mutex<Option<String>>,
}

/// Every live queue group, and the journal their changes go through.
pub(crate) struct Queues {
    groups: RwLock<HashMap<GroupKey, Arc<QueueGroup>>>,
    journal: journal::QueueJournal,
    receipts: receipt::ReceiptCodec,
}

impl QueueGroup {
    /// Remembers why a move to the dead-letter stream failed, for DescribeGroup.
    fn dead_letter_failed(&self, why: String) {
        *self
            .dead_letter_error
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(why);
    }

    fn last_dead_letter_error(&self) -> Option<String> {
        self.dead_letter_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A move succeeded whole: the last failure is history.
    fn dead_letter_failed_no_more(&self) {
        self.dead_letter_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
    }

    /// Messages in flight over all shards, for the group's cap.
    fn in_flight(&self) -> usize {
        self.shards()
            .iter()
            .map(|s| s.in_flight.load(Ordering::Relaxed))
            .sum()
    }

    /// The shards as they stand.
    fn shards(&self) -> Arc<Vec<Arc<LiveShard>>> {
        Arc::clone(&self.shards.read().unwrap_or_else(|p| p.into_inner()))
    }

    fn shard(&self, id: ShardId) -> Option<Arc<LiveShard>> {
        find_shard(&self.shards(), id).cloned()
    }
}

impl Queues {
    pub(crate) fn new(meta: Arc<Mutex<MetaStore>>, key: &[u8]) -> Queues {
        Queues {
            groups: RwLock::new(HashMap::new()),
            journal: journal::QueueJournal::spawn(meta),
            receipts: receipt::ReceiptCodec::new(key),
        }
    }

    fn get(&self, key: &GroupKey) -> Option<Arc<QueueGroup>> {
        self.groups
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
    }

    /// The live groups of a stream.
    fn of_stream(&self, stream: &StreamName) -> Vec<Arc<QueueGroup>> {
        self.groups
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|g| &g.stream == stream)
            .cloned()
            .collect()
    }

    pub(crate) fn remove_stream(&self, stream: &StreamName) {
        self.groups
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(s, _), _| s != stream);
    }

    pub(crate) fn remove(&self, key: &GroupKey) {
        self.groups
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }
}

/// A shard's live state in a queue group, from what the journal holds of it.
fn live_shard(
    handle: &StreamHandle,
    shard: &Arc<ShardHandle>,
    kind: QueueKind,
    limits: WindowLimits,
    record: &crate::meta::QueueShardRecord,
) -> LiveShard {
    let state = QueueShard::restore(kind, limits, record);
    let parents = handle
        .descriptor
        .shards()
        .iter()
        .find(|d| d.id == shard.id)
        .map(|d| d.parent.into_iter().chain(d.adjacent_parent).collect())
        .unwrap_or_default();
    LiveShard {
        id: shard.id,
        log: Arc::clone(&shard.log),
        shard: Arc::clone(shard),
        parents,
        in_flight: AtomicUsize::new(state.in_flight()),
        state: tokio::sync::Mutex::new(state),
        settled: AtomicBool::new(false),
    }
}

/// What a FIFO queue group's shard may not hand out yet because a shard it descends from has
/// messages of the same message groups not done.
enum Held {
    /// Nothing: no ancestor has a message left.
    Nothing,
    /// The messages of these message groups.
    Groups(HashSet<u64>),
    /// Everything: an ancestor has messages not yet looked at, whose groups are unknown.
    All,
}

fn refusal_text(r: HandleRefusal) -> String {
    match r {
        HandleRefusal::Expired => {
            "the receipt handle has expired: the message was received again since, or its \
             visibility timeout ran out"
                .into()
        }
        HandleRefusal::Gone => "the message was deleted or is no longer stored".into(),
        HandleRefusal::TooLong { left } => format!(
            "a message may stay in flight at most {} s from its receive; {} s are left",
            MAX_VISIBILITY_TIMEOUT.as_secs(),
            left.as_secs()
        ),
    }
}

impl Broker {
    /// Makes the live queue groups from the metadata, on open.
    pub(crate) fn start_queues(&self, state: &MetaState) -> Result<(), BrokerError> {
        for ((stream, group), record) in &state.groups {
            let Some(queue) = &record.queue else { continue };
            let handle = self.stream(stream)?;
            let live = self.live_group(&handle, group, record.created_at_ms, queue)?;
            self.inner
                .queues
                .groups
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert((stream.clone(), group.clone()), Arc::new(live));
        }
        self.resume_moves(state.move_tasks.values().cloned().collect());
        Ok(())
    }

    fn live_group(
        &self,
        handle: &StreamHandle,
        group: &GroupName,
        created_at_ms: Timestamp,
        queue: &crate::meta::QueueRecord,
    ) -> Result<QueueGroup, BrokerError> {
        let limits = self.window_limits();
        let matcher = match &queue.definition.filter {
            Some(f) => Some(self.matcher(f, "filter")?),
            None => None,
        };
        let shards = handle
            .shards()
            .map(|sh| {
                let record = queue.shards.get(&sh.id).cloned().unwrap_or_default();
                Arc::new(live_shard(
                    handle,
                    sh,
                    queue.definition.kind,
                    limits,
                    &record,
                ))
            })
            .collect();
        Ok(QueueGroup {
            stream: handle.descriptor.name.clone(),
            group: group.clone(),
            created_at_ms,
            definition: queue.definition.clone(),
            matcher,
            shards: RwLock::new(Arc::new(shards)),
            next_shard: AtomicUsize::new(0),
            wake: Notify::new(),
            dead_letter_error: std::sync::Mutex::default(),
        })
    }

    /// The bounds of a queue group's window of each shard, as configured.
    fn window_limits(&self) -> WindowLimits {
        let cfg = &self.config().queues;
        WindowLimits {
            max_messages: cfg.window,
            max_cached_bytes: cfg.window_bytes,
        }
    }

    /// Gives every queue group of a stream the shards a reshard made; they start at their
    /// first record, and a FIFO group holds their messages back behind their parents'.
    pub(crate) fn queues_follow_reshard(&self, handle: &StreamHandle) {
        let limits = self.window_limits();
        for group in self.inner.queues.of_stream(&handle.descriptor.name) {
            {
                let mut shards = group.shards.write().unwrap_or_else(|p| p.into_inner());
                let mut grown: Vec<Arc<LiveShard>> = shards.as_ref().clone();
                let known = grown.last().map(|s| s.id);
                for sh in handle.shards().filter(|sh| Some(sh.id) > known) {
                    let record = crate::meta::QueueShardRecord::default();
                    grown.push(Arc::new(live_shard(
                        handle,
                        sh,
                        group.definition.kind,
                        limits,
                        &record,
                    )));
                }
                *shards = Arc::new(grown);
            }
            group.wake.notify_waiters();
        }
    }

    /// Lets every queue group of a stream forget the shards retired since.
    pub(crate) fn queues_follow_retirement(&self, handle: &StreamHandle) {
        for group in self.inner.queues.of_stream(&handle.descriptor.name) {
            let mut shards = group.shards.write().unwrap_or_else(|p| p.into_inner());
            let kept: Vec<Arc<LiveShard>> = shards
                .iter()
                .filter(|s| handle.shard(s.id).is_some())
                .cloned()
                .collect();
            *shards = Arc::new(kept);
        }
    }

    /// The kind of a live queue group; `None` for a lease group or no group.
    pub fn queue_kind(&self, stream: &StreamName, group: &str) -> Option<QueueKind> {
        let group = GroupName::new(group).ok()?;
        self.inner
            .queues
            .get(&(stream.clone(), group))
            .map(|q| q.definition.kind)
    }

    /// The kind of an existing group: `None` when there is no such group.
    pub(crate) fn group_kind(&self, stream: &StreamName, group: &GroupName) -> Option<GroupType> {
        let meta = self.inner.meta.lock().unwrap_or_else(|p| p.into_inner());
        let record = meta.state().group(stream, group)?;
        Some(match record.queue.as_ref().map(|q| q.definition.kind) {
            None => GroupType::ShardLeases,
            Some(QueueKind::Fifo) => GroupType::QueueFifo,
            Some(QueueKind::Standard) => GroupType::QueueStandard,
        })
    }

    /// Creates a consumer group of any kind. A lease group is the one JoinGroup makes on
    /// first use; a queue group starts at the oldest record or the newest of each shard.
    pub async fn create_group(
        &self,
        stream: &StreamName,
        group: &str,
        spec: GroupSpec,
    ) -> Result<(), BrokerError> {
        let (handle, group) = self.group_names(stream, group)?;
        let stream = handle.descriptor.name.clone();
        let queue_kind = match spec.kind {
            GroupType::ShardLeases => None,
            GroupType::QueueFifo => Some(QueueKind::Fifo),
            GroupType::QueueStandard => Some(QueueKind::Standard),
        };
        let queue = match queue_kind {
            None => {
                if spec.dead_letter_stream.is_some() || spec.filter.is_some() {
                    return Err(BrokerError::invalid(
                        "type",
                        "a dead-letter stream and a filter belong to queue groups; a lease group \
                         takes neither",
                    ));
                }
                None
            }
            Some(kind) => Some(self.queue_definition(&stream, kind, &spec)?),
        };
        // A queue reads shard by shard: held under the admin lock, so that no reshard runs
        // between reading the shards and making the group; and groups are counted under it.
        let _admin = self.inner.admin.lock().await;
        self.check_group_room(&stream, &group)?;
        let handle = match queue {
            Some(_) => self.stream(&stream)?,
            None => handle,
        };
        // The start positions are read before the command; a record put meanwhile with
        // LATEST may or may not be in the queue, as with Kinesis's LATEST.
        let start: BTreeMap<ShardId, SequenceNumber> = handle
            .shards()
            .map(|sh| {
                let at = match spec.start {
                    QueueStart::TrimHorizon => sh.log.first_sequence(),
                    QueueStart::Latest => sh.log.next_sequence(),
                };
                (sh.id, at)
            })
            .collect();
        let created_at_ms = Timestamp::now();
        self.execute_meta(MetaCommand::CreateGroup {
            stream: stream.clone(),
            group: group.clone(),
            created_at_ms,
            queue: queue.clone().map(|d| (d, start.clone())),
        })
        .await?;
        if let Some(definition) = queue {
            let record = crate::meta::QueueRecord::new(definition, &start);
            let live = self.live_group(&handle, &group, created_at_ms, &record)?;
            self.inner
                .queues
                .groups
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert((stream, group), Arc::new(live));
        }
        Ok(())
    }

    fn queue_definition(
        &self,
        stream: &StreamName,
        kind: QueueKind,
        spec: &GroupSpec,
    ) -> Result<QueueDefinition, BrokerError> {
        let visibility = spec
            .visibility_timeout
            .unwrap_or(self.config().queues.default_visibility_timeout);
        if visibility > MAX_VISIBILITY_TIMEOUT {
            return Err(BrokerError::invalid(
                "visibility_timeout_seconds",
                format!(
                    "{} s; at most {} s",
                    visibility.as_secs(),
                    MAX_VISIBILITY_TIMEOUT.as_secs()
                ),
            ));
        }
        if spec.max_receive_count > MAX_MAX_RECEIVE_COUNT {
            return Err(BrokerError::invalid(
                "max_receive_count",
                format!(
                    "{}; at most {MAX_MAX_RECEIVE_COUNT}",
                    spec.max_receive_count
                ),
            ));
        }
        let max_receive_count = match (&spec.dead_letter_stream, spec.max_receive_count) {
            (None, 0) => 0,
            (None, _) => {
                return Err(BrokerError::invalid(
                    "max_receive_count",
                    "needs a dead_letter_stream for the messages received that often",
                ))
            }
            (Some(dlq), n) => {
                if dlq == stream {
                    return Err(BrokerError::invalid(
                        "dead_letter_stream",
                        "must not be the group's own stream",
                    ));
                }
                self.stream(dlq).map_err(|_not_found| {
                    BrokerError::invalid(
                        "dead_letter_stream",
                        format!("stream {dlq} does not exist (create it first)"),
                    )
                })?;
                if n == 0 {
                    DEFAULT_MAX_RECEIVE_COUNT
                } else {
                    n
                }
            }
        };
        if let Some(f) = &spec.filter {
            self.matcher(f, "filter")?;
        }
        Ok(QueueDefinition {
            kind,
            visibility_timeout: visibility,
            max_receive_count,
            dead_letter_stream: spec.dead_letter_stream.clone(),
            filter: spec.filter.clone(),
            owner: spec.owner.clone(),
        })
    }

    fn queue_group(
        &self,
        stream: &StreamName,
        group: &str,
    ) -> Result<Arc<QueueGroup>, BrokerError> {
        let (handle, group) = self.group_names(stream, group)?;
        let key = (handle.descriptor.name.clone(), group);
        if let Some(q) = self.inner.queues.get(&key) {
            return Ok(q);
        }
        let (stream, group) = key;
        Err(match self.group_kind(&stream, &group) {
            None => BrokerError::GroupNotFound { stream, group },
            Some(_) => BrokerError::NotAQueueGroup { stream, group },
        })
    }

    /// Receives up to `max` messages. With a wait, answers as soon as one is available, or
    /// empty when the wait ends; without, answers with what is available now.
    pub async fn receive_messages(
        &self,
        stream: &StreamName,
        group: &str,
        max: usize,
        visibility: Option<Duration>,
        wait: Duration,
    ) -> Result<Vec<ReceivedMessage>, BrokerError> {
        let cfg = self.config().queues;
        if max == 0 || max > cfg.max_receive_messages {
            return Err(BrokerError::invalid(
                "max_messages",
                format!("{max}; a receive takes 1 to {}", cfg.max_receive_messages),
            ));
        }
        if wait > cfg.max_receive_wait {
            return Err(BrokerError::invalid(
                "wait_time_ms",
                format!(
                    "{} ms; at most {} ms",
                    wait.as_millis(),
                    cfg.max_receive_wait.as_millis()
                ),
            ));
        }
        if visibility.is_some_and(|v| v > MAX_VISIBILITY_TIMEOUT) {
            return Err(BrokerError::invalid(
                "visibility_timeout_seconds",
                format!("at most {} s", MAX_VISIBILITY_TIMEOUT.as_secs()),
            ));
        }
        let q = self.queue_group(stream, group)?;
        let visibility = visibility.unwrap_or(q.definition.visibility_timeout);
        let until = tokio::time::Instant::now() + wait;
        let mut shutdown = self.shutdown_signal();
        loop {
            // Listen before looking, so that nothing arriving in between is missed.
            let woken = q.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let shards = q.shards();
            let mut puts: Vec<_> = shards.iter().map(|s| s.log.subscribe()).collect();
            for p in &mut puts {
                p.borrow_and_update();
            }
            let (got, more) = self.try_receive(&q, max, visibility).await?;
            let now = tokio::time::Instant::now();
            if !got.is_empty() || now >= until || *shutdown.borrow() {
                return Ok(got);
            }
            if more {
                // Log not looked at yet: look on, letting other tasks run in between.
                tokio::task::yield_now().await;
                continue;
            }
            let mut next = until;
            for s in shards.iter() {
                if let Some(d) = s.state.lock().await.next_deadline() {
                    let ms = d.as_millis().saturating_sub(Timestamp::now().as_millis());
                    next = next.min(now + Duration::from_millis(ms));
                }
            }
            let any_put =
                futures_util::future::select_all(puts.iter_mut().map(|p| Box::pin(p.changed())));
            tokio::select! {
                _ = &mut woken => {}
                _ = any_put => {}
                _ = tokio::time::sleep_until(next) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// One pass over the shards: takes what is ready now. Also says whether a shard has more
    /// of its log to look at than this pass fetched (a long poll then looks again at once).
    async fn try_receive(
        &self,
        q: &Arc<QueueGroup>,
        max: usize,
        visibility: Duration,
    ) -> Result<(Vec<ReceivedMessage>, bool), BrokerError> {
        let cfg = self.config();
        let mut out = Vec::new();
        let mut out_bytes = 0usize;
        let mut dead = Vec::new();
        let mut durable = Vec::new();
        let mut more = false;
        let shards = q.shards();
        let n = shards.len();
        let first = q.next_shard.fetch_add(1, Ordering::Relaxed);
        for i in 0..n {
            let shard = &shards[(first + i) % n];
            let held = match q.definition.kind {
                QueueKind::Fifo => held_by_ancestors(&shards, shard).await,
                QueueKind::Standard => Held::Nothing,
            };
            let mut state = shard.state.lock().await;
            let now = Timestamp::now();
            // Visibility runs out whether or not this receive may take anything: the group's
            // in-flight count must fall for the cap to let go.
            state.expire(now);
            let first_stored = shard.log.first_sequence();
            if first_stored > state.start() {
                state.skip_to(first_stored);
            }
            shard.mirror(&state);
            let held = match held {
                Held::Nothing => None,
                Held::Groups(groups) => Some(groups),
                // Nothing to hand out before the shards it descends from are looked at whole.
                Held::All => continue,
            };
            let budget = cfg.queues.max_in_flight.saturating_sub(q.in_flight());
            let want = (max - out.len()).min(budget);
            let byte_budget = cfg.max_read_bytes.saturating_sub(out_bytes);
            let mut selection = Selection::default();
            // Records this receive fetched: bounded, so that a shard whose groups are all
            // blocked is not read to the end of the window by every receive (later receives
            // go on from where this one stopped).
            let mut fetched_here = 0;
            while want > 0 && (out.is_empty() || byte_budget > 0) {
                let got = state.receive(
                    want - selection.delivered.len() - selection.dead_letters.len(),
                    byte_budget.saturating_sub(selection.bytes()),
                    now,
                    visibility,
                    q.definition.max_receive_count,
                    held.as_ref(),
                );
                let stop_for_bytes = got.stopped_at_budget;
                selection.extend(got);
                shard.mirror(&state);
                let taken = selection.delivered.len() + selection.dead_letters.len();
                let from = state.fetched();
                let end = shard.log.next_sequence();
                if taken >= want || stop_for_bytes || state.room() == 0 || from >= end {
                    break;
                }
                if fetched_here >= want.max(MIN_FETCH) * FETCH_AHEAD {
                    more = true;
                    break;
                }
                // Fetch about what is wanted: records fetched beyond the window's byte
                // budget are read again when handed out.
                let limit = state.room().min(want.max(MIN_FETCH));
                let log = Arc::clone(&shard.log);
                let max_bytes = cfg.max_read_bytes;
                let read = blocking("queue fetch", move || log.read(from, limit, max_bytes)).await;
                let batch = match read {
                    Ok(Ok(batch)) => batch,
                    // What was taken is still handed out; the next receive tries the log again.
                    Ok(Err(e)) => {
                        tracing::error!(stream = %q.stream, group = %q.group, shard = %shard.id, error = %e, "queue fetch failed");
                        break;
                    }
                    Err(e) => {
                        tracing::error!(stream = %q.stream, group = %q.group, shard = %shard.id, error = %e, "queue fetch failed");
                        break;
                    }
                };
                if batch.records.is_empty() {
                    break;
                }
                fetched_here += batch.records.len();
                match &q.matcher {
                    Some(m) => state.admit(batch.records, |r| filter::record_matches(m, r)),
                    None => state.admit(batch.records, |_| true),
                }
                shard.mirror(&state);
            }
            let expired = state.take_expired();
            if expired > 0 {
                tracing::warn!(stream = %q.stream, group = %q.group, shard = %shard.id, messages = expired, "retention removed messages the queue group had not finished");
                durable.push(self.inner.queues.journal.submit(MetaCommand::QueueDone {
                    stream: q.stream.clone(),
                    group: q.group.clone(),
                    incarnation: q.created_at_ms,
                    shard: shard.id,
                    sequences: Vec::new(),
                    start: state.start(),
                    counts: DoneCounts {
                        expired,
                        ..DoneCounts::default()
                    },
                }));
            }
            if !selection.delivered.is_empty() {
                let deadline = Timestamp::from_millis(
                    now.as_millis()
                        .saturating_add(u64::try_from(visibility.as_millis()).unwrap_or(u64::MAX)),
                );
                durable.push(
                    self.inner.queues.journal.submit(MetaCommand::QueueLease {
                        stream: q.stream.clone(),
                        group: q.group.clone(),
                        incarnation: q.created_at_ms,
                        shard: shard.id,
                        deadline_ms: deadline,
                        messages: selection
                            .delivered
                            .iter()
                            .map(|t| (t.sequence, t.receive_count))
                            .collect(),
                        received: true,
                    }),
                );
            }
            drop(state);
            out_bytes += selection.bytes();
            for t in selection.delivered {
                out.push((shard.id, t));
            }
            for t in selection.dead_letters {
                dead.push((shard.id, t));
            }
        }
        if !dead.is_empty() {
            // Owned by the broker, not this request: a receive cancelled meanwhile must not
            // leave the moves half done.
            let broker = self.clone();
            let q = Arc::clone(q);
            tokio::spawn(async move { broker.dead_letter(&q, dead).await });
        }
        for d in durable {
            wait_durable(d).await?;
        }
        let missing: Vec<(ShardId, SequenceNumber)> = out
            .iter()
            .filter(|(_, t)| t.record.is_none())
            .map(|(shard, t)| (*shard, t.sequence))
            .collect();
        let mut reread = self.read_messages(q, missing).await?;
        let mut messages = Vec::with_capacity(out.len());
        for (shard, t) in out {
            // A message retention removed since it was taken is not handed out; the window
            // counts it as lost when it next looks at the shard's start.
            let Some(record) = t.record.or_else(|| reread.remove(&(shard, t.sequence))) else {
                continue;
            };
            messages.push(ReceivedMessage {
                receipt_handle: self.inner.queues.receipts.encode(
                    &q.stream,
                    &q.group,
                    &receipt::Receipt {
                        group_created_at_ms: q.created_at_ms,
                        shard,
                        sequence: t.sequence,
                        receive_count: t.receive_count,
                    },
                ),
                record,
                shard,
                receive_count: t.receive_count,
            });
        }
        Ok((messages, more))
    }

    /// Reads messages again (their records left the window's cache), one read per run of
    /// consecutive sequence numbers. A message retention removed meanwhile is missing.
    pub(super) async fn read_messages(
        &self,
        q: &QueueGroup,
        mut wanted: Vec<(ShardId, SequenceNumber)>,
    ) -> Result<HashMap<(ShardId, SequenceNumber), StoredRecord>, BrokerError> {
        wanted.sort();
        let mut found = HashMap::with_capacity(wanted.len());
        let mut i = 0;
        while i < wanted.len() {
            let (shard, first) = wanted[i];
            let mut n = 1;
            let mut last = first;
            while i + n < wanted.len()
                && wanted[i + n].0 == shard
                && wanted[i + n].1.get() <= last.get() + REREAD_GAP
            {
                last = wanted[i + n].1;
                n += 1;
            }
            i += n;
            let span = (last.get() - first.get() + 1) as usize;
            let log = q.shard(shard).map(|s| Arc::clone(&s.log)).ok_or_else(|| {
                BrokerError::ShardNotFound {
                    stream: q.stream.clone(),
                    shard: shard.to_string(),
                }
            })?;
            let max_bytes = self.config().max_read_bytes;
            let needed: std::collections::HashSet<SequenceNumber> =
                wanted[i - n..i].iter().map(|(_, s)| *s).collect();
            let records = blocking("queue read", move || -> Result<_, BrokerError> {
                let mut out = Vec::with_capacity(needed.len());
                let mut from = first;
                // One read may stop at its byte budget; go on until the span is covered.
                while from <= last {
                    let left = (last.get() - from.get() + 1) as usize;
                    let batch = log.read(from, left.min(span), max_bytes)?;
                    if batch.records.is_empty() {
                        break;
                    }
                    out.extend(
                        batch
                            .records
                            .into_iter()
                            .filter(|r| needed.contains(&r.sequence)),
                    );
                    from = batch.next_sequence;
                }
                Ok(out)
            })
            .await??;
            for r in records {
                found.insert((shard, r.sequence), r);
            }
        }
        Ok(found)
    }

    /// Deletes messages by their receipt handles: one result per handle, in order. Every
    /// delete is durable before the answer.
    pub async fn delete_messages(
        &self,
        stream: &StreamName,
        group: &str,
        handles: &[String],
    ) -> Result<Vec<Result<(), DeleteFailure>>, BrokerError> {
        let max = self.config().queues.max_delete_handles;
        if handles.is_empty() || handles.len() > max {
            return Err(BrokerError::invalid(
                "receipt_handles",
                format!("{} handles; a delete takes 1 to {max}", handles.len()),
            ));
        }
        let q = self.queue_group(stream, group)?;
        let mut results: Vec<Result<(), DeleteFailure>> = vec![Ok(()); handles.len()];
        let mut by_shard: BTreeMap<ShardId, ShardReceipts> = BTreeMap::new();
        for (i, handle) in handles.iter().enumerate() {
            match self.receipt_of(&q, handle) {
                Ok((shard, r)) => by_shard
                    .entry(shard.id)
                    .or_insert_with(|| (shard, Vec::new()))
                    .1
                    .push((i, r)),
                Err(reason) => results[i] = Err(DeleteFailure::Invalid(reason)),
            }
        }
        let mut durable = Vec::new();
        let mut any = false;
        let mut repeated = false;
        for (_, (shard, receipts)) in by_shard {
            let mut state = shard.state.lock().await;
            let mut done = Vec::new();
            for (i, r) in receipts {
                match state.delete(r.sequence, r.receive_count) {
                    Ok(Deleted::Now) => done.push(r.sequence),
                    // Done already — perhaps by a delete whose journal entry is not durable
                    // yet: the answer waits for it below.
                    Ok(Deleted::Already) => repeated = true,
                    Err(refusal) => results[i] = Err(DeleteFailure::Expired(refusal_text(refusal))),
                }
            }
            shard.mirror(&state);
            if !done.is_empty() {
                any = true;
                let counts = DoneCounts {
                    deleted: done.len() as u64,
                    ..DoneCounts::default()
                };
                durable.push(self.inner.queues.journal.submit(MetaCommand::QueueDone {
                    stream: q.stream.clone(),
                    group: q.group.clone(),
                    incarnation: q.created_at_ms,
                    shard: shard.id,
                    sequences: done,
                    start: state.start(),
                    counts,
                }));
            }
        }
        if repeated {
            durable.push(self.inner.queues.journal.barrier());
        }
        for d in durable {
            wait_durable(d).await?;
        }
        if any {
            // A FIFO group may be unblocked, window room or in-flight budget freed.
            q.wake.notify_waiters();
        }
        Ok(results)
    }

    /// The shard and receipt a handle names, or why it names none.
    fn receipt_of(
        &self,
        q: &QueueGroup,
        handle: &str,
    ) -> Result<(Arc<LiveShard>, receipt::Receipt), String> {
        let invalid = || format!("the receipt handle {handle:?} is not a valid receipt handle");
        let r = self
            .inner
            .queues
            .receipts
            .decode(&q.stream, &q.group, handle)
            .ok_or_else(invalid)?;
        if r.group_created_at_ms != q.created_at_ms {
            return Err(format!(
                "the receipt handle belongs to an earlier group named {}",
                q.group
            ));
        }
        let shard = q.shard(r.shard).ok_or_else(invalid)?;
        Ok((shard, r))
    }

    /// Changes how long a received message stays invisible, from now; zero makes it visible
    /// at once. Durable before the answer.
    pub async fn change_message_visibility(
        &self,
        stream: &StreamName,
        group: &str,
        handle: &str,
        timeout: Duration,
    ) -> Result<(), BrokerError> {
        if timeout > MAX_VISIBILITY_TIMEOUT {
            return Err(BrokerError::invalid(
                "visibility_timeout_seconds",
                format!(
                    "{} s; at most {} s",
                    timeout.as_secs(),
                    MAX_VISIBILITY_TIMEOUT.as_secs()
                ),
            ));
        }
        let q = self.queue_group(stream, group)?;
        let (shard, r) = self
            .receipt_of(&q, handle)
            .map_err(|reason| BrokerError::invalid("receipt_handle", reason))?;
        let mut state = shard.state.lock().await;
        let now = Timestamp::now();
        state.expire(now);
        let outcome = state.change_visibility(r.sequence, r.receive_count, timeout, now);
        shard.mirror(&state);
        let deadline = match outcome {
            Ok(Some(deadline)) => deadline,
            // Visible already: nothing to make durable.
            Ok(None) => return Ok(()),
            Err(HandleRefusal::TooLong { left }) => {
                return Err(BrokerError::invalid(
                    "visibility_timeout_seconds",
                    refusal_text(HandleRefusal::TooLong { left }),
                ))
            }
            Err(refusal) => {
                return Err(BrokerError::ReceiptRefused {
                    reason: refusal_text(refusal),
                })
            }
        };
        let durable = self.inner.queues.journal.submit(MetaCommand::QueueLease {
            stream: q.stream.clone(),
            group: q.group.clone(),
            incarnation: q.created_at_ms,
            shard: shard.id,
            deadline_ms: deadline,
            messages: vec![(r.sequence, r.receive_count)],
            received: false,
        });
        drop(state);
        wait_durable(durable).await?;
        if timeout.is_zero() {
            q.wake.notify_waiters();
        }
        Ok(())
    }

    /// What a queue group holds and has done.
    pub async fn describe_queue(
        &self,
        stream: &StreamName,
        group: &str,
    ) -> Result<QueueDescription, BrokerError> {
        let q = self.queue_group(stream, group)?;
        let mut visible = 0u64;
        let mut in_flight = 0u64;
        let mut oldest: Option<Timestamp> = None;
        let now = Timestamp::now();
        for shard in q.shards().iter() {
            let (start, tracked) = {
                let mut state = shard.state.lock().await;
                state.expire(now);
                shard.mirror(&state);
                in_flight += state.in_flight() as u64;
                (
                    state.start().max(shard.log.first_sequence()),
                    (state.in_flight() + state.done_in_window()) as u64,
                )
            };
            let next = shard.log.next_sequence();
            visible += next.saturating_distance_from(start).saturating_sub(tracked);
            if start < next {
                let log = Arc::clone(&shard.log);
                let batch = blocking("queue oldest", move || log.read(start, 1, 1)).await??;
                if let Some(r) = batch.records.first() {
                    oldest = Some(oldest.map_or(r.timestamp_ms, |o| o.min(r.timestamp_ms)));
                }
            }
        }
        let counters = {
            let meta = self.inner.meta.lock().unwrap_or_else(|p| p.into_inner());
            meta.state()
                .group(&q.stream, &q.group)
                .and_then(|g| g.queue.as_ref())
                .map(|qr| qr.counters)
                .unwrap_or_default()
        };
        Ok(QueueDescription {
            definition: q.definition.clone(),
            visible,
            in_flight,
            oldest_age: oldest.map_or(Duration::ZERO, |t| now.saturating_duration_since(t)),
            counters,
            dead_letter_error: q.last_dead_letter_error(),
        })
    }

    /// Marks taken messages done once their dead-letter copies are stored, and makes those
    /// whose copy failed visible again (a later receive takes them again). A message that is
    /// no longer moving (its move lease ran out and it was taken again) is not counted twice.
    async fn finish_dead_letters(
        &self,
        q: &QueueGroup,
        stored: Vec<(ShardId, SequenceNumber)>,
        failed: Vec<(ShardId, SequenceNumber)>,
    ) {
        let mut by_shard: BTreeMap<ShardId, (Vec<SequenceNumber>, Vec<SequenceNumber>)> =
            BTreeMap::new();
        for (shard, seq) in stored {
            by_shard.entry(shard).or_default().0.push(seq);
        }
        for (shard, seq) in failed {
            by_shard.entry(shard).or_default().1.push(seq);
        }
        let mut durable = Vec::new();
        for (id, (stored, failed)) in by_shard {
            let Some(shard) = q.shard(id) else {
                continue;
            };
            let mut state = shard.state.lock().await;
            let done: Vec<SequenceNumber> = stored
                .into_iter()
                .filter(|&s| state.dead_lettered(s))
                .collect();
            for s in failed {
                state.dead_letter_failed(s);
            }
            shard.mirror(&state);
            if done.is_empty() {
                continue;
            }
            durable.push(self.inner.queues.journal.submit(MetaCommand::QueueDone {
                stream: q.stream.clone(),
                group: q.group.clone(),
                incarnation: q.created_at_ms,
                shard: id,
                counts: DoneCounts {
                    dead_lettered: done.len() as u64,
                    ..DoneCounts::default()
                },
                sequences: done,
                start: state.start(),
            }));
        }
        for d in durable {
            if let Err(e) = wait_durable(d).await {
                tracing::error!(stream = %q.stream, group = %q.group, error = %e, "could not record dead-lettered messages as done");
            }
        }
        q.wake.notify_waiters();
    }
}

/// What `shard` of a FIFO queue group must hold back: the message groups its ancestors (every
/// shard it was split or merged from, transitively) still have messages of, so that no message
/// of a group in a child is handed out while one in its parent is not done. Locks one ancestor
/// at a time, never while the caller holds `shard`'s lock; ancestors are closed, so what they
/// hold back only shrinks, and an answer a moment old is safe.
async fn held_by_ancestors(shards: &[Arc<LiveShard>], shard: &LiveShard) -> Held {
    // A retired ancestor (gone from the list) held nothing when it went, and neither did the
    // older shards it descends from.
    let settled =
        |id: ShardId| find_shard(shards, id).is_none_or(|s| s.settled.load(Ordering::Acquire));
    let mut held = HashSet::new();
    let mut seen = HashSet::new();
    let mut todo: Vec<ShardId> = shard.parents.clone();
    while let Some(id) = todo.pop() {
        if !seen.insert(id) || settled(id) {
            continue;
        }
        let Some(ancestor) = find_shard(shards, id) else {
            continue;
        };
        // A parent is closed before its children exist; an open one is a layout not yet
        // switched, and holds everything back.
        let Some(end) = ancestor.shard.ending() else {
            return Held::All;
        };
        {
            let state = ancestor.state.lock().await;
            let start = state.start().max(ancestor.log.first_sequence());
            if start >= end {
                if ancestor.parents.iter().all(|&p| settled(p)) {
                    ancestor.settled.store(true, Ordering::Release);
                    continue;
                }
            } else if state.fetched() < end {
                return Held::All;
            } else {
                held.extend(state.undone_groups());
            }
        }
        todo.extend(ancestor.parents.iter().copied());
    }
    if held.is_empty() {
        Held::Nothing
    } else {
        Held::Groups(held)
    }
}

/// The shard with id `id` of a group's shards (sorted by id).
fn find_shard(shards: &[Arc<LiveShard>], id: ShardId) -> Option<&Arc<LiveShard>> {
    shards
        .binary_search_by_key(&id, |s| s.id)
        .ok()
        .map(|i| &shards[i])
}

async fn wait_durable(d: journal::Durable) -> Result<(), BrokerError> {
    match d.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(BrokerError::QueueJournal { source: e }),
        // The journal thread is gone: the broker is being dropped.
        Err(_closed) => Err(BrokerError::ShuttingDown),
    }
}
