//! [`MetaStore`]: the metadata state machine made durable — open (load snapshot, replay
//! journals, cut a torn tail), execute (validate, append, sync, apply), and roll snapshots.
//!
//! Files live in one directory: `snapshot-<n>` and `journal-<n>.log`. Generation `n`'s state is
//! `snapshot-<n>` (empty for 0) followed by the commands in `journal-<n>.log`. Rolling to `n+1`:
//!
//! ```text
//!  write snapshot-<n+1> atomically ─▶ create journal-<n+1>.log, sync dir ─▶ remove files < n+1
//! ```
//!
//! A crash between any two steps leaves a directory that opens to the same state: the newest
//! valid snapshot wins, a missing journal after it is created empty, older files are removed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing::{info, warn};

use super::codec::encode_command;
use super::journal::{self, ScanEnd, MAX_COMMAND_BYTES};
use super::{snapshot, MetaCommand, MetaError, MetaState};
use crate::fsio::{write_file_atomically, Io, IoFile};
use crate::storage::error::copy_io_error;

/// Commands journaled after a snapshot before the next one is written. Bounds both replay time
/// on open and journal size; a snapshot rewrites the whole state, so not every few commands.
pub const DEFAULT_SNAPSHOT_EVERY: u64 = 10_000;

const SNAPSHOT_PREFIX: &str = "snapshot-";
const JOURNAL_PREFIX: &str = "journal-";
const JOURNAL_SUFFIX: &str = ".log";
const TMP_SUFFIX: &str = ".tmp";

/// Tuning of a [`MetaStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetaOptions {
    /// Commands journaled after a snapshot before the next snapshot is written (before the next
    /// command is appended). Default [`DEFAULT_SNAPSHOT_EVERY`]; 0 snapshots before every
    /// command.
    pub snapshot_every: u64,
}

impl Default for MetaOptions {
    fn default() -> Self {
        MetaOptions {
            snapshot_every: DEFAULT_SNAPSHOT_EVERY,
        }
    }
}

/// The durable metadata state machine over a directory.
///
/// Blocking: every call may fsync. Callers keep it behind a mutex and call it from
/// `spawn_blocking` or a dedicated thread, never from an async worker.
///
/// Invariant: `state` is exactly what replaying the snapshot of `generation` and every whole
/// frame of the journals up to `journal_len` of `journal-<generation>.log` gives.
#[derive(Debug)]
pub struct MetaStore {
    io: Arc<dyn Io>,
    dir: PathBuf,
    options: MetaOptions,
    state: MetaState,
    /// Generation of the journal being appended to.
    generation: u64,
    journal: Arc<dyn IoFile>,
    /// Offset just past the last whole frame: where the next frame goes.
    journal_len: u64,
    /// Commands journaled since the newest snapshot.
    since_snapshot: u64,
    /// Highest generation number seen in the directory, so a new snapshot never reuses one.
    highest_seen: u64,
    /// Set by a failed write or sync to the error it returned; every later `execute` fails
    /// with [`MetaError::Poisoned`] carrying it.
    poisoned: Option<Arc<MetaError>>,
}

/// The generation numbers found in the directory.
#[derive(Debug, Default)]
struct Listing {
    snapshots: BTreeSet<u64>,
    journals: BTreeSet<u64>,
    temporaries: Vec<PathBuf>,
}

impl Listing {
    fn read(io: &dyn Io, dir: &Path) -> Result<Listing, MetaError> {
        let names = io.list_dir(dir).map_err(|source| MetaError::Io {
            op: "list directory",
            path: dir.to_path_buf(),
            source,
        })?;
        let mut listing = Listing::default();
        for name in names {
            let Some(name) = name.to_str() else { continue };
            if let Some(n) = parse_generation(name, SNAPSHOT_PREFIX, "") {
                listing.snapshots.insert(n);
            } else if let Some(n) = parse_generation(name, JOURNAL_PREFIX, JOURNAL_SUFFIX) {
                listing.journals.insert(n);
            } else if name.starts_with(SNAPSHOT_PREFIX) && name.ends_with(TMP_SUFFIX) {
                listing.temporaries.push(dir.join(name));
            }
        }
        Ok(listing)
    }

    fn highest(&self) -> u64 {
        let snapshots = self.snapshots.last().copied().unwrap_or(0);
        let journals = self.journals.last().copied().unwrap_or(0);
        snapshots.max(journals)
    }

    /// The first journal missing from the chain that replaying from `base` needs, if any.
    /// `journal-<base>` itself may be missing only when no later journal exists (a crash right
    /// after its snapshot was written); it is then created empty.
    fn missing_journal(&self, base: u64) -> Option<u64> {
        let last = self.journals.range(base + 1..).next_back().copied()?;
        (base..=last).find(|g| !self.journals.contains(g))
    }
}

/// `prefix<n>suffix` with `n` in canonical decimal (no sign, no leading zeros).
fn parse_generation(name: &str, prefix: &str, suffix: &str) -> Option<u64> {
    let digits = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
    let n: u64 = digits.parse().ok()?;
    (n.to_string() == digits).then_some(n)
}

fn snapshot_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("{SNAPSHOT_PREFIX}{generation}"))
}

fn journal_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("{JOURNAL_PREFIX}{generation}{JOURNAL_SUFFIX}"))
}

impl MetaStore {
    /// Opens (creating if needed) the store in `dir` with default options.
    pub fn open(io: Arc<dyn Io>, dir: &Path) -> Result<MetaStore, MetaError> {
        MetaStore::open_with(io, dir, MetaOptions::default())
    }

    /// Opens (creating if needed) the store in `dir`: loads the newest valid snapshot, replays
    /// the journals after it, and cuts a torn tail off the last journal (synced, and logged with
    /// `warn!(truncated_bytes)`). Corruption anywhere else is an error, never skipped.
    pub fn open_with(
        io: Arc<dyn Io>,
        dir: &Path,
        options: MetaOptions,
    ) -> Result<MetaStore, MetaError> {
        io.create_dir_all(dir).map_err(|source| MetaError::Io {
            op: "create directory",
            path: dir.to_path_buf(),
            source,
        })?;
        let listing = Listing::read(io.as_ref(), dir)?;
        for tmp in &listing.temporaries {
            // A snapshot write that a crash interrupted before its rename; never part of state.
            if let Err(error) = io.remove_file(tmp) {
                warn!(file = %tmp.display(), %error, "could not remove a temporary snapshot");
            }
        }

        let (base, mut state) = choose_base(io.as_ref(), dir, &listing)?;
        let last = listing.journals.last().copied().unwrap_or(base).max(base);
        let mut replayed = 0u64;
        let mut active: Option<(Arc<dyn IoFile>, u64)> = None;
        for generation in base..=last {
            let path = journal_path(dir, generation);
            let is_last = generation == last;
            let created = !listing.journals.contains(&generation);
            let file = io.open(&path, created).map_err(|source| MetaError::Io {
                op: "open journal",
                path: path.clone(),
                source,
            })?;
            if created {
                io.sync_dir(dir).map_err(|source| MetaError::Io {
                    op: "sync directory after creating",
                    path: path.clone(),
                    source,
                })?;
            }
            let scan = journal::scan(file.as_ref(), &path, |position, cmd| {
                state.apply(&cmd).map_err(|source| MetaError::Replay {
                    file: path.clone(),
                    position,
                    source: Box::new(source),
                })
            })?;
            replayed += scan.entries;
            if let ScanEnd::Torn { reason } = scan.end {
                if !is_last {
                    // Only the newest journal is written to; an older one was whole when the
                    // next generation started.
                    return Err(MetaError::Corrupt {
                        file: path,
                        position: scan.valid_len,
                        reason,
                    });
                }
                file.truncate(scan.valid_len)
                    .and_then(|()| file.sync())
                    .map_err(|source| MetaError::Io {
                        op: "cut torn tail of",
                        path: path.clone(),
                        source,
                    })?;
                warn!(
                    truncated_bytes = scan.file_len - scan.valid_len,
                    file = %path.display(),
                    position = scan.valid_len,
                    %reason,
                    "cut a torn tail off the metadata journal"
                );
            }
            if is_last {
                active = Some((file, scan.valid_len));
            }
        }
        // `base..=last` is never empty, so the loop set `active` on its last turn.
        let Some((journal, journal_len)) = active else {
            return Err(MetaError::Corrupt {
                file: journal_path(dir, last),
                position: 0,
                reason: "no journal to append to".to_string(),
            });
        };

        let store = MetaStore {
            io,
            dir: dir.to_path_buf(),
            options,
            state,
            generation: last,
            journal,
            journal_len,
            since_snapshot: replayed,
            highest_seen: listing.highest().max(last),
            poisoned: None,
        };
        store.remove_generations_below(base);
        info!(
            dir = %store.dir.display(),
            snapshot = base,
            generation = store.generation,
            replayed,
            streams = store.state.streams.len(),
            groups = store.state.groups.len(),
            "opened the metadata store"
        );
        Ok(store)
    }

    /// The state after every command executed so far.
    pub fn state(&self) -> &MetaState {
        &self.state
    }

    #[cfg(test)]
    /// The directory the store lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    #[cfg(test)]
    /// True after a write or sync failure: the store refuses commands until reopened.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.is_some()
    }

    /// Fails when the store is poisoned, naming what poisoned it.
    fn check_poisoned(&self) -> Result<(), MetaError> {
        match &self.poisoned {
            Some(cause) => Err(MetaError::Poisoned {
                cause: Arc::clone(cause),
            }),
            None => Ok(()),
        }
    }

    /// Validates `cmd` against the state, appends it to the journal, syncs, and applies it.
    /// When this returns `Ok`, the command is durable. A rejected command (see
    /// [`MetaError::is_rejection`]) never reaches the journal. A failed write or sync poisons
    /// the store: this and every later call fails, because a failed fsync cannot be retried
    /// safely.
    pub fn execute(&mut self, cmd: MetaCommand) -> Result<(), MetaError> {
        self.check_poisoned()?;
        self.state.validate(&cmd)?;
        let body = encode_command(&cmd);
        if body.len() > MAX_COMMAND_BYTES as usize {
            return Err(MetaError::CommandTooLarge {
                bytes: body.len(),
                max: MAX_COMMAND_BYTES,
            });
        }
        if self.since_snapshot >= self.options.snapshot_every {
            self.snapshot_now()?;
        }
        self.append_and_sync(&journal::encode_frame(&body), 1)?;
        // Validated above against this very state, so it applies; if it ever did not, memory
        // and journal would disagree, and only a restart (replaying the journal) can fix that.
        if let Err(error) = self.state.apply(&cmd) {
            let cause = Arc::new(error);
            self.poisoned = Some(Arc::clone(&cause));
            return Err(MetaError::Poisoned { cause });
        }
        Ok(())
    }

    /// Like [`MetaStore::execute`] for several commands at once, with one sync for all of them
    /// (group commit). Only queue commands ([`MetaCommand::is_queue_command`]) may be batched:
    /// none changes what another is checked against, so each is validated against the state
    /// before the batch. A rejected one is skipped; the others are durable when this returns
    /// `Ok`. Returns
    /// each command's own outcome, in order; a failed write or sync fails them all and
    /// poisons the store.
    pub fn execute_batch(
        &mut self,
        cmds: Vec<MetaCommand>,
    ) -> Result<Vec<Result<(), MetaError>>, MetaError> {
        self.check_poisoned()?;
        if self.since_snapshot >= self.options.snapshot_every {
            self.snapshot_now()?;
        }
        let mut outcomes = Vec::with_capacity(cmds.len());
        let mut accepted = Vec::with_capacity(cmds.len());
        let mut frames = Vec::new();
        for cmd in cmds {
            let checked = self.state.validate(&cmd).and_then(|()| {
                let body = encode_command(&cmd);
                if body.len() > MAX_COMMAND_BYTES as usize {
                    return Err(MetaError::CommandTooLarge {
                        bytes: body.len(),
                        max: MAX_COMMAND_BYTES,
                    });
                }
                Ok(body)
            });
            match checked {
                Ok(body) => {
                    frames.extend_from_slice(&journal::encode_frame(&body));
                    accepted.push(cmd);
                    outcomes.push(Ok(()));
                }
                Err(e) => outcomes.push(Err(e)),
            }
        }
        if accepted.is_empty() {
            return Ok(outcomes);
        }
        debug_assert!(accepted.iter().all(MetaCommand::is_queue_command));
        self.append_and_sync(&frames, accepted.len() as u64)?;
        for cmd in &accepted {
            if let Err(error) = self.state.apply(cmd) {
                let cause = Arc::new(error);
                self.poisoned = Some(Arc::clone(&cause));
                return Err(MetaError::Poisoned { cause });
            }
        }
        Ok(outcomes)
    }

    /// Appends whole frames holding `commands` commands to the journal and syncs it; a failure
    /// poisons the store.
    fn append_and_sync(&mut self, frames: &[u8], commands: u64) -> Result<(), MetaError> {
        if let Err(source) = self.journal.write_all_at(frames, self.journal_len) {
            return Err(self.poison(
                "append to journal",
                journal_path(&self.dir, self.generation),
                source,
            ));
        }
        if let Err(source) = self.journal.sync() {
            return Err(self.poison(
                "sync journal",
                journal_path(&self.dir, self.generation),
                source,
            ));
        }
        self.journal_len += frames.len() as u64;
        self.since_snapshot += commands;
        Ok(())
    }

    /// Writes a snapshot of the current state now and starts a new journal generation, removing
    /// the older files. `execute` calls it every [`MetaOptions::snapshot_every`] commands.
    pub fn snapshot_now(&mut self) -> Result<(), MetaError> {
        self.check_poisoned()?;
        let next = self.generation.max(self.highest_seen) + 1;
        let snapshot_file = snapshot_path(&self.dir, next);
        let bytes = snapshot::encode(next, &self.state);
        if let Err(source) = write_file_atomically(self.io.as_ref(), &snapshot_file, &bytes) {
            return Err(self.poison("write snapshot", snapshot_file, source));
        }
        let journal_file = journal_path(&self.dir, next);
        let journal = match self.io.open(&journal_file, true) {
            Ok(file) => file,
            Err(source) => return Err(self.poison("create journal", journal_file, source)),
        };
        // The name is new, so the file should be empty; make sure, durably.
        if let Err(source) = journal.truncate(0).and_then(|()| journal.sync()) {
            return Err(self.poison("empty new journal", journal_file, source));
        }
        if let Err(source) = self.io.sync_dir(&self.dir) {
            return Err(self.poison("sync directory after creating", journal_file, source));
        }
        self.journal = journal;
        self.journal_len = 0;
        self.generation = next;
        self.highest_seen = next;
        self.since_snapshot = 0;
        self.remove_generations_below(next);
        Ok(())
    }

    fn poison(&mut self, op: &'static str, path: PathBuf, source: std::io::Error) -> MetaError {
        tracing::error!(op, path = %path.display(), error = %source, "metadata store poisoned");
        self.poisoned = Some(Arc::new(MetaError::Io {
            op,
            path: path.clone(),
            source: copy_io_error(&source),
        }));
        MetaError::Io { op, path, source }
    }

    /// Removes snapshots and journals of generations below `generation`. They are no longer
    /// needed; a failure leaves garbage the next open removes, so it is logged, not returned.
    fn remove_generations_below(&self, generation: u64) {
        let listing = match Listing::read(self.io.as_ref(), &self.dir) {
            Ok(listing) => listing,
            Err(error) => {
                warn!(%error, "could not list old metadata files");
                return;
            }
        };
        let stale = listing
            .snapshots
            .range(..generation)
            .map(|&g| snapshot_path(&self.dir, g))
            .chain(
                listing
                    .journals
                    .range(..generation)
                    .map(|&g| journal_path(&self.dir, g)),
            )
            .collect::<Vec<_>>();
        if stale.is_empty() {
            return;
        }
        for path in &stale {
            if let Err(error) = self.io.remove_file(path) {
                warn!(file = %path.display(), %error, "could not remove an old metadata file");
            }
        }
        if let Err(error) = self.io.sync_dir(&self.dir) {
            warn!(dir = %self.dir.display(), %error, "could not sync the metadata directory");
        }
    }
}

/// Picks the generation to start replay from and its state: the newest snapshot that loads and
/// has every journal after it; else generation 0 (empty state) when its whole journal chain is
/// there. Returns the first error met when nothing works, so a lost history is never silently
/// replaced by an older or empty state.
fn choose_base(io: &dyn Io, dir: &Path, listing: &Listing) -> Result<(u64, MetaState), MetaError> {
    let missing = |base| MetaError::Corrupt {
        file: journal_path(dir, base),
        position: 0,
        reason: format!("journal missing; generations after {base} cannot be replayed without it"),
    };
    let mut first_error = None;
    for &generation in listing.snapshots.iter().rev() {
        let path = snapshot_path(dir, generation);
        match snapshot::load(io, &path, generation) {
            Ok(state) => match listing.missing_journal(generation) {
                None => return Ok((generation, state)),
                Some(gap) => {
                    first_error.get_or_insert(missing(gap));
                }
            },
            Err(error) => {
                warn!(file = %path.display(), %error, "skipping a metadata snapshot that does not load");
                first_error.get_or_insert(error);
            }
        }
    }
    let from_scratch = if listing.snapshots.is_empty() && listing.journals.is_empty() {
        true
    } else if listing.journals.contains(&0) {
        match listing.missing_journal(0) {
            None => true,
            Some(gap) => {
                first_error.get_or_insert(missing(gap));
                false
            }
        }
    } else {
        false
    };
    if from_scratch {
        if let Some(error) = &first_error {
            warn!(%error, "replaying the metadata journals from the beginning instead");
        }
        return Ok((0, MetaState::default()));
    }
    Err(first_error.unwrap_or_else(|| missing(0)))
}
