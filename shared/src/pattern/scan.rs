//! Reads an event's JSON bytes once, in one pass, and keeps only the parts on
//! a path some pattern names: a small tree of those fields (for checking
//! array element consistency) and, per path, the list of its scalar values
//! (for the automaton). Everything else is checked for JSON validity and
//! skipped without being decoded.

use super::EVENT_MAX_DEPTH;
use super::EventError;
use super::value::{Num, Scalar};

pub(crate) const NONE: u32 = u32::MAX;

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
fn head_of(key: &[u8]) -> u64 {
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

    fn child(&self, node: u32, key: &str) -> Option<u32> {
        self.nodes[node as usize].children.get(key)
    }

    /// `child` with the key's zero-padded first eight bytes given.
    #[inline(always)]
    fn child_bytes(&self, node: u32, key: &[u8], head: u64) -> Option<u32> {
        self.nodes[node as usize].children.get_with_head(key, head)
    }

    fn has_children(&self, node: u32) -> bool {
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
    fn reset(&mut self, trie_capacity: usize) {
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
            self.lower_buf.extend(super::value::lower_chars(s));
        }
        let range = (start as u32, self.lower_buf.len() as u32);
        self.lower[leaf as usize] = range;
        Some(range)
    }

    fn add_node(&mut self, parent: u32, kind: Kind, trie: u32, keyed: bool, leaf: u32) -> u32 {
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
    fn object_entry(&mut self, parent: u32, trie: u32) -> u32 {
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

    fn new_object(&mut self, parent: u32, trie: u32, keyed: bool) -> u32 {
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

    fn add_leaf(&mut self, parent: u32, trie: u32, keyed: bool, leaf: Leaf) {
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

// ---------------------------------------------------------------------------
// The scanner
//
// A hand-written recursive descent over the event bytes with the position
// passed in registers. Reading past the end yields a NUL byte, which no JSON
// token accepts, so the loops need no separate end-of-input test: they stop
// at the NUL and the error path tells "end of input" from a real NUL. Strings
// are scanned 8 bytes at a time with plain u64 arithmetic (SWAR), which is as
// fast on arm64 as on x86-64.

/// `TRUSTED`: the event is known to be valid JSON (checked at ingest), so
/// the parts no pattern names are skipped by bracket counting instead of
/// being validated (the event is still checked for UTF-8, which is cheap).
/// On bytes that are not valid JSON the scanner still never panics or reads
/// out of bounds; what it keeps is then unspecified.
struct Scanner<'e, 'd, const TRUSTED: bool> {
    src: &'e [u8],
    /// The event as text.
    text: &'e str,
    doc: &'d mut Doc,
    trie: &'d PathTrie,
    key_buf: String,
    /// What stopped the scan, and where.
    fail: (&'static str, usize),
}

/// The scan stopped on invalid input; the reason is in `Scanner::fail`.
struct Stop;

type Step = Result<usize, Stop>;

/// Where a kept value goes: at trie path `trie`, as a child of doc node
/// `parent`, as an object entry (`keyed`) or an array element.
#[derive(Clone, Copy)]
struct Keep {
    trie: u32,
    parent: u32,
    keyed: bool,
}

/// Parses `event` into `doc`, keeping the paths in `trie`. The whole input is
/// validated as JSON, as serde_json would.
#[inline(never)]
pub(crate) fn scan<'e>(
    event: &'e [u8],
    trie: &PathTrie,
    doc: &mut Doc,
) -> Result<&'e str, EventError> {
    run_scan::<false>(event, trie, doc)
}

/// Like [`scan`] for an event already known to be valid JSON: only the
/// parts some pattern names are read and checked; the rest is skipped by
/// bracket counting.
#[inline(never)]
pub(crate) fn scan_trusted<'e>(
    event: &'e [u8],
    trie: &PathTrie,
    doc: &mut Doc,
) -> Result<&'e str, EventError> {
    run_scan::<true>(event, trie, doc)
}

/// Both scans: the event is checked for UTF-8 as a whole (cheap), then read; returns it as
/// text.
fn run_scan<'e, const TRUSTED: bool>(
    event: &'e [u8],
    trie: &PathTrie,
    doc: &mut Doc,
) -> Result<&'e str, EventError> {
    let text = std::str::from_utf8(event).map_err(|e| EventError(format!("not UTF-8: {e}")))?;
    doc.reset(trie.capacity());
    let mut s = Scanner::<TRUSTED> {
        src: event,
        text,
        doc,
        trie,
        key_buf: String::new(),
        fail: ("", 0),
    };
    let root = Keep {
        trie: 0,
        parent: ROOT,
        keyed: false,
    };
    let end = ws(event, 0);
    let end = s
        .value(end, root, 0)
        .map(|p| ws(event, p))
        .map_err(|Stop| s.error())?;
    if end != event.len() {
        return Err(EventError(format!(
            "trailing characters after the JSON value at byte {end}"
        )));
    }
    Ok(text)
}

/// The byte at `pos`, or NUL past the end.
#[inline(always)]
fn byte(src: &[u8], pos: usize) -> u8 {
    src.get(pos).copied().unwrap_or(0)
}

/// Eight bytes at `pos` as a little-endian word, NUL-padded past the end.
#[inline(always)]
fn word(src: &[u8], pos: usize) -> u64 {
    match src.get(pos..pos.wrapping_add(8)) {
        Some(b) => {
            let mut w = [0u8; 8];
            w.copy_from_slice(b);
            u64::from_le_bytes(w)
        }
        None => word_tail(src, pos),
    }
}

#[cold]
fn word_tail(src: &[u8], pos: usize) -> u64 {
    let mut w = [0u8; 8];
    if let Some(rest) = src.get(pos..) {
        let n = rest.len().min(8);
        w[..n].copy_from_slice(&rest[..n]);
    }
    u64::from_le_bytes(w)
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// High bit set in each byte of `w` that ends a run of ordinary string
/// bytes: `"`, `\` or a control character. Only the lowest flagged byte is
/// exact (borrows can flag bytes above a hit), which is all the scanner uses.
#[inline(always)]
fn string_stops(w: u64) -> u64 {
    let t = w.wrapping_sub(ONES * 0x20)
        | (w ^ (ONES * u64::from(b'"'))).wrapping_sub(ONES)
        | (w ^ (ONES * u64::from(b'\\'))).wrapping_sub(ONES);
    t & !w & HIGH
}

/// Skips JSON whitespace from `pos`.
#[inline(always)]
fn ws(src: &[u8], mut pos: usize) -> usize {
    // Compact JSON has no whitespace: one test in the common case.
    if byte(src, pos) > b' ' {
        return pos;
    }
    while matches!(byte(src, pos), b' ' | b'\n' | b'\r' | b'\t') {
        pos += 1;
    }
    pos
}

const ORDINARY: u8 = 0;
const QUOTE: u8 = 1;
const OPEN: u8 = 2;
const CLOSE: u8 = 3;
const NUL: u8 = 4;

/// Byte classes for skipping a container of a trusted event.
static SKIP_CLASS: [u8; 256] = {
    let mut t = [ORDINARY; 256];
    t[0] = NUL;
    t[b'"' as usize] = QUOTE;
    t[b'{' as usize] = OPEN;
    t[b'[' as usize] = OPEN;
    t[b'}' as usize] = CLOSE;
    t[b']' as usize] = CLOSE;
    t
};

impl<'e, const TRUSTED: bool> Scanner<'e, '_, TRUSTED> {
    /// The text of `src[start..end]`.
    #[inline(always)]
    fn text_at(&self, start: usize, end: usize) -> Option<&'e str> {
        self.text.get(start..end)
    }

    #[cold]
    #[inline(never)]
    fn stop(&mut self, what: &'static str, pos: usize) -> Stop {
        self.fail = (what, pos);
        Stop
    }

    /// The error for a value expected at `pos`.
    #[cold]
    #[inline(never)]
    fn bad_value(&mut self, pos: usize) -> Stop {
        let what = if pos >= self.src.len() {
            "unexpected end of input"
        } else {
            "expected a JSON value"
        };
        self.stop(what, pos)
    }

    #[cold]
    fn error(&self) -> EventError {
        EventError(format!("{} at byte {}", self.fail.0, self.fail.1))
    }

    /// Scans the rest of a string whose content starts at `pos` (just after
    /// the opening quote); returns the position of the closing quote and
    /// whether the content has escapes.
    #[inline(always)]
    fn string_end(&mut self, mut pos: usize) -> Result<(usize, bool), Stop> {
        let src = self.src;
        let mut escaped = false;
        loop {
            let stops = string_stops(word(src, pos));
            if stops == 0 {
                pos += 8;
                continue;
            }
            pos += (stops.trailing_zeros() / 8) as usize;
            match byte(src, pos) {
                b'"' => return Ok((pos, escaped)),
                b'\\' => {
                    escaped = true;
                    pos = self.escape(pos)?;
                }
                _ if pos >= src.len() => return Err(self.stop("unterminated string", pos)),
                _ => return Err(self.stop("control character in string", pos)),
            }
        }
    }

    /// Validates the escape whose backslash is at `pos`, like serde_json
    /// (lone surrogates are errors); returns the position after it.
    #[inline(never)]
    fn escape(&mut self, pos: usize) -> Step {
        let src = self.src;
        match byte(src, pos + 1) {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Ok(pos + 2),
            b'u' => {
                let Some(cp) = hex4(src, pos + 2) else {
                    return Err(self.stop("invalid \\u escape", pos + 2));
                };
                if (0xDC00..0xE000).contains(&cp) {
                    return Err(self.stop("lone trailing surrogate in \\u escape", pos + 2));
                }
                if !(0xD800..0xDC00).contains(&cp) {
                    return Ok(pos + 6);
                }
                if src.get(pos + 6..pos + 8) != Some(b"\\u") {
                    return Err(self.stop("lone leading surrogate in \\u escape", pos + 6));
                }
                match hex4(src, pos + 8) {
                    Some(low) if (0xDC00..0xE000).contains(&low) => Ok(pos + 12),
                    _ => Err(self.stop("lone leading surrogate in \\u escape", pos + 8)),
                }
            }
            _ => Err(self.stop("invalid escape", pos + 1)),
        }
    }

    /// Skips `"key"`, the colon and the whitespace around it, at `pos`.
    #[inline(always)]
    fn skip_key(&mut self, pos: usize) -> Step {
        if byte(self.src, pos) != b'"' {
            return Err(self.stop("expected a string key", pos));
        }
        let (end, _) = self.string_end(pos + 1)?;
        let pos = ws(self.src, end + 1);
        if byte(self.src, pos) != b':' {
            return Err(self.stop("expected : after key", pos));
        }
        Ok(ws(self.src, pos + 1))
    }

    /// Checks the literal `word` at `pos`.
    #[inline(always)]
    fn literal(&mut self, pos: usize, word: &'static [u8]) -> Step {
        if self.src.get(pos..pos + word.len()) == Some(word) {
            Ok(pos + word.len())
        } else {
            Err(self.stop("invalid literal", pos))
        }
    }

    /// Checks a number's grammar at `pos`; returns its end and whether it has
    /// a fraction or an exponent.
    #[inline(always)]
    fn number_end(&mut self, pos: usize) -> Result<(usize, bool), Stop> {
        let src = self.src;
        let mut p = pos;
        if byte(src, p) == b'-' {
            p += 1;
        }
        match byte(src, p) {
            b'0' => p += 1,
            b'1'..=b'9' => {
                p += 1;
                while byte(src, p).is_ascii_digit() {
                    p += 1;
                }
            }
            _ => return Err(self.stop("invalid number", p)),
        }
        let mut simple = true;
        if byte(src, p) == b'.' {
            simple = false;
            p += 1;
            if !byte(src, p).is_ascii_digit() {
                return Err(self.stop("invalid number", p));
            }
            while byte(src, p).is_ascii_digit() {
                p += 1;
            }
        }
        if matches!(byte(src, p), b'e' | b'E') {
            simple = false;
            p += 1;
            if matches!(byte(src, p), b'+' | b'-') {
                p += 1;
            }
            if !byte(src, p).is_ascii_digit() {
                return Err(self.stop("invalid number", p));
            }
            while byte(src, p).is_ascii_digit() {
                p += 1;
            }
        }
        Ok((p, !simple))
    }

    /// Validates a number nobody keeps: only one with an exponent, or a very
    /// long one, can overflow f64, which serde_json refuses.
    #[inline(always)]
    fn skip_number(&mut self, pos: usize) -> Step {
        let (end, _) = self.number_end(pos)?;
        let src = self.src;
        let long = end - pos > 300;
        if (long || src[pos..end].iter().any(|b| matches!(b, b'e' | b'E')))
            && self
                .text_at(pos, end)
                .and_then(Num::parse_json_text)
                .is_none()
        {
            return Err(self.stop("number out of range", pos));
        }
        Ok(end)
    }

    /// Validates and skips the value at `pos`, iteratively and without
    /// keeping anything: the fast path for the parts of an event no pattern
    /// names. `depth` is the nesting depth of the value's parent.
    fn skip(&mut self, mut pos: usize, depth: usize) -> Step {
        let src = self.src;
        // One bit per container opened here, innermost lowest: 1 = object.
        let mut objects: u128 = 0;
        let mut open = 0usize;
        'value: loop {
            match byte(src, pos) {
                b'"' => pos = self.string_end(pos + 1)?.0 + 1,
                c @ (b'{' | b'[') => {
                    if depth + open + 1 > EVENT_MAX_DEPTH {
                        return Err(self.stop("nested too deeply", pos));
                    }
                    pos = ws(src, pos + 1);
                    let object = c == b'{';
                    if byte(src, pos) == if object { b'}' } else { b']' } {
                        pos += 1;
                    } else {
                        objects = (objects << 1) | u128::from(object);
                        open += 1;
                        if object {
                            pos = self.skip_key(pos)?;
                        }
                        continue 'value;
                    }
                }
                b't' => pos = self.literal(pos, b"true")?,
                b'f' => pos = self.literal(pos, b"false")?,
                b'n' => pos = self.literal(pos, b"null")?,
                b'-' | b'0'..=b'9' => pos = self.skip_number(pos)?,
                _ => return Err(self.bad_value(pos)),
            }
            // After a value: close containers or move to the next member.
            loop {
                if open == 0 {
                    return Ok(pos);
                }
                pos = ws(src, pos);
                let object = objects & 1 != 0;
                let c = byte(src, pos);
                if c == b',' {
                    pos = ws(src, pos + 1);
                    if object {
                        pos = self.skip_key(pos)?;
                    }
                    continue 'value;
                }
                if c != if object { b'}' } else { b']' } {
                    return Err(self.stop("expected , or a closing bracket", pos));
                }
                pos += 1;
                objects >>= 1;
                open -= 1;
            }
        }
    }

    /// Skips the value at `pos`: validating it, or when `TRUSTED`, by
    /// bracket counting.
    #[inline(always)]
    fn skip_any(&mut self, pos: usize, depth: usize) -> Step {
        if TRUSTED {
            self.skip_trusted(pos, depth)
        } else {
            self.skip(pos, depth)
        }
    }

    /// Skips the value at `pos` of an event known to be valid JSON: strings
    /// to their closing quote, containers to their closing bracket, other
    /// values to the next delimiter. Every step moves forward, so it ends
    /// on any input; the nesting limit still applies.
    fn skip_trusted(&mut self, pos: usize, depth: usize) -> Step {
        let src = self.src;
        match byte(src, pos) {
            b'"' => return self.string_end_trusted(pos + 1).map(|end| end + 1),
            b'{' | b'[' => {}
            0 => return Err(self.bad_value(pos)),
            _ => {
                let mut p = pos + 1;
                while !matches!(
                    byte(src, p),
                    b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t' | 0
                ) {
                    p += 1;
                }
                return Ok(p);
            }
        }
        let mut open = 0usize;
        let mut p = pos;
        loop {
            match SKIP_CLASS[usize::from(byte(src, p))] {
                ORDINARY => {}
                QUOTE => {
                    p = self.string_end_trusted(p + 1)?;
                }
                OPEN => {
                    open += 1;
                    if depth + open > EVENT_MAX_DEPTH {
                        return Err(self.stop("nested too deeply", p));
                    }
                }
                CLOSE => {
                    open -= 1;
                    if open == 0 {
                        return Ok(p + 1);
                    }
                }
                _ if p >= src.len() => return Err(self.stop("unexpected end of input", p)),
                _ => {}
            }
            p += 1;
        }
    }

    /// The closing quote of a string whose content starts at `pos`, without
    /// validating the content.
    #[inline(always)]
    fn string_end_trusted(&mut self, mut pos: usize) -> Step {
        let src = self.src;
        loop {
            let stops = string_stops(word(src, pos));
            if stops == 0 {
                pos += 8;
                continue;
            }
            pos += (stops.trailing_zeros() / 8) as usize;
            match byte(src, pos) {
                b'"' => return Ok(pos),
                b'\\' => pos += 2,
                _ if pos >= src.len() => return Err(self.stop("unterminated string", pos)),
                _ => pos += 1,
            }
        }
    }

    /// Reads the value at `pos` into the doc at `at`. `depth` is the nesting
    /// depth of the value's parent.
    fn value(&mut self, pos: usize, at: Keep, depth: usize) -> Step {
        let src = self.src;
        match byte(src, pos) {
            b'"' => {
                let (end, escaped) = self.string_end(pos + 1)?;
                let start = pos + 1;
                let leaf = if escaped {
                    let Some(raw) = self.text_at(start, end) else {
                        return Err(self.stop("string is not UTF-8", start));
                    };
                    let from = self.doc.owned.len();
                    unescape_into(raw, &mut self.doc.owned);
                    Leaf::Str {
                        start: from as u32,
                        end: self.doc.owned.len() as u32,
                        owned: true,
                    }
                } else {
                    Leaf::Str {
                        start: start as u32,
                        end: end as u32,
                        owned: false,
                    }
                };
                self.doc.add_leaf(at.parent, at.trie, at.keyed, leaf);
                Ok(end + 1)
            }
            b'{' if self.trie.has_children(at.trie) => {
                if depth + 1 > EVENT_MAX_DEPTH {
                    return Err(self.stop("nested too deeply", pos));
                }
                let id = if at.keyed {
                    self.doc.object_entry(at.parent, at.trie)
                } else {
                    self.doc.new_object(at.parent, at.trie, false)
                };
                self.object(pos, at.trie, id, depth + 1)
            }
            // Nothing below is named (or only scalars are): validate and move on.
            b'{' => self.skip_any(pos, depth),
            b'[' => self.array(pos, at, depth + 1),
            b't' => {
                let end = self.literal(pos, b"true")?;
                self.doc
                    .add_leaf(at.parent, at.trie, at.keyed, Leaf::Bool(true));
                Ok(end)
            }
            b'f' => {
                let end = self.literal(pos, b"false")?;
                self.doc
                    .add_leaf(at.parent, at.trie, at.keyed, Leaf::Bool(false));
                Ok(end)
            }
            b'n' => {
                let end = self.literal(pos, b"null")?;
                self.doc.add_leaf(at.parent, at.trie, at.keyed, Leaf::Null);
                Ok(end)
            }
            b'-' | b'0'..=b'9' => {
                let (end, _) = self.number_end(pos)?;
                let Some(n) = self.text_at(pos, end).and_then(Num::parse_json_text) else {
                    return Err(self.stop("number out of range", pos));
                };
                self.doc
                    .add_leaf(at.parent, at.trie, at.keyed, Leaf::Num(n));
                Ok(end)
            }
            _ => Err(self.bad_value(pos)),
        }
    }

    /// The array at `pos`, kept at `at`; `depth` is its own nesting depth.
    fn array(&mut self, pos: usize, at: Keep, depth: usize) -> Step {
        if depth > EVENT_MAX_DEPTH {
            return Err(self.stop("nested too deeply", pos));
        }
        let src = self.src;
        let id = self
            .doc
            .add_node(at.parent, Kind::Arr, at.trie, at.keyed, NONE);
        let inner = Keep {
            trie: at.trie,
            parent: id,
            keyed: false,
        };
        let mut pos = ws(src, pos + 1);
        if byte(src, pos) == b']' {
            return Ok(pos + 1);
        }
        loop {
            pos = self.value(pos, inner, depth)?;
            pos = ws(src, pos);
            match byte(src, pos) {
                b',' => pos = ws(src, pos + 1),
                b']' => return Ok(pos + 1),
                _ => return Err(self.stop("expected , or ] in array", pos)),
            }
        }
    }

    /// The object at `pos`, kept as doc node `obj` at trie path `trie` (which
    /// has children); `depth` is its own nesting depth.
    fn object(&mut self, pos: usize, trie: u32, obj: u32, depth: usize) -> Step {
        let src = self.src;
        let mut pos = ws(src, pos + 1);
        if byte(src, pos) == b'}' {
            return Ok(pos + 1);
        }
        loop {
            if byte(src, pos) != b'"' {
                return Err(self.stop("expected a string key", pos));
            }
            let start = pos + 1;
            let (end, escaped) = self.string_end(start)?;
            pos = ws(src, end + 1);
            if byte(src, pos) != b':' {
                return Err(self.stop("expected : after key", pos));
            }
            pos = ws(src, pos + 1);
            pos = match self.member(trie, obj, start, end, escaped) {
                Some(at) => self.value(pos, at, depth)?,
                None => self.skip_any(pos, depth)?,
            };
            pos = ws(src, pos);
            match byte(src, pos) {
                b',' => pos = ws(src, pos + 1),
                b'}' => return Ok(pos + 1),
                _ => return Err(self.stop("expected , or } in object", pos)),
            }
        }
    }

    /// Where the value of key `src[start..end]` goes, if some pattern names
    /// it: its dotted segments are walked in the trie, creating the
    /// intermediate objects.
    #[inline(always)]
    fn member(
        &mut self,
        trie: u32,
        obj: u32,
        start: usize,
        end: usize,
        escaped: bool,
    ) -> Option<Keep> {
        if !escaped {
            let key = self.src.get(start..end).unwrap_or_default();
            // Trie keys never hold a dot, so a key found as is has none.
            let head = key_head(word(self.src, start), key.len());
            if let Some(t) = self.trie.child_bytes(trie, key, head) {
                return Some(Keep {
                    trie: t,
                    parent: obj,
                    keyed: true,
                });
            }
            if !has_dot(key, head) {
                return None;
            }
        }
        self.member_slow(trie, obj, start, end, escaped)
    }

    /// `member` for keys with escapes or dots.
    #[inline(never)]
    fn member_slow(
        &mut self,
        trie: u32,
        obj: u32,
        start: usize,
        end: usize,
        escaped: bool,
    ) -> Option<Keep> {
        let raw = self.text_at(start, end)?;
        let mut key_buf = std::mem::take(&mut self.key_buf);
        key_buf.clear();
        let key: &str = if escaped {
            unescape_into(raw, &mut key_buf);
            &key_buf
        } else {
            raw
        };
        // Resolve all segments first, then create the intermediate objects.
        let mut nodes: Vec<u32> = Vec::new();
        let mut at = trie;
        for seg in key.split('.') {
            match self.trie.child(at, seg) {
                Some(t) => {
                    at = t;
                    nodes.push(t);
                }
                None => {
                    self.key_buf = key_buf;
                    return None;
                }
            }
        }
        self.key_buf = key_buf;
        let (&last, intermediate) = nodes.split_last()?;
        let mut parent = obj;
        for t in intermediate {
            parent = self.doc.object_entry(parent, *t);
        }
        Some(Keep {
            trie: last,
            parent,
            keyed: true,
        })
    }
}

/// The first (up to) eight bytes of a key of `len` bytes whose first word is
/// `w`, zero-padded: with the length, a one-compare filter for key lookups.
#[inline(always)]
fn key_head(w: u64, len: usize) -> u64 {
    if len >= 8 {
        w
    } else {
        w & ((1u64 << (len * 8)) - 1)
    }
}

/// Whether `key` (whose head is `head`) holds a dot.
#[inline(always)]
fn has_dot(key: &[u8], head: u64) -> bool {
    // The lowest flagged byte is always a real dot, and zero padding holds
    // none, so any flag means a dot in the key.
    let dots = |w: u64| {
        let x = w ^ (ONES * u64::from(b'.'));
        x.wrapping_sub(ONES) & !x & HIGH != 0
    };
    if key.len() <= 8 {
        dots(head)
    } else if key.len() <= 16 {
        dots(head) || dots(head_of(key.get(8..).unwrap_or_default()))
    } else {
        memchr::memchr(b'.', key).is_some()
    }
}

/// Four hex digits at `pos`.
fn hex4(src: &[u8], pos: usize) -> Option<u32> {
    let digits = src.get(pos..pos + 4)?;
    let mut v = 0u32;
    for d in digits {
        v = v * 16 + (*d as char).to_digit(16)?;
    }
    Some(v)
}

/// Decodes the escapes of a string already validated by the scanner.
fn unescape_into(raw: &str, out: &mut String) {
    let mut chars = raw.char_indices();
    while let Some((_, c)) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next().map(|(_, c)| c) {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                let hex = |chars: &mut std::str::CharIndices<'_>| {
                    let s: String = chars.by_ref().take(4).map(|(_, c)| c).collect();
                    u32::from_str_radix(&s, 16).unwrap_or(0xFFFD)
                };
                let hi = hex(&mut chars);
                let cp = if (0xD800..0xDC00).contains(&hi) {
                    // The scanner checked that a low surrogate follows.
                    chars.next();
                    chars.next();
                    let lo = hex(&mut chars);
                    0x10000 + ((hi - 0xD800) << 10) + (lo.wrapping_sub(0xDC00) & 0x3FF)
                } else {
                    hi
                };
                out.push(char::from_u32(cp).unwrap_or('\u{FFFD}'));
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_ok(json: &str, trie: &PathTrie) -> Doc {
        let mut doc = Doc::default();
        scan(json.as_bytes(), trie, &mut doc).expect("valid");
        doc
    }

    #[test]
    fn keeps_only_named_paths_and_splits_dotted_keys() {
        let mut trie = PathTrie::new();
        let ab = trie.acquire(&["a", "b"]);
        let doc = scan_ok(
            r#"{"x": {"a": 1}, "a.b": "s\u00e9", "a": {"b": [1, 2], "c": 3}}"#,
            &trie,
        );
        let json = r#"{"x": {"a": 1}, "a.b": "s\u00e9", "a": {"b": [1, 2], "c": 3}}"#;
        assert_eq!(doc.leaves_at(ab).count(), 3);
        let strs: Vec<String> = doc
            .leaves_at(ab)
            .filter_map(|l| match doc.scalar(json, l) {
                Scalar::Str(s) => Some(s.to_owned()),
                _ => None,
            })
            .collect();
        assert_eq!(strs, vec!["sé".to_owned()]);
        assert_eq!(doc.leaves.len(), 3, "x.a and a.c are not kept");
    }

    #[test]
    fn rejects_what_serde_json_rejects() {
        let trie = PathTrie::new();
        for bad in [
            "",
            "{",
            "{\"a\":}",
            "[1,]",
            "{\"a\":1,}",
            "01",
            "1.",
            "1e",
            "\"\\x\"",
            "\"\\ud800\"",
            "\"a\u{1}\"",
            "tru",
            "nul",
            "1e400",
            "{} x",
            "[1 2]",
            "{\"a\" 1}",
            "-",
            "\"\\udc00\"",
        ] {
            let mut doc = Doc::default();
            let ours = scan(bad.as_bytes(), &trie, &mut doc).is_err();
            let theirs = serde_json::from_str::<serde_json::Value>(bad).is_err();
            assert_eq!(ours, theirs, "input {bad:?}");
            assert!(ours, "input {bad:?} must be rejected");
        }
        let deep_ok = "[".repeat(EVENT_MAX_DEPTH) + &"]".repeat(EVENT_MAX_DEPTH);
        let deep_bad = "[".repeat(EVENT_MAX_DEPTH + 1) + &"]".repeat(EVENT_MAX_DEPTH + 1);
        let mut doc = Doc::default();
        assert!(scan(deep_ok.as_bytes(), &trie, &mut doc).is_ok());
        assert!(serde_json::from_str::<serde_json::Value>(&deep_ok).is_ok());
        assert!(scan(deep_bad.as_bytes(), &trie, &mut doc).is_err());
        assert!(serde_json::from_str::<serde_json::Value>(&deep_bad).is_err());
    }

    #[test]
    fn strings_decode_like_serde_json_at_every_offset() {
        let mut trie = PathTrie::new();
        let a = trie.acquire(&["a"]);
        for len in 0..20 {
            for at in 0..=len {
                for special in ["\\\"", "\\n", "\\u00e9", "\\ud83d\\ude80", "é", "\u{1}"] {
                    let body: String = (0..len)
                        .map(|i| {
                            if i == at {
                                special.to_owned()
                            } else {
                                "x".to_owned()
                            }
                        })
                        .collect();
                    let json = format!(r#"{{"a": "{body}", "b": "{body}"}}"#);
                    let mut doc = Doc::default();
                    let ours = scan(json.as_bytes(), &trie, &mut doc);
                    let theirs: Result<serde_json::Value, _> = serde_json::from_str(&json);
                    assert_eq!(ours.is_ok(), theirs.is_ok(), "{json}");
                    if let (Ok(text), Ok(v)) = (ours, &theirs) {
                        let leaf = doc.leaves_at(a).next().expect("a is kept");
                        match doc.scalar(text, leaf) {
                            Scalar::Str(s) => assert_eq!(Some(s), v["a"].as_str(), "{json}"),
                            other => panic!("{other:?}"),
                        }
                    }
                    // Trusted, the kept string decodes the same.
                    if let Ok(v) = &theirs {
                        let mut doc = Doc::default();
                        let text =
                            scan_trusted(json.as_bytes(), &trie, &mut doc).expect("valid JSON");
                        let leaf = doc.leaves_at(a).next().expect("a is kept");
                        match doc.scalar(text, leaf) {
                            Scalar::Str(s) => assert_eq!(Some(s), v["a"].as_str(), "{json}"),
                            other => panic!("{other:?}"),
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn skipped_parts_are_validated_like_kept_ones() {
        let mut trie = PathTrie::new();
        trie.acquire(&["a"]);
        let ok = |s: &str| {
            let mut doc = Doc::default();
            let ours = scan(s.as_bytes(), &trie, &mut doc).is_ok();
            let theirs = serde_json::from_str::<serde_json::Value>(s).is_ok();
            assert_eq!(ours, theirs, "{s}");
            ours
        };
        let nest = |n: usize| format!(r#"{{"a": 1, "z": {}1{}}}"#, "[".repeat(n), "]".repeat(n));
        assert!(ok(&nest(EVENT_MAX_DEPTH - 1)));
        assert!(!ok(&nest(EVENT_MAX_DEPTH)));
        for s in [
            r#"{"z": {"x": [1, {"y": "\u00e9"}], "w": {}}, "a": 2}"#,
            r#"{"z": {"x": [1, {"y": tru}]}}"#,
            r#"{"z": {"x": [1,]}}"#,
            r#"{"z": {"x" 1}}"#,
            r#"{"z": {"x": 1,}}"#,
            r#"{"z": [}"#,
            r#"{"z": {"x": 1e999}}"#,
            r#"{"z": {"x": [[], {}, [{}], "\q"]}}"#,
            r#"{"a": {"x": {"y": [1, 2]}}}"#,
            r#"{"z": { "x" : [ 1 , 2 ] , "y" : { } } }"#,
        ] {
            ok(s);
        }
    }

    #[test]
    fn trusted_scan_skips_without_validating_but_keeps_the_depth_limit() {
        let mut trie = PathTrie::new();
        let a = trie.acquire(&["a"]);
        let mut doc = Doc::default();
        // Broken JSON in a part no pattern names goes unnoticed when trusted.
        let broken = r#"{"z": {"x": [1,, tru], "y": "\q"}, "a": "kept"}"#;
        assert!(scan(broken.as_bytes(), &trie, &mut doc).is_err());
        let text = scan_trusted(broken.as_bytes(), &trie, &mut doc).expect("skipped");
        let leaf = doc.leaves_at(a).next().expect("a is kept");
        assert!(matches!(doc.scalar(text, leaf), Scalar::Str("kept")));
        // Brackets inside skipped strings do not count.
        let tricky = r#"{"z": ["]}\"", {"q": "}"}], "a": 5}"#;
        let text = scan_trusted(tricky.as_bytes(), &trie, &mut doc).expect("valid");
        let leaf = doc.leaves_at(a).next().expect("a is kept");
        assert!(matches!(doc.scalar(text, leaf), Scalar::Num(_)));
        let nest = |n: usize| format!(r#"{{"z": {}1{}, "a": 1}}"#, "[".repeat(n), "]".repeat(n));
        assert!(scan_trusted(nest(EVENT_MAX_DEPTH - 1).as_bytes(), &trie, &mut doc).is_ok());
        assert!(scan_trusted(nest(EVENT_MAX_DEPTH).as_bytes(), &trie, &mut doc).is_err());
        // Truncated input is an error, not a panic.
        for cut in 0..broken.len() {
            let _ = scan_trusted(&broken.as_bytes()[..cut], &trie, &mut doc);
        }
    }

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
