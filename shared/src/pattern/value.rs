//! Scalar values as the pattern engine sees them (numbers compared by value,
//! strings, booleans, null) and the string operations patterns need:
//! case-insensitive comparison and wildcards.

use std::cmp::Ordering;

/// A JSON number, kept the way serde_json keeps it: integers that fit `i64`
/// or `u64` exactly, everything else as `f64`. Comparisons are exact across
/// both kinds, so `300`, `300.0` and `3e2` are equal and `2^63 + 1` is not
/// rounded to a float before it is compared.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Num {
    Int(i128),
    Float(f64),
}

const TWO_POW_64: f64 = 18_446_744_073_709_551_616.0;
const MINUS_TWO_POW_63: f64 = -9_223_372_036_854_775_808.0;

impl Num {
    pub(crate) fn from_json(n: &serde_json::Number) -> Num {
        if let Some(i) = n.as_i64() {
            Num::Int(i128::from(i))
        } else if let Some(u) = n.as_u64() {
            Num::Int(i128::from(u))
        } else {
            // serde_json numbers are always finite, so this never falls back.
            Num::Float(n.as_f64().unwrap_or(0.0))
        }
    }

    /// Parses JSON number text (already checked against the JSON grammar) the
    /// way serde_json does: integers that fit i64/u64 stay integers. `None`
    /// when the value overflows f64, which serde_json also rejects.
    pub(crate) fn parse_json_text(text: &str) -> Option<Num> {
        let integral = !text.bytes().any(|b| matches!(b, b'.' | b'e' | b'E'));
        if integral {
            if text.starts_with('-') {
                if let Ok(i) = text.parse::<i64>() {
                    return Some(Num::Int(i128::from(i)));
                }
            } else if let Ok(u) = text.parse::<u64>() {
                return Some(Num::Int(i128::from(u)));
            }
        }
        let f: f64 = text.parse().ok()?;
        if f.is_finite() {
            Some(Num::Float(f))
        } else {
            None
        }
    }

    /// A key for hashing: equal numbers (by value) get equal keys.
    pub(crate) fn key(self) -> NumKey {
        match self {
            Num::Int(i) => NumKey::Int(i),
            Num::Float(f) => {
                if f == 0.0 {
                    NumKey::Int(0)
                } else if f.fract() == 0.0 && (MINUS_TWO_POW_63..TWO_POW_64).contains(&f) {
                    NumKey::Int(f as i128)
                } else {
                    NumKey::Bits(f.to_bits())
                }
            }
        }
    }

    pub(crate) fn cmp_num(self, other: Num) -> Ordering {
        match (self, other) {
            (Num::Int(a), Num::Int(b)) => a.cmp(&b),
            (Num::Float(a), Num::Float(b)) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
            (Num::Int(a), Num::Float(b)) => cmp_int_float(a, b),
            (Num::Float(a), Num::Int(b)) => cmp_int_float(b, a).reverse(),
        }
    }
}

impl PartialEq for Num {
    fn eq(&self, other: &Num) -> bool {
        self.cmp_num(*other) == Ordering::Equal
    }
}

/// Exact comparison of an integer (within i64/u64 range) with a finite float.
fn cmp_int_float(i: i128, f: f64) -> Ordering {
    if f >= TWO_POW_64 {
        return Ordering::Less;
    }
    if f < MINUS_TWO_POW_63 {
        return Ordering::Greater;
    }
    let t = f.trunc();
    // |t| < 2^64, so the conversion is exact.
    match i.cmp(&(t as i128)) {
        Ordering::Equal => {
            if f > t {
                Ordering::Less
            } else if f < t {
                Ordering::Greater
            } else {
                Ordering::Equal
            }
        }
        other => other,
    }
}

/// Hash key of a number by value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum NumKey {
    Int(i128),
    Bits(u64),
}

/// One leaf value of an event.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scalar<'a> {
    Str(&'a str),
    Num(Num),
    Bool(bool),
    Null,
}

/// Characters compared case-insensitively: each char's Unicode lowercase
/// mapping, char by char (no locale, no context rules such as final sigma).
pub(crate) fn lower_chars(s: &str) -> impl DoubleEndedIterator<Item = char> + '_ {
    s.chars().flat_map(char::to_lowercase)
}

pub(crate) fn lowercase(s: &str) -> String {
    lower_chars(s).collect()
}

/// `value` equals `lower` (already lowercased) ignoring case.
pub(crate) fn eq_ignore_case(value: &str, lower: &str) -> bool {
    if value.is_ascii() && lower.is_ascii() {
        return value.eq_ignore_ascii_case(lower);
    }
    lower_chars(value).eq(lower.chars())
}

pub(crate) fn starts_with_ignore_case(value: &str, lower_prefix: &str) -> bool {
    if value.is_ascii() && lower_prefix.is_ascii() {
        return value.len() >= lower_prefix.len()
            && value.as_bytes()[..lower_prefix.len()]
                .eq_ignore_ascii_case(lower_prefix.as_bytes());
    }
    let mut v = lower_chars(value);
    lower_prefix.chars().all(|c| v.next() == Some(c))
}

pub(crate) fn ends_with_ignore_case(value: &str, lower_suffix: &str) -> bool {
    if value.is_ascii() && lower_suffix.is_ascii() {
        return value.len() >= lower_suffix.len()
            && value.as_bytes()[value.len() - lower_suffix.len()..]
                .eq_ignore_ascii_case(lower_suffix.as_bytes());
    }
    let mut v = lower_chars(value).rev();
    lower_suffix.chars().rev().all(|c| v.next() == Some(c))
}

/// A parsed `wildcard` value: literal segments separated by `*`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Wildcard {
    /// Literal text between stars; `segments.len() - 1` stars. Shared by
    /// the clones a pattern set keeps, one per state the wildcard leads from.
    pub(crate) segments: std::sync::Arc<[String]>,
}

impl Wildcard {
    /// Parses wildcard text: `*` matches any run of characters, `\*` is a
    /// literal star and `\\` a literal backslash. Any other backslash, and two
    /// stars in a row, are errors.
    pub(crate) fn parse(text: &str) -> Result<Wildcard, String> {
        let mut segments = vec![String::new()];
        let mut chars = text.chars();
        let mut previous_star = false;
        while let Some(c) = chars.next() {
            match c {
                '*' => {
                    if previous_star {
                        return Err(
                            "consecutive \"*\" characters are not allowed in a wildcard".into()
                        );
                    }
                    previous_star = true;
                    segments.push(String::new());
                    continue;
                }
                '\\' => match chars.next() {
                    Some(e @ ('*' | '\\')) => push_last(&mut segments, e),
                    Some(other) => {
                        return Err(format!(
                            "\"\\{other}\" is not a wildcard escape; only \"\\*\" (a literal star) and \"\\\\\" (a literal backslash) are"
                        ));
                    }
                    None => return Err("a wildcard cannot end with a lone backslash".into()),
                },
                other => push_last(&mut segments, other),
            }
            previous_star = false;
        }
        Ok(Wildcard {
            segments: segments.into(),
        })
    }

    pub(crate) fn stars(&self) -> usize {
        self.segments.len() - 1
    }

    /// The literal text before the first star.
    pub(crate) fn literal_prefix(&self) -> &str {
        &self.segments[0]
    }

    /// The literal text after the last star (empty when there is no star).
    pub(crate) fn literal_suffix(&self) -> &str {
        if self.segments.len() > 1 {
            self.segments.last().map(String::as_str).unwrap_or("")
        } else {
            ""
        }
    }

    /// Glob matching with `*` only: anchored first and last segments, the
    /// middle ones found leftmost-first, which is exact for this language and
    /// linear in the value's length per segment.
    pub(crate) fn matches(&self, value: &str) -> bool {
        let v = value.as_bytes();
        let segs = &self.segments;
        if segs.len() == 1 {
            return v == segs[0].as_bytes();
        }
        let first = segs[0].as_bytes();
        let last = segs[segs.len() - 1].as_bytes();
        if v.len() < first.len() + last.len() || !v.starts_with(first) || !v.ends_with(last) {
            return false;
        }
        let mut rest = &v[first.len()..v.len() - last.len()];
        for seg in &segs[1..segs.len() - 1] {
            if seg.is_empty() {
                continue;
            }
            match find(rest, seg.as_bytes()) {
                Some(at) => rest = &rest[at + seg.len()..],
                None => return false,
            }
        }
        true
    }

    /// The bytes the wildcard's automaton reads, with `None` for a star.
    fn tokens(&self) -> Vec<Option<u8>> {
        let mut out = Vec::new();
        for (i, seg) in self.segments.iter().enumerate() {
            if i > 0 {
                out.push(None);
            }
            out.extend(seg.bytes().map(Some));
        }
        out
    }
}

/// The first occurrence of `needle` (not empty) in `hay`. Event values are
/// short, where a plain scan beats setting up `memmem`'s searcher.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if hay.len() > 64 {
        return memchr::memmem::find(hay, needle);
    }
    let (&first, rest) = needle.split_first()?;
    let last_start = hay.len().checked_sub(needle.len())?;
    (0..=last_start).find(|&i| hay[i] == first && hay.get(i + 1..i + needle.len()) == Some(rest))
}

fn push_last(segments: &mut [String], c: char) {
    if let Some(last) = segments.last_mut() {
        last.push(c);
    }
}

/// EventBridge rejects wildcard rules whose automaton can be in many states at
/// once ("rule is too complex"). We measure the same thing: the largest number
/// of simultaneously active positions, over every input, of the combined
/// automaton of the wildcards on one field. The limit reproduces EventBridge's
/// answers on the recorded cases (`*:*:*:*:*:event-bus/*` is rejected,
/// `arn:aws:events:us-east-1:*:event-bus/*` and long repeated segments after
/// one star are accepted).
pub(crate) const WILDCARD_COMPLEXITY_LIMIT: usize = 10;
/// Bound on the work of the complexity check itself.
const COMPLEXITY_MAX_SUBSETS: usize = 4096;

/// `Ok(max active positions)` or `Err(())` when it exceeds the limit.
pub(crate) fn wildcard_complexity(wildcards: &[&Wildcard]) -> Result<usize, ()> {
    if wildcards.iter().all(|w| w.stars() == 0) {
        return Ok(0);
    }
    // One automaton per wildcard; a state is (wildcard index, position).
    let tokens: Vec<Vec<Option<u8>>> = wildcards.iter().map(|w| w.tokens()).collect();
    let mut alphabet: Vec<Option<u8>> = vec![None]; // None = a byte no pattern names
    for t in tokens.iter().flatten().flatten() {
        if !alphabet.contains(&Some(*t)) {
            alphabet.push(Some(*t));
        }
    }
    let closure = |set: &mut Vec<(usize, usize)>| {
        let mut i = 0;
        while i < set.len() {
            let (w, p) = set[i];
            if p < tokens[w].len() && tokens[w][p].is_none() && !set.contains(&(w, p + 1)) {
                set.push((w, p + 1));
            }
            i += 1;
        }
        set.sort_unstable();
        set.dedup();
    };
    let active = |set: &[(usize, usize)]| set.iter().filter(|(w, p)| *p < tokens[*w].len()).count();
    let mut start: Vec<(usize, usize)> = (0..tokens.len()).map(|w| (w, 0)).collect();
    closure(&mut start);
    let mut max = active(&start);
    let mut seen = std::collections::HashSet::new();
    seen.insert(start.clone());
    let mut pending = vec![start];
    while let Some(set) = pending.pop() {
        for b in &alphabet {
            let mut next = Vec::new();
            for &(w, p) in &set {
                match tokens[w].get(p) {
                    Some(None) => next.push((w, p)),
                    Some(Some(t)) if Some(*t) == *b => next.push((w, p + 1)),
                    _ => {}
                }
            }
            if next.is_empty() {
                continue;
            }
            closure(&mut next);
            let n = active(&next);
            if n > WILDCARD_COMPLEXITY_LIMIT {
                return Err(());
            }
            max = max.max(n);
            if seen.len() >= COMPLEXITY_MAX_SUBSETS {
                return Err(());
            }
            if seen.insert(next.clone()) {
                pending.push(next);
            }
        }
    }
    Ok(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wc(s: &str) -> Wildcard {
        Wildcard::parse(s).expect("valid wildcard")
    }

    #[test]
    fn numbers_compare_by_value_across_kinds() {
        let a = Num::parse_json_text("3.018e2").expect("number");
        let b = Num::parse_json_text("301.8").expect("number");
        assert_eq!(a.cmp_num(b), Ordering::Equal);
        let i = Num::parse_json_text("300").expect("number");
        let f = Num::parse_json_text("300.0").expect("number");
        assert_eq!(i.key(), f.key());
        let big = Num::parse_json_text("9007199254740993").expect("number");
        let rounded = Num::Float(9_007_199_254_740_992.0);
        assert_eq!(big.cmp_num(rounded), Ordering::Greater);
        assert!(Num::parse_json_text("1e400").is_none());
        assert_eq!(Num::Float(-0.0).key(), Num::Int(0).key());
    }

    #[test]
    fn wildcard_escapes_and_matching() {
        assert!(wc("a*c").matches("abbbc"));
        assert!(wc("a*c").matches("ac"));
        assert!(!wc("a*c").matches("abcd"));
        assert!(wc(r"a\*c").matches("a*c"));
        assert!(!wc(r"a\*c").matches("abc"));
        assert!(wc(r"a\\*").matches(r"a\anything"));
        assert!(wc("").matches(""));
        assert!(!wc("").matches("x"));
        assert!(wc("*").matches(""));
        assert!(wc("*ab*ab*").matches("abab"));
        assert!(!wc("*ab*ab*").matches("aba"));
        assert!(Wildcard::parse("a**b").is_err());
        assert!(Wildcard::parse(r"a\b").is_err());
        assert!(Wildcard::parse("a\\").is_err());
    }

    #[test]
    fn substring_search_agrees_with_memmem() {
        let hays = ["", "a", "ab", "aab", "/api/v1/orders/42", "xyxyxyz"];
        let needles = ["a", "ab", "b", "/4", "/42", "yxz", "xyz", "zz"];
        for h in hays {
            for n in needles {
                let long = h.repeat(20) + n;
                for hay in [h, long.as_str()] {
                    assert_eq!(
                        find(hay.as_bytes(), n.as_bytes()),
                        memchr::memmem::find(hay.as_bytes(), n.as_bytes()),
                        "{hay:?} {n:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn wildcard_complexity_matches_eventbridge_answers() {
        assert!(wildcard_complexity(&[&wc("*:*:*:*:*:event-bus/*")]).is_err());
        assert!(wildcard_complexity(&[&wc("arn:aws:events:us-east-1:*:event-bus/*")]).is_ok());
        assert!(wildcard_complexity(&[&wc("/Users/*/dir/dir/dir/dir/dir/doc.txt")]).is_ok());
        assert!(wildcard_complexity(&[&wc("*/init/*"), &wc("*/dir/*")]).is_ok());
    }

    #[test]
    fn ignore_case_helpers() {
        assert!(eq_ignore_case("EvEnTb", "eventb"));
        assert!(starts_with_ignore_case("EVENTBRIDGE", "eventb"));
        assert!(ends_with_ignore_case("image.PNG", ".png"));
        assert!(eq_ignore_case("ÄÖÜ", "äöü"));
        assert!(ends_with_ignore_case("GRÜSSE", "üsse"));
        assert!(!starts_with_ignore_case("ab", "abc"));
    }
}
