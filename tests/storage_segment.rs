//! One segment on its own: names, publish-then-read, budgets, time seeks, and what reopening
//! does to an active and to a sealed segment.

mod storage_support;

use shardlog::fsio::RealIo;
use shardlog::storage::segment::{file_name, parse_log_name, Segment};
use shardlog::storage::{SequenceNumber, StorageError, StoredRecord};
use storage_support::*;

const CAPACITY: usize = 64;
const INTERVAL: u64 = 100;

/// Writes `batches` to `seg` one after another from sequence `base`, publishing each with an
/// index entry (as the log does), stamped 10 ms apart from 1 s. Returns the end position.
fn write(seg: &Segment, base: u64, batches: &[Vec<Rec>]) -> u64 {
    let (mut pos, mut seq) = (seg.len(), seq(base));
    for (i, records) in batches.iter().enumerate() {
        let mut batch = encode(records);
        let ts = at_ms(1_000 + 10 * i as u64);
        let frame = batch.stamp(seq, ts).to_vec();
        seg.write_at(&frame, pos).unwrap();
        let entries = if pos > 0 {
            vec![(pos, seq, ts)]
        } else {
            vec![]
        };
        seq += records.len() as u64;
        pos += frame.len() as u64;
        seg.set_written(pos, seq, ts, &entries);
    }
    pos
}

fn read(
    seg: &Segment,
    from: u64,
    end: u64,
    max_records: usize,
    max_bytes: usize,
) -> Result<Vec<StoredRecord>, StorageError> {
    let mut out = Vec::new();
    let mut bytes = 0;
    seg.read_into(
        seq(from),
        seq(end),
        max_records,
        max_bytes,
        &mut out,
        &mut bytes,
    )?;
    Ok(out)
}

fn batches(n: usize) -> Vec<Vec<Rec>> {
    (0..n)
        .map(|i| tagged_batch(&format!("b{i}"), 3, 20))
        .collect()
}

#[test]
fn file_names_have_twenty_digits_and_parse_back() {
    assert_eq!(file_name(seq(42), "log"), "00000000000000000042.log");
    assert_eq!(
        parse_log_name(&file_name(seq(u64::MAX), "log")),
        Some(seq(u64::MAX))
    );
    assert_eq!(parse_log_name(&file_name(seq(7), "index")), None);
    assert_eq!(parse_log_name("42.log"), None);
    assert_eq!(parse_log_name("0000000000000000004x.log"), None);
}

#[test]
fn written_bytes_are_read_only_once_published() {
    let dir = tempfile::tempdir().unwrap();
    let seg = Segment::create(&RealIo, dir.path(), seq(10), CAPACITY).unwrap();
    let mut batch = encode(&tagged_batch("a", 2, 8));
    let frame = batch.stamp(seq(10), at_ms(1)).to_vec();
    seg.write_at(&frame, 0).unwrap();
    assert!(read(&seg, 10, u64::MAX, 100, usize::MAX)
        .unwrap()
        .is_empty());
    seg.set_written(frame.len() as u64, seq(12), at_ms(1), &[]);
    assert_eq!(read(&seg, 10, u64::MAX, 100, usize::MAX).unwrap().len(), 2);
    assert_eq!(seg.next_sequence(), seq(12));
}

#[test]
fn a_read_stops_at_the_end_sequence_it_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let seg = Segment::create(&RealIo, dir.path(), seq(0), CAPACITY).unwrap();
    let all = batches(10);
    write(&seg, 0, &all);
    let expected: Vec<Rec> = all.iter().flatten().cloned().collect();
    // `end` is the log's durable mark: nothing at or past it is served.
    assert_records(
        &read(&seg, 4, 9, 100, usize::MAX).unwrap(),
        &expected[4..9],
        seq(4),
    );
    assert_records(
        &read(&seg, 0, 30, 100, usize::MAX).unwrap(),
        &expected,
        seq(0),
    );
    assert_records(
        &read(&seg, 7, 30, 5, usize::MAX).unwrap(),
        &expected[7..12],
        seq(7),
    );
}

#[test]
fn reopening_an_active_segment_cuts_a_torn_tail_and_says_how_much() {
    let dir = tempfile::tempdir().unwrap();
    let all = batches(10);
    let end = {
        let seg = Segment::create(&RealIo, dir.path(), seq(0), CAPACITY).unwrap();
        write(&seg, 0, &all)
    };
    let path = segment_file(dir.path(), seq(0), "log");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_within(..30);
    std::fs::write(&path, &bytes).unwrap();
    let (seg, cut) = Segment::open(&RealIo, dir.path(), seq(0), true, CAPACITY, INTERVAL).unwrap();
    assert_eq!(cut, Some(30));
    assert_eq!(seg.len(), end);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), end);
    assert_eq!(seg.next_sequence(), seq(30));
    assert_eq!(seg.max_timestamp_ms(), at_ms(1_090));
    assert!(!seg.is_sealed());
}

#[test]
fn reopening_a_sealed_segment_never_cuts_it() {
    let dir = tempfile::tempdir().unwrap();
    let all = batches(10);
    let end = {
        let seg = Segment::create(&RealIo, dir.path(), seq(0), CAPACITY).unwrap();
        let end = write(&seg, 0, &all);
        seg.seal();
        end
    };
    let path = segment_file(dir.path(), seq(0), "log");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(b"torn");
    std::fs::write(&path, &bytes).unwrap();
    let (seg, cut) = Segment::open(&RealIo, dir.path(), seq(0), false, CAPACITY, INTERVAL).unwrap();
    assert_eq!(cut, None);
    assert!(seg.is_sealed());
    assert_eq!(std::fs::metadata(&path).unwrap().len(), end + 4);
    let expected: Vec<Rec> = all.iter().flatten().cloned().collect();
    assert_records(
        &read(&seg, 0, 30, 100, usize::MAX).unwrap(),
        &expected,
        seq(0),
    );
    // Reading into the damaged bytes past the last batch is an error, not data.
    let err = read(&seg, 30, 31, 100, usize::MAX).unwrap_err();
    assert!(matches!(err, StorageError::Corrupt { .. }), "{err:?}");
}

#[test]
fn sealing_trims_the_indexes_to_their_entries() {
    let dir = tempfile::tempdir().unwrap();
    let seg = Segment::create(&RealIo, dir.path(), seq(0), CAPACITY).unwrap();
    write(&seg, 0, &batches(10));
    seg.seal();
    assert_eq!(
        std::fs::metadata(segment_file(dir.path(), seq(0), "index"))
            .unwrap()
            .len(),
        9 * 8
    );
    assert_eq!(
        std::fs::metadata(segment_file(dir.path(), seq(0), "timeindex"))
            .unwrap()
            .len(),
        9 * 12
    );
    assert!(seg.last_index_position() > 0);
}

#[test]
fn seek_time_in_a_segment_finds_the_first_batch_at_or_after_the_time() {
    let dir = tempfile::tempdir().unwrap();
    let seg = Segment::create(&RealIo, dir.path(), seq(100), CAPACITY).unwrap();
    write(&seg, 100, &batches(10));
    assert_eq!(
        seg.seek_time(at_ms(0), SequenceNumber::MAX).unwrap(),
        Some(seq(100))
    );
    assert_eq!(
        seg.seek_time(at_ms(1_000), SequenceNumber::MAX).unwrap(),
        Some(seq(100))
    );
    assert_eq!(
        seg.seek_time(at_ms(1_001), SequenceNumber::MAX).unwrap(),
        Some(seq(103))
    );
    assert_eq!(
        seg.seek_time(at_ms(1_050), SequenceNumber::MAX).unwrap(),
        Some(seq(115))
    );
    assert_eq!(
        seg.seek_time(at_ms(1_090), SequenceNumber::MAX).unwrap(),
        Some(seq(127))
    );
    assert_eq!(
        seg.seek_time(at_ms(1_091), SequenceNumber::MAX).unwrap(),
        None
    );
    // Nothing at or past the durable end is an answer.
    assert_eq!(seg.seek_time(at_ms(1_050), seq(115)).unwrap(), None);
}

#[test]
fn removing_a_segment_removes_its_three_files() {
    let dir = tempfile::tempdir().unwrap();
    let seg = Segment::create(&RealIo, dir.path(), seq(5), CAPACITY).unwrap();
    write(&seg, 5, &batches(3));
    seg.remove_files(&RealIo, dir.path()).unwrap();
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    // Removing again finds nothing to remove and is not an error.
    seg.remove_files(&RealIo, dir.path()).unwrap();
}

/// Records with every optional field, some of them empty, and non-ASCII keys.
fn varied_batches() -> Vec<Vec<Rec>> {
    (0..12)
        .map(|b| {
            (0..5)
                .map(|i| Rec {
                    key: format!("clé-{b}-{i}-ü"),
                    data: vec![(b * 5 + i) as u8; 10 + 7 * i],
                    hash_key: (i % 2 == 0).then_some(u128::MAX - (b * 5 + i) as u128),
                    group: (i % 3 != 0).then(|| format!("group-{}", i % 3)),
                    dedup: (i != 4).then(|| format!("dedup-{b}-{i}")),
                })
                .collect()
        })
        .collect()
}

#[test]
fn a_sealed_segment_is_read_through_its_mapping_with_every_field_intact() {
    let dir = tempfile::tempdir().unwrap();
    let seg = Segment::create(&RealIo, dir.path(), seq(0), CAPACITY).unwrap();
    let all = varied_batches();
    write(&seg, 0, &all);
    let expected: Vec<Rec> = all.iter().flatten().cloned().collect();
    let n = expected.len() as u64;
    assert_records(
        &read(&seg, 0, n, 1000, usize::MAX).unwrap(),
        &expected,
        seq(0),
    );
    assert!(!seg.is_mapped(), "an active segment is read with copies");
    seg.seal();
    let first = read(&seg, 0, n, 1000, usize::MAX).unwrap();
    assert!(seg.is_mapped());
    assert_records(&first, &expected, seq(0));
    // From the middle of a batch, by count and by bytes, as through the copying path.
    assert_records(
        &read(&seg, 7, n, 9, usize::MAX).unwrap(),
        &expected[7..16],
        seq(7),
    );
    let budget = first[..3].iter().map(|r| r.encoded_len()).sum::<usize>();
    assert_records(
        &read(&seg, 0, n, 1000, budget).unwrap(),
        &expected[..3],
        seq(0),
    );
    // Slices stay readable after the segment and its file are gone, as after retention.
    seg.remove_files(&RealIo, dir.path()).unwrap();
    drop(seg);
    assert_records(&first, &expected, seq(0));
}

/// Flips one byte of the payload of the batch starting at `pos`.
fn damage_payload(path: &std::path::Path, pos: u64) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let at = pos + shardlog::storage::record::HEADER_LEN as u64 + 3;
    let mut b = [0u8; 1];
    file.read_exact_at(&mut b, at).unwrap();
    file.write_all_at(&[b[0] ^ 0x40], at).unwrap();
}

#[test]
fn a_damaged_batch_in_a_mapped_sealed_segment_is_reported_never_served() {
    let dir = tempfile::tempdir().unwrap();
    let seg = Segment::create(&RealIo, dir.path(), seq(0), CAPACITY).unwrap();
    let all = batches(10);
    let third_at = {
        let two = encode(&all[0]).frame_len() + encode(&all[1]).frame_len();
        two as u64
    };
    write(&seg, 0, &all);
    seg.seal();
    let expected: Vec<Rec> = all.iter().flatten().cloned().collect();
    assert_records(
        &read(&seg, 0, 30, 100, usize::MAX).unwrap(),
        &expected,
        seq(0),
    );
    assert!(seg.is_mapped());
    // The file changes under the mapping (as a failing disk would show it): the CRC check
    // of the read catches it.
    damage_payload(&segment_file(dir.path(), seq(0), "log"), third_at);
    let err = read(&seg, 6, 30, 100, usize::MAX).unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::Corrupt {
                position,
                reason: shardlog::storage::record::FrameError::PayloadCrc { .. },
                ..
            } if position == third_at
        ),
        "{err:?}"
    );
    // What precedes the damaged batch is still served, and a read past it goes on.
    assert_records(
        &read(&seg, 0, 6, 100, usize::MAX).unwrap(),
        &expected[..6],
        seq(0),
    );
    assert_records(
        &read(&seg, 9, 30, 100, usize::MAX).unwrap(),
        &expected[9..],
        seq(9),
    );
}

#[test]
fn a_sealed_segment_damaged_before_it_is_mapped_is_reported_never_served() {
    let dir = tempfile::tempdir().unwrap();
    let all = batches(10);
    {
        let seg = Segment::create(&RealIo, dir.path(), seq(0), CAPACITY).unwrap();
        write(&seg, 0, &all);
        seg.seal();
    }
    damage_payload(&segment_file(dir.path(), seq(0), "log"), 0);
    let (seg, cut) = Segment::open(&RealIo, dir.path(), seq(0), false, CAPACITY, INTERVAL).unwrap();
    assert_eq!(cut, None);
    let err = read(&seg, 0, 30, 100, usize::MAX).unwrap_err();
    assert!(seg.is_mapped());
    assert!(
        matches!(err, StorageError::Corrupt { position: 0, .. }),
        "{err:?}"
    );
    let expected: Vec<Rec> = all.iter().flatten().cloned().collect();
    assert_records(
        &read(&seg, 3, 30, 100, usize::MAX).unwrap(),
        &expected[3..],
        seq(3),
    );
}
