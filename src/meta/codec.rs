//! Conversion between the metadata's domain types and their `shardlog.meta.v1` protobuf
//! encoding, for journal entries and snapshots. Decoding validates everything it builds, so a
//! decoded state obeys the same invariants as one built by commands.

use std::collections::BTreeMap;
use std::time::Duration;

use prost::Message;

use super::queue::{
    DoneCounts, MoveStatus, MoveTaskRecord, QueueCounters, QueueDefinition, QueueKind,
    QueueLeaseRecord, QueueRecord, QueueShardRecord,
};
use super::{GroupRecord, MetaCommand, MetaState, RuleDefinition, RuleRecord, TargetMark};
use crate::proto::meta as pb;
use crate::route::{Filter, FilterScope};
use crate::storage::{SequenceNumber, Timestamp};
use crate::stream::{
    DedupScope, GroupName, HashKey, HashKeyRange, ModelError, RuleName, ShardDescriptor, ShardId,
    StreamChange, StreamConsumer, StreamDescriptor, StreamMode, StreamName, StreamOptions,
    StreamSettings,
};

/// Why bytes whose checksum holds do not decode into metadata.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// Not a valid protobuf message of the expected type.
    #[error("protobuf decoding failed: {0}")]
    Protobuf(#[from] prost::DecodeError),
    /// A required field is absent.
    #[error("required field {field} is missing")]
    Missing {
        /// The field.
        field: &'static str,
    },
    /// A field holds a value the model rejects.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The parts are valid alone but contradict each other (e.g. a group of a missing stream).
    #[error("inconsistent snapshot: {reason}")]
    Inconsistent {
        /// What contradicts what.
        reason: String,
    },
}

/// Encodes a command as a journal entry body.
pub(crate) fn encode_command(cmd: &MetaCommand) -> Vec<u8> {
    use pb::command::Command as C;
    let command = match cmd {
        MetaCommand::CreateStream(descriptor) => C::CreateStream(pb::CreateStream {
            stream: Some(stream_to_pb(descriptor)),
        }),
        MetaCommand::DeleteStream(stream) => C::DeleteStream(pb::DeleteStream {
            stream: stream.to_string(),
        }),
        MetaCommand::CreateGroup {
            stream,
            group,
            created_at_ms,
            queue,
        } => C::CreateGroup(pb::CreateGroup {
            stream: stream.to_string(),
            group: group.to_string(),
            created_at_ms: created_at_ms.as_millis(),
            queue: queue.as_ref().map(|(d, _)| queue_definition_to_pb(d)),
            queue_start: queue
                .as_ref()
                .map(|(_, start)| positions_to_pb(start))
                .unwrap_or_default(),
        }),
        MetaCommand::QueueLease {
            stream,
            group,
            incarnation,
            shard,
            deadline_ms,
            messages,
            received,
        } => C::QueueLease(pb::QueueLease {
            stream: stream.to_string(),
            group: group.to_string(),
            incarnation_ms: incarnation.as_millis(),
            shard: shard.index(),
            deadline_ms: deadline_ms.as_millis(),
            messages: messages
                .iter()
                .map(|&(sequence, receive_count)| pb::QueueMessage {
                    sequence: sequence.get(),
                    receive_count,
                })
                .collect(),
            received: *received,
        }),
        MetaCommand::StartMoveTask(task) => C::StartMoveTask(pb::StartMoveTask {
            task: Some(move_task_to_pb(task)),
        }),
        MetaCommand::MoveProgress {
            task_id,
            next,
            moved,
            status,
            failure_reason,
        } => C::MoveProgress(pb::MoveProgress {
            task_id: task_id.clone(),
            next: positions_to_pb(next),
            moved: *moved,
            status: move_status_to_pb(*status),
            failure_reason: failure_reason.clone(),
        }),
        MetaCommand::QueueDone {
            stream,
            group,
            incarnation,
            shard,
            sequences,
            start,
            counts,
        } => C::QueueDone(pb::QueueDone {
            stream: stream.to_string(),
            group: group.to_string(),
            incarnation_ms: incarnation.as_millis(),
            shard: shard.index(),
            sequences: sequences.iter().map(|s| s.get()).collect(),
            start: start.get(),
            deleted: counts.deleted,
            dead_lettered: counts.dead_lettered,
            expired: counts.expired,
        }),
        MetaCommand::ReshardStream(descriptor) => C::ReshardStream(pb::ReshardStream {
            stream: Some(stream_to_pb(descriptor)),
        }),
        MetaCommand::RetireShards { stream, shards } => C::RetireShards(pb::RetireShards {
            stream: stream.to_string(),
            shards: shards.iter().map(|s| s.index()).collect(),
        }),
        MetaCommand::UpdateStream { stream, change } => C::UpdateStream(pb::UpdateStream {
            stream: stream.to_string(),
            change: Some(change_to_pb(change)),
        }),
        MetaCommand::DeleteGroup { stream, group } => C::DeleteGroup(pb::DeleteGroup {
            stream: stream.to_string(),
            group: group.to_string(),
        }),
        MetaCommand::CommitCheckpoint {
            stream,
            group,
            shard,
            sequence,
        } => C::CommitCheckpoint(pb::CommitCheckpoint {
            stream: stream.to_string(),
            group: group.to_string(),
            shard: shard.index(),
            sequence: sequence.get(),
        }),
        MetaCommand::ResetCheckpoint {
            stream,
            group,
            shard,
            sequence,
        } => C::ResetCheckpoint(pb::ResetCheckpoint {
            stream: stream.to_string(),
            group: group.to_string(),
            shard: shard.index(),
            sequence: sequence.map(SequenceNumber::get),
        }),
        MetaCommand::RaiseEpochFloor {
            stream,
            group,
            epoch,
        } => C::RaiseEpochFloor(pb::RaiseEpochFloor {
            stream: stream.to_string(),
            group: group.to_string(),
            epoch: *epoch,
        }),
        MetaCommand::PutRule {
            rule,
            definition,
            created_at_ms,
            start,
            marks,
        } => C::PutRule(pb::PutRule {
            rule: rule.to_string(),
            definition: Some(definition_to_pb(definition)),
            created_at_ms: created_at_ms.as_millis(),
            start: positions_to_pb(start),
            marks: marks_to_pb(marks),
        }),
        MetaCommand::DeleteRule(rule) => C::DeleteRule(pb::DeleteRule {
            rule: rule.to_string(),
        }),
        MetaCommand::RuleProgress { rule, next, marks } => C::RuleProgress(pb::RuleProgress {
            rule: rule.to_string(),
            next: positions_to_pb(next),
            marks: marks_to_pb(marks),
        }),
    };
    pb::Command {
        command: Some(command),
    }
    .encode_to_vec()
}

/// Decodes a journal entry body.
pub(crate) fn decode_command(body: &[u8]) -> Result<MetaCommand, CodecError> {
    use pb::command::Command as C;
    let command = pb::Command::decode(body)?
        .command
        .ok_or(CodecError::Missing { field: "command" })?;
    Ok(match command {
        C::CreateStream(c) => MetaCommand::CreateStream(stream_from_pb(
            c.stream.ok_or(CodecError::Missing { field: "stream" })?,
        )?),
        C::DeleteStream(c) => MetaCommand::DeleteStream(StreamName::new(c.stream)?),
        C::ReshardStream(c) => MetaCommand::ReshardStream(stream_from_pb(
            c.stream.ok_or(CodecError::Missing { field: "stream" })?,
        )?),
        C::RetireShards(c) => MetaCommand::RetireShards {
            stream: StreamName::new(c.stream)?,
            shards: c.shards.into_iter().map(ShardId).collect(),
        },
        C::UpdateStream(c) => MetaCommand::UpdateStream {
            stream: StreamName::new(c.stream)?,
            change: change_from_pb(c.change.ok_or(CodecError::Missing { field: "change" })?)?,
        },
        C::CreateGroup(c) => MetaCommand::CreateGroup {
            stream: StreamName::new(c.stream)?,
            group: GroupName::new(c.group)?,
            created_at_ms: Timestamp::from_millis(c.created_at_ms),
            queue: match c.queue {
                Some(d) => Some((
                    queue_definition_from_pb(d)?,
                    positions_from_pb(c.queue_start),
                )),
                None => None,
            },
        },
        C::QueueLease(c) => MetaCommand::QueueLease {
            stream: StreamName::new(c.stream)?,
            group: GroupName::new(c.group)?,
            incarnation: Timestamp::from_millis(c.incarnation_ms),
            shard: ShardId(c.shard),
            deadline_ms: Timestamp::from_millis(c.deadline_ms),
            messages: c
                .messages
                .into_iter()
                .map(|m| (SequenceNumber::new(m.sequence), m.receive_count))
                .collect(),
            received: c.received,
        },
        C::StartMoveTask(c) => MetaCommand::StartMoveTask(move_task_from_pb(
            c.task.ok_or(CodecError::Missing { field: "task" })?,
        )?),
        C::MoveProgress(c) => MetaCommand::MoveProgress {
            task_id: c.task_id,
            next: positions_from_pb(c.next),
            moved: c.moved,
            status: move_status_from_pb(c.status)?,
            failure_reason: c.failure_reason,
        },
        C::QueueDone(c) => MetaCommand::QueueDone {
            stream: StreamName::new(c.stream)?,
            group: GroupName::new(c.group)?,
            incarnation: Timestamp::from_millis(c.incarnation_ms),
            shard: ShardId(c.shard),
            sequences: c.sequences.into_iter().map(SequenceNumber::new).collect(),
            start: SequenceNumber::new(c.start),
            counts: DoneCounts {
                deleted: c.deleted,
                dead_lettered: c.dead_lettered,
                expired: c.expired,
            },
        },
        C::DeleteGroup(c) => MetaCommand::DeleteGroup {
            stream: StreamName::new(c.stream)?,
            group: GroupName::new(c.group)?,
        },
        C::CommitCheckpoint(c) => MetaCommand::CommitCheckpoint {
            stream: StreamName::new(c.stream)?,
            group: GroupName::new(c.group)?,
            shard: ShardId(c.shard),
            sequence: SequenceNumber::new(c.sequence),
        },
        C::ResetCheckpoint(c) => MetaCommand::ResetCheckpoint {
            stream: StreamName::new(c.stream)?,
            group: GroupName::new(c.group)?,
            shard: ShardId(c.shard),
            sequence: c.sequence.map(SequenceNumber::new),
        },
        C::RaiseEpochFloor(c) => MetaCommand::RaiseEpochFloor {
            stream: StreamName::new(c.stream)?,
            group: GroupName::new(c.group)?,
            epoch: c.epoch,
        },
        C::PutRule(c) => MetaCommand::PutRule {
            rule: RuleName::new(c.rule)?,
            definition: definition_from_pb(c.definition.ok_or(CodecError::Missing {
                field: "definition",
            })?)?,
            created_at_ms: Timestamp::from_millis(c.created_at_ms),
            start: positions_from_pb(c.start),
            marks: marks_from_pb(c.marks)?,
        },
        C::DeleteRule(c) => MetaCommand::DeleteRule(RuleName::new(c.rule)?),
        C::RuleProgress(c) => MetaCommand::RuleProgress {
            rule: RuleName::new(c.rule)?,
            next: positions_from_pb(c.next),
            marks: marks_from_pb(c.marks)?,
        },
    })
}

fn filter_to_pb(f: &Filter) -> pb::Filter {
    pb::Filter {
        pattern: f.pattern.clone(),
        scope: match f.scope {
            FilterScope::Data => 0,
            FilterScope::Attributes => 1,
        },
    }
}

fn filter_from_pb(f: pb::Filter) -> Filter {
    Filter {
        pattern: f.pattern,
        scope: if f.scope == 1 {
            FilterScope::Attributes
        } else {
            FilterScope::Data
        },
    }
}

fn queue_definition_to_pb(d: &QueueDefinition) -> pb::QueueDefinition {
    pb::QueueDefinition {
        kind: match d.kind {
            QueueKind::Fifo => 0,
            QueueKind::Standard => 1,
        },
        visibility_timeout_ms: duration_to_ms(d.visibility_timeout),
        max_receive_count: d.max_receive_count,
        dead_letter_stream: d
            .dead_letter_stream
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        filter: d.filter.as_ref().map(filter_to_pb),
        owner: d.owner.clone(),
    }
}

fn queue_definition_from_pb(d: pb::QueueDefinition) -> Result<QueueDefinition, CodecError> {
    Ok(QueueDefinition {
        kind: match d.kind {
            0 => QueueKind::Fifo,
            1 => QueueKind::Standard,
            other => {
                return Err(ModelError::InvalidField {
                    field: "queue kind",
                    reason: format!("unknown value {other}"),
                }
                .into())
            }
        },
        visibility_timeout: Duration::from_millis(d.visibility_timeout_ms),
        max_receive_count: d.max_receive_count,
        dead_letter_stream: if d.dead_letter_stream.is_empty() {
            None
        } else {
            Some(StreamName::new(d.dead_letter_stream)?)
        },
        filter: d.filter.map(filter_from_pb),
        owner: d.owner,
    })
}

fn queue_to_pb(q: &QueueRecord) -> (Vec<pb::QueueShard>, pb::QueueCounters) {
    let shards = q
        .shards
        .iter()
        .map(|(shard, r)| pb::QueueShard {
            shard: shard.index(),
            start: r.start.get(),
            done: r.done.iter().map(|s| s.get()).collect(),
            leased: r
                .leased
                .iter()
                .map(|(s, l)| pb::QueueMessage {
                    sequence: s.get(),
                    receive_count: l.receive_count,
                })
                .collect(),
            deadlines: r
                .leased
                .values()
                .map(|l| l.deadline_ms.as_millis())
                .collect(),
        })
        .collect();
    let c = q.counters;
    (
        shards,
        pb::QueueCounters {
            received: c.received,
            deleted: c.deleted,
            dead_lettered: c.dead_lettered,
            expired: c.expired,
        },
    )
}

fn queue_from_pb(
    definition: pb::QueueDefinition,
    shards: Vec<pb::QueueShard>,
    counters: Option<pb::QueueCounters>,
) -> Result<QueueRecord, CodecError> {
    let mut record = QueueRecord::new(queue_definition_from_pb(definition)?, &BTreeMap::new());
    for shard in shards {
        if shard.leased.len() != shard.deadlines.len() {
            return Err(CodecError::Inconsistent {
                reason: format!(
                    "queue shard {} has {} leased messages and {} deadlines",
                    shard.shard,
                    shard.leased.len(),
                    shard.deadlines.len()
                ),
            });
        }
        let start = SequenceNumber::new(shard.start);
        record.shards.insert(
            ShardId(shard.shard),
            QueueShardRecord {
                start,
                done: shard
                    .done
                    .into_iter()
                    .map(SequenceNumber::new)
                    .filter(|&s| s >= start)
                    .collect(),
                leased: shard
                    .leased
                    .into_iter()
                    .zip(shard.deadlines)
                    .map(|(m, deadline)| {
                        (
                            SequenceNumber::new(m.sequence),
                            QueueLeaseRecord {
                                receive_count: m.receive_count,
                                deadline_ms: Timestamp::from_millis(deadline),
                            },
                        )
                    })
                    .filter(|(s, _)| *s >= start)
                    .collect(),
            },
        );
    }
    let c = counters.unwrap_or_default();
    record.counters = QueueCounters {
        received: c.received,
        deleted: c.deleted,
        dead_lettered: c.dead_lettered,
        expired: c.expired,
    };
    Ok(record)
}

fn move_status_to_pb(s: MoveStatus) -> u32 {
    match s {
        MoveStatus::Running => 0,
        MoveStatus::Completed => 1,
        MoveStatus::Cancelled => 2,
        MoveStatus::Failed => 3,
    }
}

fn move_status_from_pb(s: u32) -> Result<MoveStatus, CodecError> {
    Ok(match s {
        0 => MoveStatus::Running,
        1 => MoveStatus::Completed,
        2 => MoveStatus::Cancelled,
        3 => MoveStatus::Failed,
        other => {
            return Err(ModelError::InvalidField {
                field: "move task status",
                reason: format!("unknown value {other}"),
            }
            .into())
        }
    })
}

fn move_task_to_pb(t: &MoveTaskRecord) -> pb::MoveTask {
    pb::MoveTask {
        task_id: t.task_id.clone(),
        source: t.source.to_string(),
        destination: t
            .destination
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        max_messages_per_second: t.max_per_second,
        started_at_ms: t.started_at_ms.as_millis(),
        start: positions_to_pb(&t.start),
        end: positions_to_pb(&t.end),
        next: positions_to_pb(&t.next),
        to_move: t.to_move,
        moved: t.moved,
        status: move_status_to_pb(t.status),
        failure_reason: t.failure_reason.clone(),
    }
}

fn move_task_from_pb(t: pb::MoveTask) -> Result<MoveTaskRecord, CodecError> {
    Ok(MoveTaskRecord {
        task_id: t.task_id,
        source: StreamName::new(t.source)?,
        destination: if t.destination.is_empty() {
            None
        } else {
            Some(StreamName::new(t.destination)?)
        },
        max_per_second: t.max_messages_per_second,
        started_at_ms: Timestamp::from_millis(t.started_at_ms),
        start: positions_from_pb(t.start),
        end: positions_from_pb(t.end),
        next: positions_from_pb(t.next),
        to_move: t.to_move,
        moved: t.moved,
        status: move_status_from_pb(t.status)?,
        failure_reason: t.failure_reason,
    })
}

fn definition_to_pb(d: &RuleDefinition) -> pb::RuleDefinition {
    pb::RuleDefinition {
        source: d.source.to_string(),
        filter: d.filter.as_ref().map(filter_to_pb),
        targets: d.targets.iter().map(ToString::to_string).collect(),
        enabled: d.enabled,
        owner: d.owner.clone(),
    }
}

fn definition_from_pb(d: pb::RuleDefinition) -> Result<RuleDefinition, CodecError> {
    Ok(RuleDefinition {
        source: StreamName::new(d.source)?,
        filter: d.filter.map(filter_from_pb),
        targets: d
            .targets
            .into_iter()
            .map(StreamName::new)
            .collect::<Result<_, _>>()?,
        enabled: d.enabled,
        owner: d.owner,
    })
}

fn positions_to_pb(p: &BTreeMap<ShardId, SequenceNumber>) -> Vec<pb::ShardPosition> {
    p.iter()
        .map(|(shard, sequence)| pb::ShardPosition {
            shard: shard.index(),
            sequence: sequence.get(),
        })
        .collect()
}

fn positions_from_pb(p: Vec<pb::ShardPosition>) -> BTreeMap<ShardId, SequenceNumber> {
    p.into_iter()
        .map(|p| (ShardId(p.shard), SequenceNumber::new(p.sequence)))
        .collect()
}

fn marks_to_pb(marks: &BTreeMap<StreamName, TargetMark>) -> Vec<pb::TargetMark> {
    marks
        .iter()
        .map(|(stream, mark)| pb::TargetMark {
            stream: stream.to_string(),
            created_at_ms: mark.created_at_ms.as_millis(),
            next: positions_to_pb(&mark.next),
        })
        .collect()
}

fn marks_from_pb(
    marks: Vec<pb::TargetMark>,
) -> Result<BTreeMap<StreamName, TargetMark>, CodecError> {
    marks
        .into_iter()
        .map(|m| {
            Ok((
                StreamName::new(m.stream)?,
                TargetMark {
                    created_at_ms: Timestamp::from_millis(m.created_at_ms),
                    next: positions_from_pb(m.next),
                },
            ))
        })
        .collect()
}

/// Encodes the whole state, tagged with the generation whose journal follows it.
pub(crate) fn encode_snapshot(generation: u64, state: &MetaState) -> Vec<u8> {
    pb::Snapshot {
        generation,
        streams: state.streams.values().map(stream_to_pb).collect(),
        groups: state
            .groups
            .iter()
            .map(|((stream, group), record)| {
                let (queue_shards, queue_counters) = match &record.queue {
                    Some(q) => {
                        let (shards, counters) = queue_to_pb(q);
                        (shards, Some(counters))
                    }
                    None => (Vec::new(), None),
                };
                pb::Group {
                    queue: record
                        .queue
                        .as_ref()
                        .map(|q| queue_definition_to_pb(&q.definition)),
                    queue_shards,
                    queue_counters,
                    stream: stream.to_string(),
                    group: group.to_string(),
                    created_at_ms: record.created_at_ms.as_millis(),
                    checkpoints: record
                        .checkpoints
                        .iter()
                        .map(|(shard, sequence)| pb::Checkpoint {
                            shard: shard.index(),
                            sequence: sequence.get(),
                        })
                        .collect(),
                    epoch_floor: record.epoch_floor,
                }
            })
            .collect(),
        rules: state
            .rules
            .iter()
            .map(|(name, r)| pb::Rule {
                rule: name.to_string(),
                definition: Some(definition_to_pb(&r.definition)),
                created_at_ms: r.created_at_ms.as_millis(),
                next: positions_to_pb(&r.next),
                marks: marks_to_pb(&r.marks),
            })
            .collect(),
        move_tasks: state.move_tasks.values().map(move_task_to_pb).collect(),
    }
    .encode_to_vec()
}

/// Decodes a snapshot body into its generation and state, checking the state's invariants.
pub(crate) fn decode_snapshot(body: &[u8]) -> Result<(u64, MetaState), CodecError> {
    let snapshot = pb::Snapshot::decode(body)?;
    let mut state = MetaState::default();
    for stream in snapshot.streams {
        let descriptor = stream_from_pb(stream)?;
        if state.streams.contains_key(&descriptor.name) {
            return Err(CodecError::Inconsistent {
                reason: format!("stream {} appears twice", descriptor.name),
            });
        }
        state.streams.insert(descriptor.name.clone(), descriptor);
    }
    for group in snapshot.groups {
        let stream = StreamName::new(group.stream)?;
        let name = GroupName::new(group.group)?;
        let Some(descriptor) = state.streams.get(&stream) else {
            return Err(CodecError::Inconsistent {
                reason: format!("group {name} belongs to missing stream {stream}"),
            });
        };
        let mut checkpoints = BTreeMap::new();
        for checkpoint in group.checkpoints {
            let shard = ShardId(checkpoint.shard);
            if descriptor.shard(shard).is_none() {
                return Err(CodecError::Inconsistent {
                    reason: format!("group {name} of {stream} checkpoints missing shard {shard}"),
                });
            }
            if checkpoints
                .insert(shard, SequenceNumber::new(checkpoint.sequence))
                .is_some()
            {
                return Err(CodecError::Inconsistent {
                    reason: format!("group {name} of {stream} checkpoints {shard} twice"),
                });
            }
        }
        let queue = match group.queue {
            Some(d) => Some(queue_from_pb(d, group.queue_shards, group.queue_counters)?),
            None => None,
        };
        let record = GroupRecord {
            created_at_ms: Timestamp::from_millis(group.created_at_ms),
            checkpoints,
            epoch_floor: group.epoch_floor,
            queue,
        };
        if state
            .groups
            .insert((stream.clone(), name.clone()), record)
            .is_some()
        {
            return Err(CodecError::Inconsistent {
                reason: format!("group {name} of {stream} appears twice"),
            });
        }
    }
    for rule in snapshot.rules {
        let name = RuleName::new(rule.rule)?;
        let definition = definition_from_pb(rule.definition.ok_or(CodecError::Missing {
            field: "definition",
        })?)?;
        if !state.streams.contains_key(&definition.source) {
            return Err(CodecError::Inconsistent {
                reason: format!("rule {name} reads missing stream {}", definition.source),
            });
        }
        let record = RuleRecord {
            definition,
            created_at_ms: Timestamp::from_millis(rule.created_at_ms),
            next: positions_from_pb(rule.next),
            marks: marks_from_pb(rule.marks)?,
        };
        if state.rules.insert(name.clone(), record).is_some() {
            return Err(CodecError::Inconsistent {
                reason: format!("rule {name} appears twice"),
            });
        }
    }
    for task in snapshot.move_tasks {
        let task = move_task_from_pb(task)?;
        if !state.streams.contains_key(&task.source) {
            return Err(CodecError::Inconsistent {
                reason: format!(
                    "move task {} reads missing stream {}",
                    task.task_id, task.source
                ),
            });
        }
        state.move_tasks.insert(task.task_id.clone(), task);
    }
    Ok((snapshot.generation, state))
}

fn stream_to_pb(descriptor: &StreamDescriptor) -> pb::StreamDescriptor {
    let settings = &descriptor.settings;
    pb::StreamDescriptor {
        name: descriptor.name.to_string(),
        created_at_ms: descriptor.created_at_ms.as_millis(),
        settings: Some(pb::StreamSettings {
            retention_ms: duration_to_ms(settings.retention),
            content_based_deduplication: settings.content_based_deduplication,
            dedup_window_ms: duration_to_ms(settings.dedup_window),
            dedup_scope: match settings.dedup_scope {
                DedupScope::Stream => pb::DedupScope::Stream,
                DedupScope::MessageGroup => pb::DedupScope::MessageGroup,
            } as i32,
        }),
        shards: descriptor
            .shards()
            .iter()
            .map(|shard| pb::ShardDescriptor {
                id: shard.id.index(),
                parent: shard.parent.map(ShardId::index),
                adjacent_parent: shard.adjacent_parent.map(ShardId::index),
                range_start: Some(hash_key_to_pb(shard.range.start)),
                range_end: Some(hash_key_to_pb(shard.range.end)),
                starting_sequence: shard.starting_sequence.get(),
                ending_sequence: shard.ending_sequence.map(SequenceNumber::get),
                closed_at_ms: shard.closed_at.map(Timestamp::as_millis),
                retired: shard.retired,
            })
            .collect(),
        options: Some(options_to_pb(&descriptor.options)),
    }
}

fn mode_to_pb(mode: StreamMode) -> i32 {
    let mode = match mode {
        StreamMode::Provisioned => pb::StreamMode::Provisioned,
        StreamMode::OnDemand => pb::StreamMode::OnDemand,
    };
    mode as i32
}

fn mode_from_pb(mode: i32) -> Result<StreamMode, CodecError> {
    match pb::StreamMode::try_from(mode) {
        Ok(pb::StreamMode::Provisioned) => Ok(StreamMode::Provisioned),
        Ok(pb::StreamMode::OnDemand) => Ok(StreamMode::OnDemand),
        Err(unknown) => Err(ModelError::InvalidField {
            field: "mode",
            reason: format!("unknown value {}", unknown.0),
        }
        .into()),
    }
}

fn consumer_to_pb(consumer: &StreamConsumer) -> pb::StreamConsumer {
    pb::StreamConsumer {
        name: consumer.name.clone(),
        created_at_ms: consumer.created_at_ms.as_millis(),
    }
}

fn consumer_from_pb(consumer: pb::StreamConsumer) -> StreamConsumer {
    StreamConsumer {
        name: consumer.name,
        created_at_ms: Timestamp::from_millis(consumer.created_at_ms),
    }
}

fn options_to_pb(options: &StreamOptions) -> pb::StreamOptions {
    pb::StreamOptions {
        mode: mode_to_pb(options.mode),
        tags: options
            .tags
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        consumers: options.consumers.iter().map(consumer_to_pb).collect(),
        shard_level_metrics: options.shard_level_metrics.iter().cloned().collect(),
    }
}

fn options_from_pb(options: pb::StreamOptions) -> Result<StreamOptions, CodecError> {
    Ok(StreamOptions {
        mode: mode_from_pb(options.mode)?,
        tags: options.tags.into_iter().collect(),
        consumers: options
            .consumers
            .into_iter()
            .map(consumer_from_pb)
            .collect(),
        shard_level_metrics: options.shard_level_metrics.into_iter().collect(),
    })
}

fn change_to_pb(change: &StreamChange) -> pb::update_stream::Change {
    use pb::update_stream::Change as C;
    match change {
        StreamChange::Retention(retention) => C::RetentionMs(duration_to_ms(*retention)),
        StreamChange::Mode(mode) => C::Mode(mode_to_pb(*mode)),
        StreamChange::AddTags(tags) => C::AddTags(pb::Tags {
            tags: tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        }),
        StreamChange::RemoveTags(keys) => C::RemoveTags(pb::TagKeys { keys: keys.clone() }),
        StreamChange::RegisterConsumer(c) => C::RegisterConsumer(consumer_to_pb(c)),
        StreamChange::DeregisterConsumer(name) => C::DeregisterConsumer(name.clone()),
        StreamChange::ShardLevelMetrics(names) => C::ShardLevelMetrics(pb::MetricNames {
            names: names.iter().cloned().collect(),
        }),
    }
}

fn change_from_pb(change: pb::update_stream::Change) -> Result<StreamChange, CodecError> {
    use pb::update_stream::Change as C;
    Ok(match change {
        C::RetentionMs(ms) => StreamChange::Retention(Duration::from_millis(ms)),
        C::Mode(mode) => StreamChange::Mode(mode_from_pb(mode)?),
        C::AddTags(t) => StreamChange::AddTags(t.tags.into_iter().collect()),
        C::RemoveTags(k) => StreamChange::RemoveTags(k.keys),
        C::RegisterConsumer(c) => StreamChange::RegisterConsumer(consumer_from_pb(c)),
        C::DeregisterConsumer(name) => StreamChange::DeregisterConsumer(name),
        C::ShardLevelMetrics(m) => StreamChange::ShardLevelMetrics(m.names.into_iter().collect()),
    })
}

fn stream_from_pb(stream: pb::StreamDescriptor) -> Result<StreamDescriptor, CodecError> {
    let settings = stream
        .settings
        .ok_or(CodecError::Missing { field: "settings" })?;
    let dedup_scope = match pb::DedupScope::try_from(settings.dedup_scope) {
        Ok(pb::DedupScope::Stream) => DedupScope::Stream,
        Ok(pb::DedupScope::MessageGroup) => DedupScope::MessageGroup,
        Err(unknown) => {
            return Err(ModelError::InvalidField {
                field: "dedup_scope",
                reason: format!("unknown value {}", unknown.0),
            }
            .into())
        }
    };
    let settings = StreamSettings {
        retention: Duration::from_millis(settings.retention_ms),
        content_based_deduplication: settings.content_based_deduplication,
        dedup_window: Duration::from_millis(settings.dedup_window_ms),
        dedup_scope,
    };
    let shards = stream
        .shards
        .into_iter()
        .map(|shard| {
            let start = shard.range_start.ok_or(CodecError::Missing {
                field: "range_start",
            })?;
            let end = shard
                .range_end
                .ok_or(CodecError::Missing { field: "range_end" })?;
            Ok(ShardDescriptor {
                id: ShardId(shard.id),
                parent: shard.parent.map(ShardId),
                adjacent_parent: shard.adjacent_parent.map(ShardId),
                range: HashKeyRange::new(hash_key_from_pb(&start), hash_key_from_pb(&end))?,
                starting_sequence: SequenceNumber::new(shard.starting_sequence),
                ending_sequence: shard.ending_sequence.map(SequenceNumber::new),
                closed_at: shard.closed_at_ms.map(Timestamp::from_millis),
                retired: shard.retired,
            })
        })
        .collect::<Result<Vec<_>, CodecError>>()?;
    let mut descriptor = StreamDescriptor::from_parts(
        StreamName::new(stream.name)?,
        Timestamp::from_millis(stream.created_at_ms),
        settings,
        shards,
    )?;
    if let Some(options) = stream.options {
        descriptor.options = options_from_pb(options)?;
    }
    Ok(descriptor)
}

fn hash_key_to_pb(key: HashKey) -> pb::HashKey {
    let value = key.value();
    pb::HashKey {
        high: (value >> 64) as u64,
        low: value as u64,
    }
}

fn hash_key_from_pb(key: &pb::HashKey) -> HashKey {
    HashKey((u128::from(key.high) << 64) | u128::from(key.low))
}

/// Settings durations are whole seconds or milliseconds well below `u64::MAX` ms; saturate
/// rather than wrap should one ever not be.
fn duration_to_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::StreamLimits;

    fn descriptor() -> StreamDescriptor {
        let settings = StreamSettings::from_request(
            72,
            true,
            900,
            DedupScope::MessageGroup,
            &StreamLimits::default(),
        )
        .unwrap();
        StreamDescriptor::create(
            StreamName::new("orders").unwrap(),
            Timestamp::from_millis(1_700_000_000_123),
            settings,
            5,
            &StreamLimits::default(),
        )
        .unwrap()
    }

    /// `descriptor()` after a merge of its shards 1 and 2, which ended at 7 and 9.
    fn resharded() -> StreamDescriptor {
        let d = descriptor();
        let merge = d.plan_merge(ShardId(1), ShardId(2)).unwrap();
        let ends = [
            (ShardId(1), SequenceNumber::new(7)),
            (ShardId(2), SequenceNumber::new(9)),
        ];
        d.apply_reshard(&merge, &ends.into(), Timestamp::from_millis(7))
            .unwrap()
    }

    fn rule_definition() -> RuleDefinition {
        RuleDefinition {
            source: StreamName::new("orders").unwrap(),
            filter: Some(Filter {
                pattern: r#"{"price":[{"numeric":[">",10]}]}"#.into(),
                scope: FilterScope::Attributes,
            }),
            targets: vec![
                StreamName::new("big").unwrap(),
                StreamName::new("audit").unwrap(),
            ],
            enabled: false,
            owner: Some("router".into()),
        }
    }

    fn move_task() -> MoveTaskRecord {
        MoveTaskRecord {
            task_id: "t1".into(),
            source: StreamName::new("orders").unwrap(),
            destination: Some(StreamName::new("back").unwrap()),
            max_per_second: 50,
            started_at_ms: Timestamp::from_millis(9),
            start: [(ShardId(0), SequenceNumber::new(1))].into(),
            end: [(ShardId(0), SequenceNumber::new(8))].into(),
            next: [(ShardId(0), SequenceNumber::new(1))].into(),
            to_move: 7,
            moved: 0,
            status: MoveStatus::Running,
            failure_reason: String::new(),
        }
    }

    fn queue_definition() -> QueueDefinition {
        QueueDefinition {
            kind: QueueKind::Standard,
            visibility_timeout: Duration::from_millis(30_500),
            max_receive_count: 5,
            dead_letter_stream: Some(StreamName::new("dead").unwrap()),
            filter: Some(Filter {
                pattern: r#"{"a":[1]}"#.into(),
                scope: FilterScope::Data,
            }),
            owner: Some("orders-admin".into()),
        }
    }

    fn marks() -> BTreeMap<StreamName, TargetMark> {
        [(
            StreamName::new("big").unwrap(),
            TargetMark {
                created_at_ms: Timestamp::from_millis(5),
                next: [(ShardId(0), SequenceNumber::new(12))].into(),
            },
        )]
        .into()
    }

    #[test]
    fn every_command_kind_round_trips() {
        let stream = StreamName::new("orders").unwrap();
        let group = GroupName::new("billing").unwrap();
        let commands = [
            MetaCommand::CreateStream(descriptor()),
            MetaCommand::ReshardStream(resharded()),
            MetaCommand::RetireShards {
                stream: StreamName::new("orders").unwrap(),
                shards: vec![ShardId(0), ShardId(2)],
            },
            MetaCommand::DeleteStream(stream.clone()),
            MetaCommand::UpdateStream {
                stream: stream.clone(),
                change: StreamChange::Retention(Duration::from_secs(48 * 3600)),
            },
            MetaCommand::UpdateStream {
                stream: stream.clone(),
                change: StreamChange::Mode(StreamMode::OnDemand),
            },
            MetaCommand::UpdateStream {
                stream: stream.clone(),
                change: StreamChange::AddTags([("team".into(), "data".into())].into()),
            },
            MetaCommand::UpdateStream {
                stream: stream.clone(),
                change: StreamChange::RemoveTags(vec!["team".into()]),
            },
            MetaCommand::UpdateStream {
                stream: stream.clone(),
                change: StreamChange::RegisterConsumer(StreamConsumer {
                    name: "fan-out".into(),
                    created_at_ms: Timestamp::from_millis(77),
                }),
            },
            MetaCommand::UpdateStream {
                stream: stream.clone(),
                change: StreamChange::DeregisterConsumer("fan-out".into()),
            },
            MetaCommand::UpdateStream {
                stream: stream.clone(),
                change: StreamChange::ShardLevelMetrics(["IncomingBytes".into()].into()),
            },
            MetaCommand::CreateGroup {
                stream: stream.clone(),
                group: group.clone(),
                created_at_ms: Timestamp::from_millis(42),
                queue: None,
            },
            MetaCommand::CreateGroup {
                stream: stream.clone(),
                group: group.clone(),
                created_at_ms: Timestamp::from_millis(42),
                queue: Some((
                    queue_definition(),
                    [(ShardId(1), SequenceNumber::new(8))].into(),
                )),
            },
            MetaCommand::StartMoveTask(move_task()),
            MetaCommand::MoveProgress {
                task_id: "t1".into(),
                next: [(ShardId(0), SequenceNumber::new(4))].into(),
                moved: 4,
                status: MoveStatus::Failed,
                failure_reason: "stream gone".into(),
            },
            MetaCommand::QueueLease {
                stream: stream.clone(),
                group: group.clone(),
                incarnation: Timestamp::from_millis(42),
                shard: ShardId(2),
                deadline_ms: Timestamp::from_millis(1_000),
                messages: vec![(SequenceNumber::new(3), 1), (SequenceNumber::new(9), 4)],
                received: true,
            },
            MetaCommand::QueueDone {
                stream: stream.clone(),
                group: group.clone(),
                incarnation: Timestamp::from_millis(42),
                shard: ShardId(2),
                sequences: vec![SequenceNumber::new(3)],
                start: SequenceNumber::new(4),
                counts: DoneCounts {
                    deleted: 1,
                    dead_lettered: 2,
                    expired: 3,
                },
            },
            MetaCommand::DeleteGroup {
                stream: stream.clone(),
                group: group.clone(),
            },
            MetaCommand::CommitCheckpoint {
                stream: stream.clone(),
                group: group.clone(),
                shard: ShardId(4),
                sequence: SequenceNumber::MAX,
            },
            MetaCommand::ResetCheckpoint {
                stream: stream.clone(),
                group: group.clone(),
                shard: ShardId(0),
                sequence: None,
            },
            MetaCommand::ResetCheckpoint {
                stream: stream.clone(),
                group: group.clone(),
                shard: ShardId(0),
                sequence: Some(SequenceNumber::new(0)),
            },
            MetaCommand::RaiseEpochFloor {
                stream: stream.clone(),
                group,
                epoch: 9,
            },
            MetaCommand::PutRule {
                rule: RuleName::new("route-big").unwrap(),
                definition: rule_definition(),
                created_at_ms: Timestamp::from_millis(77),
                start: [(ShardId(0), SequenceNumber::new(3))].into(),
                marks: marks(),
            },
            MetaCommand::DeleteRule(RuleName::new("r").unwrap()),
            MetaCommand::RuleProgress {
                rule: RuleName::new("r").unwrap(),
                next: [(ShardId(1), SequenceNumber::new(9))].into(),
                marks: marks(),
            },
        ];
        for cmd in commands {
            assert_eq!(decode_command(&encode_command(&cmd)).unwrap(), cmd);
        }
    }

    #[test]
    fn a_state_round_trips_through_a_snapshot() {
        let mut state = MetaState::default();
        state
            .apply(&MetaCommand::CreateStream(descriptor()))
            .unwrap();
        let stream = StreamName::new("orders").unwrap();
        for change in [
            StreamChange::Mode(StreamMode::OnDemand),
            StreamChange::AddTags([("team".into(), "data".into())].into()),
            StreamChange::RegisterConsumer(StreamConsumer {
                name: "fan-out".into(),
                created_at_ms: Timestamp::from_millis(77),
            }),
            StreamChange::ShardLevelMetrics(["IncomingBytes".into()].into()),
        ] {
            state
                .apply(&MetaCommand::UpdateStream {
                    stream: stream.clone(),
                    change,
                })
                .unwrap();
        }
        let group = GroupName::new("billing").unwrap();
        state
            .apply(&MetaCommand::CreateGroup {
                stream: stream.clone(),
                group: group.clone(),
                created_at_ms: Timestamp::from_millis(5),
                queue: None,
            })
            .unwrap();
        let queue = GroupName::new("work").unwrap();
        state
            .apply(&MetaCommand::CreateGroup {
                stream: stream.clone(),
                group: queue.clone(),
                created_at_ms: Timestamp::from_millis(6),
                queue: Some((
                    queue_definition(),
                    [(ShardId(0), SequenceNumber::new(2))].into(),
                )),
            })
            .unwrap();
        state
            .apply(&MetaCommand::QueueLease {
                stream: stream.clone(),
                group: queue.clone(),
                incarnation: Timestamp::from_millis(6),
                shard: ShardId(0),
                deadline_ms: Timestamp::from_millis(900),
                messages: vec![(SequenceNumber::new(4), 2)],
                received: true,
            })
            .unwrap();
        state
            .apply(&MetaCommand::QueueDone {
                stream: stream.clone(),
                group: queue,
                incarnation: Timestamp::from_millis(6),
                shard: ShardId(0),
                sequences: vec![SequenceNumber::new(2), SequenceNumber::new(5)],
                start: SequenceNumber::new(3),
                counts: DoneCounts {
                    deleted: 2,
                    ..DoneCounts::default()
                },
            })
            .unwrap();
        state
            .apply(&MetaCommand::StartMoveTask(move_task()))
            .unwrap();
        state
            .apply(&MetaCommand::CommitCheckpoint {
                stream: stream.clone(),
                group: group.clone(),
                shard: ShardId(3),
                sequence: SequenceNumber::new(77),
            })
            .unwrap();
        state
            .apply(&MetaCommand::RaiseEpochFloor {
                stream,
                group,
                epoch: 12,
            })
            .unwrap();
        state.rules.insert(
            RuleName::new("r").unwrap(),
            RuleRecord {
                definition: rule_definition(),
                created_at_ms: Timestamp::from_millis(3),
                next: [(ShardId(2), SequenceNumber::new(40))].into(),
                marks: marks(),
            },
        );
        let (generation, decoded) = decode_snapshot(&encode_snapshot(8, &state)).unwrap();
        assert_eq!(generation, 8);
        assert_eq!(decoded, state);
    }

    #[test]
    fn an_empty_entry_is_not_a_command() {
        assert!(matches!(
            decode_command(&[]),
            Err(CodecError::Missing { field: "command" })
        ));
    }

    #[test]
    fn invalid_names_in_an_entry_are_rejected() {
        let body = pb::Command {
            command: Some(pb::command::Command::DeleteStream(pb::DeleteStream {
                stream: "../etc".to_string(),
            })),
        }
        .encode_to_vec();
        assert!(matches!(decode_command(&body), Err(CodecError::Model(_))));
    }

    #[test]
    fn a_snapshot_group_of_a_missing_stream_is_inconsistent() {
        let body = pb::Snapshot {
            generation: 1,
            streams: Vec::new(),
            groups: vec![pb::Group {
                stream: "orders".to_string(),
                group: "billing".to_string(),
                ..pb::Group::default()
            }],
            rules: Vec::new(),
            move_tasks: Vec::new(),
        }
        .encode_to_vec();
        assert!(matches!(
            decode_snapshot(&body),
            Err(CodecError::Inconsistent { .. })
        ));
    }
}
