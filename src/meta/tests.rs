//! Behaviour of the metadata store across restarts, torn writes, corruption and I/O failures.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use proptest::prelude::*;

use super::codec::encode_command;
use super::journal::encode_frame;
use super::*;
use crate::fsio::{Io, IoFile, RealIo};
use crate::storage::{SequenceNumber, Timestamp};
use crate::stream::{
    DedupScope, GroupName, ShardId, StreamDescriptor, StreamLimits, StreamName, StreamSettings,
};

fn stream(name: &str) -> StreamName {
    StreamName::new(name).unwrap()
}

fn group(name: &str) -> GroupName {
    GroupName::new(name).unwrap()
}

fn create_stream(name: &str, shards: u32) -> MetaCommand {
    MetaCommand::CreateStream(
        StreamDescriptor::create(
            stream(name),
            Timestamp::from_millis(1_700_000_000_000),
            StreamSettings::default(),
            shards,
            &StreamLimits::default(),
        )
        .unwrap(),
    )
}

fn create_group(s: &str, g: &str) -> MetaCommand {
    MetaCommand::CreateGroup {
        stream: stream(s),
        group: group(g),
        created_at_ms: Timestamp::from_millis(1_700_000_000_001),
        queue: None,
    }
}

fn commit(s: &str, g: &str, shard: u32, sequence: u64) -> MetaCommand {
    MetaCommand::CommitCheckpoint {
        stream: stream(s),
        group: group(g),
        shard: ShardId(shard),
        sequence: SequenceNumber::new(sequence),
    }
}

/// Commands that all apply, in this order, touching every kind.
fn script() -> Vec<MetaCommand> {
    vec![
        create_stream("s", 4),
        create_group("s", "g"),
        commit("s", "g", 0, 5),
        commit("s", "g", 1, 7),
        MetaCommand::RaiseEpochFloor {
            stream: stream("s"),
            group: group("g"),
            epoch: 3,
        },
        create_stream("t", 1),
        create_group("t", "h"),
        commit("t", "h", 0, 1),
        MetaCommand::ResetCheckpoint {
            stream: stream("s"),
            group: group("g"),
            shard: ShardId(0),
            sequence: Some(SequenceNumber::new(2)),
        },
        MetaCommand::DeleteGroup {
            stream: stream("t"),
            group: group("h"),
        },
        MetaCommand::DeleteStream(stream("t")),
        commit("s", "g", 3, 40),
    ]
}

fn state_after(cmds: &[MetaCommand]) -> MetaState {
    let mut state = MetaState::default();
    for cmd in cmds {
        state.apply(cmd).unwrap();
    }
    state
}

fn frame_len(cmd: &MetaCommand) -> usize {
    encode_frame(&encode_command(cmd)).len()
}

fn open(dir: &Path) -> MetaStore {
    MetaStore::open(RealIo::shared(), dir).unwrap()
}

fn open_every(dir: &Path, snapshot_every: u64) -> MetaStore {
    MetaStore::open_with(RealIo::shared(), dir, MetaOptions { snapshot_every }).unwrap()
}

fn execute_all(store: &mut MetaStore, cmds: &[MetaCommand]) {
    for cmd in cmds {
        store.execute(cmd.clone()).unwrap();
    }
}

fn journal(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("journal-{generation}.log"))
}

fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn meta_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let meta = dir.path().join("meta");
    (dir, meta)
}

#[test]
fn a_fresh_directory_opens_empty_with_one_journal() {
    let (_dir, meta) = meta_dir();
    let store = open(&meta);
    assert_eq!(store.state(), &MetaState::default());
    assert_eq!(store.dir(), meta.as_path());
    assert_eq!(file_names(&meta), ["journal-0.log"]);
}

#[test]
fn executed_commands_survive_a_reopen() {
    let (_dir, meta) = meta_dir();
    let cmds = script();
    let mut store = open(&meta);
    execute_all(&mut store, &cmds);
    let expected = state_after(&cmds);
    assert_eq!(store.state(), &expected);
    drop(store);
    assert_eq!(open(&meta).state(), &expected);
}

#[test]
fn a_rejected_command_leaves_the_journal_untouched() {
    let (_dir, meta) = meta_dir();
    let mut store = open(&meta);
    execute_all(
        &mut store,
        &[
            create_stream("s", 2),
            create_group("s", "g"),
            commit("s", "g", 0, 10),
        ],
    );
    let before = fs::read(journal(&meta, 0)).unwrap();
    let state_before = store.state().clone();
    for cmd in [
        create_stream("s", 1),
        create_group("s", "g"),
        create_group("x", "g"),
        commit("s", "g", 0, 9),
        commit("s", "g", 2, 1),
        commit("s", "h", 0, 1),
        MetaCommand::DeleteStream(stream("x")),
    ] {
        let err = store.execute(cmd).unwrap_err();
        assert!(err.is_rejection(), "{err}");
    }
    assert_eq!(fs::read(journal(&meta, 0)).unwrap(), before);
    assert_eq!(store.state(), &state_before);
    assert!(!store.is_poisoned());
    store.execute(commit("s", "g", 0, 11)).unwrap();
}

#[test]
fn checkpoint_never_moves_backwards_without_reset_across_restarts() {
    let (_dir, meta) = meta_dir();
    let mut store = open(&meta);
    execute_all(
        &mut store,
        &[
            create_stream("s", 1),
            create_group("s", "g"),
            commit("s", "g", 0, 10),
        ],
    );
    drop(store);
    let mut store = open(&meta);
    assert!(matches!(
        store.execute(commit("s", "g", 0, 9)),
        Err(MetaError::CheckpointBackwards {
            current,
            requested,
            ..
        }) if current == SequenceNumber::new(10) && requested == SequenceNumber::new(9)
    ));
    store
        .execute(MetaCommand::ResetCheckpoint {
            stream: stream("s"),
            group: group("g"),
            shard: ShardId(0),
            sequence: Some(SequenceNumber::new(4)),
        })
        .unwrap();
    drop(store);
    let store = open(&meta);
    assert_eq!(
        store
            .state()
            .checkpoint(&stream("s"), &group("g"), ShardId(0)),
        Some(SequenceNumber::new(4))
    );
}

#[test]
fn torn_tail_at_every_byte_offset_is_truncated_keeping_whole_entries() {
    let (_dir, meta) = meta_dir();
    let cmds = script();
    let (last, before_last) = cmds.split_last().unwrap();
    let mut store = open(&meta);
    execute_all(&mut store, &cmds);
    drop(store);
    let path = journal(&meta, 0);
    let full = fs::read(&path).unwrap();
    let keep = full.len() - frame_len(last);
    let expected = state_after(before_last);
    for cut in keep..full.len() {
        fs::write(&path, &full[..cut]).unwrap();
        let store = open(&meta);
        assert_eq!(store.state(), &expected, "cut at byte {cut}");
        drop(store);
        assert_eq!(
            fs::metadata(&path).unwrap().len(),
            keep as u64,
            "cut at byte {cut}"
        );
    }
    fs::write(&path, &full).unwrap();
    assert_eq!(open(&meta).state(), &state_after(&cmds));
}

#[test]
fn commands_after_a_cut_tail_append_where_the_whole_entries_end() {
    let (_dir, meta) = meta_dir();
    let cmds = script();
    let mut store = open(&meta);
    execute_all(&mut store, &cmds[..3]);
    drop(store);
    let path = journal(&meta, 0);
    let mut bytes = fs::read(&path).unwrap();
    bytes.extend_from_slice(&[7, 0, 0]);
    fs::write(&path, &bytes).unwrap();

    let mut store = open(&meta);
    execute_all(&mut store, &cmds[3..]);
    drop(store);
    assert_eq!(open(&meta).state(), &state_after(&cmds));
}

#[test]
fn a_zero_filled_tail_is_truncated() {
    let (_dir, meta) = meta_dir();
    let cmds = script();
    let mut store = open(&meta);
    execute_all(&mut store, &cmds);
    drop(store);
    let path = journal(&meta, 0);
    let whole = fs::read(&path).unwrap();
    let mut padded = whole.clone();
    padded.resize(whole.len() + 4096, 0);
    fs::write(&path, &padded).unwrap();
    assert_eq!(open(&meta).state(), &state_after(&cmds));
    assert_eq!(fs::read(&path).unwrap(), whole);
}

#[test]
fn a_damaged_last_entry_is_cut_as_a_torn_write() {
    let (_dir, meta) = meta_dir();
    let cmds = script();
    let mut store = open(&meta);
    execute_all(&mut store, &cmds);
    drop(store);
    let path = journal(&meta, 0);
    let mut bytes = fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    fs::write(&path, &bytes).unwrap();
    assert_eq!(open(&meta).state(), &state_after(&cmds[..cmds.len() - 1]));
}

#[test]
fn a_corrupt_middle_entry_is_reported_not_skipped() {
    let (_dir, meta) = meta_dir();
    let cmds = script();
    let mut store = open(&meta);
    execute_all(&mut store, &cmds);
    drop(store);
    let path = journal(&meta, 0);
    let mut bytes = fs::read(&path).unwrap();
    let second = frame_len(&cmds[0]);
    bytes[second + 8 + 2] ^= 0x01;
    fs::write(&path, &bytes).unwrap();

    let err = MetaStore::open(RealIo::shared(), &meta).unwrap_err();
    assert!(
        matches!(&err, MetaError::Corrupt { file, position, .. }
            if file == &path && *position == second as u64),
        "{err:?}"
    );
    assert!(!err.is_rejection());
    // Nothing was cut: the evidence stays for an operator.
    assert_eq!(fs::read(&path).unwrap(), bytes);
}

#[test]
fn a_huge_length_in_the_tail_is_cut_without_allocating_it() {
    let (_dir, meta) = meta_dir();
    let cmds = script();
    let mut store = open(&meta);
    execute_all(&mut store, &cmds);
    drop(store);
    let path = journal(&meta, 0);
    let whole = fs::read(&path).unwrap();
    let mut bytes = whole.clone();
    bytes.extend_from_slice(&u32::MAX.to_le_bytes());
    bytes.extend_from_slice(&[0xAB; 20]);
    fs::write(&path, &bytes).unwrap();
    assert_eq!(open(&meta).state(), &state_after(&cmds));
    assert_eq!(fs::read(&path).unwrap(), whole);
}

#[test]
fn a_checksummed_entry_that_does_not_decode_is_an_error() {
    let (_dir, meta) = meta_dir();
    fs::create_dir_all(&meta).unwrap();
    // A valid frame around bytes that are no Command (an unterminated field).
    fs::write(journal(&meta, 0), encode_frame(&[0x0a, 0xff])).unwrap();
    let err = MetaStore::open(RealIo::shared(), &meta).unwrap_err();
    assert!(
        matches!(err, MetaError::Decode { position: 0, .. }),
        "{err:?}"
    );
}

#[test]
fn snapshots_roll_the_journal_and_replay_rebuilds_the_state() {
    let (_dir, meta) = meta_dir();
    let cmds = script();
    let mut store = open_every(&meta, 3);
    execute_all(&mut store, &cmds);
    let expected = state_after(&cmds);
    drop(store);

    // 12 commands, a snapshot before the 4th, 7th and 10th: generation 3 remains, alone.
    assert_eq!(file_names(&meta), ["journal-3.log", "snapshot-3"]);
    let mut store = open_every(&meta, 3);
    assert_eq!(store.state(), &expected);
    store.execute(commit("s", "g", 2, 1)).unwrap();
    drop(store);
    let store = open(&meta);
    assert_eq!(
        store
            .state()
            .checkpoint(&stream("s"), &group("g"), ShardId(2)),
        Some(SequenceNumber::new(1))
    );
    assert_eq!(file_names(&meta), ["journal-4.log", "snapshot-4"]);
}

#[test]
fn a_crash_after_writing_a_snapshot_before_its_journal_recovers() {
    let (_dir, meta) = meta_dir();
    let cmds = script();
    let mut store = open(&meta);
    execute_all(&mut store, &cmds);
    let expected = store.state().clone();
    drop(store);
    fs::write(meta.join("snapshot-1"), snapshot::encode(1, &expected)).unwrap();

    let mut store = open(&meta);
    assert_eq!(store.state(), &expected);
    assert_eq!(file_names(&meta), ["journal-1.log", "snapshot-1"]);
    store.execute(commit("s", "g", 2, 9)).unwrap();
    drop(store);
    let store = open(&meta);
    assert_eq!(
        store
            .state()
            .checkpoint(&stream("s"), &group("g"), ShardId(2)),
        Some(SequenceNumber::new(9))
    );
}

#[test]
fn a_damaged_newest_snapshot_falls_back_to_an_older_base_with_its_journals() {
    let (_dir, meta) = meta_dir();
    let cmds = script();
    let mut store = open(&meta);
    execute_all(&mut store, &cmds[..5]);
    let journal_0 = fs::read(journal(&meta, 0)).unwrap();
    store.snapshot_now().unwrap();
    execute_all(&mut store, &cmds[5..]);
    drop(store);
    // As if the crash came before the old journal was removed, and the snapshot then rotted.
    fs::write(journal(&meta, 0), &journal_0).unwrap();
    let snapshot_1 = meta.join("snapshot-1");
    let mut bytes = fs::read(&snapshot_1).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x10;
    fs::write(&snapshot_1, &bytes).unwrap();

    let mut store = open(&meta);
    assert_eq!(store.state(), &state_after(&cmds));
    // The next snapshot takes a fresh generation and removes everything older.
    store.snapshot_now().unwrap();
    assert_eq!(file_names(&meta), ["journal-2.log", "snapshot-2"]);
}

#[test]
fn a_damaged_snapshot_without_the_journals_before_it_is_an_error() {
    let (_dir, meta) = meta_dir();
    let cmds = script();
    let mut store = open(&meta);
    execute_all(&mut store, &cmds[..5]);
    store.snapshot_now().unwrap();
    execute_all(&mut store, &cmds[5..]);
    drop(store);
    let snapshot_1 = meta.join("snapshot-1");
    let mut bytes = fs::read(&snapshot_1).unwrap();
    bytes[30] ^= 0x10;
    fs::write(&snapshot_1, &bytes).unwrap();

    let err = MetaStore::open(RealIo::shared(), &meta).unwrap_err();
    assert!(
        matches!(&err, MetaError::Corrupt { file, .. } if file == &snapshot_1),
        "{err:?}"
    );
}

#[test]
fn a_gap_in_the_journal_chain_is_an_error() {
    let (_dir, meta) = meta_dir();
    let mut store = open(&meta);
    execute_all(&mut store, &script()[..2]);
    drop(store);
    fs::write(journal(&meta, 2), b"").unwrap();
    let err = MetaStore::open(RealIo::shared(), &meta).unwrap_err();
    let missing = journal(&meta, 1);
    assert!(
        matches!(&err, MetaError::Corrupt { file, .. } if file == &missing),
        "{err:?}"
    );
}

#[test]
fn a_journal_without_its_beginning_is_an_error() {
    let (_dir, meta) = meta_dir();
    fs::create_dir_all(&meta).unwrap();
    fs::write(journal(&meta, 1), b"").unwrap();
    assert!(MetaStore::open(RealIo::shared(), &meta).is_err());
}

#[test]
fn a_leftover_temporary_snapshot_is_removed_on_open() {
    let (_dir, meta) = meta_dir();
    let mut store = open(&meta);
    execute_all(&mut store, &script());
    drop(store);
    fs::write(meta.join("snapshot-1.tmp"), b"half a snapshot").unwrap();
    let store = open(&meta);
    assert_eq!(store.state(), &state_after(&script()));
    assert_eq!(file_names(&meta), ["journal-0.log"]);
}

/// Faults to inject, switched on and off by the test.
#[derive(Debug, Default)]
struct Faults {
    /// Writes store half their bytes, then fail.
    short_writes: AtomicBool,
    /// File and directory syncs fail with EIO.
    failing_syncs: AtomicBool,
}

#[derive(Debug)]
struct FaultyIo {
    faults: Arc<Faults>,
}

#[derive(Debug)]
struct FaultyFile {
    real: Arc<dyn IoFile>,
    faults: Arc<Faults>,
}

fn eio() -> io::Error {
    io::Error::from_raw_os_error(5)
}

impl IoFile for FaultyFile {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        if self.faults.short_writes.load(Ordering::SeqCst) {
            self.real.write_all_at(&buf[..buf.len() / 2], offset)?;
            return Err(eio());
        }
        self.real.write_all_at(buf, offset)
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.real.read_at(buf, offset)
    }

    fn sync(&self) -> io::Result<()> {
        if self.faults.failing_syncs.load(Ordering::SeqCst) {
            return Err(eio());
        }
        self.real.sync()
    }

    fn truncate(&self, len: u64) -> io::Result<()> {
        self.real.truncate(len)
    }

    fn len(&self) -> io::Result<u64> {
        self.real.len()
    }
}

impl Io for FaultyIo {
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn IoFile>> {
        Ok(Arc::new(FaultyFile {
            real: RealIo.open(path, create)?,
            faults: Arc::clone(&self.faults),
        }))
    }

    fn open_mapped(&self, path: &Path, create: bool) -> io::Result<std::fs::File> {
        RealIo.open_mapped(path, create)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        RealIo.remove_file(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        RealIo.rename(from, to)
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        RealIo.create_dir_all(dir)
    }

    fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        RealIo.remove_dir_all(dir)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        if self.faults.failing_syncs.load(Ordering::SeqCst) {
            return Err(eio());
        }
        RealIo.sync_dir(dir)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        RealIo.list_dir(dir)
    }

    fn exists(&self, path: &Path) -> bool {
        RealIo.exists(path)
    }
}

fn open_faulty(dir: &Path, snapshot_every: u64) -> (MetaStore, Arc<Faults>) {
    let faults = Arc::new(Faults::default());
    let io: Arc<dyn Io> = Arc::new(FaultyIo {
        faults: Arc::clone(&faults),
    });
    let store = MetaStore::open_with(io, dir, MetaOptions { snapshot_every }).unwrap();
    (store, faults)
}

#[test]
fn a_failed_sync_poisons_the_store() {
    let (_dir, meta) = meta_dir();
    let (mut store, faults) = open_faulty(&meta, DEFAULT_SNAPSHOT_EVERY);
    store.execute(create_stream("s", 1)).unwrap();
    faults.failing_syncs.store(true, Ordering::SeqCst);
    let err = store.execute(create_group("s", "g")).unwrap_err();
    assert!(
        matches!(
            err,
            MetaError::Io {
                op: "sync journal",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.is_rejection());
    // The sync is never retried, even once the disk would accept it.
    faults.failing_syncs.store(false, Ordering::SeqCst);
    // Every later refusal names the failure that poisoned the store.
    match store.execute(create_group("s", "h")) {
        Err(MetaError::Poisoned { cause }) => assert!(
            matches!(
                *cause,
                MetaError::Io {
                    op: "sync journal",
                    ..
                }
            ),
            "{cause:?}"
        ),
        other => panic!("expected a poisoned store, got {other:?}"),
    }
    assert!(matches!(
        store.snapshot_now(),
        Err(MetaError::Poisoned { .. })
    ));
    assert!(store.is_poisoned());
    assert!(store.state().group(&stream("s"), &group("g")).is_none());
}

#[test]
fn a_short_write_poisons_the_store_and_its_tail_is_cut_on_reopen() {
    let (_dir, meta) = meta_dir();
    let (mut store, faults) = open_faulty(&meta, DEFAULT_SNAPSHOT_EVERY);
    store.execute(create_stream("s", 1)).unwrap();
    let whole = fs::read(journal(&meta, 0)).unwrap();
    faults.short_writes.store(true, Ordering::SeqCst);
    let err = store.execute(create_group("s", "g")).unwrap_err();
    assert!(
        matches!(
            err,
            MetaError::Io {
                op: "append to journal",
                ..
            }
        ),
        "{err:?}"
    );
    faults.short_writes.store(false, Ordering::SeqCst);
    assert!(matches!(
        store.execute(create_group("s", "g")),
        Err(MetaError::Poisoned { .. })
    ));
    drop(store);
    assert!(fs::read(journal(&meta, 0)).unwrap().len() > whole.len());

    let store = open(&meta);
    assert_eq!(store.state(), &state_after(&[create_stream("s", 1)]));
    assert_eq!(fs::read(journal(&meta, 0)).unwrap(), whole);
}

#[test]
fn a_failed_snapshot_poisons_the_store_before_the_command_is_journaled() {
    let (_dir, meta) = meta_dir();
    let (mut store, faults) = open_faulty(&meta, 1);
    store.execute(create_stream("s", 1)).unwrap();
    faults.failing_syncs.store(true, Ordering::SeqCst);
    let err = store.execute(create_group("s", "g")).unwrap_err();
    assert!(
        matches!(
            err,
            MetaError::Io {
                op: "write snapshot",
                ..
            }
        ),
        "{err:?}"
    );
    faults.failing_syncs.store(false, Ordering::SeqCst);
    assert!(matches!(
        store.execute(create_group("s", "g")),
        Err(MetaError::Poisoned { .. })
    ));
    drop(store);

    let store = open(&meta);
    assert_eq!(store.state(), &state_after(&[create_stream("s", 1)]));
    assert_eq!(file_names(&meta), ["journal-0.log"]);
}

fn arb_stream() -> impl Strategy<Value = StreamName> {
    prop::sample::select(vec!["a", "b", "c"]).prop_map(stream)
}

fn arb_group() -> impl Strategy<Value = GroupName> {
    prop::sample::select(vec!["g", "h"]).prop_map(group)
}

fn arb_command() -> impl Strategy<Value = MetaCommand> {
    prop_oneof![
        2 => (arb_stream(), 1u32..4, any::<bool>(), any::<bool>(), 0u64..1_000).prop_map(
            |(name, shards, content_based, by_group, at)| {
                let settings = StreamSettings {
                    content_based_deduplication: content_based,
                    dedup_scope: if by_group {
                        DedupScope::MessageGroup
                    } else {
                        DedupScope::Stream
                    },
                    ..StreamSettings::default()
                };
                MetaCommand::CreateStream(
                    StreamDescriptor::create(name, Timestamp::from_millis(at), settings, shards, &StreamLimits::default())
                        .unwrap(),
                )
            }
        ),
        1 => arb_stream().prop_map(MetaCommand::DeleteStream),
        2 => (arb_stream(), arb_group(), any::<u64>()).prop_map(|(stream, group, created_at_ms)| {
            MetaCommand::CreateGroup {
                stream,
                group,
                created_at_ms: Timestamp::from_millis(created_at_ms),
                queue: None,
            }
        }),
        1 => (arb_stream(), arb_group())
            .prop_map(|(stream, group)| MetaCommand::DeleteGroup { stream, group }),
        4 => (arb_stream(), arb_group(), 0u32..4, 0u64..50).prop_map(
            |(stream, group, shard, sequence)| MetaCommand::CommitCheckpoint {
                stream,
                group,
                shard: ShardId(shard),
                sequence: SequenceNumber::new(sequence),
            }
        ),
        1 => (arb_stream(), arb_group(), 0u32..4, prop::option::of(0u64..50)).prop_map(
            |(stream, group, shard, sequence)| MetaCommand::ResetCheckpoint {
                stream,
                group,
                shard: ShardId(shard),
                sequence: sequence.map(SequenceNumber::new),
            }
        ),
        1 => (arb_stream(), arb_group(), 0u64..20).prop_map(|(stream, group, epoch)| {
            MetaCommand::RaiseEpochFloor {
                stream,
                group,
                epoch,
            }
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn replay_gives_the_state_the_commands_left(
        steps in prop::collection::vec((arb_command(), prop::bool::weighted(0.1)), 1..60),
        snapshot_every in 1u64..8,
    ) {
        let (_dir, meta) = meta_dir();
        let mut store = open_every(&meta, snapshot_every);
        let mut model = MetaState::default();
        for (cmd, reopen) in steps {
            let expected = model.apply(&cmd);
            let actual = store.execute(cmd.clone());
            prop_assert_eq!(expected.is_ok(), actual.is_ok(), "{:?}: {:?}", cmd, actual);
            if let Err(err) = actual {
                prop_assert!(err.is_rejection(), "{}", err);
            }
            prop_assert_eq!(store.state(), &model);
            if reopen {
                drop(store);
                store = open_every(&meta, snapshot_every);
                prop_assert_eq!(store.state(), &model);
            }
        }
        drop(store);
        let reopened = open(&meta);
        prop_assert_eq!(reopened.state(), &model);
    }

    #[test]
    fn every_command_round_trips_through_its_encoding(cmd in arb_command()) {
        prop_assert_eq!(codec::decode_command(&encode_command(&cmd)).unwrap(), cmd);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn opening_never_panics_on_any_journal_content(
        whole_entries in 0usize..4,
        junk in prop::collection::vec(any::<u8>(), 0..300),
        framed in any::<bool>(),
    ) {
        let (_dir, meta) = meta_dir();
        fs::create_dir_all(&meta).unwrap();
        let mut bytes = Vec::new();
        for cmd in &script()[..whole_entries] {
            bytes.extend(encode_frame(&encode_command(cmd)));
        }
        if framed && !junk.is_empty() {
            bytes.extend(encode_frame(&junk));
        } else {
            bytes.extend(&junk);
        }
        fs::write(journal(&meta, 0), &bytes).unwrap();
        if let Ok(store) = MetaStore::open(RealIo::shared(), &meta) {
            // Whatever was kept is a prefix of whole entries.
            let kept = (0..=whole_entries).any(|n| store.state() == &state_after(&script()[..n]));
            prop_assert!(kept || framed);
        }
    }

    #[test]
    fn opening_never_panics_on_any_snapshot_content(
        junk in prop::collection::vec(any::<u8>(), 0..300),
        with_header in any::<bool>(),
    ) {
        let (_dir, meta) = meta_dir();
        fs::create_dir_all(&meta).unwrap();
        let mut bytes = Vec::new();
        if with_header {
            bytes.extend_from_slice(b"SLMETASN");
            bytes.extend_from_slice(&1u32.to_le_bytes());
            bytes.extend_from_slice(&crc32fast::hash(&junk).to_le_bytes());
            bytes.extend_from_slice(&(junk.len() as u64).to_le_bytes());
        }
        bytes.extend(&junk);
        fs::write(meta.join("snapshot-1"), &bytes).unwrap();
        fs::write(journal(&meta, 1), b"").unwrap();
        let _ = MetaStore::open(RealIo::shared(), &meta);
    }
}
