//! The broker's error type: every way a request to the broker can fail, with the subject named.

use thiserror::Error;

use super::iterator::IteratorError;
use crate::consumer::{FenceError, GroupError};
use crate::fifo::FifoError;
use crate::meta::MetaError;
use crate::storage::StorageError;
use crate::stream::{GroupName, HashKey, ModelError, StreamName};

/// Errors of the broker. Mapped to gRPC status codes in one place, `grpc::status` (and, for
/// every adapter to come, in one place each).
#[derive(Debug, Error)]
pub enum BrokerError {
    /// No stream of that name exists (or it was deleted and made again since the request's
    /// iterator was issued).
    #[error("stream {stream} not found")]
    StreamNotFound {
        /// The stream asked for.
        stream: StreamName,
    },
    /// The stream has no shard of that id.
    #[error("shard {shard} not found in stream {stream}")]
    ShardNotFound {
        /// The stream asked for.
        stream: StreamName,
        /// The shard id, as the request gave it.
        shard: String,
    },
    /// The stream is switching shards (a split, merge or scaling runs) and takes no second
    /// reshard until it is done.
    #[error("stream {stream} is updating: a reshard is running")]
    StreamUpdating {
        /// The stream.
        stream: StreamName,
    },
    /// The principal a rule acts for may no longer do what the rule does.
    #[error("principal {principal} may not {action} stream {stream}")]
    NotPermitted {
        /// The principal.
        principal: String,
        /// What it may not do.
        action: crate::auth::Action,
        /// To which stream.
        stream: StreamName,
    },
    /// A shard's throughput limit refused a put entry or a read.
    #[error(
        "rate exceeded for shard {shard} of stream {stream}: over its limit of {} per second; \
         retry after {} ms",
        limit.what(),
        retry_after.as_millis().max(1)
    )]
    Throttled {
        /// The stream.
        stream: StreamName,
        /// The shard.
        shard: crate::stream::ShardId,
        /// Which limit.
        limit: super::quotas::Limit,
        /// How long until it would pass.
        retry_after: std::time::Duration,
    },
    /// A reshard past one of Kinesis's scaling limits (open shards, the factor of one scaling,
    /// scalings per day).
    #[error("stream {stream}: {reason}")]
    ReshardLimit {
        /// The stream.
        stream: StreamName,
        /// The limit and the value asked for.
        reason: String,
    },
    /// A stream of that name exists already.
    #[error("stream {stream} already exists")]
    StreamExists {
        /// The name asked for.
        stream: StreamName,
    },
    /// The stream has no consumer group of that name.
    #[error("consumer group {group} not found on stream {stream}")]
    GroupNotFound {
        /// The stream asked for.
        stream: StreamName,
        /// The group asked for.
        group: GroupName,
    },
    /// A checkpoint is moved by hand while members hold the group's leases.
    #[error("consumer group {group} of stream {stream} has {members} live members: stop them (or let their sessions expire) before moving its checkpoints")]
    GroupHasMembers {
        /// The stream.
        stream: StreamName,
        /// The group.
        group: GroupName,
        /// How many members are live.
        members: usize,
    },
    /// A queue call names a group that leases shards.
    #[error("group {group} of stream {stream} is a shard-lease group, not a queue group")]
    NotAQueueGroup {
        /// The stream.
        stream: StreamName,
        /// The group.
        group: GroupName,
    },
    /// A lease call (join, checkpoint) names a queue group.
    #[error(
        "group {group} of stream {stream} is a queue group: receive and delete messages instead"
    )]
    IsAQueueGroup {
        /// The stream.
        stream: StreamName,
        /// The group.
        group: GroupName,
    },
    /// A receipt handle that names its message no longer acts on it.
    #[error("receipt_handle: {reason}")]
    ReceiptRefused {
        /// Why.
        reason: String,
    },
    /// Journaling a queue change failed; the change may not survive a restart.
    #[error("could not make the queue change durable: {source}")]
    QueueJournal {
        /// The metadata store's error.
        #[source]
        source: std::sync::Arc<MetaError>,
    },
    /// The server would hold more of something than a server-wide setting allows.
    #[error("the server cannot hold more than {limit} {what} (setting {setting})")]
    ServerLimit {
        /// What: `streams`.
        what: &'static str,
        /// The limit.
        limit: usize,
        /// The setting that sets it, as the command line names it.
        setting: &'static str,
    },
    /// A stream would have more of something than its limits allow.
    #[error("stream {stream} cannot have more than {limit} {what}")]
    TooMany {
        /// What: `tags` or `consumers`.
        what: &'static str,
        /// The stream.
        stream: StreamName,
        /// The limit.
        limit: usize,
    },
    /// A request field the broker checks itself is out of range.
    #[error("invalid {field}: {reason}")]
    InvalidArgument {
        /// The field, as named in the API.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A message attribute of a put entry breaks a rule (name, type, value, count).
    #[error("invalid attribute {name:?} of entry {entry}: {reason}")]
    InvalidAttribute {
        /// The entry's position in its request (0 for PutRecord).
        entry: usize,
        /// The attribute's name, as given.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A filter's pattern does not compile.
    #[error("invalid {field}: {source}")]
    InvalidPattern {
        /// The request field holding the pattern.
        field: &'static str,
        /// Where in the pattern, and what is wrong.
        #[source]
        source: crate::route::PatternError,
    },
    /// A value breaks a rule of the stream model (names, shard counts, hash keys, settings).
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A shard iterator is malformed or expired.
    #[error(transparent)]
    Iterator(#[from] IteratorError),
    /// A message group or deduplication id is invalid, or the dedup window is full.
    #[error(transparent)]
    Fifo(#[from] FifoError),
    /// A consumer-group membership request failed.
    #[error(transparent)]
    Group(#[from] GroupError),
    /// A lease holder was fenced: it no longer owns the shard at that epoch.
    #[error(transparent)]
    Fence(#[from] FenceError),
    /// A shard's log failed: I/O, a full disk, corruption, a poisoned or closed shard.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The metadata store refused or failed a command.
    #[error(transparent)]
    Meta(#[from] MetaError),
    /// The server is stopping and takes no new work.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// A task the broker handed work to (a blocking read or sync, a put of a stream call)
    /// panicked or was cancelled before it answered.
    #[error("the {task} task failed")]
    TaskFailed {
        /// What the task was doing.
        task: &'static str,
        /// Why it did not answer.
        #[source]
        source: tokio::task::JoinError,
    },
    /// No open shard of the stream holds the key: its shards do not cover the key space, which
    /// the stream model forbids.
    #[error("no open shard of stream {stream} holds hash key {key}")]
    Unroutable {
        /// The stream written to.
        stream: StreamName,
        /// The record's hash key.
        key: HashKey,
    },
    /// The put pipeline ended without a result for an entry: a broken invariant, never the
    /// client's doing.
    #[error("entry {entry} of the request got no result")]
    MissingResult {
        /// The entry's position in its request.
        entry: usize,
    },
    /// An entry repeats an earlier entry's deduplication id, and that entry failed with an
    /// error that cannot be repeated as it is (its message is kept).
    #[error("the earlier entry {first} with the same deduplication id failed: {reason}")]
    EarlierEntryFailed {
        /// The position of the earlier entry in the request.
        first: usize,
        /// The earlier entry's error, as text.
        reason: String,
    },
    /// The system's random source failed.
    #[error("no randomness for {purpose}")]
    Randomness {
        /// What the random bytes were for.
        purpose: &'static str,
        /// The random source's error.
        #[source]
        source: getrandom::Error,
    },
}

impl BrokerError {
    /// An invalid-argument error naming `field`.
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> BrokerError {
        BrokerError::InvalidArgument {
            field,
            reason: reason.into(),
        }
    }
}
