//! The field paths the patterns of a set name, as a tree of path segments
//! shared by all patterns and reference-counted, so that removing a pattern
//! frees exactly the paths only it used. The scanner looks each event key up
//! here to decide whether to keep its value.

use super::NONE;

/// The field names patterns use, as a tree of path segments. Node 0 is the
/// event's root. Nodes are reference-counted by the clauses that use them.
#[derive(Debug, Default)]
pub(crate) struct PathTrie {
    nodes: Vec<TrieNode>,
    free: Vec<u32>,
}

/// A trie node's children. A lookup compares a key's length and first eight
/// bytes (its "head") before its text; past a few children it goes through
/// an open-addressing table instead of a linear scan, so that an object
/// naming many fields costs one probe per key, not one compare per field.
#[derive(Debug, Default)]
struct Children {
    list: Vec<Child>,
    /// Indexes into `list`, plus one (0 is an empty slot); a power of two
    /// at least twice `list.len()`, or empty while the list is short.
    table: Vec<u32>,
}

#[derive(Debug)]
struct Child {
    head: u64,
    len: usize,
    id: u32,
    key: Box<str>,
}

/// Lists up to this long are scanned without a table.
const LINEAR_CHILDREN: usize = 4;

/// The first (up to) eight bytes of `key`, zero-padded.
pub(super) fn head_of(key: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    let n = key.len().min(8);
    w[..n].copy_from_slice(&key[..n]);
    u64::from_le_bytes(w)
}

/// Table slot hash of a key: its head and length for short keys, all its
/// bytes for longer ones (which may share a head).
#[inline(always)]
fn slot_hash(key: &[u8], head: u64) -> u64 {
    let h = if key.len() <= 8 {
        head ^ (key.len() as u64).rotate_right(8)
    } else {
        use std::hash::Hasher;
        let mut hasher = rustc_hash::FxHasher::default();
        hasher.write(key);
        hasher.finish()
    };
    h.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

impl Child {
    #[inline(always)]
    fn is(&self, key: &[u8], head: u64) -> bool {
        self.head == head
            && self.len == key.len()
            && (key.len() <= 8 || self.key.as_bytes().get(8..) == key.get(8..))
    }
}

impl Children {
    #[inline]
    fn get(&self, key: &str) -> Option<u32> {
        self.get_with_head(key.as_bytes(), head_of(key.as_bytes()))
    }

    /// `get` with the key's head (see [`head_of`]) already computed.
    #[inline(always)]
    fn get_with_head(&self, key: &[u8], head: u64) -> Option<u32> {
        if self.table.is_empty() {
            return self.list.iter().find(|c| c.is(key, head)).map(|c| c.id);
        }
        let mask = self.table.len() - 1;
        let mut slot = (slot_hash(key, head) >> 32) as usize & mask;
        loop {
            let at = *self.table.get(slot)? as usize;
            let child = self.list.get(at.checked_sub(1)?)?;
            if child.is(key, head) {
                return Some(child.id);
            }
            slot = (slot + 1) & mask;
        }
    }

    fn insert(&mut self, key: Box<str>, value: u32) {
        self.list.push(Child {
            head: head_of(key.as_bytes()),
            len: key.len(),
            id: value,
            key,
        });
        let n = self.list.len();
        if n > LINEAR_CHILDREN && self.table.len() >= 2 * n {
            self.place(n - 1);
        } else {
            self.rebuild();
        }
    }

    fn remove(&mut self, key: &str) {
        self.list.retain(|c| &*c.key != key);
        self.rebuild();
    }

    /// Builds the table afresh (doubling it as the list grows, so inserts
    /// cost amortised O(1)), or drops it for a short list.
    fn rebuild(&mut self) {
        let n = self.list.len();
        if n <= LINEAR_CHILDREN {
            self.table = Vec::new();
            return;
        }
        self.table = vec![0; (2 * n).next_power_of_two()];
        for i in 0..n {
            self.place(i);
        }
    }

    fn place(&mut self, i: usize) {
        let mask = self.table.len() - 1;
        let c = &self.list[i];
        let mut slot = (slot_hash(c.key.as_bytes(), c.head) >> 32) as usize & mask;
        while self.table[slot] != 0 {
            slot = (slot + 1) & mask;
        }
        self.table[slot] = (i + 1) as u32;
    }

    fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

#[derive(Debug, Default)]
struct TrieNode {
    children: Children,
    parent: u32,
    key: Box<str>,
    refs: u32,
}

impl PathTrie {
    pub(crate) fn new() -> Self {
        PathTrie {
            nodes: vec![TrieNode {
                parent: NONE,
                ..TrieNode::default()
            }],
            free: Vec::new(),
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.nodes.len()
    }

    /// Number of freed node slots (for tests of removal).
    #[cfg(test)]
    pub(crate) fn free_count(&self) -> usize {
        self.free.len()
    }

    pub(crate) fn lookup(&self, node: u32, key: &str) -> Option<u32> {
        self.child(node, key)
    }

    pub(super) fn child(&self, node: u32, key: &str) -> Option<u32> {
        self.nodes[node as usize].children.get(key)
    }

    /// `child` with the key's zero-padded first eight bytes given.
    #[inline(always)]
    pub(super) fn child_bytes(&self, node: u32, key: &[u8], head: u64) -> Option<u32> {
        self.nodes[node as usize].children.get_with_head(key, head)
    }

    pub(super) fn has_children(&self, node: u32) -> bool {
        !self.nodes[node as usize].children.is_empty()
    }

    /// Adds one reference to every node of `path` (segments), creating them as
    /// needed; returns the node of the full path.
    pub(crate) fn acquire(&mut self, path: &[&str]) -> u32 {
        let mut at = 0u32;
        self.nodes[0].refs += 1;
        for seg in path {
            at = match self.child(at, seg) {
                Some(c) => c,
                None => {
                    let node = TrieNode {
                        children: Children::default(),
                        parent: at,
                        key: (*seg).into(),
                        refs: 0,
                    };
                    let id = match self.free.pop() {
                        Some(id) => {
                            self.nodes[id as usize] = node;
                            id
                        }
                        None => {
                            self.nodes.push(node);
                            (self.nodes.len() - 1) as u32
                        }
                    };
                    self.nodes[at as usize].children.insert((*seg).into(), id);
                    id
                }
            };
            self.nodes[at as usize].refs += 1;
        }
        at
    }

    /// Drops the references `acquire` took for the path ending at `node`.
    pub(crate) fn release(&mut self, node: u32) {
        let mut at = node;
        while at != NONE {
            let parent = self.nodes[at as usize].parent;
            let n = &mut self.nodes[at as usize];
            n.refs = n.refs.saturating_sub(1);
            if n.refs == 0 && at != 0 {
                let key = std::mem::take(&mut n.key);
                n.children = Children::default();
                self.nodes[parent as usize].children.remove(&key);
                self.free.push(at);
            }
            at = parent;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pattern::scan::{Doc, scan};
    use crate::pattern::value::Scalar;

    #[test]
    fn many_children_are_found_through_the_table_and_removed_exactly() {
        let mut trie = PathTrie::new();
        // Long keys sharing their first eight bytes, short ones, and "".
        let keys: Vec<String> = (0..100)
            .map(|i| format!("field_name_{i:03}"))
            .chain((0..30).map(|i| format!("k{i}")))
            .chain([String::new()])
            .collect();
        let nodes: Vec<u32> = keys.iter().map(|k| trie.acquire(&[k])).collect();
        for (k, n) in keys.iter().zip(&nodes) {
            assert_eq!(trie.child(0, k), Some(*n), "{k}");
        }
        assert_eq!(trie.child(0, "field_name_100"), None);
        assert_eq!(trie.child(0, "field_nam"), None);
        for n in nodes.iter().step_by(2) {
            trie.release(*n);
        }
        for (i, (k, n)) in keys.iter().zip(&nodes).enumerate() {
            let want = if i % 2 == 0 { None } else { Some(*n) };
            assert_eq!(trie.child(0, k), want, "{k}");
        }
        let mut doc = Doc::default();
        let json = r#"{"field_name_001": "x", "field_name_002": "y", "k1.z": 1}"#;
        let text = scan(json.as_bytes(), &trie, &mut doc).expect("valid");
        let leaf = doc.leaves_at(nodes[1]).next().expect("kept");
        assert!(matches!(doc.scalar(text, leaf), Scalar::Str("x")));
        assert_eq!(doc.leaves_at(nodes[2]).count(), 0, "released");
    }

    #[test]
    fn trie_release_frees_unused_nodes() {
        let mut trie = PathTrie::new();
        let a = trie.acquire(&["a", "b"]);
        let c = trie.acquire(&["a", "c"]);
        trie.release(a);
        assert!(trie.child(0, "a").is_some());
        assert!(
            trie.child(trie.child(0, "a").unwrap_or(NONE), "b")
                .is_none()
        );
        trie.release(c);
        assert!(trie.child(0, "a").is_none());
    }
}
