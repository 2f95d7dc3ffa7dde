//! What is appended to a shard log reads back equal: before and after a reopen, across
//! segments, from any sequence, within any record and byte budget.

mod storage_support;

use std::time::Duration;

use proptest::prelude::*;
use shardlog::storage::{LogConfig, StorageError};
use storage_support::*;

/// Appends `batches` in rounds of `round` batches, syncing every other round, and returns the
/// records in the order they were numbered.
fn append_in_rounds(
    log: &shardlog::storage::ShardLog,
    batches: &[Vec<Rec>],
    round: usize,
) -> Vec<Rec> {
    let mut expected = Vec::new();
    for (n, chunk) in batches.chunks(round.max(1)).enumerate() {
        let mut encoded: Vec<_> = chunk.iter().map(|b| encode(b)).collect();
        let next = log.next_sequence();
        let acks = log.append(&mut encoded, n % 2 == 0).expect("append");
        assert_eq!(acks.len(), chunk.len());
        let mut seq = next;
        for (ack, batch) in acks.iter().zip(chunk) {
            assert_eq!(ack.base_sequence, seq, "acks number batches without gaps");
            assert_eq!(ack.record_count as usize, batch.len());
            seq += batch.len() as u64;
        }
        expected.extend(chunk.iter().flatten().cloned());
    }
    expected
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn random_batches_read_back_equal_before_and_after_a_reopen(
        batches in batches_strategy(40, 6),
        round in 1usize..5,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let log = open_real(dir.path(), small_config());
        let expected = append_in_rounds(&log, &batches, round);
        assert_records(&read_all(&log).unwrap(), &expected, seq(0));
        let bytes = log.stats().bytes_appended;
        log.close().unwrap();
        drop(log);

        let log = open_real(dir.path(), small_config());
        prop_assert_eq!(log.next_sequence(), seq(expected.len() as u64));
        prop_assert_eq!(log.first_sequence(), seq(0));
        assert_records(&read_all(&log).unwrap(), &expected, seq(0));
        let segments = segment_bases(dir.path()).len() as u64;
        // A segment is sealed once the next round would pass 4 KiB, so every sealed segment
        // holds at least one round and the log spans more than one segment past 4 KiB.
        if bytes > 2 * 4096 {
            prop_assert!(segments > 1, "{} bytes in {} segment(s)", bytes, segments);
        }
        prop_assert_eq!(log.stats().segments as u64, segments);

        // Appends after the reopen continue the numbering.
        let more = tagged_batch("after-reopen", 3, 10);
        let ack = log.append(&mut [encode(&more)], true).unwrap()[0];
        prop_assert_eq!(ack.base_sequence, seq(expected.len() as u64));
        let all: Vec<Rec> = expected.iter().cloned().chain(more).collect();
        assert_records(&read_all(&log).unwrap(), &all, seq(0));
    }

    #[test]
    fn a_read_from_any_sequence_returns_a_contiguous_slice_within_its_budget(
        batches in batches_strategy(30, 5),
        from_pick in any::<prop::sample::Index>(),
        max_records in 1usize..20,
        max_bytes in 1usize..3000,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let log = open_real(dir.path(), small_config());
        let expected = append_in_rounds(&log, &batches, 2);
        let from = from_pick.index(expected.len()) as u64;
        let got = log.read(seq(from), max_records, max_bytes).unwrap();
        prop_assert!(!got.records.is_empty(), "a record is there to read");
        prop_assert!(got.records.len() <= max_records);
        prop_assert_eq!(got.records[0].sequence, seq(from));
        assert_records(&got.records, &expected[from as usize..from as usize + got.records.len()], seq(from));
        prop_assert_eq!(got.next_sequence, seq(from + got.records.len() as u64));
        let sizes: Vec<usize> = got.records.iter().map(|r| r.encoded_len()).collect();
        let total: usize = sizes.iter().sum();
        // The budget may only be passed by the first record, which always fits.
        prop_assert!(total <= max_bytes || got.records.len() == 1, "{} bytes for a budget of {}", total, max_bytes);
        // A read that stopped early stopped at the budget or the count, not before.
        let end = from as usize + got.records.len();
        if end < expected.len() && got.records.len() < max_records {
            let next_len = log.read(seq(end as u64), 1, usize::MAX).unwrap().records[0].encoded_len();
            prop_assert!(total + next_len > max_bytes, "stopped with room for the next record");
        }
    }
}

#[test]
fn an_empty_log_starts_at_sequence_zero_and_reads_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_real(dir.path(), LogConfig::default());
    assert_eq!(log.first_sequence(), seq(0));
    assert_eq!(log.next_sequence(), seq(0));
    let got = log.read(seq(0), 100, 1 << 20).unwrap();
    assert!(got.records.is_empty());
    assert_eq!(got.next_sequence, seq(0));
    assert_eq!(log.seek_time(at_ms(0)).unwrap(), seq(0));
}

#[test]
fn a_record_larger_than_the_byte_budget_is_still_returned_alone() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_real(dir.path(), LogConfig::default());
    let big = vec![
        Rec::plain("k", &[7u8; 10_000]),
        Rec::plain("k", &[8u8; 10_000]),
    ];
    log.append(&mut [encode(&big)], true).unwrap();
    let got = log.read(seq(0), 100, 10).unwrap();
    assert_records(&got.records, &big[..1], seq(0));
    let got = log.read(got.next_sequence, 100, 10).unwrap();
    assert_records(&got.records, &big[1..], seq(1));
}

#[test]
fn a_read_past_the_end_returns_nothing_and_stays_where_it_was_asked() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_real(dir.path(), LogConfig::default());
    log.append(&mut [encode(&tagged_batch("a", 3, 8))], true)
        .unwrap();
    let got = log.read(seq(3), 10, 1 << 20).unwrap();
    assert!(got.records.is_empty());
    assert_eq!(got.next_sequence, seq(3));
    let got = log.read(seq(1_000), 10, 1 << 20).unwrap();
    assert!(got.records.is_empty());
    assert_eq!(got.next_sequence, seq(1_000));
}

#[test]
fn a_closed_log_refuses_appends() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_real(dir.path(), LogConfig::default());
    log.close().unwrap();
    let err = log
        .append(&mut [encode(&tagged_batch("a", 1, 8))], true)
        .unwrap_err();
    assert!(matches!(err, StorageError::Closed { .. }), "{err:?}");
}

#[test]
fn appending_no_batch_acknowledges_nothing_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_real(dir.path(), LogConfig::default());
    assert!(log.append(&mut [], true).unwrap().is_empty());
    assert_eq!(log.next_sequence(), seq(0));
    assert_eq!(log.stats().writes, 0);
}

#[test]
fn one_round_of_many_batches_is_one_write() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_real(dir.path(), LogConfig::default());
    let mut batches: Vec<_> = (0..10)
        .map(|i| encode(&tagged_batch(&format!("b{i}"), 2, 16)))
        .collect();
    let acks = log.append(&mut batches, true).unwrap();
    let bases: Vec<u64> = acks.iter().map(|a| a.base_sequence.get()).collect();
    assert_eq!(bases, (0..10).map(|i| i * 2).collect::<Vec<u64>>());
    let stats = log.stats();
    assert_eq!(
        (
            stats.writes,
            stats.syncs,
            stats.batches_appended,
            stats.records_appended
        ),
        (1, 1, 10, 20)
    );
}

#[test]
fn a_tiny_segment_age_seals_the_segment_at_every_append() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_max_age: Duration::from_nanos(1),
        ..LogConfig::default()
    };
    let log = open_real(dir.path(), config.clone());
    let mut expected = Vec::new();
    for i in 0..4 {
        let batch = tagged_batch(&format!("b{i}"), 2, 8);
        log.append(&mut [encode(&batch)], true).unwrap();
        expected.extend(batch);
    }
    assert_eq!(
        segment_bases(dir.path()),
        vec![seq(0), seq(2), seq(4), seq(6)]
    );
    drop(log);
    let log = open_real(dir.path(), config);
    assert_records(&read_all(&log).unwrap(), &expected, seq(0));
}

#[test]
fn arrival_times_never_go_backwards() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_real(dir.path(), small_config());
    let a = log
        .append_at(&mut [encode(&tagged_batch("a", 1, 8))], true, at_ms(5_000))
        .unwrap()[0];
    let b = log
        .append_at(&mut [encode(&tagged_batch("b", 1, 8))], true, at_ms(4_000))
        .unwrap()[0];
    assert_eq!(
        (a.timestamp_ms, b.timestamp_ms),
        (at_ms(5_000), at_ms(5_000))
    );
    assert_eq!(log.last_timestamp_ms(), at_ms(5_000));
    let got = log.read(seq(0), 10, 1 << 20).unwrap();
    assert!(got.records.iter().all(|r| r.timestamp_ms == at_ms(5_000)));
}

#[test]
fn settings_out_of_range_are_refused_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    for (config, name) in [
        (
            LogConfig {
                segment_max_bytes: 100,
                ..LogConfig::default()
            },
            "segment_max_bytes",
        ),
        (
            LogConfig {
                index_interval_bytes: 0,
                ..LogConfig::default()
            },
            "index_interval_bytes",
        ),
        (
            LogConfig {
                segment_max_age: Duration::ZERO,
                ..LogConfig::default()
            },
            "segment_max_age",
        ),
    ] {
        let err =
            shardlog::storage::ShardLog::open(shardlog::fsio::RealIo::shared(), dir.path(), config)
                .unwrap_err();
        assert!(
            matches!(err, StorageError::InvalidConfig { setting, .. } if setting == name),
            "{err:?}"
        );
    }
}
