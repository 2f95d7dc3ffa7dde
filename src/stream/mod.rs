//! The stream and shard model: names, shard ids, the 128-bit hash key space and its split into
//! shards, stream settings, and routing a key to its shard. Pure data and rules, no I/O.
//!
//! ```text
//!  partition key ──MD5──▶ HashKey (u128) ──route──▶ the open shard whose range holds it
//!  explicit hash key ─────┘
//!
//!  0 ─────────────── 2^128−1   split_evenly(3):
//!  [ shard 0 ][ shard 1 ][ shard 2 ]   each floor(2^128/3) keys, the last takes the rest
//! ```

mod descriptor;
mod hash;
mod name;
mod options;
mod reshard;
mod shard;

use std::time::Duration;

pub use descriptor::{DedupScope, StreamDescriptor, StreamLimits, StreamSettings};
pub use hash::{split_evenly, HashKey, HashKeyRange};
pub use name::{GroupName, RuleName, StreamName};
pub use options::{
    StreamChange, StreamConsumer, StreamMode, StreamOptions, DEFAULT_MAX_CONSUMERS,
    DEFAULT_MAX_GROUPS, DEFAULT_MAX_TAGS,
};
pub use reshard::{ChildShard, Reshard};
pub use shard::{ShardDescriptor, ShardId};

/// Longest stream name, in bytes (names are ASCII).
pub const MAX_STREAM_NAME_LEN: usize = 128;
/// Longest consumer group name, in bytes (names are ASCII).
pub const MAX_GROUP_NAME_LEN: usize = 128;
/// Longest rule name, in bytes (EventBridge: 64).
pub const MAX_RULE_NAME_LEN: usize = 64;
/// Default upper bound on the shard count of one stream (see [`StreamLimits::max_shard_count`]).
pub const DEFAULT_MAX_SHARD_COUNT: u32 = 1024;
/// Default most a uniform scaling may multiply or divide the open shard count by (Kinesis: 2).
pub const DEFAULT_MAX_SCALING_FACTOR: u32 = 2;
/// Default most uniform scalings of one stream in 24 hours (Kinesis: 10).
pub const DEFAULT_MAX_SCALINGS_PER_DAY: u32 = 10;
/// Retention of a stream created without one: 24 hours, as in Kinesis. The shard log's own
/// default, so that a log opened without a stream's settings keeps what a stream would.
pub use crate::storage::log::DEFAULT_RETENTION;
/// Shortest retention a stream may ask for, in hours. Kinesis insists on 24; a self-hosted log
/// has good reasons (tests, scratch streams) to keep less.
pub const MIN_RETENTION_HOURS: u32 = 1;
/// Longest retention a stream may ask for, in hours (365 days, as in Kinesis).
pub const MAX_RETENTION_HOURS: u32 = 8760;
/// Deduplication window of a stream created without one: how long a committed deduplication id
/// keeps making puts duplicates, 5 minutes (SQS FIFO's fixed interval).
pub const DEFAULT_DEDUP_WINDOW: Duration = Duration::from_secs(300);
/// Default upper bound on a stream's deduplication window (see
/// [`StreamLimits::max_dedup_window`]). Every id in the window is held in memory.
pub const DEFAULT_MAX_DEDUP_WINDOW: Duration = Duration::from_secs(3600);

/// A value of the model that breaks its rules. Each failure names the field it is about, so the
/// gRPC edge can answer `INVALID_ARGUMENT` with the field named.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// The field's value is not acceptable.
    #[error("invalid {field}: {reason}")]
    InvalidField {
        /// The field, as named in the API (`stream_name`, `explicit_hash_key`, ...).
        field: &'static str,
        /// What is wrong with it, including the offending value where that helps.
        reason: String,
    },
}

impl ModelError {
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        ModelError::InvalidField {
            field,
            reason: reason.into(),
        }
    }

    /// The field the error is about.
    pub fn field(&self) -> &'static str {
        match self {
            ModelError::InvalidField { field, .. } => field,
        }
    }
}
