//! The durable metadata state machine: streams with their shards and settings, consumer groups,
//! per-group per-shard checkpoints, and the floor of lease epochs, kept as a journal of commands
//! plus periodic snapshots.
//!
//! Everything changes through a [`MetaCommand`] applied to a [`MetaState`] — deterministically,
//! so the same commands in the same order always give the same state. That is the shape a Raft
//! log carries: replicating the metadata later means replicating these commands.
//!
//! ```text
//!  execute(cmd) ──validate──▶ rejected: Err, journal untouched
//!                    │
//!                    ▼
//!        append frame to journal-<n>.log ──▶ sync ──▶ apply to the in-memory state ──▶ Ok
//!                    │ (write or sync fails: the store is poisoned until restart)
//!                    ▼
//!   every `snapshot_every` commands: snapshot-<n+1> (atomic), journal-<n+1>.log, drop the old
//! ```
//!
//! # On disk
//!
//! `<data-dir>/meta/` holds `snapshot-<n>` (the state after every command of the generations
//! before `n`; absent for generation 0) and `journal-<n>.log` (the commands applied after it).
//! Opening loads the newest valid snapshot and replays the journals from its generation on.
//!
//! A journal is a sequence of frames, no file header:
//!
//! | offset | size  | field                                                     |
//! |--------|-------|-----------------------------------------------------------|
//! | 0      | 4     | body length `len`, u32 LE, 1..=[`MAX_COMMAND_BYTES`]      |
//! | 4      | 4     | CRC32 (IEEE, `crc32fast`) of the body, u32 LE             |
//! | 8      | `len` | body: a prost-encoded `shardlog.meta.v1.Command`          |
//!
//! A snapshot is one frame with a header of its own:
//!
//! | offset | size  | field                                                     |
//! |--------|-------|-----------------------------------------------------------|
//! | 0      | 8     | magic `SLMETASN`                                          |
//! | 8      | 4     | format version, u32 LE (currently 1)                      |
//! | 12     | 4     | CRC32 of the body, u32 LE                                 |
//! | 16     | 8     | body length, u64 LE; the file is exactly 24 + length long |
//! | 24     | len   | body: a prost-encoded `shardlog.meta.v1.Snapshot`         |
//!
//! Recovery: a bad frame at the end of the newest journal — one that runs past the end of the
//! file, is the file's last frame, or is followed by nothing but zeros — is a write torn by a
//! crash; it is cut off (and the cut synced) with a `warn!(truncated_bytes = …)`. A bad frame
//! with valid frames after it is corruption, reported as [`MetaError::Corrupt`], never skipped.

pub(crate) mod codec;
mod command;
pub(crate) mod journal;
mod queue;
pub(crate) mod snapshot;
mod state;
mod store;
#[cfg(test)]
mod tests;

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

pub use codec::CodecError;
pub use command::{MetaCommand, RuleDefinition, TargetMark};
pub use queue::{
    DoneCounts, MoveStatus, MoveTaskRecord, QueueCounters, QueueDefinition, QueueKind,
    QueueLeaseRecord, QueueRecord, QueueShardRecord,
};
pub use state::{GroupRecord, MetaState, RuleRecord};
pub use store::MetaStore;
#[cfg(test)]
use store::{MetaOptions, DEFAULT_SNAPSHOT_EVERY};

use crate::storage::SequenceNumber;
use crate::stream::{GroupName, RuleName, ShardId, StreamName};

/// What went wrong in the metadata layer.
///
/// Two kinds, told apart by [`MetaError::is_rejection`]: a *rejected command* (the request was
/// wrong for the current state; nothing was written and the store carries on), and a *broken
/// store* (I/O failure, corrupt files, poisoned) that no retry of the request will fix.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    /// CreateStream for a name that is taken.
    #[error("stream {stream} already exists")]
    StreamExists {
        /// The stream.
        stream: StreamName,
    },
    /// A command names a stream that does not exist.
    #[error("stream {stream} not found")]
    StreamNotFound {
        /// The stream.
        stream: StreamName,
    },
    /// CreateGroup for a group that exists.
    #[error("group {group} of stream {stream} already exists")]
    GroupExists {
        /// The stream.
        stream: StreamName,
        /// The group.
        group: GroupName,
    },
    /// A queue command names a group that hands out shards, not messages.
    #[error("group {group} of stream {stream} is not a queue group")]
    NotAQueue {
        /// The stream.
        stream: StreamName,
        /// The group.
        group: GroupName,
    },
    /// A move task that cannot start or change as asked.
    #[error("move task {task}: {reason}")]
    MoveRefused {
        /// The task.
        task: String,
        /// Why.
        reason: String,
    },
    /// ReshardStream whose layout does not extend the stream's.
    #[error("stream {stream} cannot switch to that shard layout: {reason}")]
    ReshardRefused {
        /// The stream.
        stream: StreamName,
        /// What the new layout gets wrong.
        reason: String,
    },
    /// RegisterConsumer for a name that is taken.
    #[error("consumer {consumer} of stream {stream} already exists")]
    ConsumerExists {
        /// The stream.
        stream: StreamName,
        /// The consumer's name.
        consumer: String,
    },
    /// No consumer is registered under that name.
    #[error("consumer {consumer} of stream {stream} not found")]
    ConsumerNotFound {
        /// The stream.
        stream: StreamName,
        /// The consumer's name.
        consumer: String,
    },
    /// A command names a group that does not exist.
    #[error("group {group} of stream {stream} not found")]
    GroupNotFound {
        /// The stream.
        stream: StreamName,
        /// The group.
        group: GroupName,
    },
    /// A command names a shard the stream does not have.
    #[error("shard {shard} of stream {stream} not found")]
    ShardNotFound {
        /// The stream.
        stream: StreamName,
        /// The shard.
        shard: ShardId,
    },
    /// A commit would move a checkpoint backwards; only a reset may.
    #[error(
        "checkpoint of group {group} on {stream}/{shard} is at {current}; committing {requested} \
         would move it backwards"
    )]
    CheckpointBackwards {
        /// The stream.
        stream: StreamName,
        /// The group.
        group: GroupName,
        /// The shard.
        shard: ShardId,
        /// The checkpoint in force.
        current: SequenceNumber,
        /// The lower sequence number that was committed.
        requested: SequenceNumber,
    },
    /// An epoch floor may only rise.
    #[error(
        "epoch floor of group {group} on stream {stream} is {floor}; {requested} would lower it"
    )]
    EpochFloorBackwards {
        /// The stream.
        stream: StreamName,
        /// The group.
        group: GroupName,
        /// The floor in force.
        floor: u64,
        /// The lower floor that was asked for.
        requested: u64,
    },
    /// A command names a rule that does not exist.
    #[error("rule {rule} not found")]
    RuleNotFound {
        /// The rule.
        rule: RuleName,
    },
    /// A rule's definition breaks a rule of the router (a target that is its source, a cycle,
    /// a changed source).
    #[error("rule {rule}: {reason}")]
    RuleRefused {
        /// The rule.
        rule: RuleName,
        /// Why.
        reason: String,
    },
    /// A rule's progress in a shard may only move forward.
    #[error("rule {rule} is at {current} in shard {shard}; {requested} would move it backwards")]
    RuleProgressBackwards {
        /// The rule.
        rule: RuleName,
        /// The source shard.
        shard: ShardId,
        /// The position in force.
        current: SequenceNumber,
        /// The lower position asked for.
        requested: SequenceNumber,
    },
    /// The command encodes to more than a journal frame may hold.
    #[error("command encodes to {bytes} bytes, above the limit of {max}")]
    CommandTooLarge {
        /// Its encoded size.
        bytes: usize,
        /// [`MAX_COMMAND_BYTES`].
        max: u32,
    },
    /// A file-system operation failed.
    #[error("when {op} {path}: {source}")]
    Io {
        /// What was being done (`"sync journal"`, `"write snapshot"`, ...).
        op: &'static str,
        /// The file or directory it was done to.
        path: PathBuf,
        /// The failure.
        #[source]
        source: io::Error,
    },
    /// A file holds bytes that are not what was written, before its end.
    #[error("{file} is corrupt at byte {position}: {reason}")]
    Corrupt {
        /// The file.
        file: PathBuf,
        /// Offset of the bad frame (or of the file's start for a bad snapshot).
        position: u64,
        /// What is wrong.
        reason: String,
    },
    /// A frame's checksum holds but its body does not decode: written by an incompatible
    /// version, or by a bug.
    #[error("{file} at byte {position} holds an entry that does not decode: {source}")]
    Decode {
        /// The file.
        file: PathBuf,
        /// Offset of the frame.
        position: u64,
        /// Why it does not decode.
        #[source]
        source: CodecError,
    },
    /// A journaled command is rejected by the state it is replayed onto.
    #[error("{file} at byte {position} holds a command that does not apply: {source}")]
    Replay {
        /// The journal.
        file: PathBuf,
        /// Offset of the frame.
        position: u64,
        /// The rejection.
        #[source]
        source: Box<MetaError>,
    },
    /// A write or sync failed earlier; the store refuses further commands until it is reopened,
    /// because after a failed fsync nothing can say which bytes reached the disk.
    #[error("the metadata store refuses commands since an earlier failure; restart to recover")]
    Poisoned {
        /// The failure that poisoned the store (a failed write or sync), as it was reported.
        #[source]
        cause: Arc<MetaError>,
    },
}

impl MetaError {
    /// True when the command was rejected by the state (the request is at fault and nothing was
    /// written); false when the store itself is broken.
    pub fn is_rejection(&self) -> bool {
        match self {
            MetaError::StreamExists { .. }
            | MetaError::StreamNotFound { .. }
            | MetaError::GroupExists { .. }
            | MetaError::GroupNotFound { .. }
            | MetaError::NotAQueue { .. }
            | MetaError::MoveRefused { .. }
            | MetaError::ConsumerExists { .. }
            | MetaError::ConsumerNotFound { .. }
            | MetaError::ReshardRefused { .. }
            | MetaError::ShardNotFound { .. }
            | MetaError::CheckpointBackwards { .. }
            | MetaError::EpochFloorBackwards { .. }
            | MetaError::RuleNotFound { .. }
            | MetaError::RuleRefused { .. }
            | MetaError::RuleProgressBackwards { .. }
            | MetaError::CommandTooLarge { .. } => true,
            MetaError::Io { .. }
            | MetaError::Corrupt { .. }
            | MetaError::Decode { .. }
            | MetaError::Replay { .. }
            | MetaError::Poisoned { .. } => false,
        }
    }
}
