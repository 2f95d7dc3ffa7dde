//! Shards: the [`ShardId`] in its Kinesis form and the [`ShardDescriptor`] of a shard's key range,
//! sequence range and lineage.

use std::fmt;
use std::str::FromStr;

use super::{HashKeyRange, ModelError};
use crate::storage::{SequenceNumber, Timestamp};

/// Prefix of a shard id's text form.
const SHARD_ID_PREFIX: &str = "shardId-";
/// Digits after the prefix, zero-padded.
const SHARD_ID_DIGITS: usize = 12;

/// A shard's index within its stream. Indexes are handed out in increasing order and never
/// reused, so a child shard always has a higher index than its parents.
///
/// Its text form is Kinesis's: `shardId-` and the index zero-padded to 12 digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShardId(pub u32);

impl ShardId {
    /// The shard's index.
    pub fn index(self) -> u32 {
        self.0
    }
}

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{SHARD_ID_PREFIX}{:0width$}",
            self.0,
            width = SHARD_ID_DIGITS
        )
    }
}

impl FromStr for ShardId {
    type Err = ModelError;

    /// Parses exactly `shardId-` followed by 12 digits; errors name `shard_id`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let malformed = || {
            ModelError::invalid(
                "shard_id",
                format!("{s:?} is not of the form shardId-000000000000"),
            )
        };
        let digits = s.strip_prefix(SHARD_ID_PREFIX).ok_or_else(malformed)?;
        if digits.len() != SHARD_ID_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed());
        }
        match digits.parse::<u32>() {
            Ok(index) => Ok(ShardId(index)),
            Err(_overflow) => Err(ModelError::invalid(
                "shard_id",
                format!("{s:?} has an index above {}", u32::MAX),
            )),
        }
    }
}

/// One shard of a stream: the keys it owns, the sequence numbers it holds, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardDescriptor {
    /// The shard's id.
    pub id: ShardId,
    /// The shard this one was split or merged from, if any.
    pub parent: Option<ShardId>,
    /// The second parent when this shard came from a merge.
    pub adjacent_parent: Option<ShardId>,
    /// The hash keys routed to this shard while it is open.
    pub range: HashKeyRange,
    /// Sequence number of the first record the shard can hold.
    pub starting_sequence: SequenceNumber,
    /// Set when the shard was closed by a split or merge: its last sequence number. A closed
    /// shard is still readable, but takes no more records.
    pub ending_sequence: Option<SequenceNumber>,
    /// When the shard was closed (absent for shards closed before this was recorded).
    pub closed_at: Option<Timestamp>,
    /// Set once retention has deleted every record of the closed shard and it has been closed
    /// for the stream's retention period: the shard is gone (no log, not listed); its id stays
    /// taken and its children still name it as their parent.
    pub retired: bool,
}

impl ShardDescriptor {
    /// True while the shard takes new records.
    pub fn is_open(&self) -> bool {
        self.ending_sequence.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_ids_display_in_the_kinesis_form() {
        assert_eq!(ShardId(0).to_string(), "shardId-000000000000");
        assert_eq!(ShardId(903).to_string(), "shardId-000000000903");
        assert_eq!(ShardId(u32::MAX).to_string(), "shardId-004294967295");
    }

    #[test]
    fn shard_ids_parse_their_display_form() {
        for id in [0, 1, 903, u32::MAX] {
            assert_eq!(ShardId(id).to_string().parse::<ShardId>(), Ok(ShardId(id)));
        }
    }

    #[test]
    fn other_shard_id_forms_are_rejected_naming_the_field() {
        for bad in [
            "",
            "0",
            "shardId-",
            "shardId-0",
            "shardId-00000000000",
            "shardId-0000000000000",
            "shardid-000000000000",
            "shardId-00000000000a",
            "shardId-+00000000001",
            " shardId-000000000000",
            "shardId-999999999999",
        ] {
            let err = bad.parse::<ShardId>().unwrap_err();
            assert_eq!(err.field(), "shard_id", "{bad:?}");
        }
    }

    #[test]
    fn a_shard_is_open_until_it_has_an_ending_sequence() {
        let mut shard = ShardDescriptor {
            id: ShardId(0),
            parent: None,
            adjacent_parent: None,
            range: HashKeyRange::FULL,
            starting_sequence: SequenceNumber::new(0),
            ending_sequence: None,
            closed_at: None,
            retired: false,
        };
        assert!(shard.is_open());
        shard.ending_sequence = Some(SequenceNumber::new(10));
        assert!(!shard.is_open());
    }
}
