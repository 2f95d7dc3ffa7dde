//! The on-disk batch frame: a header (base sequence, count, timestamps, length, CRCs), then the
//! records. Encode and decode, nothing else.
//!
//! A frame, all integers little-endian:
//!
//! | offset | size | field                                                        |
//! |-------:|-----:|--------------------------------------------------------------|
//! |      0 |    4 | magic `SLG1`                                                 |
//! |      4 |    1 | format version (2; version 1 frames, which cannot carry attributes, are read too) |
//! |      5 |    3 | reserved, zero                                               |
//! |      8 |    8 | base sequence number (first record's)                        |
//! |     16 |    4 | record count (≥ 1)                                           |
//! |     20 |    8 | first arrival timestamp, ms since the Unix epoch             |
//! |     28 |    8 | last arrival timestamp, ms since the Unix epoch              |
//! |     36 |    4 | payload length in bytes                                      |
//! |     40 |    4 | payload CRC32 (crc32fast over the payload)                   |
//! |     44 |    4 | header CRC32 over bytes 0..44, so it covers the payload CRC  |
//! |     48 |    n | payload: `count` records                                     |
//!
//! Two CRCs instead of one let a reader trust a header whose payload is damaged: it can step over
//! exactly that batch (its length and sequence range are intact) and keep serving the others.
//!
//! A record inside the payload:
//!
//! | size        | field                                                     |
//! |------------:|-----------------------------------------------------------|
//! |           1 | flags: bit 0 explicit hash key, bit 1 message group id, bit 2 deduplication id, bit 3 attributes (version 2 only) |
//! |           2 | partition key length `k`                                  |
//! |           4 | data length `d`                                           |
//! |     0 or 16 | explicit hash key (u128)                                  |
//! | 0 or 1 + g  | message group id length `g`, then its bytes               |
//! | 0 or 1 + i  | deduplication id length `i`, then its bytes               |
//! | 0 or 4 + a  | attributes block length `a` (u32), then the block (`storage::attributes`) |
//! |           k | partition key (UTF-8)                                     |
//! |           d | data                                                      |

use bytes::Bytes;
use thiserror::Error;

use super::attributes::Attributes;
use super::sequence::SequenceNumber;
use super::time::Timestamp;

/// First four bytes of every frame.
pub const MAGIC: [u8; 4] = *b"SLG1";
/// The frame format this code writes.
pub const FORMAT_VERSION: u8 = 2;
/// The first format, read still: the same layout without attributes.
pub const FORMAT_VERSION_1: u8 = 1;
/// Bytes of a frame header.
pub const HEADER_LEN: usize = 48;
/// Largest payload a frame may declare; checked before any allocation.
pub const MAX_PAYLOAD_LEN: usize = 64 * 1024 * 1024;
/// Largest partition key, in bytes.
pub const MAX_PARTITION_KEY_LEN: usize = u16::MAX as usize;
/// Most bytes a frame can hold for a message group id or deduplication id (its length is one
/// byte): the format's capacity, not the API's limit (`fifo::MAX_ID_LEN`, which must fit).
pub const MAX_FRAME_ID_BYTES: usize = u8::MAX as usize;

const FLAG_HASH_KEY: u8 = 1;
const FLAG_GROUP: u8 = 1 << 1;
const FLAG_DEDUP: u8 = 1 << 2;
const FLAG_ATTRIBUTES: u8 = 1 << 3;
const RECORD_FIXED_LEN: usize = 7;

/// A record as a producer hands it in, borrowed for encoding.
#[derive(Debug, Clone, Copy, Default)]
pub struct RecordRef<'a> {
    /// The key the producer routed the record by; stored so consumers can read it back.
    pub partition_key: &'a str,
    /// The record's payload, opaque to the log.
    pub data: &'a [u8],
    /// The hash key that overrode the partition key's hash when routing, if the producer gave
    /// one; stored so a reader sees where the record was routed and why.
    pub explicit_hash_key: Option<u128>,
    /// The FIFO message group the record belongs to, if any.
    pub message_group_id: Option<&'a str>,
    /// The producer's deduplication id, if any: stored so the dedup window can be rebuilt
    /// from the log after a restart.
    pub deduplication_id: Option<&'a str>,
    /// The record's message attributes, canonically encoded; empty when it has none.
    pub attributes: &'a [u8],
}

/// A record as stored, with the sequence number and arrival time the log gave it. The byte
/// fields are slices of the bytes the batch was read from (a pooled read buffer, or the
/// mapping of a sealed segment): no copy per record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// The record's position in its shard: its batch's base sequence plus its place in it.
    pub sequence: SequenceNumber,
    /// When its batch arrived (every record of a batch shares it): what time seeks, lag and
    /// retention measure.
    pub timestamp_ms: Timestamp,
    /// The partition key, checked to be UTF-8 when decoded.
    pub partition_key: Bytes,
    /// The payload as the producer gave it.
    pub data: Bytes,
    /// The explicit hash key the record was routed by, if it had one.
    pub explicit_hash_key: Option<u128>,
    /// The FIFO message group id, checked to be UTF-8, if it had one.
    pub message_group_id: Option<Bytes>,
    /// The deduplication id, checked to be UTF-8, if it had one.
    pub deduplication_id: Option<Bytes>,
    /// The message attributes, checked to be a canonical block; empty when it had none.
    pub attributes: Attributes,
}

impl StoredRecord {
    /// Bytes this record occupies in a frame payload.
    pub fn encoded_len(&self) -> usize {
        RECORD_FIXED_LEN
            + self.explicit_hash_key.map_or(0, |_| 16)
            + self.message_group_id.as_ref().map_or(0, |g| 1 + g.len())
            + self.deduplication_id.as_ref().map_or(0, |d| 1 + d.len())
            + attributes_len(self.attributes.as_bytes())
            + self.partition_key.len()
            + self.data.len()
    }
}

/// Why a record could not be encoded.
#[derive(Debug, Error, PartialEq, Eq, Clone)]
pub enum EncodeError {
    /// One field of a record is longer than its length prefix can say.
    #[error("{field} is {len} bytes, more than the {max} a frame can hold")]
    FieldTooLong {
        /// The field, by its [`RecordRef`] name, so the request error can point at it.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The most the frame format allows for it.
        max: usize,
    },
    /// The batch as a whole would pass [`MAX_PAYLOAD_LEN`]: it must be split.
    #[error("batch payload would be {len} bytes, more than the {max} a frame can hold")]
    BatchTooLarge {
        /// The payload's length with the refused record.
        len: usize,
        /// [`MAX_PAYLOAD_LEN`].
        max: usize,
    },
}

/// Why bytes could not be decoded as a frame. `Torn` means the bytes end early (a write that
/// did not finish); the others mean the bytes are there but wrong.
#[derive(Debug, Error, PartialEq, Eq, Clone)]
pub enum FrameError {
    /// The bytes end before the frame does: at the tail of the active segment, a write that
    /// did not finish (recovery cuts it); anywhere else, damage.
    #[error("frame is torn: {needed} bytes needed, {available} available")]
    Torn {
        /// Bytes the header (or the frame it declares) needs.
        needed: usize,
        /// Bytes there were.
        available: usize,
    },
    /// The first bytes are not a frame of this format: damage, or not a frame boundary.
    #[error("bad magic or version")]
    BadMagic,
    /// The header's bytes do not match its CRC: none of its fields, the length included, can
    /// be trusted, so the reader cannot step over the batch.
    #[error("header CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    HeaderCrc {
        /// The CRC the header carries.
        stored: u32,
        /// The CRC of the bytes read.
        computed: u32,
    },
    /// The payload does not match the intact header's CRC: the batch is damaged, but its length
    /// and sequence range are known, so the batches around it stay readable.
    #[error("payload CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    PayloadCrc {
        /// The CRC the header carries.
        stored: u32,
        /// The CRC of the payload read.
        computed: u32,
    },
    /// The header declares a payload larger than any frame may have: refused before
    /// allocating for it.
    #[error("header declares {len} payload bytes, more than the {max} allowed")]
    PayloadTooLarge {
        /// The declared payload length.
        len: usize,
        /// [`MAX_PAYLOAD_LEN`].
        max: usize,
    },
    /// The payload passed its CRC but does not decode into the records the header declares
    /// (or a key or id is not UTF-8): written wrong, never served.
    #[error("payload does not hold the {count} records the header declares: {reason}")]
    Malformed {
        /// The record count the header declares.
        count: u32,
        /// What did not fit.
        reason: &'static str,
    },
}

/// A decoded, CRC-checked frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// The frame format the batch was written in: what its records may hold.
    pub version: u8,
    /// Sequence number of the batch's first record; scans check that it continues the
    /// previous batch's range.
    pub base_sequence: SequenceNumber,
    /// Records in the payload (at least 1): with `base_sequence`, the batch's range.
    pub record_count: u32,
    /// Arrival time of the batch's first record: what the time index and seeks use.
    pub first_timestamp_ms: Timestamp,
    /// Arrival time of its last record: what retention and a segment's newest time use.
    /// The log stamps one time per batch, so today both are equal.
    pub last_timestamp_ms: Timestamp,
    /// Bytes of payload after the header: where the next frame starts.
    pub payload_len: u32,
    /// CRC32 of the payload, checked on every read.
    pub payload_crc: u32,
}

impl BatchHeader {
    /// One past the last sequence number in the batch.
    pub fn next_sequence(&self) -> SequenceNumber {
        self.base_sequence + u64::from(self.record_count)
    }

    /// Bytes of the whole frame.
    pub fn frame_len(&self) -> usize {
        HEADER_LEN + self.payload_len as usize
    }

    /// Decodes and checks a header from the first [`HEADER_LEN`] bytes of `buf`.
    pub fn decode(buf: &[u8]) -> Result<BatchHeader, FrameError> {
        if buf.len() < HEADER_LEN {
            return Err(FrameError::Torn {
                needed: HEADER_LEN,
                available: buf.len(),
            });
        }
        if buf[0..4] != MAGIC || !matches!(buf[4], FORMAT_VERSION | FORMAT_VERSION_1) {
            return Err(FrameError::BadMagic);
        }
        let stored = u32_at(buf, 44);
        let computed = crc32fast::hash(&buf[..44]);
        if stored != computed {
            return Err(FrameError::HeaderCrc { stored, computed });
        }
        let header = BatchHeader {
            version: buf[4],
            base_sequence: SequenceNumber::new(u64_at(buf, 8)),
            record_count: u32_at(buf, 16),
            first_timestamp_ms: Timestamp::from_millis(u64_at(buf, 20)),
            last_timestamp_ms: Timestamp::from_millis(u64_at(buf, 28)),
            payload_len: u32_at(buf, 36),
            payload_crc: u32_at(buf, 40),
        };
        if header.payload_len as usize > MAX_PAYLOAD_LEN {
            return Err(FrameError::PayloadTooLarge {
                len: header.payload_len as usize,
                max: MAX_PAYLOAD_LEN,
            });
        }
        if header.record_count == 0 {
            return Err(FrameError::Malformed {
                count: 0,
                reason: "a batch holds at least one record",
            });
        }
        // One past the last record must be a sequence number too: every reader computes it
        // (`next_sequence`), and the records' own numbers are `base_sequence + i`.
        if header
            .base_sequence
            .checked_add(u64::from(header.record_count))
            .is_none()
        {
            return Err(FrameError::Malformed {
                count: header.record_count,
                reason: "the batch's sequence range passes the largest sequence number",
            });
        }
        Ok(header)
    }

    fn encode_into(&self, out: &mut [u8]) {
        out[0..4].copy_from_slice(&MAGIC);
        out[4] = self.version;
        out[5..8].fill(0);
        out[8..16].copy_from_slice(&self.base_sequence.get().to_le_bytes());
        out[16..20].copy_from_slice(&self.record_count.to_le_bytes());
        out[20..28].copy_from_slice(&self.first_timestamp_ms.as_millis().to_le_bytes());
        out[28..36].copy_from_slice(&self.last_timestamp_ms.as_millis().to_le_bytes());
        out[36..40].copy_from_slice(&self.payload_len.to_le_bytes());
        out[40..44].copy_from_slice(&self.payload_crc.to_le_bytes());
        let crc = crc32fast::hash(&out[..44]);
        out[44..48].copy_from_slice(&crc.to_le_bytes());
    }
}

/// Accumulates records into one frame. The payload and its CRC are computed by the producer's
/// task; the committer only stamps the header ([`EncodedBatch::stamp`]) once it knows the
/// sequence numbers, so the shard's single writer does the least work.
#[derive(Debug)]
pub struct BatchBuilder {
    frame: Vec<u8>,
    count: u32,
}

impl Default for BatchBuilder {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl BatchBuilder {
    /// A builder whose buffer holds `payload_bytes` without growing.
    pub fn with_capacity(payload_bytes: usize) -> Self {
        let mut frame = Vec::with_capacity(HEADER_LEN + payload_bytes);
        frame.resize(HEADER_LEN, 0);
        BatchBuilder { frame, count: 0 }
    }

    /// Bytes `record` will take in the payload.
    pub fn encoded_len(record: &RecordRef<'_>) -> usize {
        RECORD_FIXED_LEN
            + record.explicit_hash_key.map_or(0, |_| 16)
            + record.message_group_id.map_or(0, |g| 1 + g.len())
            + record.deduplication_id.map_or(0, |d| 1 + d.len())
            + attributes_len(record.attributes)
            + record.partition_key.len()
            + record.data.len()
    }

    /// Appends one record.
    pub fn push(&mut self, record: &RecordRef<'_>) -> Result<(), EncodeError> {
        check_len(
            "partition_key",
            record.partition_key.len(),
            MAX_PARTITION_KEY_LEN,
        )?;
        check_len("data", record.data.len(), MAX_PAYLOAD_LEN)?;
        if let Some(g) = record.message_group_id {
            check_len("message_group_id", g.len(), MAX_FRAME_ID_BYTES)?;
        }
        if let Some(d) = record.deduplication_id {
            check_len("deduplication_id", d.len(), MAX_FRAME_ID_BYTES)?;
        }
        check_len("attributes", record.attributes.len(), MAX_PAYLOAD_LEN)?;
        let payload_len = self.payload_len() + Self::encoded_len(record);
        if payload_len > MAX_PAYLOAD_LEN {
            return Err(EncodeError::BatchTooLarge {
                len: payload_len,
                max: MAX_PAYLOAD_LEN,
            });
        }
        let mut flags = 0;
        if record.explicit_hash_key.is_some() {
            flags |= FLAG_HASH_KEY;
        }
        if record.message_group_id.is_some() {
            flags |= FLAG_GROUP;
        }
        if record.deduplication_id.is_some() {
            flags |= FLAG_DEDUP;
        }
        if !record.attributes.is_empty() {
            flags |= FLAG_ATTRIBUTES;
        }
        let f = &mut self.frame;
        f.push(flags);
        f.extend_from_slice(&(record.partition_key.len() as u16).to_le_bytes());
        f.extend_from_slice(&(record.data.len() as u32).to_le_bytes());
        if let Some(h) = record.explicit_hash_key {
            f.extend_from_slice(&h.to_le_bytes());
        }
        for id in [record.message_group_id, record.deduplication_id]
            .into_iter()
            .flatten()
        {
            f.push(id.len() as u8);
            f.extend_from_slice(id.as_bytes());
        }
        if !record.attributes.is_empty() {
            f.extend_from_slice(&(record.attributes.len() as u32).to_le_bytes());
            f.extend_from_slice(record.attributes);
        }
        f.extend_from_slice(record.partition_key.as_bytes());
        f.extend_from_slice(record.data);
        self.count += 1;
        Ok(())
    }

    /// Records pushed so far.
    pub fn len(&self) -> u32 {
        self.count
    }

    /// True when nothing was pushed.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Payload bytes pushed so far.
    pub fn payload_len(&self) -> usize {
        self.frame.len() - HEADER_LEN
    }

    /// Seals the payload: computes its CRC. `None` when no record was pushed.
    pub fn finish(self) -> Option<EncodedBatch> {
        if self.count == 0 {
            return None;
        }
        let payload_crc = crc32fast::hash(&self.frame[HEADER_LEN..]);
        Some(EncodedBatch {
            frame: self.frame,
            count: self.count,
            payload_crc,
        })
    }
}

/// Bytes an attributes block takes in a record: nothing when there is none.
fn attributes_len(block: &[u8]) -> usize {
    if block.is_empty() {
        0
    } else {
        4 + block.len()
    }
}

fn check_len(field: &'static str, len: usize, max: usize) -> Result<(), EncodeError> {
    if len > max {
        return Err(EncodeError::FieldTooLong { field, len, max });
    }
    Ok(())
}

/// A whole frame whose header still lacks its sequence number and timestamps.
#[derive(Debug, Clone)]
pub struct EncodedBatch {
    frame: Vec<u8>,
    count: u32,
    payload_crc: u32,
}

impl EncodedBatch {
    /// Records in the batch.
    pub fn record_count(&self) -> u32 {
        self.count
    }

    /// Bytes of the whole frame, header included.
    pub fn frame_len(&self) -> usize {
        self.frame.len()
    }

    /// The frame's bytes as last stamped (the header is zero before the first
    /// [`EncodedBatch::stamp`]).
    pub fn frame(&self) -> &[u8] {
        &self.frame
    }

    /// Writes the header for a batch starting at `base_sequence`, arrived at `timestamp_ms`,
    /// and returns the frame's bytes, ready to be written.
    pub fn stamp(&mut self, base_sequence: SequenceNumber, timestamp_ms: Timestamp) -> &[u8] {
        let header = BatchHeader {
            version: FORMAT_VERSION,
            base_sequence,
            record_count: self.count,
            first_timestamp_ms: timestamp_ms,
            last_timestamp_ms: timestamp_ms,
            payload_len: (self.frame.len() - HEADER_LEN) as u32,
            payload_crc: self.payload_crc,
        };
        header.encode_into(&mut self.frame[..HEADER_LEN]);
        &self.frame
    }
}

/// Checks a payload against its header's CRC.
pub fn verify_payload(header: &BatchHeader, payload: &[u8]) -> Result<(), FrameError> {
    let computed = crc32fast::hash(payload);
    if computed != header.payload_crc {
        return Err(FrameError::PayloadCrc {
            stored: header.payload_crc,
            computed,
        });
    }
    Ok(())
}

/// What [`decode_records`] pushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded {
    /// Records pushed.
    pub pushed: usize,
    /// Their encoded bytes.
    pub bytes: usize,
    /// True when a record was left out because it would have passed the byte budget.
    pub budget_reached: bool,
}

/// Decodes frames as a log read sent them (see `ShardLog::read_frames`): whole frames back
/// to back, each CRC-checked here, each continuing the one before, covering every sequence
/// number in `[first, end)`. The records of that range are pushed to `out`, their byte fields
/// slices of `frames`; records of the first and last frame outside it are skipped. Anything
/// else — a torn or damaged frame, a gap, a frame past the end, a record missing — is an
/// error, and nothing of the call is left in `out`.
pub fn decode_frames(
    frames: &Bytes,
    first: SequenceNumber,
    end: SequenceNumber,
    out: &mut Vec<StoredRecord>,
) -> Result<(), FrameError> {
    let kept = out.len();
    let decoded = decode_frames_into(frames, first, end, out);
    if decoded.is_err() {
        out.truncate(kept);
    }
    decoded
}

fn decode_frames_into(
    frames: &Bytes,
    first: SequenceNumber,
    end: SequenceNumber,
    out: &mut Vec<StoredRecord>,
) -> Result<(), FrameError> {
    let broken = |reason| FrameError::Malformed { count: 0, reason };
    let mut pos = 0usize;
    let mut next = first;
    while pos < frames.len() {
        let header = BatchHeader::decode(&frames[pos..])?;
        let frame_end = pos + header.frame_len();
        if frame_end > frames.len() {
            return Err(FrameError::Torn {
                needed: header.frame_len(),
                available: frames.len() - pos,
            });
        }
        // Each frame holds `next`: the first may start before `first`, the others continue.
        if header.base_sequence > next || header.next_sequence() <= next {
            return Err(broken("frames do not continue one another"));
        }
        if next >= end {
            return Err(broken("a frame past the end of the range"));
        }
        let payload = frames.slice(pos + HEADER_LEN..frame_end);
        verify_payload(&header, &payload)?;
        let want =
            usize::try_from((end - next).min(header.next_sequence() - next)).unwrap_or(usize::MAX);
        let decoded = decode_records(&header, &payload, next, want, usize::MAX, out)?;
        if decoded.pushed != want {
            return Err(broken("a frame holds fewer records than its header says"));
        }
        next += want as u64;
        pos = frame_end;
    }
    if next != end {
        return Err(broken("the frames end before the range does"));
    }
    Ok(())
}

/// Decodes a whole frame as a reader does: header, declared length, payload CRC, every record.
/// For tests and the fuzz checks; the log reads through its segments instead.
#[cfg(any(test, feature = "testing"))]
pub fn decode_whole_frame(bytes: &[u8]) -> Result<(BatchHeader, Vec<StoredRecord>), FrameError> {
    let header = BatchHeader::decode(bytes)?;
    let frame_len = header.frame_len();
    if bytes.len() < frame_len {
        return Err(FrameError::Torn {
            needed: frame_len,
            available: bytes.len(),
        });
    }
    let payload = Bytes::copy_from_slice(&bytes[HEADER_LEN..frame_len]);
    verify_payload(&header, &payload)?;
    let mut records = Vec::new();
    decode_records(
        &header,
        &payload,
        SequenceNumber::ZERO,
        usize::MAX,
        usize::MAX,
        &mut records,
    )?;
    Ok((header, records))
}

/// Decodes the records of a CRC-checked payload. `payload` is shared, and the records' byte
/// fields are slices of it. Records before `from_sequence` are skipped; at most `max_records`
/// records and `max_bytes` bytes are pushed to `out` — but the first record always fits an
/// empty `out`, so a reader makes progress past a record larger than its budget. The
/// partition keys and ids of the records pushed are checked to be UTF-8, as they were
/// written: a batch where one is not is `Malformed`, never served.
pub fn decode_records(
    header: &BatchHeader,
    payload: &Bytes,
    from_sequence: SequenceNumber,
    max_records: usize,
    max_bytes: usize,
    out: &mut Vec<StoredRecord>,
) -> Result<Decoded, FrameError> {
    let malformed = |reason| FrameError::Malformed {
        count: header.record_count,
        reason,
    };
    let buf = &payload[..];
    let mut pos = 0usize;
    let mut pushed = 0usize;
    let mut bytes = 0usize;
    for i in 0..u64::from(header.record_count) {
        if pushed == max_records {
            break;
        }
        let fixed = buf
            .get(pos..pos + RECORD_FIXED_LEN)
            .ok_or(malformed("record header past the payload end"))?;
        let flags = fixed[0];
        let key_len = u16::from_le_bytes([fixed[1], fixed[2]]) as usize;
        let data_len = u32::from_le_bytes([fixed[3], fixed[4], fixed[5], fixed[6]]) as usize;
        let start = pos;
        pos += RECORD_FIXED_LEN;
        let explicit_hash_key = if flags & FLAG_HASH_KEY != 0 {
            let raw = buf
                .get(pos..pos + 16)
                .ok_or(malformed("hash key past the payload end"))?;
            pos += 16;
            let mut b = [0u8; 16];
            b.copy_from_slice(raw);
            Some(u128::from_le_bytes(b))
        } else {
            None
        };
        let mut ids = [None, None];
        for (slot, flag) in ids.iter_mut().zip([FLAG_GROUP, FLAG_DEDUP]) {
            if flags & flag != 0 {
                let len = *buf.get(pos).ok_or(malformed("id past the payload end"))? as usize;
                let range = pos + 1..pos + 1 + len;
                if range.end > buf.len() {
                    return Err(malformed("id past the payload end"));
                }
                *slot = Some(range);
                pos += 1 + len;
            }
        }
        let attributes = if flags & FLAG_ATTRIBUTES != 0 {
            if header.version == FORMAT_VERSION_1 {
                return Err(malformed("attributes in a version 1 frame"));
            }
            let raw = buf
                .get(pos..pos + 4)
                .ok_or(malformed("attributes past the payload end"))?;
            let len = u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]) as usize;
            let range = pos + 4..pos + 4 + len;
            if range.end > buf.len() {
                return Err(malformed("attributes past the payload end"));
            }
            pos = range.end;
            Some(range)
        } else {
            None
        };
        let key = pos..pos + key_len;
        let data = key.end..key.end + data_len;
        if data.end > buf.len() {
            return Err(malformed("record past the payload end"));
        }
        pos = data.end;
        let sequence = header.base_sequence + i;
        if sequence < from_sequence {
            continue;
        }
        if bytes + (pos - start) > max_bytes && !out.is_empty() {
            return Ok(Decoded {
                pushed,
                bytes,
                budget_reached: true,
            });
        }
        let [group, dedup] = ids;
        // Written only from Rust strings, so UTF-8 unless damaged: checked here, where the
        // bytes are in cache, so that the layers above can send them as text as they are.
        let text = |r: &std::ops::Range<usize>| std::str::from_utf8(&buf[r.clone()]).is_ok();
        if !text(&key) || !group.as_ref().is_none_or(text) || !dedup.as_ref().is_none_or(text) {
            return Err(malformed("a partition key or id is not UTF-8"));
        }
        let attributes = match attributes {
            Some(r) => Attributes::decode(payload.slice(r)).map_err(|e| malformed(e.0))?,
            None => Attributes::empty(),
        };
        out.push(StoredRecord {
            sequence,
            timestamp_ms: header.first_timestamp_ms,
            partition_key: payload.slice(key),
            data: payload.slice(data),
            explicit_hash_key,
            message_group_id: group.map(|r| payload.slice(r)),
            deduplication_id: dedup.map(|r| payload.slice(r)),
            attributes,
        });
        pushed += 1;
        bytes += pos - start;
    }
    if pushed < max_records && pos != buf.len() {
        return Err(malformed("payload length does not match its records"));
    }
    Ok(Decoded {
        pushed,
        bytes,
        budget_reached: false,
    })
}

fn u32_at(buf: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&buf[at..at + 4]);
    u32::from_le_bytes(b)
}

fn u64_at(buf: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[at..at + 8]);
    u64::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `records` framed as one batch of sequence numbers from `base`, arrived at `ts` ms.
    fn frame_of(records: &[RecordRef<'_>], base: u64, ts: u64) -> Vec<u8> {
        let mut b = BatchBuilder::default();
        for r in records {
            b.push(r).unwrap();
        }
        let mut batch = b.finish().unwrap();
        batch
            .stamp(SequenceNumber::new(base), Timestamp::from_millis(ts))
            .to_vec()
    }

    fn decode_all(frame: &[u8]) -> Result<Vec<StoredRecord>, FrameError> {
        decode_whole_frame(frame).map(|(_, records)| records)
    }

    fn some_attributes() -> Attributes {
        use crate::storage::{Attribute, AttributeType};
        Attributes::encode(&[
            Attribute {
                name: "color",
                kind: AttributeType::String,
                value: b"red",
            },
            Attribute {
                name: "blob",
                kind: AttributeType::Binary,
                value: &[0, 255],
            },
        ])
        .unwrap()
    }

    /// `frame` as the first format wrote it: version 1 in the header, its CRC redone.
    fn as_version_1(mut frame: Vec<u8>) -> Vec<u8> {
        frame[4] = FORMAT_VERSION_1;
        let crc = crc32fast::hash(&frame[..44]);
        frame[44..48].copy_from_slice(&crc.to_le_bytes());
        frame
    }

    /// Three frames back to back: sequences 10..13, 13..15 and 15..19.
    fn three_frames() -> Vec<u8> {
        let record = |k: &'static str| RecordRef {
            partition_key: k,
            data: k.as_bytes(),
            ..Default::default()
        };
        let mut frames = frame_of(&[record("a"), record("b"), record("c")], 10, 1);
        frames.extend(frame_of(&[record("d"), record("e")], 13, 2));
        frames.extend(frame_of(
            &[record("f"), record("g"), record("h"), record("i")],
            15,
            3,
        ));
        frames
    }

    fn frames_decoded(frames: &[u8], first: u64, end: u64) -> Result<Vec<String>, FrameError> {
        let mut out = Vec::new();
        let decoded = decode_frames(
            &Bytes::copy_from_slice(frames),
            SequenceNumber::new(first),
            SequenceNumber::new(end),
            &mut out,
        );
        match decoded {
            Ok(()) => Ok(out
                .iter()
                .map(|r| String::from_utf8(r.data.to_vec()).unwrap())
                .collect()),
            Err(e) => {
                assert!(out.is_empty(), "a failed decode leaves nothing: {out:?}");
                Err(e)
            }
        }
    }

    #[test]
    fn frames_decode_to_exactly_the_records_of_their_range() {
        let frames = three_frames();
        assert_eq!(
            frames_decoded(&frames, 10, 19).unwrap(),
            ["a", "b", "c", "d", "e", "f", "g", "h", "i"]
        );
        // The first frame begins before the range and the last ends after it.
        assert_eq!(
            frames_decoded(&frames, 11, 17).unwrap(),
            ["b", "c", "d", "e", "f", "g"]
        );
        let second_only = &frames[BatchHeader::decode(&frames).unwrap().frame_len()..];
        assert_eq!(frames_decoded(second_only, 14, 16).unwrap(), ["e", "f"]);
        assert_eq!(frames_decoded(&[], 5, 5).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn frames_that_do_not_hold_their_range_or_are_damaged_give_nothing() {
        let frames = three_frames();
        let first_len = BatchHeader::decode(&frames).unwrap().frame_len();
        // A range past what the frames hold, or starting after the first frame.
        assert!(matches!(
            frames_decoded(&frames, 10, 20),
            Err(FrameError::Malformed { .. })
        ));
        assert!(matches!(
            frames_decoded(&frames, 13, 19),
            Err(FrameError::Malformed { .. })
        ));
        // A frame missing in the middle.
        let mut gap = frames[..first_len].to_vec();
        gap.extend_from_slice(&frames[first_len + (frames.len() - first_len) / 2..]);
        assert!(frames_decoded(&gap, 10, 19).is_err());
        // A frame past the range.
        assert!(matches!(
            frames_decoded(&frames, 10, 13),
            Err(FrameError::Malformed { .. })
        ));
        // Cut short.
        assert!(matches!(
            frames_decoded(&frames[..frames.len() - 1], 10, 19),
            Err(FrameError::Torn { .. })
        ));
        // A flipped bit in a record, anywhere: its frame's CRC says so.
        for at in [HEADER_LEN + 2, first_len + HEADER_LEN + 3, frames.len() - 1] {
            let mut damaged = frames.clone();
            damaged[at] ^= 0x10;
            assert!(
                matches!(
                    frames_decoded(&damaged, 10, 19),
                    Err(FrameError::PayloadCrc { .. })
                ),
                "byte {at}"
            );
        }
    }

    #[test]
    fn frames_of_the_first_format_stay_readable() {
        let record = RecordRef {
            partition_key: "k",
            data: b"old",
            message_group_id: Some("g"),
            ..Default::default()
        };
        let frame = as_version_1(frame_of(&[record], 7, 1));
        let records = decode_all(&frame).unwrap();
        assert_eq!(&records[0].data[..], b"old");
        assert!(records[0].attributes.is_empty());
        assert_eq!(
            BatchHeader::decode(&frame).unwrap().version,
            FORMAT_VERSION_1
        );
    }

    #[test]
    fn attributes_in_a_first_format_frame_are_malformed_not_served() {
        let attrs = some_attributes();
        let record = RecordRef {
            partition_key: "k",
            data: b"x",
            attributes: attrs.as_bytes(),
            ..Default::default()
        };
        let frame = as_version_1(frame_of(&[record], 0, 1));
        assert!(matches!(
            decode_all(&frame),
            Err(FrameError::Malformed {
                reason: "attributes in a version 1 frame",
                ..
            })
        ));
    }

    #[test]
    fn a_damaged_attribute_block_is_malformed_not_served() {
        let attrs = some_attributes();
        let mut block = attrs.as_bytes().to_vec();
        // The type of the first entry ("blob", a four-byte name): no such type.
        block[2 + 4] = 99;
        let record = RecordRef {
            partition_key: "k",
            data: b"x",
            attributes: &block,
            ..Default::default()
        };
        assert!(matches!(
            decode_all(&frame_of(&[record], 0, 1)),
            Err(FrameError::Malformed {
                reason: "unknown data type",
                ..
            })
        ));
    }

    #[test]
    fn a_record_with_every_field_round_trips() {
        let attrs = some_attributes();
        let frame = frame_of(
            &[RecordRef {
                partition_key: "user-7",
                data: b"hello",
                explicit_hash_key: Some(u128::MAX),
                message_group_id: Some("g"),
                deduplication_id: Some("d-1"),
                attributes: attrs.as_bytes(),
            }],
            41,
            1_700_000_000_000,
        );
        let records = decode_all(&frame).unwrap();
        assert_eq!(records.len(), 1);
        let r = &records[0];
        assert_eq!(r.sequence, SequenceNumber::new(41));
        assert_eq!(r.timestamp_ms, Timestamp::from_millis(1_700_000_000_000));
        assert_eq!(&r.partition_key[..], b"user-7");
        assert_eq!(&r.data[..], b"hello");
        assert_eq!(r.explicit_hash_key, Some(u128::MAX));
        assert_eq!(r.message_group_id.as_deref(), Some(&b"g"[..]));
        assert_eq!(r.deduplication_id.as_deref(), Some(&b"d-1"[..]));
        assert_eq!(r.attributes, attrs);
        assert_eq!(r.encoded_len(), frame.len() - HEADER_LEN);
    }

    #[test]
    fn an_empty_builder_makes_no_batch() {
        assert!(BatchBuilder::default().finish().is_none());
    }

    #[test]
    fn oversized_ids_are_refused_with_the_field_named() {
        let long = "x".repeat(MAX_FRAME_ID_BYTES + 1);
        let err = BatchBuilder::default()
            .push(&RecordRef {
                partition_key: "k",
                deduplication_id: Some(&long),
                ..Default::default()
            })
            .unwrap_err();
        assert!(matches!(
            err,
            EncodeError::FieldTooLong {
                field: "deduplication_id",
                ..
            }
        ));
    }

    #[test]
    fn a_short_buffer_is_torn_not_corrupt() {
        let frame = frame_of(&[RecordRef::default()], 0, 0);
        assert!(matches!(
            BatchHeader::decode(&frame[..HEADER_LEN - 1]),
            Err(FrameError::Torn { .. })
        ));
    }

    #[test]
    fn a_flipped_payload_byte_fails_the_payload_crc_but_keeps_the_header() {
        let mut frame = frame_of(
            &[RecordRef {
                partition_key: "k",
                data: b"payload",
                ..Default::default()
            }],
            3,
            9,
        );
        let last = frame.len() - 1;
        frame[last] ^= 0x40;
        let header = BatchHeader::decode(&frame).unwrap();
        assert_eq!(header.base_sequence, SequenceNumber::new(3));
        assert!(matches!(
            decode_all(&frame),
            Err(FrameError::PayloadCrc { .. })
        ));
    }

    #[test]
    fn a_key_or_id_that_is_not_utf8_is_malformed_even_under_a_valid_crc() {
        let frame = frame_of(
            &[
                RecordRef {
                    partition_key: "ok",
                    data: b"first",
                    ..Default::default()
                },
                RecordRef {
                    partition_key: "k\u{e9}",
                    data: b"second",
                    message_group_id: Some("g\u{e9}"),
                    ..Default::default()
                },
            ],
            3,
            9,
        );
        // Rewrites the two-byte `é` at `at` as bytes that are not UTF-8, with valid CRCs.
        let damaged = |at: usize| {
            let mut f = frame.clone();
            f[at] = 0xff;
            let mut header = BatchHeader::decode(&f).unwrap();
            header.payload_crc = crc32fast::hash(&f[HEADER_LEN..]);
            header.encode_into(&mut f[..HEADER_LEN]);
            f
        };
        let key_at = frame
            .windows(3)
            .rposition(|w| w == "k\u{e9}".as_bytes())
            .unwrap()
            + 1;
        let group_at = frame
            .windows(3)
            .position(|w| w == "g\u{e9}".as_bytes())
            .unwrap()
            + 1;
        for at in [key_at, group_at] {
            let f = damaged(at);
            assert!(matches!(
                decode_all(&f),
                Err(FrameError::Malformed { count: 2, .. })
            ));
            // Records before the damaged one are not pushed when it is not wanted.
            let header = BatchHeader::decode(&f).unwrap();
            let payload = Bytes::copy_from_slice(&f[HEADER_LEN..]);
            let mut out = Vec::new();
            decode_records(
                &header,
                &payload,
                SequenceNumber::ZERO,
                1,
                usize::MAX,
                &mut out,
            )
            .unwrap();
            assert_eq!(&out[0].partition_key[..], b"ok");
        }
    }

    #[test]
    fn a_flipped_header_byte_fails_the_header_crc() {
        let mut frame = frame_of(&[RecordRef::default()], 3, 9);
        frame[17] ^= 1;
        assert!(matches!(
            BatchHeader::decode(&frame),
            Err(FrameError::HeaderCrc { .. })
        ));
    }

    #[test]
    fn a_header_declaring_a_huge_payload_is_refused_before_allocating() {
        let mut frame = frame_of(&[RecordRef::default()], 0, 0);
        frame[36..40].copy_from_slice(&u32::MAX.to_le_bytes());
        let crc = crc32fast::hash(&frame[..44]);
        frame[44..48].copy_from_slice(&crc.to_le_bytes());
        assert!(matches!(
            BatchHeader::decode(&frame),
            Err(FrameError::PayloadTooLarge { .. })
        ));
    }

    #[test]
    fn decoding_skips_records_before_the_start_and_stops_at_the_limit() {
        let recs: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 3]).collect();
        let refs: Vec<RecordRef<'_>> = recs
            .iter()
            .map(|d| RecordRef {
                partition_key: "k",
                data: d,
                ..Default::default()
            })
            .collect();
        let frame = frame_of(&refs, 10, 0);
        let header = BatchHeader::decode(&frame).unwrap();
        let payload = Bytes::copy_from_slice(&frame[HEADER_LEN..]);
        let mut out = Vec::new();
        decode_records(
            &header,
            &payload,
            SequenceNumber::new(12),
            2,
            usize::MAX,
            &mut out,
        )
        .unwrap();
        let seqs: Vec<u64> = out.iter().map(|r| r.sequence.get()).collect();
        assert_eq!(seqs, vec![12, 13]);
        assert_eq!(&out[0].data[..], &[2, 2, 2]);
    }

    proptest! {
        // Frames come from the network to the client: whatever arrives, decoding never panics,
        // and either yields exactly the asked range or nothing at all.
        #[test]
        fn damaged_or_random_frames_decode_to_the_whole_range_or_nothing(
            flips in proptest::collection::vec((any::<usize>(), 1u8..=255), 0..4),
            cut in any::<usize>(),
            first in 8u64..21,
            len in 0u64..12,
            noise in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let mut frames = three_frames();
            for (at, bits) in flips {
                let at = at % frames.len();
                frames[at] ^= bits;
            }
            frames.truncate(cut % (frames.len() + 1));
            for bytes in [frames, noise] {
                let mut out = Vec::new();
                let end = first + len;
                let decoded = decode_frames(
                    &Bytes::from(bytes),
                    SequenceNumber::new(first),
                    SequenceNumber::new(end),
                    &mut out,
                );
                match decoded {
                    Ok(()) => {
                        let seqs: Vec<u64> = out.iter().map(|r| r.sequence.get()).collect();
                        prop_assert_eq!(seqs, (first..end).collect::<Vec<_>>());
                    }
                    Err(_) => prop_assert!(out.is_empty()),
                }
            }
        }

        #[test]
        fn random_batches_round_trip(
            records in proptest::collection::vec(
                (".{0,20}", proptest::collection::vec(any::<u8>(), 0..300),
                 proptest::option::of(any::<u128>()),
                 proptest::option::of("[a-z]{1,10}"),
                 proptest::option::of("[a-z]{1,10}"),
                 proptest::collection::btree_map("[a-z.]{1,12}", ".{1,30}", 0..4)),
                1..20),
            base in any::<u32>(),
        ) {
            let blocks: Vec<Attributes> = records.iter().map(|r| {
                let pairs: Vec<_> = r.5.iter().map(|(name, value)| crate::storage::Attribute {
                    name, kind: crate::storage::AttributeType::String, value: value.as_bytes(),
                }).collect();
                Attributes::encode(&pairs).unwrap()
            }).collect();
            let refs: Vec<RecordRef<'_>> = records.iter().zip(&blocks).map(|((k, d, h, g, i, _), a)| RecordRef {
                partition_key: k, data: d, explicit_hash_key: *h,
                message_group_id: g.as_deref(), deduplication_id: i.as_deref(),
                attributes: a.as_bytes(),
            }).collect();
            let frame = frame_of(&refs, u64::from(base), 5);
            let decoded = decode_all(&frame).unwrap();
            prop_assert_eq!(decoded.len(), refs.len());
            for (i, (r, d)) in refs.iter().zip(&decoded).enumerate() {
                prop_assert_eq!(d.sequence.get(), u64::from(base) + i as u64);
                prop_assert_eq!(&d.partition_key[..], r.partition_key.as_bytes());
                prop_assert_eq!(&d.data[..], r.data);
                prop_assert_eq!(d.explicit_hash_key, r.explicit_hash_key);
                prop_assert_eq!(d.message_group_id.as_deref(), r.message_group_id.map(str::as_bytes));
                prop_assert_eq!(d.deduplication_id.as_deref(), r.deduplication_id.map(str::as_bytes));
                prop_assert_eq!(d.attributes.as_bytes(), r.attributes);
            }
        }
    }
}
