//! The field paths a matcher's patterns name, as a trie of key segments: the event scanner
//! walks it key by key, so a subtree no pattern looks into is skipped without a lookup.

use super::hash::FxHashMap;

/// Identifies a node of the trie, and so a path.
pub(crate) type NodeId = u32;

/// The root: the event's top-level object.
pub(crate) const ROOT: NodeId = 0;

/// Up to this many children are searched in a list (comparing lengths first is cheaper than
/// hashing the key); more go into a hash map.
const LIST_CHILDREN: usize = 8;

/// A node's children by key segment.
#[derive(Clone, Debug, Default)]
struct Children {
    list: Vec<(Box<[u8]>, NodeId)>,
    map: Option<FxHashMap<Box<[u8]>, NodeId>>,
}

impl Children {
    #[inline]
    fn get(&self, key: &[u8]) -> Option<NodeId> {
        match &self.map {
            Some(m) => m.get(key).copied(),
            None => self.list.iter().find(|(k, _)| **k == *key).map(|c| c.1),
        }
    }

    fn insert(&mut self, key: &[u8], node: NodeId) {
        if let Some(m) = &mut self.map {
            m.insert(key.into(), node);
            return;
        }
        self.list.push((key.into(), node));
        if self.list.len() > LIST_CHILDREN {
            self.map = Some(std::mem::take(&mut self.list).into_iter().collect());
        }
    }

    fn is_empty(&self) -> bool {
        self.list.is_empty() && self.map.as_ref().is_none_or(|m| m.is_empty())
    }
}

#[derive(Clone, Debug, Default)]
struct TrieNode {
    children: Children,
    /// How many clauses test this path; 0 for a node that only leads to deeper paths.
    clauses: u32,
}

/// A trie over key segments. Dotted keys are split, so `{"a.b":…}` and `{"a":{"b":…}}` reach
/// the same node, on the pattern side as on the event side.
#[derive(Clone, Debug)]
pub(crate) struct PathTrie {
    nodes: Vec<TrieNode>,
}

impl Default for PathTrie {
    fn default() -> Self {
        PathTrie {
            nodes: vec![TrieNode::default()],
        }
    }
}

impl PathTrie {
    /// The node of a path, created as needed, counted as used by one more clause.
    pub(crate) fn add(&mut self, segments: &[String]) -> NodeId {
        let mut node = ROOT;
        for seg in segments {
            let next = self.nodes.len() as NodeId;
            let key: &[u8] = seg.as_bytes();
            node = match self.nodes[node as usize].children.get(key) {
                Some(n) => n,
                None => {
                    self.nodes[node as usize].children.insert(key, next);
                    self.nodes.push(TrieNode::default());
                    next
                }
            };
        }
        self.nodes[node as usize].clauses += 1;
        node
    }

    /// One clause less on a path. Nodes are kept (a path used once is likely used again); a
    /// node no clause tests yields no leaves.
    pub(crate) fn release(&mut self, node: NodeId) {
        if let Some(n) = self.nodes.get_mut(node as usize) {
            n.clauses = n.clauses.saturating_sub(1);
        }
    }

    /// Number of nodes (node ids are below it).
    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether some clause tests the path of `node`.
    #[inline]
    pub(crate) fn is_used(&self, node: NodeId) -> bool {
        self.nodes[node as usize].clauses > 0
    }

    /// Whether paths continue below `node`.
    #[inline]
    pub(crate) fn has_children(&self, node: NodeId) -> bool {
        !self.nodes[node as usize].children.is_empty()
    }

    /// The node reached from `node` by an event key (split at its dots).
    #[inline]
    pub(crate) fn walk(&self, mut node: NodeId, key: &[u8]) -> Option<NodeId> {
        let mut rest = key;
        loop {
            match rest.iter().position(|&b| b == b'.') {
                None => return self.nodes[node as usize].children.get(rest),
                Some(dot) => {
                    node = self.nodes[node as usize].children.get(&rest[..dot])?;
                    rest = &rest[dot + 1..];
                }
            }
        }
    }
}
