//! The `application/vnd.amazon.eventstream` framing SubscribeToShard answers in. One message:
//!
//! ```text
//! | total length u32 | headers length u32 | prelude CRC32 u32 | headers | payload | message CRC32 u32 |
//!   (big-endian; the prelude CRC covers the first 8 bytes, the message CRC all before it)
//! header: | name length u8 | name | value type u8 (7 = string) | value length u16 | value |
//! ```
//!
//! Events carry `:message-type` `event`, `:event-type` and `:content-type`; errors carry
//! `:message-type` `exception` and `:exception-type`.

use bytes::{BufMut, Bytes, BytesMut};

/// Bytes of the prelude (two lengths and their CRC).
const PRELUDE_LEN: usize = 12;
/// Bytes of the trailing message CRC.
const CRC_LEN: usize = 4;
/// Value type of a string header.
const STRING_HEADER: u8 = 7;
/// Largest message a decoder accepts (the framing allows 16 MiB).
pub const MAX_MESSAGE_LEN: usize = 16 * 1024 * 1024;

/// One message: its string headers and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Headers, in order.
    pub headers: Vec<(String, String)>,
    /// The payload.
    pub payload: Bytes,
}

impl Message {
    /// An event of `event_type`.
    pub fn event(event_type: &str, content_type: &str, payload: Vec<u8>) -> Message {
        Message {
            headers: vec![
                (":message-type".into(), "event".into()),
                (":event-type".into(), event_type.into()),
                (":content-type".into(), content_type.into()),
            ],
            payload: payload.into(),
        }
    }

    /// An exception of `exception_type`.
    pub fn exception(exception_type: &str, content_type: &str, payload: Vec<u8>) -> Message {
        Message {
            headers: vec![
                (":message-type".into(), "exception".into()),
                (":exception-type".into(), exception_type.into()),
                (":content-type".into(), content_type.into()),
            ],
            payload: payload.into(),
        }
    }

    /// The value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The message's bytes. Header names must fit 255 bytes and values 65,535 (the headers
    /// here are fixed names and short type names).
    pub fn encode(&self) -> Bytes {
        let headers_len: usize = self
            .headers
            .iter()
            .map(|(n, v)| 1 + n.len() + 1 + 2 + v.len())
            .sum();
        let total = PRELUDE_LEN + headers_len + self.payload.len() + CRC_LEN;
        let mut out = BytesMut::with_capacity(total);
        out.put_u32(total as u32);
        out.put_u32(headers_len as u32);
        out.put_u32(crc32fast::hash(&out[..8]));
        for (name, value) in &self.headers {
            out.put_u8(name.len() as u8);
            out.put_slice(name.as_bytes());
            out.put_u8(STRING_HEADER);
            out.put_u16(value.len() as u16);
            out.put_slice(value.as_bytes());
        }
        out.put_slice(&self.payload);
        let crc = crc32fast::hash(&out);
        out.put_u32(crc);
        out.freeze()
    }

    /// Reads one message from the front of `buf`: the message and the bytes it took, `Ok(None)`
    /// when `buf` holds only part of one, an error when the bytes are not a valid message.
    pub fn decode(buf: &[u8]) -> Result<Option<(Message, usize)>, FrameError> {
        if buf.len() < PRELUDE_LEN {
            return Ok(None);
        }
        let be32 = |at: usize| u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]);
        let total = be32(0) as usize;
        let headers_len = be32(4) as usize;
        if be32(8) != crc32fast::hash(&buf[..8]) {
            return Err(FrameError("prelude CRC mismatch"));
        }
        if total > MAX_MESSAGE_LEN || total < PRELUDE_LEN + CRC_LEN + headers_len {
            return Err(FrameError("lengths out of range"));
        }
        if buf.len() < total {
            return Ok(None);
        }
        if be32(total - CRC_LEN) != crc32fast::hash(&buf[..total - CRC_LEN]) {
            return Err(FrameError("message CRC mismatch"));
        }
        let mut headers = Vec::new();
        let mut at = PRELUDE_LEN;
        let end = PRELUDE_LEN + headers_len;
        while at < end {
            let name_len = buf[at] as usize;
            at += 1;
            if at + name_len + 3 > end {
                return Err(FrameError("header runs past the headers"));
            }
            let name = std::str::from_utf8(&buf[at..at + name_len])
                .map_err(|_| FrameError("header name is not UTF-8"))?;
            at += name_len;
            if buf[at] != STRING_HEADER {
                return Err(FrameError("header value is not a string"));
            }
            let value_len = u16::from_be_bytes([buf[at + 1], buf[at + 2]]) as usize;
            at += 3;
            if at + value_len > end {
                return Err(FrameError("header value runs past the headers"));
            }
            let value = std::str::from_utf8(&buf[at..at + value_len])
                .map_err(|_| FrameError("header value is not UTF-8"))?;
            at += value_len;
            headers.push((name.to_owned(), value.to_owned()));
        }
        let payload = Bytes::copy_from_slice(&buf[end..total - CRC_LEN]);
        Ok(Some((Message { headers, payload }, total)))
    }
}

/// Bytes that are not an event-stream message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid event-stream message: {0}")]
pub struct FrameError(pub &'static str);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn an_event_has_the_documented_layout() {
        let m = Message::event(
            "initial-response",
            "application/x-amz-json-1.1",
            b"{}".to_vec(),
        );
        let bytes = m.encode();
        assert_eq!(
            u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize,
            bytes.len()
        );
        let (back, used) = Message::decode(&bytes).unwrap().unwrap();
        assert_eq!(used, bytes.len());
        assert_eq!(back.header(":event-type"), Some("initial-response"));
        assert_eq!(back.payload, Bytes::from_static(b"{}"));
    }

    #[test]
    fn a_partial_message_asks_for_more_and_a_flipped_bit_is_refused() {
        let bytes = Message::exception(
            "ResourceNotFoundException",
            "application/json",
            b"{}".to_vec(),
        )
        .encode();
        assert_eq!(Message::decode(&bytes[..bytes.len() - 1]), Ok(None));
        let mut bad = bytes.to_vec();
        let last = bad.len() - 6;
        bad[last] ^= 1;
        assert!(Message::decode(&bad).is_err());
    }

    proptest! {
        #[test]
        fn messages_round_trip(
            headers in proptest::collection::vec(("[:a-z-]{1,20}", "[ -~]{0,40}"), 0..5),
            payload in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let m = Message { headers, payload: payload.into() };
            let bytes = m.encode();
            prop_assert_eq!(Message::decode(&bytes), Ok(Some((m, bytes.len()))));
        }

        #[test]
        fn any_bytes_decode_or_are_refused_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Message::decode(&bytes);
        }
    }
}
