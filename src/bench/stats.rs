//! What a run counts: records, bytes and errors in atomics, latencies in HDR histograms (one
//! for the whole run, one per progress interval), shared by every producer and consumer task.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;

/// Smallest latency told apart, in microseconds (the histogram's unit).
const LOWEST_MICROS: u64 = 1;
/// Largest latency recorded exactly, in microseconds (longer ones are clamped to it): 10 minutes.
pub const MAX_RECORDED_LATENCY: Duration = Duration::from_secs(600);
/// Significant decimal digits the histogram keeps: 0.1 % resolution at any magnitude.
const SIGNIFICANT_DIGITS: u8 = 3;

/// Percentiles of a set of latencies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LatencySummary {
    /// How many latencies were recorded; the rest is zero when there were none.
    pub count: u64,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub p999: Duration,
    pub max: Duration,
}

fn new_histogram() -> Histogram<u64> {
    // Invariant: the bounds are constants satisfying hdrhistogram's rules (low >= 1,
    // high >= 2 * low, sigfig <= 5), so creation cannot fail.
    Histogram::new_with_bounds(
        LOWEST_MICROS,
        MAX_RECORDED_LATENCY.as_micros() as u64,
        SIGNIFICANT_DIGITS,
    )
    .expect("constant histogram bounds are valid")
}

fn micros(latency: Duration) -> u64 {
    u64::try_from(latency.as_micros()).unwrap_or(u64::MAX)
}

/// Summarises a histogram of microseconds.
pub fn summarize(histogram: &Histogram<u64>) -> LatencySummary {
    if histogram.is_empty() {
        return LatencySummary::default();
    }
    let at = |q: f64| Duration::from_micros(histogram.value_at_quantile(q));
    LatencySummary {
        count: histogram.len(),
        p50: at(0.50),
        p90: at(0.90),
        p99: at(0.99),
        p999: at(0.999),
        max: Duration::from_micros(histogram.max()),
    }
}

/// Latencies of the whole run and of the current progress interval.
#[derive(Debug)]
pub struct LatencyRecorder {
    total: Histogram<u64>,
    interval: Histogram<u64>,
}

impl Default for LatencyRecorder {
    fn default() -> Self {
        LatencyRecorder {
            total: new_histogram(),
            interval: new_histogram(),
        }
    }
}

impl LatencyRecorder {
    /// Records one latency; past [`MAX_RECORDED_LATENCY`] it counts as that.
    pub fn record(&mut self, latency: Duration) {
        let value = micros(latency).max(LOWEST_MICROS);
        self.total.saturating_record(value);
        self.interval.saturating_record(value);
    }

    /// Records `count` equal latencies at once.
    pub fn record_n(&mut self, latency: Duration, count: u64) {
        let value = micros(latency).max(LOWEST_MICROS);
        self.total.saturating_record_n(value, count);
        self.interval.saturating_record_n(value, count);
    }

    /// The whole run so far.
    pub fn summary(&self) -> LatencySummary {
        summarize(&self.total)
    }

    /// The latencies since the last call, and a fresh interval.
    pub fn take_interval(&mut self) -> LatencySummary {
        let summary = summarize(&self.interval);
        self.interval.reset();
        summary
    }
}

/// Counters of one phase of a run, shared by its tasks.
#[derive(Debug, Default)]
pub struct Meter {
    records: AtomicU64,
    bytes: AtomicU64,
    failed_entries: AtomicU64,
    rpc_errors: AtomicU64,
    /// Records that an e2e subscriber received (the e2e histogram counts the same ones).
    received: AtomicU64,
    first_error: Mutex<Option<String>>,
    /// Ack latency of puts; read latency of GetRecords calls or subscription events.
    latency: Mutex<LatencyRecorder>,
    /// Put-to-receive latency of e2e records.
    e2e: Mutex<LatencyRecorder>,
}

/// A point-in-time copy of a [`Meter`]'s counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub records: u64,
    pub bytes: u64,
    pub failed_entries: u64,
    pub rpc_errors: u64,
    pub received: u64,
}

impl Counts {
    /// Failed entries plus failed calls.
    pub fn errors(&self) -> u64 {
        self.failed_entries + self.rpc_errors
    }
}

// A panic in another task while it held one of these locks leaves a histogram that is still
// whole (recording cannot be interrupted half-way), so a poisoned lock is used as is.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Meter {
    /// Counts records stored or read, and their data bytes.
    pub fn add_records(&self, records: u64, bytes: u64) {
        self.records.fetch_add(records, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Counts entries of a PutRecords that failed on their own; keeps the first error seen.
    pub fn add_failed_entries(&self, count: u64, first: impl FnOnce() -> String) {
        if count > 0 {
            self.failed_entries.fetch_add(count, Ordering::Relaxed);
            self.keep_first_error(first);
        }
    }

    /// Counts a call that failed as a whole; keeps the first error seen.
    pub fn add_rpc_error(&self, error: impl FnOnce() -> String) {
        self.rpc_errors.fetch_add(1, Ordering::Relaxed);
        self.keep_first_error(error);
    }

    fn keep_first_error(&self, error: impl FnOnce() -> String) {
        let mut first = lock(&self.first_error);
        if first.is_none() {
            *first = Some(error());
        }
    }

    /// Records the latency of one call (or event).
    pub fn record_latency(&self, latency: Duration) {
        lock(&self.latency).record(latency);
    }

    /// Records the same latency for `count` records handled together (a queue run's messages
    /// deleted by one call).
    pub fn record_latency_n(&self, latency: Duration, count: u64) {
        if count > 0 {
            lock(&self.latency).record_n(latency, count);
        }
    }

    /// Records the put-to-receive latencies of records received together.
    pub fn record_e2e(&self, latencies: impl IntoIterator<Item = Duration>) {
        let mut received = 0;
        {
            let mut recorder = lock(&self.e2e);
            for latency in latencies {
                recorder.record(latency);
                received += 1;
            }
        }
        self.received.fetch_add(received, Ordering::Relaxed);
    }

    pub fn counts(&self) -> Counts {
        Counts {
            records: self.records.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            failed_entries: self.failed_entries.load(Ordering::Relaxed),
            rpc_errors: self.rpc_errors.load(Ordering::Relaxed),
            received: self.received.load(Ordering::Relaxed),
        }
    }

    /// The first error seen, if any.
    pub fn first_error(&self) -> Option<String> {
        lock(&self.first_error).clone()
    }

    pub fn latency(&self) -> LatencySummary {
        lock(&self.latency).summary()
    }

    pub fn e2e_latency(&self) -> LatencySummary {
        lock(&self.e2e).summary()
    }

    /// Latency and e2e latency since the last call (for the progress line).
    pub fn take_intervals(&self) -> (LatencySummary, LatencySummary) {
        let latency = lock(&self.latency).take_interval();
        let e2e = lock(&self.e2e).take_interval();
        (latency, e2e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// True when `actual` is within the histogram's 0.1 % resolution of `expected`.
    fn close(actual: Duration, expected: Duration) -> bool {
        let (a, e) = (actual.as_micros() as f64, expected.as_micros() as f64);
        (a - e).abs() <= e * 0.001 + 1.0
    }

    #[test]
    fn percentiles_of_one_to_a_thousand_milliseconds() {
        let mut recorder = LatencyRecorder::default();
        for n in 1..=1000 {
            recorder.record(ms(n));
        }
        let s = recorder.summary();
        assert_eq!(s.count, 1000);
        assert!(close(s.p50, ms(500)), "p50 {:?}", s.p50);
        assert!(close(s.p90, ms(900)), "p90 {:?}", s.p90);
        assert!(close(s.p99, ms(990)), "p99 {:?}", s.p99);
        assert!(close(s.p999, ms(999)), "p999 {:?}", s.p999);
        assert!(close(s.max, ms(1000)), "max {:?}", s.max);
    }

    #[test]
    fn a_latency_recorded_n_times_counts_n_times() {
        let meter = Meter::default();
        meter.record_latency_n(ms(3), 500);
        meter.record_latency_n(ms(9), 0);
        meter.record_latency(ms(1));
        let s = meter.latency();
        assert_eq!(s.count, 501);
        assert!(close(s.p50, ms(3)), "p50 {:?}", s.p50);
        assert!(close(s.max, ms(3)), "max {:?}", s.max);
    }

    #[test]
    fn an_empty_histogram_summarises_to_zeroes() {
        assert_eq!(
            LatencyRecorder::default().summary(),
            LatencySummary::default()
        );
    }

    #[test]
    fn latencies_past_the_maximum_are_clamped_not_lost() {
        let mut recorder = LatencyRecorder::default();
        recorder.record(MAX_RECORDED_LATENCY * 10);
        recorder.record(Duration::ZERO);
        let s = recorder.summary();
        assert_eq!(s.count, 2);
        assert!(close(s.max, MAX_RECORDED_LATENCY));
    }

    #[test]
    fn taking_the_interval_starts_a_new_one_and_keeps_the_total() {
        let mut recorder = LatencyRecorder::default();
        recorder.record(ms(100));
        let first = recorder.take_interval();
        assert_eq!(first.count, 1);
        recorder.record(ms(5));
        let second = recorder.take_interval();
        assert_eq!(second.count, 1);
        assert!(close(second.max, ms(5)));
        assert_eq!(recorder.summary().count, 2);
    }

    #[test]
    fn the_meter_keeps_only_the_first_error_and_sums_both_kinds() {
        let meter = Meter::default();
        meter.add_failed_entries(0, || "not an error".into());
        assert_eq!(meter.first_error(), None);
        meter.add_failed_entries(3, || "first".into());
        meter.add_rpc_error(|| "second".into());
        assert_eq!(meter.first_error().as_deref(), Some("first"));
        let counts = meter.counts();
        assert_eq!((counts.failed_entries, counts.rpc_errors), (3, 1));
        assert_eq!(counts.errors(), 4);
    }

    #[test]
    fn e2e_latencies_count_the_records_received() {
        let meter = Meter::default();
        meter.record_e2e([ms(1), ms(2), ms(3)]);
        assert_eq!(meter.counts().received, 3);
        assert_eq!(meter.e2e_latency().count, 3);
        assert_eq!(meter.latency().count, 0);
    }
}
