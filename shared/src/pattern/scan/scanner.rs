//! The JSON reader: reads an event's bytes once, validating them as
//! serde_json would, and fills a [`Doc`] with the values on paths in the
//! [`PathTrie`]. Everything else is checked and skipped without being
//! decoded.

use super::NONE;
use super::doc::{Doc, Kind, Leaf, ROOT};
use super::trie::{PathTrie, head_of};
use crate::pattern::value::Num;
use crate::pattern::{EVENT_MAX_DEPTH, EventError};

// A hand-written recursive descent over the event bytes with the position
// passed in registers. Reading past the end yields a NUL byte, which no JSON
// token accepts, so the loops need no separate end-of-input test: they stop
// at the NUL and the error path tells "end of input" from a real NUL. Strings
// are scanned 8 bytes at a time with plain u64 arithmetic (SWAR), which is as
// fast on arm64 as on x86-64.

/// One scan of one event.
struct Scanner<'e, 'd> {
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

/// Parses `event` into `doc`, keeping the paths in `trie`; returns the event
/// as text. The whole input is validated as JSON, as serde_json would: UTF-8
/// as a whole first (cheap), then the grammar as it is read.
#[inline(never)]
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

impl<'e> Scanner<'e, '_> {
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
            b'{' => self.skip(pos, depth),
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
                None => self.skip(pos, depth)?,
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
    use crate::pattern::value::Scalar;

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
            // Brackets and quotes inside skipped strings do not count.
            r#"{"z": ["]}\"", {"q": "}"}], "a": 5}"#,
        ] {
            ok(s);
            // Truncated anywhere: an error, never a panic.
            for cut in 0..s.len() {
                if let Some(prefix) = s.get(..cut) {
                    assert!(!ok(prefix), "{prefix}");
                }
            }
        }
    }
}
