//! The checks behind the fuzz targets of `fuzz/`: one function per decoder of untrusted bytes,
//! taking the raw input, and the seed inputs each corpus starts from. Not part of the API.
//!
//! Each check asserts more than "no panic" where a property can be stated (a decoded value
//! survives its own encoding; damage is refused, never served; two decoders of the same bytes
//! agree), and panics when one fails. A fuzz target is one call to its check, and
//! `tests/fuzz_regressions.rs` replays every committed corpus file through the same functions,
//! so the properties are written once and hold on stable Rust too.
//!
//! Formats sealed by a CRC or a MAC take one leading mode byte. Bit 0 clear: the rest is fed
//! as it is (a damaged file, a forged token). Bit 0 set: the check seals the rest with a
//! correct CRC or MAC first, so the fuzzer reaches the decoder behind the checksum instead of
//! stopping at it. The other bits vary what is checked (which part of a batch is read, which
//! byte is damaged).
//!
//! | check              | decoder                                                           |
//! |--------------------|-------------------------------------------------------------------|
//! | [`frame`]          | `storage::record`: batch header, payload CRC, records, attributes |
//! | [`meta_journal`]   | `meta`: the journal scan and its command bodies, then replay      |
//! | [`meta_snapshot`]  | `meta`: the snapshot file and its state                           |
//! | [`iterator_token`] | `broker::iterator` shard iterators, `kinesis::token` page tokens  |
//! | [`proto_decode`]   | `proto::wire`: the read answers' hand-written decoding            |
//! | [`filter_pattern`] | `route`: pattern parsing and compiling, event JSON, matching      |
//! | [`kinesis_json`]   | `kinesis::value` JSON bodies, then the schema's checks            |
//! | [`kinesis_cbor`]   | `kinesis::value` CBOR bodies, then the schema's checks            |

mod frame;
mod kinesis;
mod meta;
mod proto;
mod route;
mod token;

pub use frame::{decode_frame, frame, frame_seeds};
pub use kinesis::{kinesis_cbor, kinesis_cbor_seeds, kinesis_json, kinesis_json_seeds};
pub use meta::{meta_journal, meta_journal_seeds, meta_snapshot, meta_snapshot_seeds};
pub use proto::{proto_decode, proto_decode_seeds};
pub use route::{filter_pattern, filter_pattern_seeds};
pub use token::{iterator_token, iterator_token_seeds};

/// The mode bit that has a check seal its input with a correct CRC or MAC.
const SEAL: u8 = 1;

/// A check: feeds one input to a decoder and asserts its properties.
pub type Check = fn(&[u8]);
/// A target's seed inputs.
pub type Seeds = fn() -> Vec<Vec<u8>>;

/// Every check by its target's name, with its seeds: what the corpus replay and the seeding
/// iterate over.
pub const TARGETS: &[(&str, Check, Seeds)] = &[
    ("frame", frame, frame_seeds),
    ("meta_journal", meta_journal, meta_journal_seeds),
    ("meta_snapshot", meta_snapshot, meta_snapshot_seeds),
    ("iterator_token", iterator_token, iterator_token_seeds),
    ("proto_decode", proto_decode, proto_decode_seeds),
    ("filter_pattern", filter_pattern, filter_pattern_seeds),
    ("kinesis_json", kinesis_json, kinesis_json_seeds),
    ("kinesis_cbor", kinesis_cbor, kinesis_cbor_seeds),
];
