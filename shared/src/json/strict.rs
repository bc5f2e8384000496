//! One rule for reading a request's JSON, on every route.
//!
//! - Text that is not JSON (RFC 8259) is *malformed*: 400, with serde_json's line and column.
//! - JSON that TriggerIQ refuses is *invalid*: 422, each problem with its path —
//!   - an object with the same key twice (a proxy or a signature check that reads the first
//!     one would see something else than what is stored);
//!   - nesting deeper than the route allows (every queue envelope around an event must still
//!     parse downstream);
//!   - a number beyond the range of a double (`1e400`): no consumer can read it back;
//!   - a string holding U+0000, which PostgreSQL cannot store.
//!
//! [`check`] walks the text once with its own stack (so no nesting is too deep for it) before
//! serde_json reads it; a body it finds broken is left to serde_json to describe.

use crate::problem::FieldError;

/// The most problems one body reports (a hostile body could have millions).
const MAX_PROBLEMS: usize = 20;

/// Why a body cannot be used.
#[derive(Debug, Clone, PartialEq)]
pub enum Unreadable {
    /// Not JSON at all (400).
    Malformed(String),
    /// JSON that breaks a rule above (422), each problem with its path.
    Invalid(Vec<FieldError>),
}

/// Checks `text` against the rules above, allowing `max_depth` levels of objects and arrays
/// (the outermost value is level 1). `root` is the path of the value (`$`, `$.events[3]`).
/// `Ok(())` when the JSON is acceptable or not JSON at all (the caller's parser reports that).
pub fn check(text: &[u8], root: &str, max_depth: usize) -> Result<(), Vec<FieldError>> {
    let mut problems = Vec::new();
    // Not JSON: serde_json will say where.
    let _ = Scan::new(text, root, max_depth, &mut problems).value();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// Reads `text` as JSON by the rules above.
pub fn read<'a, T: serde::Deserialize<'a>>(
    text: &'a [u8],
    max_depth: usize,
) -> Result<T, Unreadable> {
    check(text, "$", max_depth).map_err(Unreadable::Invalid)?;
    serde_json::from_slice(text).map_err(|e| Unreadable::Malformed(e.to_string()))
}

/// A container being scanned.
enum Frame {
    Object { path: String, keys: Vec<String> },
    Array { path: String, next: usize },
}

/// A structural scan: positions, depth, paths, keys; values are skipped but for the checks.
struct Scan<'t, 'p> {
    text: &'t [u8],
    pos: usize,
    root: &'t str,
    max_depth: usize,
    problems: &'p mut Vec<FieldError>,
}

/// Not JSON: the scan stops and leaves the description to serde_json.
struct Broken;

impl<'t, 'p> Scan<'t, 'p> {
    fn new(
        text: &'t [u8],
        root: &'t str,
        max_depth: usize,
        problems: &'p mut Vec<FieldError>,
    ) -> Self {
        Self {
            text,
            pos: 0,
            root,
            max_depth,
            problems,
        }
    }

    fn report(&mut self, path: &str, message: impl Into<String>) {
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(FieldError::new(path, message));
        }
    }

    fn skip_ws(&mut self) {
        while self
            .text
            .get(self.pos)
            .is_some_and(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.text.get(self.pos).copied()
    }

    fn expect(&mut self, byte: u8) -> Result<(), Broken> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(Broken)
        }
    }

    /// The raw token of a string starting at `pos` (quotes included).
    fn string(&mut self) -> Result<&'t [u8], Broken> {
        let start = self.pos;
        self.expect(b'"')?;
        loop {
            match self.text.get(self.pos) {
                None => return Err(Broken),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(&self.text[start..self.pos]);
                }
                Some(b'\\') => self.pos += 2,
                Some(_) => self.pos += 1,
            }
        }
    }

    /// A string's text, escapes resolved.
    fn decode(token: &[u8]) -> Result<String, Broken> {
        serde_json::from_slice(token).map_err(|_| Broken)
    }

    /// Checks a string value: no U+0000.
    fn string_value(&mut self, path: &str) -> Result<(), Broken> {
        let token = self.string()?;
        // U+0000 can only be written as an escape; look closer only when one is there.
        if memchr::memmem::find(token, b"\\u0000").is_some() && Self::decode(token)?.contains('\0')
        {
            self.report(path, "must not contain U+0000 (the NUL character)");
        }
        Ok(())
    }

    fn number(&mut self, path: &str) -> Result<(), Broken> {
        let start = self.pos;
        while self
            .text
            .get(self.pos)
            .is_some_and(|b| matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
        {
            self.pos += 1;
        }
        let token = std::str::from_utf8(&self.text[start..self.pos]).map_err(|_| Broken)?;
        match token.parse::<f64>() {
            Ok(n) if n.is_finite() => Ok(()),
            Ok(_) => {
                self.report(
                    path,
                    "is a number beyond the range of a double (about ±1.8e308)",
                );
                Ok(())
            }
            Err(_) => Err(Broken),
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), Broken> {
        if self.text[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(Broken)
        }
    }

    /// One whole value (the body), with an explicit stack of open containers.
    fn value(&mut self) -> Result<(), Broken> {
        let mut stack: Vec<Frame> = Vec::new();
        let mut path = self.root.to_owned();
        loop {
            // A value at `path`.
            match self.peek().ok_or(Broken)? {
                open @ (b'{' | b'[') => {
                    self.pos += 1;
                    if stack.len() + 1 > self.max_depth {
                        self.report(
                            &path,
                            format!(
                                "is nested too deeply: at most {} levels of objects and arrays",
                                self.max_depth
                            ),
                        );
                        // Nothing below can be read usefully; still a valid body for serde's
                        // syntax check, which is not needed: the body is refused.
                        return Ok(());
                    }
                    let frame = if open == b'{' {
                        Frame::Object {
                            path: path.clone(),
                            keys: Vec::new(),
                        }
                    } else {
                        Frame::Array {
                            path: path.clone(),
                            next: 0,
                        }
                    };
                    stack.push(frame);
                    if let Some(child) = self.first_child(&mut stack)? {
                        path = child;
                        continue;
                    }
                }
                b'"' => self.string_value(&path)?,
                b'-' | b'0'..=b'9' => self.number(&path)?,
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                _ => return Err(Broken),
            }
            // The value is done: close containers until one has another child.
            loop {
                let Some(frame) = stack.last_mut() else {
                    return Ok(());
                };
                match (self.peek().ok_or(Broken)?, frame) {
                    (b',', Frame::Object { .. }) => {
                        self.pos += 1;
                        path = self.key(&mut stack)?;
                        break;
                    }
                    (b',', Frame::Array { path: parent, next }) => {
                        self.pos += 1;
                        path = super::index(parent, *next);
                        *next += 1;
                        break;
                    }
                    (b'}', Frame::Object { .. }) | (b']', Frame::Array { .. }) => {
                        self.pos += 1;
                        stack.pop();
                    }
                    _ => return Err(Broken),
                }
            }
        }
    }

    /// After an opening bracket: the path of the first child, or `None` for `{}` / `[]`.
    fn first_child(&mut self, stack: &mut [Frame]) -> Result<Option<String>, Broken> {
        match stack.last_mut() {
            Some(Frame::Object { .. }) => {
                if self.peek() == Some(b'}') {
                    return Ok(None);
                }
                self.key(stack).map(Some)
            }
            Some(Frame::Array { path, next }) => {
                if self.peek() == Some(b']') {
                    return Ok(None);
                }
                let child = super::index(path, *next);
                *next += 1;
                Ok(Some(child))
            }
            None => Err(Broken),
        }
    }

    /// A key and its colon, in the innermost (object) frame: the value's path.
    fn key(&mut self, stack: &mut [Frame]) -> Result<String, Broken> {
        let token = self.string()?;
        self.expect(b':')?;
        let key = Self::decode(token)?;
        let Some(Frame::Object { path, keys }) = stack.last_mut() else {
            return Err(Broken);
        };
        let child = super::child(path, &key);
        if key.contains('\0') {
            self.report(
                &child,
                "the key must not contain U+0000 (the NUL character)",
            );
        }
        if keys.contains(&key) {
            let message = format!("{key:?} appears twice in this object; send each key once");
            self.report(&child, message);
        } else {
            keys.push(key);
        }
        Ok(child)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str, max_depth: usize) -> Vec<(String, String)> {
        check(text.as_bytes(), "$", max_depth)
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|e| (e.path, e.message))
            .collect()
    }

    fn paths(text: &str) -> Vec<String> {
        problems(text, 64).into_iter().map(|(p, _)| p).collect()
    }

    #[test]
    fn acceptable_json_passes_and_broken_json_is_left_to_the_parser() {
        for ok in [
            r#"{"a": [1, -2.5e10, "x\"y", true, false, null, {}, []], "b": {"c": "\u00e9"}}"#,
            "[]",
            "  7 ",
            r#""\\u0000 is text here""#,
            "18446744073709551616",
        ] {
            assert_eq!(check(ok.as_bytes(), "$", 64), Ok(()), "{ok}");
        }
        for broken in ["{", "{\"a\" 1}", "[1,]", "nul", "\"open", ""] {
            assert_eq!(check(broken.as_bytes(), "$", 64), Ok(()), "{broken}");
        }
    }

    #[test]
    fn a_key_twice_in_one_object_is_refused_with_its_path() {
        assert_eq!(paths(r#"{"id": "a", "id": "b"}"#), ["$.id"]);
        // Escapes name the same key.
        assert_eq!(paths(r#"{"type": 1, "t\u0079pe": 2}"#), ["$.type"]);
        assert_eq!(
            paths(r#"{"pattern": {"type": ["a"], "type": ["b"]}, "events": [{"x": 1, "x": 2}]}"#),
            ["$.pattern.type", "$.events[0].x"]
        );
        // The same key in two objects is fine.
        assert!(paths(r#"[{"a": 1}, {"a": 2}]"#).is_empty());
    }

    #[test]
    fn nul_in_any_string_or_key_is_refused_with_its_path() {
        assert_eq!(paths(r#"{"name": "a\u0000b"}"#), ["$.name"]);
        assert_eq!(paths(r#"{"a\u0000": 1}"#), ["$[\"a\\u0000\"]"]);
        assert_eq!(
            paths(r#"{"p": {"x": [{"prefix": "\u0000"}]}}"#),
            ["$.p.x[0].prefix"]
        );
    }

    #[test]
    fn numbers_beyond_a_double_are_refused_and_big_integers_are_not() {
        assert_eq!(
            paths(r#"{"n": 1e400, "m": -1e400, "ok": 18446744073709551616}"#),
            ["$.n", "$.m"]
        );
    }

    #[test]
    fn nesting_beyond_the_limit_is_refused_at_the_first_level_too_deep() {
        let nest = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert_eq!(check(nest(5).as_bytes(), "$", 5), Ok(()));
        let found = problems(&nest(6), 5);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, "$[0][0][0][0][0]");
        assert!(found[0].1.contains("at most 5 levels"), "{}", found[0].1);
        // Far deeper than any recursive parser allows: still one answer, no stack overflow.
        assert_eq!(problems(&nest(1_000_000), 100).len(), 1);
        let objects = format!("{}1{}", r#"{"a":"#.repeat(4), "}".repeat(4));
        assert_eq!(problems(&objects, 3)[0].0, "$.a.a.a");
    }

    #[test]
    fn read_names_malformed_text_and_invalid_json_apart() {
        assert!(matches!(
            read::<serde_json::Value>(b"{", 8),
            Err(Unreadable::Malformed(_))
        ));
        assert!(matches!(
            read::<serde_json::Value>(br#"{"a":1,"a":2}"#, 8),
            Err(Unreadable::Invalid(_))
        ));
        assert_eq!(
            read::<serde_json::Value>(br#"{"a":[1]}"#, 8),
            Ok(serde_json::json!({"a": [1]}))
        );
    }
}
