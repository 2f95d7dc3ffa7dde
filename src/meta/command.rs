//! [`MetaCommand`]: every change the metadata state machine knows, as a value that can be
//! validated, journaled, replayed and (later) replicated.

use crate::storage::{SequenceNumber, Timestamp};
use crate::stream::{GroupName, ShardId, StreamDescriptor, StreamName};

/// One change to the metadata. Applying the same commands in the same order to the same state
/// always gives the same result: no clock, no randomness inside `apply`; times are carried in
/// the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaCommand {
    /// Creates a stream with its shards. Rejected if the name is taken.
    CreateStream(StreamDescriptor),
    /// Deletes a stream and every consumer group of it.
    DeleteStream(StreamName),
    /// Creates a consumer group on an existing stream.
    CreateGroup {
        /// The stream.
        stream: StreamName,
        /// The new group.
        group: GroupName,
        /// Wall-clock creation time.
        created_at_ms: Timestamp,
    },
    /// Deletes a consumer group with its checkpoints and epoch floor.
    DeleteGroup {
        /// The stream.
        stream: StreamName,
        /// The group.
        group: GroupName,
    },
    /// Sets a group's checkpoint on a shard to `sequence`, the last sequence number the group
    /// has processed. It never moves backwards: a lower `sequence` is rejected; equal is a no-op.
    CommitCheckpoint {
        /// The stream.
        stream: StreamName,
        /// The group.
        group: GroupName,
        /// The shard.
        shard: ShardId,
        /// The last processed sequence number.
        sequence: SequenceNumber,
    },
    /// Sets a group's checkpoint on a shard to any value, backwards included, or clears it
    /// (`None`: the group starts the shard afresh).
    ResetCheckpoint {
        /// The stream.
        stream: StreamName,
        /// The group.
        group: GroupName,
        /// The shard.
        shard: ShardId,
        /// The new checkpoint, or `None` to clear it.
        sequence: Option<SequenceNumber>,
    },
    /// Raises the group's epoch floor: every lease epoch handed out so far is at most the floor,
    /// so after a restart new epochs start above it and a fenced member stays fenced. Lowering it
    /// is rejected; the same value is a no-op.
    RaiseEpochFloor {
        /// The stream.
        stream: StreamName,
        /// The group.
        group: GroupName,
        /// The new floor.
        epoch: u64,
    },
}
