//! The fuzz targets' findings, kept: every committed corpus (`fuzz/corpus/<target>`) replayed
//! through the same checks the targets run (`shardlog::fuzzing`), and each input that ever
//! crashed a decoder fed to it again through its public entry point.

use std::fs;
use std::path::{Path, PathBuf};

use shardlog::fuzzing::{self, TARGETS};
use shardlog::kinesis::value::{self, Encoding};
use shardlog::storage::record::{BatchHeader, FrameError};

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

/// An input that once crashed a target, from `tests/fuzz_regressions/`.
fn finding(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz_regressions")
        .join(name);
    fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Feeds every file of `target`'s committed corpus to its check; returns how many there were.
fn replay(target: &str) -> usize {
    let (_, check, _) = TARGETS
        .iter()
        .find(|(name, _, _)| *name == target)
        .expect("a known target");
    let mut files: Vec<PathBuf> = fs::read_dir(corpus_dir(target))
        .expect("the corpus is committed")
        .map(|entry| entry.expect("a readable corpus entry").path())
        .collect();
    files.sort();
    for file in &files {
        let input = fs::read(file).expect("a readable corpus file");
        let outcome = std::panic::catch_unwind(|| check(&input));
        assert!(outcome.is_ok(), "{} fails its check", file.display());
    }
    files.len()
}

#[test]
fn the_frame_corpus_passes_its_checks() {
    assert!(replay("frame") > 0);
}

#[test]
fn the_meta_journal_corpus_passes_its_checks() {
    assert!(replay("meta_journal") > 0);
}

#[test]
fn the_meta_snapshot_corpus_passes_its_checks() {
    assert!(replay("meta_snapshot") > 0);
}

#[test]
fn the_iterator_token_corpus_passes_its_checks() {
    assert!(replay("iterator_token") > 0);
}

#[test]
fn the_proto_decode_corpus_passes_its_checks() {
    assert!(replay("proto_decode") > 0);
}

#[test]
fn the_filter_pattern_corpus_passes_its_checks() {
    assert!(replay("filter_pattern") > 0);
}

#[test]
fn the_kinesis_json_corpus_passes_its_checks() {
    assert!(replay("kinesis_json") > 0);
}

#[test]
fn the_kinesis_cbor_corpus_passes_its_checks() {
    assert!(replay("kinesis_cbor") > 0);
}

/// Found by `frame`: a header with base sequence `u64::MAX` and one record passed both CRCs
/// and decoded, so one past its last record (`next_sequence`, which every reader computes)
/// overflowed; with two records the decoder's own numbering did.
#[test]
fn a_frame_whose_sequence_range_passes_the_largest_number_is_malformed() {
    let frame = finding("frame-sequence-range-past-max");
    assert!(matches!(
        BatchHeader::decode(&frame),
        Err(FrameError::Malformed {
            count: 1,
            reason: "the batch's sequence range passes the largest sequence number",
        })
    ));
    assert!(fuzzing::decode_frame(&frame).is_err());
    fuzzing::frame(&[&[0][..], &frame].concat());
}

/// Found by `kinesis_json`: an object keyed by `serde_json::Value`'s raw-value marker
/// (`$serde_json::private::RawValue`) is valid JSON, and the decoder reads the key as any other.
/// The check's reference, `serde_json::Value`, refuses it: the check was wrong, not the decoder.
#[test]
fn a_json_body_keyed_by_a_serde_json_marker_decodes_as_any_other_key() {
    let input = finding("kinesis-json-serde-json-marker-key");
    let body = value::decode(&input[1..], Encoding::Json).expect("valid JSON decodes");
    assert!(body.get("$serde_json::private::RawValue").is_some());
    fuzzing::kinesis_json(&input);
}

#[test]
fn every_seed_passes_its_check() {
    for (_, check, seeds) in TARGETS {
        for seed in seeds() {
            check(&seed);
        }
    }
}

/// Writes each target's seeds into its corpus directory, where a fuzzing run starts from
/// them: `cargo test --test fuzz_regressions -- --ignored`.
#[test]
#[ignore = "writes the seed corpora into fuzz/corpus"]
fn write_seed_corpora() {
    for (target, _, seeds) in TARGETS {
        let dir = corpus_dir(target);
        fs::create_dir_all(&dir).expect("the corpus directory can be made");
        for (i, seed) in seeds().iter().enumerate() {
            fs::write(dir.join(format!("seed-{i}")), seed).expect("a seed can be written");
        }
    }
}
