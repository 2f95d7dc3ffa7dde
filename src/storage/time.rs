//! `Timestamp`: wall-clock time in milliseconds since the Unix epoch, the arrival time the log
//! stamps on every batch.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A wall-clock instant, in whole milliseconds since the Unix epoch: the resolution and the
/// origin of the arrival times stored in frames and time indexes and sent on the wire. Unlike
/// [`std::time::Instant`] it survives restarts and is comparable across machines, and so it is
/// what retention and at-timestamp iterators are measured in. Spans between two of them are
/// [`Duration`]s.
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The Unix epoch itself: what an empty shard reports as its newest arrival time.
    pub const UNIX_EPOCH: Timestamp = Timestamp(0);

    /// The system clock, now (the epoch if the clock reads earlier than it).
    #[inline]
    pub fn now() -> Timestamp {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(Timestamp::UNIX_EPOCH, Timestamp::from_duration_since_epoch)
    }

    /// The instant `ms` milliseconds after the epoch: the stored and wire value.
    #[inline]
    pub const fn from_millis(ms: u64) -> Timestamp {
        Timestamp(ms)
    }

    /// Milliseconds since the epoch: the stored and wire value.
    #[inline]
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// The instant `since_epoch` after the epoch, cut to whole milliseconds.
    #[inline]
    pub fn from_duration_since_epoch(since_epoch: Duration) -> Timestamp {
        Timestamp(duration_millis(since_epoch))
    }

    /// `span` earlier, stopping at the epoch.
    #[inline]
    pub fn saturating_sub(self, span: Duration) -> Timestamp {
        Timestamp(self.0.saturating_sub(duration_millis(span)))
    }

    /// `span` later, stopping at the largest representable instant.
    #[inline]
    pub fn saturating_add(self, span: Duration) -> Timestamp {
        Timestamp(self.0.saturating_add(duration_millis(span)))
    }

    /// How long after `earlier` this is; zero when `earlier` is not earlier (wall clocks may
    /// step back).
    #[inline]
    pub fn saturating_duration_since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }

    /// The calendar date and time of day in UTC: year, month (1–12), day (1–31), hour, minute,
    /// second and millisecond.
    pub fn civil(self) -> (i64, u32, u32, u32, u32, u32, u32) {
        let secs = self.0 / 1000;
        let days = (secs / 86_400) as i64;
        let of_day = (secs % 86_400) as u32;
        // Days since 1970-01-01 to a proleptic Gregorian date, counting in 400-year eras from
        // 0000-03-01 so that the leap day ends each era's year.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        let ms = (self.0 % 1000) as u32;
        (
            year,
            month,
            day,
            of_day / 3600,
            of_day % 3600 / 60,
            of_day % 60,
            ms,
        )
    }

    /// ISO 8601 (RFC 3339) in UTC with milliseconds: `2026-12-07T17:30:05.123Z`.
    pub fn to_rfc3339(self) -> String {
        let (y, mo, d, h, mi, s, ms) = self.civil();
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z")
    }
}

/// Whole milliseconds of `d`, saturating: no span the engine handles comes near `u64::MAX` ms.
#[inline]
fn duration_millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Milliseconds since the epoch, as on the wire.
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_is_the_calendar_date_in_utc() {
        use super::Timestamp;
        assert_eq!(
            Timestamp::from_millis(0).to_rfc3339(),
            "1970-01-01T00:00:00.000Z"
        );
        // A leap day, and the last millisecond of a leap year.
        assert_eq!(
            Timestamp::from_millis(951_782_400_000).to_rfc3339(),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(
            Timestamp::from_millis(1_735_689_599_999).to_rfc3339(),
            "2024-12-31T23:59:59.999Z"
        );
        assert_eq!(
            Timestamp::from_millis(1_796_591_403_610).to_rfc3339(),
            "2026-12-06T21:10:03.610Z"
        );
    }

    use super::*;

    #[test]
    fn arithmetic_with_durations_is_in_whole_milliseconds_and_saturates() {
        let t = Timestamp::from_millis(10_000);
        assert_eq!(t.saturating_sub(Duration::from_secs(3)).as_millis(), 7_000);
        assert_eq!(
            t.saturating_sub(Duration::from_secs(11)),
            Timestamp::UNIX_EPOCH
        );
        assert_eq!(
            t.saturating_add(Duration::from_micros(1_999)).as_millis(),
            10_001
        );
        assert_eq!(
            t.saturating_duration_since(Timestamp::from_millis(9_500)),
            Duration::from_millis(500)
        );
        assert_eq!(
            Timestamp::from_millis(1).saturating_duration_since(t),
            Duration::ZERO
        );
        assert_eq!(t.to_string(), "10000");
    }

    #[test]
    fn now_is_after_the_epoch_and_a_u64_in_memory() {
        assert!(Timestamp::now() > Timestamp::from_millis(1_600_000_000_000));
        assert_eq!(std::mem::size_of::<Timestamp>(), 8);
    }
}
