//! The event side: one pass over a record's JSON bytes that keeps the leaves whose paths some
//! pattern names and skips (while still checking) everything else. No tree, no allocation
//! once the buffers have grown; strings are unescaped only when a condition reads them.
//!
//! Each leaf carries its *array memberships*: for every enclosing array whose element is an
//! object (or a nested array), the array's id and the element's index. Two leaves that sit in
//! different elements of one array cannot be used together by one match (array consistency).
//! A primitive that is itself an array element does not record that innermost array, so a
//! primitive array combines freely with its siblings.

use super::condition::ValueRef;
use super::fold::fold_into;
use super::json::{scan_number, scan_string, skip_ws, unescape, MAX_DEPTH};
use super::numeric::exact_f64;
use super::paths::{NodeId, PathTrie, ROOT};

/// A leaf's value, as positions in its source's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LeafValue {
    /// A string's content between its quotes; `escaped` when it holds backslash escapes.
    Str {
        /// First byte of the content.
        start: u32,
        /// One past the last byte.
        end: u32,
        /// Whether it must be unescaped before use.
        escaped: bool,
    },
    /// A number's text.
    Num {
        /// First byte.
        start: u32,
        /// One past the last byte.
        end: u32,
    },
    /// `true` or `false`.
    Bool(bool),
    /// `null`.
    Null,
}

impl LeafValue {
    /// The leaf as a value to match, read from `bytes` (the document it came from): a string
    /// unescaped into `unescaped` when it needs it; a number with its exact double only when
    /// `exact` is asked for (it costs a parse). `None` when the bytes are not there or an escape
    /// is bad: such a leaf matches nothing.
    pub(crate) fn resolve<'a>(
        self,
        bytes: &'a [u8],
        unescaped: &'a mut Vec<u8>,
        exact: bool,
    ) -> Option<ValueRef<'a>> {
        Some(match self {
            LeafValue::Str {
                start,
                end,
                escaped,
            } => {
                let raw = bytes.get(start as usize..end as usize)?;
                if escaped {
                    unescape(raw, unescaped)?;
                    ValueRef::Str(&unescaped[..])
                } else {
                    ValueRef::Str(raw)
                }
            }
            LeafValue::Num { start, end } => {
                let text = bytes.get(start as usize..end as usize)?;
                let exact = if exact {
                    std::str::from_utf8(text).ok().and_then(exact_f64)
                } else {
                    None
                };
                ValueRef::Num { text, exact }
            }
            LeafValue::Bool(b) => ValueRef::Bool(b),
            LeafValue::Null => ValueRef::Null,
        })
    }
}

/// A string value case-folded into `folded`, when `wanted` (some condition ignores case);
/// `None` for other values and for bytes that are not UTF-8.
pub(crate) fn fold_value<'a>(
    value: &ValueRef<'_>,
    wanted: bool,
    folded: &'a mut Vec<u8>,
) -> Option<&'a [u8]> {
    match value {
        ValueRef::Str(text) if wanted => {
            let t = std::str::from_utf8(text).ok()?;
            folded.clear();
            fold_into(t, folded);
            Some(&folded[..])
        }
        _ => None,
    }
}

/// One (path, value) pair of the event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Leaf {
    /// The path's node.
    pub(crate) node: NodeId,
    /// Which source the positions refer to (the data, or one attribute).
    pub(crate) src: u32,
    /// The value.
    pub(crate) value: LeafValue,
    /// First of its array memberships in [`Leaves::memberships`].
    pub(crate) memb_start: u32,
    /// How many.
    pub(crate) memb_len: u32,
}

/// An array membership: (array id, element index).
pub(crate) type Membership = (u32, u32);

/// The leaves of one event, reused from event to event.
#[derive(Debug, Default)]
pub(crate) struct Leaves {
    /// The leaves, in document order.
    pub(crate) leaves: Vec<Leaf>,
    /// Every leaf's memberships, back to back.
    pub(crate) memberships: Vec<Membership>,
    stack: Vec<Membership>,
    next_array: u32,
    key_buf: Vec<u8>,
}

impl Leaves {
    /// Forgets the previous event.
    pub(crate) fn clear(&mut self) {
        self.leaves.clear();
        self.memberships.clear();
        self.stack.clear();
        self.next_array = 0;
    }

    /// Whether any leaf sits in an array of objects (only then is consistency a question).
    pub(crate) fn any_membership(&self) -> bool {
        !self.memberships.is_empty()
    }

    /// The memberships of a leaf.
    pub(crate) fn memberships_of(&self, leaf: &Leaf) -> &[Membership] {
        let start = leaf.memb_start as usize;
        &self.memberships[start..start + leaf.memb_len as usize]
    }

    /// Scans a JSON document whose root must be an object. `false` when it is not JSON, not an
    /// object, or too deep: such data matches nothing.
    pub(crate) fn scan_document(&mut self, bytes: &[u8], trie: &PathTrie, src: u32) -> bool {
        if bytes.len() > u32::MAX as usize || std::str::from_utf8(bytes).is_err() {
            return false;
        }
        let pos = skip_ws(bytes, 0);
        if bytes.get(pos) != Some(&b'{') {
            return false;
        }
        self.scan_value_at(bytes, trie, Some(ROOT), src)
    }

    /// Scans a whole JSON text as the value of the path `node` (a `String.Array` attribute).
    /// `false` when it is not JSON.
    pub(crate) fn scan_value_at(
        &mut self,
        bytes: &[u8],
        trie: &PathTrie,
        node: Option<NodeId>,
        src: u32,
    ) -> bool {
        if bytes.len() > u32::MAX as usize {
            return false;
        }
        let mut s = Scanner {
            b: bytes,
            pos: 0,
            trie,
            src,
            out: self,
        };
        s.value(node, false, 0).is_some() && skip_ws(bytes, s.pos) == bytes.len()
    }

    /// A point to [`Leaves::rewind`] to.
    pub(crate) fn mark(&self) -> (usize, usize) {
        (self.leaves.len(), self.memberships.len())
    }

    /// Forgets the leaves added since `mark` (a value that turned out malformed).
    pub(crate) fn rewind(&mut self, mark: (usize, usize)) {
        self.leaves.truncate(mark.0);
        self.memberships.truncate(mark.1);
        self.stack.clear();
    }

    /// Adds a leaf that is not inside any array (an attribute's value).
    pub(crate) fn push(&mut self, node: NodeId, src: u32, value: LeafValue) {
        self.leaves.push(Leaf {
            node,
            src,
            value,
            memb_start: 0,
            memb_len: 0,
        });
    }
}

struct Scanner<'b, 't, 'o> {
    b: &'b [u8],
    pos: usize,
    trie: &'t PathTrie,
    src: u32,
    out: &'o mut Leaves,
}

impl Scanner<'_, '_, '_> {
    /// Scans the value at `self.pos`. `node` is its path's node, `None` inside a subtree no
    /// pattern names (checked, not kept). `direct` when it is an array's element.
    fn value(&mut self, node: Option<NodeId>, direct: bool, depth: usize) -> Option<()> {
        let b = self.b;
        let pos = skip_ws(b, self.pos);
        let leaf = match *b.get(pos)? {
            b'{' => {
                self.pos = pos + 1;
                return self.object(node, depth + 1);
            }
            b'[' => {
                self.pos = pos + 1;
                return self.array(node, depth + 1);
            }
            b'"' => {
                let (end, escaped) = scan_string(b, pos + 1)?;
                self.pos = end + 1;
                LeafValue::Str {
                    start: pos as u32 + 1,
                    end: end as u32,
                    escaped,
                }
            }
            b't' | b'f' | b'n' => {
                let (v, end) = match b[pos] {
                    b't' => self.literal(pos, b"true", LeafValue::Bool(true))?,
                    b'f' => self.literal(pos, b"false", LeafValue::Bool(false))?,
                    _ => self.literal(pos, b"null", LeafValue::Null)?,
                };
                self.pos = end;
                v
            }
            _ => {
                let end = scan_number(b, pos)?;
                self.pos = end;
                LeafValue::Num {
                    start: pos as u32,
                    end: end as u32,
                }
            }
        };
        if let Some(n) = node.filter(|&n| self.trie.is_used(n)) {
            let out = &mut *self.out;
            let keep = out.stack.len() - usize::from(direct);
            let memb_start = out.memberships.len() as u32;
            if keep > 0 {
                out.memberships.extend_from_slice(&out.stack[..keep]);
            }
            out.leaves.push(Leaf {
                node: n,
                src: self.src,
                value: leaf,
                memb_start,
                memb_len: keep as u32,
            });
        }
        Some(())
    }

    /// Checks and passes over the value at `self.pos`, which no pattern looks into.
    fn skip(&mut self, depth: usize) -> Option<()> {
        let b = self.b;
        let pos = skip_ws(b, self.pos);
        match *b.get(pos)? {
            b'"' => self.pos = scan_string(b, pos + 1)?.0 + 1,
            b'{' | b'[' if depth >= MAX_DEPTH => return None,
            b'{' => {
                let mut p = skip_ws(b, pos + 1);
                if b.get(p) == Some(&b'}') {
                    self.pos = p + 1;
                    return Some(());
                }
                loop {
                    if b.get(p) != Some(&b'"') {
                        return None;
                    }
                    p = skip_ws(b, scan_string(b, p + 1)?.0 + 1);
                    if b.get(p) != Some(&b':') {
                        return None;
                    }
                    self.pos = p + 1;
                    self.skip(depth + 1)?;
                    p = skip_ws(b, self.pos);
                    match *b.get(p)? {
                        b',' => p = skip_ws(b, p + 1),
                        b'}' => break,
                        _ => return None,
                    }
                }
                self.pos = p + 1;
            }
            b'[' => {
                let mut p = skip_ws(b, pos + 1);
                if b.get(p) == Some(&b']') {
                    self.pos = p + 1;
                    return Some(());
                }
                loop {
                    self.pos = p;
                    self.skip(depth + 1)?;
                    p = skip_ws(b, self.pos);
                    match *b.get(p)? {
                        b',' => p = skip_ws(b, p + 1),
                        b']' => break,
                        _ => return None,
                    }
                }
                self.pos = p + 1;
            }
            b't' => self.pos = self.literal(pos, b"true", LeafValue::Null)?.1,
            b'f' => self.pos = self.literal(pos, b"false", LeafValue::Null)?.1,
            b'n' => self.pos = self.literal(pos, b"null", LeafValue::Null)?.1,
            _ => self.pos = scan_number(b, pos)?,
        }
        Some(())
    }

    fn literal(&mut self, pos: usize, word: &[u8], v: LeafValue) -> Option<(LeafValue, usize)> {
        if self.b.get(pos..pos + word.len())? != word {
            return None;
        }
        Some((v, pos + word.len()))
    }

    fn object(&mut self, node: Option<NodeId>, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        let b = self.b;
        let node = node.filter(|&n| self.trie.has_children(n));
        let mut pos = skip_ws(b, self.pos);
        if b.get(pos) == Some(&b'}') {
            self.pos = pos + 1;
            return Some(());
        }
        loop {
            if b.get(pos) != Some(&b'"') {
                return None;
            }
            let (end, escaped) = scan_string(b, pos + 1)?;
            let child = match node {
                None => None,
                Some(n) if !escaped => self.trie.walk(n, &b[pos + 1..end]),
                Some(n) => {
                    let mut key = std::mem::take(&mut self.out.key_buf);
                    super::json::unescape(&b[pos + 1..end], &mut key)?;
                    let child = self.trie.walk(n, &key);
                    self.out.key_buf = key;
                    child
                }
            };
            pos = skip_ws(b, end + 1);
            if b.get(pos) != Some(&b':') {
                return None;
            }
            self.pos = pos + 1;
            match child {
                Some(c) => self.value(Some(c), false, depth)?,
                None => self.skip(depth)?,
            }
            pos = skip_ws(b, self.pos);
            match b.get(pos)? {
                b',' => pos = skip_ws(b, pos + 1),
                b'}' => {
                    self.pos = pos + 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    fn array(&mut self, node: Option<NodeId>, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        let b = self.b;
        let mut pos = skip_ws(b, self.pos);
        if b.get(pos) == Some(&b']') {
            self.pos = pos + 1;
            return Some(());
        }
        if node.is_some() {
            let id = self.out.next_array;
            self.out.next_array += 1;
            self.out.stack.push((id, 0));
        }
        let mut index = 0u32;
        loop {
            if node.is_some() {
                if let Some(top) = self.out.stack.last_mut() {
                    top.1 = index;
                }
            }
            self.pos = pos;
            match node {
                Some(_) => self.value(node, true, depth)?,
                None => self.skip(depth)?,
            }
            index = index.wrapping_add(1);
            pos = skip_ws(b, self.pos);
            match b.get(pos)? {
                b',' => pos = skip_ws(b, pos + 1),
                b']' => {
                    self.pos = pos + 1;
                    if node.is_some() {
                        self.out.stack.pop();
                    }
                    return Some(());
                }
                _ => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trie(paths: &[&str]) -> (PathTrie, Vec<NodeId>) {
        let mut t = PathTrie::default();
        let ids = paths
            .iter()
            .map(|p| t.add(&p.split('.').map(str::to_string).collect::<Vec<_>>()))
            .collect();
        (t, ids)
    }

    #[test]
    fn only_named_paths_are_kept() {
        let (t, ids) = trie(&["a.b", "c"]);
        let mut l = Leaves::default();
        let doc = br#"{"x":{"b":[1,{"q":2}]},"a":{"b":"s\"t","z":true},"c":[1,[2,null]],"a.b":3}"#;
        assert!(l.scan_document(doc, &t, 0));
        let at: Vec<_> = l.leaves.iter().map(|x| x.node).collect();
        assert_eq!(at, vec![ids[0], ids[1], ids[1], ids[1], ids[0]]);
        assert!(matches!(
            l.leaves[0].value,
            LeafValue::Str { escaped: true, .. }
        ));
    }

    #[test]
    fn objects_in_arrays_record_their_element() {
        let (t, ids) = trie(&["e.first", "e.last"]);
        let mut l = Leaves::default();
        assert!(l.scan_document(br#"{"e":[{"first":"A","last":"B"},{"first":"C"}]}"#, &t, 0));
        assert_eq!(l.leaves.len(), 3);
        assert_eq!(l.leaves[2].node, ids[0]);
        assert_eq!(l.memberships_of(&l.leaves[0]), &[(0, 0)]);
        assert_eq!(l.memberships_of(&l.leaves[1]), &[(0, 0)]);
        assert_eq!(l.memberships_of(&l.leaves[2]), &[(0, 1)]);
    }

    #[test]
    fn raw_control_characters_only_between_tokens() {
        let (t, _) = trie(&["a"]);
        let mut l = Leaves::default();
        assert!(l.scan_document(b"{\n\t\"a\" :\r\n \"x\"\n}", &t, 0));
        assert_eq!(l.leaves.len(), 1);
        for bad in [
            &b"{\"a\":\"x\ty\"}"[..],
            b"{\"b\":\"x\ny\"}",
            b"{\"a\":\"\x01\"}",
        ] {
            l.clear();
            assert!(!l.scan_document(bad, &t, 0), "{bad:?}");
        }
        l.clear();
        assert!(l.scan_document(
            br#"{"b":"long enough to take the word-at-a-time path \" on","a":"\\"}"#,
            &t,
            0
        ));
        assert!(matches!(
            l.leaves[0].value,
            LeafValue::Str { escaped: true, .. }
        ));
    }

    #[test]
    fn malformed_or_deep_documents_are_refused() {
        let (t, _) = trie(&["a"]);
        let mut l = Leaves::default();
        for bad in [
            &b"{"[..],
            b"[]",
            b"{\"a\":}",
            b"{\"a\":1,}",
            b"{\"a\":1} x",
            b"{\"a\":tru}",
            b"\xff",
        ] {
            l.clear();
            assert!(!l.scan_document(bad, &t, 0), "{bad:?}");
        }
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(100), "]".repeat(100));
        l.clear();
        assert!(!l.scan_document(deep.as_bytes(), &t, 0));
        let fine = format!("{{\"a\":{}1{}}}", "[".repeat(20), "]".repeat(20));
        l.clear();
        assert!(l.scan_document(fine.as_bytes(), &t, 0));
    }
}
