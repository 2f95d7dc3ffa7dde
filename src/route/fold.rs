//! Case folding for the `equals-ignore-case` family: one character at a time, as Java's
//! `Character.toUpperCase` then `toLowerCase` (`Locale.ROOT`), never changing the number of
//! characters — so Greek and Cyrillic fold, the final sigma folds with sigma, and `ß` stays
//! apart from `SS`.

/// Appends the folded form of `s` to `out`.
pub(crate) fn fold_into(s: &str, out: &mut Vec<u8>) {
    for c in s.chars() {
        if c.is_ascii() {
            out.push(c.to_ascii_lowercase() as u8);
            continue;
        }
        let upper = single(c.to_uppercase()).unwrap_or(c);
        let folded = single(upper.to_lowercase()).unwrap_or(upper);
        let mut buf = [0u8; 4];
        out.extend_from_slice(folded.encode_utf8(&mut buf).as_bytes());
    }
}

/// The folded form of `s`.
pub(crate) fn fold(s: &str) -> Box<[u8]> {
    let mut out = Vec::with_capacity(s.len());
    fold_into(s, &mut out);
    out.into_boxed_slice()
}

/// The mapping's one character, or `None` when it maps to several (`ß` → `SS`), which a
/// per-character fold leaves alone.
fn single(mut it: impl Iterator<Item = char>) -> Option<char> {
    let c = it.next()?;
    it.next().is_none().then_some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_fold_but_sharp_s_does_not_expand() {
        assert_eq!(fold("ΑΘΗΝΑ"), fold("αθηνα"));
        assert_eq!(fold("ΟΔΟΣ"), fold("οδος"));
        assert_eq!(fold("МОСКВА"), fold("москва"));
        assert_eq!(fold("EventBridge"), fold("eventbridge"));
        assert_ne!(fold("ß"), fold("SS"));
        assert_ne!(fold("ß"), fold("ss"));
    }
}
