//! Shard iterators: opaque, tamper-evident, expiring tokens naming a position in a shard.
//!
//! A token is URL-safe base64 (no padding) of:
//!
//! | size | field                                                          |
//! |-----:|----------------------------------------------------------------|
//! |    1 | version (2; tokens of version 1, without the filter, are read too) |
//! |    8 | stream creation time, ms (a re-created stream's tokens are void) |
//! |    4 | shard index                                                    |
//! |    8 | next sequence number to read                                   |
//! |    8 | issue time, ms since the Unix epoch                            |
//! |    1 | stream name length `n`                                         |
//! |    n | stream name                                                    |
//! |    1 | version 2: filter scope, 0 none, 1 data, 2 attributes          |
//! |    4 | version 2, with a filter: pattern length `p`                   |
//! |    p | version 2, with a filter: the pattern's JSON text              |
//! |   16 | HMAC-SHA256 of everything before, truncated                    |
//!
//! A filtered iterator carries its filter, so the GetRecords calls that follow it filter the
//! same way with no state on the server; the token grows with the pattern.
//!
//! The key is random per data directory and kept in `<data-dir>/iterator.key`, so tokens stay
//! valid across a restart but cannot be forged or edited by a client.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::route::{Filter, FilterScope};
use crate::storage::{SequenceNumber, Timestamp};
use crate::stream::StreamName;

/// Default lifetime of an iterator, as in Kinesis.
pub const DEFAULT_ITERATOR_TTL: Duration = Duration::from_secs(300);
/// Bytes of the iterator key.
pub const KEY_LEN: usize = 32;
const VERSION: u8 = 2;
const VERSION_1: u8 = 1;
const MAC_LEN: usize = 16;
const FIXED_LEN: usize = 1 + 8 + 4 + 8 + 8 + 1;

/// What a token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IteratorPosition {
    /// The stream read.
    pub stream: StreamName,
    /// When the stream was created: a stream deleted and made again under the same name
    /// does not accept the old stream's iterators.
    pub stream_created_at_ms: Timestamp,
    /// The shard's index.
    pub shard: u32,
    /// The next sequence number to read.
    pub sequence: SequenceNumber,
    /// When the token was issued, for its lifetime.
    pub issued_at_ms: Timestamp,
    /// Only records matching it are returned.
    pub filter: Option<Filter>,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IteratorError {
    /// The token does not decode, or its signature is not this server's.
    #[error("shard_iterator is malformed or was not issued by this server")]
    Malformed,
    /// The token is older than its lifetime.
    #[error("shard_iterator expired {age_ms} ms after it was issued (lifetime {ttl_ms} ms)")]
    Expired {
        /// Its age, in ms.
        age_ms: u64,
        /// The lifetime of tokens, in ms.
        ttl_ms: u64,
    },
}

/// Signs and checks tokens.
#[derive(Clone)]
pub struct IteratorCodec {
    key: [u8; KEY_LEN],
    ttl: Duration,
}

impl std::fmt::Debug for IteratorCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IteratorCodec")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl IteratorCodec {
    /// A codec signing with `key`, whose tokens live `ttl`.
    pub fn new(key: [u8; KEY_LEN], ttl: Duration) -> Self {
        IteratorCodec { key, ttl }
    }

    fn mac(&self, body: &[u8]) -> [u8; MAC_LEN] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .expect("HMAC accepts keys of any length");
        mac.update(body);
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; MAC_LEN];
        out.copy_from_slice(&full[..MAC_LEN]);
        out
    }

    /// Encodes a position as a token.
    pub fn encode(&self, p: &IteratorPosition) -> String {
        let name = p.stream.as_str().as_bytes();
        let mut body = Vec::with_capacity(FIXED_LEN + name.len() + MAC_LEN);
        body.push(VERSION);
        body.extend_from_slice(&p.stream_created_at_ms.as_millis().to_le_bytes());
        body.extend_from_slice(&p.shard.to_le_bytes());
        body.extend_from_slice(&p.sequence.get().to_le_bytes());
        body.extend_from_slice(&p.issued_at_ms.as_millis().to_le_bytes());
        body.push(name.len().min(255) as u8);
        body.extend_from_slice(&name[..name.len().min(255)]);
        match &p.filter {
            None => body.push(0),
            Some(f) => {
                body.push(match f.scope {
                    FilterScope::Data => 1,
                    FilterScope::Attributes => 2,
                });
                body.extend_from_slice(&(f.pattern.len() as u32).to_le_bytes());
                body.extend_from_slice(f.pattern.as_bytes());
            }
        }
        let mac = self.mac(&body);
        body.extend_from_slice(&mac);
        URL_SAFE_NO_PAD.encode(body)
    }

    /// Decodes and checks a token at wall-clock time `now`.
    pub fn decode(&self, token: &str, now: Timestamp) -> Result<IteratorPosition, IteratorError> {
        let raw = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_decode_error| IteratorError::Malformed)?;
        if raw.len() < FIXED_LEN + MAC_LEN || !matches!(raw[0], VERSION | VERSION_1) {
            return Err(IteratorError::Malformed);
        }
        let name_len = raw[FIXED_LEN - 1] as usize;
        let (body, mac) = raw.split_at(raw.len() - MAC_LEN);
        let mut verifier = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .expect("HMAC accepts keys of any length");
        verifier.update(body);
        verifier
            .verify_truncated_left(mac)
            .map_err(|_mac_error| IteratorError::Malformed)?;
        let u64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&body[at..at + 8]);
            u64::from_le_bytes(b)
        };
        let mut shard = [0u8; 4];
        shard.copy_from_slice(&body[9..13]);
        // Only this server signs tokens, and only for valid names: a name that does not
        // validate means a token of another server's key or format.
        let name_end = FIXED_LEN + name_len;
        let stream = body
            .get(FIXED_LEN..name_end)
            .and_then(|name| std::str::from_utf8(name).ok())
            .and_then(|name| StreamName::new(name).ok())
            .ok_or(IteratorError::Malformed)?;
        let rest = &body[name_end.min(body.len())..];
        let filter = match (raw[0], rest) {
            (VERSION_1, []) | (VERSION, [0]) => None,
            (VERSION, [scope @ (1 | 2), len @ ..]) if len.len() >= 4 => {
                let (len, pattern) = len.split_at(4);
                let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
                let pattern = std::str::from_utf8(pattern)
                    .ok()
                    .filter(|p| p.len() == len)
                    .ok_or(IteratorError::Malformed)?;
                Some(Filter {
                    pattern: pattern.to_owned(),
                    scope: if *scope == 1 {
                        FilterScope::Data
                    } else {
                        FilterScope::Attributes
                    },
                })
            }
            _ => return Err(IteratorError::Malformed),
        };
        let p = IteratorPosition {
            stream,
            stream_created_at_ms: Timestamp::from_millis(u64_at(1)),
            shard: u32::from_le_bytes(shard),
            sequence: SequenceNumber::new(u64_at(13)),
            issued_at_ms: Timestamp::from_millis(u64_at(21)),
            filter,
        };
        // The age is in whole ms, so this is `age_ms > ttl_ms` with the ttl cut to whole ms.
        let age = now.saturating_duration_since(p.issued_at_ms);
        if age > self.ttl {
            return Err(IteratorError::Expired {
                age_ms: age.as_millis() as u64,
                ttl_ms: self.ttl.as_millis() as u64,
            });
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn position() -> IteratorPosition {
        IteratorPosition {
            stream: StreamName::new("orders").expect("a valid name"),
            stream_created_at_ms: Timestamp::from_millis(7),
            shard: 3,
            sequence: SequenceNumber::new(42),
            issued_at_ms: Timestamp::from_millis(1_000_000),
            filter: None,
        }
    }

    proptest::proptest! {
        /// Whatever a body holds after the fixed fields, a correctly signed token decodes to a
        /// position or is refused as malformed; it never panics.
        #[test]
        fn signed_bodies_of_any_tail_decode_or_are_refused(
            tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
            version in 0u8..4,
        ) {
            let codec = IteratorCodec::new([9; KEY_LEN], DEFAULT_ITERATOR_TTL);
            let mut body = URL_SAFE_NO_PAD.decode(codec.encode(&position())).unwrap();
            body.truncate(body.len() - MAC_LEN - 1);
            body[0] = version;
            body.extend_from_slice(&tail);
            let mac = codec.mac(&body);
            body.extend_from_slice(&mac);
            let decoded = codec.decode(&URL_SAFE_NO_PAD.encode(body), Timestamp::from_millis(1_000_000));
            proptest::prop_assert!(matches!(decoded, Ok(_) | Err(IteratorError::Malformed)));
        }
    }

    #[test]
    fn a_filtered_token_carries_its_filter() {
        let codec = IteratorCodec::new([9; KEY_LEN], DEFAULT_ITERATOR_TTL);
        for scope in [FilterScope::Data, FilterScope::Attributes] {
            let filtered = IteratorPosition {
                filter: Some(Filter {
                    pattern: r#"{"city": ["Zürich"]}"#.into(),
                    scope,
                }),
                ..position()
            };
            let token = codec.encode(&filtered);
            assert_eq!(
                codec.decode(&token, Timestamp::from_millis(1_000_001)),
                Ok(filtered)
            );
        }
    }

    #[test]
    fn a_token_of_the_first_format_is_still_read() {
        let codec = IteratorCodec::new([9; KEY_LEN], DEFAULT_ITERATOR_TTL);
        let mut body = URL_SAFE_NO_PAD.decode(codec.encode(&position())).unwrap();
        body.truncate(body.len() - MAC_LEN - 1);
        body[0] = VERSION_1;
        let mac = codec.mac(&body);
        body.extend_from_slice(&mac);
        assert_eq!(
            codec.decode(
                &URL_SAFE_NO_PAD.encode(body),
                Timestamp::from_millis(1_000_000)
            ),
            Ok(position())
        );
    }

    #[test]
    fn a_token_cut_or_padded_is_refused() {
        let codec = IteratorCodec::new([9; KEY_LEN], DEFAULT_ITERATOR_TTL);
        let filtered = IteratorPosition {
            filter: Some(Filter {
                pattern: "{}".into(),
                scope: FilterScope::Data,
            }),
            ..position()
        };
        let good = URL_SAFE_NO_PAD.decode(codec.encode(&filtered)).unwrap();
        let body = &good[..good.len() - MAC_LEN];
        for edited in [&body[..body.len() - 1], &[body, b"x"].concat()[..]] {
            let mut raw = edited.to_vec();
            raw.extend_from_slice(&codec.mac(&raw));
            assert_eq!(
                codec.decode(
                    &URL_SAFE_NO_PAD.encode(raw),
                    Timestamp::from_millis(1_000_000)
                ),
                Err(IteratorError::Malformed)
            );
        }
    }

    #[test]
    fn a_token_decodes_to_what_was_encoded() {
        let codec = IteratorCodec::new([9; KEY_LEN], DEFAULT_ITERATOR_TTL);
        let token = codec.encode(&position());
        assert_eq!(
            codec
                .decode(&token, Timestamp::from_millis(1_000_500))
                .unwrap(),
            position()
        );
    }

    #[test]
    fn an_edited_token_is_refused() {
        let codec = IteratorCodec::new([9; KEY_LEN], DEFAULT_ITERATOR_TTL);
        let mut raw = URL_SAFE_NO_PAD.decode(codec.encode(&position())).unwrap();
        raw[14] ^= 1;
        let forged = URL_SAFE_NO_PAD.encode(raw);
        assert_eq!(
            codec.decode(&forged, Timestamp::from_millis(1_000_000)),
            Err(IteratorError::Malformed)
        );
        assert_eq!(
            codec.decode("not base64!", Timestamp::from_millis(0)),
            Err(IteratorError::Malformed)
        );
    }

    #[test]
    fn a_token_from_another_key_is_refused() {
        let a = IteratorCodec::new([1; KEY_LEN], DEFAULT_ITERATOR_TTL);
        let b = IteratorCodec::new([2; KEY_LEN], DEFAULT_ITERATOR_TTL);
        assert_eq!(
            b.decode(&a.encode(&position()), Timestamp::from_millis(1_000_000)),
            Err(IteratorError::Malformed)
        );
    }

    #[test]
    fn an_old_token_has_expired() {
        let codec = IteratorCodec::new([9; KEY_LEN], Duration::from_secs(300));
        let token = codec.encode(&position());
        assert!(codec
            .decode(&token, Timestamp::from_millis(1_000_000 + 300_000))
            .is_ok());
        assert!(matches!(
            codec.decode(&token, Timestamp::from_millis(1_000_000 + 300_001)),
            Err(IteratorError::Expired { .. })
        ));
    }
}
