//! Reads an event's JSON bytes once, in one pass, and keeps only the parts on
//! a path some pattern names: a small tree of those fields (for checking
//! array element consistency) and, per path, the list of its scalar values
//! (for the automaton). Everything else is checked for JSON validity and
//! skipped without being decoded.

use rustc_hash::FxHashMap;

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

/// A trie node's children: a short list probed linearly (the common case:
/// objects name few fields), a hash map once there are many.
#[derive(Debug, Default)]
struct Children {
    small: Vec<(Box<str>, u32)>,
    map: Option<FxHashMap<Box<str>, u32>>,
}

const SMALL_CHILDREN: usize = 16;

impl Children {
    #[inline]
    fn get(&self, key: &str) -> Option<u32> {
        if let Some(map) = &self.map {
            return map.get(key).copied();
        }
        let key = key.as_bytes();
        self.small
            .iter()
            .find(|(k, _)| {
                k.len() == key.len() && k.as_bytes().first() == key.first() && k.as_bytes() == key
            })
            .map(|(_, v)| *v)
    }

    fn insert(&mut self, key: Box<str>, value: u32) {
        match &mut self.map {
            Some(map) => {
                map.insert(key, value);
            }
            None => {
                self.small.push((key, value));
                if self.small.len() > SMALL_CHILDREN {
                    self.map = Some(self.small.drain(..).collect());
                }
            }
        }
    }

    fn remove(&mut self, key: &str) {
        match &mut self.map {
            Some(map) => {
                map.remove(key);
            }
            None => self.small.retain(|(k, _)| &**k != key),
        }
    }

    fn is_empty(&self) -> bool {
        self.map
            .as_ref()
            .map_or(self.small.is_empty(), |m| m.is_empty())
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

struct Scanner<'e, 'd> {
    src: &'e [u8],
    text: &'e str,
    pos: usize,
    doc: &'d mut Doc,
    trie: &'d PathTrie,
    key_buf: String,
}

/// What to do with a value.
#[derive(Clone, Copy)]
enum Ctx {
    Skip,
    /// Keep it at trie path `trie`, as a child of `parent`.
    Keep {
        trie: u32,
        parent: u32,
        keyed: bool,
    },
}

/// Parses `event` into `doc`, keeping the paths in `trie`. The whole input is
/// validated as JSON, as serde_json would.
pub(crate) fn scan<'e>(
    event: &'e [u8],
    trie: &PathTrie,
    doc: &mut Doc,
) -> Result<&'e str, EventError> {
    let text = std::str::from_utf8(event).map_err(|e| EventError(format!("not UTF-8: {e}")))?;
    doc.reset(trie.capacity());
    let mut s = Scanner {
        src: event,
        text,
        pos: 0,
        doc,
        trie,
        key_buf: String::new(),
    };
    s.ws();
    s.value(
        Ctx::Keep {
            trie: 0,
            parent: ROOT,
            keyed: false,
        },
        0,
    )?;
    s.ws();
    if s.pos != s.src.len() {
        return Err(s.err("trailing characters after the JSON value"));
    }
    Ok(text)
}

/// Bytes that end a fast run inside a string: quote, backslash, controls.
const fn string_specials() -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
}
static SPECIAL: [bool; 256] = string_specials();

impl Scanner<'_, '_> {
    fn err(&self, what: &str) -> EventError {
        EventError(format!("{what} at byte {}", self.pos))
    }

    #[inline]
    fn ws(&mut self) {
        // Compact JSON has no whitespace: one test in the common case.
        if self.src.get(self.pos).is_some_and(|b| *b > b' ') {
            return;
        }
        while let Some(b) = self.src.get(self.pos) {
            if matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    fn value(&mut self, ctx: Ctx, depth: usize) -> Result<(), EventError> {
        match self.peek() {
            Some(b'{') => match ctx {
                Ctx::Keep { trie, .. } if self.trie.has_children(trie) => {
                    self.object(ctx, depth + 1)
                }
                // Nothing below is named (or only scalars are): validate and move on.
                _ => self.skip(depth),
            },
            Some(b'[') if matches!(ctx, Ctx::Skip) => self.skip(depth),
            Some(b'[') => self.array(ctx, depth + 1),
            Some(b'"') => {
                let (start, end, escaped) = self.string()?;
                if let Ctx::Keep {
                    trie,
                    parent,
                    keyed,
                } = ctx
                {
                    let leaf = if escaped {
                        let at = self.doc.owned.len();
                        unescape_into(&self.text[start..end], &mut self.doc.owned);
                        Leaf::Str {
                            start: at as u32,
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
                    self.doc.add_leaf(parent, trie, keyed, leaf);
                }
                Ok(())
            }
            Some(b't') => self.literal(b"true", ctx, Leaf::Bool(true)),
            Some(b'f') => self.literal(b"false", ctx, Leaf::Bool(false)),
            Some(b'n') => self.literal(b"null", ctx, Leaf::Null),
            Some(b'-' | b'0'..=b'9') => self.number(ctx),
            Some(_) => Err(self.err("expected a JSON value")),
            None => Err(self.err("unexpected end of input")),
        }
    }

    /// Validates and skips one value, iteratively and without keeping
    /// anything: the fast path for the parts of an event no pattern names.
    /// `depth` is the nesting depth of the value's parent.
    fn skip(&mut self, depth: usize) -> Result<(), EventError> {
        // Closing bracket expected for each container opened here.
        let mut closers = [0u8; EVENT_MAX_DEPTH + 1];
        let mut open = 0usize;
        'value: loop {
            match self.peek() {
                Some(c @ (b'{' | b'[')) => {
                    if depth + open + 1 > EVENT_MAX_DEPTH {
                        return Err(self.err("nested too deeply"));
                    }
                    self.pos += 1;
                    self.ws();
                    let (close, object) = if c == b'{' {
                        (b'}', true)
                    } else {
                        (b']', false)
                    };
                    if self.peek() == Some(close) {
                        self.pos += 1;
                    } else {
                        closers[open] = close;
                        open += 1;
                        if object {
                            self.skip_key()?;
                        }
                        continue 'value;
                    }
                }
                Some(b'"') => {
                    self.string()?;
                }
                Some(b't') => self.literal(b"true", Ctx::Skip, Leaf::Null)?,
                Some(b'f') => self.literal(b"false", Ctx::Skip, Leaf::Null)?,
                Some(b'n') => self.literal(b"null", Ctx::Skip, Leaf::Null)?,
                Some(b'-' | b'0'..=b'9') => self.number(Ctx::Skip)?,
                Some(_) => return Err(self.err("expected a JSON value")),
                None => return Err(self.err("unexpected end of input")),
            }
            // After a value: close containers or move to the next member.
            loop {
                if open == 0 {
                    return Ok(());
                }
                self.ws();
                match self.peek() {
                    Some(b',') => {
                        self.pos += 1;
                        self.ws();
                        if closers[open - 1] == b'}' {
                            self.skip_key()?;
                        }
                        continue 'value;
                    }
                    Some(c) if c == closers[open - 1] => {
                        self.pos += 1;
                        open -= 1;
                    }
                    _ => return Err(self.err("expected , or a closing bracket")),
                }
            }
        }
    }

    /// Skips `"key" :` and the whitespace after it.
    fn skip_key(&mut self) -> Result<(), EventError> {
        if self.peek() != Some(b'"') {
            return Err(self.err("expected a string key"));
        }
        self.string()?;
        self.ws();
        if self.peek() != Some(b':') {
            return Err(self.err("expected : after key"));
        }
        self.pos += 1;
        self.ws();
        Ok(())
    }

    fn literal(&mut self, word: &[u8], ctx: Ctx, leaf: Leaf) -> Result<(), EventError> {
        if self.src[self.pos..].starts_with(word) {
            self.pos += word.len();
            if let Ctx::Keep {
                trie,
                parent,
                keyed,
            } = ctx
            {
                self.doc.add_leaf(parent, trie, keyed, leaf);
            }
            Ok(())
        } else {
            Err(self.err("invalid literal"))
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self, ctx: Ctx) -> Result<(), EventError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.err("invalid number")),
        }
        let mut plain = true;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            plain = false;
            if self.digits() == 0 {
                return Err(self.err("invalid number"));
            }
        }
        let mut exponent = false;
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            exponent = true;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.err("invalid number"));
            }
        }
        let text = &self.text[start..self.pos];
        match ctx {
            Ctx::Keep {
                trie,
                parent,
                keyed,
            } => {
                let n =
                    Num::parse_json_text(text).ok_or_else(|| self.err("number out of range"))?;
                self.doc.add_leaf(parent, trie, keyed, Leaf::Num(n));
            }
            Ctx::Skip => {
                // Only a number with an exponent, or a very long one, can
                // overflow f64, which serde_json refuses.
                if (exponent || text.len() > 300) && Num::parse_json_text(text).is_none() {
                    return Err(self.err("number out of range"));
                }
                let _ = plain;
            }
        }
        Ok(())
    }

    /// Scans a string starting at the opening quote; returns the content's
    /// byte range and whether it has escapes.
    #[inline(always)]
    fn string(&mut self) -> Result<(usize, usize, bool), EventError> {
        self.pos += 1;
        let start = self.pos;
        let mut escaped = false;
        let src = self.src;
        loop {
            // Fast run over ordinary bytes, 8 at a time.
            while self.pos + 8 <= src.len() {
                let mut w = [0u8; 8];
                w.copy_from_slice(&src[self.pos..self.pos + 8]);
                let x = u64::from_le_bytes(w);
                const ONES: u64 = 0x0101_0101_0101_0101;
                const HIGH: u64 = 0x8080_8080_8080_8080;
                let quote = x ^ (ONES * b'"' as u64);
                let back = x ^ (ONES * b'\\' as u64);
                let hit = (quote.wrapping_sub(ONES) & !quote)
                    | (back.wrapping_sub(ONES) & !back)
                    | (x.wrapping_sub(ONES * 0x20) & !x);
                let found = hit & HIGH;
                if found != 0 {
                    // The lowest flagged byte is always a real hit.
                    self.pos += (found.trailing_zeros() / 8) as usize;
                    break;
                }
                self.pos += 8;
            }
            while self.pos < src.len() && !SPECIAL[src[self.pos] as usize] {
                self.pos += 1;
            }
            match src.get(self.pos) {
                Some(b'"') => {
                    let end = self.pos;
                    self.pos += 1;
                    return Ok((start, end, escaped));
                }
                Some(b'\\') => {
                    escaped = true;
                    self.escape()?;
                }
                Some(_) => return Err(self.err("control character in string")),
                None => return Err(self.err("unterminated string")),
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, EventError> {
        let h = self
            .src
            .get(self.pos..self.pos + 4)
            .and_then(|b| std::str::from_utf8(b).ok())
            .and_then(|s| {
                u32::from_str_radix(s, 16)
                    .ok()
                    .filter(|_| s.bytes().all(|c| c.is_ascii_hexdigit()))
            })
            .ok_or_else(|| self.err("invalid \\u escape"))?;
        self.pos += 4;
        Ok(h)
    }

    /// Validates one escape at `pos` (the backslash), like serde_json: lone
    /// surrogates are errors.
    fn escape(&mut self) -> Result<(), EventError> {
        self.pos += 1;
        match self.peek() {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                self.pos += 1;
                Ok(())
            }
            Some(b'u') => {
                self.pos += 1;
                let cp = self.hex4()?;
                if (0xDC00..0xE000).contains(&cp) {
                    return Err(self.err("lone trailing surrogate in \\u escape"));
                }
                if (0xD800..0xDC00).contains(&cp) {
                    if self.src.get(self.pos..self.pos + 2) != Some(b"\\u") {
                        return Err(self.err("lone leading surrogate in \\u escape"));
                    }
                    self.pos += 2;
                    let low = self.hex4()?;
                    if !(0xDC00..0xE000).contains(&low) {
                        return Err(self.err("lone leading surrogate in \\u escape"));
                    }
                }
                Ok(())
            }
            _ => Err(self.err("invalid escape")),
        }
    }

    fn array(&mut self, ctx: Ctx, depth: usize) -> Result<(), EventError> {
        if depth > EVENT_MAX_DEPTH {
            return Err(self.err("nested too deeply"));
        }
        self.pos += 1;
        let inner = match ctx {
            Ctx::Skip => Ctx::Skip,
            Ctx::Keep {
                trie,
                parent,
                keyed,
            } => {
                let id = self.doc.add_node(parent, Kind::Arr, trie, keyed, NONE);
                Ctx::Keep {
                    trie,
                    parent: id,
                    keyed: false,
                }
            }
        };
        self.ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.ws();
            self.value(inner, depth)?;
            self.ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.err("expected , or ] in array")),
            }
        }
    }

    fn object(&mut self, ctx: Ctx, depth: usize) -> Result<(), EventError> {
        if depth > EVENT_MAX_DEPTH {
            return Err(self.err("nested too deeply"));
        }
        self.pos += 1;
        // An object is kept only where patterns name fields below it.
        let here = match ctx {
            Ctx::Keep {
                trie,
                parent,
                keyed,
            } if self.trie.has_children(trie) => {
                let id = if keyed {
                    self.doc.object_entry(parent, trie)
                } else {
                    self.doc.new_object(parent, trie, false)
                };
                Some((trie, id))
            }
            _ => None,
        };
        self.ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                return Err(self.err("expected a string key"));
            }
            let (ks, ke, kesc) = self.string()?;
            self.ws();
            if self.peek() != Some(b':') {
                return Err(self.err("expected : after key"));
            }
            self.pos += 1;
            self.ws();
            let member_ctx = match here {
                None => Ctx::Skip,
                Some((trie, obj)) => self.member_ctx(trie, obj, ks, ke, kesc),
            };
            self.value(member_ctx, depth)?;
            self.ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.err("expected , or } in object")),
            }
        }
    }

    /// Where the value of key `src[ks..ke]` goes: its dotted segments are
    /// walked in the trie, creating the intermediate objects.
    fn member_ctx(&mut self, trie: u32, obj: u32, ks: usize, ke: usize, escaped: bool) -> Ctx {
        let text = self.text;
        let key: &str = if escaped {
            self.key_buf.clear();
            unescape_into(&text[ks..ke], &mut self.key_buf);
            &self.key_buf
        } else {
            &text[ks..ke]
        };
        // Fast path: no dot.
        if !key.as_bytes().contains(&b'.') {
            return match self.trie.child(trie, key) {
                Some(t) => Ctx::Keep {
                    trie: t,
                    parent: obj,
                    keyed: true,
                },
                None => Ctx::Skip,
            };
        }
        // Resolve all segments first, then create the virtual objects.
        let mut nodes: [u32; 16] = [NONE; 16];
        let mut path: Vec<u32> = Vec::new();
        let mut count = 0;
        let mut at = trie;
        for seg in key.split('.') {
            match self.trie.child(at, seg) {
                Some(t) => {
                    at = t;
                    if count < nodes.len() {
                        nodes[count] = t;
                    } else {
                        path.push(t);
                    }
                    count += 1;
                }
                None => return Ctx::Skip,
            }
        }
        let all: Vec<u32> = nodes[..count.min(nodes.len())]
            .iter()
            .copied()
            .chain(path)
            .collect();
        let mut parent = obj;
        for t in &all[..all.len() - 1] {
            parent = self.doc.object_entry(parent, *t);
        }
        Ctx::Keep {
            trie: all[all.len() - 1],
            parent,
            keyed: true,
        }
    }
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
                    if let (Ok(text), Ok(v)) = (ours, theirs) {
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
