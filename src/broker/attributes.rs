//! Which message attributes a put may carry: SNS's rules for names, types, values and count,
//! checked before anything is stored, then encoded canonically (`storage::attributes`).

use bytes::Bytes;

use super::BrokerError;
use crate::storage::{Attribute, AttributeType, Attributes};

/// Most attributes one record may carry (SNS and SQS: 10).
pub const DEFAULT_MAX_ATTRIBUTES: usize = 10;
/// Longest attribute name, in characters (SNS and SQS: 256).
pub const DEFAULT_MAX_ATTRIBUTE_NAME_CHARS: usize = 256;
/// Name prefixes reserved for the service, refused in any casing (as SQS does).
pub const RESERVED_NAME_PREFIXES: [&str; 2] = ["aws.", "amazon."];

/// The attribute limits a put is held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttributeLimits {
    /// Most attributes on one record.
    pub max_attributes: usize,
    /// Longest name, in characters.
    pub max_name_chars: usize,
}

impl Default for AttributeLimits {
    fn default() -> Self {
        AttributeLimits {
            max_attributes: DEFAULT_MAX_ATTRIBUTES,
            max_name_chars: DEFAULT_MAX_ATTRIBUTE_NAME_CHARS,
        }
    }
}

/// One attribute as a producer sent it, before it is checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutAttribute {
    /// The attribute's name.
    pub name: String,
    /// `String`, `Number`, `Binary` or `String.Array`.
    pub data_type: String,
    /// The value of a `String`, `Number` or `String.Array` attribute.
    pub string_value: String,
    /// The value of a `Binary` attribute.
    pub binary_value: Bytes,
}

impl PutAttribute {
    /// A `String` attribute.
    pub fn string(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self::text(name, AttributeType::String, value)
    }

    /// A `Number` attribute, given as its decimal text.
    pub fn number(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self::text(name, AttributeType::Number, value)
    }

    /// A text attribute of any text type.
    pub fn text(name: impl Into<String>, kind: AttributeType, value: impl Into<String>) -> Self {
        PutAttribute {
            name: name.into(),
            data_type: kind.name().to_owned(),
            string_value: value.into(),
            binary_value: Bytes::new(),
        }
    }

    /// A `Binary` attribute.
    pub fn binary(name: impl Into<String>, value: impl Into<Bytes>) -> Self {
        PutAttribute {
            name: name.into(),
            data_type: AttributeType::Binary.name().to_owned(),
            string_value: String::new(),
            binary_value: value.into(),
        }
    }
}

/// Checks the attributes of the request's entry `entry` and encodes them. The error names the
/// entry and the attribute.
pub(crate) fn check(
    entry: usize,
    attributes: &[PutAttribute],
    limits: &AttributeLimits,
) -> Result<Attributes, BrokerError> {
    if attributes.is_empty() {
        return Ok(Attributes::empty());
    }
    let refuse = |name: &str, reason: String| BrokerError::InvalidAttribute {
        entry,
        name: name.to_owned(),
        reason,
    };
    if attributes.len() > limits.max_attributes {
        return Err(refuse(
            &attributes[limits.max_attributes].name,
            format!(
                "the record has {} attributes, more than {}",
                attributes.len(),
                limits.max_attributes
            ),
        ));
    }
    let mut pairs = Vec::with_capacity(attributes.len());
    for a in attributes {
        check_name(&a.name, limits).map_err(|reason| refuse(&a.name, reason))?;
        let kind = AttributeType::from_name(&a.data_type).ok_or_else(|| {
            refuse(
                &a.name,
                format!(
                    "data_type {:?} is not one of String, Number, Binary, String.Array",
                    a.data_type
                ),
            )
        })?;
        let value = check_value(kind, a).map_err(|reason| refuse(&a.name, reason))?;
        pairs.push(Attribute {
            name: &a.name,
            kind,
            value,
        });
    }
    Attributes::encode(&pairs).map_err(|e| {
        // Names are unique (a map's keys) and checked above: only a repeated name can be left.
        let name = attributes.first().map_or("", |a| a.name.as_str());
        refuse(name, e.to_string())
    })
}

fn check_name(name: &str, limits: &AttributeLimits) -> Result<(), String> {
    let chars = name.chars().count();
    if chars == 0 || chars > limits.max_name_chars {
        return Err(format!(
            "the name has {chars} characters; a name has 1 to {}",
            limits.max_name_chars
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(format!(
            "the name holds {bad:?}; names use only A-Z, a-z, 0-9, '_', '-' and '.'"
        ));
    }
    let lower = name.to_ascii_lowercase();
    if let Some(prefix) = RESERVED_NAME_PREFIXES
        .iter()
        .find(|p| lower.starts_with(*p))
    {
        return Err(format!(
            "names starting with {prefix:?} (in any casing) are reserved"
        ));
    }
    if name.starts_with('.') || name.ends_with('.') || name.contains("..") {
        return Err("a name may not start or end with '.' or hold '..'".into());
    }
    Ok(())
}

fn check_value(kind: AttributeType, a: &PutAttribute) -> Result<&[u8], String> {
    if kind == AttributeType::Binary {
        if !a.string_value.is_empty() {
            return Err("a Binary attribute carries binary_value, not string_value".into());
        }
        if a.binary_value.is_empty() {
            return Err("a Binary attribute needs a non-empty binary_value".into());
        }
        return Ok(&a.binary_value);
    }
    if !a.binary_value.is_empty() {
        return Err(format!(
            "a {kind} attribute carries string_value, not binary_value"
        ));
    }
    let text = a.string_value.as_str();
    if text.is_empty() {
        return Err(format!("a {kind} attribute needs a non-empty string_value"));
    }
    match kind {
        AttributeType::Number if !is_decimal(text) => Err(format!(
            "{text:?} is not a number (digits, an optional sign, fraction and exponent)"
        )),
        AttributeType::StringArray => check_array(text).map(|()| text.as_bytes()),
        _ => Ok(text.as_bytes()),
    }
}

/// A JSON number's grammar, and finite as a double.
fn is_decimal(text: &str) -> bool {
    let b = text.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'-'));
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i > start
    };
    if !digits(&mut i) {
        return false;
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if !digits(&mut i) {
            return false;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !digits(&mut i) {
            return false;
        }
    }
    i == b.len() && text.parse::<f64>().is_ok_and(f64::is_finite)
}

/// A `String.Array` is a JSON array whose elements are strings, numbers, booleans or nulls.
fn check_array(text: &str) -> Result<(), String> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| format!("a String.Array value must be a JSON array: {e}"))?;
    let serde_json::Value::Array(items) = value else {
        return Err("a String.Array value must be a JSON array".into());
    };
    match items
        .iter()
        .position(|v| matches!(v, serde_json::Value::Array(_) | serde_json::Value::Object(_)))
    {
        Some(at) => Err(format!(
            "element {at} of the String.Array is an array or object; elements are strings, numbers, booleans or null"
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(attrs: &[PutAttribute]) -> String {
        match check(3, attrs, &AttributeLimits::default()) {
            Err(e @ BrokerError::InvalidAttribute { entry: 3, .. }) => e.to_string(),
            other => panic!("expected an invalid attribute, got {other:?}"),
        }
    }

    #[test]
    fn good_attributes_are_encoded_in_name_order() {
        let attrs = check(
            0,
            &[
                PutAttribute::string("store", "example_corp"),
                PutAttribute::number("price_usd", "2.1e2"),
                PutAttribute::text(
                    "tags",
                    AttributeType::StringArray,
                    r#"["a", 1, true, null]"#,
                ),
                PutAttribute::binary("blob", vec![0u8, 255]),
            ],
            &AttributeLimits::default(),
        )
        .unwrap();
        let names: Vec<_> = attrs.iter().map(|a| a.name).collect();
        assert_eq!(names, ["blob", "price_usd", "store", "tags"]);
        assert_eq!(attrs.get("price_usd").unwrap().text(), Some("2.1e2"));
    }

    #[test]
    fn no_attributes_is_an_empty_block() {
        assert!(check(0, &[], &AttributeLimits::default())
            .unwrap()
            .is_empty());
    }

    #[test]
    fn each_broken_rule_names_the_entry_and_the_attribute() {
        let eleven: Vec<_> = (0..11)
            .map(|i| PutAttribute::string(format!("a{i}"), "x"))
            .collect();
        assert!(reason(&eleven).contains("11 attributes, more than 10"));
        for (name, why) in [
            ("", "1 to 256"),
            ("has space", "' '"),
            ("AWS.trace", "reserved"),
            ("amazon.x", "reserved"),
            (".lead", "'.'"),
            ("trail.", "'.'"),
            ("a..b", "'..'"),
        ] {
            let got = reason(&[PutAttribute::string(name, "x")]);
            assert!(got.contains(why), "{name:?}: {got}");
            assert!(got.contains(&format!("{name:?}")), "{got}");
            assert!(got.contains("entry 3"), "{got}");
        }
        assert!(reason(&[PutAttribute::string("x".repeat(257), "v")]).contains("257"));
        let typo = PutAttribute {
            data_type: "Str".into(),
            ..PutAttribute::string("a", "x")
        };
        assert!(reason(&[typo]).contains("data_type"));
        assert!(reason(&[PutAttribute::string("a", "")]).contains("non-empty"));
        for bad in ["1.", ".5", "1e", "abc", "1e999", "0x10", " 1"] {
            assert!(
                reason(&[PutAttribute::number("n", bad)]).contains("not a number"),
                "{bad}"
            );
        }
        for bad in ["[", "{}", "\"a\"", "[[1]]", "[{\"a\":1}]"] {
            assert!(
                reason(&[PutAttribute::text("l", AttributeType::StringArray, bad)])
                    .contains("String.Array"),
                "{bad}"
            );
        }
        assert!(reason(&[PutAttribute::binary("b", Vec::new())]).contains("non-empty"));
        let both = PutAttribute {
            string_value: "x".into(),
            ..PutAttribute::binary("b", vec![1u8])
        };
        assert!(reason(&[both]).contains("binary_value"));
    }

    #[test]
    fn numbers_follow_the_json_grammar() {
        for good in [
            "0",
            "-1",
            "3.015e2",
            "1E-7",
            "123456789012345678901234567890",
        ] {
            assert!(is_decimal(good), "{good}");
        }
    }
}
