//! The journal's frame (`len u32 LE | crc32 u32 LE | body`) and the scan that replays a journal
//! file, telling a torn tail (cut off by a crash) from corruption before the end.
//! The byte table is in the module doc of `meta`.

use std::io;
use std::path::Path;

use super::codec::decode_command;
use super::{MetaCommand, MetaError};
use crate::fsio::IoFile;

/// Largest body a journal frame may hold. Checked before allocating on read and before writing,
/// so a damaged length field can never make recovery allocate gigabytes. A stream descriptor of
/// 10,000 shards encodes to well under 1 MiB. Part of the file format: raising it is compatible,
/// lowering it is not.
pub const MAX_COMMAND_BYTES: u32 = 16 * 1024 * 1024;

/// Bytes before a frame's body: length and CRC.
pub(crate) const FRAME_HEADER_LEN: u64 = 8;

/// Chunk size for scanning a tail for zeros.
const ZERO_SCAN_CHUNK: usize = 64 * 1024;

/// Frames `body` for appending. The caller has checked `body.len() <= MAX_COMMAND_BYTES`.
pub(crate) fn encode_frame(body: &[u8]) -> Vec<u8> {
    debug_assert!(!body.is_empty() && body.len() <= MAX_COMMAND_BYTES as usize);
    let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
    let mut frame = Vec::with_capacity(FRAME_HEADER_LEN as usize + body.len());
    frame.extend_from_slice(&len.to_le_bytes());
    frame.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    frame.extend_from_slice(body);
    frame
}

/// How a journal scan ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ScanEnd {
    /// Every byte belongs to a whole, valid frame.
    Clean,
    /// The bytes from `valid_len` on are a torn write: a bad frame with nothing valid after it.
    Torn {
        /// What is wrong with the first bad frame.
        reason: String,
    },
}

/// The result of scanning one journal file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scan {
    /// Length of the prefix made of whole, valid frames.
    pub valid_len: u64,
    /// The file's length when scanned.
    pub file_len: u64,
    /// Number of whole frames.
    pub entries: u64,
    /// Whether a torn tail follows the valid prefix.
    pub end: ScanEnd,
}

/// Reads every frame of `file` in order, handing each command and its frame's offset to `each`.
///
/// A bad frame (short header, length 0 or above [`MAX_COMMAND_BYTES`], running past the end of
/// the file, or a CRC mismatch) ends the scan as [`ScanEnd::Torn`] when it is the file's last
/// frame or only zeros follow it; anywhere else it is [`MetaError::Corrupt`]. A frame whose CRC
/// holds but whose body does not decode is [`MetaError::Decode`] wherever it is: those bytes
/// were written as they are.
pub(crate) fn scan(
    file: &dyn IoFile,
    path: &Path,
    mut each: impl FnMut(u64, MetaCommand) -> Result<(), MetaError>,
) -> Result<Scan, MetaError> {
    let io_err = |source| MetaError::Io {
        op: "read journal",
        path: path.to_path_buf(),
        source,
    };
    let file_len = file.len().map_err(io_err)?;
    let mut position = 0u64;
    let mut entries = 0u64;
    let mut body = Vec::new();
    while position < file_len {
        let remaining = file_len - position;
        let bad = |reason: String, frame_end: u64| -> Result<Scan, MetaError> {
            let torn =
                frame_end >= file_len || zeros_from(file, position, file_len).map_err(io_err)?;
            if torn {
                Ok(Scan {
                    valid_len: position,
                    file_len,
                    entries,
                    end: ScanEnd::Torn { reason },
                })
            } else {
                Err(MetaError::Corrupt {
                    file: path.to_path_buf(),
                    position,
                    reason,
                })
            }
        };
        if remaining < FRAME_HEADER_LEN {
            return bad(
                format!("{remaining} bytes, less than a frame header"),
                file_len,
            );
        }
        let mut header = [0u8; FRAME_HEADER_LEN as usize];
        read_exact_at(file, &mut header, position).map_err(io_err)?;
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let stored_crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let frame_end = position + FRAME_HEADER_LEN + u64::from(len);
        if len == 0 || len > MAX_COMMAND_BYTES {
            return bad(
                format!("frame length {len} outside [1, {MAX_COMMAND_BYTES}]"),
                frame_end,
            );
        }
        if frame_end > file_len {
            return bad(
                format!("frame of {len} bytes runs past the end of the file"),
                frame_end,
            );
        }
        // The length is bounded by MAX_COMMAND_BYTES and by the file: safe to allocate.
        body.resize(len as usize, 0);
        read_exact_at(file, &mut body, position + FRAME_HEADER_LEN).map_err(io_err)?;
        let actual_crc = crc32fast::hash(&body);
        if actual_crc != stored_crc {
            return bad(
                format!("CRC mismatch: stored {stored_crc:#010x}, computed {actual_crc:#010x}"),
                frame_end,
            );
        }
        let command = decode_command(&body).map_err(|source| MetaError::Decode {
            file: path.to_path_buf(),
            position,
            source,
        })?;
        each(position, command)?;
        entries += 1;
        position = frame_end;
    }
    Ok(Scan {
        valid_len: position,
        file_len,
        entries,
        end: ScanEnd::Clean,
    })
}

/// Fills `buf` from `offset`, failing with `UnexpectedEof` if the file ends first.
pub(crate) fn read_exact_at(file: &dyn IoFile, buf: &mut [u8], offset: u64) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = file.read_at(&mut buf[filled..], offset + filled as u64)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("file ended {} bytes early", buf.len() - filled),
            ));
        }
        filled += n;
    }
    Ok(())
}

/// True when every byte from `from` to `file_len` is zero: space a file system allocated for a
/// write that never landed.
fn zeros_from(file: &dyn IoFile, from: u64, file_len: u64) -> io::Result<bool> {
    let mut chunk = vec![0u8; ZERO_SCAN_CHUNK];
    let mut position = from;
    while position < file_len {
        let want = usize::try_from(file_len - position)
            .unwrap_or(ZERO_SCAN_CHUNK)
            .min(ZERO_SCAN_CHUNK);
        read_exact_at(file, &mut chunk[..want], position)?;
        if chunk[..want].iter().any(|&b| b != 0) {
            return Ok(false);
        }
        position += want as u64;
    }
    Ok(true)
}
