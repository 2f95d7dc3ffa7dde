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
    #[error("stream {stream} not found")]
    StreamNotFound { stream: StreamName },
    #[error("shard {shard} not found in stream {stream}")]
    ShardNotFound { stream: StreamName, shard: String },
    #[error("stream {stream} already exists")]
    StreamExists { stream: StreamName },
    #[error("consumer group {group} not found on stream {stream}")]
    GroupNotFound {
        stream: StreamName,
        group: GroupName,
    },
    #[error("invalid {field}: {reason}")]
    InvalidArgument { field: &'static str, reason: String },
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Iterator(#[from] IteratorError),
    #[error(transparent)]
    Fifo(#[from] FifoError),
    #[error(transparent)]
    Group(#[from] GroupError),
    #[error(transparent)]
    Fence(#[from] FenceError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Meta(#[from] MetaError),
    #[error("the server is shutting down")]
    ShuttingDown,
    /// A task the broker handed work to (a blocking read or sync, a put of a stream call)
    /// panicked or was cancelled before it answered.
    #[error("the {task} task failed")]
    TaskFailed {
        task: &'static str,
        #[source]
        source: tokio::task::JoinError,
    },
    /// No open shard of the stream holds the key: its shards do not cover the key space, which
    /// the stream model forbids.
    #[error("no open shard of stream {stream} holds hash key {key}")]
    Unroutable { stream: StreamName, key: HashKey },
    /// The put pipeline ended without a result for an entry: a broken invariant, never the
    /// client's doing.
    #[error("entry {entry} of the request got no result")]
    MissingResult { entry: usize },
    /// An entry repeats an earlier entry's deduplication id, and that entry failed with an
    /// error that cannot be repeated as it is (its message is kept).
    #[error("the earlier entry {first} with the same deduplication id failed: {reason}")]
    EarlierEntryFailed { first: usize, reason: String },
    /// The system's random source failed.
    #[error("no randomness for {purpose}")]
    Randomness {
        purpose: &'static str,
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
