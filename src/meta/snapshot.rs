//! The snapshot file: a checked header around the encoded state, written atomically and
//! verified whole on load. The byte table is in the module doc of `meta`.

use std::path::Path;

use super::codec::{decode_snapshot, encode_snapshot};
use super::journal::read_exact_at;
use super::{MetaError, MetaState};
use crate::fsio::Io;

/// First bytes of every snapshot file.
const MAGIC: &[u8; 8] = b"SLMETASN";
/// The snapshot layout this code writes and reads.
const FORMAT_VERSION: u32 = 1;
/// Magic, version, CRC and length.
const HEADER_LEN: u64 = 24;

/// The bytes of a snapshot file holding `state`, starting `generation`.
pub(crate) fn encode(generation: u64, state: &MetaState) -> Vec<u8> {
    let body = encode_snapshot(generation, state);
    let mut file = Vec::with_capacity(HEADER_LEN as usize + body.len());
    file.extend_from_slice(MAGIC);
    file.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    file.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    file.extend_from_slice(&(body.len() as u64).to_le_bytes());
    file.extend_from_slice(&body);
    file
}

/// Loads and verifies the snapshot at `path`, which must start `generation`.
pub(crate) fn load(io: &dyn Io, path: &Path, generation: u64) -> Result<MetaState, MetaError> {
    let io_err = |source| MetaError::Io {
        op: "read snapshot",
        path: path.to_path_buf(),
        source,
    };
    let corrupt = |reason: String| MetaError::Corrupt {
        file: path.to_path_buf(),
        position: 0,
        reason,
    };
    let file = io.open(path, false).map_err(io_err)?;
    let file_len = file.len().map_err(io_err)?;
    if file_len < HEADER_LEN {
        return Err(corrupt(format!(
            "{file_len} bytes, shorter than the header"
        )));
    }
    let mut header = [0u8; HEADER_LEN as usize];
    read_exact_at(file.as_ref(), &mut header, 0).map_err(io_err)?;
    let (magic, rest) = header.split_at(MAGIC.len());
    if magic != MAGIC {
        return Err(corrupt("bad magic".to_string()));
    }
    let version = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
    if version != FORMAT_VERSION {
        return Err(corrupt(format!(
            "format version {version}, expected {FORMAT_VERSION}"
        )));
    }
    let stored_crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
    let mut len_bytes = [0u8; 8];
    len_bytes.copy_from_slice(&rest[8..16]);
    let len = u64::from_le_bytes(len_bytes);
    // Checked against the real file length before allocating.
    if Some(file_len) != HEADER_LEN.checked_add(len) {
        return Err(corrupt(format!(
            "header says {len} body bytes, the file holds {}",
            file_len - HEADER_LEN
        )));
    }
    let len = usize::try_from(len).map_err(|source| {
        corrupt(format!(
            "body of {len} bytes does not fit in memory: {source}"
        ))
    })?;
    let mut body = vec![0u8; len];
    read_exact_at(file.as_ref(), &mut body, HEADER_LEN).map_err(io_err)?;
    let actual_crc = crc32fast::hash(&body);
    if actual_crc != stored_crc {
        return Err(corrupt(format!(
            "CRC mismatch: stored {stored_crc:#010x}, computed {actual_crc:#010x}"
        )));
    }
    let (stored_generation, state) =
        decode_snapshot(&body).map_err(|source| MetaError::Decode {
            file: path.to_path_buf(),
            position: HEADER_LEN,
            source,
        })?;
    if stored_generation != generation {
        return Err(corrupt(format!(
            "holds generation {stored_generation}, its name says {generation}"
        )));
    }
    Ok(state)
}
