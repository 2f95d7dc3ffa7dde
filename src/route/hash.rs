//! The hasher of the matcher's tables: short byte strings and integers, hashed eight bytes a
//! step (the Fx scheme). Keys come from patterns, which their owners choose, and event values
//! only look keys up, so flooding is not a concern the way it is for a table events insert into.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

/// A fast, non-cryptographic hasher.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct FxHasher {
    hash: u64,
}

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    /// The multiply leaves a byte's influence in the bits above it only, and the table picks
    /// buckets with the low bits: keys that differ only in their last bytes (`svc-1`, `svc-2`)
    /// would share a bucket. A final mix (MurmurHash3's) spreads every bit down.
    fn finish(&self) -> u64 {
        let mut h = self.hash;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^ (h >> 33)
    }
}

/// A `HashMap` with [`FxHasher`].
pub(crate) type FxHashMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{BuildHasher, BuildHasherDefault};

    #[test]
    fn keys_differing_in_their_last_byte_spread_over_the_low_bits() {
        let build = BuildHasherDefault::<FxHasher>::default();
        let mut low: Vec<u64> = (0..64u8)
            .map(|i| {
                build.hash_one([b'k', b'e', b'y', b'-', b'0', b'0', b'0', i].as_slice()) & 0xff
            })
            .collect();
        low.sort_unstable();
        low.dedup();
        assert!(
            low.len() > 32,
            "only {} distinct low bytes of 64 keys",
            low.len()
        );
    }
}
