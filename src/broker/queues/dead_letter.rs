//! Dead letters: a message received `max_receive_count` times is put into the group's
//! dead-letter stream — its data, keys and attributes, plus attributes naming where it came
//! from — and only then counts as done in the group.
//!
//! The copy's deduplication id names the group's incarnation, shard and sequence number, so a
//! crash between storing the copy and journaling the source as done stores it once when the
//! message is taken again (within the dead-letter stream's deduplication window).

use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::QueueGroup;
use crate::broker::put::Origin;
use crate::broker::{Broker, PutAttribute, PutEntry};
use crate::consumer::queue::Taken;
use crate::storage::{SequenceNumber, StoredRecord, Timestamp};
use crate::stream::{GroupName, ShardId, StreamName};

/// Attribute naming the stream a dead letter came from.
pub const SOURCE_STREAM_ATTRIBUTE: &str = "shardlog.source.stream";
/// Attribute naming the queue group a dead letter came from.
pub const SOURCE_GROUP_ATTRIBUTE: &str = "shardlog.source.group";
/// Attribute naming the shard a dead letter came from.
pub const SOURCE_SHARD_ATTRIBUTE: &str = "shardlog.source.shard";
/// Attribute giving a dead letter's sequence number in its source shard.
pub const SOURCE_SEQUENCE_ATTRIBUTE: &str = "shardlog.source.sequence";
/// Attribute giving how many times a dead letter was received.
pub const RECEIVE_COUNT_ATTRIBUTE: &str = "shardlog.receive.count";
/// Prefix of the deduplication ids of dead letters.
pub const DEAD_LETTER_ID_PREFIX: &str = "dlq/";

/// The deduplication id of the dead-letter copy of one message of one group's incarnation.
pub fn dead_letter_id(
    stream: &StreamName,
    group: &GroupName,
    created_at_ms: Timestamp,
    shard: ShardId,
    sequence: SequenceNumber,
) -> String {
    // Names can be long; a digest keeps the id within the id length limit.
    let mut h = Sha256::new();
    h.update(stream.as_str());
    h.update([0]);
    h.update(group.as_str());
    h.update(created_at_ms.as_millis().to_le_bytes());
    let digest = h.finalize();
    let tag: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{DEAD_LETTER_ID_PREFIX}{tag}/{}/{}",
        shard.index(),
        sequence.get()
    )
}

/// The dead-letter copy of `record`.
fn copy(q: &QueueGroup, shard: ShardId, t: &Taken, record: &StoredRecord) -> PutEntry {
    let mut entry = PutEntry::from_stored(record);
    entry.deduplication_id = Some(dead_letter_id(
        &q.stream,
        &q.group,
        q.created_at_ms,
        shard,
        t.sequence,
    ));
    // A copy of a copy names its latest source only.
    entry
        .attributes
        .retain(|a| !a.name.starts_with("shardlog.source.") && a.name != RECEIVE_COUNT_ATTRIBUTE);
    entry.attributes.extend([
        PutAttribute::string(SOURCE_STREAM_ATTRIBUTE, q.stream.as_str()),
        PutAttribute::string(SOURCE_GROUP_ATTRIBUTE, q.group.as_str()),
        PutAttribute::string(SOURCE_SHARD_ATTRIBUTE, shard.to_string()),
        PutAttribute::number(SOURCE_SEQUENCE_ATTRIBUTE, t.sequence.get().to_string()),
        PutAttribute::number(RECEIVE_COUNT_ATTRIBUTE, t.receive_count.to_string()),
    ]);
    entry
}

impl Broker {
    /// Puts the taken messages into the group's dead-letter stream and marks the stored ones
    /// done. A failure is logged and the messages concerned are visible again, so a later
    /// receive tries again (with the same deduplication ids).
    pub(super) async fn dead_letter(&self, q: &Arc<QueueGroup>, taken: Vec<(ShardId, Taken)>) {
        let all: Vec<(ShardId, SequenceNumber)> = taken
            .iter()
            .map(|(shard, t)| (*shard, t.sequence))
            .collect();
        let Some(target) = q.definition.dead_letter_stream.clone() else {
            return self.finish_dead_letters(q, Vec::new(), all).await;
        };
        // The group's maker's rights as they stand: a maker who may no longer write the
        // dead-letter stream moves nothing there, and the messages stay in the queue.
        if let Some(owner) = &q.definition.owner {
            if let Err(e) = self.permitted(owner, crate::auth::Action::Write, &target) {
                tracing::error!(stream = %q.stream, group = %q.group, dead_letter_stream = %target, error = %e, "dead letters not moved");
                q.dead_letter_failed(e.to_string());
                return self.finish_dead_letters(q, Vec::new(), all).await;
            }
        }
        let missing = taken
            .iter()
            .filter(|(_, t)| t.record.is_none())
            .map(|(shard, t)| (*shard, t.sequence))
            .collect();
        let mut reread = match self.read_messages(q, missing).await {
            Ok(found) => found,
            Err(e) => {
                tracing::error!(stream = %q.stream, group = %q.group, error = %e, "could not read messages for the dead-letter stream");
                return self.finish_dead_letters(q, Vec::new(), all).await;
            }
        };
        let mut entries = Vec::with_capacity(taken.len());
        let mut sources = Vec::with_capacity(taken.len());
        let mut failed = Vec::new();
        for (shard, t) in &taken {
            match t
                .record
                .clone()
                .or_else(|| reread.remove(&(*shard, t.sequence)))
            {
                Some(record) => {
                    entries.push(copy(q, *shard, t, &record));
                    sources.push((*shard, t.sequence));
                }
                // Retention removed it meanwhile; the window counts it as lost.
                None => failed.push((*shard, t.sequence)),
            }
        }
        if entries.is_empty() {
            return self.finish_dead_letters(q, Vec::new(), failed).await;
        }
        let results = match self.begin_put_as(&target, entries, Origin::System).await {
            Ok(pending) => pending.finish().await,
            Err(e) => {
                tracing::error!(stream = %q.stream, group = %q.group, dead_letter_stream = %target, error = %e, "could not put into the dead-letter stream");
                q.dead_letter_failed(e.to_string());
                return self.finish_dead_letters(q, Vec::new(), all).await;
            }
        };
        let mut stored = Vec::with_capacity(sources.len());
        for (source, result) in sources.into_iter().zip(results) {
            match result {
                Ok(_) => stored.push(source),
                Err(e) => {
                    tracing::error!(stream = %q.stream, group = %q.group, dead_letter_stream = %target, error = %e, "a dead letter was not stored");
                    q.dead_letter_failed(e.to_string());
                    failed.push(source);
                }
            }
        }
        if failed.is_empty() {
            q.dead_letter_failed_no_more();
        }
        self.finish_dead_letters(q, stored, failed).await;
    }
}
