//! The open-loop send schedule: when each producer's next batch is due at a fixed total rate.
//!
//! A closed-loop producer sends its next batch only after the last one is acknowledged, so a
//! stalled server silently stops the clock: the requests that would have waited are never
//! sent and their latency never recorded ("coordinated omission"). With `--rate`, batches are
//! due on a fixed timetable regardless of how the server keeps up, and latency is measured
//! from each batch's *intended* send time, so a stall shows up in every batch it delayed.
//!
//! The producers share one timetable of slots, interleaved so their sends spread evenly:
//!
//! ```text
//!  slot s is due at  s × batch_size / rate  seconds after the start
//!  producer p of P sends slots p, p+P, p+2P, …   (its k-th batch is slot k·P + p)
//! ```

use std::time::Duration;

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// One producer's timetable. Exact integer arithmetic: the k-th due time never drifts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenLoopSchedule {
    /// Records per second summed over every producer; at least 1.
    rate: u64,
    /// Records per batch; at least 1.
    batch_size: u64,
    producers: u64,
    producer: u64,
}

impl OpenLoopSchedule {
    /// The timetable of producer `producer` (0-based) of `producers`, sending batches of
    /// `batch_size` records so that all of them together send `rate` records per second.
    /// Zero rate, batch size or producer count are raised to 1; `producer` wraps modulo
    /// `producers`.
    pub fn new(rate: u64, batch_size: usize, producers: usize, producer: usize) -> Self {
        let producers = (producers as u64).max(1);
        OpenLoopSchedule {
            rate: rate.max(1),
            batch_size: (batch_size as u64).max(1),
            producers,
            producer: producer as u64 % producers,
        }
    }

    /// When this producer's `k`-th batch (0-based) is due, after the run's start.
    pub fn due(&self, k: u64) -> Duration {
        let slot = u128::from(k) * u128::from(self.producers) + u128::from(self.producer);
        let nanos = slot * u128::from(self.batch_size) * NANOS_PER_SEC / u128::from(self.rate);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// Time between two of this producer's batches (rounded down to the nanosecond).
    #[cfg(test)]
    fn period(&self) -> Duration {
        let nanos = u128::from(self.producers) * u128::from(self.batch_size) * NANOS_PER_SEC
            / u128::from(self.rate);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_producer_sends_a_batch_every_batch_size_over_rate_seconds() {
        // 20,000 records/s in batches of 20: one batch per millisecond.
        let schedule = OpenLoopSchedule::new(20_000, 20, 1, 0);
        assert_eq!(schedule.due(0), Duration::ZERO);
        assert_eq!(schedule.due(1), Duration::from_millis(1));
        assert_eq!(schedule.due(1000), Duration::from_secs(1));
        assert_eq!(schedule.period(), Duration::from_millis(1));
    }

    #[test]
    fn producers_interleave_their_slots_evenly() {
        let rate = 1000;
        let batch = 10; // 100 batches/s in total: one every 10 ms.
        let first = OpenLoopSchedule::new(rate, batch, 2, 0);
        let second = OpenLoopSchedule::new(rate, batch, 2, 1);
        assert_eq!(first.due(0), Duration::ZERO);
        assert_eq!(second.due(0), Duration::from_millis(10));
        assert_eq!(first.due(1), Duration::from_millis(20));
        assert_eq!(second.due(1), Duration::from_millis(30));
        assert_eq!(first.period(), Duration::from_millis(20));
    }

    #[test]
    fn the_producers_together_keep_the_total_rate() {
        let (rate, batch, producers) = (7_777, 13, 3);
        let schedules: Vec<_> = (0..producers)
            .map(|p| OpenLoopSchedule::new(rate, batch, producers, p))
            .collect();
        let window = Duration::from_secs(10);
        let sent: u64 = schedules
            .iter()
            .map(|s| (0..).take_while(|&k| s.due(k) < window).count() as u64 * batch as u64)
            .sum();
        let expected = rate * 10;
        assert!(
            sent.abs_diff(expected) <= batch as u64,
            "{sent} records sent in 10 s at {rate}/s"
        );
    }

    #[test]
    fn due_times_do_not_drift_when_the_period_is_not_whole_nanoseconds() {
        // 3 records/s in batches of 1: a period of 333,333,333.3 ns.
        let schedule = OpenLoopSchedule::new(3, 1, 1, 0);
        assert_eq!(schedule.due(3_000_000), Duration::from_secs(1_000_000));
        assert_eq!(schedule.due(1), Duration::from_nanos(333_333_333));
    }

    #[test]
    fn due_times_increase_strictly() {
        let schedule = OpenLoopSchedule::new(1_000_000, 1, 4, 3);
        let dues: Vec<_> = (0..1000).map(|k| schedule.due(k)).collect();
        assert!(dues.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn zero_settings_are_raised_instead_of_dividing_by_zero() {
        let schedule = OpenLoopSchedule::new(0, 0, 0, 5);
        assert_eq!(schedule.due(1), Duration::from_secs(1));
    }
}
