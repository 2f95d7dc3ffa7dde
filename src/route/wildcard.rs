//! The `wildcard` operator: a glob where `*` stands for any run of characters (none included),
//! `\*` for a literal star and `\\` for a literal backslash.

/// A parsed glob: the literal pieces between stars.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Wildcard {
    /// Literal text between the stars; `pieces.len() - 1` stars in all.
    pieces: Vec<Box<[u8]>>,
}

impl Wildcard {
    /// Parses a glob; the error is event-ruler's message.
    pub(crate) fn parse(glob: &str) -> Result<Wildcard, String> {
        let mut pieces = Vec::new();
        let mut current = Vec::new();
        let mut last_was_star = false;
        let mut chars = glob.char_indices();
        while let Some((pos, c)) = chars.next() {
            match c {
                '*' => {
                    if last_was_star {
                        return Err(format!("Consecutive wildcard characters at pos {pos}"));
                    }
                    pieces.push(std::mem::take(&mut current).into_boxed_slice());
                    last_was_star = true;
                    continue;
                }
                '\\' => match chars.next() {
                    Some((_, e @ ('*' | '\\'))) => current.push(e as u8),
                    _ => return Err(format!("Invalid escape character at pos {pos}")),
                },
                _ => {
                    let mut buf = [0u8; 4];
                    current.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
            last_was_star = false;
        }
        pieces.push(current.into_boxed_slice());
        Ok(Wildcard { pieces })
    }

    /// Stars that are followed by more literal text: each is a point the matcher may have to
    /// revisit, the measure the complexity limit is put on (a trailing star costs nothing).
    pub(crate) fn complexity(&self) -> usize {
        let stars = self.pieces.len() - 1;
        if stars > 0 && self.pieces.last().is_some_and(|p| p.is_empty()) {
            stars - 1
        } else {
            stars
        }
    }

    /// Whether `value` matches. Leftmost matching of each middle piece is enough for a glob
    /// whose only wildcard is `*`, so this is one pass with no backtracking.
    pub(crate) fn matches(&self, value: &[u8]) -> bool {
        let (first, rest) = match self.pieces.split_first() {
            Some(p) => p,
            None => return value.is_empty(),
        };
        let Some((last, middle)) = rest.split_last() else {
            return value == &first[..];
        };
        if value.len() < first.len() + last.len()
            || !value.starts_with(first)
            || !value.ends_with(last)
        {
            return false;
        }
        let mut window = &value[first.len()..value.len() - last.len()];
        for piece in middle {
            match find(window, piece) {
                Some(at) => window = &window[at + piece.len()..],
                None => return false,
            }
        }
        true
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(glob: &str, value: &str) -> bool {
        Wildcard::parse(glob)
            .expect("valid glob")
            .matches(value.as_bytes())
    }

    #[test]
    fn stars_match_any_run() {
        assert!(m("arn:*:bus/*", "arn:aws:bus/x/y"));
        assert!(m("arn:*:bus/*", "arn::bus/"));
        assert!(!m("arn:*:bus/*", "arn:aws:queue/x"));
        assert!(m("*", ""));
        assert!(m("", ""));
        assert!(!m("", "a"));
        assert!(m("a*b*c", "abc"));
        assert!(m("a*b*c", "axxbyybc"));
        assert!(!m("a*b*c", "acb"));
        assert!(!m("ab*ba", "aba"));
        assert!(m("*.png", "x.png"));
    }

    #[test]
    fn escapes_and_errors() {
        assert!(m(r"a\*b", "a*b"));
        assert!(!m(r"a\*b", "axb"));
        assert!(m(r"a\\b", r"a\b"));
        assert_eq!(
            Wildcard::parse(r"a\b"),
            Err("Invalid escape character at pos 1".into())
        );
        assert_eq!(
            Wildcard::parse("a**"),
            Err("Consecutive wildcard characters at pos 2".into())
        );
        assert_eq!(Wildcard::parse("*:*:*/*").map(|w| w.complexity()), Ok(3));
        assert_eq!(Wildcard::parse("a*b").map(|w| w.complexity()), Ok(1));
    }
}
