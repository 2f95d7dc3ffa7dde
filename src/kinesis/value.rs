//! The two encodings the AWS SDKs speak to Kinesis, JSON 1.1 and CBOR 1.1, read into one value
//! tree ([`Value`]) and written from another ([`Out`]).
//!
//! The encodings differ in two places, both handled here:
//!
//! | | JSON (`application/x-amz-json-1.1`) | CBOR (`application/x-amz-cbor-1.1`) |
//! |---|---|---|
//! | blob (`Data`) | base64 text | byte string |
//! | timestamp | epoch seconds, a number with a ms fraction | tag 1 on an integer of epoch **milliseconds** (AWS's reading, not RFC 8949's) |
//!
//! Requests keep their strings borrowed from the body where the encoding allows, so a large
//! PutRecords costs one allocation per entry, not one per field.

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

use crate::storage::Timestamp;

/// Which encoding a request came in, and its answer goes out in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `application/x-amz-json-1.1` (also `application/json`).
    Json,
    /// `application/x-amz-cbor-1.1`.
    Cbor,
}

impl Encoding {
    /// The content type answers carry.
    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Json => "application/x-amz-json-1.1",
            Encoding::Cbor => "application/x-amz-cbor-1.1",
        }
    }

    /// The encoding of a request's `Content-Type`, or `None` when it is not one the SDKs send.
    pub fn of_content_type(content_type: &str) -> Option<Encoding> {
        let essence = content_type.split(';').next().unwrap_or("").trim();
        match essence.to_ascii_lowercase().as_str() {
            "application/x-amz-json-1.1" | "application/x-amz-json-1.0" | "application/json" => {
                Some(Encoding::Json)
            }
            "application/x-amz-cbor-1.1" | "application/cbor" => Some(Encoding::Cbor),
            _ => None,
        }
    }
}

/// A request body, decoded. After the schema's type check, blobs are always `Bytes` and
/// timestamps always `Time`, whatever the encoding.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    /// JSON `null`, CBOR null or undefined.
    Null,
    /// A boolean.
    Bool(bool),
    /// A number (JSON has one kind; CBOR integers and floats both land here).
    Number(f64),
    /// Text.
    Str(Cow<'a, str>),
    /// A CBOR byte string, or a blob once decoded from base64.
    Bytes(Cow<'a, [u8]>),
    /// A timestamp, once the type check has read it: ms since the Unix epoch.
    Time(i64),
    /// An array.
    List(Vec<Value<'a>>),
    /// An object, its members in the order given.
    Map(Vec<(Cow<'a, str>, Value<'a>)>),
}

impl<'a> Value<'a> {
    /// The member called `name` of a map.
    pub fn get(&self, name: &str) -> Option<&Value<'a>> {
        match self {
            Value::Map(members) => members
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v)
                .filter(|v| !matches!(v, Value::Null)),
            _ => None,
        }
    }

    /// The text member `name`.
    pub fn str(&self, name: &str) -> Option<&str> {
        match self.get(name)? {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer member `name` (the type check floors numbers of integer shapes).
    pub fn int(&self, name: &str) -> Option<i64> {
        match self.get(name)? {
            Value::Number(n) => Some(*n as i64),
            _ => None,
        }
    }

    /// The boolean member `name`.
    pub fn bool(&self, name: &str) -> Option<bool> {
        match self.get(name)? {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The blob member `name`.
    pub fn bytes(&self, name: &str) -> Option<&[u8]> {
        match self.get(name)? {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The timestamp member `name`, in ms since the epoch.
    pub fn time(&self, name: &str) -> Option<i64> {
        match self.get(name)? {
            Value::Time(ms) => Some(*ms),
            _ => None,
        }
    }

    /// The list member `name`.
    pub fn list(&self, name: &str) -> Option<&[Value<'a>]> {
        match self.get(name)? {
            Value::List(items) => Some(items),
            _ => None,
        }
    }

    /// The members of a map member `name`.
    pub fn map(&self, name: &str) -> Option<&[(Cow<'a, str>, Value<'a>)]> {
        match self.get(name)? {
            Value::Map(members) => Some(members),
            _ => None,
        }
    }

    /// The text, when this is text.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// Why a body could not be read at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

/// Reads a request body. An empty body reads as an empty map, as the SDKs send for operations
/// without input.
pub fn decode(body: &[u8], encoding: Encoding) -> Result<Value<'_>, DecodeError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Map(Vec::new()));
    }
    match encoding {
        Encoding::Json => serde_json::from_slice(body).map_err(|e| DecodeError(e.to_string())),
        Encoding::Cbor => {
            let value: ciborium::Value =
                ciborium::from_reader(body).map_err(|e| DecodeError(e.to_string()))?;
            from_cbor(value, 0)
        }
    }
}

/// Deepest nesting a CBOR body may have: requests are at most four levels deep.
const MAX_CBOR_DEPTH: usize = 32;

fn from_cbor(value: ciborium::Value, depth: usize) -> Result<Value<'static>, DecodeError> {
    if depth > MAX_CBOR_DEPTH {
        return Err(DecodeError("nesting too deep".into()));
    }
    use ciborium::Value as C;
    Ok(match value {
        C::Null => Value::Null,
        C::Bool(b) => Value::Bool(b),
        C::Integer(i) => Value::Number(i128::from(i) as f64),
        C::Float(f) => Value::Number(f),
        C::Text(s) => Value::Str(Cow::Owned(s)),
        C::Bytes(b) => Value::Bytes(Cow::Owned(b)),
        // Tag 1 (epoch time) and any other tag: the tagged item is the value.
        C::Tag(_, inner) => from_cbor(*inner, depth + 1)?,
        C::Array(items) => Value::List(
            items
                .into_iter()
                .map(|v| from_cbor(v, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        C::Map(members) => Value::Map(
            members
                .into_iter()
                .map(|(k, v)| match k {
                    C::Text(k) => Ok((Cow::Owned(k), from_cbor(v, depth + 1)?)),
                    _ => Err(DecodeError("a map key is not text".into())),
                })
                .collect::<Result<_, _>>()?,
        ),
        _ => return Err(DecodeError("an item of an unknown kind".into())),
    })
}

impl<'de> Deserialize<'de> for Value<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value<'de>, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value<'de>, E> {
        Ok(Value::Number(v as f64))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value<'de>, E> {
        Ok(Value::Number(v as f64))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value<'de>, E> {
        Ok(Value::Number(v))
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Value<'de>, E> {
        Ok(Value::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value<'de>, E> {
        Ok(Value::Str(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Value<'de>, E> {
        Ok(Value::Str(Cow::Owned(v)))
    }

    fn visit_unit<E>(self) -> Result<Value<'de>, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value<'de>, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value<'de>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::List(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value<'de>, A::Error> {
        let mut members = Vec::with_capacity(map.size_hint().unwrap_or(0).min(64));
        while let Some(key) = map.next_key::<Key<'de>>()? {
            let value = map.next_value()?;
            members.push((key.0, value));
        }
        Ok(Value::Map(members))
    }
}

/// A map key, borrowed where the input allows.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// An answer, built by the operations and written in the request's encoding.
#[derive(Debug, Clone, PartialEq)]
pub enum Out {
    /// Null.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// Text.
    Str(String),
    /// A blob: base64 in JSON, a byte string in CBOR.
    Blob(Bytes),
    /// A timestamp: epoch seconds in JSON, tag 1 on epoch ms in CBOR.
    Time(Timestamp),
    /// An array.
    List(Vec<Out>),
    /// A structure: members with fixed names, in order.
    Struct(Vec<(&'static str, Out)>),
    /// A map with keys from data (tags).
    Map(Vec<(String, Out)>),
}

impl Out {
    /// Text.
    pub fn str(s: impl Into<String>) -> Out {
        Out::Str(s.into())
    }

    /// Writes the answer in `encoding`.
    pub fn encode(&self, encoding: Encoding) -> Vec<u8> {
        match encoding {
            Encoding::Json => serde_json::to_vec(self).expect("an answer always serialises"),
            Encoding::Cbor => {
                let mut out = Vec::new();
                ciborium::into_writer(self, &mut out).expect("an answer always serialises");
                out
            }
        }
    }
}

impl Serialize for Out {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Out::Null => serializer.serialize_unit(),
            Out::Bool(b) => serializer.serialize_bool(*b),
            Out::Int(i) => serializer.serialize_i64(*i),
            Out::Str(s) => serializer.serialize_str(s),
            Out::Blob(b) => {
                if serializer.is_human_readable() {
                    serializer.serialize_str(&base64_simd::STANDARD.encode_to_string(b))
                } else {
                    serializer.serialize_bytes(b)
                }
            }
            Out::Time(t) => {
                if serializer.is_human_readable() {
                    serializer.serialize_f64(t.as_millis() as f64 / 1000.0)
                } else {
                    ciborium::tag::Required::<u64, 1>(t.as_millis()).serialize(serializer)
                }
            }
            Out::List(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Out::Struct(members) => {
                let present = members.iter().filter(|(_, v)| *v != Out::Null).count();
                let mut map = serializer.serialize_map(Some(present))?;
                for (k, v) in members.iter().filter(|(_, v)| *v != Out::Null) {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
            Out::Map(members) => {
                let mut map = serializer.serialize_map(Some(members.len()))?;
                for (k, v) in members {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

impl de::Error for DecodeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DecodeError(msg.to_string())
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_borrowed_from_the_body() {
        let body = br#"{"StreamName":"orders","Limit":5,"Records":[{"Data":"aGk="}]}"#;
        let v = decode(body, Encoding::Json).unwrap();
        assert!(matches!(
            v.get("StreamName"),
            Some(Value::Str(Cow::Borrowed("orders")))
        ));
        assert_eq!(v.int("Limit"), Some(5));
        assert_eq!(v.list("Records").map(<[_]>::len), Some(1));
    }

    #[test]
    fn an_empty_body_is_an_empty_request() {
        assert_eq!(decode(b"", Encoding::Json).unwrap(), Value::Map(Vec::new()));
        assert_eq!(
            decode(b" \n", Encoding::Cbor).unwrap(),
            Value::Map(Vec::new())
        );
    }

    #[test]
    fn cbor_tags_give_their_item_and_bytes_stay_bytes() {
        use ciborium::Value as C;
        let body = C::Map(vec![
            (
                C::Text("Timestamp".into()),
                C::Tag(1, Box::new(C::Integer(1_700_000_000_123u64.into()))),
            ),
            (C::Text("Data".into()), C::Bytes(vec![0, 255])),
        ]);
        let mut raw = Vec::new();
        ciborium::into_writer(&body, &mut raw).unwrap();
        let v = decode(&raw, Encoding::Cbor).unwrap();
        assert_eq!(
            v.get("Timestamp"),
            Some(&Value::Number(1_700_000_000_123.0))
        );
        assert_eq!(v.get("Data"), Some(&Value::Bytes(Cow::Owned(vec![0, 255]))));
    }

    #[test]
    fn answers_differ_by_encoding_only_in_blobs_and_times() {
        let out = Out::Struct(vec![
            ("Data", Out::Blob(Bytes::from_static(b"hi"))),
            ("At", Out::Time(Timestamp::from_millis(1_701_760_153_593))),
            ("Gone", Out::Null),
        ]);
        assert_eq!(
            String::from_utf8(out.encode(Encoding::Json)).unwrap(),
            r#"{"Data":"aGk=","At":1701760153.593}"#
        );
        let back: ciborium::Value = ciborium::from_reader(&out.encode(Encoding::Cbor)[..]).unwrap();
        let expected = ciborium::Value::Map(vec![
            (
                ciborium::Value::Text("Data".into()),
                ciborium::Value::Bytes(b"hi".to_vec()),
            ),
            (
                ciborium::Value::Text("At".into()),
                ciborium::Value::Tag(
                    1,
                    Box::new(ciborium::Value::Integer(1_701_760_153_593u64.into())),
                ),
            ),
        ]);
        assert_eq!(back, expected);
    }

    use proptest::prelude::*;

    /// Answers of any shape: what `Out` writes, `decode` reads back the same, in both encodings.
    fn out_strategy() -> impl Strategy<Value = Out> {
        let leaf = prop_oneof![
            Just(Out::Bool(true)),
            any::<i32>().prop_map(|i| Out::Int(i64::from(i))),
            "[ -~]{0,20}".prop_map(Out::Str),
            proptest::collection::vec(any::<u8>(), 0..40).prop_map(|b| Out::Blob(b.into())),
        ];
        leaf.prop_recursive(3, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Out::List),
                proptest::collection::btree_map("[a-z]{1,8}", inner, 0..6)
                    .prop_map(|m| Out::Map(m.into_iter().collect())),
            ]
        })
    }

    /// What a decoded answer should be: blobs are base64 text in JSON, bytes in CBOR.
    fn expected(out: &Out, encoding: Encoding) -> Value<'static> {
        match out {
            Out::Null => Value::Null,
            Out::Bool(b) => Value::Bool(*b),
            Out::Int(i) => Value::Number(*i as f64),
            Out::Str(s) => Value::Str(Cow::Owned(s.clone())),
            Out::Blob(b) => match encoding {
                Encoding::Json => Value::Str(Cow::Owned(base64::Engine::encode(
                    &base64::engine::general_purpose::STANDARD,
                    b,
                ))),
                Encoding::Cbor => Value::Bytes(Cow::Owned(b.to_vec())),
            },
            Out::Time(t) => Value::Number(t.as_millis() as f64),
            Out::List(items) => Value::List(items.iter().map(|i| expected(i, encoding)).collect()),
            Out::Struct(m) => Value::Map(
                m.iter()
                    .map(|(k, v)| (Cow::Owned(k.to_string()), expected(v, encoding)))
                    .collect(),
            ),
            Out::Map(m) => Value::Map(
                m.iter()
                    .map(|(k, v)| (Cow::Owned(k.clone()), expected(v, encoding)))
                    .collect(),
            ),
        }
    }

    proptest! {
        #[test]
        fn what_is_written_reads_back(out in out_strategy()) {
            for encoding in [Encoding::Json, Encoding::Cbor] {
                let bytes = out.encode(encoding);
                let back = decode(&bytes, encoding).expect("an answer decodes");
                prop_assert_eq!(back, expected(&out, encoding));
            }
        }

        #[test]
        fn any_bytes_decode_or_are_refused_without_panicking(
            bytes in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let _ = decode(&bytes, Encoding::Json);
            let _ = decode(&bytes, Encoding::Cbor);
        }

        #[test]
        fn deeply_nested_cbor_is_refused(depth in 40usize..200) {
            let mut body = vec![0x81u8; depth];
            body.push(0x01);
            prop_assert!(decode(&body, Encoding::Cbor).is_err());
        }
    }

    #[test]
    fn content_types_name_their_encoding() {
        assert_eq!(
            Encoding::of_content_type("application/x-amz-json-1.1; charset=utf-8"),
            Some(Encoding::Json)
        );
        assert_eq!(
            Encoding::of_content_type("application/x-amz-cbor-1.1"),
            Some(Encoding::Cbor)
        );
        assert_eq!(Encoding::of_content_type("text/plain"), None);
    }
}
