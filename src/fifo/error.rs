//! The FIFO layer's one error type.

use std::fmt;
use std::time::Duration;

/// Which client-supplied identifier a validation error is about. Its `Display` is the field name
/// the adapters report back (`INVALID_ARGUMENT` names the field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdField {
    /// `message_group_id`: picks the shard and the ordering group of a record.
    MessageGroupId,
    /// `deduplication_id`: makes a retried put within the window a no-op.
    DeduplicationId,
}

impl IdField {
    /// The field's name as it appears in the API.
    pub const fn as_str(self) -> &'static str {
        match self {
            IdField::MessageGroupId => "message_group_id",
            IdField::DeduplicationId => "deduplication_id",
        }
    }
}

impl fmt::Display for IdField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything that can go wrong in the FIFO layer.
///
/// The first two variants are bad client input (`INVALID_ARGUMENT`), `WindowFull` is a throttle
/// (`RESOURCE_EXHAUSTED`), and the config variants are a bad stream setting (`INVALID_ARGUMENT`
/// naming the setting).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FifoError {
    /// The id is empty or longer than the limit.
    #[error("{field} must be 1 to {max} characters long, got {len}")]
    IdLength {
        /// The offending field.
        field: IdField,
        /// Its length in characters.
        len: usize,
        /// The longest allowed length.
        max: usize,
    },
    /// The id contains a character outside ASCII letters, digits and punctuation.
    #[error(
        "{field} contains {character:?} at character {position}; only ASCII letters, digits and \
         punctuation are allowed"
    )]
    IdCharacter {
        /// The offending field.
        field: IdField,
        /// The first character that is not allowed.
        character: char,
        /// Its zero-based position, in characters.
        position: usize,
    },
    /// The stream's dedup window already tracks as many ids as it may; the put must be retried
    /// later, when older ids have expired.
    #[error("deduplication window is full: {live_ids} live ids, the limit is {max_live_ids}")]
    WindowFull {
        /// Ids (committed and in flight) tracked when the put was refused.
        live_ids: usize,
        /// The configured cap.
        max_live_ids: usize,
    },
    /// The `dedup_window` setting is zero or above the maximum.
    #[error("dedup_window must be between 1 ns and {max:?}, got {window:?}")]
    WindowOutOfRange {
        /// The requested window.
        window: Duration,
        /// The longest allowed window.
        max: Duration,
    },
    /// The `dedup_max_live_ids` setting is zero.
    #[error("dedup_max_live_ids must be at least 1")]
    ZeroLiveIdCap,
}
