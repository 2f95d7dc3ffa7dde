//! A fault-injecting [`Io`] for tests: short writes, `EIO` on sync, `ENOSPC`, and power loss.
//! Built only for the crate's own tests and under the `testing` feature (which the crate's
//! dev-dependency on itself turns on for the integration tests and benches).
//!
//! It wraps the real file system (under a test's temporary directory) and remembers, for every
//! file written through it, how many bytes were synced and whether its directory entry was
//! synced. [`FaultyIo::power_loss`] then does to the files what a power cut does: every file
//! falls back to its synced length (optionally keeping a random, possibly damaged, part of the
//! unsynced tail, as a disk that wrote some pages would), and a file whose creation was never
//! made durable by a directory sync disappears. So a missing `sync` or `sync_dir` loses data
//! in a test exactly as it would on a real machine.
//!
//! The model assumes what the log guarantees: data files are only appended to or cut back,
//! never overwritten below their synced length.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{Io, IoFile, RealIo};

#[derive(Debug, Default, Clone)]
struct Track {
    synced_len: u64,
    entry_synced: bool,
}

#[derive(Debug, Default)]
struct State {
    files: HashMap<PathBuf, Track>,
    fail_syncs: bool,
    /// Syncs of files under this directory fail (one shard's disk going bad).
    fail_syncs_under: Option<PathBuf>,
    space_left: Option<u64>,
    short_write_once: Option<usize>,
    /// Set by [`FaultyIo::cut_power`]: nothing reaches the disk any more.
    power_cut: bool,
}

/// How much of the unsynced tail of each file survives a [`FaultyIo::power_loss`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loss {
    /// Only synced bytes survive.
    UnsyncedGone,
    /// A prefix of the unsynced bytes survives, its length drawn from the seed, and one byte
    /// of that surviving unsynced part (anywhere in it, as a disk that wrote its sectors out
    /// of order leaves them) is flipped when the seed says so: a torn write.
    Torn {
        /// Chooses the surviving length and the flipped byte: one seed replays one outcome, so
        /// a failing proptest case reproduces.
        seed: u64,
    },
}

/// The fault-injecting file system. Clones share state.
#[derive(Debug, Clone, Default)]
pub struct FaultyIo {
    state: Arc<Mutex<State>>,
}

impl FaultyIo {
    /// A fault-free file system until told otherwise.
    pub fn new() -> FaultyIo {
        FaultyIo::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes every sync fail with `EIO` (or succeed again).
    pub fn fail_syncs(&self, fail: bool) {
        self.state().fail_syncs = fail;
    }

    /// Makes syncs of every file under `dir` fail with `EIO`, and only those (`None`: none).
    pub fn fail_syncs_under(&self, dir: Option<&Path>) {
        self.state().fail_syncs_under = dir.map(Path::to_owned);
    }

    /// Limits the bytes files may still grow by (`None`: unlimited). A write past it writes
    /// what fits and fails with `ENOSPC`.
    pub fn set_space_left(&self, bytes: Option<u64>) {
        self.state().space_left = bytes;
    }

    /// The next write stores only its first `keep` bytes and fails.
    pub fn short_write_once(&self, keep: usize) {
        self.state().short_write_once = Some(keep);
    }

    /// The power goes, at this instant: from now on every write, sync, truncation, rename,
    /// removal and file creation fails with `EIO` and changes nothing on disk, while the
    /// server still runs and is then stopped. [`FaultyIo::power_loss`] decides afterwards what
    /// of the unsynced bytes the disk kept.
    pub fn cut_power(&self) {
        self.state().power_cut = true;
    }

    /// Simulates a power cut, then forgets all tracking: what is left is what a reboot finds.
    /// Handles to files opened before it must not be used afterwards. The power is on again.
    pub fn power_loss(&self, loss: Loss) {
        let mut st = self.state();
        st.power_cut = false;
        let mut rng = match loss {
            Loss::UnsyncedGone => 0,
            Loss::Torn { seed } => seed | 1,
        };
        let mut paths: Vec<_> = st.files.keys().cloned().collect();
        paths.sort();
        for path in paths {
            let track = st.files[&path].clone();
            if !track.entry_synced {
                let _ = std::fs::remove_file(&path);
                continue;
            }
            let Ok(len) = std::fs::metadata(&path).map(|m| m.len()) else {
                continue;
            };
            if len <= track.synced_len {
                continue;
            }
            let keep = if rng == 0 {
                0
            } else {
                rng = xorshift(rng);
                rng % (len - track.synced_len + 1)
            };
            let new_len = track.synced_len + keep;
            if let Ok(f) = std::fs::OpenOptions::new().write(true).open(&path) {
                let _ = f.set_len(new_len);
                if keep > 0 && rng % 3 == 0 {
                    use std::os::unix::fs::FileExt;
                    rng = xorshift(rng);
                    let at = track.synced_len + rng % keep;
                    let mut b = [0u8; 1];
                    let _ = f.read_at(&mut b, at);
                    b[0] ^= 0x5a;
                    let _ = f.write_at(&b, at);
                }
            }
        }
        st.files.clear();
    }

    fn track(&self, path: &Path) -> Tracked {
        Tracked {
            state: Arc::clone(&self.state),
            path: path.to_owned(),
        }
    }
}

fn xorshift(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

#[derive(Debug, Clone)]
struct Tracked {
    state: Arc<Mutex<State>>,
    path: PathBuf,
}

#[derive(Debug)]
struct FaultyFile {
    inner: Arc<dyn IoFile>,
    tracked: Tracked,
}

fn enospc() -> io::Error {
    io::Error::from_raw_os_error(28)
}

/// What every change to the disk meets once the power is cut.
fn no_power() -> io::Error {
    io::Error::from_raw_os_error(5)
}

impl IoFile for FaultyFile {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut st = self.tracked.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.power_cut {
            return Err(no_power());
        }
        let len = self.inner.len()?;
        let synced = st.files.get(&self.tracked.path).map_or(0, |t| t.synced_len);
        assert!(
            offset >= synced,
            "the power-loss model needs appends only: write at {offset} below synced length {synced}"
        );
        let mut keep = buf.len();
        let mut err = None;
        if let Some(k) = st.short_write_once.take() {
            keep = keep.min(k);
            err = Some(io::Error::other("injected short write"));
        }
        if let Some(space) = st.space_left {
            let growth = (offset + keep as u64).saturating_sub(len);
            if growth > space {
                keep = keep.min((len + space).saturating_sub(offset) as usize);
                err = Some(enospc());
            }
        }
        if keep > 0 {
            self.inner.write_all_at(&buf[..keep], offset)?;
        }
        if let Some(space) = st.space_left.as_mut() {
            *space = space.saturating_sub((offset + keep as u64).saturating_sub(len));
        }
        match err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.inner.read_at(buf, offset)
    }

    fn sync(&self) -> io::Result<()> {
        let mut st = self.tracked.state.lock().unwrap_or_else(|p| p.into_inner());
        let failing = st
            .fail_syncs_under
            .as_ref()
            .is_some_and(|dir| self.tracked.path.starts_with(dir));
        if st.fail_syncs || st.power_cut || failing {
            return Err(io::Error::from_raw_os_error(5));
        }
        self.inner.sync()?;
        let len = self.inner.len()?;
        st.files
            .entry(self.tracked.path.clone())
            .or_insert_with(|| Track {
                synced_len: 0,
                entry_synced: true,
            })
            .synced_len = len;
        Ok(())
    }

    fn truncate(&self, len: u64) -> io::Result<()> {
        let mut st = self.tracked.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.power_cut {
            return Err(no_power());
        }
        let old = self.inner.len()?;
        self.inner.truncate(len)?;
        if let Some(space) = st.space_left.as_mut() {
            *space += old.saturating_sub(len);
        }
        if let Some(t) = st.files.get_mut(&self.tracked.path) {
            // Cutting below the synced length is itself only durable after a sync; until then
            // a power loss may bring the old bytes back, which recovery must handle anyway.
            t.synced_len = t.synced_len.min(len);
        }
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
}

impl Io for FaultyIo {
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn IoFile>> {
        let existed = path.exists();
        if create && !existed && self.state().power_cut {
            return Err(no_power());
        }
        let inner = RealIo.open(path, create)?;
        let mut st = self.state();
        let len = inner.len()?;
        st.files.entry(path.to_owned()).or_insert(Track {
            // A file that was there before tracking began is taken as durable as it is.
            synced_len: if existed { len } else { 0 },
            entry_synced: existed,
        });
        drop(st);
        Ok(Arc::new(FaultyFile {
            inner,
            tracked: self.track(path),
        }))
    }

    fn open_mapped(&self, path: &Path, create: bool) -> io::Result<std::fs::File> {
        // Not tracked: the index files written through a map are hints that are never synced,
        // and a power cut is not modelled for them (recovery checks them whatever they hold).
        RealIo.open_mapped(path, create)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        if self.state().power_cut {
            return Err(no_power());
        }
        RealIo.remove_file(path)?;
        self.state().files.remove(path);
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        if self.state().power_cut {
            return Err(no_power());
        }
        RealIo.rename(from, to)?;
        let mut st = self.state();
        let mut track = st.files.remove(from).unwrap_or_default();
        // The new name is durable only after the directory is synced.
        track.entry_synced = false;
        st.files.insert(to.to_owned(), track);
        Ok(())
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        if self.state().power_cut {
            return Err(no_power());
        }
        RealIo.create_dir_all(dir)
    }

    fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        if self.state().power_cut {
            return Err(no_power());
        }
        RealIo.remove_dir_all(dir)?;
        self.state().files.retain(|p, _| !p.starts_with(dir));
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.state();
        let failing = st
            .fail_syncs_under
            .as_ref()
            .is_some_and(|d| dir.starts_with(d));
        if st.fail_syncs || st.power_cut || failing {
            return Err(io::Error::from_raw_os_error(5));
        }
        RealIo.sync_dir(dir)?;
        for (path, track) in st.files.iter_mut() {
            if path.parent() == Some(dir) {
                track.entry_synced = true;
            }
        }
        Ok(())
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        RealIo.list_dir(dir)
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsynced_bytes_and_unsynced_entries_vanish_on_power_loss() {
        let dir = tempfile::tempdir().unwrap();
        let io = FaultyIo::new();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        let fa = io.open(&a, true).unwrap();
        fa.write_all_at(b"durable", 0).unwrap();
        fa.sync().unwrap();
        io.sync_dir(dir.path()).unwrap();
        fa.write_all_at(b" and lost", 7).unwrap();
        let fb = io.open(&b, true).unwrap();
        fb.write_all_at(b"synced but never linked", 0).unwrap();
        fb.sync().unwrap();
        io.power_loss(Loss::UnsyncedGone);
        assert_eq!(std::fs::read(&a).unwrap(), b"durable");
        assert!(!b.exists());
    }

    #[test]
    fn after_the_power_is_cut_nothing_changes_on_disk_until_the_loss() {
        let dir = tempfile::tempdir().unwrap();
        let io = FaultyIo::new();
        let path = dir.path().join("f");
        let f = io.open(&path, true).unwrap();
        io.sync_dir(dir.path()).unwrap();
        f.write_all_at(b"synced", 0).unwrap();
        f.sync().unwrap();
        f.write_all_at(b" unsynced", 6).unwrap();
        io.cut_power();
        assert_eq!(
            f.write_all_at(b" late", 15).unwrap_err().raw_os_error(),
            Some(5)
        );
        assert!(f.sync().is_err() && f.truncate(0).is_err());
        assert!(io.open(&dir.path().join("new"), true).is_err());
        assert!(io.rename(&path, &dir.path().join("moved")).is_err());
        assert!(io.remove_file(&path).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"synced unsynced");
        io.power_loss(Loss::UnsyncedGone);
        assert_eq!(std::fs::read(&path).unwrap(), b"synced");
        // The power is back.
        let f = io.open(&path, false).unwrap();
        f.write_all_at(b" again", 6).unwrap();
    }

    #[test]
    fn a_full_disk_writes_what_fits_and_says_enospc() {
        let dir = tempfile::tempdir().unwrap();
        let io = FaultyIo::new();
        let f = io.open(&dir.path().join("f"), true).unwrap();
        io.set_space_left(Some(4));
        let err = f.write_all_at(b"123456", 0).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::StorageFull);
        assert_eq!(f.len().unwrap(), 4);
        f.truncate(0).unwrap();
        f.write_all_at(b"1234", 0).unwrap();
    }

    #[test]
    fn failing_syncs_report_eio_and_leave_the_synced_length() {
        let dir = tempfile::tempdir().unwrap();
        let io = FaultyIo::new();
        let path = dir.path().join("f");
        let f = io.open(&path, true).unwrap();
        io.sync_dir(dir.path()).unwrap();
        f.write_all_at(b"abc", 0).unwrap();
        io.fail_syncs(true);
        assert_eq!(f.sync().unwrap_err().raw_os_error(), Some(5));
        io.power_loss(Loss::UnsyncedGone);
        assert_eq!(std::fs::read(&path).unwrap(), b"");
    }
}
