//! The one file-I/O seam every file the crate writes goes through, and its real implementation.
//!
//! All durability syscalls of the crate live here: `sync_data` on a file, `fsync` on a directory,
//! and the write-temp → sync → rename → sync-directory dance ([`write_file_atomically`]). Code
//! above this module never calls `std::fs` to create, write, rename or sync a file, so tests can
//! swap [`RealIo`] for a fault-injecting implementation (`fsio::faulty`, built for tests and
//! under the `testing` feature) that produces short writes, `EIO` on sync, `ENOSPC`, and power
//! loss where only synced bytes survive. Both the shard logs (`storage`) and the metadata store
//! (`meta`) use it.
//!
//! The one way around `write_at` is [`Io::open_mapped`]: the sparse index files are written
//! through a memory map (in `storage::index`), so the seam hands out the opened file itself.
//! Those files are hints that are never synced; recovery checks them against the log.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[cfg(any(test, feature = "testing"))]
pub mod faulty;

/// An open file of the seam. Positional I/O only: no cursor, so concurrent readers never race.
pub trait IoFile: Send + Sync + std::fmt::Debug {
    /// Writes all of `buf` at `offset`. On error some prefix of `buf` may have been written.
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Reads up to `buf.len()` bytes at `offset`; returns how many were read (0 at end of file).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Makes every byte written so far durable (`fdatasync`).
    fn sync(&self) -> io::Result<()>;
    /// Cuts or extends the file to `len` bytes. Not durable until [`IoFile::sync`].
    fn truncate(&self, len: u64) -> io::Result<()>;
    /// The file's current length.
    fn len(&self) -> io::Result<u64>;
    /// True when the file holds no bytes.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
}

/// The file system as the durable layers see it.
pub trait Io: Send + Sync + std::fmt::Debug {
    /// Opens `path` for reading and writing, creating it when `create` is set. A created file's
    /// directory entry is durable only after [`Io::sync_dir`] on its parent.
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn IoFile>>;
    /// Opens `path` for reading and writing (creating it when `create` is set) as a plain file,
    /// for a caller that memory-maps it: the sparse index files, whose writes go through the
    /// map and whose contents are never synced. Size changes (`set_len`) are made on the file
    /// returned; nothing written this way may be relied on after a crash.
    fn open_mapped(&self, path: &Path, create: bool) -> io::Result<File>;
    /// Removes a file. Durable after [`Io::sync_dir`] on its parent.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Renames a file. Durable after [`Io::sync_dir`] on the parent.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Creates a directory and its parents, syncing each parent that gained an entry.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Removes a directory tree and syncs its parent.
    fn remove_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Makes the directory's entries (creations, removals, renames) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Lists the names of the entries of a directory (files and directories), unsorted.
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<PathBuf>>;
    /// True when `path` exists.
    fn exists(&self, path: &Path) -> bool;
}

/// Replaces `path` with `contents` so that a crash leaves either the old or the new file whole:
/// write a temporary sibling, sync it, rename it over `path`, sync the directory.
pub fn write_file_atomically(io: &dyn Io, path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    {
        let file = io.open(&tmp, true)?;
        file.truncate(0)?;
        file.write_all_at(contents, 0)?;
        file.sync()?;
    }
    io.rename(&tmp, path)?;
    io.sync_dir(dir)
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealIo;

impl RealIo {
    /// A shareable handle to the real file system.
    pub fn shared() -> Arc<dyn Io> {
        Arc::new(RealIo)
    }
}

#[derive(Debug)]
struct RealFile(File);

impl IoFile for RealFile {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_all_at(buf, offset)
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        loop {
            match self.0.read_at(buf, offset) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }

    fn sync(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn truncate(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
}

impl Io for RealIo {
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn IoFile>> {
        Ok(Arc::new(RealFile(self.open_mapped(path, create)?)))
    }

    fn open_mapped(&self, path: &Path, create: bool) -> io::Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .open(path)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        if dir.is_dir() {
            return Ok(());
        }
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            self.create_dir_all(parent)?;
        }
        match fs::create_dir(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
            Err(e) => return Err(e),
        }
        match dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            Some(parent) => self.sync_dir(parent),
            None => self.sync_dir(Path::new(".")),
        }
    }

    fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        match fs::remove_dir_all(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        }
        match dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            Some(parent) => self.sync_dir(parent),
            None => Ok(()),
        }
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            names.push(PathBuf::from(entry?.file_name()));
        }
        Ok(names)
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_the_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snapshot");
        let io = RealIo;
        write_file_atomically(&io, &path, b"a long first version").unwrap();
        write_file_atomically(&io, &path, b"short").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"short");
        assert!(!dir.path().join("snapshot.tmp").exists());
    }

    #[test]
    fn create_dir_all_makes_nested_directories() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b/c");
        RealIo.create_dir_all(&nested).unwrap();
        assert!(nested.is_dir());
        RealIo.create_dir_all(&nested).unwrap();
    }
}
