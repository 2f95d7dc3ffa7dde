//! [`MetaCommand`]: every change the metadata state machine knows, as a value that can be
//! validated, journaled, replayed and (later) replicated.

use std::collections::BTreeMap;

use super::queue::{DoneCounts, MoveStatus, MoveTaskRecord, QueueDefinition};
use crate::route::Filter;
use crate::storage::{SequenceNumber, Timestamp};
use crate::stream::{GroupName, RuleName, ShardId, StreamChange, StreamDescriptor, StreamName};

/// How far a target stream's shards reached when a rule last recorded its progress: where a
/// restarted rule starts looking for what it routed since (its deduplication ids tell).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TargetMark {
    /// When the target stream was created: a target deleted and made again starts afresh.
    pub created_at_ms: Timestamp,
    /// Per target shard, its next sequence number at the time.
    pub next: BTreeMap<ShardId, SequenceNumber>,
}

/// A rule's definition, as PutRule gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleDefinition {
    /// The stream it reads.
    pub source: StreamName,
    /// Which records it routes; `None` routes all.
    pub filter: Option<Filter>,
    /// Where to, without repeats.
    pub targets: Vec<StreamName>,
    /// False keeps the rule's position and routes nothing.
    pub enabled: bool,
    /// The principal that made it (with an auth file): the rule routes with its rights, checked
    /// again before every batch it puts.
    pub owner: Option<String>,
}

/// One change to the metadata. Applying the same commands in the same order to the same state
/// always gives the same result: no clock, no randomness inside `apply`; times are carried in
/// the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaCommand {
    /// Creates a stream with its shards. Rejected if the name is taken.
    CreateStream(StreamDescriptor),
    /// Deletes a stream and every consumer group of it.
    DeleteStream(StreamName),
    /// Switches a stream to a new shard layout: the descriptor after a split, merge or
    /// scaling. Refused unless it keeps every shard the stream has (closing some) and only
    /// adds new ones.
    ReshardStream(StreamDescriptor),
    /// Retires closed shards that retention has emptied: they are no longer listed and their
    /// logs are deleted; their ids stay taken and their children still name them. Refused
    /// for an open shard or one retired already.
    RetireShards {
        /// The stream.
        stream: StreamName,
        /// The shards.
        shards: Vec<ShardId>,
    },
    /// Changes a stream's retention or one of its options. Registering a consumer whose name
    /// is taken, or deregistering one that is not there, is refused.
    UpdateStream {
        /// The stream.
        stream: StreamName,
        /// The change.
        change: StreamChange,
    },
    /// Creates a consumer group on an existing stream.
    CreateGroup {
        /// The stream.
        stream: StreamName,
        /// The new group.
        group: GroupName,
        /// Wall-clock creation time.
        created_at_ms: Timestamp,
        /// For a queue group: what it is, and where it starts in each shard.
        queue: Option<(QueueDefinition, BTreeMap<ShardId, SequenceNumber>)>,
    },
    /// Leases messages of a queue group's shard until a deadline: a receive (which counts them
    /// as received) or a change of visibility. Receive counts never go back; a done message
    /// stays done.
    QueueLease {
        /// The stream.
        stream: StreamName,
        /// The queue group.
        group: GroupName,
        /// The group's creation time: a command of a group deleted and made again under the
        /// same name is refused instead of changing the new one.
        incarnation: Timestamp,
        /// The shard.
        shard: ShardId,
        /// When the lease ends.
        deadline_ms: Timestamp,
        /// Each message with its receive count after the lease.
        messages: Vec<(SequenceNumber, u32)>,
        /// True for a receive.
        received: bool,
    },
    /// Marks messages of a queue group's shard done and raises its low-water mark.
    QueueDone {
        /// The stream.
        stream: StreamName,
        /// The queue group.
        group: GroupName,
        /// The group's creation time, as in `QueueLease`.
        incarnation: Timestamp,
        /// The shard.
        shard: ShardId,
        /// The messages done.
        sequences: Vec<SequenceNumber>,
        /// The shard's low-water mark: everything before it is done. Never goes back.
        start: SequenceNumber,
        /// How they were done, for the group's counters.
        counts: DoneCounts,
    },
    /// Starts a task moving dead letters. Refused while another task of the same source runs.
    StartMoveTask(MoveTaskRecord),
    /// Records a move task's progress (never backwards) and, unless `status` is running, its
    /// end.
    MoveProgress {
        /// The task.
        task_id: String,
        /// Per source shard, the next sequence number to move.
        next: BTreeMap<ShardId, SequenceNumber>,
        /// Messages moved in total.
        moved: u64,
        /// Where it stands now.
        status: MoveStatus,
        /// Why it failed.
        failure_reason: String,
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
    /// Creates a rule, or replaces the definition of an existing one: a replaced rule keeps its
    /// creation time and progress, a new target gets the mark the command carries, a kept
    /// target keeps its older one. Refused when a target is the source or missing, when the
    /// rule would close a cycle of rules, or when a replacement changes the source.
    PutRule {
        /// The rule.
        rule: RuleName,
        /// What it does.
        definition: RuleDefinition,
        /// Wall-clock time of the request: the creation time of a new rule, which also tells
        /// its incarnations apart.
        created_at_ms: Timestamp,
        /// Where a new rule starts in each source shard.
        start: BTreeMap<ShardId, SequenceNumber>,
        /// The targets' current ends, for targets the rule did not have.
        marks: BTreeMap<StreamName, TargetMark>,
    },
    /// Deletes a rule and its progress.
    DeleteRule(RuleName),
    /// Records a rule's progress: per source shard, the next sequence number to look at
    /// (never backwards), and each target's mark at that moment.
    RuleProgress {
        /// The rule.
        rule: RuleName,
        /// The next sequence number per source shard.
        next: BTreeMap<ShardId, SequenceNumber>,
        /// Each target's ends when that progress was reached.
        marks: BTreeMap<StreamName, TargetMark>,
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

impl MetaCommand {
    /// True for the commands of a queue group's messages: they change only that group's
    /// message state, so a batch of them validates against the state before the batch.
    pub fn is_queue_command(&self) -> bool {
        matches!(
            self,
            MetaCommand::QueueLease { .. } | MetaCommand::QueueDone { .. }
        )
    }
}
