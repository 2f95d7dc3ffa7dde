//! Recovery on open: a torn tail is cut to the last whole batch, a damaged sealed batch is
//! reported as corrupt while its neighbours stay readable, and damaged indexes are rebuilt.

mod storage_support;

use std::fs::OpenOptions;
use std::path::Path;
use std::time::Duration;

use proptest::prelude::*;
use shardlog::storage::{SequenceNumber, ShardLog, StorageError, Timestamp};
use storage_support::*;

/// Where one appended batch lives.
#[derive(Debug, Clone)]
struct Placed {
    base: SequenceNumber,
    records: Vec<Rec>,
    timestamp_ms: Timestamp,
    segment: SequenceNumber,
    position: u64,
    frame_len: u64,
}

/// Appends each batch alone (one round each), stamped 10 ms after the previous one, and
/// returns where each landed. Segments roll exactly when the next batch would pass 4 KiB.
fn build(dir: &Path, batches: &[Vec<Rec>]) -> Vec<Placed> {
    let log = open_real(dir, small_config());
    let mut placed: Vec<Placed> = Vec::new();
    for (i, records) in batches.iter().enumerate() {
        let batch = encode(records);
        let frame_len = batch.frame_len() as u64;
        let timestamp_ms = at_ms(1_000 + 10 * i as u64);
        let ack = log
            .append_at(&mut [batch], i % 3 == 0, timestamp_ms)
            .unwrap()[0];
        let (segment, position) = match placed.last() {
            Some(prev) if prev.position + prev.frame_len + frame_len <= 4096 => {
                (prev.segment, prev.position + prev.frame_len)
            }
            Some(_) => (ack.base_sequence, 0),
            None => (seq(0), 0),
        };
        placed.push(Placed {
            base: ack.base_sequence,
            records: records.clone(),
            timestamp_ms,
            segment,
            position,
            frame_len,
        });
    }
    log.close().unwrap();
    let bases: Vec<SequenceNumber> = placed.iter().map(|p| p.segment).collect();
    let mut distinct = bases.clone();
    distinct.dedup();
    assert_eq!(
        segment_bases(dir),
        distinct,
        "the test's model of segment rolls"
    );
    placed
}

fn all_records(placed: &[Placed]) -> Vec<Rec> {
    placed.iter().flat_map(|p| p.records.clone()).collect()
}

/// Batches big enough (about 150–450 bytes) to fill several 4 KiB segments in a few dozen.
fn sized_batches(min: usize, max: usize) -> impl Strategy<Value = Vec<Vec<Rec>>> {
    proptest::collection::vec(
        proptest::collection::vec(
            (
                "[a-z]{1,6}",
                proptest::collection::vec(any::<u8>(), 20..120),
            )
                .prop_map(|(k, d)| Rec::plain(&k, &d)),
            1..4,
        ),
        min..max,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn a_last_segment_cut_anywhere_inside_its_final_batch_keeps_exactly_the_batches_before_it(
        mut batches in sized_batches(1, 30),
        // Small, so that reopening at every byte of it stays quick.
        last in proptest::collection::vec(
            ("[a-z]{1,3}", proptest::collection::vec(any::<u8>(), 0..24))
                .prop_map(|(k, d)| Rec::plain(&k, &d)),
            1..3,
        ),
    ) {
        batches.push(last);
        let built = tempfile::tempdir().unwrap();
        let placed = build(built.path(), &batches);
        let last = placed.last().unwrap().clone();
        let before = &placed[..placed.len() - 1];
        let expected = all_records(before);
        for cut in last.position..last.position + last.frame_len {
            let dir = scratch_dir();
            copy_dir(built.path(), dir.path());
            let log_path = segment_file(dir.path(), last.segment, "log");
            OpenOptions::new().write(true).open(&log_path).unwrap().set_len(cut).unwrap();

            let log = open_real(dir.path(), small_config());
            prop_assert_eq!(log.next_sequence(), last.base, "cut at {}", cut);
            assert_records(&read_all(&log).unwrap(), &expected, seq(0));
            prop_assert_eq!(std::fs::metadata(&log_path).unwrap().len(), last.position);

            let again = tagged_batch("after-cut", 2, 5);
            let ack = log.append(&mut [encode(&again)], false).unwrap()[0];
            prop_assert_eq!(ack.base_sequence, last.base);
            let mut all = expected.clone();
            all.extend(again);
            assert_records(&read_all(&log).unwrap(), &all, seq(0));
        }
    }
}

/// Reads from `from` until an error, returning what was read and the error.
fn read_until_error(
    log: &ShardLog,
    from: SequenceNumber,
) -> (Vec<shardlog::storage::StoredRecord>, Option<StorageError>) {
    let mut out = Vec::new();
    let mut next = from;
    loop {
        match log.read(next, 1_000, 1 << 20) {
            Ok(b) if b.records.is_empty() => return (out, None),
            Ok(b) => {
                next = b.next_sequence;
                out.extend(b.records);
            }
            Err(e) => return (out, Some(e)),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn a_flipped_byte_in_a_sealed_segment_makes_exactly_its_batch_corrupt(
        batches in sized_batches(40, 60),
        victim_pick in any::<prop::sample::Index>(),
        byte_pick in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let dir = scratch_dir();
        let placed = build(dir.path(), &batches);
        let active = placed.last().unwrap().segment;
        let sealed: Vec<&Placed> = placed.iter().filter(|p| p.segment != active).collect();
        prop_assume!(!sealed.is_empty());
        let victim = sealed[victim_pick.index(sealed.len())].clone();
        let at = victim.position + byte_pick.index(victim.frame_len as usize) as u64;
        let path = segment_file(dir.path(), victim.segment, "log");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[at as usize] ^= flip;
        std::fs::write(&path, &bytes).unwrap();

        let log = open_real(dir.path(), small_config());
        prop_assert_eq!(log.next_sequence(), placed.last().unwrap().base + placed.last().unwrap().records.len() as u64);
        for p in &placed {
            let got = log.read(p.base, p.records.len(), usize::MAX);
            if p.base == victim.base {
                for n in 0..p.records.len() as u64 {
                    let err = log.read(p.base + n, 1_000, 1 << 20).unwrap_err();
                    prop_assert!(matches!(err, StorageError::Corrupt { .. }), "{:?}", err);
                }
            } else {
                let got = got.unwrap();
                assert_records(&got.records, &p.records, p.base);
            }
        }
        // Reading from the start serves everything before the damage, then reports it.
        let (served, err) = read_until_error(&log, seq(0));
        let victim_index = placed.iter().position(|p| p.base == victim.base).unwrap();
        assert_records(&served, &all_records(&placed[..victim_index]), seq(0));
        prop_assert!(matches!(err, Some(StorageError::Corrupt { .. })), "{:?}", err);
        // Reading from just after the damaged batch goes on to the end.
        let after = victim.base + victim.records.len() as u64;
        assert_records(&read_from(&log, after).unwrap(), &all_records(&placed[victim_index + 1..]), after);
    }
}

/// How an index file is damaged.
#[derive(Debug, Clone, Copy)]
enum Damage {
    Delete,
    /// Cut to this fraction (per mille) of its length.
    Truncate(u16),
    /// Overwritten with this many per mille of its length of bytes from this seed.
    Garbage(u16, u64),
}

fn damage_strategy() -> impl Strategy<Value = Damage> {
    prop_oneof![
        Just(Damage::Delete),
        (0u16..1000).prop_map(Damage::Truncate),
        (1u16..=1000, any::<u64>()).prop_map(|(f, s)| Damage::Garbage(f, s)),
    ]
}

fn apply(damage: Damage, path: &Path) {
    let len = std::fs::metadata(path).unwrap().len();
    match damage {
        Damage::Delete => std::fs::remove_file(path).unwrap(),
        Damage::Truncate(per_mille) => {
            let file = OpenOptions::new().write(true).open(path).unwrap();
            file.set_len(len * u64::from(per_mille) / 1000).unwrap();
        }
        Damage::Garbage(f, seed) => {
            let n = (len * u64::from(f) / 1000).max(1) as usize;
            let mut x = seed | 1;
            let garbage: Vec<u8> = (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            std::fs::write(path, garbage).unwrap();
        }
    }
}

/// The first sequence whose batch arrived at or after `t`, or the end.
fn expected_seek(placed: &[Placed], t: Timestamp) -> SequenceNumber {
    placed.iter().find(|p| p.timestamp_ms >= t).map_or_else(
        || placed.last().unwrap().base + placed.last().unwrap().records.len() as u64,
        |p| p.base,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn a_deleted_cut_or_garbled_index_is_rebuilt_and_reads_and_time_seeks_still_work(
        batches in sized_batches(20, 45),
        segment_pick in any::<prop::sample::Index>(),
        time_index in any::<bool>(),
        damage in damage_strategy(),
    ) {
        let dir = scratch_dir();
        let placed = build(dir.path(), &batches);
        let bases = segment_bases(dir.path());
        let ext = if time_index { "timeindex" } else { "index" };
        let snapshot = |dir: &Path| -> Vec<(SequenceNumber, Vec<u8>, Vec<u8>)> {
            bases.iter().map(|&b| (
                b,
                std::fs::read(segment_file(dir, b, "index")).unwrap(),
                std::fs::read(segment_file(dir, b, "timeindex")).unwrap(),
            )).collect()
        };
        let original = snapshot(dir.path());
        let victim = bases[segment_pick.index(bases.len())];
        let path = segment_file(dir.path(), victim, ext);
        apply(damage, &path);

        let log = open_real(dir.path(), small_config());
        assert_records(&read_all(&log).unwrap(), &all_records(&placed), seq(0));
        for p in &placed {
            for (i, r) in p.records.iter().enumerate() {
                let got = log.read(p.base + i as u64, 1, usize::MAX).unwrap();
                assert_records(&got.records, std::slice::from_ref(r), p.base + i as u64);
            }
            let five = Duration::from_millis(5);
            for t in [p.timestamp_ms.saturating_sub(five), p.timestamp_ms, p.timestamp_ms.saturating_add(five)] {
                prop_assert_eq!(log.seek_time(t).unwrap(), expected_seek(&placed, t), "seek_time({})", t);
            }
        }
        prop_assert_eq!(log.seek_time(at_ms(0)).unwrap(), seq(0));
        // The rebuilt index holds exactly the entries the log had written.
        drop(log);
        prop_assert!(snapshot(dir.path()) == original, "index files differ after the rebuild");
    }
}

#[test]
fn reopening_a_cleanly_closed_log_changes_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let batches: Vec<Vec<Rec>> = (0..40)
        .map(|i| tagged_batch(&format!("b{i}"), 3, 40))
        .collect();
    let placed = build(dir.path(), &batches);
    let read_files = || {
        let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        files.sort();
        files
    };
    let before = read_files();
    let log = open_real(dir.path(), small_config());
    assert_records(&read_all(&log).unwrap(), &all_records(&placed), seq(0));
    drop(log);
    assert!(before == read_files(), "a clean reopen rewrote a file");
}

#[test]
fn garbage_after_the_last_batch_of_the_active_segment_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let batches: Vec<Vec<Rec>> = (0..3)
        .map(|i| tagged_batch(&format!("b{i}"), 2, 30))
        .collect();
    let placed = build(dir.path(), &batches);
    let path = segment_file(dir.path(), seq(0), "log");
    let len = std::fs::metadata(&path).unwrap().len();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(&[0u8; 100]);
    bytes.extend_from_slice(b"SLG1 and then nonsense that is not a frame header at all...........");
    std::fs::write(&path, &bytes).unwrap();
    let log = open_real(dir.path(), small_config());
    assert_eq!(std::fs::metadata(&path).unwrap().len(), len);
    assert_records(&read_all(&log).unwrap(), &all_records(&placed), seq(0));
}

#[test]
fn a_time_index_entry_that_lies_about_its_time_is_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let batches: Vec<Vec<Rec>> = (0..40)
        .map(|i| tagged_batch(&format!("b{i}"), 2, 60))
        .collect();
    let placed = build(dir.path(), &batches);
    let in_first: Vec<&Placed> = placed.iter().filter(|p| p.segment == seq(0)).collect();
    assert!(in_first.len() > 4);
    // A well-formed entry claiming that a late batch of segment 0 arrived at time 1.
    let late = in_first[in_first.len() - 2];
    let mut entry = 1u64.to_le_bytes().to_vec();
    entry.extend_from_slice(&(late.base.get() as u32).to_le_bytes());
    std::fs::write(segment_file(dir.path(), seq(0), "timeindex"), &entry).unwrap();

    let log = open_real(dir.path(), small_config());
    for p in &placed {
        assert_eq!(
            log.seek_time(p.timestamp_ms).unwrap(),
            p.base,
            "seek_time({})",
            p.timestamp_ms
        );
    }
}

#[test]
fn arrival_times_stay_ordered_after_a_reopen_finds_an_empty_last_segment() {
    let dir = tempfile::tempdir().unwrap();
    let batches: Vec<Vec<Rec>> = (0..40)
        .map(|i| tagged_batch(&format!("b{i}"), 2, 60))
        .collect();
    let mut placed = build(dir.path(), &batches);
    // Cut the last segment to nothing, as a crash right after it was started would leave it.
    let last_segment = placed.last().unwrap().segment;
    assert!(last_segment > seq(0));
    placed.retain(|p| p.segment != last_segment);
    OpenOptions::new()
        .write(true)
        .open(segment_file(dir.path(), last_segment, "log"))
        .unwrap()
        .set_len(0)
        .unwrap();

    let log = open_real(dir.path(), small_config());
    let newest = placed.last().unwrap().timestamp_ms;
    assert_eq!(log.last_timestamp_ms(), newest);
    for p in &placed {
        assert_eq!(
            log.seek_time(p.timestamp_ms).unwrap(),
            p.base,
            "seek over an empty last segment"
        );
    }
    // A clock that went back does not stamp a batch older than the ones before it.
    let ack = log
        .append_at(&mut [encode(&tagged_batch("late", 1, 5))], true, at_ms(1))
        .unwrap()[0];
    assert_eq!(ack.timestamp_ms, newest);
    for p in &placed {
        assert_eq!(log.seek_time(p.timestamp_ms).unwrap(), p.base);
    }
    assert_eq!(
        log.seek_time(newest.saturating_add(Duration::from_millis(1)))
            .unwrap(),
        ack.base_sequence.next()
    );
}

#[test]
fn a_damaged_batch_early_in_the_active_segment_is_cut_with_everything_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let batches: Vec<Vec<Rec>> = (0..12)
        .map(|i| tagged_batch(&format!("b{i}"), 2, 60))
        .collect();
    let placed = build(dir.path(), &batches);
    assert!(placed.iter().all(|p| p.segment == seq(0)));
    // Damage the third batch: the index has entries well past it, pointing at intact batches,
    // as after a power loss that kept later pages of an unsynced tail but not earlier ones.
    let victim = &placed[2];
    let path = segment_file(dir.path(), seq(0), "log");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[(victim.position + victim.frame_len - 1) as usize] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    let index_len = std::fs::read(segment_file(dir.path(), seq(0), "index"))
        .unwrap()
        .chunks(8)
        .take_while(|e| e.iter().any(|&b| b != 0))
        .count();
    assert!(index_len > 3, "the index points past the damaged batch");

    let log = open_real(dir.path(), small_config());
    assert_eq!(log.next_sequence(), victim.base);
    assert_records(&read_all(&log).unwrap(), &all_records(&placed[..2]), seq(0));
    assert_eq!(std::fs::metadata(&path).unwrap().len(), victim.position);
    // Appends go on from the cut, and the index no longer points into what was cut.
    let mut expected = all_records(&placed[..2]);
    for i in 0..10 {
        let batch = tagged_batch(&format!("new{i}"), 2, 60);
        log.append(&mut [encode(&batch)], false).unwrap();
        expected.extend(batch);
    }
    for (i, r) in expected.iter().enumerate() {
        let got = log.read(seq(i as u64), 1, usize::MAX).unwrap();
        assert_records(&got.records, std::slice::from_ref(r), seq(i as u64));
    }
}

#[test]
fn junk_after_the_last_batch_of_a_sealed_segment_does_not_stop_reads_into_the_next_one() {
    let dir = tempfile::tempdir().unwrap();
    let batches: Vec<Vec<Rec>> = (0..40)
        .map(|i| tagged_batch(&format!("b{i}"), 2, 60))
        .collect();
    let placed = build(dir.path(), &batches);
    let path = segment_file(dir.path(), seq(0), "log");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(b"junk that a sealed segment holds after its last batch");
    std::fs::write(&path, &bytes).unwrap();

    let log = open_real(dir.path(), small_config());
    let last_of_first = placed.iter().rfind(|p| p.segment == seq(0)).unwrap();
    let got = log.read(last_of_first.base, 1_000, 1 << 20).unwrap();
    let all = all_records(&placed);
    let from = last_of_first.base.get() as usize;
    assert_records(&got.records, &all[from..], last_of_first.base);
}
