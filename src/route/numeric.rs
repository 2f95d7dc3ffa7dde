//! Numbers: when a decimal text is exactly a double (event-ruler's "comparable" numbers), the
//! key numeric equality is hashed on, and the ranges of the `numeric` operator.

use std::fmt::Write as _;

/// Significant digits up to which every decimal survives a trip through a double unchanged
/// (IEEE-754 binary64 guarantees 15), which spares the slow check for ordinary numbers.
const ALWAYS_EXACT_DIGITS: usize = 15;
/// Decimal exponents inside which that guarantee holds (subnormals lose precision below).
const ALWAYS_EXACT_EXPONENT: i64 = 290;
/// A double's shortest round-trip text never has more significant digits than this.
const MAX_SHORTEST_DIGITS: usize = 17;

/// A decimal as significant digits (no leading or trailing zeros) times a power of ten.
#[derive(Debug, PartialEq)]
struct Decimal {
    negative: bool,
    digits: [u8; MAX_SHORTEST_DIGITS],
    len: usize,
    exponent: i64,
}

/// Normalises a JSON number's text; `None` when it has more significant digits than any
/// double's shortest text (so it cannot equal one).
fn decimal(text: &str) -> Option<Decimal> {
    let (negative, rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text),
    };
    let (mantissa, exp) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, "0"),
    };
    // Saturating: an exponent beyond i64 is beyond any double either way.
    let exp_value = exp
        .trim_start_matches('+')
        .parse::<i64>()
        .unwrap_or(if exp.starts_with('-') {
            i64::MIN / 2
        } else {
            i64::MAX / 2
        });
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let mut d = Decimal {
        negative,
        digits: [0; MAX_SHORTEST_DIGITS],
        len: 0,
        exponent: exp_value.saturating_sub(frac.len() as i64),
    };
    let mut pending_zeros = 0usize;
    for c in int.bytes().chain(frac.bytes()) {
        if c == b'0' {
            if d.len > 0 {
                pending_zeros += 1;
            }
            continue;
        }
        if d.len + pending_zeros + 1 > MAX_SHORTEST_DIGITS {
            return None;
        }
        for _ in 0..pending_zeros {
            d.digits[d.len] = 0;
            d.len += 1;
        }
        pending_zeros = 0;
        d.digits[d.len] = c - b'0';
        d.len += 1;
    }
    d.exponent = d.exponent.saturating_add(pending_zeros as i64);
    if d.len == 0 {
        // Zero: `-0` equals `0`.
        d.negative = false;
        d.exponent = 0;
    }
    Some(d)
}

/// A fixed buffer to format a double's shortest text into, so that the check allocates nothing.
struct StackText {
    buf: [u8; 40],
    len: usize,
}

impl std::fmt::Write for StackText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        self.buf
            .get_mut(self.len..end)
            .ok_or(std::fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// The double a JSON number's text stands for, when that double is exactly the decimal
/// written, as event-ruler judges it (the double's shortest text has the same value):
/// `301.8` and `3e2` are, `0.30000000000000001` and `1e400` are not.
pub(crate) fn exact_f64(text: &str) -> Option<f64> {
    let value: f64 = text.parse().ok()?;
    if !value.is_finite() {
        return None;
    }
    let written = decimal(text)?;
    let magnitude = written.exponent + written.len as i64;
    if written.len <= ALWAYS_EXACT_DIGITS && magnitude.abs() < ALWAYS_EXACT_EXPONENT {
        return Some(normalise_zero(value));
    }
    let mut shortest = StackText {
        buf: [0; 40],
        len: 0,
    };
    write!(shortest, "{value:e}").ok()?;
    let shortest = std::str::from_utf8(&shortest.buf[..shortest.len]).ok()?;
    (decimal(shortest)? == written).then_some(normalise_zero(value))
}

fn normalise_zero(v: f64) -> f64 {
    if v == 0.0 {
        0.0
    } else {
        v
    }
}

/// What an exact number in a pattern is compared on: the double's bits when the text is
/// exactly a double, otherwise the text itself (so a 30-digit account id still matches the
/// same digits written in an event).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum NumKey {
    /// Bits of an exact double (zero normalised to `+0`).
    Float(u64),
    /// The number as written.
    Literal(Box<[u8]>),
}

impl NumKey {
    /// The key a number's text is compared on.
    pub(crate) fn of(text: &str) -> NumKey {
        match exact_f64(text) {
            Some(v) => NumKey::Float(v.to_bits()),
            None => NumKey::Literal(text.as_bytes().into()),
        }
    }
}

/// One bound of a range.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Bound {
    /// The bound's value.
    pub(crate) value: f64,
    /// Whether the value itself is inside.
    pub(crate) inclusive: bool,
}

/// The range of a `numeric` condition; a missing bound is unbounded.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Range {
    /// Lower bound.
    pub(crate) low: Option<Bound>,
    /// Upper bound.
    pub(crate) high: Option<Bound>,
}

impl Range {
    /// Whether `v` (an exact double) is inside.
    pub(crate) fn contains(&self, v: f64) -> bool {
        let above = match self.low {
            None => true,
            Some(b) if b.inclusive => v >= b.value,
            Some(b) => v > b.value,
        };
        let below = match self.high {
            None => true,
            Some(b) if b.inclusive => v <= b.value,
            Some(b) => v < b.value,
        };
        above && below
    }

    /// The lowest value the range can hold, for ordering ranges.
    pub(crate) fn low_value(&self) -> f64 {
        self.low.map_or(f64::NEG_INFINITY, |b| b.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_double_are_equal() {
        let k = NumKey::of("300");
        assert_eq!(NumKey::of("300.0"), k);
        assert_eq!(NumKey::of("3e2"), k);
        assert_eq!(NumKey::of("3.000E+2"), k);
        assert_eq!(NumKey::of("-0"), NumKey::of("0"));
        assert_eq!(NumKey::of("301.8"), NumKey::of("3.018e2"));
    }

    #[test]
    fn inexact_decimals_are_not_doubles() {
        assert_eq!(exact_f64("0.30000000000000001"), None);
        assert_eq!(exact_f64("1e400"), None);
        assert_eq!(exact_f64("123456789012345678901234567890"), None);
        assert_eq!(exact_f64("1e-400"), None);
        assert_eq!(exact_f64("0.3"), Some(0.3));
        assert_eq!(exact_f64("1.7976931348623157e308"), Some(f64::MAX));
        assert_eq!(exact_f64("5e-324"), Some(5e-324));
        assert_eq!(exact_f64("9007199254740993"), None);
        assert_eq!(exact_f64("9007199254740992"), Some(9007199254740992.0));
        assert_eq!(
            NumKey::of("123456789012345678901234567890"),
            NumKey::Literal(b"123456789012345678901234567890".as_slice().into())
        );
    }

    #[test]
    fn bounds_include_or_exclude() {
        let r = Range {
            low: Some(Bound {
                value: 0.0,
                inclusive: false,
            }),
            high: Some(Bound {
                value: 5.0,
                inclusive: true,
            }),
        };
        assert!(!r.contains(0.0));
        assert!(r.contains(1e-300));
        assert!(r.contains(5.0));
        assert!(!r.contains(5.000001));
    }
}
