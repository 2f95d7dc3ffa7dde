//! The hash function of the window's table: one multiply over a key that is already uniform.
//!
//! A [`DedupKey`](super::DedupKey) is a truncated SHA-256, so its first eight bytes are already
//! uniformly distributed and a general-purpose hasher (SipHash, which also buffers the array's
//! length prefix and all sixteen bytes) only spends time. They are not secret, though: a client
//! knows the key of every id it sends and could grind ids whose keys fill one bucket of the
//! table. So the eight bytes are mixed with a seed drawn at random for each window, by one
//! folded 64×64→128-bit multiply: without the seed, which keys share a bucket cannot be predicted.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

/// An odd constant with well-mixed bits (the 64-bit fractional part of π), the multiplier of
/// the folded multiply.
const MULTIPLIER: u64 = 0x243f_6a88_85a3_08d3;

/// Builds the hasher of one window's table, with that window's random seed.
#[derive(Clone, Copy, Debug)]
pub(super) struct KeyHashState {
    seed: u64,
}

impl KeyHashState {
    /// A state with a seed no client can know: std's per-process random SipHash keys, applied to
    /// a constant.
    pub(super) fn random() -> Self {
        Self {
            seed: RandomState::new().hash_one(MULTIPLIER),
        }
    }
}

impl BuildHasher for KeyHashState {
    type Hasher = KeyHasher;

    fn build_hasher(&self) -> KeyHasher {
        KeyHasher {
            seed: self.seed,
            hash: 0,
        }
    }
}

/// The hasher itself. `DedupKey` hashes as one `write_u64` of its first eight bytes; any other
/// input (not expected in this table) is folded in eight bytes at a time, so the hasher stays a
/// correct, if unremarkable, hasher for any type.
pub(super) struct KeyHasher {
    seed: u64,
    hash: u64,
}

impl Hasher for KeyHasher {
    fn write_u64(&mut self, word: u64) {
        self.hash = folded_multiply(self.hash ^ word ^ self.seed, MULTIPLIER);
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            // The length keeps "ab" and "ab\0" apart.
            self.write_u64(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 59));
        }
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

/// The high and low halves of the 128-bit product, xored: every input bit reaches the low bits
/// the table picks its bucket with.
fn folded_multiply(x: u64, y: u64) -> u64 {
    let product = u128::from(x) * u128::from(y);
    (product as u64) ^ ((product >> 64) as u64)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::hash::BuildHasher;

    use super::super::key::DedupKey;
    use super::*;
    use crate::stream::DedupScope;

    fn key(id: &str) -> DedupKey {
        DedupKey::for_id(DedupScope::Stream, None, id)
    }

    #[test]
    fn equal_keys_hash_alike_and_distinct_keys_apart() {
        let state = KeyHashState::random();
        assert_eq!(state.hash_one(key("a")), state.hash_one(key("a")));
        let hashes: HashSet<u64> = (0..10_000)
            .map(|i| state.hash_one(key(&i.to_string())))
            .collect();
        assert_eq!(hashes.len(), 10_000);
    }

    #[test]
    fn two_windows_place_the_same_key_differently() {
        let (one, other) = (KeyHashState::random(), KeyHashState::random());
        assert_ne!(one.seed, other.seed);
        assert_ne!(one.hash_one(key("a")), other.hash_one(key("a")));
    }

    #[test]
    fn keys_spread_evenly_over_the_low_bits() {
        // The table picks a bucket from the low bits: 64 buckets, 64,000 keys, each bucket
        // should get close to 1,000 (a skewed hash would leave some near empty).
        let state = KeyHashState::random();
        let mut buckets = [0u32; 64];
        for i in 0..64_000 {
            buckets[(state.hash_one(key(&i.to_string())) % 64) as usize] += 1;
        }
        assert!(
            buckets.iter().all(|&n| (800..1200).contains(&n)),
            "{buckets:?}"
        );
    }

    #[test]
    fn byte_input_of_different_lengths_hashes_apart() {
        let state = KeyHashState::random();
        assert_ne!(
            state.hash_one(b"ab".as_slice()),
            state.hash_one(b"ab\0".as_slice())
        );
        assert_ne!(state.hash_one("abcdefgh"), state.hash_one("abcdefgi"));
    }
}
