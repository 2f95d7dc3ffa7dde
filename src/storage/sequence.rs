//! `SequenceNumber`: a record's position in its shard, the key every read, iterator and
//! checkpoint is expressed in.

use std::fmt;
use std::ops::{Add, AddAssign, Sub};

/// A record's position in its shard's log. The shard's log assigns them densely, from 0 up,
/// one per record in arrival order: record `n + 1` was appended right after record `n`, and no
/// number is skipped or given twice. A plain `u64` on the wire and on disk; this type keeps it
/// from being mixed up with counts, byte positions or timestamps inside the engine.
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SequenceNumber(u64);

impl SequenceNumber {
    /// The first record of every shard.
    pub const ZERO: SequenceNumber = SequenceNumber(0);
    /// The largest value the wire and the frame can carry; used as "no upper bound".
    pub const MAX: SequenceNumber = SequenceNumber(u64::MAX);

    /// The sequence number whose wire and on-disk value is `n`.
    #[inline]
    pub const fn new(n: u64) -> SequenceNumber {
        SequenceNumber(n)
    }

    /// The wire and on-disk value.
    #[inline]
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The record appended right after this one.
    #[inline]
    pub const fn next(self) -> SequenceNumber {
        SequenceNumber(self.0 + 1)
    }

    /// The position `count` records further on, `None` past [`SequenceNumber::MAX`] (which a
    /// sequence number read from the wire may be close to).
    #[inline]
    pub const fn checked_add(self, count: u64) -> Option<SequenceNumber> {
        match self.0.checked_add(count) {
            Some(n) => Some(SequenceNumber(n)),
            None => None,
        }
    }

    /// The position `count` records earlier, `None` before the first record (e.g. the record
    /// before position 0, which does not exist).
    #[inline]
    pub const fn checked_sub(self, count: u64) -> Option<SequenceNumber> {
        match self.0.checked_sub(count) {
            Some(n) => Some(SequenceNumber(n)),
            None => None,
        }
    }

    /// The position `count` records further on, stopping at [`SequenceNumber::MAX`].
    #[inline]
    pub const fn saturating_add(self, count: u64) -> SequenceNumber {
        SequenceNumber(self.0.saturating_add(count))
    }

    /// The position `count` records earlier, stopping at [`SequenceNumber::ZERO`].
    #[inline]
    pub const fn saturating_sub(self, count: u64) -> SequenceNumber {
        SequenceNumber(self.0.saturating_sub(count))
    }

    /// Records from `earlier` up to (not including) `self`; 0 when `earlier` is not earlier.
    #[inline]
    pub const fn saturating_distance_from(self, earlier: SequenceNumber) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

/// `seq + count`: the position `count` records further on (overflow panics in debug builds,
/// as for `u64`; the log never comes near it).
impl Add<u64> for SequenceNumber {
    type Output = SequenceNumber;

    #[inline]
    fn add(self, count: u64) -> SequenceNumber {
        SequenceNumber(self.0 + count)
    }
}

impl AddAssign<u64> for SequenceNumber {
    #[inline]
    fn add_assign(&mut self, count: u64) {
        self.0 += count;
    }
}

/// `later - earlier`: the records from `earlier` up to (not including) `later`. Like `u64`
/// subtraction, `earlier` must not be later (checked in debug builds); see
/// [`SequenceNumber::saturating_distance_from`] where it may be.
impl Sub for SequenceNumber {
    type Output = u64;

    #[inline]
    fn sub(self, earlier: SequenceNumber) -> u64 {
        self.0 - earlier.0
    }
}

/// The plain number, as on the wire: logs and error messages read the same as the API.
impl fmt::Display for SequenceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_follows_the_plain_number_and_saturates_at_the_ends() {
        let s = SequenceNumber::new(41);
        assert_eq!(s.next().get(), 42);
        assert_eq!((s + 9).get(), 50);
        assert_eq!(s + 9 - s, 9);
        assert_eq!(s.checked_add(u64::MAX), None);
        assert_eq!(SequenceNumber::ZERO.checked_sub(1), None);
        assert_eq!(s.checked_sub(1), Some(SequenceNumber::new(40)));
        assert_eq!(SequenceNumber::MAX.saturating_add(1), SequenceNumber::MAX);
        assert_eq!(s.saturating_sub(100), SequenceNumber::ZERO);
        assert_eq!(s.saturating_distance_from(SequenceNumber::new(40)), 1);
        assert_eq!(SequenceNumber::new(40).saturating_distance_from(s), 0);
        assert_eq!(s.to_string(), "41");
    }

    #[test]
    fn it_is_a_u64_in_memory() {
        assert_eq!(std::mem::size_of::<SequenceNumber>(), 8);
        assert_eq!(std::mem::size_of::<Option<SequenceNumber>>(), 16);
    }
}
