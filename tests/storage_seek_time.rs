//! `seek_time` returns the first record that arrived at or after a timestamp, across segments,
//! before and after a reopen, and the durable end when every record is older.

mod storage_support;

use proptest::prelude::*;
use shardlog::storage::{LogConfig, SequenceNumber, Timestamp};
use storage_support::*;

/// The answer `seek_time(t)` must give, from the stamped time of every record.
fn expected_seek(stamped: &[Timestamp], t: Timestamp) -> SequenceNumber {
    seq(stamped
        .iter()
        .position(|&ts| ts >= t)
        .unwrap_or(stamped.len()) as u64)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn seek_time_finds_the_first_record_at_or_after_any_timestamp(
        rounds in proptest::collection::vec(
            (proptest::collection::vec(proptest::collection::vec(rec_strategy(), 1..4), 1..3),
             0u64..50,
             any::<bool>()),
            1..50),
        queries in proptest::collection::vec(0u64..3_000, 1..40),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig { index_interval_bytes: 64, ..small_config() };
        let log = open_real(dir.path(), config.clone());
        let mut clock = 1_000u64;
        let mut stamped = Vec::new();
        for (batches, step, backwards) in rounds {
            // The caller's clock may go back; the log's stamps never do.
            clock = if backwards { clock.saturating_sub(step) } else { clock + step };
            let mut encoded: Vec<_> = batches.iter().map(|b| encode(b)).collect();
            let acks = log.append_at(&mut encoded, false, at_ms(clock)).unwrap();
            for (ack, batch) in acks.iter().zip(&batches) {
                prop_assert!(stamped.last().is_none_or(|&l| ack.timestamp_ms >= l));
                stamped.extend(std::iter::repeat_n(ack.timestamp_ms, batch.len()));
            }
        }
        let queries: Vec<Timestamp> = queries.into_iter().map(at_ms).collect();
        for &t in &queries {
            prop_assert_eq!(log.seek_time(t).unwrap(), expected_seek(&stamped, t), "seek_time({}) before a reopen", t);
        }
        let got = read_all(&log).unwrap();
        prop_assert!(got.iter().map(|r| r.timestamp_ms).eq(stamped.iter().copied()));
        drop(log);
        let log = open_real(dir.path(), config);
        for &t in queries.iter().chain(stamped.iter()) {
            prop_assert_eq!(log.seek_time(t).unwrap(), expected_seek(&stamped, t), "seek_time({}) after a reopen", t);
        }
        prop_assert_eq!(log.seek_time(at_ms(u64::MAX)).unwrap(), seq(stamped.len() as u64));
    }
}

#[test]
fn a_seek_past_every_record_returns_the_durable_end() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_real(dir.path(), small_config());
    log.append_at(&mut [encode(&tagged_batch("a", 3, 8))], true, at_ms(500))
        .unwrap();
    assert_eq!(log.seek_time(at_ms(501)).unwrap(), seq(3));
    assert_eq!(log.seek_time(at_ms(500)).unwrap(), seq(0));
    assert_eq!(log.seek_time(at_ms(0)).unwrap(), seq(0));
}
