//! What a rule already routed: the deduplication ids it gives the records it puts, and the scan
//! that finds them in its targets when the rule starts again.
//!
//! A routed record's id is `rule/<rule>/<incarnation>/<source shard index>/<sequence>`: the rule
//! and its incarnation (its creation time, so a rule deleted and made again under the same name
//! starts afresh), then the record's source position. The prefix `rule/` is reserved: a
//! producer's own id may not start with it.
//!
//! A rule records its progress (the next source sequence per shard) every so often, with each
//! target's ends taken at moments when nothing of the rule was in flight. After a crash, the
//! records between that progress and where the rule really was are in the targets already,
//! all after those ends: reading each target from its mark to its end and collecting the ids of
//! this rule gives exactly the positions not to put again, however long the rule was down and
//! whatever the targets' dedup windows hold.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::super::{blocking, Broker, BrokerError};
use crate::meta::TargetMark;
use crate::storage::{SequenceNumber, Timestamp};
use crate::stream::{RuleName, ShardId, StreamName};

/// The prefix of every id a rule gives; reserved.
pub const ROUTED_ID_PREFIX: &str = "rule/";
/// The longest id a rule gives: the prefix, the longest rule name, then the largest creation
/// time, shard index and sequence number in decimal, with their separators.
const MAX_ROUTED_ID_LEN: usize =
    ROUTED_ID_PREFIX.len() + crate::stream::MAX_RULE_NAME_LEN + 1 + 20 + 1 + 10 + 1 + 20;
// Every id a rule gives is a valid deduplication id.
const _: () = assert!(MAX_ROUTED_ID_LEN <= crate::fifo::MAX_ID_LEN);

/// Records read per step while scanning a target.
const SCAN_CHUNK: usize = 10_000;

/// The id of a record routed by `rule` (of incarnation `created_at_ms`) from `shard`/`sequence`.
pub fn routed_id(
    rule: &RuleName,
    created_at_ms: Timestamp,
    shard: ShardId,
    sequence: SequenceNumber,
) -> String {
    format!(
        "{ROUTED_ID_PREFIX}{rule}/{}/{}/{}",
        created_at_ms.as_millis(),
        shard.index(),
        sequence.get()
    )
}

/// The source position in an id of this rule's incarnation `prefix` (`rule/<rule>/<incarnation>/`).
fn parse_routed(prefix: &str, id: &[u8]) -> Option<(ShardId, SequenceNumber)> {
    let rest = std::str::from_utf8(id.strip_prefix(prefix.as_bytes())?).ok()?;
    let (shard, sequence) = rest.split_once('/')?;
    Some((
        ShardId(shard.parse().ok()?),
        SequenceNumber::new(sequence.parse().ok()?),
    ))
}

/// Per target and source shard, the source sequences already routed there since the marks.
#[derive(Debug, Default)]
pub(super) struct Routed {
    by_target: HashMap<(StreamName, ShardId), HashSet<u64>>,
}

impl Routed {
    /// True when `sequence` of `shard` is in `target` already.
    pub(super) fn contains(
        &self,
        target: &StreamName,
        shard: ShardId,
        sequence: SequenceNumber,
    ) -> bool {
        self.by_target
            .get(&(target.clone(), shard))
            .is_some_and(|seen| seen.contains(&sequence.get()))
    }

    /// How many positions were found.
    pub(super) fn len(&self) -> usize {
        self.by_target.values().map(HashSet::len).sum()
    }
}

impl Broker {
    /// Reads every target from its mark to its end and collects the positions this rule
    /// incarnation routed there. A target deleted and made again since its mark is read whole;
    /// a missing target is an error (the rule waits for it).
    pub(super) async fn scan_routed(
        &self,
        rule: &RuleName,
        created_at_ms: Timestamp,
        targets: &[StreamName],
        marks: &std::collections::BTreeMap<StreamName, TargetMark>,
    ) -> Result<Routed, BrokerError> {
        let prefix = format!("{ROUTED_ID_PREFIX}{rule}/{}/", created_at_ms.as_millis());
        let mut routed = Routed::default();
        for target in targets {
            let handle = self.stream(target)?;
            let mark = marks
                .get(target)
                .filter(|m| m.created_at_ms == handle.descriptor.created_at_ms);
            for shard in handle.shards() {
                let from = mark
                    .and_then(|m| m.next.get(&shard.id).copied())
                    .unwrap_or(SequenceNumber::ZERO);
                let log = Arc::clone(&shard.log);
                let prefix = prefix.clone();
                let found =
                    blocking("scan a rule's target", move || {
                        let mut found = Vec::new();
                        let mut at = from.max(log.first_sequence());
                        loop {
                            let batch = log.read(at, SCAN_CHUNK, usize::MAX)?;
                            if batch.records.is_empty() {
                                return Ok::<_, crate::storage::StorageError>(found);
                            }
                            found.extend(batch.records.iter().filter_map(|r| {
                                parse_routed(&prefix, r.deduplication_id.as_deref()?)
                            }));
                            at = batch.next_sequence;
                        }
                    })
                    .await??;
                for (source_shard, sequence) in found {
                    routed
                        .by_target
                        .entry((target.clone(), source_shard))
                        .or_default()
                        .insert(sequence.get());
                }
            }
        }
        Ok(routed)
    }

    /// Each target's ends now, as marks.
    pub(super) fn target_marks(
        &self,
        targets: &[StreamName],
    ) -> std::collections::BTreeMap<StreamName, TargetMark> {
        targets
            .iter()
            .filter_map(|t| {
                let handle = self.stream(t).ok()?;
                Some((
                    t.clone(),
                    TargetMark {
                        created_at_ms: handle.descriptor.created_at_ms,
                        next: handle
                            .shards()
                            .map(|s| (s.id, s.log.next_sequence()))
                            .collect(),
                    },
                ))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_routed_id_names_its_rule_incarnation_and_position_and_fits_the_id_limit() {
        let rule = RuleName::new("r".repeat(crate::stream::MAX_RULE_NAME_LEN)).unwrap();
        let at = Timestamp::from_millis(u64::MAX);
        let id = routed_id(&rule, at, ShardId(u32::MAX), SequenceNumber::MAX);
        assert!(id.len() <= crate::fifo::MAX_ID_LEN, "{} bytes", id.len());
        assert!(crate::fifo::validate_deduplication_id(&id).is_ok());
        let prefix = format!("{ROUTED_ID_PREFIX}{rule}/{}/", at.as_millis());
        assert_eq!(
            parse_routed(&prefix, id.as_bytes()),
            Some((ShardId(u32::MAX), SequenceNumber::MAX))
        );
        // Another incarnation of the same rule, or another rule, is not this one.
        let older = routed_id(
            &rule,
            Timestamp::from_millis(1),
            ShardId(0),
            SequenceNumber::new(1),
        );
        assert_eq!(parse_routed(&prefix, older.as_bytes()), None);
        assert_eq!(parse_routed(&prefix, b"rule/other/1/0/1"), None);
        assert_eq!(
            parse_routed(&prefix, format!("{prefix}x/1").as_bytes()),
            None
        );
    }
}
