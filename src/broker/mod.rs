//! The one façade every adapter calls: stream administration, the put pipeline (route, dedup,
//! fan out to committers, gather), iterators and reads, subscriptions, consumer groups.
//!
//! ```text
//!  put ─▶ validate ─▶ route (MD5 / hash key / group) ─▶ dedup reserve ─▶ batch per shard
//!        ─▶ committer of each shard (in parallel) ─▶ ack ─▶ dedup commit ─▶ response
//!  get ─▶ iterator ─▶ ShardLog::read (blocking pool) ─▶ records + next iterator
//! ```
//!
//! Durable state is either a shard log (`storage`) or the metadata store (`meta`); everything
//! else here (dedup windows, group membership) is derived from them on start.

pub mod attributes;
mod error;
pub mod filter;
mod groups;
pub mod iterator;
mod put;
pub mod queues;
pub mod quotas;
mod read;
mod reshard;
mod retire;
pub mod rules;
pub mod stats;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::watch;

pub use attributes::{AttributeLimits, PutAttribute};
pub use error::BrokerError;
// The errors a request can meet in the layers below, which are internal: named here so that a
// caller can match on every cause a `BrokerError` carries.
pub use crate::consumer::{FenceError, GroupError, MemberId};
pub use crate::fifo::{FifoError, IdField};
pub use crate::meta::{CodecError, MetaError};
pub use groups::{
    GroupDescription, GroupMemberInfo, LeaseInfo, MemberAssignments, ShardProgressInfo,
};
pub use iterator::{IteratorCodec, IteratorPosition, DEFAULT_ITERATOR_TTL};
pub use put::{PendingPut, PutEntry, PutOutcome, PutResult, SYSTEM_ATTRIBUTES};
pub use queues::{
    DeleteFailure, GroupSpec, GroupType, QueueConfig, QueueDescription, QueueStart, ReceivedMessage,
};
pub use read::{
    GetFramesOutput, GetRecordsOutput, IteratorKind, StartPosition, SubscribeEvent, Subscription,
};
pub use reshard::{ShardFilter, CRASH_AT_ENV, SCALING_PERIOD};
pub use rules::{RuleConfig, RuleDescription, RuleShardProgress, RuleSpec, RuleStatus};

use crate::fifo::{DedupKey, DedupPolicy, DedupWindow, DedupWindowConfig};
use crate::fsio::{write_file_atomically, Io};
use crate::meta::{MetaCommand, MetaStore};
use crate::storage::commit::CommitConfig;
use crate::storage::{Committer, LogConfig, SequenceNumber, ShardLog, Timestamp};
use crate::stream::{
    ShardId, StreamChange, StreamDescriptor, StreamLimits, StreamName, StreamOptions,
    StreamSettings,
};

/// Default largest record data, in bytes (as Kinesis).
pub const DEFAULT_MAX_RECORD_BYTES: usize = 1024 * 1024;
/// Default largest PutRecords request: record data plus partition keys, in bytes.
pub const DEFAULT_MAX_PUT_REQUEST_BYTES: usize = 5 * 1024 * 1024;
/// Default most entries in one PutRecords.
pub const DEFAULT_MAX_PUT_ENTRIES: usize = 500;
/// Longest partition key, in characters.
pub const MAX_PARTITION_KEY_CHARS: usize = 256;
/// Default most records one GetRecords returns (and the value of `limit` = 0).
pub const DEFAULT_GET_RECORDS_LIMIT: u32 = 10_000;
/// Default most bytes one GetRecords or subscription event carries.
pub const DEFAULT_MAX_READ_BYTES: usize = 10 * 1024 * 1024;
/// Default most bytes of records one subscription event carries. Smaller than a GetRecords
/// answer: a subscription pushes continuously, and its buffered events are server memory.
pub const DEFAULT_SUBSCRIBE_EVENT_BYTES: usize = 1024 * 1024;
/// Default most streams the server holds. Each shard of each stream keeps files open and a
/// committer running.
pub const DEFAULT_MAX_STREAMS: usize = 1_000;
/// Default events a subscription may buffer ahead of a slow reader.
pub const DEFAULT_SUBSCRIBE_BUFFER: usize = 4;
/// Default bytes of records a subscription may hold for its reader: read and not yet taken,
/// plus the event being sent. A subscriber that stops reading costs the server this much
/// (and what the connection has in flight), however far behind it falls.
pub const DEFAULT_SUBSCRIBE_BUFFER_BYTES: usize = 1024 * 1024;
/// Default most requests of one PutRecordsStream call the server works on at once; past it,
/// it reads no more of the call until the oldest is answered.
pub const DEFAULT_PUT_STREAM_WINDOW: usize = 8;
/// Default time after which an idle subscription sends an empty event (a liveness signal).
pub const DEFAULT_SUBSCRIBE_KEEPALIVE: Duration = Duration::from_secs(5);
/// Default time a graceful stop waits for in-flight requests and open subscriptions before it
/// stops without them (a subscriber that stopped reading would otherwise hold it forever).
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Default period of the retention pass.
pub const DEFAULT_RETENTION_CHECK_INTERVAL: Duration = Duration::from_secs(60);
/// File holding the iterator signing key.
pub const ITERATOR_KEY_FILE: &str = "iterator.key";

/// Settings of the broker. Every limit is here, with its default in a `DEFAULT_*` constant.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerConfig {
    /// Root of all durable state (`meta/`, `streams/`, `iterator.key`).
    pub data_dir: PathBuf,
    /// Group commit and fsync policy of every shard.
    pub commit: CommitConfig,
    /// Segment size, age and index interval of every shard (retention comes from the stream).
    pub log: LogConfig,
    /// Shard count and dedup window caps for new streams.
    pub stream_limits: StreamLimits,
    /// Most streams the server holds.
    pub max_streams: usize,
    /// Per-shard throughput limits (off by default).
    pub shard_quotas: quotas::ShardQuotas,
    /// Largest record data, in bytes.
    pub max_record_bytes: usize,
    /// Largest PutRecords request (data plus partition keys), in bytes.
    pub max_put_request_bytes: usize,
    /// Most entries in one PutRecords request.
    pub max_put_entries: usize,
    /// Most records one GetRecords returns, and what a limit of 0 asks for.
    pub get_records_limit: u32,
    /// Most bytes of records one GetRecords answer carries.
    pub max_read_bytes: usize,
    /// Lifetime of a shard iterator.
    pub iterator_ttl: Duration,
    /// Events a subscription buffers ahead of a slow reader.
    pub subscribe_buffer: usize,
    /// Bytes of records a subscription holds for its reader (an event never carries more).
    pub subscribe_buffer_bytes: usize,
    /// Most bytes of records in one subscription event (at least one record is always sent).
    pub subscribe_event_bytes: usize,
    /// Period of the empty events that keep an idle subscription alive.
    pub subscribe_keepalive: Duration,
    /// Most unanswered requests of one PutRecordsStream call.
    pub put_stream_window: usize,
    /// Period of the task that deletes segments past their stream's retention.
    pub retention_check_interval: Duration,
    /// How long a graceful stop waits for in-flight requests and subscriptions to finish.
    pub shutdown_grace: Duration,
    /// Most ids a stream's dedup window holds.
    pub max_dedup_ids: usize,
    /// Session timeout of a group member that asks for none.
    pub default_session_timeout: Duration,
    /// How many message attributes a record may carry, and their names' length.
    pub attribute_limits: AttributeLimits,
    /// Size and complexity bounds of filter patterns.
    pub pattern_limits: crate::route::PatternLimits,
    /// Limits and timing of rules.
    pub rules: rules::RuleConfig,
    /// Limits and defaults of queue groups.
    pub queues: queues::QueueConfig,
}

impl BrokerConfig {
    /// Defaults everywhere, data under `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        BrokerConfig {
            data_dir: data_dir.into(),
            commit: CommitConfig::default(),
            log: LogConfig::default(),
            stream_limits: StreamLimits::default(),
            max_streams: DEFAULT_MAX_STREAMS,
            shard_quotas: quotas::ShardQuotas::default(),
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            max_put_request_bytes: DEFAULT_MAX_PUT_REQUEST_BYTES,
            max_put_entries: DEFAULT_MAX_PUT_ENTRIES,
            get_records_limit: DEFAULT_GET_RECORDS_LIMIT,
            max_read_bytes: DEFAULT_MAX_READ_BYTES,
            iterator_ttl: DEFAULT_ITERATOR_TTL,
            subscribe_buffer: DEFAULT_SUBSCRIBE_BUFFER,
            subscribe_buffer_bytes: DEFAULT_SUBSCRIBE_BUFFER_BYTES,
            subscribe_event_bytes: DEFAULT_SUBSCRIBE_EVENT_BYTES,
            subscribe_keepalive: DEFAULT_SUBSCRIBE_KEEPALIVE,
            put_stream_window: DEFAULT_PUT_STREAM_WINDOW,
            retention_check_interval: DEFAULT_RETENTION_CHECK_INTERVAL,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            max_dedup_ids: crate::fifo::DEFAULT_MAX_LIVE_IDS,
            default_session_timeout: crate::consumer::DEFAULT_SESSION_TIMEOUT,
            attribute_limits: AttributeLimits::default(),
            pattern_limits: crate::route::PatternLimits::default(),
            rules: rules::RuleConfig::default(),
            queues: queues::QueueConfig::default(),
        }
    }
}

/// One shard: its log, the committer that writes it, and whether a reshard closed it.
#[derive(Debug)]
pub(crate) struct ShardHandle {
    pub(crate) id: ShardId,
    pub(crate) log: Arc<ShardLog>,
    pub(crate) committer: Committer,
    /// `Some(end)` once the shard is closed: it holds no record at or past `end`. Readers
    /// waiting at the end of the shard wake when it closes.
    pub(crate) closed: watch::Sender<Option<SequenceNumber>>,
    /// What readers took from it, for metrics.
    pub(crate) reads: stats::ShardReads,
    /// Its throughput limits.
    pub(crate) limits: quotas::ShardLimiters,
}

impl ShardHandle {
    fn new(
        id: ShardId,
        log: Arc<ShardLog>,
        config: &BrokerConfig,
        ending: Option<SequenceNumber>,
    ) -> ShardHandle {
        let commit = config.commit;
        ShardHandle {
            id,
            committer: Committer::spawn(Arc::clone(&log), commit),
            log,
            closed: watch::channel(ending).0,
            reads: stats::ShardReads::default(),
            limits: quotas::ShardLimiters::new(config.shard_quotas),
        }
    }

    /// Where the shard ended, once closed.
    pub(crate) fn ending(&self) -> Option<SequenceNumber> {
        *self.closed.borrow()
    }
}

/// What every incarnation of a stream's handle shares: a reshard replaces the handle, not this.
pub(crate) struct StreamShared {
    /// Puts hold it shared from routing until their appends are acknowledged; a reshard holds
    /// it exclusively for its switch, so no put straddles two layouts.
    pub(crate) put_gate: Arc<tokio::sync::RwLock<()>>,
    /// True while a reshard runs.
    pub(crate) resharding: std::sync::atomic::AtomicBool,
    /// Flips to true when the stream is deleted; subscribers end on it.
    pub(crate) deleted: watch::Sender<bool>,
    /// Puts answered as duplicates of a stored record, for metrics.
    pub(crate) dedup_hits: std::sync::atomic::AtomicU64,
}

/// One open stream.
pub(crate) struct StreamHandle {
    /// The stream as created or recovered: name, shards, settings. Its retention and options
    /// may have changed since; `options` and the shard logs hold those.
    pub(crate) descriptor: StreamDescriptor,
    /// The stream's options as they stand.
    pub(crate) options: RwLock<StreamOptions>,
    /// Every shard by id (ids are dense from 0): open and closed ones, `None` for a retired one.
    pub(crate) slots: Vec<Option<Arc<ShardHandle>>>,
    pub(crate) dedup: DedupWindow,
    pub(crate) dedup_policy: DedupPolicy,
    pub(crate) shared: Arc<StreamShared>,
}

impl StreamHandle {
    pub(crate) fn shard(&self, id: ShardId) -> Option<&ShardHandle> {
        self.slot(id.index() as usize).filter(|s| s.id == id)
    }

    /// The shard at index `index`, unless it is retired (or there is none).
    pub(crate) fn slot(&self, index: usize) -> Option<&ShardHandle> {
        self.slots.get(index).and_then(Option::as_deref)
    }

    /// The shards not retired, open and closed, by increasing id.
    pub(crate) fn shards(&self) -> impl Iterator<Item = &Arc<ShardHandle>> {
        self.slots.iter().flatten()
    }
}

pub(crate) struct Inner {
    pub(crate) config: BrokerConfig,
    pub(crate) io: Arc<dyn Io>,
    pub(crate) meta: Arc<Mutex<MetaStore>>,
    /// Serialises stream creation and deletion (each touches meta and the directory tree).
    pub(crate) admin: tokio::sync::Mutex<()>,
    pub(crate) streams: RwLock<HashMap<StreamName, Arc<StreamHandle>>>,
    pub(crate) iterators: IteratorCodec,
    pub(crate) groups: groups::Groups,
    pub(crate) matchers: filter::MatcherCache,
    pub(crate) rules: rules::Rules,
    pub(crate) queues: queues::Queues,
    pub(crate) scalings: reshard::ScalingLog,
    pub(crate) shutdown: watch::Sender<bool>,
    /// Requests by API and operation, for metrics.
    pub(crate) requests: stats::RequestStats,
    /// Numbers subscriptions, for their metrics.
    pub(crate) next_subscription: std::sync::atomic::AtomicU64,
    /// Whether a principal may still do something (with an auth file): what the server's own
    /// work done in a principal's name checks before it acts.
    pub(crate) permissions: RwLock<Option<PermissionCheck>>,
}

/// Says whether principal (by name) may do an action to a stream (by name).
pub type PermissionCheck = Arc<dyn Fn(&str, crate::auth::Action, &str) -> bool + Send + Sync>;

/// The broker. Cheap to clone.
#[derive(Clone)]
pub struct Broker {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("data_dir", &self.inner.config.data_dir)
            .finish_non_exhaustive()
    }
}

fn streams_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("streams")
}

fn shard_dir(data_dir: &Path, stream: &StreamName, shard: ShardId) -> PathBuf {
    streams_dir(data_dir)
        .join(stream.as_str())
        .join(shard.to_string())
}

/// How far back from the end of a shard the dedup window is rebuilt on open: the records put
/// within the window (plus a margin for clock steps) are the only ones that can matter.
const DEDUP_REBUILD_MARGIN: Duration = Duration::from_secs(5);
/// Records read per step while rebuilding a dedup window.
const DEDUP_REBUILD_CHUNK: usize = 10_000;

impl Broker {
    /// Opens (or initialises) the data directory: metadata, then every stream's shard logs
    /// (recovering them), then each stream's dedup window from its logs' tails. Starts the
    /// committers and the retention task on the current tokio runtime.
    pub async fn open(config: BrokerConfig, io: Arc<dyn Io>) -> Result<Broker, BrokerError> {
        let cfg = config.clone();
        let io2 = Arc::clone(&io);
        let (meta, key, opened) = blocking("open", move || open_blocking(&cfg, io2)).await??;
        let iterators = IteratorCodec::new(key, config.iterator_ttl);
        let mut streams = HashMap::new();
        let epoch_floors = groups::floors_from(meta.state());
        for (descriptor, logs) in opened {
            let handle = Self::make_handle(&config, descriptor, logs)?;
            Self::rebuild_dedup(&handle).await?;
            streams.insert(handle.descriptor.name.clone(), Arc::new(handle));
        }
        let (shutdown, _) = watch::channel(false);
        let meta = Arc::new(Mutex::new(meta));
        let queues = queues::Queues::new(Arc::clone(&meta), &key);
        let broker = Broker {
            inner: Arc::new(Inner {
                groups: groups::Groups::new(config.default_session_timeout, epoch_floors),
                config,
                io,
                meta,
                admin: tokio::sync::Mutex::new(()),
                streams: RwLock::new(streams),
                iterators,
                matchers: filter::MatcherCache::default(),
                rules: rules::Rules::default(),
                queues,
                scalings: reshard::ScalingLog::default(),
                shutdown,
                requests: stats::RequestStats::default(),
                next_subscription: std::sync::atomic::AtomicU64::new(0),
                permissions: RwLock::new(None),
            }),
        };
        {
            let state = broker
                .inner
                .meta
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .state()
                .clone();
            broker.start_queues(&state)?;
        }
        broker.spawn_retention();
        broker.inner.groups.spawn_expiry(broker.clone());
        broker.start_rules().await;
        Ok(broker)
    }

    fn make_handle(
        config: &BrokerConfig,
        descriptor: StreamDescriptor,
        logs: Vec<(ShardId, Arc<ShardLog>)>,
    ) -> Result<StreamHandle, BrokerError> {
        let mut slots: Vec<Option<Arc<ShardHandle>>> =
            descriptor.shards().iter().map(|_| None).collect();
        let shards = logs
            .into_iter()
            .map(|(id, log)| {
                let ending = descriptor.shard(id).and_then(|s| s.ending_sequence).map(|end| {
                    // Only a power loss under `interval` or `never` can leave a closed shard
                    // shorter than its recorded end: readers then end where the log does.
                    let next = log.next_sequence();
                    if next < end {
                        tracing::warn!(shard = %id, end = %end, next = %next, "closed shard ends before its recorded end; reading to where it ends");
                    }
                    end.min(next)
                });
                Arc::new(ShardHandle::new(id, log, config, ending))
            });
        for shard in shards {
            if let Some(slot) = slots.get_mut(shard.id.index() as usize) {
                *slot = Some(shard);
            }
        }
        let settings = descriptor.settings;
        let dedup = DedupWindow::new(DedupWindowConfig {
            window: settings.dedup_window,
            max_live_ids: config.max_dedup_ids,
        })?;
        let shared = Arc::new(StreamShared {
            put_gate: Arc::new(tokio::sync::RwLock::new(())),
            resharding: std::sync::atomic::AtomicBool::new(false),
            deleted: watch::channel(false).0,
            dedup_hits: std::sync::atomic::AtomicU64::new(0),
        });
        Ok(StreamHandle {
            dedup_policy: DedupPolicy {
                scope: settings.dedup_scope,
                content_based_deduplication: settings.content_based_deduplication,
            },
            options: RwLock::new(descriptor.options.clone()),
            descriptor,
            slots,
            dedup,
            shared,
        })
    }

    /// Re-inserts the dedup ids of every record put within the window, read from the tail of
    /// each shard: the log is the source of truth, the window is derived from it.
    async fn rebuild_dedup(handle: &StreamHandle) -> Result<(), BrokerError> {
        let window = handle.descriptor.settings.dedup_window + DEDUP_REBUILD_MARGIN;
        let now_wall = Timestamp::now();
        let now = Instant::now();
        let since = now_wall.saturating_sub(window);
        for shard in handle.shards() {
            let log = Arc::clone(&shard.log);
            let dedup = handle.dedup.clone();
            let policy = handle.dedup_policy;
            let shard_index = shard.id.index();
            let dedup_window = handle.descriptor.settings.dedup_window;
            blocking("rebuild dedup", move || -> Result<(), BrokerError> {
                let mut from = log.seek_time(since)?;
                loop {
                    let batch = log.read(from, DEDUP_REBUILD_CHUNK, usize::MAX)?;
                    if batch.records.is_empty() {
                        return Ok(());
                    }
                    for r in &batch.records {
                        let group = r
                            .message_group_id
                            .as_ref()
                            .and_then(|g| std::str::from_utf8(g).ok());
                        let id = r
                            .deduplication_id
                            .as_ref()
                            .and_then(|d| std::str::from_utf8(d).ok());
                        // Routed records are deduplicated by their rule's scan, not the window.
                        if id.is_some_and(|id| id.starts_with(rules::ROUTED_ID_PREFIX)) {
                            continue;
                        }
                        let Some(key): Option<DedupKey> = policy.key_for(group, id, &r.data, r.attributes.as_bytes())
                        else {
                            continue;
                        };
                        // Age the id by its real arrival time, so it expires when it would have.
                        let age = now_wall.saturating_duration_since(r.timestamp_ms);
                        if age >= dedup_window {
                            continue;
                        }
                        let committed_at = now.checked_sub(age).unwrap_or(now);
                        if let Err(e) =
                            dedup.insert_committed(key, shard_index, r.sequence, committed_at)
                        {
                            tracing::error!(error = %e, "dedup window full while rebuilding; older ids are forgotten");
                        }
                    }
                    from = batch.next_sequence;
                }
            })
            .await??;
        }
        Ok(())
    }

    fn spawn_retention(&self) {
        let broker = self.clone();
        let mut shutdown = self.inner.shutdown.subscribe();
        let period = self.inner.config.retention_check_interval;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = shutdown.changed() => return,
                }
                let logs: Vec<Arc<ShardLog>> = broker
                    .stream_handles()
                    .iter()
                    .flat_map(|s| s.shards().map(|sh| Arc::clone(&sh.log)))
                    .collect();
                let now = Timestamp::now();
                let result = blocking("retention", move || {
                    for log in logs {
                        if let Err(e) = log.apply_retention(now) {
                            tracing::error!(shard = %log.dir().display(), error = %e, "retention failed");
                        }
                    }
                })
                .await;
                if let Err(e) = result {
                    tracing::error!(error = %e, "retention task failed");
                }
                if let Err(e) = broker.retire_shards(now).await {
                    tracing::error!(error = %e, "retiring closed shards failed");
                }
            }
        });
    }

    pub(crate) fn stream_handles(&self) -> Vec<Arc<StreamHandle>> {
        self.inner
            .streams
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    pub(crate) fn stream(&self, name: &StreamName) -> Result<Arc<StreamHandle>, BrokerError> {
        let streams = self.inner.streams.read().unwrap_or_else(|p| p.into_inner());
        streams
            .get(name)
            .cloned()
            .ok_or_else(|| BrokerError::StreamNotFound {
                stream: name.clone(),
            })
    }

    pub(crate) fn config(&self) -> &BrokerConfig {
        &self.inner.config
    }

    /// Runs a metadata command on the blocking pool: validated, journaled and synced before it
    /// returns.
    pub(crate) async fn execute_meta(&self, cmd: MetaCommand) -> Result<(), BrokerError> {
        let inner = Arc::clone(&self.inner);
        blocking("metadata command", move || {
            let mut meta = inner.meta.lock().unwrap_or_else(|p| p.into_inner());
            let outcome = meta.execute(cmd);
            inner.rules.publish(&meta.state().rules);
            outcome
        })
        .await?
        .map_err(BrokerError::from)
    }

    /// Creates a stream: its metadata (durable first), then its shard directories.
    pub async fn create_stream(
        &self,
        name: StreamName,
        shard_count: u32,
        settings: StreamSettings,
    ) -> Result<StreamDescriptor, BrokerError> {
        self.create_stream_with(name, shard_count, settings, StreamOptions::default())
            .await
    }

    /// Creates a stream with options (mode, tags) set from the start.
    pub async fn create_stream_with(
        &self,
        name: StreamName,
        shard_count: u32,
        settings: StreamSettings,
        options: StreamOptions,
    ) -> Result<StreamDescriptor, BrokerError> {
        let mut descriptor = StreamDescriptor::create(
            name.clone(),
            Timestamp::now(),
            settings,
            shard_count,
            &self.inner.config.stream_limits,
        )?;
        descriptor.options = options;
        let _admin = self.inner.admin.lock().await;
        if self.stream(&name).is_ok() {
            return Err(BrokerError::StreamExists { stream: name });
        }
        let max_streams = self.inner.config.max_streams;
        if self.stream_handles().len() >= max_streams {
            return Err(BrokerError::ServerLimit {
                what: "streams",
                limit: max_streams,
                setting: "--max-streams",
            });
        }
        let cfg = self.inner.config.clone();
        let io = Arc::clone(&self.inner.io);
        let d = descriptor.clone();
        let logs = blocking("open stream", move || open_stream_logs(&cfg, &io, &d)).await??;
        self.execute_meta(MetaCommand::CreateStream(descriptor.clone()))
            .await?;
        let handle = Self::make_handle(&self.inner.config, descriptor.clone(), logs)?;
        self.inner
            .streams
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name, Arc::new(handle));
        tracing::info!(stream = %descriptor.name.as_str(), shards = shard_count, "stream created");
        Ok(descriptor)
    }

    /// Deletes a stream: durable in metadata first, then its data and its groups. Readers and
    /// subscribers get `NOT_FOUND` from then on.
    pub async fn delete_stream(&self, name: &StreamName) -> Result<(), BrokerError> {
        let _admin = self.inner.admin.lock().await;
        let handle = self.stream(name)?;
        let stream = handle.descriptor.name.clone();
        // The rules reading the stream go with it (the metadata command deletes them).
        self.stop_rules_of(&stream).await;
        self.execute_meta(MetaCommand::DeleteStream(stream.clone()))
            .await?;
        self.inner
            .streams
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&stream);
        self.inner.groups.remove_stream(&stream).await;
        self.inner.queues.remove_stream(&stream);
        handle.shared.deleted.send_replace(true);
        let io = Arc::clone(&self.inner.io);
        let dir = streams_dir(&self.inner.config.data_dir).join(stream.as_str());
        let logs: Vec<Arc<ShardLog>> = handle.shards().map(|s| Arc::clone(&s.log)).collect();
        blocking("delete stream", move || {
            for log in &logs {
                let _ = log.close();
            }
            io.remove_dir_all(&dir)
                .map_err(|e| crate::storage::StorageError::io("remove stream directory", &dir, e))
        })
        .await??;
        tracing::info!(stream = %stream.as_str(), "stream deleted");
        Ok(())
    }

    /// The stream's description, with its retention and options as they stand.
    pub fn describe_stream(&self, name: &StreamName) -> Result<StreamDescriptor, BrokerError> {
        let handle = self.stream(name)?;
        let mut descriptor = handle.descriptor.clone();
        if let Some(shard) = handle.shards().next() {
            descriptor.settings.retention = shard.log.retention();
        }
        descriptor.options = handle
            .options
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        Ok(descriptor)
    }

    /// Changes a stream's retention or one of its options: durable first, then in force.
    /// Refused beyond the stream limits' tag and consumer counts, and (by the metadata) when a
    /// consumer to register exists or one to deregister does not.
    pub async fn update_stream(
        &self,
        name: &StreamName,
        change: StreamChange,
    ) -> Result<StreamDescriptor, BrokerError> {
        let _admin = self.inner.admin.lock().await;
        let handle = self.stream(name)?;
        let limits = &self.inner.config.stream_limits;
        {
            let options = handle.options.read().unwrap_or_else(|p| p.into_inner());
            match &change {
                StreamChange::AddTags(tags) => {
                    let added = tags
                        .keys()
                        .filter(|k| !options.tags.contains_key(*k))
                        .count();
                    if options.tags.len() + added > limits.max_tags {
                        return Err(BrokerError::TooMany {
                            what: "tags",
                            stream: name.clone(),
                            limit: limits.max_tags,
                        });
                    }
                }
                StreamChange::RegisterConsumer(_)
                    if options.consumers.len() >= limits.max_consumers =>
                {
                    return Err(BrokerError::TooMany {
                        what: "consumers",
                        stream: name.clone(),
                        limit: limits.max_consumers,
                    });
                }
                _ => {}
            }
        }
        self.execute_meta(MetaCommand::UpdateStream {
            stream: name.clone(),
            change: change.clone(),
        })
        .await?;
        match &change {
            StreamChange::Retention(retention) => {
                for shard in handle.shards() {
                    shard.log.set_retention(*retention);
                }
            }
            other => handle
                .options
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .apply(other),
        }
        drop(_admin);
        self.describe_stream(name)
    }

    /// Names of all streams, sorted.
    pub fn list_streams(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .stream_handles()
            .iter()
            .map(|s| s.descriptor.name.as_str().to_owned())
            .collect();
        names.sort();
        names
    }

    /// Tells long-running work (subscriptions, retention, member expiry) to stop, so a
    /// graceful server stop does not wait on streams that never end.
    pub fn begin_shutdown(&self) {
        self.inner.shutdown.send_replace(true);
    }

    /// Syncs and closes every shard; later writes fail. Idempotent.
    pub async fn shutdown(&self) -> Result<(), BrokerError> {
        self.begin_shutdown();
        let logs: Vec<Arc<ShardLog>> = self
            .stream_handles()
            .iter()
            .flat_map(|s| s.shards().map(|sh| Arc::clone(&sh.log)))
            .collect();
        blocking("shutdown sync", move || {
            let mut first_error = None;
            for log in logs {
                if let Err(e) = log.close() {
                    tracing::error!(shard = %log.dir().display(), error = %e, "final sync failed");
                    first_error.get_or_insert(e);
                }
            }
            first_error.map_or(Ok(()), |e| Err(BrokerError::from(e)))
        })
        .await?
    }

    /// Sets how work done in a principal's name (rules) checks its rights as they stand.
    pub fn set_permission_check(&self, check: PermissionCheck) {
        *self
            .inner
            .permissions
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(check);
    }

    /// Whether `principal` may do `action` to `stream`; always without a check set.
    pub(crate) fn permitted(
        &self,
        principal: &str,
        action: crate::auth::Action,
        stream: &StreamName,
    ) -> Result<(), BrokerError> {
        let check = self
            .inner
            .permissions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match check {
            Some(check) if !check(principal, action, stream.as_str()) => {
                Err(BrokerError::NotPermitted {
                    principal: principal.to_owned(),
                    action,
                    stream: stream.clone(),
                })
            }
            _ => Ok(()),
        }
    }

    /// A receiver that turns true when shutdown starts.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.inner.shutdown.subscribe()
    }
}

type Opened = (
    MetaStore,
    [u8; iterator::KEY_LEN],
    Vec<(StreamDescriptor, Vec<(ShardId, Arc<ShardLog>)>)>,
);

fn open_blocking(config: &BrokerConfig, io: Arc<dyn Io>) -> Result<Opened, BrokerError> {
    let dir = &config.data_dir;
    io.create_dir_all(dir)
        .map_err(|e| crate::storage::StorageError::io("create data directory", dir, e))?;
    let key = load_or_create_key(io.as_ref(), &dir.join(ITERATOR_KEY_FILE))?;
    let meta = MetaStore::open(Arc::clone(&io), &dir.join("meta"))?;
    let mut opened = Vec::new();
    for descriptor in meta.state().streams.values() {
        let logs = open_stream_logs(config, &io, descriptor)?;
        opened.push((descriptor.clone(), logs));
    }
    remove_orphans(io.as_ref(), config, &meta);
    Ok((meta, key, opened))
}

/// Stream directories without metadata are left-overs of a creation or deletion cut short by
/// a crash, and shard directories a stream's metadata does not name are those of a reshard
/// cut short before its switch: the metadata is the truth, so they go.
fn remove_orphans(io: &dyn Io, config: &BrokerConfig, meta: &MetaStore) {
    let dir = streams_dir(&config.data_dir);
    let Ok(names) = io.list_dir(&dir) else { return };
    let remove = |path: &Path, what: &str| {
        tracing::warn!(dir = %path.display(), "removing data of a {what} that has no metadata");
        if let Err(e) = io.remove_dir_all(path) {
            tracing::error!(dir = %path.display(), error = %e, "could not remove orphan {what} data");
        }
    };
    for name in names {
        let stream = meta
            .state()
            .streams
            .values()
            .find(|d| Path::new(d.name.as_str()) == name.as_path());
        let path = dir.join(&name);
        let Some(stream) = stream else {
            remove(&path, "stream");
            continue;
        };
        let Ok(shards) = io.list_dir(&path) else {
            continue;
        };
        for shard in shards {
            // A retired shard's directory is deleted after the command that retires it: a
            // crash in between leaves it here.
            let known = stream
                .listed_shards()
                .any(|s| Path::new(&s.id.to_string()) == shard.as_path());
            let is_shard = shard.to_str().is_some_and(|s| s.starts_with("shardId-"));
            if is_shard && !known {
                remove(&path.join(&shard), "shard");
            }
        }
    }
}

fn open_stream_logs(
    config: &BrokerConfig,
    io: &Arc<dyn Io>,
    descriptor: &StreamDescriptor,
) -> Result<Vec<(ShardId, Arc<ShardLog>)>, BrokerError> {
    let mut log_config = config.log.clone();
    log_config.retention = descriptor.settings.retention;
    descriptor
        .listed_shards()
        .map(|shard| {
            let dir = shard_dir(&config.data_dir, &descriptor.name, shard.id);
            let log = ShardLog::open(Arc::clone(io), &dir, log_config.clone())?;
            Ok((shard.id, Arc::new(log)))
        })
        .collect()
}

fn load_or_create_key(io: &dyn Io, path: &Path) -> Result<[u8; iterator::KEY_LEN], BrokerError> {
    let mut key = [0u8; iterator::KEY_LEN];
    if io.exists(path) {
        let file = io
            .open(path, false)
            .map_err(|e| crate::storage::StorageError::io("open iterator key", path, e))?;
        let n = file
            .read_at(&mut key, 0)
            .map_err(|e| crate::storage::StorageError::io("read iterator key", path, e))?;
        if n == key.len() {
            return Ok(key);
        }
        tracing::warn!(file = %path.display(), "iterator key is short; making a new one (older iterators become invalid)");
    }
    getrandom::fill(&mut key).map_err(|source| BrokerError::Randomness {
        purpose: "the iterator key",
        source,
    })?;
    write_file_atomically(io, path, &key)
        .map_err(|e| crate::storage::StorageError::io("write iterator key", path, e))?;
    Ok(key)
}

/// Runs `work` on the blocking pool (file I/O and fsync never run on an async worker); a task
/// that panics becomes [`BrokerError::TaskFailed`] naming `task`.
pub(crate) async fn blocking<T: Send + 'static>(
    task: &'static str,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, BrokerError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|source| BrokerError::TaskFailed { task, source })
}
