//! The answers of the contract that carry stored records — `GetRecordsResponse`,
//! `SubscribeToShardEvent` and `ReceiveMessagesResponse` — as hand-written protobuf messages
//! that encode stored records straight from the read buffers.
//!
//! The generated messages would need every record turned into a `pb::Record` first: a `String`
//! allocated and validated per partition key, a decimal string per explicit hash key, and a
//! second walk to encode it. Here the server hands over the records as read
//! ([`OutgoingRecords`]) and encoding writes the wire format from them (keys and ids are
//! known to be UTF-8: storage checks them as it decodes). Decoding, which only clients do,
//! fills `records` exactly as the generated code would, so the messages look the same to
//! every caller; `build.rs` maps the contract's two messages to these types and re-exports
//! them from `proto::v1`.
//!
//! A `Record` on the wire, as `shardlog.proto` defines it (fields at their default value are
//! left out, as protobuf 3 does):
//!
//! | tag | type   | field                              | from the stored record           |
//! |----:|--------|------------------------------------|----------------------------------|
//! |   1 | uint64 | sequence_number                    | `sequence`                       |
//! |   2 | string | partition_key                      | `partition_key`                  |
//! |   3 | bytes  | data                               | `data`                           |
//! |   4 | int64  | approximate_arrival_timestamp_ms   | `timestamp_ms`                   |
//! |   5 | string | explicit_hash_key (decimal)        | `explicit_hash_key`              |
//! |   6 | string | message_group_id                   | `message_group_id`               |
//! |   7 | string | deduplication_id                   | `deduplication_id`               |
//! |   8 | map    | attributes (name → AttributeValue) | `attributes`, in name order      |
//!
//! A map entry is a message of its own: `1` the name, `2` an `AttributeValue` of `1` the data
//! type's name, then `2` the text or `3` the bytes of the value.

use bytes::{Buf, BufMut, Bytes};
use prost::encoding::{self, encode_key, encode_varint, encoded_len_varint, WireType};
use prost::{DecodeError, Message};

use crate::proto::v1 as pb;
use crate::storage::{Attribute, AttributeType, StoredRecord};

const RECORDS_TAG: u32 = 1;
const LAG_TAG: u32 = 3;
/// Longest decimal form of a `u128`.
const MAX_HASH_KEY_DIGITS: usize = 39;

/// Stored records on their way to a client.
///
/// Their partition keys and ids are sent as the `string`s of the contract without being
/// checked again: storage decodes only records whose keys and ids are UTF-8 (they are
/// written from Rust strings, and a batch where one is not is reported as corrupt), so
/// records from a read always qualify. Records built by hand must hold UTF-8 there too, or
/// the receiving client rejects the whole message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutgoingRecords(Vec<StoredRecord>);

impl From<Vec<StoredRecord>> for OutgoingRecords {
    fn from(records: Vec<StoredRecord>) -> Self {
        debug_assert!(
            records.iter().all(|r| [
                Some(&r.partition_key),
                r.message_group_id.as_ref(),
                r.deduplication_id.as_ref()
            ]
            .into_iter()
            .flatten()
            .all(|t| std::str::from_utf8(t).is_ok())),
            "text fields of outgoing records must be UTF-8"
        );
        OutgoingRecords(records)
    }
}

impl OutgoingRecords {
    /// The records, in the order they are sent.
    pub fn as_slice(&self) -> &[StoredRecord] {
        &self.0
    }

    /// True when there is no record to send.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn encoded_len(&self) -> usize {
        self.0
            .iter()
            .map(|r| {
                let len = record_len(r);
                encoding::key_len(RECORDS_TAG) + encoded_len_varint(len as u64) + len
            })
            .sum()
    }

    fn encode(&self, buf: &mut impl BufMut) {
        for r in &self.0 {
            encode_entry(r, buf);
        }
    }
}

/// The decimal digits of `k`, right-aligned in the returned buffer, and where they start.
fn decimal(mut k: u128) -> ([u8; MAX_HASH_KEY_DIGITS], usize) {
    let mut out = [0u8; MAX_HASH_KEY_DIGITS];
    let mut at = MAX_HASH_KEY_DIGITS;
    loop {
        at -= 1;
        out[at] = b'0' + (k % 10) as u8;
        k /= 10;
        if k == 0 {
            return (out, at);
        }
    }
}

fn decimal_len(k: u128) -> usize {
    MAX_HASH_KEY_DIGITS - decimal(k).1
}

fn varint_field_len(tag: u32, v: u64) -> usize {
    if v == 0 {
        0
    } else {
        encoding::key_len(tag) + encoded_len_varint(v)
    }
}

fn bytes_field_len(tag: u32, b: &[u8]) -> usize {
    if b.is_empty() {
        0
    } else {
        encoding::key_len(tag) + encoded_len_varint(b.len() as u64) + b.len()
    }
}

/// Bytes of a stored record's `Record` message, without its key and length.
fn record_len(r: &StoredRecord) -> usize {
    varint_field_len(1, r.sequence.get())
        + bytes_field_len(2, &r.partition_key)
        + bytes_field_len(3, &r.data)
        + varint_field_len(4, r.timestamp_ms.as_millis() as i64 as u64)
        + r.explicit_hash_key.map_or(0, |k| {
            let n = decimal_len(k);
            encoding::key_len(5) + encoded_len_varint(n as u64) + n
        })
        + r.message_group_id
            .as_ref()
            .map_or(0, |g| bytes_field_len(6, g))
        + r.deduplication_id
            .as_ref()
            .map_or(0, |d| bytes_field_len(7, d))
        + attributes_len(r)
}

/// Bytes of a stored record's attribute map entries, with their keys and lengths.
fn attributes_len(r: &StoredRecord) -> usize {
    if r.attributes.is_empty() {
        return 0;
    }
    r.attributes
        .iter()
        .map(|a| {
            let len = attribute_entry_len(&a);
            encoding::key_len(ATTRIBUTES_TAG) + encoded_len_varint(len as u64) + len
        })
        .sum::<usize>()
}

const ATTRIBUTES_TAG: u32 = 8;

/// The tag of an attribute value's bytes in `AttributeValue`: text or binary.
fn value_tag(a: &Attribute<'_>) -> u32 {
    if a.kind == AttributeType::Binary {
        3
    } else {
        2
    }
}

fn attribute_value_len(a: &Attribute<'_>) -> usize {
    bytes_field_len(1, a.kind.name().as_bytes()) + bytes_field_len(value_tag(a), a.value)
}

/// Bytes of one attributes map entry, without its key and length.
fn attribute_entry_len(a: &Attribute<'_>) -> usize {
    let value = attribute_value_len(a);
    bytes_field_len(1, a.name.as_bytes())
        + encoding::key_len(2)
        + encoded_len_varint(value as u64)
        + value
}

fn encode_attribute(a: &Attribute<'_>, buf: &mut impl BufMut) {
    encode_key(ATTRIBUTES_TAG, WireType::LengthDelimited, buf);
    encode_varint(attribute_entry_len(a) as u64, buf);
    put_bytes_field(1, a.name.as_bytes(), buf);
    encode_key(2, WireType::LengthDelimited, buf);
    encode_varint(attribute_value_len(a) as u64, buf);
    put_bytes_field(1, a.kind.name().as_bytes(), buf);
    put_bytes_field(value_tag(a), a.value, buf);
}

fn put_bytes_field(tag: u32, b: &[u8], buf: &mut impl BufMut) {
    if !b.is_empty() {
        encode_key(tag, WireType::LengthDelimited, buf);
        encode_varint(b.len() as u64, buf);
        buf.put_slice(b);
    }
}

/// Room for the varint fields written before a record's partition key.
const SMALL_BYTES: usize = 40;

/// A few varint-encoded fields gathered on the stack and handed to the buffer at once: a
/// `BufMut` write costs more than the few bytes it writes.
struct Small {
    bytes: [u8; SMALL_BYTES],
    len: usize,
}

impl Small {
    fn new() -> Small {
        Small {
            bytes: [0; SMALL_BYTES],
            len: 0,
        }
    }

    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.bytes[self.len] = (v as u8) | 0x80;
            self.len += 1;
            v >>= 7;
        }
        self.bytes[self.len] = v as u8;
        self.len += 1;
    }

    fn key(&mut self, tag: u32, wire_type: WireType) {
        self.varint(u64::from(tag << 3 | wire_type as u32));
    }

    /// A varint field, left out at its default value as protobuf 3 does.
    fn varint_field(&mut self, tag: u32, v: u64) {
        if v != 0 {
            self.key(tag, WireType::Varint);
            self.varint(v);
        }
    }

    /// The key and length of a bytes field (its bytes follow), left out when empty.
    fn bytes_prefix(&mut self, tag: u32, len: usize) {
        if len != 0 {
            self.key(tag, WireType::LengthDelimited);
            self.varint(len as u64);
        }
    }

    fn put_to(&self, buf: &mut impl BufMut) {
        buf.put_slice(&self.bytes[..self.len]);
    }
}

/// Writes a stored record as one `records` entry: key, length, then the `Record`'s fields
/// in tag order, as prost writes them.
fn encode_entry(r: &StoredRecord, buf: &mut impl BufMut) {
    // Longest: 1 + 10 (entry key and length) + 1 + 10 (sequence) + 1 + 10 (key's length).
    let mut head = Small::new();
    head.key(RECORDS_TAG, WireType::LengthDelimited);
    head.varint(record_len(r) as u64);
    head.varint_field(1, r.sequence.get());
    head.bytes_prefix(2, r.partition_key.len());
    head.put_to(buf);
    buf.put_slice(&r.partition_key);
    let mut data = Small::new();
    data.bytes_prefix(3, r.data.len());
    data.put_to(buf);
    buf.put_slice(&r.data);
    let mut tail = Small::new();
    tail.varint_field(4, r.timestamp_ms.as_millis() as i64 as u64);
    tail.put_to(buf);
    if let Some(k) = r.explicit_hash_key {
        let (digits, at) = decimal(k);
        put_bytes_field(5, &digits[at..], buf);
    }
    if let Some(g) = &r.message_group_id {
        put_bytes_field(6, g, buf);
    }
    if let Some(d) = &r.deduplication_id {
        put_bytes_field(7, d, buf);
    }
    if !r.attributes.is_empty() {
        for a in r.attributes.iter() {
            encode_attribute(&a, buf);
        }
    }
}

/// Decodes one `records` entry and appends it to `records`: from the buffer's bytes in place
/// when the entry is in one contiguous chunk (tonic's receive buffer always is) and has the
/// usual shape, through prost's generated decoder otherwise, which then also names whatever
/// is wrong with it. Both give the same record.
fn merge_record(
    wire_type: WireType,
    records: &mut Vec<pb::Record>,
    buf: &mut impl Buf,
    ctx: encoding::DecodeContext,
) -> Result<(), DecodeError> {
    encoding::check_wire_type(WireType::LengthDelimited, wire_type)?;
    let len = encoding::decode_varint(buf)?;
    let parsed = match usize::try_from(len) {
        Ok(len) if len <= buf.chunk().len() => parse_record(&buf.chunk()[..len]).map(|p| (len, p)),
        _ => None,
    };
    let Some((len, (mut record, data))) = parsed else {
        // Put the length back in front for prost's own length-delimited decoding.
        let mut prefix = Vec::with_capacity(10);
        encode_varint(len, &mut prefix);
        let mut whole = (&prefix[..]).chain(buf);
        encoding::message::merge_repeated(WireType::LengthDelimited, records, &mut whole, ctx)?;
        return Ok(());
    };
    match data {
        Some((at, n)) => {
            buf.advance(at);
            // A slice of the receive buffer, as prost's decoder makes it: no copy.
            record.data = buf.copy_to_bytes(n);
            buf.advance(len - at - n);
        }
        None => buf.advance(len),
    }
    records.push(record);
    Ok(())
}

/// The fields of an encoded `Record`, except `data`, whose position and length are returned
/// instead. `None` when the bytes hold anything but the fields of the contract with their
/// wire types, valid varints and UTF-8 strings.
fn parse_record(b: &[u8]) -> Option<(pb::Record, Option<(usize, usize)>)> {
    let mut record = pb::Record::default();
    let mut data = None;
    let mut i = 0;
    while i < b.len() {
        let key = read_varint(b, &mut i)?;
        match (key >> 3, key & 7) {
            (1, 0) => record.sequence_number = read_varint(b, &mut i)?,
            (4, 0) => record.approximate_arrival_timestamp_ms = read_varint(b, &mut i)? as i64,
            (tag @ (2 | 3 | 5 | 6 | 7), 2) => {
                let n = usize::try_from(read_varint(b, &mut i)?).ok()?;
                let field = b.get(i..i.checked_add(n)?)?;
                let text = || std::str::from_utf8(field).ok().map(str::to_owned);
                match tag {
                    2 => record.partition_key = text()?,
                    3 => data = Some((i, n)),
                    5 => record.explicit_hash_key = text()?,
                    6 => record.message_group_id = text()?,
                    _ => record.deduplication_id = text()?,
                }
                i += n;
            }
            _ => return None,
        }
    }
    Some((record, data))
}

/// Reads a varint at `b[*i..]` as protobuf encodes it (at most ten bytes, the tenth holding
/// one bit).
fn read_varint(b: &[u8], i: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in 0..10 {
        let byte = *b.get(*i)?;
        *i += 1;
        if shift == 9 && byte > 1 {
            return None;
        }
        value |= u64::from(byte & 0x7f) << (7 * shift);
        if byte < 0x80 {
            return Some(value);
        }
    }
    None
}

/// Field number of `child_shards` in both read answers.
const CHILD_SHARDS_TAG: u32 = 4;

/// Records read, and where to continue (`shardlog.v1.GetRecordsResponse`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GetRecordsResponse {
    /// The records, in sequence order; may be empty even when more follow. A decoded answer
    /// holds every record here.
    pub records: Vec<pb::Record>,
    /// Token to continue from; empty once a closed shard has been read to its end.
    pub next_shard_iterator: String,
    /// How far the read position is behind the shard's newest record, in milliseconds; 0 when
    /// caught up.
    pub millis_behind_latest: i64,
    /// With the read that reaches the end of a closed shard: the shards that continue it.
    pub child_shards: Vec<pb::ChildShard>,
    /// Records a server sends as read from storage, on the wire after those of `records` (as
    /// more `records` entries). Decoding never fills it.
    pub outgoing: OutgoingRecords,
    /// In the frame form: the stored frames, sent back to back as the one `frames` field. A
    /// decoded answer holds them in one piece.
    pub frames: Vec<Bytes>,
    /// In the frame form: the first sequence number of the answer.
    pub frames_first_sequence: u64,
    /// In the frame form: one past the last sequence number of the answer.
    pub frames_end_sequence: u64,
}

const FRAMES_TAG: u32 = 5;

fn frames_len(frames: &[Bytes]) -> usize {
    let len: usize = frames.iter().map(Bytes::len).sum();
    if len == 0 {
        0
    } else {
        encoding::key_len(FRAMES_TAG) + encoded_len_varint(len as u64) + len
    }
}

impl Message for GetRecordsResponse {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        encode_records(&self.records, &self.outgoing, buf);
        if !self.next_shard_iterator.is_empty() {
            encoding::string::encode(2, &self.next_shard_iterator, buf);
        }
        encode_lag(self.millis_behind_latest, buf);
        encoding::message::encode_repeated(CHILD_SHARDS_TAG, &self.child_shards, buf);
        let len: usize = self.frames.iter().map(Bytes::len).sum();
        if len > 0 {
            encode_key(FRAMES_TAG, WireType::LengthDelimited, buf);
            encode_varint(len as u64, buf);
            for chunk in &self.frames {
                buf.put_slice(chunk);
            }
        }
        if self.frames_first_sequence != 0 {
            encoding::uint64::encode(6, &self.frames_first_sequence, buf);
        }
        if self.frames_end_sequence != 0 {
            encoding::uint64::encode(7, &self.frames_end_sequence, buf);
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: encoding::DecodeContext,
    ) -> Result<(), DecodeError> {
        match tag {
            1 => merge_record(wire_type, &mut self.records, buf, ctx),
            2 => encoding::string::merge(wire_type, &mut self.next_shard_iterator, buf, ctx),
            3 => encoding::int64::merge(wire_type, &mut self.millis_behind_latest, buf, ctx),
            CHILD_SHARDS_TAG => {
                encoding::message::merge_repeated(wire_type, &mut self.child_shards, buf, ctx)
            }
            FRAMES_TAG => {
                // A singular field: the last occurrence is the value. Taken from the receive
                // buffer without a copy when it is one (tonic's is).
                let mut frames = Bytes::new();
                encoding::bytes::merge(wire_type, &mut frames, buf, ctx)?;
                self.frames = if frames.is_empty() {
                    Vec::new()
                } else {
                    vec![frames]
                };
                Ok(())
            }
            6 => encoding::uint64::merge(wire_type, &mut self.frames_first_sequence, buf, ctx),
            7 => encoding::uint64::merge(wire_type, &mut self.frames_end_sequence, buf, ctx),
            _ => encoding::skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        records_len(&self.records, &self.outgoing)
            + if self.next_shard_iterator.is_empty() {
                0
            } else {
                encoding::string::encoded_len(2, &self.next_shard_iterator)
            }
            + lag_len(self.millis_behind_latest)
            + encoding::message::encoded_len_repeated(CHILD_SHARDS_TAG, &self.child_shards)
            + frames_len(&self.frames)
            + varint_field_len(6, self.frames_first_sequence)
            + varint_field_len(7, self.frames_end_sequence)
    }

    fn clear(&mut self) {
        *self = GetRecordsResponse::default();
    }
}

/// A batch of records pushed to a subscriber (`shardlog.v1.SubscribeToShardEvent`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SubscribeToShardEvent {
    /// The records, in sequence order; may be empty (a keep-alive that still reports lag). A
    /// decoded event holds every record here.
    pub records: Vec<pb::Record>,
    /// Resume after this sequence number (AFTER_SEQUENCE_NUMBER) to continue without gaps;
    /// `None` while no record precedes the subscription's position (resume at TRIM_HORIZON).
    pub continuation_sequence_number: Option<u64>,
    /// How far the subscription is behind the shard's newest record, in milliseconds.
    pub millis_behind_latest: i64,
    /// On the last event of a subscription to a closed shard: the shards that continue it.
    pub child_shards: Vec<pb::ChildShard>,
    /// Records a server sends as read from storage, on the wire after those of `records` (as
    /// more `records` entries). Decoding never fills it.
    pub outgoing: OutgoingRecords,
}

impl Message for SubscribeToShardEvent {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        encode_records(&self.records, &self.outgoing, buf);
        if let Some(continuation) = &self.continuation_sequence_number {
            encoding::uint64::encode(2, continuation, buf);
        }
        encode_lag(self.millis_behind_latest, buf);
        encoding::message::encode_repeated(CHILD_SHARDS_TAG, &self.child_shards, buf);
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: encoding::DecodeContext,
    ) -> Result<(), DecodeError> {
        match tag {
            1 => merge_record(wire_type, &mut self.records, buf, ctx),
            2 => encoding::uint64::merge(
                wire_type,
                self.continuation_sequence_number.get_or_insert(0),
                buf,
                ctx,
            ),
            3 => encoding::int64::merge(wire_type, &mut self.millis_behind_latest, buf, ctx),
            CHILD_SHARDS_TAG => {
                encoding::message::merge_repeated(wire_type, &mut self.child_shards, buf, ctx)
            }
            _ => encoding::skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        records_len(&self.records, &self.outgoing)
            + self
                .continuation_sequence_number
                .as_ref()
                .map_or(0, |c| encoding::uint64::encoded_len(2, c))
            + lag_len(self.millis_behind_latest)
            + encoding::message::encoded_len_repeated(CHILD_SHARDS_TAG, &self.child_shards)
    }

    fn clear(&mut self) {
        *self = SubscribeToShardEvent::default();
    }
}

/// Field 1 of both read answers: the decoded records, then the stored ones as read.
fn encode_records(records: &[pb::Record], outgoing: &OutgoingRecords, buf: &mut impl BufMut) {
    encoding::message::encode_repeated(RECORDS_TAG, records, buf);
    outgoing.encode(buf);
}

fn records_len(records: &[pb::Record], outgoing: &OutgoingRecords) -> usize {
    encoding::message::encoded_len_repeated(RECORDS_TAG, records) + outgoing.encoded_len()
}

/// Field 3 of both read answers, `millis_behind_latest`; left out at 0, as protobuf 3 does.
fn encode_lag(millis_behind_latest: i64, buf: &mut impl BufMut) {
    if millis_behind_latest != 0 {
        encoding::int64::encode(LAG_TAG, &millis_behind_latest, buf);
    }
}

fn lag_len(millis_behind_latest: i64) -> usize {
    if millis_behind_latest == 0 {
        0
    } else {
        encoding::int64::encoded_len(LAG_TAG, &millis_behind_latest)
    }
}

/// A queue message on its way to a client: a stored record with where it is and its receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// The record, as read.
    pub record: StoredRecord,
    /// Its shard's id.
    pub shard_id: String,
    /// Its receipt handle.
    pub receipt_handle: String,
    /// Its receive count.
    pub receive_count: u32,
}

impl OutgoingMessage {
    /// Bytes of its `Message`, without key and length: `1` the record (written as a read
    /// answer writes a `records` entry, whose tag is also 1), `2` the shard id, `3` the
    /// receipt handle, `4` the receive count.
    fn len(&self) -> usize {
        let record = record_len(&self.record);
        encoding::key_len(1)
            + encoded_len_varint(record as u64)
            + record
            + bytes_field_len(2, self.shard_id.as_bytes())
            + bytes_field_len(3, self.receipt_handle.as_bytes())
            + varint_field_len(4, u64::from(self.receive_count))
    }

    fn encode(&self, buf: &mut impl BufMut) {
        let mut head = Small::new();
        head.key(MESSAGES_TAG, WireType::LengthDelimited);
        head.varint(self.len() as u64);
        head.put_to(buf);
        encode_entry(&self.record, buf);
        put_bytes_field(2, self.shard_id.as_bytes(), buf);
        put_bytes_field(3, self.receipt_handle.as_bytes(), buf);
        if self.receive_count != 0 {
            encoding::uint32::encode(4, &self.receive_count, buf);
        }
    }
}

const MESSAGES_TAG: u32 = 1;

/// The messages of a receive (`shardlog.v1.ReceiveMessagesResponse`), written from the stored
/// records as `GetRecordsResponse` writes them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReceiveMessagesResponse {
    /// The messages, in order per message group. A decoded answer holds every message here.
    pub messages: Vec<pb::Message>,
    /// Messages a server sends from stored records, on the wire after those of `messages`.
    /// Decoding never fills it.
    pub outgoing: Vec<OutgoingMessage>,
}

impl Message for ReceiveMessagesResponse {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        encoding::message::encode_repeated(MESSAGES_TAG, &self.messages, buf);
        for m in &self.outgoing {
            m.encode(buf);
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: encoding::DecodeContext,
    ) -> Result<(), DecodeError> {
        match tag {
            MESSAGES_TAG => {
                encoding::message::merge_repeated(wire_type, &mut self.messages, buf, ctx)
            }
            _ => encoding::skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        encoding::message::encoded_len_repeated(MESSAGES_TAG, &self.messages)
            + self
                .outgoing
                .iter()
                .map(|m| {
                    let len = m.len();
                    encoding::key_len(MESSAGES_TAG) + encoded_len_varint(len as u64) + len
                })
                .sum::<usize>()
    }

    fn clear(&mut self) {
        *self = ReceiveMessagesResponse::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{SequenceNumber, Timestamp};
    use bytes::Bytes;

    /// A stored record as a `pb::Record`: what a consumer decodes from the answers that this
    /// module encodes straight from stored records, the reference the tests compare with.
    fn record(r: crate::storage::StoredRecord) -> pb::Record {
        let text = |b: &bytes::Bytes| String::from_utf8_lossy(b).into_owned();
        pb::Record {
            sequence_number: r.sequence.get(),
            partition_key: text(&r.partition_key),
            // As the encoder above writes it: the stored u64 taken as the wire's int64.
            approximate_arrival_timestamp_ms: r.timestamp_ms.as_millis() as i64,
            explicit_hash_key: r
                .explicit_hash_key
                .map(|k| crate::stream::HashKey(k).to_string())
                .unwrap_or_default(),
            message_group_id: r.message_group_id.as_ref().map(text).unwrap_or_default(),
            deduplication_id: r.deduplication_id.as_ref().map(text).unwrap_or_default(),
            attributes: r
                .attributes
                .iter()
                .map(|a| {
                    let value = pb::AttributeValue {
                        data_type: a.kind.name().to_owned(),
                        string_value: a.text().unwrap_or_default().to_owned(),
                        binary_value: match a.text() {
                            Some(_) => bytes::Bytes::new(),
                            None => bytes::Bytes::copy_from_slice(a.value),
                        },
                    };
                    (a.name.to_owned(), value)
                })
                .collect(),
            data: r.data,
        }
    }

    fn attributes(pairs: &[(&str, AttributeType, &[u8])]) -> crate::storage::Attributes {
        let pairs: Vec<_> = pairs
            .iter()
            .map(|&(name, kind, value)| Attribute { name, kind, value })
            .collect();
        crate::storage::Attributes::encode(&pairs).unwrap()
    }

    fn stored(sequence: u64) -> StoredRecord {
        StoredRecord {
            sequence: SequenceNumber::new(sequence),
            timestamp_ms: Timestamp::from_millis(1_700_000_000_123),
            partition_key: Bytes::from_static("clé-ü".as_bytes()),
            data: Bytes::from(vec![sequence as u8; 300]),
            explicit_hash_key: None,
            message_group_id: None,
            deduplication_id: None,
            attributes: crate::storage::Attributes::empty(),
        }
    }

    /// One attribute of each kind, each alone: a map of one entry encodes the same in any order.
    fn with_one_attribute() -> Vec<StoredRecord> {
        [
            ("s", AttributeType::String, "värde".as_bytes()),
            ("n", AttributeType::Number, b"3.015e2".as_slice()),
            ("b", AttributeType::Binary, [0u8, 255, 7].as_slice()),
            (
                "l",
                AttributeType::StringArray,
                br#"["a",1,null]"#.as_slice(),
            ),
        ]
        .into_iter()
        .enumerate()
        .map(|(i, (name, kind, value))| StoredRecord {
            attributes: attributes(&[(name, kind, value)]),
            ..stored(10 + i as u64)
        })
        .collect()
    }

    fn varied() -> Vec<StoredRecord> {
        let mut all = vec![
            stored(0),
            stored(1),
            StoredRecord {
                explicit_hash_key: Some(u128::MAX),
                message_group_id: Some(Bytes::from_static(b"group-7")),
                deduplication_id: Some(Bytes::from_static(b"dedup-42")),
                ..stored(2)
            },
            StoredRecord {
                explicit_hash_key: Some(0),
                message_group_id: Some(Bytes::new()),
                deduplication_id: Some(Bytes::new()),
                data: Bytes::new(),
                timestamp_ms: Timestamp::UNIX_EPOCH,
                ..stored(300)
            },
            StoredRecord {
                partition_key: Bytes::from_static("キー".as_bytes()),
                message_group_id: Some(Bytes::from_static("é".as_bytes())),
                ..stored(u64::MAX)
            },
        ];
        all.push(StoredRecord {
            explicit_hash_key: Some(12_345_678_901_234_567_890),
            ..stored(1 << 40)
        });
        all.extend(with_one_attribute());
        all.push(StoredRecord {
            message_group_id: Some(Bytes::from_static(b"g")),
            attributes: attributes(&[
                ("zeta", AttributeType::String, b"last"),
                ("alpha", AttributeType::Binary, &[1, 2, 3]),
                ("mid.name-x_y", AttributeType::Number, b"-0.5"),
                ("long", AttributeType::String, &[b'x'; 300]),
            ]),
            ..stored(77)
        });
        // Lengths and values whose varints take more than one byte, up to the longest.
        all.push(StoredRecord {
            partition_key: Bytes::from("ключ".repeat(40)),
            data: Bytes::from(vec![9u8; 70_000]),
            timestamp_ms: Timestamp::from_millis(u64::MAX),
            ..stored(u64::MAX - 1)
        });
        all
    }

    /// What the generated code sends today for the same records.
    fn generated_answer(records: &[StoredRecord]) -> Vec<pb::Record> {
        records.iter().cloned().map(record).collect()
    }

    #[test]
    fn frames_sent_in_pieces_decode_as_one_field_and_leave_the_rest_alone() {
        let answer = GetRecordsResponse {
            next_shard_iterator: "next".into(),
            millis_behind_latest: 3,
            frames: vec![Bytes::from_static(b"abc"), Bytes::from_static(b"defg")],
            frames_first_sequence: 7,
            frames_end_sequence: 12,
            ..Default::default()
        };
        let bytes = answer.encode_to_vec();
        assert_eq!(bytes.len(), answer.encoded_len());
        let decoded = GetRecordsResponse::decode(Bytes::from(bytes)).expect("decodes");
        assert_eq!(decoded.frames, [Bytes::from_static(b"abcdefg")]);
        assert_eq!(
            (decoded.frames_first_sequence, decoded.frames_end_sequence),
            (7, 12)
        );
        assert_eq!(decoded.next_shard_iterator, "next");
        assert!(decoded.records.is_empty());
        // No frames: none of the three fields is on the wire.
        let plain = GetRecordsResponse::default();
        assert!(plain.encode_to_vec().is_empty());
    }

    #[test]
    fn outgoing_records_decode_as_the_records_the_conversion_makes() {
        let records = varied();
        let answer = GetRecordsResponse {
            records: Vec::new(),
            next_shard_iterator: "next".into(),
            millis_behind_latest: 17,
            child_shards: vec![child()],
            outgoing: records.clone().into(),
            ..Default::default()
        };
        let bytes = answer.encode_to_vec();
        assert_eq!(bytes.len(), answer.encoded_len());
        let decoded = GetRecordsResponse::decode(&bytes[..]).expect("decodes");
        assert_eq!(decoded.records, generated_answer(&records));
        assert_eq!(decoded.next_shard_iterator, "next");
        assert_eq!(decoded.millis_behind_latest, 17);
        assert_eq!(decoded.child_shards, vec![child()]);
        assert!(decoded.outgoing.is_empty());
    }

    /// A child shard after a merge: two parents.
    fn child() -> pb::ChildShard {
        pb::ChildShard {
            shard_id: "shardId-000000000005".into(),
            parent_shards: vec!["shardId-000000000003".into(), "shardId-000000000004".into()],
            starting_hash_key: "0".into(),
            ending_hash_key: "340282366920938463463374607431768211455".into(),
        }
    }

    #[test]
    fn a_stored_record_encodes_to_the_bytes_of_its_converted_record() {
        // Records of at most one attribute: prost writes a map in its hash order.
        for r in varied().into_iter().filter(|r| r.attributes.len() <= 1) {
            let mut ours = Vec::new();
            encode_entry(&r, &mut ours);
            let mut expected = Vec::new();
            encoding::message::encode(RECORDS_TAG, &record(r), &mut expected);
            assert_eq!(ours, expected);
        }
    }

    #[test]
    fn an_event_round_trips_with_records_of_both_kinds() {
        let records = varied();
        let event = SubscribeToShardEvent {
            records: generated_answer(&records[..2]),
            continuation_sequence_number: Some(u64::MAX),
            millis_behind_latest: -1,
            child_shards: vec![child()],
            outgoing: records[2..].to_vec().into(),
        };
        let bytes = event.encode_to_vec();
        assert_eq!(bytes.len(), event.encoded_len());
        let decoded = SubscribeToShardEvent::decode(&bytes[..]).expect("decodes");
        assert_eq!(decoded.records, generated_answer(&records));
        assert_eq!(decoded.continuation_sequence_number, Some(u64::MAX));
        assert_eq!(decoded.millis_behind_latest, -1);
        assert_eq!(decoded.child_shards, vec![child()]);
    }

    #[test]
    fn a_continuation_of_zero_is_sent_and_an_absent_one_is_not() {
        let zero = SubscribeToShardEvent {
            continuation_sequence_number: Some(0),
            ..Default::default()
        };
        let bytes = zero.encode_to_vec();
        assert!(!bytes.is_empty(), "an explicit 0 is on the wire");
        let decoded = SubscribeToShardEvent::decode(&bytes[..]).expect("decodes");
        assert_eq!(decoded.continuation_sequence_number, Some(0));
        let absent = SubscribeToShardEvent::decode(&[][..]).expect("decodes");
        assert_eq!(absent.continuation_sequence_number, None);
    }

    #[test]
    fn an_empty_event_is_empty_on_the_wire() {
        assert!(SubscribeToShardEvent::default().encode_to_vec().is_empty());
        assert!(GetRecordsResponse::default().encode_to_vec().is_empty());
    }

    #[test]
    fn unknown_fields_are_skipped_when_decoding() {
        let mut bytes = Vec::new();
        encoding::string::encode(9, &"later".to_owned(), &mut bytes);
        encoding::int64::encode(3, &5, &mut bytes);
        let decoded = GetRecordsResponse::decode(&bytes[..]).expect("decodes");
        assert_eq!(decoded.millis_behind_latest, 5);
    }

    /// `records` as the repeated field 1 of a message, by prost's generated encoder.
    fn encoded_records(records: &[pb::Record]) -> Vec<u8> {
        let mut bytes = Vec::new();
        encoding::message::encode_repeated(RECORDS_TAG, records, &mut bytes);
        bytes
    }

    #[test]
    fn records_decode_the_same_in_place_and_through_a_split_buffer() {
        let records = generated_answer(&varied());
        let bytes = encoded_records(&records);
        let whole = GetRecordsResponse::decode(&bytes[..]).expect("decodes");
        assert_eq!(whole.records, records);
        for cut in [1, 7, bytes.len() / 2, bytes.len() - 1] {
            let (a, b) = bytes.split_at(cut);
            let split = SubscribeToShardEvent::decode(a.chain(b)).expect("decodes");
            assert_eq!(split.records, records, "split at {cut}");
        }
    }

    #[test]
    fn a_record_of_an_unusual_shape_decodes_as_prost_decodes_it() {
        let record = generated_answer(&varied()).remove(2);
        let mut body = record.encode_to_vec();
        // A field this version does not know, then `data` and `sequence_number` again: the
        // unknown field is skipped, the last value of a field wins.
        encoding::string::encode(9, &"future".to_owned(), &mut body);
        encoding::bytes::encode(3, &bytes::Bytes::from_static(b"again"), &mut body);
        encoding::uint64::encode(1, &77, &mut body);
        let mut bytes = Vec::new();
        encoding::bytes::encode(RECORDS_TAG, &body, &mut bytes);
        let decoded = GetRecordsResponse::decode(&bytes[..]).expect("decodes");
        let expected = pb::Record::decode(&body[..]).expect("prost decodes it");
        assert_eq!(expected.sequence_number, 77);
        assert_eq!(&expected.data[..], b"again");
        assert_eq!(decoded.records, vec![expected]);
    }

    #[test]
    fn a_record_that_is_not_valid_is_refused_as_prost_refuses_it() {
        let mut bad_text = Vec::new();
        encoding::bytes::encode(2, &b"\xff\xfe".to_vec(), &mut bad_text);
        let mut bad_varint = Vec::new();
        bad_varint.push(1 << 3);
        bad_varint.extend_from_slice(&[0xff; 10]);
        let mut past_end = Vec::new();
        encoding::bytes::encode(3, &vec![1u8; 8], &mut past_end);
        past_end.truncate(past_end.len() - 3);
        for body in [bad_text, bad_varint, past_end] {
            let mut bytes = Vec::new();
            encoding::bytes::encode(RECORDS_TAG, &body, &mut bytes);
            assert!(pb::Record::decode(&body[..]).is_err());
            assert!(GetRecordsResponse::decode(&bytes[..]).is_err());
        }
        // An entry longer than the message.
        let mut bytes = Vec::new();
        encode_key(RECORDS_TAG, WireType::LengthDelimited, &mut bytes);
        encode_varint(100, &mut bytes);
        bytes.extend_from_slice(&[0; 10]);
        assert!(GetRecordsResponse::decode(&bytes[..]).is_err());
    }

    #[test]
    fn varints_are_read_as_protobuf_writes_them() {
        for v in [0u64, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut b = Vec::new();
            encode_varint(v, &mut b);
            let mut i = 0;
            assert_eq!(read_varint(&b, &mut i), Some(v));
            assert_eq!(i, b.len());
        }
        let mut i = 0;
        assert_eq!(read_varint(&[0x80, 0x80], &mut i), None, "unterminated");
    }

    #[test]
    fn hash_keys_are_written_in_decimal() {
        for k in [0u128, 9, 10, 1 << 64, u128::MAX] {
            let (digits, at) = decimal(k);
            assert_eq!(
                std::str::from_utf8(&digits[at..]),
                Ok(k.to_string().as_str())
            );
        }
    }

    #[test]
    fn a_queue_message_encodes_byte_for_byte_as_the_generated_message_would() {
        let mut r = stored(7);
        r.attributes = attributes(&[("a", AttributeType::String, b"x")]);
        let outgoing = OutgoingMessage {
            record: r.clone(),
            shard_id: "shardId-000000000001".into(),
            receipt_handle: "handle".into(),
            receive_count: 3,
        };
        let ours = ReceiveMessagesResponse {
            messages: Vec::new(),
            outgoing: vec![outgoing.clone(), outgoing],
        };
        let message = pb::Message {
            record: Some(record(r)),
            shard_id: "shardId-000000000001".into(),
            receipt_handle: "handle".into(),
            receive_count: 3,
        };
        let mut expected = Vec::new();
        for m in [&message, &message] {
            prost::encoding::message::encode(1, m, &mut expected);
        }
        let bytes = ours.encode_to_vec();
        assert_eq!(bytes.len(), ours.encoded_len());
        assert_eq!(bytes, expected);
        let decoded = ReceiveMessagesResponse::decode(bytes.as_slice()).unwrap();
        assert_eq!(decoded.messages, vec![message.clone(), message]);
    }
}
