//! One condition of a pattern's leaf array: its parsed form, its validation (with
//! event-ruler's messages) and its test against one value of the event.

use super::cidr::IpRange;
use super::fold::fold;
use super::json::PValue;
use super::numeric::{exact_f64, Bound, NumKey, Range};
use super::wildcard::Wildcard;

/// A condition on one field's value.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Condition {
    /// An exact string.
    Str(Box<[u8]>),
    /// An exact number.
    Num(NumKey),
    /// `true` or `false`.
    Bool(bool),
    /// `null`.
    Null,
    /// `prefix`.
    Prefix(Box<[u8]>),
    /// `suffix`.
    Suffix(Box<[u8]>),
    /// `prefix` with `equals-ignore-case`; the prefix folded.
    PrefixFold(Box<[u8]>),
    /// `suffix` with `equals-ignore-case`; the suffix folded.
    SuffixFold(Box<[u8]>),
    /// `equals-ignore-case`; the string folded.
    EqualsFold(Box<[u8]>),
    /// `wildcard`.
    Wildcard(Wildcard),
    /// `anything-but` in one of its forms.
    AnythingBut(AnythingBut),
    /// `numeric`.
    Numeric(Range),
    /// `exists`.
    Exists(bool),
    /// `cidr`, or a plain address written as an exact string.
    Cidr(IpRange),
}

/// The forms of `anything-but`: the value must be present and outside the set.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum AnythingBut {
    /// Not one of these strings.
    Strings(Vec<Box<[u8]>>),
    /// Not one of these numbers.
    Numbers(Vec<NumKey>),
    /// Not a string with one of these prefixes.
    Prefixes(Vec<Box<[u8]>>),
    /// Not a string with one of these suffixes.
    Suffixes(Vec<Box<[u8]>>),
    /// Not one of these strings, ignoring case (folded).
    Folded(Vec<Box<[u8]>>),
    /// Not a string matching one of these globs.
    Wildcards(Vec<Wildcard>),
}

/// One value of the event, as a condition sees it.
#[derive(Clone, Copy, Debug)]
pub(crate) enum ValueRef<'v> {
    /// A string, unescaped.
    Str(&'v [u8]),
    /// A number: its text, and the double when the text is exactly one.
    Num {
        /// As written.
        text: &'v [u8],
        /// The exact double, if any.
        exact: Option<f64>,
    },
    /// `true` or `false`.
    Bool(bool),
    /// `null`.
    Null,
}

impl Condition {
    /// Whether the value satisfies the condition. `folded` is the folded string when the
    /// value is a string and the caller folded it. `exists:false` is never satisfied by a
    /// value: absence is judged by the matcher.
    pub(crate) fn matches(&self, v: &ValueRef<'_>, folded: Option<&[u8]>) -> bool {
        match (self, v) {
            (Condition::Str(s), ValueRef::Str(x)) => &s[..] == *x,
            (Condition::Num(k), ValueRef::Num { text, exact }) => num_equals(k, text, *exact),
            (Condition::Bool(b), ValueRef::Bool(x)) => b == x,
            (Condition::Null, ValueRef::Null) => true,
            (Condition::Prefix(p), ValueRef::Str(x)) => x.starts_with(p),
            (Condition::Suffix(p), ValueRef::Str(x)) => x.ends_with(p),
            (Condition::PrefixFold(p), ValueRef::Str(_)) => {
                folded.is_some_and(|f| f.starts_with(p))
            }
            (Condition::SuffixFold(p), ValueRef::Str(_)) => folded.is_some_and(|f| f.ends_with(p)),
            (Condition::EqualsFold(p), ValueRef::Str(_)) => folded == Some(&p[..]),
            (Condition::Wildcard(w), ValueRef::Str(x)) => w.matches(x),
            (Condition::AnythingBut(a), v) => a.matches(v, folded),
            (Condition::Numeric(r), ValueRef::Num { exact, .. }) => {
                exact.is_some_and(|e| r.contains(e))
            }
            (Condition::Exists(present), _) => *present,
            (Condition::Cidr(r), ValueRef::Str(x)) => r.contains(x),
            _ => false,
        }
    }
}

fn num_equals(key: &NumKey, text: &[u8], exact: Option<f64>) -> bool {
    match key {
        NumKey::Float(bits) => exact.is_some_and(|e| e.to_bits() == *bits),
        NumKey::Literal(l) => &l[..] == text,
    }
}

impl AnythingBut {
    fn matches(&self, v: &ValueRef<'_>, folded: Option<&[u8]>) -> bool {
        match (self, v) {
            (AnythingBut::Strings(set), ValueRef::Str(x)) => !set.iter().any(|s| &s[..] == *x),
            (AnythingBut::Numbers(set), ValueRef::Num { text, exact }) => {
                !set.iter().any(|k| num_equals(k, text, *exact))
            }
            (AnythingBut::Prefixes(set), ValueRef::Str(x)) => !set.iter().any(|p| x.starts_with(p)),
            (AnythingBut::Suffixes(set), ValueRef::Str(x)) => !set.iter().any(|p| x.ends_with(p)),
            (AnythingBut::Folded(set), ValueRef::Str(_)) => {
                !set.iter().any(|s| folded == Some(&s[..]))
            }
            (AnythingBut::Wildcards(set), ValueRef::Str(x)) => !set.iter().any(|w| w.matches(x)),
            // A value of another type is never in the excluded set.
            _ => true,
        }
    }
}

/// Whether a condition needs the folded form of string values.
pub(crate) fn needs_fold(c: &Condition) -> bool {
    matches!(
        c,
        Condition::PrefixFold(_)
            | Condition::SuffixFold(_)
            | Condition::EqualsFold(_)
            | Condition::AnythingBut(AnythingBut::Folded(_))
    )
}

/// The operator keywords; none of them may name a field inside `$or`.
pub(crate) const OPERATORS: &[&str] = &[
    "prefix",
    "suffix",
    "equals-ignore-case",
    "wildcard",
    "anything-but",
    "numeric",
    "exists",
    "cidr",
    "exactly",
];

/// Parses one element of a leaf array into the conditions it stands for (an exact string that
/// is an IP address is two: the string, and the address range). `wildcard_limit` bounds
/// [`Wildcard::complexity`].
pub(crate) fn parse_condition(v: &PValue, wildcard_limit: usize) -> Result<Vec<Condition>, String> {
    match v {
        PValue::String(s) => Ok(exact_string(s)),
        PValue::Number(n) => Ok(vec![Condition::Num(NumKey::of(n))]),
        PValue::Bool(b) => Ok(vec![Condition::Bool(*b)]),
        PValue::Null => Ok(vec![Condition::Null]),
        PValue::Array(_) => Err("Match value must be String, number, true, false, or null".into()),
        PValue::Object(fields) => {
            let (op, value) = match fields.as_slice() {
                [] => return Err("Empty objects are not allowed".into()),
                [one] => one,
                _ => return Err("Only one key allowed in match expression".into()),
            };
            operator(op, value, wildcard_limit)
        }
    }
}

fn exact_string(s: &str) -> Vec<Condition> {
    let mut out = vec![Condition::Str(s.as_bytes().into())];
    if let Some(range) = IpRange::single(s) {
        out.push(Condition::Cidr(range));
    }
    out
}

fn string_of<'p>(op: &str, v: &'p PValue) -> Result<&'p str, String> {
    match v {
        PValue::String(s) => Ok(s),
        _ => Err(format!("{op} match pattern must be a string")),
    }
}

fn wildcard(glob: &str, limit: usize) -> Result<Wildcard, String> {
    let w = Wildcard::parse(glob)?;
    if w.complexity() > limit {
        return Err(format!(
            "Rule is too complex: wildcard {glob:?} has {} stars followed by text, the limit is {limit}",
            w.complexity()
        ));
    }
    Ok(w)
}

fn operator(op: &str, v: &PValue, wildcard_limit: usize) -> Result<Vec<Condition>, String> {
    let one = |c: Condition| Ok(vec![c]);
    match op {
        "exactly" => Ok(exact_string(string_of(op, v)?)),
        "prefix" | "suffix" => {
            let fold_case = match v {
                PValue::Object(inner) => match inner.as_slice() {
                    [(k, PValue::String(s))] if k == "equals-ignore-case" => Some(s),
                    [(k, _)] if k == "equals-ignore-case" => {
                        return Err("equals-ignore-case match pattern must be a string".into())
                    }
                    _ => {
                        return Err(format!(
                        "{op} match pattern must be a string or {{\"equals-ignore-case\": string}}"
                    ))
                    }
                },
                _ => None,
            };
            let prefix = op == "prefix";
            match fold_case {
                Some(s) if prefix => one(Condition::PrefixFold(fold(s))),
                Some(s) => one(Condition::SuffixFold(fold(s))),
                None => {
                    let s = string_of(op, v)?.as_bytes().into();
                    one(if prefix {
                        Condition::Prefix(s)
                    } else {
                        Condition::Suffix(s)
                    })
                }
            }
        }
        "equals-ignore-case" => one(Condition::EqualsFold(fold(string_of(op, v)?))),
        "wildcard" => one(Condition::Wildcard(wildcard(
            string_of(op, v)?,
            wildcard_limit,
        )?)),
        "exists" => match v {
            PValue::Bool(b) => one(Condition::Exists(*b)),
            _ => Err("exists match pattern must be either true or false.".into()),
        },
        "cidr" => one(Condition::Cidr(IpRange::parse(string_of(op, v)?)?)),
        "numeric" => one(Condition::Numeric(numeric(v)?)),
        "anything-but" => one(Condition::AnythingBut(anything_but(v, wildcard_limit)?)),
        _ => Err(format!("Unrecognized match type {op}")),
    }
}

fn comparable(op: &str, v: Option<&PValue>) -> Result<f64, String> {
    match v {
        Some(PValue::Number(n)) => exact_f64(n).ok_or_else(|| format!("Cannot compare number {n}")),
        Some(_) => Err(format!("Value of {op} must be numeric")),
        None => Err("numeric needs an operator and a number".into()),
    }
}

fn numeric(v: &PValue) -> Result<Range, String> {
    let PValue::Array(terms) = v else {
        return Err("Value of numeric must be an array.".into());
    };
    let op_at = |i: usize| match terms.get(i) {
        Some(PValue::String(s)) => Ok(s.as_str()),
        Some(other) => Err(format!("Invalid member in numeric match: {}", other.kind())),
        None => Err("numeric needs an operator and a number".into()),
    };
    let first = op_at(0)?;
    let first_value = comparable(first, terms.get(1))?;
    let bound = |inclusive| {
        Some(Bound {
            value: first_value,
            inclusive,
        })
    };
    let mut range = match first {
        "=" => Range {
            low: bound(true),
            high: bound(true),
        },
        "<" => Range {
            low: None,
            high: bound(false),
        },
        "<=" => Range {
            low: None,
            high: bound(true),
        },
        ">" => Range {
            low: bound(false),
            high: None,
        },
        ">=" => Range {
            low: bound(true),
            high: None,
        },
        _ => return Err(format!("Unrecognized numeric range operator: {first}")),
    };
    match terms.len() {
        2 => return Ok(range),
        3 => return Err("numeric needs an operator and a number".into()),
        4 => {}
        _ => return Err("Too many elements in numeric expression".into()),
    }
    if range.high.is_some() {
        return Err("Too many elements in numeric expression".into());
    }
    let second = op_at(2)?;
    let value = comparable(second, terms.get(3))?;
    range.high = match second {
        "<" => Some(Bound {
            value,
            inclusive: false,
        }),
        "<=" => Some(Bound {
            value,
            inclusive: true,
        }),
        _ => return Err(format!("Bad numeric range operator: {second}")),
    };
    if first_value >= value {
        return Err("Bottom must be less than top".into());
    }
    Ok(range)
}

const ANYTHING_BUT_SHAPE: &str =
    "Value of anything-but must be an array or single string/number value.";

fn strings_of(op: &str, v: &PValue) -> Result<Vec<String>, String> {
    match v {
        PValue::String(s) => Ok(vec![s.clone()]),
        PValue::Array(items) if !items.is_empty() => items
            .iter()
            .map(|i| match i {
                PValue::String(s) => Ok(s.clone()),
                _ => Err(format!(
                    "Inside anything-but/{op} list, only strings are allowed"
                )),
            })
            .collect(),
        PValue::Array(_) => Err("Empty arrays are not allowed".into()),
        _ => Err(format!("{op} match pattern must be a string")),
    }
}

fn anything_but(v: &PValue, wildcard_limit: usize) -> Result<AnythingBut, String> {
    match v {
        PValue::String(s) => Ok(AnythingBut::Strings(vec![s.as_bytes().into()])),
        PValue::Number(n) => Ok(AnythingBut::Numbers(vec![NumKey::of(n)])),
        PValue::Array(items) => {
            let (Some(first), true) = (
                items.first(),
                items
                    .iter()
                    .all(|i| matches!(i, PValue::String(_) | PValue::Number(_))),
            ) else {
                return Err(if items.is_empty() {
                    "Empty arrays are not allowed".into()
                } else {
                    "Inside anything but list, start|null|boolean is not supported.".into()
                });
            };
            match first {
                PValue::String(_) => items
                    .iter()
                    .map(|i| match i {
                        PValue::String(s) => Ok(s.as_bytes().into()),
                        _ => Err(MIXED.to_string()),
                    })
                    .collect::<Result<_, _>>()
                    .map(AnythingBut::Strings),
                _ => items
                    .iter()
                    .map(|i| match i {
                        PValue::Number(n) => Ok(NumKey::of(n)),
                        _ => Err(MIXED.to_string()),
                    })
                    .collect::<Result<_, _>>()
                    .map(AnythingBut::Numbers),
            }
        }
        PValue::Object(fields) => {
            let (op, inner) = match fields.as_slice() {
                [] => return Err("Empty objects are not allowed".into()),
                [one] => one,
                _ => return Err("Only one key allowed in match expression".into()),
            };
            if matches!(inner, PValue::Object(_)) {
                return Err(ANYTHING_BUT_SHAPE.into());
            }
            let values = strings_of(op, inner);
            match op.as_str() {
                "prefix" | "suffix" => {
                    let values = values?;
                    if values.iter().any(String::is_empty) {
                        return Err("Null prefix/suffix not allowed".into());
                    }
                    let set = values.iter().map(|s| s.as_bytes().into()).collect();
                    Ok(if op == "prefix" {
                        AnythingBut::Prefixes(set)
                    } else {
                        AnythingBut::Suffixes(set)
                    })
                }
                "equals-ignore-case" => Ok(AnythingBut::Folded(
                    values?.iter().map(|s| fold(s)).collect(),
                )),
                "wildcard" => values?
                    .iter()
                    .map(|g| wildcard(g, wildcard_limit))
                    .collect::<Result<_, _>>()
                    .map(AnythingBut::Wildcards),
                _ => Err(format!("Unsupported anything-but pattern: {op}")),
            }
        }
        PValue::Null | PValue::Bool(_) => Err(ANYTHING_BUT_SHAPE.into()),
    }
}

const MIXED: &str =
    "Inside anything-but list, all values must be of the same type (all strings or all numbers)";
