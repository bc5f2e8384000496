//! The kept parts of one event: the values on paths some pattern names, as
//! a small tree (objects, arrays and scalars, for checking array element
//! consistency) and, per trie path, a linked list of its scalars (for the
//! automaton's index lookups). Reused across events to avoid allocation.

use super::NONE;
use crate::pattern::value::{Num, Scalar};

/// A scalar found in the event, with strings as byte ranges into the event
/// (or into the scratch buffer, when they had escapes).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Leaf {
    Str { start: u32, end: u32, owned: bool },
    Num(Num),
    Bool(bool),
    Null,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Obj,
    Arr,
    Leaf,
}

/// A node of the kept tree. Children form a linked list through `next`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PNode {
    pub(crate) kind: Kind,
    /// Trie node of this value's path (object entries and array elements alike).
    pub(crate) trie: u32,
    /// Whether this is an entry of an object (rather than an array element).
    pub(crate) keyed: bool,
    pub(crate) first: u32,
    pub(crate) next: u32,
    /// Index into `leaves` for `Kind::Leaf`.
    pub(crate) leaf: u32,
}

/// The kept parts of one event. Reused across events to avoid allocation.
#[derive(Debug, Default)]
pub(crate) struct Doc {
    pub(crate) nodes: Vec<PNode>,
    pub(crate) leaves: Vec<Leaf>,
    /// For each leaf: the next leaf on the same trie path.
    pub(crate) leaf_next: Vec<u32>,
    /// For each trie node: the first leaf on that path (or NONE).
    pub(crate) heads: Vec<u32>,
    touched: Vec<u32>,
    /// For each trie node: how many distinct objects the event has there.
    objects: Vec<u32>,
    objects_touched: Vec<u32>,
    /// Unescaped strings.
    pub(crate) owned: String,
    /// Lowercased strings, filled on demand; per leaf (start, end) or NONE.
    pub(crate) lower: Vec<(u32, u32)>,
    pub(crate) lower_buf: String,
}

/// The holder of the event's root value.
pub(crate) const ROOT: u32 = 0;

impl Doc {
    pub(super) fn reset(&mut self, trie_capacity: usize) {
        for t in self.touched.drain(..) {
            if let Some(h) = self.heads.get_mut(t as usize) {
                *h = NONE;
            }
        }
        if self.heads.len() < trie_capacity {
            self.heads.resize(trie_capacity, NONE);
        }
        for t in self.objects_touched.drain(..) {
            if let Some(c) = self.objects.get_mut(t as usize) {
                *c = 0;
            }
        }
        if self.objects.len() < trie_capacity {
            self.objects.resize(trie_capacity, 0);
        }
        self.nodes.clear();
        self.leaves.clear();
        self.leaf_next.clear();
        self.owned.clear();
        self.lower.clear();
        self.lower_buf.clear();
        self.nodes.push(PNode {
            kind: Kind::Arr,
            trie: 0,
            keyed: false,
            first: NONE,
            next: NONE,
            leaf: NONE,
        });
    }

    pub(crate) fn scalar<'a>(&'a self, event: &'a str, leaf: u32) -> Scalar<'a> {
        match self.leaves[leaf as usize] {
            Leaf::Str { start, end, owned } => {
                let src = if owned { self.owned.as_str() } else { event };
                Scalar::Str(src.get(start as usize..end as usize).unwrap_or(""))
            }
            Leaf::Num(n) => Scalar::Num(n),
            Leaf::Bool(b) => Scalar::Bool(b),
            Leaf::Null => Scalar::Null,
        }
    }

    /// The lowercased form of a string leaf, computed once per event.
    pub(crate) fn lowered(&mut self, event: &str, leaf: u32) -> Option<(u32, u32)> {
        if self.lower.len() < self.leaves.len() {
            self.lower.resize(self.leaves.len(), (NONE, NONE));
        }
        let cached = self.lower[leaf as usize];
        if cached.0 != NONE {
            return Some(cached);
        }
        let Leaf::Str { start, end, owned } = self.leaves[leaf as usize] else {
            return None;
        };
        let src = if owned { self.owned.as_str() } else { event };
        let s = src.get(start as usize..end as usize).unwrap_or("");
        let start = self.lower_buf.len();
        if s.is_ascii() {
            self.lower_buf
                .extend(s.bytes().map(|b| char::from(b.to_ascii_lowercase())));
        } else {
            self.lower_buf.extend(crate::pattern::value::lower_chars(s));
        }
        let range = (start as u32, self.lower_buf.len() as u32);
        self.lower[leaf as usize] = range;
        Some(range)
    }

    pub(super) fn add_node(
        &mut self,
        parent: u32,
        kind: Kind,
        trie: u32,
        keyed: bool,
        leaf: u32,
    ) -> u32 {
        let id = self.nodes.len() as u32;
        let next = self.nodes[parent as usize].first;
        self.nodes.push(PNode {
            kind,
            trie,
            keyed,
            first: NONE,
            next,
            leaf,
        });
        self.nodes[parent as usize].first = id;
        id
    }

    /// The object entry `trie` of object `parent`, created if missing, so that
    /// `{"a.b": 1, "a": {"c": 2}}` yields one object under `a`.
    pub(super) fn object_entry(&mut self, parent: u32, trie: u32) -> u32 {
        let mut c = self.nodes[parent as usize].first;
        while c != NONE {
            let n = self.nodes[c as usize];
            if n.keyed && n.trie == trie && n.kind == Kind::Obj {
                return c;
            }
            c = n.next;
        }
        self.new_object(parent, trie, true)
    }

    pub(super) fn new_object(&mut self, parent: u32, trie: u32, keyed: bool) -> u32 {
        let count = &mut self.objects[trie as usize];
        if *count == 0 {
            self.objects_touched.push(trie);
        }
        *count += 1;
        self.add_node(parent, Kind::Obj, trie, keyed, NONE)
    }

    /// How many distinct objects the event has at path `trie` (objects
    /// merged from dotted keys count once).
    pub(crate) fn objects_at(&self, trie: u32) -> u32 {
        self.objects.get(trie as usize).copied().unwrap_or(0)
    }

    pub(super) fn add_leaf(&mut self, parent: u32, trie: u32, keyed: bool, leaf: Leaf) {
        let idx = self.leaves.len() as u32;
        self.leaves.push(leaf);
        let head = &mut self.heads[trie as usize];
        if *head == NONE {
            self.touched.push(trie);
        }
        self.leaf_next.push(*head);
        *head = idx;
        self.add_node(parent, Kind::Leaf, trie, keyed, idx);
    }

    /// Whether the event has any scalar on the path `trie`.
    pub(crate) fn has_scalars(&self, trie: u32) -> bool {
        self.heads.get(trie as usize).is_some_and(|h| *h != NONE)
    }

    /// Leaves on the path `trie`, anywhere in the event.
    pub(crate) fn leaves_at(&self, trie: u32) -> LeafIter<'_> {
        LeafIter {
            doc: self,
            at: self.heads.get(trie as usize).copied().unwrap_or(NONE),
        }
    }
}

pub(crate) struct LeafIter<'d> {
    doc: &'d Doc,
    at: u32,
}

impl Iterator for LeafIter<'_> {
    type Item = u32;
    fn next(&mut self) -> Option<u32> {
        if self.at == NONE {
            return None;
        }
        let cur = self.at;
        self.at = self.doc.leaf_next[cur as usize];
        Some(cur)
    }
}
