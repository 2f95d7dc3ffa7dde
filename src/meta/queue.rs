//! The durable part of a queue group: its definition, and per shard a low-water mark with the
//! done and leased messages above it — what a restart needs so that no deleted message is
//! delivered again and no receive count goes back.
//!
//! ```text
//!  shard:  … done … │start│ done? leased(count, deadline)? … │ not yet looked at …
//!                   └──── bounded by the group's window ───────┘
//! ```
//!
//! Messages at or after `start` that are neither done nor leased are visible (never received,
//! or received and let go). Visibility deadlines are kept, so a message received before a crash
//! stays invisible until its deadline after it, and its receipt handle keeps working.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::route::Filter;
use crate::storage::{SequenceNumber, Timestamp};
use crate::stream::{ShardId, StreamName};

/// How a queue group hands out messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueueKind {
    /// Per message group, in sequence order, one group's messages to one worker at a time.
    Fifo,
    /// Any visible message to any worker.
    Standard,
}

/// What CreateGroup makes a queue group do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueDefinition {
    /// FIFO or standard.
    pub kind: QueueKind,
    /// How long a received message stays invisible when the receive asks for no other time.
    pub visibility_timeout: Duration,
    /// Receives after which a message goes to the dead-letter stream instead; 0: never.
    pub max_receive_count: u32,
    /// Where messages received `max_receive_count` times go.
    pub dead_letter_stream: Option<StreamName>,
    /// Only matching records enter the queue; `None`: all.
    pub filter: Option<Filter>,
    /// The principal that made the group (with an auth file): messages are moved to the
    /// dead-letter stream with its rights, checked again at every move.
    pub owner: Option<String>,
}

/// A received message not yet done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLeaseRecord {
    /// How many times it was received.
    pub receive_count: u32,
    /// When it becomes visible again.
    pub deadline_ms: Timestamp,
}

/// The durable state of one shard of a queue group.
///
/// Invariant: every sequence in `done` and `leased` is at least `start`, and none is in both.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QueueShardRecord {
    /// Everything before it is done.
    pub start: SequenceNumber,
    /// Done messages at or after `start`.
    pub done: BTreeSet<SequenceNumber>,
    /// Received messages at or after `start` that are not done.
    pub leased: BTreeMap<SequenceNumber, QueueLeaseRecord>,
}

/// What a queue group has done since it was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueCounters {
    /// Messages handed out (every receive of every message).
    pub received: u64,
    /// Messages deleted.
    pub deleted: u64,
    /// Messages moved to the dead-letter stream.
    pub dead_lettered: u64,
    /// Messages retention removed before the group was done with them.
    pub expired: u64,
}

/// The durable state of a queue group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueRecord {
    /// What it is.
    pub definition: QueueDefinition,
    /// Per shard, its low-water mark and what is done or leased above it.
    pub shards: BTreeMap<ShardId, QueueShardRecord>,
    /// Its counters.
    pub counters: QueueCounters,
}

/// How many messages of a [`QueueDone`](super::MetaCommand::QueueDone) were done which way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DoneCounts {
    /// Deleted by a worker.
    pub deleted: u64,
    /// Moved to the dead-letter stream.
    pub dead_lettered: u64,
    /// Removed by retention first.
    pub expired: u64,
}

/// Where a move task stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveStatus {
    /// Moving.
    Running,
    /// Moved everything it counted at the start.
    Completed,
    /// Stopped on request; what it moved stays moved.
    Cancelled,
    /// Stopped by an error (its reason is kept).
    Failed,
}

/// A task moving what a dead-letter stream holds back to where each message came from, or
/// into another stream. Finished tasks are kept (the newest [`MAX_KEPT_MOVE_TASKS`] per
/// source) so that the next task of the source starts where they stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoveTaskRecord {
    /// Its id.
    pub task_id: String,
    /// The dead-letter stream it reads.
    pub source: StreamName,
    /// Where every message goes; `None`: back to its source stream.
    pub destination: Option<StreamName>,
    /// Most messages per second; 0: no limit.
    pub max_per_second: u32,
    /// When it started.
    pub started_at_ms: Timestamp,
    /// Per source shard, the first sequence number it moves.
    pub start: BTreeMap<ShardId, SequenceNumber>,
    /// Per source shard, where it stops (the shard's end when it started).
    pub end: BTreeMap<ShardId, SequenceNumber>,
    /// Per source shard, the next sequence number to move.
    pub next: BTreeMap<ShardId, SequenceNumber>,
    /// Messages to move, counted at the start.
    pub to_move: u64,
    /// Messages moved.
    pub moved: u64,
    /// Where it stands.
    pub status: MoveStatus,
    /// Why it failed.
    pub failure_reason: String,
}

/// Finished move tasks kept per source stream.
pub const MAX_KEPT_MOVE_TASKS: usize = 10;

impl QueueRecord {
    /// A new queue group starting at `start` in each shard.
    pub fn new(definition: QueueDefinition, start: &BTreeMap<ShardId, SequenceNumber>) -> Self {
        QueueRecord {
            definition,
            shards: start
                .iter()
                .map(|(shard, &start)| {
                    (
                        *shard,
                        QueueShardRecord {
                            start,
                            ..QueueShardRecord::default()
                        },
                    )
                })
                .collect(),
            counters: QueueCounters::default(),
        }
    }

    /// Applies a lease: receive counts only rise, a done message stays done.
    pub fn lease(
        &mut self,
        shard: ShardId,
        deadline_ms: Timestamp,
        messages: &[(SequenceNumber, u32)],
        received: bool,
    ) {
        let record = self.shards.entry(shard).or_default();
        for &(sequence, receive_count) in messages {
            if sequence < record.start || record.done.contains(&sequence) {
                continue;
            }
            let lease = record.leased.entry(sequence).or_insert(QueueLeaseRecord {
                receive_count,
                deadline_ms,
            });
            lease.receive_count = lease.receive_count.max(receive_count);
            lease.deadline_ms = deadline_ms;
        }
        if received {
            self.counters.received += messages.len() as u64;
        }
    }

    /// Applies a done: the messages are done, the low-water mark only rises, and what falls
    /// below it is forgotten.
    pub fn done(
        &mut self,
        shard: ShardId,
        sequences: &[SequenceNumber],
        start: SequenceNumber,
        counts: DoneCounts,
    ) {
        let record = self.shards.entry(shard).or_default();
        record.start = record.start.max(start);
        for &sequence in sequences {
            record.leased.remove(&sequence);
            if sequence >= record.start {
                record.done.insert(sequence);
            }
        }
        let start = record.start;
        record.done = record.done.split_off(&start);
        record.leased = record.leased.split_off(&start);
        self.counters.deleted += counts.deleted;
        self.counters.dead_lettered += counts.dead_lettered;
        self.counters.expired += counts.expired;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> QueueRecord {
        QueueRecord::new(
            QueueDefinition {
                kind: QueueKind::Fifo,
                visibility_timeout: Duration::from_secs(30),
                max_receive_count: 3,
                dead_letter_stream: None,
                filter: None,
                owner: None,
            },
            &[(ShardId(0), SequenceNumber::new(10))].into(),
        )
    }

    fn seq(n: u64) -> SequenceNumber {
        SequenceNumber::new(n)
    }

    #[test]
    fn receive_counts_only_rise_and_done_messages_stay_done() {
        let mut q = record();
        let at = Timestamp::from_millis(100);
        q.lease(ShardId(0), at, &[(seq(10), 2), (seq(11), 1)], true);
        q.lease(ShardId(0), at, &[(seq(10), 1)], false);
        assert_eq!(q.shards[&ShardId(0)].leased[&seq(10)].receive_count, 2);
        q.done(ShardId(0), &[seq(11)], seq(10), DoneCounts::default());
        q.lease(ShardId(0), at, &[(seq(11), 3)], true);
        assert!(!q.shards[&ShardId(0)].leased.contains_key(&seq(11)));
        assert_eq!(q.counters.received, 3);
    }

    #[test]
    fn the_low_water_mark_only_rises_and_forgets_what_falls_below_it() {
        let mut q = record();
        let at = Timestamp::from_millis(100);
        q.lease(ShardId(0), at, &[(seq(12), 1), (seq(14), 1)], true);
        q.done(
            ShardId(0),
            &[seq(10), seq(11), seq(13)],
            seq(12),
            DoneCounts {
                deleted: 3,
                ..DoneCounts::default()
            },
        );
        q.done(ShardId(0), &[], seq(5), DoneCounts::default());
        let shard = &q.shards[&ShardId(0)];
        assert_eq!(shard.start, seq(12));
        assert_eq!(shard.done.iter().copied().collect::<Vec<_>>(), [seq(13)]);
        assert_eq!(shard.leased.len(), 2);
        q.done(ShardId(0), &[seq(12)], seq(14), DoneCounts::default());
        let shard = &q.shards[&ShardId(0)];
        assert!(shard.done.is_empty());
        assert_eq!(shard.leased.keys().copied().collect::<Vec<_>>(), [seq(14)]);
        assert_eq!(q.counters.deleted, 3);
    }
}
