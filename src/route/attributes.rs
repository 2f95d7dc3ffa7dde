//! Attribute scope: a record's SNS-style message attributes as the leaves of an object —
//! `String` a string, `Number` a number (its decimal text), `String.Array` an array (each
//! element its own value), `Binary` ignored.

use super::event::{LeafValue, Leaves};
use super::json::is_number;
use super::paths::{PathTrie, ROOT};
use super::AttrValue;

/// Adds the leaves of `attributes` that some pattern names; source `i` is attribute `i`. A
/// `Number` whose text is not a JSON number and a `String.Array` that is not a JSON array are
/// treated as absent: the publisher's validation should have refused them.
pub(crate) fn scan_attributes(
    attributes: &[(&str, AttrValue<'_>)],
    trie: &PathTrie,
    leaves: &mut Leaves,
) {
    leaves.clear();
    for (i, (name, value)) in attributes.iter().enumerate() {
        let Some(node) = trie.walk(ROOT, name.as_bytes()) else {
            continue;
        };
        let src = i as u32;
        match value {
            AttrValue::String(s) if trie.is_used(node) => leaves.push(
                node,
                src,
                LeafValue::Str {
                    start: 0,
                    end: s.len() as u32,
                    escaped: false,
                },
            ),
            AttrValue::Number(n) if trie.is_used(node) && is_number(n.as_bytes()) => leaves.push(
                node,
                src,
                LeafValue::Num {
                    start: 0,
                    end: n.len() as u32,
                },
            ),
            AttrValue::StringArray(text) if text.trim_start().starts_with('[') => {
                let mark = leaves.mark();
                if !leaves.scan_value_at(text.as_bytes(), trie, Some(node), src) {
                    leaves.rewind(mark);
                }
            }
            _ => {}
        }
    }
}
