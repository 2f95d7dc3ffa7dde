//! The JSON text both sides share: fast string scanning, unescaping, the number grammar, and
//! the small tree a pattern is parsed into (numbers kept as their text, keys in order).

/// Deepest nesting of objects and arrays accepted in a pattern or an event. Recursion in the
/// parser and the scanner is bounded by it, so no input can exhaust the stack.
pub(crate) const MAX_DEPTH: usize = 64;

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of an 8-byte chunk set where the byte is `"`, `\` or below
/// 0x20 (and possibly above such a byte: only the lowest set bit is exact).
#[inline(always)]
fn special_mask(chunk: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(chunk);
    let x = u64::from_le_bytes(word);
    let q = x ^ (ONES * u64::from(b'"'));
    let s = x ^ (ONES * u64::from(b'\\'));
    ((q.wrapping_sub(ONES) & !q) | (s.wrapping_sub(ONES) & !s) | (x.wrapping_sub(ONES * 0x20) & !x))
        & HIGHS
}

/// Index of the first byte at or after `i` that is `"`, `\` or a control character (or
/// `b.len()`). Eight bytes a step: the lowest flagged byte of each test is exact, so the lowest
/// over the three tests is the answer.
pub(crate) fn find_string_special(b: &[u8], mut i: usize) -> usize {
    while let Some(chunk) = b.get(i..i + 16) {
        let (m0, m1) = (special_mask(&chunk[..8]), special_mask(&chunk[8..]));
        if m0 | m1 != 0 {
            return if m0 != 0 {
                i + (m0.trailing_zeros() / 8) as usize
            } else {
                i + 8 + (m1.trailing_zeros() / 8) as usize
            };
        }
        i += 16;
    }
    while let Some(chunk) = b.get(i..i + 8) {
        let m = special_mask(chunk);
        if m != 0 {
            return i + (m.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < b.len() && b[i] != b'"' && b[i] != b'\\' && b[i] >= 0x20 {
        i += 1;
    }
    i
}

/// A JSON string whose opening quote is at `b[pos - 1]`: returns the end of its content (the
/// closing quote's index) and whether it holds escapes. Escapes are checked for shape; their
/// meaning (surrogate pairs) only when [`unescape`] runs.
pub(crate) fn scan_string(b: &[u8], mut pos: usize) -> Option<(usize, bool)> {
    let mut escaped = false;
    loop {
        pos = find_string_special(b, pos);
        match b.get(pos)? {
            b'"' => return Some((pos, escaped)),
            b'\\' => {
                escaped = true;
                match b.get(pos + 1)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => pos += 2,
                    b'u' => {
                        let hex = b.get(pos + 2..pos + 6)?;
                        if !hex.iter().all(u8::is_ascii_hexdigit) {
                            return None;
                        }
                        pos += 6;
                    }
                    _ => return None,
                }
            }
            _ => return None,
        }
    }
}

fn hex4(h: &[u8]) -> Option<u32> {
    let s = std::str::from_utf8(h).ok()?;
    u32::from_str_radix(s, 16).ok()
}

/// Decodes the content of a JSON string (between the quotes) into `out`. `None` when an escape
/// is malformed or a surrogate is unpaired: such text is not Unicode, and is treated as bad JSON.
pub(crate) fn unescape(raw: &[u8], out: &mut Vec<u8>) -> Option<()> {
    out.clear();
    let mut i = 0;
    while i < raw.len() {
        let c = raw[i];
        if c != b'\\' {
            out.push(c);
            i += 1;
            continue;
        }
        let simple = match raw.get(i + 1)? {
            b'"' => Some(b'"'),
            b'\\' => Some(b'\\'),
            b'/' => Some(b'/'),
            b'b' => Some(8),
            b'f' => Some(12),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'u' => None,
            _ => return None,
        };
        if let Some(s) = simple {
            out.push(s);
            i += 2;
            continue;
        }
        let hi = hex4(raw.get(i + 2..i + 6)?)?;
        i += 6;
        let code = if (0xD800..0xDC00).contains(&hi) {
            if raw.get(i..i + 2)? != b"\\u" {
                return None;
            }
            let lo = hex4(raw.get(i + 2..i + 6)?)?;
            if !(0xDC00..0xE000).contains(&lo) {
                return None;
            }
            i += 6;
            0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
        } else {
            hi
        };
        let ch = char::from_u32(code)?;
        let mut buf = [0u8; 4];
        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
    }
    Some(())
}

/// End of the JSON number starting at `pos` (the grammar `-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?`),
/// or `None` when the text there is not one.
pub(crate) fn scan_number(b: &[u8], mut pos: usize) -> Option<usize> {
    let digits = |b: &[u8], mut p: usize| {
        let start = p;
        while p < b.len() && b[p].is_ascii_digit() {
            p += 1;
        }
        (p > start).then_some(p)
    };
    if b.get(pos) == Some(&b'-') {
        pos += 1;
    }
    match b.get(pos)? {
        b'0' => pos += 1,
        b'1'..=b'9' => pos = digits(b, pos)?,
        _ => return None,
    }
    if b.get(pos) == Some(&b'.') {
        pos = digits(b, pos + 1)?;
    }
    if matches!(b.get(pos), Some(b'e' | b'E')) {
        pos += 1;
        if matches!(b.get(pos), Some(b'+' | b'-')) {
            pos += 1;
        }
        pos = digits(b, pos)?;
    }
    Some(pos)
}

/// Whether the whole of `text` is one JSON number.
pub(crate) fn is_number(text: &[u8]) -> bool {
    scan_number(text, 0) == Some(text.len())
}

/// Index of the first non-whitespace byte at or after `pos`.
pub(crate) fn skip_ws(b: &[u8], mut pos: usize) -> usize {
    while pos < b.len() && matches!(b[pos], b' ' | b'\n' | b'\r' | b'\t') {
        pos += 1;
    }
    pos
}

/// A parsed pattern value. Numbers keep their text, so that exactness can be judged and a
/// number too long for a double can still be matched as written; objects keep every key in
/// order, duplicates included (the pattern compiler lets the last one win).
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum PValue {
    Null,
    Bool(bool),
    Number(String),
    String(String),
    Array(Vec<PValue>),
    Object(Vec<(String, PValue)>),
}

impl PValue {
    /// How the value is named in messages.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            PValue::Null => "null",
            PValue::Bool(_) => "a boolean",
            PValue::Number(_) => "a number",
            PValue::String(_) => "a string",
            PValue::Array(_) => "an array",
            PValue::Object(_) => "an object",
        }
    }
}

/// Parses a whole JSON document. The error is a message naming the byte offset.
pub(crate) fn parse(text: &str) -> Result<PValue, String> {
    let b = text.as_bytes();
    let pos = skip_ws(b, 0);
    let (value, end) = parse_value(b, pos, 0)?;
    let end = skip_ws(b, end);
    if end != b.len() {
        return Err(format!("invalid JSON: unexpected text at byte {end}"));
    }
    Ok(value)
}

fn bad(pos: usize) -> String {
    format!("invalid JSON at byte {pos}")
}

fn parse_string(b: &[u8], pos: usize) -> Result<(String, usize), String> {
    let (end, escaped) = scan_string(b, pos + 1).ok_or_else(|| bad(pos))?;
    let raw = &b[pos + 1..end];
    let bytes = if escaped {
        let mut out = Vec::with_capacity(raw.len());
        unescape(raw, &mut out).ok_or_else(|| bad(pos))?;
        out
    } else {
        raw.to_vec()
    };
    let s = String::from_utf8(bytes).map_err(|_| bad(pos))?;
    Ok((s, end + 1))
}

fn parse_value(b: &[u8], pos: usize, depth: usize) -> Result<(PValue, usize), String> {
    match b.get(pos) {
        None => Err(format!("invalid JSON: unexpected end at byte {pos}")),
        Some(b'"') => parse_string(b, pos).map(|(s, end)| (PValue::String(s), end)),
        Some(b'{') | Some(b'[') if depth >= MAX_DEPTH => {
            Err(format!("nested deeper than {MAX_DEPTH} levels"))
        }
        Some(b'{') => {
            let mut fields = Vec::new();
            let mut p = skip_ws(b, pos + 1);
            if b.get(p) == Some(&b'}') {
                return Ok((PValue::Object(fields), p + 1));
            }
            loop {
                if b.get(p) != Some(&b'"') {
                    return Err(bad(p));
                }
                let (key, after) = parse_string(b, p)?;
                p = skip_ws(b, after);
                if b.get(p) != Some(&b':') {
                    return Err(bad(p));
                }
                let (value, after) = parse_value(b, skip_ws(b, p + 1), depth + 1)?;
                fields.push((key, value));
                p = skip_ws(b, after);
                match b.get(p) {
                    Some(b',') => p = skip_ws(b, p + 1),
                    Some(b'}') => return Ok((PValue::Object(fields), p + 1)),
                    _ => return Err(bad(p)),
                }
            }
        }
        Some(b'[') => {
            let mut items = Vec::new();
            let mut p = skip_ws(b, pos + 1);
            if b.get(p) == Some(&b']') {
                return Ok((PValue::Array(items), p + 1));
            }
            loop {
                let (value, after) = parse_value(b, p, depth + 1)?;
                items.push(value);
                p = skip_ws(b, after);
                match b.get(p) {
                    Some(b',') => p = skip_ws(b, p + 1),
                    Some(b']') => return Ok((PValue::Array(items), p + 1)),
                    _ => return Err(bad(p)),
                }
            }
        }
        Some(b't') if b[pos..].starts_with(b"true") => Ok((PValue::Bool(true), pos + 4)),
        Some(b'f') if b[pos..].starts_with(b"false") => Ok((PValue::Bool(false), pos + 5)),
        Some(b'n') if b[pos..].starts_with(b"null") => Ok((PValue::Null, pos + 4)),
        Some(_) => {
            let end = scan_number(b, pos).ok_or_else(|| bad(pos))?;
            // The number grammar is ASCII, so this slice is whole characters.
            let text = String::from_utf8_lossy(&b[pos..end]).into_owned();
            Ok((PValue::Number(text), end))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_bytes_are_found_in_and_after_whole_words() {
        for n in 0..20 {
            let mut s = vec![b'a'; n];
            s.push(b'"');
            s.extend_from_slice(b"xyz");
            assert_eq!(find_string_special(&s, 0), n);
            let mut c = vec![b'a'; n];
            c.push(0x1f);
            assert_eq!(find_string_special(&c, 0), n);
        }
        assert_eq!(find_string_special("é\\".as_bytes(), 0), 2);
    }

    #[test]
    fn unescape_decodes_pairs_and_refuses_lone_surrogates() {
        let mut out = Vec::new();
        assert!(unescape(br"a\n\u00e9\ud83d\ude00", &mut out).is_some());
        assert_eq!(out, "a\né😀".as_bytes());
        assert!(unescape(br"\ud83d", &mut out).is_none());
        assert!(unescape(br"\x", &mut out).is_none());
    }

    #[test]
    fn numbers_follow_the_json_grammar() {
        for good in ["0", "-0", "12", "1.5", "1e5", "1E+5", "-2.5e-3"] {
            assert!(is_number(good.as_bytes()), "{good}");
        }
        for bad in ["", "-", "01", "1.", ".5", "1e", "+1", "0x1", "1.5.5"] {
            assert!(!is_number(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn parse_keeps_number_text_and_duplicate_keys() {
        let v = parse(r#"{"a": 1.50, "a": [true, null, "x"]}"#).expect("valid");
        let PValue::Object(fields) = v else {
            panic!("not an object")
        };
        assert_eq!(fields.len(), 2);
        assert_eq!(fields[0].1, PValue::Number("1.50".into()));
        assert!(parse("{").is_err());
        assert!(parse("[1,]").is_err());
        assert!(parse("1 2").is_err());
        assert!(parse(&"[".repeat(100)).is_err());
    }
}
