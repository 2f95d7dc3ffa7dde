//! Shard iterators (`broker::iterator`) and the Kinesis API's page tokens (`kinesis::token`).

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::broker::iterator::{IteratorError, KEY_LEN};
use crate::broker::{IteratorCodec, IteratorPosition, DEFAULT_ITERATOR_TTL};
use crate::kinesis::token::{PageToken, DEFAULT_NEXT_TOKEN_TTL};
use crate::route::{Filter, FilterScope};
use crate::storage::{SequenceNumber, Timestamp};
use crate::stream::StreamName;

/// The key the iterator checks sign with.
const ITERATOR_KEY: [u8; KEY_LEN] = [7; KEY_LEN];
/// Bytes of the truncated MAC closing an iterator token.
const ITERATOR_MAC_LEN: usize = 16;

/// `body` signed as an iterator token with [`ITERATOR_KEY`].
fn seal_iterator(body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&ITERATOR_KEY)
        .expect("HMAC accepts keys of any length");
    mac.update(body);
    let full = mac.finalize().into_bytes();
    URL_SAFE_NO_PAD.encode([body, &full[..ITERATOR_MAC_LEN]].concat())
}

/// Shard iterators and page tokens. Mode `% 3`: 0 a shard iterator as given, 1 a shard
/// iterator body signed by the check, 2 a page token. A token that decodes encodes to one that
/// decodes the same; a shard iterator is refused under another key, once edited, and once
/// past its lifetime.
pub fn iterator_token(input: &[u8]) {
    let Some((&mode, rest)) = input.split_first() else {
        return;
    };
    match mode % 3 {
        0 => check_iterator(&String::from_utf8_lossy(rest), mode),
        1 => check_iterator(&seal_iterator(rest), mode),
        _ => check_page_token(&String::from_utf8_lossy(rest)),
    }
}

fn check_iterator(token: &str, mode: u8) {
    let codec = IteratorCodec::new(ITERATOR_KEY, DEFAULT_ITERATOR_TTL);
    let issued_now = Timestamp::from_millis(0);
    let position = match codec.decode(token, issued_now) {
        Ok(position) => position,
        Err(IteratorError::Malformed) => return,
        Err(e) => panic!("a token decoded at time 0 cannot have expired: {e}"),
    };
    let again = codec.encode(&position);
    assert_eq!(
        codec.decode(&again, issued_now).as_ref(),
        Ok(&position),
        "a token survives its own encoding"
    );

    let other = IteratorCodec::new([8; KEY_LEN], DEFAULT_ITERATOR_TTL);
    assert_eq!(
        other.decode(token, issued_now),
        Err(IteratorError::Malformed),
        "another key refuses the token"
    );

    let mut edited = token.as_bytes().to_vec();
    let at = usize::from(mode) % edited.len();
    edited[at] = if edited[at] == b'A' { b'B' } else { b'A' };
    let edited = String::from_utf8(edited).expect("base64 text stays ASCII");
    assert!(
        codec.decode(&edited, issued_now).is_err(),
        "an edited token is refused"
    );

    let late = position
        .issued_at_ms
        .saturating_add(DEFAULT_ITERATOR_TTL + Duration::from_millis(1));
    if late.saturating_duration_since(position.issued_at_ms) > DEFAULT_ITERATOR_TTL {
        assert!(
            matches!(
                codec.decode(token, late),
                Err(IteratorError::Expired { .. })
            ),
            "a token past its lifetime has expired"
        );
    }
}

fn check_page_token(text: &str) {
    let now = Timestamp::from_millis(0);
    for kind in ["shards", "streams", "consumers"] {
        if let Ok(token) = PageToken::decode(text, kind, now, DEFAULT_NEXT_TOKEN_TTL) {
            assert_eq!(token.kind, kind);
            let again = PageToken::decode(&token.encode(), kind, now, DEFAULT_NEXT_TOKEN_TTL);
            assert_eq!(
                again.ok().as_ref(),
                Some(&token),
                "a page token survives its own encoding"
            );
        }
    }
}

/// A shard iterator with and without a filter (as tokens and as bodies to sign), and page
/// tokens of each listing.
pub fn iterator_token_seeds() -> Vec<Vec<u8>> {
    let codec = IteratorCodec::new(ITERATOR_KEY, DEFAULT_ITERATOR_TTL);
    let mut position = IteratorPosition {
        stream: StreamName::new("orders").expect("a valid seed name"),
        stream_created_at_ms: Timestamp::from_millis(1_700_000_000_000),
        shard: 3,
        sequence: SequenceNumber::new(42),
        issued_at_ms: Timestamp::from_millis(0),
        filter: None,
    };
    let mut seeds = Vec::new();
    for filter in [
        None,
        Some(Filter {
            pattern: r#"{"kind": ["order"]}"#.to_owned(),
            scope: FilterScope::Data,
        }),
    ] {
        position.filter = filter;
        let token = codec.encode(&position);
        let raw = URL_SAFE_NO_PAD.decode(&token).expect("a token is base64");
        seeds.push([&[0][..], token.as_bytes()].concat());
        seeds.push([&[1][..], &raw[..raw.len() - ITERATOR_MAC_LEN]].concat());
    }
    for kind in ["shards", "streams", "consumers"] {
        let token = PageToken {
            kind: kind.to_owned(),
            stream: "orders".to_owned(),
            after: "shardId-000000000002".to_owned(),
            limit: 100,
            issued_at: Timestamp::from_millis(0),
        };
        seeds.push([&[2][..], token.encode().as_bytes()].concat());
    }
    seeds
}
