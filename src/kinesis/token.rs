//! Pagination tokens (`NextToken` of ListShards, ListStreams and ListStreamConsumers): where
//! the next page starts, and when the token was issued, in URL-safe base64. A token is not a
//! secret (it lists only what the caller could list anyway), so it is not signed; it expires
//! like Kinesis's, and one that does not decode is `InvalidArgumentException`.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use super::error::{ErrorKind, KinesisError};
use crate::storage::Timestamp;

/// How long a token is honoured (Kinesis: 300 s).
pub const DEFAULT_NEXT_TOKEN_TTL: Duration = Duration::from_secs(300);

/// Where a listing continues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageToken {
    /// Which listing: `shards`, `streams` or `consumers`.
    pub kind: String,
    /// The stream listed (empty for streams).
    pub stream: String,
    /// The last item of the previous page; the next page starts after it.
    pub after: String,
    /// The page size the listing asked for.
    pub limit: usize,
    /// When the token was issued.
    pub issued_at: Timestamp,
}

impl PageToken {
    /// The token's text.
    pub fn encode(&self) -> String {
        let text = format!(
            "{}\n{}\n{}\n{}\n{}",
            self.kind,
            self.stream,
            self.after,
            self.limit,
            self.issued_at.as_millis()
        );
        URL_SAFE_NO_PAD.encode(text)
    }

    /// The token of `text`, for listing `kind`, if it is one and is not older than `ttl`.
    pub fn decode(
        text: &str,
        kind: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<PageToken, KinesisError> {
        let invalid = || KinesisError::invalid(format!("Invalid NextToken: {text}"));
        let raw = URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid())?;
        let raw = String::from_utf8(raw).map_err(|_| invalid())?;
        let parts: Vec<&str> = raw.split('\n').collect();
        let [k, stream, after, limit, issued] = parts[..] else {
            return Err(invalid());
        };
        if k != kind {
            return Err(invalid());
        }
        let token = PageToken {
            kind: k.to_owned(),
            stream: stream.to_owned(),
            after: after.to_owned(),
            limit: limit.parse().map_err(|_| invalid())?,
            issued_at: Timestamp::from_millis(issued.parse().map_err(|_| invalid())?),
        };
        if now.saturating_duration_since(token.issued_at) > ttl {
            return Err(KinesisError::new(
                ErrorKind::ExpiredNextToken,
                format!("The timestamp of NextToken {text} has expired."),
            ));
        }
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn token() -> PageToken {
        PageToken {
            kind: "shards".into(),
            stream: "orders".into(),
            after: "shardId-000000000003".into(),
            limit: 2,
            issued_at: Timestamp::from_millis(1_000_000),
        }
    }

    #[test]
    fn a_token_round_trips_until_it_expires() {
        let t = token();
        let text = t.encode();
        let now = Timestamp::from_millis(1_000_000 + 299_000);
        assert_eq!(
            PageToken::decode(&text, "shards", now, DEFAULT_NEXT_TOKEN_TTL),
            Ok(t)
        );
        let later = Timestamp::from_millis(1_000_000 + 301_000);
        let e = PageToken::decode(&text, "shards", later, DEFAULT_NEXT_TOKEN_TTL).unwrap_err();
        assert_eq!(e.kind, ErrorKind::ExpiredNextToken);
    }

    #[test]
    fn a_token_of_another_listing_is_invalid() {
        let e = PageToken::decode(
            &token().encode(),
            "streams",
            Timestamp::from_millis(1_000_000),
            DEFAULT_NEXT_TOKEN_TTL,
        )
        .unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidArgument);
    }

    proptest! {
        #[test]
        fn any_text_decodes_or_is_refused_without_panicking(text in ".{0,200}") {
            let now = Timestamp::from_millis(1_000_000);
            if let Err(e) = PageToken::decode(&text, "shards", now, DEFAULT_NEXT_TOKEN_TTL) {
                prop_assert!(matches!(e.kind, ErrorKind::InvalidArgument | ErrorKind::ExpiredNextToken));
            }
        }
    }
}
