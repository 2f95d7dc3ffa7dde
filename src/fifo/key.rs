//! The fixed-size dedup key: a truncated SHA-256 over scope, group and id (or content digest).
//!
//! The window never stores ids themselves, only this 16-byte digest, so the memory per tracked id
//! does not depend on how long the id is. The digest input is an unambiguous, domain-separated
//! encoding (every variable part is length-prefixed):
//!
//! | bytes | content |
//! | --- | --- |
//! | 26 | `shardlog.fifo.dedup-key.v1`, separating these digests from any other SHA-256 use |
//! | 1 | scope: `0` stream, `1` message group |
//! | 1 + 8 + n | message-group scope only: `0` no group, or `1`, group length (u64 BE), group bytes |
//! | 1 | source: `0` explicit deduplication id, `1` content digest |
//! | 8 + n | length (u64 BE), then the id bytes or the 32-byte content digest (below) |
//!
//! The content digest is the SHA-256 of the record's data when it has no attributes, else of
//! its data (length-prefixed, u64 BE) followed by its canonical attribute block.
//!
//! Under stream scope the group is not part of the input, so the same id in two groups is one
//! key; under message-group scope `(g1, "x")` and `(g2, "x")` are distinct keys. An explicit id
//! and a content digest never share a key, even if their bytes happened to match.
//!
//! Truncating to 128 bits keeps the chance that two distinct ids collide negligible: with a
//! million live ids in one window it is about n²/2¹²⁹ ≈ 10⁻²⁷.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

use sha2::{Digest, Sha256};

use crate::stream::DedupScope;

const DOMAIN: &[u8] = b"shardlog.fifo.dedup-key.v1";

/// Bytes kept from the SHA-256 digest.
pub const DEDUP_KEY_LEN: usize = 16;

/// The identity of a deduplicated record inside one stream's window.
///
/// Keys are ordered as their bytes are (lexicographically), compared as one big-endian `u128`:
/// a batch sorts its keys before reserving them.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct DedupKey([u8; DEDUP_KEY_LEN]);

impl Ord for DedupKey {
    fn cmp(&self, other: &Self) -> Ordering {
        u128::from_be_bytes(self.0).cmp(&u128::from_be_bytes(other.0))
    }
}

impl PartialOrd for DedupKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A key hashes as its first eight bytes, one `u64`: they are digest bytes, already uniform, so
/// feeding the hasher all sixteen (and the array's length) buys nothing. Equal keys have equal
/// prefixes, so this agrees with `Eq`.
impl Hash for DedupKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let mut prefix = [0u8; 8];
        prefix.copy_from_slice(&self.0[..8]);
        state.write_u64(u64::from_le_bytes(prefix));
    }
}

impl DedupKey {
    /// A key no id has (in practice): what fills unused slots.
    pub(super) const PLACEHOLDER: DedupKey = DedupKey([0; DEDUP_KEY_LEN]);

    /// The key of an explicit deduplication id. `group` is ignored under [`DedupScope::Stream`].
    pub fn for_id(scope: DedupScope, group: Option<&str>, id: &str) -> Self {
        Self::derive(scope, group, Source::Id, id.as_bytes())
    }

    /// The key of a record deduplicated by content, keyed like an id: the SHA-256 of `data`
    /// alone when the record has no attributes (so keys of records stored before attributes
    /// existed stay the same), else of the length-prefixed data then the canonical attribute
    /// block (`storage::attributes`), so records that differ only in attributes differ.
    pub fn for_content(
        scope: DedupScope,
        group: Option<&str>,
        data: &[u8],
        attributes: &[u8],
    ) -> Self {
        let content = if attributes.is_empty() {
            Sha256::digest(data)
        } else {
            let mut h = Sha256::new();
            update_prefixed(&mut h, data);
            h.update(attributes);
            h.finalize()
        };
        Self::derive(scope, group, Source::Content, &content)
    }

    fn derive(scope: DedupScope, group: Option<&str>, source: Source, value: &[u8]) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(DOMAIN);
        match scope {
            DedupScope::Stream => hasher.update([0u8]),
            DedupScope::MessageGroup => {
                hasher.update([1u8]);
                match group {
                    None => hasher.update([0u8]),
                    Some(group) => {
                        hasher.update([1u8]);
                        update_prefixed(&mut hasher, group.as_bytes());
                    }
                }
            }
        }
        hasher.update([source as u8]);
        update_prefixed(&mut hasher, value);
        let digest = hasher.finalize();
        let mut key = [0u8; DEDUP_KEY_LEN];
        key.copy_from_slice(&digest[..DEDUP_KEY_LEN]);
        Self(key)
    }
}

fn update_prefixed(hasher: &mut Sha256, bytes: &[u8]) {
    hasher.update((bytes.len() as u64).to_be_bytes());
    hasher.update(bytes);
}

#[derive(Clone, Copy)]
#[repr(u8)]
enum Source {
    Id = 0,
    Content = 1,
}

impl fmt::Debug for DedupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DedupKey(")?;
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        f.write_str(")")
    }
}

/// A stream's deduplication settings: how a record's key is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DedupPolicy {
    /// Within what ids must be unique.
    pub scope: DedupScope,
    /// When set, a record without a deduplication id is deduplicated by the SHA-256 of its data.
    pub content_based_deduplication: bool,
}

impl DedupPolicy {
    /// The key a record is deduplicated under, or `None` when it is not deduplicated at all (no
    /// id and content-based deduplication off). An explicit id always wins over the content.
    /// The caller validates `group` and `dedup_id` first.
    pub fn key_for(
        &self,
        group: Option<&str>,
        dedup_id: Option<&str>,
        data: &[u8],
        attributes: &[u8],
    ) -> Option<DedupKey> {
        match dedup_id {
            Some(id) => Some(DedupKey::for_id(self.scope, group, id)),
            None if self.content_based_deduplication => {
                Some(DedupKey::for_content(self.scope, group, data, attributes))
            }
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_ordered_as_their_bytes() {
        let mut keys: Vec<DedupKey> = (0..200)
            .map(|i| DedupKey::for_id(DedupScope::Stream, None, &i.to_string()))
            .collect();
        keys.sort_unstable();
        assert!(keys.windows(2).all(|pair| pair[0].0 < pair[1].0));
        let low = DedupKey([0; DEDUP_KEY_LEN]);
        let mut high = [0; DEDUP_KEY_LEN];
        high[DEDUP_KEY_LEN - 1] = 1;
        assert!(low < DedupKey(high));
    }

    #[test]
    fn key_is_sixteen_bytes_whatever_the_id_length() {
        assert_eq!(std::mem::size_of::<DedupKey>(), DEDUP_KEY_LEN);
        let short = DedupKey::for_id(DedupScope::Stream, None, "a");
        let long = DedupKey::for_id(DedupScope::Stream, None, &"a".repeat(128));
        assert_ne!(short, long);
    }

    #[test]
    fn same_id_gives_same_key() {
        let a = DedupKey::for_id(DedupScope::MessageGroup, Some("g"), "x");
        let b = DedupKey::for_id(DedupScope::MessageGroup, Some("g"), "x");
        assert_eq!(a, b);
    }

    /// The keys of one id under `scope` in group `g1`, in group `g2` and in no group.
    fn in_two_groups_and_none(scope: DedupScope) -> [DedupKey; 3] {
        [Some("g1"), Some("g2"), None].map(|group| DedupKey::for_id(scope, group, "x"))
    }

    #[test]
    fn stream_scope_ignores_the_group() {
        let [g1, g2, none] = in_two_groups_and_none(DedupScope::Stream);
        assert_eq!(g1, g2);
        assert_eq!(g1, none);
    }

    #[test]
    fn group_scope_distinguishes_groups() {
        let [g1, g2, none] = in_two_groups_and_none(DedupScope::MessageGroup);
        assert_ne!(g1, g2);
        assert_ne!(g1, none);
        assert_ne!(g2, none);
    }

    #[test]
    fn group_and_id_boundary_is_unambiguous() {
        // Without length prefixes ("ab", "c") and ("a", "bc") would hash the same bytes.
        let left = DedupKey::for_id(DedupScope::MessageGroup, Some("ab"), "c");
        let right = DedupKey::for_id(DedupScope::MessageGroup, Some("a"), "bc");
        assert_ne!(left, right);
    }

    #[test]
    fn scopes_do_not_share_keys() {
        let stream = DedupKey::for_id(DedupScope::Stream, None, "x");
        let group = DedupKey::for_id(DedupScope::MessageGroup, None, "x");
        assert_ne!(stream, group);
    }

    #[test]
    fn content_key_differs_for_different_data() {
        let a = DedupKey::for_content(DedupScope::Stream, None, b"hello", &[]);
        let b = DedupKey::for_content(DedupScope::Stream, None, b"hellp", &[]);
        let a_again = DedupKey::for_content(DedupScope::Stream, None, b"hello", &[]);
        assert_ne!(a, b);
        assert_eq!(a, a_again);
    }

    #[test]
    fn content_key_never_equals_an_id_key_with_the_digest_bytes() {
        let data = b"payload";
        let digest = Sha256::digest(data);
        let as_id = DedupKey::derive(DedupScope::Stream, None, Source::Id, &digest);
        let as_content = DedupKey::for_content(DedupScope::Stream, None, data, &[]);
        assert_ne!(as_id, as_content);
    }

    #[test]
    fn content_key_in_group_scope_distinguishes_groups() {
        let g1 = DedupKey::for_content(DedupScope::MessageGroup, Some("g1"), b"same", &[]);
        let g2 = DedupKey::for_content(DedupScope::MessageGroup, Some("g2"), b"same", &[]);
        assert_ne!(g1, g2);
    }

    #[test]
    fn policy_prefers_the_explicit_id_and_skips_records_without_one() {
        let content = DedupPolicy {
            scope: DedupScope::Stream,
            content_based_deduplication: true,
        };
        assert_eq!(
            content.key_for(None, Some("id"), b"data", &[]),
            Some(DedupKey::for_id(DedupScope::Stream, None, "id"))
        );
        assert_eq!(
            content.key_for(None, None, b"data", &[]),
            Some(DedupKey::for_content(
                DedupScope::Stream,
                None,
                b"data",
                &[]
            ))
        );
        let with_attributes = content.key_for(None, None, b"data", b"block");
        assert_ne!(with_attributes, content.key_for(None, None, b"data", &[]));
        assert_ne!(
            with_attributes,
            content.key_for(None, None, b"datablock", &[])
        );
        let plain = DedupPolicy::default();
        assert_eq!(plain.key_for(Some("g"), None, b"data", &[]), None);
    }
}
