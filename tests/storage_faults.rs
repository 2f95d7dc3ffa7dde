//! The log under injected faults: power losses that keep only synced bytes (or a torn part of
//! the rest), a full disk, a short write, and EIO on sync.

mod storage_support;

use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use shardlog::fsio::faulty::{FaultyIo, Loss};
use shardlog::fsio::Io;
use shardlog::storage::{ShardLog, StorageError};
use storage_support::*;

fn open_faulty(io: &FaultyIo, dir: &Path) -> ShardLog {
    open_with(Arc::new(io.clone()) as Arc<dyn Io>, dir, small_config())
}

fn active_segment_len(dir: &Path) -> u64 {
    let last = *segment_bases(dir).last().expect("a segment");
    std::fs::metadata(segment_file(dir, last, "log"))
        .unwrap()
        .len()
}

#[derive(Debug, Clone)]
enum Op {
    /// One round of batches; acknowledged (durable) only when `sync` is set.
    Append {
        batches: Vec<Vec<Rec>>,
        sync: bool,
    },
    /// A round whose sync fails with EIO: written perhaps, never acknowledged; the log is
    /// poisoned, so a power loss follows.
    AppendWithFailingSync {
        batch: Vec<Rec>,
        then: Loss,
    },
    PowerLoss(Loss),
}

fn loss_strategy() -> impl Strategy<Value = Loss> {
    prop_oneof![
        Just(Loss::UnsyncedGone),
        any::<u64>().prop_map(|seed| Loss::Torn { seed }),
    ]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let batch = || proptest::collection::vec(rec_strategy(), 1..4);
    prop_oneof![
        6 => (proptest::collection::vec(batch(), 1..4), any::<bool>())
            .prop_map(|(batches, sync)| Op::Append { batches, sync }),
        1 => (batch(), loss_strategy()).prop_map(|(batch, then)| Op::AppendWithFailingSync { batch, then }),
        2 => loss_strategy().prop_map(Op::PowerLoss),
    ]
}

/// What the test knows of the log: every record it tried to append, by sequence, and how many
/// of them were acknowledged as durable.
struct Model {
    attempted: Vec<Rec>,
    acked: u64,
}

/// Crashes the log, reopens it, and checks acked ⊆ recovered, contiguity from the trim
/// horizon, and that every recovered record is the one appended at its sequence.
fn crash_and_check(
    log: ShardLog,
    io: &FaultyIo,
    dir: &Path,
    loss: Loss,
    model: &mut Model,
) -> ShardLog {
    drop(log);
    io.power_loss(loss);
    io.fail_syncs(false);
    let log = open_faulty(io, dir);
    let next = log.next_sequence().get();
    assert_eq!(log.first_sequence(), seq(0));
    assert!(
        next >= model.acked,
        "lost acknowledged records: recovered up to {next}, acked {}",
        model.acked
    );
    assert!(
        next <= model.attempted.len() as u64,
        "recovered {next} records, only {} were appended",
        model.attempted.len()
    );
    let recovered = read_all(&log).expect("every recovered record is whole");
    assert_records(&recovered, &model.attempted[..next as usize], seq(0));
    model.attempted.truncate(next as usize);
    // What survived a power loss is on disk: it is as durable as anything acknowledged.
    model.acked = next;
    log
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn power_losses_never_lose_an_acknowledged_record_nor_serve_a_torn_one(
        ops in proptest::collection::vec(op_strategy(), 1..25),
        last in loss_strategy(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let io = FaultyIo::new();
        let mut log = open_faulty(&io, dir.path());
        let mut model = Model { attempted: Vec::new(), acked: 0 };
        for op in ops {
            match op {
                Op::Append { batches, sync } => {
                    let mut encoded: Vec<_> = batches.iter().map(|b| encode(b)).collect();
                    let acks = log.append(&mut encoded, sync).unwrap();
                    prop_assert_eq!(acks[0].base_sequence, seq(model.attempted.len() as u64));
                    model.attempted.extend(batches.into_iter().flatten());
                    if sync {
                        model.acked = model.attempted.len() as u64;
                    }
                }
                Op::AppendWithFailingSync { batch, then } => {
                    io.fail_syncs(true);
                    let err = log.append(&mut [encode(&batch)], true).unwrap_err();
                    prop_assert!(matches!(err, StorageError::Io { .. }), "{:?}", err);
                    model.attempted.extend(batch);
                    let err = log.append(&mut [encode(&tagged_batch("refused", 1, 4))], true).unwrap_err();
                    prop_assert!(matches!(err, StorageError::Poisoned { .. }), "{:?}", err);
                    log = crash_and_check(log, &io, dir.path(), then, &mut model);
                }
                Op::PowerLoss(loss) => {
                    log = crash_and_check(log, &io, dir.path(), loss, &mut model);
                }
            }
        }
        let log = crash_and_check(log, &io, dir.path(), last, &mut model);
        // The log takes appends again, numbered on from what was recovered.
        let next = log.next_sequence();
        let ack = log.append(&mut [encode(&tagged_batch("after", 2, 4))], true).unwrap()[0];
        prop_assert_eq!(ack.base_sequence, next);
    }
}

#[test]
fn a_full_disk_fails_the_append_and_appends_resume_without_a_gap_once_there_is_space() {
    let dir = tempfile::tempdir().unwrap();
    let io = FaultyIo::new();
    let log = open_faulty(&io, dir.path());
    let mut expected = Vec::new();
    for i in 0..5 {
        let batch = tagged_batch(&format!("before{i}"), 3, 50);
        log.append(&mut [encode(&batch)], true).unwrap();
        expected.extend(batch);
    }
    let len_before = active_segment_len(dir.path());
    io.set_space_left(Some(100));
    for _ in 0..2 {
        let err = log
            .append(&mut [encode(&tagged_batch("too-big", 3, 50))], true)
            .unwrap_err();
        assert!(matches!(err, StorageError::DiskFull { .. }), "{err:?}");
    }
    // Nothing of the refused batches stays in the file, nothing durable was touched, and the
    // shard still takes writes.
    assert_eq!(active_segment_len(dir.path()), len_before);
    assert!(log.poisoned().is_none());
    assert_eq!(log.next_sequence(), seq(expected.len() as u64));
    assert_records(&read_all(&log).unwrap(), &expected, seq(0));

    io.set_space_left(None);
    let batch = tagged_batch("after", 3, 50);
    let ack = log.append(&mut [encode(&batch)], true).unwrap()[0];
    assert_eq!(
        ack.base_sequence,
        seq(expected.len() as u64),
        "no sequence was used by the failures"
    );
    expected.extend(batch);
    assert_records(&read_all(&log).unwrap(), &expected, seq(0));

    drop(log);
    io.power_loss(Loss::UnsyncedGone);
    let log = open_faulty(&io, dir.path());
    assert_records(&read_all(&log).unwrap(), &expected, seq(0));
}

#[test]
fn a_short_write_fails_the_append_cleanly_and_the_next_append_works() {
    let dir = tempfile::tempdir().unwrap();
    let io = FaultyIo::new();
    let log = open_faulty(&io, dir.path());
    let mut expected = tagged_batch("first", 2, 30);
    log.append(&mut [encode(&expected)], true).unwrap();
    let len_before = active_segment_len(dir.path());

    io.short_write_once(10);
    let err = log
        .append(&mut [encode(&tagged_batch("torn", 2, 30))], true)
        .unwrap_err();
    assert!(matches!(err, StorageError::Io { .. }), "{err:?}");
    assert_eq!(
        active_segment_len(dir.path()),
        len_before,
        "the partial frame was cut"
    );
    assert!(log.poisoned().is_none());

    let batch = tagged_batch("second", 2, 30);
    let ack = log.append(&mut [encode(&batch)], true).unwrap()[0];
    assert_eq!(ack.base_sequence, seq(2));
    expected.extend(batch);
    assert_records(&read_all(&log).unwrap(), &expected, seq(0));
    drop(log);
    let log = open_faulty(&io, dir.path());
    assert_records(&read_all(&log).unwrap(), &expected, seq(0));
}

#[test]
fn eio_on_sync_poisons_the_shard_and_a_reopen_on_a_good_disk_keeps_every_acked_record() {
    let dir = tempfile::tempdir().unwrap();
    let io = FaultyIo::new();
    let log = open_faulty(&io, dir.path());
    let mut acked = Vec::new();
    for i in 0..4 {
        let batch = tagged_batch(&format!("acked{i}"), 2, 30);
        log.append(&mut [encode(&batch)], true).unwrap();
        acked.extend(batch);
    }
    io.fail_syncs(true);
    let err = log
        .append(&mut [encode(&tagged_batch("unsynced", 2, 30))], true)
        .unwrap_err();
    assert!(
        matches!(&err, StorageError::Io { source, .. } if source.raw_os_error() == Some(5)),
        "{err:?}"
    );
    // The poisoned shard keeps the cause: the failed sync's EIO, on the segment it failed on.
    let poisoned = log.poisoned().expect("poisoned");
    assert!(
        matches!(&poisoned, StorageError::Poisoned { op: "sync segment", path, cause, .. }
            if cause.raw_os_error() == Some(5) && path.extension().is_some_and(|e| e == "log")),
        "{poisoned:?}"
    );
    let source = std::error::Error::source(&poisoned).expect("the cause is the source");
    assert_eq!(
        source
            .downcast_ref::<Arc<std::io::Error>>()
            .and_then(|e| e.raw_os_error()),
        Some(5)
    );
    // Readers never see the batch whose sync failed.
    assert_records(&read_all(&log).unwrap(), &acked, seq(0));
    // A good disk again does not unpoison the shard: retrying a failed fsync is unsafe.
    io.fail_syncs(false);
    for _ in 0..2 {
        let err = log
            .append(&mut [encode(&tagged_batch("refused", 1, 4))], true)
            .unwrap_err();
        assert!(
            matches!(&err, StorageError::Poisoned { cause, .. } if cause.raw_os_error() == Some(5)),
            "{err:?}"
        );
    }
    assert!(matches!(log.sync(None), Err(StorageError::Poisoned { .. })));

    drop(log);
    let log = open_faulty(&io, dir.path());
    assert!(log.poisoned().is_none());
    let recovered = read_all(&log).unwrap();
    assert!(recovered.len() >= acked.len());
    assert_records(&recovered[..acked.len()], &acked, seq(0));
    let ack = log
        .append(&mut [encode(&tagged_batch("after", 1, 4))], true)
        .unwrap()[0];
    assert_eq!(ack.base_sequence, seq(recovered.len() as u64));
}

#[test]
fn eio_on_sync_then_power_loss_keeps_exactly_the_acked_records() {
    let dir = tempfile::tempdir().unwrap();
    let io = FaultyIo::new();
    let log = open_faulty(&io, dir.path());
    let acked = tagged_batch("acked", 3, 30);
    log.append(&mut [encode(&acked)], true).unwrap();
    io.fail_syncs(true);
    assert!(log
        .append(&mut [encode(&tagged_batch("lost", 3, 30))], true)
        .is_err());
    drop(log);
    io.power_loss(Loss::UnsyncedGone);
    io.fail_syncs(false);
    let log = open_faulty(&io, dir.path());
    assert_records(&read_all(&log).unwrap(), &acked, seq(0));
    assert_eq!(log.next_sequence(), seq(3));
}

#[test]
fn eio_when_sealing_a_segment_poisons_the_shard() {
    let dir = tempfile::tempdir().unwrap();
    let io = FaultyIo::new();
    let log = open_faulty(&io, dir.path());
    log.append(&mut [encode(&tagged_batch("acked", 2, 100))], true)
        .unwrap();
    io.fail_syncs(true);
    // Unsynced appends need no sync until the segment is full and sealed: sealing makes the
    // recovery point durable, and that sync fails.
    let mut err = None;
    for i in 0..100 {
        match log.append(
            &mut [encode(&tagged_batch(&format!("b{i}"), 2, 100))],
            false,
        ) {
            Ok(_) => {}
            Err(e) => {
                err = Some(e);
                break;
            }
        }
    }
    let err = err.expect("sealing a 4 KiB segment needs a sync within 100 appends");
    assert_eq!(segment_bases(dir.path()).len(), 1, "no segment was started");
    assert!(matches!(err, StorageError::Io { .. }), "{err:?}");
    let err = log
        .append(&mut [encode(&tagged_batch("refused", 1, 4))], false)
        .unwrap_err();
    assert!(matches!(err, StorageError::Poisoned { .. }), "{err:?}");
}

#[test]
fn a_round_of_large_batches_that_fills_the_disk_midway_is_cut_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let io = FaultyIo::new();
    let log = open_with(
        Arc::new(io.clone()) as Arc<dyn Io>,
        dir.path(),
        shardlog::storage::LogConfig::default(),
    );
    let first = tagged_batch("first", 1, 10);
    log.append(&mut [encode(&first)], true).unwrap();
    let len_before = active_segment_len(dir.path());
    // Three batches of 100 KiB are written one call each; the second does not fit.
    let big: Vec<Vec<Rec>> = (0..3)
        .map(|i| tagged_batch(&format!("big{i}"), 1, 100 * 1024))
        .collect();
    io.set_space_left(Some(150 * 1024));
    let mut encoded: Vec<_> = big.iter().map(|b| encode(b)).collect();
    let err = log.append(&mut encoded, true).unwrap_err();
    assert!(matches!(err, StorageError::DiskFull { .. }), "{err:?}");
    assert_eq!(active_segment_len(dir.path()), len_before);
    io.set_space_left(None);
    let mut encoded: Vec<_> = big.iter().map(|b| encode(b)).collect();
    let acks = log.append(&mut encoded, true).unwrap();
    assert_eq!(acks[0].base_sequence, seq(1));
    assert_eq!(
        log.stats().writes,
        1 + 3,
        "large batches are written one call each"
    );
    let mut expected = first;
    expected.extend(big.into_iter().flatten());
    drop(log);
    io.power_loss(Loss::UnsyncedGone);
    let log = open_faulty(&io, dir.path());
    assert_records(&read_all(&log).unwrap(), &expected, seq(0));
}

fn recovery_point_exists(dir: &Path) -> bool {
    dir.join(shardlog::storage::recovery::RECOVERY_POINT_FILE)
        .exists()
}

#[test]
fn sealing_under_unsynced_appends_leaves_the_sync_to_the_next_one() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_real(dir.path(), small_config());
    let mut expected = Vec::new();
    for i in 0..60 {
        let batch = tagged_batch(&format!("b{i}"), 2, 60);
        log.append(&mut [encode(&batch)], false).unwrap();
        expected.extend(batch);
    }
    assert!(segment_bases(dir.path()).len() > 2);
    assert_eq!(log.stats().syncs, 0, "no segment was synced when sealed");
    assert!(recovery_point_exists(dir.path()));
    log.sync(None).unwrap();
    assert!(
        !recovery_point_exists(dir.path()),
        "the sync covered the sealed segments"
    );
    log.append(&mut [encode(&tagged_batch("more", 1, 5))], false)
        .unwrap();
    log.close().unwrap();
    assert!(!recovery_point_exists(dir.path()));
    drop(log);
    let log = open_real(dir.path(), small_config());
    expected.extend(tagged_batch("more", 1, 5));
    assert_records(&read_all(&log).unwrap(), &expected, seq(0));
}

#[test]
fn a_crash_without_power_loss_after_unsynced_seals_keeps_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut expected = Vec::new();
    {
        let log = open_real(dir.path(), small_config());
        for i in 0..60 {
            let batch = tagged_batch(&format!("b{i}"), 2, 60);
            log.append(&mut [encode(&batch)], false).unwrap();
            expected.extend(batch);
        }
        // Dropped without close: the process died, the page cache kept everything.
    }
    assert!(recovery_point_exists(dir.path()));
    let segments = segment_bases(dir.path());
    let log = open_real(dir.path(), small_config());
    assert_eq!(segment_bases(dir.path()), segments);
    assert_records(&read_all(&log).unwrap(), &expected, seq(0));
    assert!(
        !recovery_point_exists(dir.path()),
        "recovery synced what it checked"
    );
}

#[test]
fn a_segment_sealed_without_a_sync_that_lost_its_tail_ends_the_log_there() {
    let dir = tempfile::tempdir().unwrap();
    let io = FaultyIo::new();
    let log = open_faulty(&io, dir.path());
    let acked = tagged_batch("acked", 2, 60);
    log.append(&mut [encode(&acked)], true).unwrap();
    for i in 0..60 {
        log.append(&mut [encode(&tagged_batch(&format!("b{i}"), 2, 60))], false)
            .unwrap();
    }
    assert!(segment_bases(dir.path()).len() > 2);
    drop(log);
    io.power_loss(Loss::UnsyncedGone);
    // The later segments' names were synced when they were started, their bytes never were.
    assert!(segment_bases(dir.path()).len() > 2);

    let log = open_faulty(&io, dir.path());
    assert_records(&read_all(&log).unwrap(), &acked, seq(0));
    assert_eq!(
        segment_bases(dir.path()),
        vec![seq(0)],
        "the segments after the hole are gone"
    );
    assert!(!recovery_point_exists(dir.path()));
    let ack = log
        .append(&mut [encode(&tagged_batch("after", 1, 5))], true)
        .unwrap()[0];
    assert_eq!(ack.base_sequence, seq(2));
}
