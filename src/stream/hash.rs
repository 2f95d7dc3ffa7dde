//! The 128-bit hash key space: [`HashKey`], inclusive [`HashKeyRange`]s, MD5 of a partition key,
//! and the even split of the space into shards that Kinesis performs on stream creation.

use std::fmt;
use std::str::FromStr;

use md5::{Digest, Md5};

use super::ModelError;

/// Longest decimal form of a hash key: 2^128−1 has 39 digits.
const MAX_HASH_KEY_DIGITS: usize = 39;

/// A point of the 128-bit key space that records are routed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct HashKey(pub u128);

impl HashKey {
    /// The first key of the space.
    pub const MIN: HashKey = HashKey(0);
    /// The last key of the space, 2^128−1.
    pub const MAX: HashKey = HashKey(u128::MAX);

    /// The key a partition key routes to: the MD5 of its UTF-8 bytes read as a big-endian u128,
    /// exactly as Kinesis computes it, so the same keys land in the same shards.
    pub fn of_partition_key(partition_key: &str) -> HashKey {
        let digest: [u8; 16] = Md5::digest(partition_key.as_bytes()).into();
        HashKey(u128::from_be_bytes(digest))
    }

    /// Parses a decimal key `0|[1-9][0-9]{0,38}` in [0, 2^128−1]; errors name `field`.
    pub fn parse(s: &str, field: &'static str) -> Result<HashKey, ModelError> {
        let well_formed = !s.is_empty()
            && s.len() <= MAX_HASH_KEY_DIGITS
            && s.bytes().all(|b| b.is_ascii_digit())
            && (s == "0" || !s.starts_with('0'));
        if !well_formed {
            return Err(ModelError::invalid(
                field,
                format!("{s:?} is not a decimal number without leading zeros"),
            ));
        }
        // Only digits remain, so the one possible failure is overflow.
        match s.parse::<u128>() {
            Ok(value) => Ok(HashKey(value)),
            Err(_overflow) => Err(ModelError::invalid(
                field,
                format!("must be in the range [0, 2^128-1]; specified value was {s}"),
            )),
        }
    }

    /// The key as an integer.
    pub fn value(self) -> u128 {
        self.0
    }
}

impl fmt::Display for HashKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for HashKey {
    type Err = ModelError;

    /// Parses a client's explicit hash key; errors name `explicit_hash_key`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HashKey::parse(s, "explicit_hash_key")
    }
}

/// An inclusive range `[start, end]` of hash keys: the keys one shard owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HashKeyRange {
    /// First key of the range.
    pub start: HashKey,
    /// Last key of the range (inclusive).
    pub end: HashKey,
}

impl HashKeyRange {
    /// The whole key space.
    pub const FULL: HashKeyRange = HashKeyRange {
        start: HashKey::MIN,
        end: HashKey::MAX,
    };

    /// A range; `start` must not be above `end`.
    pub fn new(start: HashKey, end: HashKey) -> Result<HashKeyRange, ModelError> {
        if start > end {
            return Err(ModelError::invalid(
                "hash_key_range",
                format!("starting hash key {start} is above ending hash key {end}"),
            ));
        }
        Ok(HashKeyRange { start, end })
    }

    /// True when `key` is in the range.
    pub fn contains(&self, key: HashKey) -> bool {
        self.start <= key && key <= self.end
    }
}

/// Splits the whole key space into `shard_count` contiguous ranges as Kinesis does on
/// CreateStream: with `step = floor(2^128 / n)`, shard `i` gets `[i·step, (i+1)·step − 1]` and the
/// last shard's range ends at 2^128−1, taking the remainder. Returns no ranges for 0 shards.
pub fn split_evenly(shard_count: u32) -> Vec<HashKeyRange> {
    let n = u128::from(shard_count);
    if n <= 1 {
        return if n == 1 {
            vec![HashKeyRange::FULL]
        } else {
            Vec::new()
        };
    }
    // 2^128 does not fit in a u128: 2^128 = n·q + r + 1 with q, r the quotient and remainder of
    // (2^128 − 1) / n, so floor(2^128 / n) is q, or q + 1 when r + 1 == n. With n >= 2 the step
    // is at most 2^127, and i·step for i < n stays below 2^128.
    let (q, r) = (u128::MAX / n, u128::MAX % n);
    let step = if r + 1 == n { q + 1 } else { q };
    (0..n)
        .map(|i| {
            let start = i * step;
            let end = if i + 1 == n {
                u128::MAX
            } else {
                start + step - 1
            };
            HashKeyRange {
                start: HashKey(start),
                end: HashKey(end),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn partition_keys_hash_like_kinesis() {
        // MD5("") = d41d8cd98f00b204e9800998ecf8427e
        assert_eq!(
            HashKey::of_partition_key(""),
            HashKey(0xd41d8cd98f00b204e9800998ecf8427e)
        );
        // MD5("a") = 0cc175b9c0f1b6a831c399e269772661
        assert_eq!(
            HashKey::of_partition_key("a").to_string(),
            u128::from_str_radix("0cc175b9c0f1b6a831c399e269772661", 16)
                .unwrap()
                .to_string()
        );
    }

    #[test]
    fn hash_keys_parse_their_decimal_form() {
        assert_eq!("0".parse::<HashKey>().unwrap(), HashKey(0));
        assert_eq!("42".parse::<HashKey>().unwrap(), HashKey(42));
        let max = "340282366920938463463374607431768211455";
        assert_eq!(max.parse::<HashKey>().unwrap(), HashKey::MAX);
        assert_eq!(HashKey::MAX.to_string(), max);
    }

    #[test]
    fn malformed_or_out_of_range_hash_keys_are_rejected_naming_the_field() {
        for bad in [
            "",
            "-1",
            "+1",
            "01",
            "00",
            " 1",
            "1.0",
            "0x10",
            "340282366920938463463374607431768211456",
            "1000000000000000000000000000000000000000",
        ] {
            let err = bad.parse::<HashKey>().unwrap_err();
            assert_eq!(err.field(), "explicit_hash_key", "{bad:?}");
        }
        let err = HashKey::parse("x", "starting_hash_key").unwrap_err();
        assert_eq!(err.field(), "starting_hash_key");
    }

    #[test]
    fn three_shards_split_like_kinesis() {
        let ranges = split_evenly(3);
        let ends: Vec<String> = ranges.iter().map(|r| r.end.to_string()).collect();
        assert_eq!(
            ends,
            [
                "113427455640312821154458202477256070484",
                "226854911280625642308916404954512140969",
                "340282366920938463463374607431768211455",
            ]
        );
        assert_eq!(ranges[0].start, HashKey(0));
        assert_eq!(
            ranges[1].start.to_string(),
            "113427455640312821154458202477256070485"
        );
    }

    #[test]
    fn power_of_two_shard_counts_split_into_equal_ranges() {
        let ranges = split_evenly(4);
        let step = 1u128 << 126;
        for (i, range) in ranges.iter().enumerate() {
            let i = i as u128;
            assert_eq!(range.start, HashKey(i * step));
            assert_eq!(range.end, HashKey(i * step + (step - 1)));
        }
        assert_eq!(split_evenly(2)[1].start, HashKey(1 << 127));
    }

    #[test]
    fn one_shard_owns_the_whole_space_and_zero_shards_own_nothing() {
        assert_eq!(split_evenly(1), vec![HashKeyRange::FULL]);
        assert!(split_evenly(0).is_empty());
    }

    #[test]
    fn a_range_may_not_start_after_it_ends() {
        assert!(HashKeyRange::new(HashKey(2), HashKey(1)).is_err());
        let range = HashKeyRange::new(HashKey(1), HashKey(2)).unwrap();
        assert!(range.contains(HashKey(1)) && range.contains(HashKey(2)));
        assert!(!range.contains(HashKey(0)) && !range.contains(HashKey(3)));
    }

    proptest! {
        #[test]
        fn even_split_is_contiguous_and_covers_the_space(n in 1u32..=20_000) {
            let ranges = split_evenly(n);
            prop_assert_eq!(ranges.len(), n as usize);
            prop_assert_eq!(ranges[0].start, HashKey::MIN);
            prop_assert_eq!(ranges[ranges.len() - 1].end, HashKey::MAX);
            let step = ranges[0].end.0 - ranges[0].start.0 + 1;
            for pair in ranges.windows(2) {
                prop_assert!(pair[0].start <= pair[0].end);
                prop_assert_eq!(pair[0].end.0 + 1, pair[1].start.0);
            }
            // Every shard but the last has exactly `step` keys, and the last has no fewer.
            for range in &ranges[..ranges.len() - 1] {
                prop_assert_eq!(range.end.0 - range.start.0 + 1, step);
            }
            let last = ranges[ranges.len() - 1];
            prop_assert!(last.end.0 - last.start.0 >= step - 1);
            // step = floor(2^128 / n): n·step − 1 <= 2^128 − 1 < n·(step + 1) − 1.
            let n = u128::from(n);
            let fits = |s: u128| s.checked_mul(n).and_then(|x| x.checked_add(n - 1)).is_some();
            prop_assert!(fits(step - 1));
            prop_assert!(!fits(step));
        }

        #[test]
        fn every_key_falls_in_exactly_one_range(n in 1u32..=64, key in any::<u128>()) {
            let ranges = split_evenly(n);
            let owners = ranges.iter().filter(|r| r.contains(HashKey(key))).count();
            prop_assert_eq!(owners, 1);
        }

        #[test]
        fn hash_keys_round_trip_through_their_decimal_form(key in any::<u128>()) {
            prop_assert_eq!(HashKey(key).to_string().parse::<HashKey>(), Ok(HashKey(key)));
        }
    }
}
