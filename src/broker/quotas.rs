//! Per-shard throughput limits, as Kinesis enforces them: records and bytes put per second,
//! GetRecords calls and bytes read per second. Off unless configured (`--shard-limits kinesis`
//! sets Kinesis's figures). Each limit is a GCRA rate limiter (`governor`) whose burst is one
//! second's worth, so a shard takes a second of traffic at once and then its rate.
//!
//! A put entry over its shard's limit fails alone (the others of the request are stored); a
//! GetRecords over the call rate fails whole; a GetRecords whose records would exceed the bytes
//! rate fails whole too, and its iterator stays where it was, so the retry reads them again.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota};

/// Kinesis's write limit per shard: records per second.
pub const KINESIS_PUT_RECORDS_PER_SEC: u32 = 1_000;
/// Kinesis's write limit per shard: bytes per second (1 MiB).
pub const KINESIS_PUT_BYTES_PER_SEC: u32 = 1024 * 1024;
/// Kinesis's read limit per shard: bytes per second (2 MiB).
pub const KINESIS_READ_BYTES_PER_SEC: u32 = 2 * 1024 * 1024;
/// Kinesis's read limit per shard: GetRecords calls per second.
pub const KINESIS_GET_RECORDS_PER_SEC: u32 = 5;

/// The per-shard limits; `None` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShardQuotas {
    /// Records put per second.
    pub put_records_per_sec: Option<NonZeroU32>,
    /// Bytes put per second (data, partition key and attributes of each record).
    pub put_bytes_per_sec: Option<NonZeroU32>,
    /// Bytes of record data read per second by GetRecords.
    pub read_bytes_per_sec: Option<NonZeroU32>,
    /// GetRecords calls per second.
    pub get_records_per_sec: Option<NonZeroU32>,
}

impl ShardQuotas {
    /// Kinesis's limits: 1,000 records or 1 MiB written, 2 MiB or 5 calls read, per second.
    pub fn kinesis() -> ShardQuotas {
        ShardQuotas {
            put_records_per_sec: NonZeroU32::new(KINESIS_PUT_RECORDS_PER_SEC),
            put_bytes_per_sec: NonZeroU32::new(KINESIS_PUT_BYTES_PER_SEC),
            read_bytes_per_sec: NonZeroU32::new(KINESIS_READ_BYTES_PER_SEC),
            get_records_per_sec: NonZeroU32::new(KINESIS_GET_RECORDS_PER_SEC),
        }
    }

    /// True when no limit is set.
    pub fn is_off(&self) -> bool {
        *self == ShardQuotas::default()
    }
}

/// Which limit refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Records put per second.
    PutRecords,
    /// Bytes put per second.
    PutBytes,
    /// Bytes read per second.
    ReadBytes,
    /// GetRecords calls per second.
    GetRecordsCalls,
}

impl Limit {
    /// The reason a throttled request is counted under.
    pub fn reason(self) -> &'static str {
        match self {
            Limit::PutRecords => "shard_put_records",
            Limit::PutBytes => "shard_put_bytes",
            Limit::ReadBytes => "shard_read_bytes",
            Limit::GetRecordsCalls => "shard_get_records_calls",
        }
    }

    /// What the limit counts, for messages.
    pub fn what(self) -> &'static str {
        match self {
            Limit::PutRecords => "records put",
            Limit::PutBytes => "bytes put",
            Limit::ReadBytes => "bytes read",
            Limit::GetRecordsCalls => "GetRecords calls",
        }
    }
}

/// One shard's limiters.
pub(crate) struct ShardLimiters {
    quotas: ShardQuotas,
    put_records: Option<Limiter>,
    put_bytes: Option<Limiter>,
    read_bytes: Option<Limiter>,
    get_records: Option<Limiter>,
}

impl std::fmt::Debug for ShardLimiters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardLimiters")
            .field("quotas", &self.quotas)
            .finish()
    }
}

fn limiter(rate: Option<NonZeroU32>) -> Option<Limiter> {
    rate.map(Limiter::per_second)
}

/// Takes `n` cells; the wait before they would fit when they do not now. More cells than one
/// second's burst never fit at once: such an item takes the whole burst, so it passes when the
/// limiter is idle and is slowed by the limit rather than refused for ever.
pub fn take(l: &Limiter, n: usize) -> Result<(), Duration> {
    let n = u32::try_from(n).unwrap_or(u32::MAX).min(l.burst.get());
    let Some(n) = NonZeroU32::new(n) else {
        return Ok(());
    };
    match l.limiter.check_n(n) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(not_until)) => Err(not_until.wait_time_from(DefaultClock::default().now())),
        // `n` is at most the burst: the quota always has room for it.
        Err(_insufficient) => Ok(()),
    }
}

/// A limiter and its burst (one second's worth).
pub struct Limiter {
    limiter: DefaultDirectRateLimiter,
    burst: NonZeroU32,
}

impl Limiter {
    /// A limit of `rate` cells per second, with a burst of one second's worth.
    pub fn per_second(rate: NonZeroU32) -> Limiter {
        Limiter {
            limiter: DefaultDirectRateLimiter::direct(Quota::per_second(rate)),
            burst: rate,
        }
    }

    /// The limit, per second.
    pub fn rate(&self) -> NonZeroU32 {
        self.burst
    }
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Limiter({}/s)", self.burst)
    }
}

impl ShardLimiters {
    pub(crate) fn new(quotas: ShardQuotas) -> ShardLimiters {
        ShardLimiters {
            quotas,
            put_records: limiter(quotas.put_records_per_sec),
            put_bytes: limiter(quotas.put_bytes_per_sec),
            read_bytes: limiter(quotas.read_bytes_per_sec),
            get_records: limiter(quotas.get_records_per_sec),
        }
    }

    /// Takes one put entry of `bytes`; which limit refused it and how long to wait if one did.
    pub(crate) fn put(&self, bytes: usize) -> Result<(), (Limit, Duration)> {
        if let Some(l) = &self.put_records {
            take(l, 1).map_err(|wait| (Limit::PutRecords, wait))?;
        }
        if let Some(l) = &self.put_bytes {
            take(l, bytes).map_err(|wait| (Limit::PutBytes, wait))?;
        }
        Ok(())
    }

    /// Takes one GetRecords call.
    pub(crate) fn get_records(&self) -> Result<(), (Limit, Duration)> {
        match &self.get_records {
            Some(l) => take(l, 1).map_err(|wait| (Limit::GetRecordsCalls, wait)),
            None => Ok(()),
        }
    }

    /// Takes `bytes` read by one GetRecords.
    pub(crate) fn read(&self, bytes: usize) -> Result<(), (Limit, Duration)> {
        match &self.read_bytes {
            Some(l) => take(l, bytes).map_err(|wait| (Limit::ReadBytes, wait)),
            None => Ok(()),
        }
    }

    /// The most bytes one read may return: a second's worth under a read limit.
    pub(crate) fn read_budget(&self, max: usize) -> usize {
        self.quotas
            .read_bytes_per_sec
            .map_or(max, |r| max.min(r.get() as usize))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_one_second_passes_then_the_limit_refuses_and_names_the_wait() {
        let l = ShardLimiters::new(ShardQuotas {
            put_records_per_sec: NonZeroU32::new(10),
            ..ShardQuotas::default()
        });
        for _ in 0..10 {
            l.put(100).unwrap();
        }
        let (limit, wait) = l.put(100).unwrap_err();
        assert_eq!(limit, Limit::PutRecords);
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(100),
            "{wait:?}"
        );
    }

    #[test]
    fn an_item_larger_than_the_burst_passes_only_when_the_limiter_is_idle() {
        let l = ShardLimiters::new(ShardQuotas {
            put_bytes_per_sec: NonZeroU32::new(1_000),
            ..ShardQuotas::default()
        });
        l.put(5_000).unwrap();
        assert_eq!(l.put(10).unwrap_err().0, Limit::PutBytes);
        let unlimited = ShardLimiters::new(ShardQuotas::default());
        assert!(unlimited.put(usize::MAX).is_ok());
        assert_eq!(unlimited.read_budget(123), 123);
    }
}
