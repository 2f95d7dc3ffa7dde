//! Request shapes, declared as data, and the two checks Kinesis makes before an operation runs:
//!
//! 1. **Types** ([`check_types`]): a member of the wrong JSON/CBOR type is a
//!    `SerializationException` with the service's wording. The check also normalises the tree:
//!    base64 blobs become bytes, timestamps become epoch ms, integers are floored.
//! 2. **Constraints** ([`validate`]): lengths, ranges, patterns, enums and required members,
//!    collected (at most ten) into one `ValidationException`:
//!    `2 validation errors detected: Value null at 'streamName' failed to satisfy constraint:
//!    Member must not be null; ...`.
//!
//! Members a shape does not declare are ignored, as Kinesis does.

use std::borrow::Cow;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::error::{ErrorKind, KinesisError};
use super::value::{Encoding, Value};

/// Most constraint failures one message lists.
const MAX_REPORTED: usize = 10;

/// A member's type.
#[derive(Debug, Clone, Copy)]
pub enum Ty {
    /// `true` or `false`.
    Bool,
    /// A 32-bit integer.
    Int,
    /// Text.
    Str,
    /// Bytes: base64 text in JSON, a byte string in CBOR.
    Blob,
    /// A point in time.
    Time,
    /// A list of the given shape.
    List(&'static Shape),
    /// A map of text keys to values of the given shape.
    Map(&'static Shape),
    /// A structure of the given members.
    Struct(&'static [Member]),
}

/// A constraint on a member's value.
#[derive(Debug, Clone, Copy)]
pub enum Rule {
    /// Must be present.
    Required,
    /// Length (text in characters, blobs in bytes, lists and maps in entries) at least this.
    MinLen(usize),
    /// Length at most this.
    MaxLen(usize),
    /// A number at least this.
    Min(i64),
    /// A number at most this.
    Max(i64),
    /// Text matching the pattern; the text is how the message names it.
    Pattern(&'static str, fn(&str) -> bool),
    /// One of these values.
    OneOf(&'static [&'static str]),
    /// Every map key's length within these bounds.
    KeyLen(usize, usize),
}

/// A type with its constraints.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// The type.
    pub ty: Ty,
    /// The constraints, checked in order.
    pub rules: &'static [Rule],
}

/// A named member of a structure.
#[derive(Debug, Clone, Copy)]
pub struct Member {
    /// Its name, as on the wire (`StreamName`).
    pub name: &'static str,
    /// Its shape.
    pub shape: Shape,
}

/// A member.
pub const fn member(name: &'static str, ty: Ty, rules: &'static [Rule]) -> Member {
    Member {
        name,
        shape: Shape { ty, rules },
    }
}

fn serialization(message: impl Into<String>) -> KinesisError {
    KinesisError::new(ErrorKind::Serialization, message)
}

/// What a misplaced list or structure is called, as the service words it.
fn misplaced(value: &Value<'_>) -> Option<KinesisError> {
    match value {
        Value::List(_) => Some(serialization("Start of list found where not expected")),
        Value::Map(_) => Some(serialization(
            "Start of structure or map found where not expected.",
        )),
        _ => None,
    }
}

const NUMBER_CLASS: &str = "class com.amazon.coral.value.json.numbers.TruncatingBigNumber";

/// Checks the request body's types against `members` and normalises it (see the module doc).
pub fn check_types(
    body: &mut Value<'_>,
    members: &[Member],
    encoding: Encoding,
) -> Result<(), KinesisError> {
    match body {
        Value::Map(_) => check_struct(body, members, encoding),
        Value::List(_) => Err(serialization("Start of list found where not expected")),
        _ => Err(serialization("Expected null")),
    }
}

fn check_struct(
    value: &mut Value<'_>,
    members: &[Member],
    encoding: Encoding,
) -> Result<(), KinesisError> {
    let Value::Map(fields) = value else {
        return Ok(());
    };
    for (name, field) in fields.iter_mut() {
        if let Some(m) = members.iter().find(|m| m.name == name.as_ref()) {
            check_value(field, m.shape.ty, encoding)?;
        }
    }
    Ok(())
}

fn check_value(value: &mut Value<'_>, ty: Ty, encoding: Encoding) -> Result<(), KinesisError> {
    if matches!(value, Value::Null) {
        return Ok(());
    }
    match ty {
        Ty::Bool => match value {
            Value::Bool(_) => Ok(()),
            Value::Number(_) => Err(serialization(format!(
                "{NUMBER_CLASS} can not be converted to an Boolean"
            ))),
            Value::Str(s) => Err(serialization(format!(
                "'{}' can not be converted to an Boolean",
                s.to_uppercase()
            ))),
            other => Err(misplaced(other)
                .unwrap_or_else(|| serialization("class [B can not be converted to an Boolean"))),
        },
        Ty::Int => match value {
            Value::Number(n) => {
                *n = n.floor().clamp(f64::from(i32::MIN), f64::from(i32::MAX));
                Ok(())
            }
            Value::Bool(_) => Err(serialization(
                "class java.lang.Boolean can not be converted to an Integer",
            )),
            Value::Str(_) => Err(serialization(
                "class java.lang.String can not be converted to an Integer",
            )),
            other => Err(misplaced(other)
                .unwrap_or_else(|| serialization("class [B can not be converted to an Integer"))),
        },
        Ty::Str => match value {
            Value::Str(_) => Ok(()),
            Value::Bool(_) => Err(serialization(
                "class java.lang.Boolean can not be converted to an String",
            )),
            Value::Number(_) => Err(serialization(format!(
                "{NUMBER_CLASS} can not be converted to an String"
            ))),
            other => Err(misplaced(other)
                .unwrap_or_else(|| serialization("class [B can not be converted to an String"))),
        },
        Ty::Blob => {
            let decoded = match value {
                Value::Bytes(_) => return Ok(()),
                Value::Str(s) => decode_base64(s)?,
                Value::Bool(_) => {
                    return Err(serialization(
                        "class java.lang.Boolean can not be converted to a Blob",
                    ))
                }
                Value::Number(_) => {
                    return Err(serialization(format!(
                        "{NUMBER_CLASS} can not be converted to a Blob"
                    )))
                }
                other => {
                    return Err(misplaced(other).unwrap_or_else(|| serialization("Expected a Blob")))
                }
            };
            *value = Value::Bytes(Cow::Owned(decoded));
            Ok(())
        }
        Ty::Time => match value {
            Value::Number(n) => {
                let ms = match encoding {
                    Encoding::Json => (*n * 1000.0).round(),
                    Encoding::Cbor => n.round(),
                };
                if !ms.is_finite() || ms.abs() > 8.64e15 {
                    return Err(serialization(format!(
                        "{NUMBER_CLASS} can not be converted to milliseconds since epoch"
                    )));
                }
                *value = Value::Time(ms as i64);
                Ok(())
            }
            Value::Bool(_) => Err(serialization(
                "class java.lang.Boolean can not be converted to milliseconds since epoch",
            )),
            Value::Str(_) => Err(serialization(
                "class java.lang.String can not be converted to milliseconds since epoch",
            )),
            other => Err(misplaced(other).unwrap_or_else(|| {
                serialization("class [B can not be converted to milliseconds since epoch")
            })),
        },
        Ty::List(item) => match value {
            Value::List(items) => {
                for v in items {
                    check_value(v, item.ty, encoding)?;
                }
                Ok(())
            }
            Value::Map(_) => Err(serialization(
                "Start of structure or map found where not expected.",
            )),
            _ => Err(serialization("Expected list or null")),
        },
        Ty::Map(item) => match value {
            Value::Map(members) => {
                for (_, v) in members {
                    check_value(v, item.ty, encoding)?;
                }
                Ok(())
            }
            Value::List(_) => Err(serialization("Start of list found where not expected")),
            _ => Err(serialization("Expected map or null")),
        },
        Ty::Struct(members) => match value {
            Value::Map(_) => check_struct(value, members, encoding),
            Value::List(_) => Err(serialization("Start of list found where not expected")),
            _ => Err(serialization("Expected null")),
        },
    }
}

/// Decodes standard base64 as strictly as the service: padded, canonical.
fn decode_base64(text: &str) -> Result<Vec<u8>, KinesisError> {
    let refuse = |why: String| {
        serialization(format!(
            "'{}' can not be converted to a Blob: {why}",
            shorten(text)
        ))
    };
    if text.len() % 4 != 0 {
        return Err(refuse(format!(
            "Base64 encoded length is expected a multiple of 4 bytes but found: {}",
            text.len()
        )));
    }
    // The SIMD decoder takes only the alphabet and padding at the end; canonical bits are
    // checked here. A blob it decodes needs no scan: the scan below only chooses which error
    // to report.
    if let Ok(decoded) = base64_simd::STANDARD.decode_to_vec(text) {
        if canonical_tail(text.as_bytes()) {
            return Ok(decoded);
        }
    } else if let Ok(decoded) = STANDARD.decode(text) {
        return Ok(decoded);
    }
    let bytes = text.as_bytes();
    let bad = bytes.iter().enumerate().find(|&(i, &b)| {
        !(b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
            // Padding only ends the text: `=` followed by anything but `=` is misplaced.
            || (b == b'=' && bytes.get(i + 1).is_some_and(|&next| next != b'='))
    });
    if let Some((i, _)) = bad {
        let c = text[i..].chars().next().unwrap_or('?');
        return Err(refuse(format!("Invalid Base64 character: '{c}'")));
    }
    Err(refuse(
        "Invalid last non-pad Base64 character dectected".into(),
    ))
}

/// Whether the bits a padded text's last symbol does not use are zero, as a canonical encoding
/// has them (`QQ==` is, `QR==` is not).
fn canonical_tail(text: &[u8]) -> bool {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    match text {
        [.., last, b'=', b'='] => value(*last) & 0x0f == 0,
        [.., last, b'='] => value(*last) & 0x03 == 0,
        _ => true,
    }
}

/// Long values are cut in messages: a 1 MiB blob does not belong in an error.
fn shorten(text: &str) -> Cow<'_, str> {
    const MAX_SHOWN: usize = 256;
    match text.char_indices().nth(MAX_SHOWN) {
        Some((i, _)) => Cow::Owned(format!("{}...", &text[..i])),
        None => Cow::Borrowed(text),
    }
}

/// Checks every constraint of `members` on a type-checked body; see the module doc.
pub fn validate(body: &Value<'_>, members: &[Member]) -> Result<(), KinesisError> {
    let mut failures = Vec::new();
    validate_struct(body, members, "", &mut failures);
    if failures.is_empty() {
        return Ok(());
    }
    failures.truncate(MAX_REPORTED);
    let n = failures.len();
    Err(KinesisError::new(
        ErrorKind::Validation,
        format!(
            "{n} validation error{} detected: {}",
            if n > 1 { "s" } else { "" },
            failures.join("; ")
        ),
    ))
}

fn validate_struct(value: &Value<'_>, members: &[Member], parent: &str, out: &mut Vec<String>) {
    for m in members {
        let path = format!("{parent}{}", lower_first(m.name));
        validate_value(value.get(m.name), &m.shape, &path, out);
    }
}

fn validate_value(value: Option<&Value<'_>>, shape: &Shape, path: &str, out: &mut Vec<String>) {
    for rule in shape.rules {
        if out.len() >= MAX_REPORTED {
            return;
        }
        let Some(v) = value else {
            if matches!(rule, Rule::Required) {
                out.push(format!(
                    "Value null at '{path}' failed to satisfy constraint: Member must not be null"
                ));
            }
            continue;
        };
        let failed = broken(*rule, v);
        if let Some(constraint) = failed {
            out.push(format!(
                "Value {} at '{path}' failed to satisfy constraint: {constraint}",
                shown(v)
            ));
        }
    }
    let Some(v) = value else { return };
    match (shape.ty, v) {
        // A list of structures is checked member by member (`records.1.member.data`); a list
        // or map of plain values once, as a whole, naming what its members must satisfy.
        (Ty::List(item), Value::List(items)) if matches!(item.ty, Ty::Struct(_)) => {
            for (i, item_value) in items.iter().enumerate() {
                let item_path = format!("{path}.{}.member", i + 1);
                validate_value(Some(item_value), item, &item_path, out);
            }
        }
        (Ty::List(item), Value::List(items)) => {
            if let Some(constraint) = members_broken(item, items.iter()) {
                out.push(format!(
                    "Value {} at '{path}' failed to satisfy constraint: Member must satisfy \
                     constraint: {constraint}",
                    shown(v)
                ));
            }
        }
        (Ty::Map(item), Value::Map(members)) => {
            if let Some(constraint) = members_broken(item, members.iter().map(|(_, v)| v)) {
                out.push(format!(
                    "Value {} at '{path}' failed to satisfy constraint: Map value must satisfy \
                     constraint: {constraint}",
                    shown(v)
                ));
            }
        }
        (Ty::Struct(members), Value::Map(_)) => {
            validate_struct(v, members, &format!("{path}."), out);
        }
        _ => {}
    }
}

/// What `v` fails of `rule`, in the service's words; `None` when it holds.
fn broken(rule: Rule, v: &Value<'_>) -> Option<String> {
    match rule {
        Rule::Required => None,
        Rule::MinLen(min) => (length(v) < min)
            .then(|| format!("Member must have length greater than or equal to {min}")),
        Rule::MaxLen(max) => (length(v) > max)
            .then(|| format!("Member must have length less than or equal to {max}")),
        Rule::Min(min) => (number(v) < min as f64)
            .then(|| format!("Member must have value greater than or equal to {min}")),
        Rule::Max(max) => (number(v) > max as f64)
            .then(|| format!("Member must have value less than or equal to {max}")),
        Rule::Pattern(text, matches) => v
            .as_str()
            .is_some_and(|s| !matches(s))
            .then(|| format!("Member must satisfy regular expression pattern: {text}")),
        Rule::OneOf(values) => v.as_str().is_some_and(|s| !values.contains(&s)).then(|| {
            format!(
                "Member must satisfy enum value set: [{}]",
                values.join(", ")
            )
        }),
        Rule::KeyLen(min, max) => match v {
            Value::Map(members) => members
                .iter()
                .any(|(k, _)| !(min..=max).contains(&k.chars().count()))
                .then(|| {
                    format!(
                        "Map keys must satisfy constraint: [Member must have length less than \
                         or equal to {max}, Member must have length greater than or equal to \
                         {min}]"
                    )
                }),
            _ => None,
        },
    }
}

/// When a member of a list or map of plain values breaks the member shape, every constraint
/// of that shape as the service lists it (`[Member must have length less than or equal to
/// 128, Member must have length greater than or equal to 1]`).
fn members_broken<'v, 'a: 'v>(
    item: &Shape,
    mut members: impl Iterator<Item = &'v Value<'a>>,
) -> Option<String> {
    if !members.any(|m| item.rules.iter().any(|r| broken(*r, m).is_some())) {
        return None;
    }
    let mut texts = Vec::new();
    let max = item.rules.iter().find_map(|r| match r {
        Rule::MaxLen(n) => Some(*n),
        _ => None,
    });
    let min = item.rules.iter().find_map(|r| match r {
        Rule::MinLen(n) => Some(*n),
        _ => None,
    });
    if let Some(max) = max {
        texts.push(format!(
            "Member must have length less than or equal to {max}"
        ));
    }
    if let Some(min) = min {
        texts.push(format!(
            "Member must have length greater than or equal to {min}"
        ));
    }
    for rule in item.rules {
        match rule {
            Rule::Pattern(text, _) => texts.push(format!(
                "Member must satisfy regular expression pattern: {text}"
            )),
            Rule::OneOf(values) => texts.push(format!(
                "Member must satisfy enum value set: [{}]",
                values.join(", ")
            )),
            _ => {}
        }
    }
    Some(format!("[{}]", texts.join(", ")))
}

fn length(v: &Value<'_>) -> usize {
    match v {
        Value::Str(s) => s.chars().count(),
        Value::Bytes(b) => b.len(),
        Value::List(items) => items.len(),
        Value::Map(members) => members.len(),
        _ => 0,
    }
}

fn number(v: &Value<'_>) -> f64 {
    match v {
        Value::Number(n) => *n,
        _ => 0.0,
    }
}

/// A value as the service's messages show it: in quotes, as Java prints it.
fn shown(v: &Value<'_>) -> String {
    match v {
        Value::Null => "null".into(),
        other => format!("'{}'", java_text(other)),
    }
}

/// A value as Java's `toString` writes it: lists `[a, b]`, maps `{a=1, b=2}`, blobs as the
/// buffer they are read into.
fn java_text(v: &Value<'_>) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Str(s) => s.to_string(),
        Value::Bytes(b) => format!(
            "java.nio.HeapByteBuffer[pos=0 lim={} cap={}]",
            b.len(),
            b.len()
        ),
        Value::Time(ms) => ms.to_string(),
        Value::List(items) => format!(
            "[{}]",
            items.iter().map(java_text).collect::<Vec<_>>().join(", ")
        ),
        Value::Map(members) => format!(
            "{{{}}}",
            members
                .iter()
                .map(|(k, v)| format!("{k}={}", java_text(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn lower_first(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_ascii_lowercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// Patterns of the Kinesis model
// ---------------------------------------------------------------------------------------------

/// `[a-zA-Z0-9_.-]+`: stream, shard and consumer names.
pub fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// `0|([1-9]\d{0,38})`: hash keys.
pub fn is_hash_key(s: &str) -> bool {
    is_decimal(s, 39)
}

/// `0|([1-9]\d{0,128})`: sequence numbers.
pub fn is_sequence_number(s: &str) -> bool {
    is_decimal(s, 129)
}

fn is_decimal(s: &str, max_digits: usize) -> bool {
    s == "0"
        || (!s.is_empty()
            && s.len() <= max_digits
            && !s.starts_with('0')
            && s.bytes().all(|b| b.is_ascii_digit()))
}

/// `arn:aws.*:kinesis:.*:\d{12}:stream/\S+`: stream ARNs.
pub fn is_stream_arn(s: &str) -> bool {
    super::arn::parse_stream(s).is_some()
}

/// A stream ARN, optionally with `/consumer/NAME:EPOCH`.
pub fn is_consumer_arn(s: &str) -> bool {
    super::arn::parse_consumer(s).is_some()
}

/// `StreamName`, as most operations declare it (optional: `StreamARN` may stand in).
pub const STREAM_NAME: Member = member(
    "StreamName",
    Ty::Str,
    &[
        Rule::MinLen(1),
        Rule::MaxLen(128),
        Rule::Pattern("[a-zA-Z0-9_.-]+", is_name),
    ],
);

/// `StreamARN`.
pub const STREAM_ARN: Member = member(
    "StreamARN",
    Ty::Str,
    &[
        Rule::MinLen(1),
        Rule::MaxLen(2048),
        Rule::Pattern("arn:aws.*:kinesis:.*:\\d{12}:stream/\\S+", is_stream_arn),
    ],
);

/// `ShardId`, required.
pub const SHARD_ID: Member = member(
    "ShardId",
    Ty::Str,
    &[
        Rule::Required,
        Rule::MinLen(1),
        Rule::MaxLen(128),
        Rule::Pattern("[a-zA-Z0-9_.-]+", is_name),
    ],
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinesis::value::decode;

    const ENTRY: &[Member] = &[
        member(
            "PartitionKey",
            Ty::Str,
            &[Rule::Required, Rule::MinLen(1), Rule::MaxLen(256)],
        ),
        member("Data", Ty::Blob, &[Rule::Required, Rule::MaxLen(8)]),
    ];
    const ENTRY_SHAPE: Shape = Shape {
        ty: Ty::Struct(ENTRY),
        rules: &[],
    };
    const PUT: &[Member] = &[
        member(
            "Records",
            Ty::List(&ENTRY_SHAPE),
            &[Rule::Required, Rule::MinLen(1), Rule::MaxLen(500)],
        ),
        STREAM_NAME,
        member("Limit", Ty::Int, &[Rule::Min(1), Rule::Max(10_000)]),
        member("At", Ty::Time, &[]),
    ];

    fn checked(json: &str) -> Result<Value<'_>, KinesisError> {
        let mut v = decode(json.as_bytes(), Encoding::Json).unwrap();
        check_types(&mut v, PUT, Encoding::Json)?;
        validate(&v, PUT)?;
        Ok(v)
    }

    #[test]
    fn a_well_formed_body_is_normalised() {
        let v = checked(r#"{"Records":[{"PartitionKey":"k","Data":"aGk="}],"Limit":2.7,"At":1.5}"#)
            .unwrap();
        let entry = &v.list("Records").unwrap()[0];
        assert_eq!(entry.bytes("Data"), Some(&b"hi"[..]));
        assert_eq!(v.int("Limit"), Some(2));
        assert_eq!(v.time("At"), Some(1500));
    }

    #[test]
    fn wrong_types_are_serialization_errors_in_the_services_words() {
        let cases = [
            (
                r#"{"StreamName":true}"#,
                "class java.lang.Boolean can not be converted to an String",
            ),
            (
                r#"{"Limit":"5"}"#,
                "class java.lang.String can not be converted to an Integer",
            ),
            (r#"{"Records":{}}"#, "Start of structure or map found where not expected."),
            (r#"{"Records":"x"}"#, "Expected list or null"),
            (
                r#"{"Records":[{"Data":"abc"}]}"#,
                "'abc' can not be converted to a Blob: Base64 encoded length is expected a multiple of 4 bytes but found: 3",
            ),
            (
                r#"{"Records":[{"Data":"ab*="}]}"#,
                "'ab*=' can not be converted to a Blob: Invalid Base64 character: '*'",
            ),
            (
                r#"{"At":"yesterday"}"#,
                "class java.lang.String can not be converted to milliseconds since epoch",
            ),
        ];
        for (body, message) in cases {
            let e = checked(body).expect_err(body);
            assert_eq!(e.kind, ErrorKind::Serialization, "{body}");
            assert_eq!(e.message, message, "{body}");
        }
    }

    #[test]
    fn constraint_failures_are_listed_together_with_paths() {
        let e = checked(r#"{"Records":[{"PartitionKey":"","Data":"AAAAAAAAAAAA"}],"StreamName":"a b","Limit":0}"#)
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Validation);
        assert_eq!(
            e.message,
            "4 validation errors detected: \
             Value '' at 'records.1.member.partitionKey' failed to satisfy constraint: Member must have length greater than or equal to 1; \
             Value 'java.nio.HeapByteBuffer[pos=0 lim=9 cap=9]' at 'records.1.member.data' failed to satisfy constraint: Member must have length less than or equal to 8; \
             Value 'a b' at 'streamName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+; \
             Value '0' at 'limit' failed to satisfy constraint: Member must have value greater than or equal to 1"
        );
    }

    #[test]
    fn a_missing_required_member_is_named() {
        let e = checked("{}").unwrap_err();
        assert_eq!(
            e.message,
            "1 validation error detected: Value null at 'records' failed to satisfy constraint: Member must not be null"
        );
    }

    #[test]
    fn decimal_patterns_refuse_leading_zeros_and_overlong_keys() {
        assert!(is_hash_key("0"));
        assert!(is_hash_key("340282366920938463463374607431768211455"));
        assert!(!is_hash_key("01"));
        assert!(!is_hash_key(&"9".repeat(40)));
        assert!(is_sequence_number(&"9".repeat(129)));
        assert!(!is_sequence_number("-1"));
        assert!(is_name("shardId-000000000000"));
        assert!(!is_name("a/b"));
    }

    proptest::proptest! {
        /// The fast decoder accepts exactly what the strict reference decoder accepts, with
        /// the same bytes: canonical, padded standard base64.
        #[test]
        fn blobs_decode_as_the_strict_reference_does(
            text in "[A-Za-z0-9+/=]{0,12}",
            data in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
        ) {
            let reference = STANDARD.decode(&text).ok();
            let ours = decode_base64(&text).ok();
            proptest::prop_assert_eq!(ours, reference, "{}", text);
            let encoded = STANDARD.encode(&data);
            proptest::prop_assert_eq!(decode_base64(&encoded).ok(), Some(data));
        }
    }

    #[test]
    fn non_canonical_padding_bits_are_refused() {
        assert_eq!(decode_base64("QQ==").ok(), Some(b"A".to_vec()));
        assert!(decode_base64("QR==").is_err());
        assert_eq!(decode_base64("QUE=").ok(), Some(b"AA".to_vec()));
        assert!(decode_base64("QUF=").is_err());
    }
}
