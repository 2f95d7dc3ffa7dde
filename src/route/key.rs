//! The key of the value index's hash maps: a byte string kept inside the table's bucket when
//! short (most pattern values are), so a lookup touches one cache line instead of two.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};

/// Bytes kept inline; longer keys go to the heap.
const INLINE: usize = 22;

/// A byte string, inline up to [`INLINE`] bytes.
#[derive(Clone)]
pub(crate) enum Key {
    /// Short: `bytes[..len]`.
    Inline {
        /// How many bytes are used.
        len: u8,
        /// The bytes, zero-padded.
        bytes: [u8; INLINE],
    },
    /// Long.
    Heap(Box<[u8]>),
}

impl Key {
    /// The key's bytes.
    #[inline]
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            Key::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Key::Heap(b) => b,
        }
    }
}

impl From<&[u8]> for Key {
    fn from(s: &[u8]) -> Key {
        if s.len() <= INLINE {
            let mut bytes = [0u8; INLINE];
            bytes[..s.len()].copy_from_slice(s);
            Key::Inline {
                len: s.len() as u8,
                bytes,
            }
        } else {
            Key::Heap(s.into())
        }
    }
}

impl Borrow<[u8]> for Key {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

// Hash and equality are the byte string's, as `Borrow` requires.
impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state)
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Key {}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::hash::FxHashMap;

    #[test]
    fn short_and_long_keys_are_found_by_their_bytes() {
        let long = [b'x'; 40];
        let mut m: FxHashMap<Key, u32> = FxHashMap::default();
        m.insert(Key::from(&b"abc"[..]), 1);
        m.insert(Key::from(&long[..]), 2);
        m.insert(Key::from(&b""[..]), 3);
        assert_eq!(m.get(&b"abc"[..]), Some(&1));
        assert_eq!(m.get(&long[..]), Some(&2));
        assert_eq!(m.get(&b""[..]), Some(&3));
        assert_eq!(m.get(&b"abd"[..]), None);
        assert!(matches!(Key::from(&long[..]), Key::Heap(_)));
    }
}
