//! Message attributes: the typed name → value pairs (SNS and SQS message attributes) stored
//! with a record, in one canonical encoding.
//!
//! A record's attributes are one block of bytes in its frame. The block is canonical — pairs
//! sorted by name, each name once — so equal attribute maps have equal bytes: content-based
//! deduplication hashes the block as it is, and a reader needs no map to compare them.
//!
//! The block, integers little-endian, one entry per attribute:
//!
//! | size | field                                                          |
//! |-----:|----------------------------------------------------------------|
//! |    2 | name length `n`                                                |
//! |    n | name (UTF-8)                                                   |
//! |    1 | data type: 1 `String`, 2 `Number`, 3 `Binary`, 4 `String.Array` |
//! |    4 | value length `v`                                               |
//! |    v | value: UTF-8 text, or the bytes of a `Binary`                  |
//!
//! This module knows the format only; which names, types and sizes a request may use is the
//! broker's rule (`broker::attributes`).

use std::fmt;

use bytes::Bytes;

/// The data type of an attribute, as SNS and SQS name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum AttributeType {
    /// UTF-8 text.
    String = 1,
    /// A decimal number, kept as the text the producer gave (`"3.015e2"`).
    Number = 2,
    /// Opaque bytes.
    Binary = 3,
    /// A JSON array of strings, numbers, booleans and nulls, as text.
    StringArray = 4,
}

impl AttributeType {
    /// Every type, in code order.
    pub const ALL: [AttributeType; 4] = [
        AttributeType::String,
        AttributeType::Number,
        AttributeType::Binary,
        AttributeType::StringArray,
    ];

    /// The type's name on the wire: `String`, `Number`, `Binary` or `String.Array`.
    pub fn name(self) -> &'static str {
        match self {
            AttributeType::String => "String",
            AttributeType::Number => "Number",
            AttributeType::Binary => "Binary",
            AttributeType::StringArray => "String.Array",
        }
    }

    /// The type a wire name stands for.
    pub fn from_name(name: &str) -> Option<AttributeType> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    fn from_code(code: u8) -> Option<AttributeType> {
        Self::ALL.into_iter().find(|t| *t as u8 == code)
    }
}

impl fmt::Display for AttributeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One attribute, borrowed from a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attribute<'a> {
    /// The attribute's name.
    pub name: &'a str,
    /// Its data type.
    pub kind: AttributeType,
    /// Its value: UTF-8 text unless `kind` is `Binary`.
    pub value: &'a [u8],
}

impl<'a> Attribute<'a> {
    /// The value as text; `None` for a `Binary` value.
    pub fn text(&self) -> Option<&'a str> {
        match self.kind {
            AttributeType::Binary => None,
            // Checked to be UTF-8 when the block was built or decoded.
            _ => std::str::from_utf8(self.value).ok(),
        }
    }
}

/// Bytes of an entry besides its name and value.
const ENTRY_FIXED_LEN: usize = 2 + 1 + 4;
/// Longest name the block can hold (its length is two bytes).
pub const MAX_NAME_BYTES: usize = u16::MAX as usize;

/// A record's attributes in their canonical encoding; empty when it has none.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Attributes(Bytes);

/// Why attribute bytes are not a canonical block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed attributes: {0}")]
pub struct AttributesError(pub &'static str);

impl Attributes {
    /// No attributes.
    pub const fn empty() -> Attributes {
        Attributes(Bytes::new())
    }

    /// Encodes `pairs` canonically: sorted by name. Two pairs of one name are refused (the
    /// caller's map cannot have them), as are a name or value longer than the format holds
    /// and text values that are not UTF-8.
    pub fn encode(pairs: &[Attribute<'_>]) -> Result<Attributes, AttributesError> {
        let mut sorted: Vec<&Attribute<'_>> = pairs.iter().collect();
        sorted.sort_unstable_by(|a, b| a.name.cmp(b.name));
        if sorted.windows(2).any(|w| w[0].name == w[1].name) {
            return Err(AttributesError("a name appears twice"));
        }
        let len: usize = sorted
            .iter()
            .map(|a| ENTRY_FIXED_LEN + a.name.len() + a.value.len())
            .sum();
        let mut out = Vec::with_capacity(len);
        for a in sorted {
            if a.name.len() > MAX_NAME_BYTES {
                return Err(AttributesError("a name is longer than 65535 bytes"));
            }
            let value_len =
                u32::try_from(a.value.len()).map_err(|_| AttributesError("a value is too long"))?;
            if a.kind != AttributeType::Binary && std::str::from_utf8(a.value).is_err() {
                return Err(AttributesError("a text value is not UTF-8"));
            }
            out.extend_from_slice(&(a.name.len() as u16).to_le_bytes());
            out.extend_from_slice(a.name.as_bytes());
            out.push(a.kind as u8);
            out.extend_from_slice(&value_len.to_le_bytes());
            out.extend_from_slice(a.value);
        }
        Ok(Attributes(Bytes::from(out)))
    }

    /// Takes a block read from a frame, checking that it is canonical: every entry whole,
    /// names UTF-8 and strictly increasing, types known, text values UTF-8.
    pub fn decode(block: Bytes) -> Result<Attributes, AttributesError> {
        let mut previous: Option<&str> = None;
        let mut entries = Entries { rest: &block };
        while let Some(entry) = entries.next_checked()? {
            if previous.is_some_and(|p| p >= entry.name) {
                return Err(AttributesError("names are not sorted and unique"));
            }
            if entry.kind != AttributeType::Binary && std::str::from_utf8(entry.value).is_err() {
                return Err(AttributesError("a text value is not UTF-8"));
            }
            previous = Some(entry.name);
        }
        Ok(Attributes(block))
    }

    /// True when the record has no attributes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The encoded block.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The encoded block, shared.
    pub fn bytes(&self) -> &Bytes {
        &self.0
    }

    /// The attributes, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = Attribute<'_>> + '_ {
        let mut entries = Entries { rest: &self.0 };
        // A block is checked when it is built or decoded, so no entry fails here.
        std::iter::from_fn(move || entries.next_checked().ok().flatten())
    }

    /// How many attributes there are.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// The attribute of that name.
    pub fn get(&self, name: &str) -> Option<Attribute<'_>> {
        self.iter().find(|a| a.name == name)
    }
}

impl fmt::Debug for Attributes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Walks the entries of a block.
struct Entries<'a> {
    rest: &'a [u8],
}

impl<'a> Entries<'a> {
    fn next_checked(&mut self) -> Result<Option<Attribute<'a>>, AttributesError> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        let torn = AttributesError("an entry runs past the block");
        let buf = self.rest;
        let name_len =
            u16::from_le_bytes(buf.get(0..2).ok_or(torn)?.try_into().map_err(|_| torn)?) as usize;
        let name_end = 2 + name_len;
        let name = std::str::from_utf8(buf.get(2..name_end).ok_or(torn)?)
            .map_err(|_| AttributesError("a name is not UTF-8"))?;
        let code = *buf.get(name_end).ok_or(torn)?;
        let kind = AttributeType::from_code(code).ok_or(AttributesError("unknown data type"))?;
        let len_at = name_end + 1;
        let value_len = u32::from_le_bytes(
            buf.get(len_at..len_at + 4)
                .ok_or(torn)?
                .try_into()
                .map_err(|_| torn)?,
        ) as usize;
        let value_at = len_at + 4;
        let value = buf.get(value_at..value_at + value_len).ok_or(torn)?;
        self.rest = &buf[value_at + value_len..];
        Ok(Some(Attribute { name, kind, value }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr<'a>(name: &'a str, kind: AttributeType, value: &'a [u8]) -> Attribute<'a> {
        Attribute { name, kind, value }
    }

    #[test]
    fn equal_maps_encode_to_equal_bytes_whatever_their_order() {
        let a = Attributes::encode(&[
            attr("b", AttributeType::Number, b"1"),
            attr("a", AttributeType::String, b"x"),
        ])
        .unwrap();
        let b = Attributes::encode(&[
            attr("a", AttributeType::String, b"x"),
            attr("b", AttributeType::Number, b"1"),
        ])
        .unwrap();
        assert_eq!(a.as_bytes(), b.as_bytes());
        let names: Vec<_> = a.iter().map(|x| x.name).collect();
        assert_eq!(names, ["a", "b"]);
    }

    #[test]
    fn a_block_round_trips_through_decode() {
        let a = Attributes::encode(&[
            attr("bin", AttributeType::Binary, &[0xff, 0, 1]),
            attr("list", AttributeType::StringArray, br#"["a",1,null]"#),
            attr("émoji🙂", AttributeType::String, "värde".as_bytes()),
        ])
        .unwrap();
        let back = Attributes::decode(a.bytes().clone()).unwrap();
        assert_eq!(back, a);
        assert_eq!(back.len(), 3);
        assert_eq!(back.get("bin").unwrap().value, &[0xff, 0, 1]);
        assert_eq!(back.get("bin").unwrap().text(), None);
        assert_eq!(back.get("émoji🙂").unwrap().text(), Some("värde"));
    }

    #[test]
    fn damaged_blocks_are_refused_not_read() {
        let good = Attributes::encode(&[
            attr("a", AttributeType::String, b"x"),
            attr("b", AttributeType::String, b"y"),
        ])
        .unwrap();
        let bytes = good.as_bytes();
        // Every cut but the one between the two entries (after 9 bytes) tears an entry.
        for cut in (1..bytes.len()).filter(|&cut| cut != 9) {
            assert!(
                Attributes::decode(Bytes::copy_from_slice(&bytes[..cut])).is_err(),
                "cut at {cut}"
            );
        }
        let mut unknown_type = bytes.to_vec();
        unknown_type[3] = 9;
        assert_eq!(
            Attributes::decode(Bytes::from(unknown_type)),
            Err(AttributesError("unknown data type"))
        );
        let mut swapped = Vec::new();
        swapped.extend_from_slice(&bytes[9..]);
        swapped.extend_from_slice(&bytes[..9]);
        assert_eq!(
            Attributes::decode(Bytes::from(swapped)),
            Err(AttributesError("names are not sorted and unique"))
        );
    }

    #[test]
    fn duplicate_names_and_non_utf8_text_are_refused() {
        assert!(Attributes::encode(&[
            attr("a", AttributeType::String, b"x"),
            attr("a", AttributeType::Number, b"1"),
        ])
        .is_err());
        assert!(Attributes::encode(&[attr("a", AttributeType::String, &[0xff])]).is_err());
        assert!(Attributes::encode(&[attr("a", AttributeType::Binary, &[0xff])]).is_ok());
    }

    proptest::proptest! {
        /// Bytes from a damaged file: decoding never panics, and what it accepts is canonical
        /// (encoding its attributes again gives the same bytes).
        #[test]
        fn any_bytes_decode_to_a_canonical_block_or_an_error(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)
        ) {
            if let Ok(block) = Attributes::decode(Bytes::from(bytes.clone())) {
                let pairs: Vec<Attribute<'_>> = block.iter().collect();
                let again = Attributes::encode(&pairs).unwrap();
                proptest::prop_assert_eq!(again.as_bytes(), &bytes[..]);
            }
        }
    }

    #[test]
    fn type_names_are_the_wire_names() {
        for t in AttributeType::ALL {
            assert_eq!(AttributeType::from_name(t.name()), Some(t));
        }
        assert_eq!(AttributeType::from_name("string"), None);
    }
}
