//! The broker's error type: every way a request to the broker can fail, with the subject named.

use thiserror::Error;

use super::iterator::IteratorError;
use crate::consumer::{FenceError, GroupError};
use crate::fifo::FifoError;
use crate::meta::MetaError;
use crate::storage::StorageError;
use crate::stream::ModelError;

/// Errors of the broker. Mapped to gRPC status codes in one place, `grpc::status`.
#[derive(Debug, Error)]
pub enum BrokerError {
    #[error("stream {stream} not found")]
    StreamNotFound { stream: String },
    #[error("shard {shard} not found in stream {stream}")]
    ShardNotFound { stream: String, shard: String },
    #[error("stream {stream} already exists")]
    StreamExists { stream: String },
    #[error("consumer group {group} not found on stream {stream}")]
    GroupNotFound { stream: String, group: String },
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
    #[error("internal task failed: {0}")]
    Internal(String),
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
