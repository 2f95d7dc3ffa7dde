//! The JSON the bench sends and reads: request bodies written straight into a reused buffer
//! (no value tree per record, base64 encoded in place), answers parsed into typed structs that
//! borrow their strings from the answer, and Kinesis sequence numbers compared as the decimal
//! numbers they are.
//!
//! ```text
//!  PutRecords   {"StreamName":"s","Records":[{"PartitionKey":"k1","Data":"eHh4…"},…]}
//!  GetRecords   {"ShardIterator":"…","Limit":10000}
//!        ◀──    {"Records":[{"SequenceNumber":"…","Data":"eHh4…",…},…],
//!                "NextShardIterator":"…","MillisBehindLatest":0}
//! ```

use std::borrow::Cow;
use std::cmp::Ordering;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::{BufMut, Bytes, BytesMut};
use serde::Deserialize;

/// The content type of every request and answer.
pub const JSON_CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// Appends `s` to `buf` as a JSON string.
fn put_json_string(buf: &mut BytesMut, s: &str) {
    buf.put_u8(b'"');
    let mut plain = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape: Option<&[u8]> = match b {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            b'\n' => Some(b"\\n"),
            b'\r' => Some(b"\\r"),
            b'\t' => Some(b"\\t"),
            0..=0x1f => None,
            _ => continue,
        };
        buf.put_slice(&s.as_bytes()[plain..i]);
        match escape {
            Some(e) => buf.put_slice(e),
            None => buf.put_slice(format!("\\u{b:04x}").as_bytes()),
        }
        plain = i + 1;
    }
    buf.put_slice(&s.as_bytes()[plain..]);
    buf.put_u8(b'"');
}

/// Writes request bodies into one buffer that every request of a producer or reader reuses.
///
/// Each body is split off the buffer as `Bytes`; once the request that carried it is written
/// and dropped, the buffer is again the allocation's only owner and the next body reuses it.
#[derive(Debug, Default)]
pub struct BodyWriter {
    buf: BytesMut,
    /// The next record of a PutRecords body is not the first: it needs a comma.
    more: bool,
}

impl BodyWriter {
    /// Starts a PutRecords body for `stream`, with room for `records` records of about
    /// `record_bytes` bytes.
    pub fn begin_put_records(&mut self, stream: &str, records: usize, record_bytes: usize) {
        let per_record = base64::encoded_len(record_bytes, true).unwrap_or(record_bytes) + 48;
        self.buf.clear();
        self.buf.reserve(64 + stream.len() + records * per_record);
        self.buf.put_slice(b"{\"StreamName\":");
        put_json_string(&mut self.buf, stream);
        self.buf.put_slice(b",\"Records\":[");
        self.more = false;
    }

    /// Adds a record to the PutRecords body begun: its key, and its data in base64.
    pub fn put_record(&mut self, partition_key: &str, data: &[u8]) {
        if self.more {
            self.buf.put_u8(b',');
        }
        self.more = true;
        self.buf.put_slice(b"{\"PartitionKey\":");
        put_json_string(&mut self.buf, partition_key);
        self.buf.put_slice(b",\"Data\":\"");
        let start = self.buf.len();
        // Invariant: a slice's base64 length fits a usize (it is 4/3 of the slice's).
        let encoded = base64::encoded_len(data.len(), true).expect("base64 length fits usize");
        self.buf.resize(start + encoded, 0);
        let written = STANDARD
            .encode_slice(data, &mut self.buf[start..])
            .expect("the buffer was sized by encoded_len");
        debug_assert_eq!(written, encoded);
        self.buf.put_slice(b"\"}");
    }

    /// Ends the PutRecords body begun and hands it over.
    pub fn finish_put_records(&mut self) -> Bytes {
        self.buf.put_slice(b"]}");
        self.buf.split().freeze()
    }

    /// A GetRecords body.
    pub fn get_records(&mut self, iterator: &str, limit: u32) -> Bytes {
        self.buf.clear();
        self.buf.put_slice(b"{\"ShardIterator\":");
        put_json_string(&mut self.buf, iterator);
        self.buf
            .put_slice(format!(",\"Limit\":{limit}}}").as_bytes());
        self.buf.split().freeze()
    }
}

/// The answer to PutRecords.
#[derive(Debug, Deserialize)]
pub struct PutRecordsOutput<'a> {
    #[serde(rename = "FailedRecordCount", default)]
    pub failed_record_count: u64,
    /// One entry per record, in request order.
    #[serde(rename = "Records", borrow)]
    pub records: Vec<PutRecordsResultEntry<'a>>,
}

/// One record's result: a shard and sequence number, or an error.
#[derive(Debug, Deserialize)]
pub struct PutRecordsResultEntry<'a> {
    #[serde(rename = "SequenceNumber", borrow, default)]
    pub sequence_number: Option<Cow<'a, str>>,
    #[serde(rename = "ShardId", borrow, default)]
    pub shard_id: Option<Cow<'a, str>>,
    #[serde(rename = "ErrorCode", borrow, default)]
    pub error_code: Option<Cow<'a, str>>,
    #[serde(rename = "ErrorMessage", borrow, default)]
    pub error_message: Option<Cow<'a, str>>,
}

/// The answer to GetRecords; the fields the bench does not use are skipped.
#[derive(Debug, Deserialize)]
pub struct GetRecordsOutput<'a> {
    #[serde(rename = "Records", borrow)]
    pub records: Vec<RecordOutput<'a>>,
    /// Absent once a closed shard has been read to its end.
    #[serde(rename = "NextShardIterator", borrow, default)]
    pub next_shard_iterator: Option<Cow<'a, str>>,
    #[serde(rename = "MillisBehindLatest", default)]
    pub millis_behind_latest: u64,
}

/// A record read.
#[derive(Debug, Deserialize)]
pub struct RecordOutput<'a> {
    #[serde(rename = "SequenceNumber", borrow)]
    pub sequence_number: Cow<'a, str>,
    /// Base64.
    #[serde(rename = "Data", borrow)]
    pub data: Cow<'a, str>,
}

/// The answer to GetShardIterator.
#[derive(Debug, Deserialize)]
pub struct ShardIteratorOutput {
    #[serde(rename = "ShardIterator")]
    pub shard_iterator: String,
}

/// The answer to DescribeStreamSummary, as far as the setup needs it.
#[derive(Debug, Deserialize)]
pub struct DescribeStreamSummaryOutput {
    #[serde(rename = "StreamDescriptionSummary")]
    pub summary: StreamSummary,
}

#[derive(Debug, Deserialize)]
pub struct StreamSummary {
    /// `CREATING`, `ACTIVE`, `UPDATING` or `DELETING`.
    #[serde(rename = "StreamStatus")]
    pub status: String,
}

/// A Kinesis sequence number: a decimal string, ordered as the number it writes. shardlog's
/// fit 64 bits; kinesalite's and AWS's have 56 digits, more than any integer type holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KinesisSequence(String);

impl KinesisSequence {
    /// `None` unless `text` is a decimal number.
    pub fn new(text: &str) -> Option<KinesisSequence> {
        (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
            .then(|| KinesisSequence(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Compares two decimal numbers written without sign: by length without leading zeros, then
/// digit by digit.
pub fn compare_decimal(a: &str, b: &str) -> Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

impl Ord for KinesisSequence {
    fn cmp(&self, other: &Self) -> Ordering {
        compare_decimal(&self.0, &other.0)
    }
}

impl PartialOrd for KinesisSequence {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_put_records_body_is_the_json_kinesis_expects() {
        let mut writer = BodyWriter::default();
        writer.begin_put_records("orders", 2, 3);
        writer.put_record("k1", b"abc");
        writer.put_record("k\"2\n\u{1}", &[0xff, 0x00]);
        let body = writer.finish_put_records();
        let parsed: serde_json::Value = serde_json::from_slice(&body).expect("valid JSON");
        assert_eq!(
            parsed,
            serde_json::json!({
                "StreamName": "orders",
                "Records": [
                    {"PartitionKey": "k1", "Data": "YWJj"},
                    {"PartitionKey": "k\"2\n\u{1}", "Data": "/wA="},
                ],
            })
        );
    }

    #[test]
    fn the_writer_starts_each_body_afresh() {
        let mut writer = BodyWriter::default();
        writer.begin_put_records("a", 1, 1);
        writer.put_record("k", b"x");
        let first = writer.finish_put_records();
        writer.begin_put_records("b", 1, 1);
        writer.put_record("k", b"y");
        let second = writer.finish_put_records();
        assert_eq!(
            &first[..],
            br#"{"StreamName":"a","Records":[{"PartitionKey":"k","Data":"eA=="}]}"#
        );
        assert_eq!(
            &second[..],
            br#"{"StreamName":"b","Records":[{"PartitionKey":"k","Data":"eQ=="}]}"#
        );
        let get = writer.get_records("AAAA/+==", 10_000);
        assert_eq!(&get[..], br#"{"ShardIterator":"AAAA/+==","Limit":10000}"#);
    }

    #[test]
    fn answers_borrow_their_strings_and_skip_unknown_fields() {
        let answer = br#"{"Records":[{"SequenceNumber":"49546986683135544286507457936321625675700192471156785154",
            "ApproximateArrivalTimestamp":1701760153.593,"Data":"eHh4","PartitionKey":"k1"}],
            "NextShardIterator":"it/2","MillisBehindLatest":0}"#;
        let out: GetRecordsOutput<'_> = serde_json::from_slice(answer).expect("parses");
        assert!(matches!(out.records[0].data, Cow::Borrowed("eHh4")));
        assert_eq!(out.next_shard_iterator.as_deref(), Some("it/2"));
        let put = br#"{"FailedRecordCount":1,"Records":[{"SequenceNumber":"7","ShardId":"shardId-000000000001"},
            {"ErrorCode":"InternalFailure","ErrorMessage":"Internal Service Failure"}],"EncryptionType":"NONE"}"#;
        let out: PutRecordsOutput<'_> = serde_json::from_slice(put).expect("parses");
        assert_eq!(out.failed_record_count, 1);
        assert_eq!(
            out.records[1].error_code.as_deref(),
            Some("InternalFailure")
        );
        assert_eq!(
            out.records[0].shard_id.as_deref(),
            Some("shardId-000000000001")
        );
    }

    #[test]
    fn sequence_numbers_compare_as_numbers_of_any_length() {
        let seq = |s| KinesisSequence::new(s).expect("decimal");
        assert!(seq("10") > seq("9"));
        assert!(seq("0009") < seq("10"));
        assert_eq!(seq("007").cmp(&seq("7")), Ordering::Equal);
        let long = "49546986683135544286507457936321625675700192471156785154";
        let longer = "49546986683135544286507457936321625675700192471156785155";
        assert!(seq(long) < seq(longer));
        assert!(seq(long) > seq("18446744073709551615"));
        assert_eq!(KinesisSequence::new(""), None);
        assert_eq!(KinesisSequence::new("12a"), None);
        assert_eq!(KinesisSequence::new("-1"), None);
    }
}
