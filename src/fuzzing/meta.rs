//! The metadata journal and snapshot (`meta`): the journal scan, command and snapshot bodies,
//! and replay, read from memory.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::SEAL;
use crate::fsio::{Io, IoFile};
use crate::meta::{codec, journal, snapshot, MetaCommand, MetaError, MetaState, QueueDefinition};
use crate::meta::{QueueKind, RuleDefinition, TargetMark};
use crate::route::{Filter, FilterScope};
use crate::storage::{SequenceNumber, Timestamp};
use crate::stream::{
    GroupName, RuleName, ShardId, StreamDescriptor, StreamLimits, StreamName, StreamSettings,
};

/// One read-only file in memory, as the metadata's scans read it.
#[derive(Debug)]
struct MemFile(Vec<u8>);

impl IoFile for MemFile {
    fn write_all_at(&self, _buf: &[u8], _offset: u64) -> io::Result<()> {
        Err(io::Error::new(io::ErrorKind::Unsupported, "read-only"))
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let start = usize::try_from(offset).map_or(self.0.len(), |o| o.min(self.0.len()));
        let n = buf.len().min(self.0.len() - start);
        buf[..n].copy_from_slice(&self.0[start..start + n]);
        Ok(n)
    }

    fn sync(&self) -> io::Result<()> {
        Ok(())
    }

    fn truncate(&self, _len: u64) -> io::Result<()> {
        Err(io::Error::new(io::ErrorKind::Unsupported, "read-only"))
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.0.len() as u64)
    }
}

/// A file system holding one read-only file, whatever its path.
#[derive(Debug)]
struct MemIo(Arc<MemFile>);

impl Io for MemIo {
    fn open(&self, _path: &Path, _create: bool) -> io::Result<Arc<dyn IoFile>> {
        Ok(self.0.clone())
    }

    fn open_mapped(&self, _path: &Path, _create: bool) -> io::Result<std::fs::File> {
        Err(io::Error::new(io::ErrorKind::Unsupported, "in memory"))
    }

    fn remove_file(&self, _path: &Path) -> io::Result<()> {
        Err(io::Error::new(io::ErrorKind::Unsupported, "read-only"))
    }

    fn rename(&self, _from: &Path, _to: &Path) -> io::Result<()> {
        Err(io::Error::new(io::ErrorKind::Unsupported, "read-only"))
    }

    fn create_dir_all(&self, _dir: &Path) -> io::Result<()> {
        Err(io::Error::new(io::ErrorKind::Unsupported, "read-only"))
    }

    fn remove_dir_all(&self, _dir: &Path) -> io::Result<()> {
        Err(io::Error::new(io::ErrorKind::Unsupported, "read-only"))
    }

    fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }

    fn list_dir(&self, _dir: &Path) -> io::Result<Vec<PathBuf>> {
        Ok(Vec::new())
    }

    fn exists(&self, _path: &Path) -> bool {
        true
    }
}

/// Scans `file` as a journal, returning the scan and every command with its offset.
fn scan_journal(file: &[u8]) -> Result<(journal::Scan, Vec<(u64, MetaCommand)>), MetaError> {
    let mut commands = Vec::new();
    let scan = journal::scan(
        &MemFile(file.to_vec()),
        Path::new("journal-0.log"),
        |at, c| {
            commands.push((at, c));
            Ok(())
        },
    )?;
    Ok((scan, commands))
}

/// `bytes` as journal frames: each chunk `[n: u16 LE][n bytes]` becomes one frame with its
/// CRC; whatever does not make a whole chunk follows as it is (a torn or damaged tail).
fn seal_journal(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while let [lo, hi, tail @ ..] = rest {
        let n = usize::from(u16::from_le_bytes([*lo, *hi]));
        if n == 0 || tail.len() < n {
            break;
        }
        out.extend_from_slice(&journal::encode_frame(&tail[..n]));
        rest = &tail[n..];
    }
    out.extend_from_slice(rest);
    out
}

/// The metadata journal. A scan reports a valid prefix of whole frames (all of the file, or a
/// torn tail after it); its prefix alone scans clean to the same commands; every command
/// survives its own encoding; replayed as the store replays them, the commands never panic,
/// and the state they leave survives a snapshot.
pub fn meta_journal(input: &[u8]) {
    let Some((&mode, rest)) = input.split_first() else {
        return;
    };
    let file = if mode & SEAL != 0 {
        seal_journal(rest)
    } else {
        rest.to_vec()
    };
    let (scan, commands) = match scan_journal(&file) {
        Ok(scanned) => scanned,
        Err(MetaError::Corrupt { .. } | MetaError::Decode { .. }) => return,
        Err(other) => panic!("a journal scan fails only as corrupt or undecodable: {other}"),
    };
    assert_eq!(scan.file_len, file.len() as u64);
    assert_eq!(scan.entries as usize, commands.len());
    match scan.end {
        journal::ScanEnd::Clean => assert_eq!(scan.valid_len, scan.file_len),
        journal::ScanEnd::Torn { .. } => assert!(scan.valid_len < scan.file_len),
    }
    assert!(commands.windows(2).all(|w| w[0].0 < w[1].0));
    assert!(commands.iter().all(|(at, _)| *at < scan.valid_len));

    let (prefix, again) = scan_journal(&file[..scan.valid_len as usize])
        .expect("the valid prefix of a journal scans");
    assert_eq!(prefix.end, journal::ScanEnd::Clean);
    assert_eq!(again, commands, "the valid prefix holds the same commands");

    let mut state = MetaState::default();
    for (_, command) in &commands {
        let body = codec::encode_command(command);
        let decoded = codec::decode_command(&body).expect("an encoded command decodes");
        assert_eq!(&decoded, command, "a command survives its own encoding");
        if state.validate(command).is_err() || state.apply(command).is_err() {
            break;
        }
    }
    let body = codec::encode_snapshot(3, &state);
    let (generation, loaded) =
        codec::decode_snapshot(&body).expect("the snapshot of a replayed state decodes");
    assert_eq!(generation, 3);
    assert_eq!(loaded, state, "a replayed state survives a snapshot");
}

/// Commands of every common kind, in an order in which they all apply.
fn seed_commands() -> Vec<MetaCommand> {
    let stream = |s: &str| StreamName::new(s).expect("a valid seed name");
    let group = |g: &str| GroupName::new(g).expect("a valid seed name");
    let create = |s: &str, shards: u32| {
        MetaCommand::CreateStream(
            StreamDescriptor::create(
                stream(s),
                Timestamp::from_millis(1_700_000_000_000),
                StreamSettings::default(),
                shards,
                &StreamLimits::default(),
            )
            .expect("a valid seed stream"),
        )
    };
    let positions = BTreeMap::from([(ShardId(0), SequenceNumber::new(4))]);
    vec![
        create("orders", 4),
        create("audit", 1),
        MetaCommand::CreateGroup {
            stream: stream("orders"),
            group: group("billing"),
            created_at_ms: Timestamp::from_millis(1_700_000_000_001),
            queue: None,
        },
        MetaCommand::CommitCheckpoint {
            stream: stream("orders"),
            group: group("billing"),
            shard: ShardId(1),
            sequence: SequenceNumber::new(7),
        },
        MetaCommand::RaiseEpochFloor {
            stream: stream("orders"),
            group: group("billing"),
            epoch: 3,
        },
        MetaCommand::CreateGroup {
            stream: stream("orders"),
            group: group("work"),
            created_at_ms: Timestamp::from_millis(1_700_000_000_002),
            queue: Some((
                QueueDefinition {
                    kind: QueueKind::Fifo,
                    visibility_timeout: Duration::from_secs(30),
                    max_receive_count: 5,
                    dead_letter_stream: Some(stream("audit")),
                    filter: None,
                    owner: None,
                },
                positions.clone(),
            )),
        },
        MetaCommand::PutRule {
            rule: RuleName::new("copy").expect("a valid seed name"),
            definition: RuleDefinition {
                source: stream("orders"),
                filter: Some(Filter {
                    pattern: r#"{"kind": ["order"]}"#.to_owned(),
                    scope: FilterScope::Data,
                }),
                targets: vec![stream("audit")],
                enabled: true,
                owner: Some("alice".to_owned()),
            },
            created_at_ms: Timestamp::from_millis(1_700_000_000_003),
            start: positions.clone(),
            marks: BTreeMap::from([(
                stream("audit"),
                TargetMark {
                    created_at_ms: Timestamp::from_millis(1_700_000_000_000),
                    next: positions,
                },
            )]),
        },
        MetaCommand::ResetCheckpoint {
            stream: stream("orders"),
            group: group("billing"),
            shard: ShardId(1),
            sequence: None,
        },
        MetaCommand::DeleteGroup {
            stream: stream("orders"),
            group: group("billing"),
        },
    ]
}

/// A journal of the seed commands, sealed chunk by chunk and as raw frames, and a short one with
/// a torn tail.
pub fn meta_journal_seeds() -> Vec<Vec<u8>> {
    let commands = seed_commands();
    let mut chunks = vec![SEAL];
    let mut frames = vec![0];
    for command in &commands {
        let body = codec::encode_command(command);
        chunks.extend_from_slice(&(body.len() as u16).to_le_bytes());
        chunks.extend_from_slice(&body);
        frames.extend_from_slice(&journal::encode_frame(&body));
    }
    let mut torn = frames[..frames.len() - 3].to_vec();
    torn[0] = 0;
    vec![chunks, frames, torn]
}

/// The bytes of a snapshot file around `body`, with its CRC, in the format the store writes.
fn seal_snapshot(body: &[u8]) -> Vec<u8> {
    // Magic and version, as the store writes them.
    let head = snapshot::encode(0, &MetaState::default());
    let mut file = head[..12].to_vec();
    file.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    file.extend_from_slice(&(body.len() as u64).to_le_bytes());
    file.extend_from_slice(body);
    file
}

/// The metadata snapshot. A snapshot file that loads saves and loads again to the same state;
/// a snapshot body that decodes re-encodes to one that decodes the same; one damaged byte of a
/// file that loads makes it refused.
pub fn meta_snapshot(input: &[u8]) {
    let Some((&mode, rest)) = input.split_first() else {
        return;
    };
    if mode & SEAL != 0 {
        if let Ok((generation, state)) = codec::decode_snapshot(rest) {
            let body = codec::encode_snapshot(generation, &state);
            let (g, again) =
                codec::decode_snapshot(&body).expect("a re-encoded snapshot body decodes");
            assert_eq!((g, &again), (generation, &state));
        }
    }
    let file = if mode & SEAL != 0 {
        seal_snapshot(rest)
    } else {
        rest.to_vec()
    };
    let load =
        |file: Vec<u8>| snapshot::load(&MemIo(Arc::new(MemFile(file))), Path::new("snapshot-0"), 0);
    let state = match load(file.clone()) {
        Ok(state) => state,
        Err(MetaError::Corrupt { .. } | MetaError::Decode { .. }) => return,
        Err(other) => panic!("a snapshot fails to load only as corrupt or undecodable: {other}"),
    };
    let again = load(snapshot::encode(0, &state)).expect("a saved snapshot loads");
    assert_eq!(again, state, "a snapshot loads to the state saved");

    let mut damaged = file;
    let at = usize::from(mode) * 13 % damaged.len();
    damaged[at] ^= 0x08;
    assert!(load(damaged).is_err(), "a damaged snapshot is refused");
}

/// The snapshot of the state after the seed commands, as a file and as a body to seal.
pub fn meta_snapshot_seeds() -> Vec<Vec<u8>> {
    let mut state = MetaState::default();
    for command in seed_commands() {
        state.apply(&command).expect("the seed commands apply");
    }
    let body = codec::encode_snapshot(0, &state);
    vec![
        [&[0][..], &snapshot::encode(0, &state)].concat(),
        [&[SEAL][..], &body].concat(),
    ]
}
