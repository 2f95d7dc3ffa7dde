//! Recovery on open: finds a shard's segments, checks the ones a crash may have damaged,
//! cuts a torn or corrupt tail, rebuilds missing or damaged indexes (see `Segment::open`), and
//! keeps the recovery point, the file naming the first segment sealed without a sync.
//!
//! ```text
//!  list *.log ─▶ sort by base ─▶ for each segment:
//!     last one, or at/after the recovery point? ── yes ─▶ scan whole: cut at the first bad batch
//!                                               └─ no ──▶ trust its synced bytes; check indexes
//!     an unsynced segment that lost its tail ─▶ the log ends there; later segments are removed
//!  recovery point set ─▶ sync what survived ─▶ remove the recovery point
//! ```
//!
//! Recovery never trusts a file's length or an index: the log ends at its last whole batch.

use std::path::Path;
use std::sync::Arc;

use super::error::StorageError;
use super::log::LogConfig;
use super::segment::{self, Segment};
use super::sequence::SequenceNumber;
use crate::fsio::{write_file_atomically, Io};

/// File in a shard's directory naming (by base sequence) the first segment that was sealed
/// without a sync: recovery checks it and every later segment whole. Absent when every sealed
/// segment is synced.
pub const RECOVERY_POINT_FILE: &str = "recovery-point";

/// Opens every segment of the shard in `dir` (creating the directory, and a first empty
/// segment when there is none), recovering each; returns them ordered by base sequence, the
/// active one last.
pub(super) fn recover(
    io: &dyn Io,
    dir: &Path,
    config: &LogConfig,
) -> Result<Vec<Arc<Segment>>, StorageError> {
    io.create_dir_all(dir)
        .map_err(|e| StorageError::io("create shard directory", dir, e))?;
    let mut bases: Vec<SequenceNumber> = io
        .list_dir(dir)
        .map_err(|e| StorageError::io("list shard directory", dir, e))?
        .iter()
        .filter_map(|n| n.to_str().and_then(segment::parse_log_name))
        .collect();
    bases.sort_unstable();
    let capacity = config.index_capacity();
    let recovery_point = read_recovery_point(io, dir)?;
    let mut segments = Vec::with_capacity(bases.len().max(1));
    for (i, &base) in bases.iter().enumerate() {
        let last = i + 1 == bases.len();
        // A segment sealed without a sync is checked whole, like the active one: a crash
        // may have cut or garbled its tail.
        let unsynced = recovery_point.is_some_and(|rp| base >= rp);
        let (seg, cut) = Segment::open(
            io,
            dir,
            base,
            last || unsynced,
            capacity,
            config.index_interval_bytes,
        )?;
        let next_base = bases.get(i + 1).copied();
        if unsynced && !last && (cut.is_some() || next_base != Some(seg.next_sequence())) {
            // Records after a hole cannot be numbered on: the log ends at its last whole
            // batch, and the segments after it go.
            for &later in &bases[i + 1..] {
                segment::remove_files(io, dir, later)?;
            }
            tracing::warn!(
                segment = %seg.path().display(),
                ends_at = seg.next_sequence().get(),
                removed_segments = bases.len() - i - 1,
                "a segment sealed without a sync lost its tail in a crash; the log now ends there"
            );
            segments.push(Arc::new(seg));
            break;
        }
        if unsynced && !last {
            seg.seal();
        }
        segments.push(Arc::new(seg));
    }
    if let Some(rp) = recovery_point {
        // What survived is made durable before the mark that says to check it goes.
        for seg in segments.iter().filter(|s| s.base() >= rp) {
            seg.sync()
                .map_err(|e| StorageError::io("sync segment", seg.path(), e))?;
        }
        clear_recovery_point(io, dir).map_err(|e| {
            StorageError::io("remove recovery point", dir.join(RECOVERY_POINT_FILE), e)
        })?;
    }
    for pair in segments.windows(2) {
        if pair[0].next_sequence() != pair[1].base() {
            tracing::error!(
                segment = %pair[0].path().display(),
                ends_at = pair[0].next_sequence().get(),
                next_base = pair[1].base().get(),
                "segments do not meet: the records between them are missing"
            );
        }
    }
    if segments.is_empty() {
        let seg = Segment::create(io, dir, SequenceNumber::ZERO, capacity)?;
        io.sync_dir(dir)
            .map_err(|e| StorageError::io("sync shard directory", dir, e))?;
        segments.push(Arc::new(seg));
    }
    Ok(segments)
}

/// Makes `base` the recovery point of `dir`, durably: 8 bytes little-endian, then their CRC32.
pub(super) fn write_recovery_point(
    io: &dyn Io,
    dir: &Path,
    base: SequenceNumber,
) -> std::io::Result<()> {
    let raw = base.get().to_le_bytes();
    let mut bytes = raw.to_vec();
    bytes.extend_from_slice(&crc32fast::hash(&raw).to_le_bytes());
    write_file_atomically(io, &dir.join(RECOVERY_POINT_FILE), &bytes)
}

/// The recovery point of `dir`: `None` when there is none; 0 (check every segment) when the
/// file cannot be trusted.
fn read_recovery_point(io: &dyn Io, dir: &Path) -> Result<Option<SequenceNumber>, StorageError> {
    let path = dir.join(RECOVERY_POINT_FILE);
    if !io.exists(&path) {
        return Ok(None);
    }
    let file = io
        .open(&path, false)
        .map_err(|e| StorageError::io("open recovery point", &path, e))?;
    let mut raw = [0u8; 12];
    let n = file
        .read_at(&mut raw, 0)
        .map_err(|e| StorageError::io("read recovery point", &path, e))?;
    let (base, crc) = raw.split_at(8);
    if n == raw.len() && crc32fast::hash(base).to_le_bytes() == crc {
        let mut b = [0u8; 8];
        b.copy_from_slice(base);
        return Ok(Some(SequenceNumber::new(u64::from_le_bytes(b))));
    }
    tracing::warn!(path = %path.display(), "unreadable recovery point: checking every segment");
    Ok(Some(SequenceNumber::ZERO))
}

/// Removes the recovery point of `dir`, durably.
pub(super) fn clear_recovery_point(io: &dyn Io, dir: &Path) -> std::io::Result<()> {
    match io.remove_file(&dir.join(RECOVERY_POINT_FILE)) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    io.sync_dir(dir)
}
