//! Receipt handles: which receive of which message a worker holds, signed so that a handle
//! cannot be forged or moved to another group.
//!
//! | bytes | field |
//! |---|---|
//! | 1 | version (1) |
//! | 8 | the group's creation time, ms (a group deleted and made again refuses old handles) |
//! | 4 | shard index |
//! | 8 | sequence number |
//! | 4 | receive count: which receive of the message this handle names |
//! | 12 | HMAC-SHA-256 of the above, the stream name and the group name, truncated |
//!
//! The whole is base64url without padding. A handle names one receive: the next receive of
//! the same message has a higher count and so a different handle.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::storage::{SequenceNumber, Timestamp};
use crate::stream::{GroupName, ShardId, StreamName};

const VERSION: u8 = 1;
const BODY_LEN: usize = 1 + 8 + 4 + 8 + 4;
const MAC_LEN: usize = 12;
/// Characters of an encoded handle.
pub const RECEIPT_HANDLE_CHARS: usize = (BODY_LEN + MAC_LEN) * 4 / 3 + 1;

/// What a receipt handle names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    /// The group's creation time.
    pub group_created_at_ms: Timestamp,
    /// The shard.
    pub shard: ShardId,
    /// The message.
    pub sequence: SequenceNumber,
    /// Which receive of it.
    pub receive_count: u32,
}

/// Signs and checks receipt handles with the server's key.
#[derive(Clone)]
pub(crate) struct ReceiptCodec {
    keyed: Hmac<Sha256>,
}

impl std::fmt::Debug for ReceiptCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceiptCodec").finish_non_exhaustive()
    }
}

impl ReceiptCodec {
    pub(crate) fn new(key: &[u8]) -> Self {
        ReceiptCodec {
            keyed: <Hmac<Sha256> as Mac>::new_from_slice(key)
                .expect("HMAC accepts keys of any length"),
        }
    }

    fn mac(&self, body: &[u8], stream: &StreamName, group: &GroupName) -> [u8; MAC_LEN] {
        // The keyed state is computed once; a clone skips the key's two compressions.
        let mut mac = self.keyed.clone();
        mac.update(body);
        mac.update(stream.as_str().as_bytes());
        mac.update(&[0]);
        mac.update(group.as_str().as_bytes());
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; MAC_LEN];
        out.copy_from_slice(&full[..MAC_LEN]);
        out
    }

    /// The handle of `receipt` in group `group` of `stream`.
    pub(crate) fn encode(&self, stream: &StreamName, group: &GroupName, r: &Receipt) -> String {
        let mut raw = [0u8; BODY_LEN + MAC_LEN];
        raw[0] = VERSION;
        raw[1..9].copy_from_slice(&r.group_created_at_ms.as_millis().to_le_bytes());
        raw[9..13].copy_from_slice(&r.shard.index().to_le_bytes());
        raw[13..21].copy_from_slice(&r.sequence.get().to_le_bytes());
        raw[21..25].copy_from_slice(&r.receive_count.to_le_bytes());
        let mac = self.mac(&raw[..BODY_LEN], stream, group);
        raw[BODY_LEN..].copy_from_slice(&mac);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// The receipt a handle names, if this server signed it for this group.
    pub(crate) fn decode(
        &self,
        stream: &StreamName,
        group: &GroupName,
        handle: &str,
    ) -> Option<Receipt> {
        if handle.len() > RECEIPT_HANDLE_CHARS {
            return None;
        }
        let raw = URL_SAFE_NO_PAD.decode(handle).ok()?;
        if raw.len() != BODY_LEN + MAC_LEN || raw[0] != VERSION {
            return None;
        }
        let mac = self.mac(&raw[..BODY_LEN], stream, group);
        // Not constant-time: a handle grants one delete, and the key never leaves the server.
        if raw[BODY_LEN..] != mac {
            return None;
        }
        let u64_at = |i: usize| u64::from_le_bytes(raw[i..i + 8].try_into().expect("8 bytes"));
        let u32_at = |i: usize| u32::from_le_bytes(raw[i..i + 4].try_into().expect("4 bytes"));
        Some(Receipt {
            group_created_at_ms: Timestamp::from_millis(u64_at(1)),
            shard: ShardId(u32_at(9)),
            sequence: SequenceNumber::new(u64_at(13)),
            receive_count: u32_at(21),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> (StreamName, GroupName) {
        (StreamName::new("s").unwrap(), GroupName::new("g").unwrap())
    }

    fn receipt() -> Receipt {
        Receipt {
            group_created_at_ms: Timestamp::from_millis(77),
            shard: ShardId(3),
            sequence: SequenceNumber::new(1 << 40),
            receive_count: 9,
        }
    }

    #[test]
    fn a_handle_decodes_to_its_receipt_only_in_its_own_group() {
        let codec = ReceiptCodec::new(&[7; 32]);
        let (s, g) = names();
        let handle = codec.encode(&s, &g, &receipt());
        assert!(handle.len() <= RECEIPT_HANDLE_CHARS);
        assert_eq!(codec.decode(&s, &g, &handle), Some(receipt()));
        let other = GroupName::new("h").unwrap();
        assert_eq!(codec.decode(&s, &other, &handle), None);
        assert_eq!(ReceiptCodec::new(&[8; 32]).decode(&s, &g, &handle), None);
    }

    #[test]
    fn an_edited_or_garbage_handle_is_refused() {
        let codec = ReceiptCodec::new(&[7; 32]);
        let (s, g) = names();
        let handle = codec.encode(&s, &g, &receipt());
        for i in 0..handle.len() {
            let mut edited = handle.clone().into_bytes();
            edited[i] = if edited[i] == b'A' { b'B' } else { b'A' };
            let edited = String::from_utf8(edited).unwrap();
            assert_eq!(codec.decode(&s, &g, &edited), None, "byte {i}");
        }
        assert_eq!(codec.decode(&s, &g, "garbage"), None);
        assert_eq!(codec.decode(&s, &g, ""), None);
    }

    proptest::proptest! {
        #[test]
        fn any_text_decodes_to_a_receipt_it_signs_or_is_refused(handle in ".{0,80}", cut in 0usize..60) {
            let codec = ReceiptCodec::new(&[7; 32]);
            let (s, g) = names();
            // Garbage and cut handles never panic; whatever decodes was signed by this codec.
            if let Some(r) = codec.decode(&s, &g, &handle) {
                proptest::prop_assert_eq!(codec.encode(&s, &g, &r), handle);
            }
            let real = codec.encode(&s, &g, &receipt());
            let cut = &real[..cut.min(real.len())];
            proptest::prop_assert_eq!(codec.decode(&s, &g, cut).is_some(), cut == real);
        }
    }
}
