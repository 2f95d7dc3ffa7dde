//! Retention: whole sealed segments past the age or size limit are deleted, oldest first; the
//! trim horizon moves, and reads from before it are clamped to it.

mod storage_support;

use std::path::Path;
use std::time::Duration;

use shardlog::storage::{LogConfig, SequenceNumber, ShardLog, Timestamp};
use storage_support::*;

/// One batch as appended: its first sequence, its records, its arrival time.
struct Appended {
    base: SequenceNumber,
    records: Vec<Rec>,
    timestamp_ms: Timestamp,
}

fn config(retention: Duration, retention_bytes: Option<u64>) -> LogConfig {
    LogConfig {
        retention,
        retention_bytes,
        ..small_config()
    }
}

/// Appends 60 batches one second apart from t = 100 s, filling several 4 KiB segments.
fn fill(log: &ShardLog) -> Vec<Appended> {
    (0..60u64)
        .map(|i| {
            let records = tagged_batch(&format!("b{i}"), 2, 80);
            let timestamp_ms = at_ms(100_000 + 1_000 * i);
            let ack = log
                .append_at(&mut [encode(&records)], false, timestamp_ms)
                .unwrap()[0];
            Appended {
                base: ack.base_sequence,
                records,
                timestamp_ms,
            }
        })
        .collect()
}

/// Segment bases with the newest arrival time in each, from the model.
fn segments_with_newest_time(
    dir: &Path,
    appended: &[Appended],
) -> Vec<(SequenceNumber, Timestamp)> {
    segment_bases(dir)
        .into_iter()
        .map(|base| {
            let newest = appended
                .iter()
                .filter(|a| a.base >= base)
                .take_while(|a| {
                    segment_bases(dir)
                        .into_iter()
                        .find(|&b| b > base)
                        .is_none_or(|next| a.base < next)
                })
                .map(|a| a.timestamp_ms)
                .max()
                .unwrap_or(Timestamp::UNIX_EPOCH);
            (base, newest)
        })
        .collect()
}

fn records_from(appended: &[Appended], first: SequenceNumber) -> Vec<Rec> {
    appended
        .iter()
        .filter(|a| a.base >= first)
        .flat_map(|a| a.records.clone())
        .collect()
}

#[test]
fn sealed_segments_older_than_the_retention_are_deleted_and_reads_clamp_to_the_horizon() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_real(dir.path(), config(Duration::from_secs(10), None));
    let appended = fill(&log);
    let segments = segments_with_newest_time(dir.path(), &appended);
    assert!(segments.len() >= 4, "{} segments", segments.len());
    // Now is 10 s after the newest record of the second segment: the first two go.
    let now = segments[1]
        .1
        .saturating_add(Duration::from_millis(10_000 + 1));
    let outcome = log.apply_retention(now).unwrap();
    assert_eq!(outcome.segments_deleted, 2);
    let first = segments[2].0;
    assert_eq!(outcome.first_sequence, first);
    assert_eq!(log.first_sequence(), first);
    assert_eq!(segment_bases(dir.path())[0], first);
    for (base, _) in &segments[..2] {
        for ext in ["log", "index", "timeindex"] {
            assert!(
                !segment_file(dir.path(), *base, ext).exists(),
                "{base}.{ext} remains"
            );
        }
    }
    // A read from before the horizon starts at it; so does a time seek into the deleted past.
    let got = log.read(seq(0), 1, usize::MAX).unwrap();
    assert_eq!(got.records[0].sequence, first);
    assert_records(
        &read_from(&log, seq(0)).unwrap(),
        &records_from(&appended, first),
        first,
    );
    assert_eq!(log.seek_time(at_ms(0)).unwrap(), first);
    assert_eq!(log.stats().first_sequence, first);

    // The horizon is where the files are: it survives a reopen.
    drop(log);
    let log = open_real(dir.path(), config(Duration::from_secs(10), None));
    assert_eq!(log.first_sequence(), first);
    assert_records(
        &read_all(&log).unwrap(),
        &records_from(&appended, first),
        first,
    );
}

#[test]
fn the_active_segment_is_never_deleted_however_old() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_real(dir.path(), config(Duration::from_secs(1), None));
    let appended = fill(&log);
    let active = *segment_bases(dir.path()).last().unwrap();
    let outcome = log.apply_retention(at_ms(u64::MAX / 2)).unwrap();
    assert_eq!(segment_bases(dir.path()), vec![active]);
    assert_eq!(outcome.first_sequence, active);
    assert_records(
        &read_all(&log).unwrap(),
        &records_from(&appended, active),
        active,
    );
    // Appends go on after the horizon moved.
    let ack = log
        .append(&mut [encode(&tagged_batch("after", 1, 8))], true)
        .unwrap()[0];
    assert_eq!(ack.base_sequence, appended.last().unwrap().base + 2);
}

#[test]
fn retention_bytes_deletes_the_oldest_sealed_segments_while_the_log_is_larger() {
    let dir = tempfile::tempdir().unwrap();
    let limit = 10_000;
    let log = open_real(
        dir.path(),
        config(Duration::from_secs(1_000_000), Some(limit)),
    );
    let appended = fill(&log);
    let sizes: Vec<(SequenceNumber, u64)> = segment_bases(dir.path())
        .into_iter()
        .map(|b| {
            (
                b,
                std::fs::metadata(segment_file(dir.path(), b, "log"))
                    .unwrap()
                    .len(),
            )
        })
        .collect();
    let total: u64 = sizes.iter().map(|s| s.1).sum();
    assert!(total > limit);
    let outcome = log.apply_retention(at_ms(200_000)).unwrap();
    let remaining: u64 = segment_bases(dir.path())
        .into_iter()
        .map(|b| {
            std::fs::metadata(segment_file(dir.path(), b, "log"))
                .unwrap()
                .len()
        })
        .sum();
    assert!(remaining <= limit, "{remaining} bytes left, limit {limit}");
    // Only as many as needed: keeping the newest deleted segment would pass the limit.
    let deleted = outcome.segments_deleted;
    assert!(deleted >= 1);
    assert!(remaining + sizes[deleted - 1].1 > limit);
    assert_eq!(outcome.bytes_deleted, total - remaining);
    assert_eq!(log.first_sequence(), sizes[deleted].0);
    assert_records(
        &read_from(&log, seq(0)).unwrap(),
        &records_from(&appended, sizes[deleted].0),
        sizes[deleted].0,
    );
}

#[test]
fn a_retention_pass_with_nothing_to_delete_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_real(dir.path(), config(Duration::from_secs(3600), None));
    let appended = fill(&log);
    let before = segment_bases(dir.path());
    let outcome = log
        .apply_retention(appended.last().unwrap().timestamp_ms)
        .unwrap();
    assert_eq!(
        (
            outcome.segments_deleted,
            outcome.bytes_deleted,
            outcome.first_sequence
        ),
        (0, 0, seq(0))
    );
    assert_eq!(segment_bases(dir.path()), before);
    assert_records(
        &read_all(&log).unwrap(),
        &records_from(&appended, seq(0)),
        seq(0),
    );
}

/// Files under `dir` that this process still holds open although they were deleted.
fn deleted_but_open(dir: &Path) -> Vec<String> {
    let dir = dir.to_string_lossy().into_owned();
    std::fs::read_dir("/proc/self/fd")
        .map(|fds| {
            fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
                .map(|target| target.to_string_lossy().into_owned())
                .filter(|t| t.starts_with(&dir) && t.ends_with(" (deleted)"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn deleted_segments_are_let_go_even_when_they_were_sealed_without_a_sync() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_real(dir.path(), config(Duration::from_secs(1), None));
    // Unsynced appends: every seal leaves its segment to be synced later.
    for i in 0..60u64 {
        log.append_at(
            &mut [encode(&tagged_batch(&format!("b{i}"), 2, 80))],
            false,
            at_ms(100_000 + i),
        )
        .unwrap();
    }
    let outcome = log.apply_retention(at_ms(u64::MAX / 2)).unwrap();
    assert!(outcome.segments_deleted > 2);
    // Holding a deleted segment open would keep its pages (dirty ones too) for good.
    assert_eq!(deleted_but_open(dir.path()), Vec::<String>::new());
    log.sync(None).unwrap();
}

#[test]
fn a_sealed_log_loses_every_record_to_retention_and_keeps_its_end_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_real(dir.path(), config(Duration::from_secs(1), None));
    fill(&log);
    let end = log.next_sequence();
    log.seal_active().unwrap();
    // Sealing an empty active segment again changes nothing.
    log.seal_active().unwrap();
    assert_eq!(*segment_bases(dir.path()).last().unwrap(), end);
    log.apply_retention(at_ms(u64::MAX / 2)).unwrap();
    assert_eq!(segment_bases(dir.path()), vec![end]);
    assert_eq!((log.first_sequence(), log.next_sequence()), (end, end));
    assert!(read_all(&log).unwrap().is_empty());
    drop(log);
    let log = open_real(dir.path(), config(Duration::from_secs(1), None));
    assert_eq!((log.first_sequence(), log.next_sequence()), (end, end));
}
