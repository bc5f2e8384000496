//! The pattern language's rules: what a valid pattern is, and for an invalid
//! one every problem with the JSON path of the offending part and a reason
//! a person understands. Produces the pattern as written ([`RNode`]), with
//! each leaf's conditions parsed into [`Matcher`]s; expanding its `$or`s is
//! [`compile`](super::compile)'s job.

use std::fmt::Write as _;
use std::sync::Arc;

use ipnet::IpNet;
use serde_json::{Map, Value};

use super::compile::{AnythingBut, Exact, Matcher, Matchers, Range};
use super::value::{Num, Wildcard, lowercase, wildcard_complexity};
use super::{MAX_EXPANDED_VALUES, PatternError, PatternLimits};

/// Hard ceiling on `PatternLimits::max_depth`.
pub(crate) const MAX_DEPTH_CAP: usize = 256;

/// Upper bound on the clauses a pattern's `$or`s may expand into. Each clause
/// is matched separately, so this bounds the work one pattern can cost.
pub(crate) const MAX_CLAUSES: u64 = 1024;

/// Why a string holding U+0000 is refused: Postgres can store it neither in
/// `text` nor in `jsonb`, so such a pattern could be validated but never
/// saved.
const NUL_MESSAGE: &str = "must not contain U+0000 (the NUL character), which cannot be stored";

// ---------------------------------------------------------------------------
// Paths for error messages

#[derive(Clone)]
enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

fn render_path(segs: &[Seg<'_>]) -> String {
    let mut s = String::from("$");
    for seg in segs {
        match seg {
            Seg::Index(i) => {
                let _ = write!(s, "[{i}]");
            }
            Seg::Key(k) => {
                let plain = !k.is_empty()
                    && k.chars()
                        .next()
                        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
                    && k.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '$'));
                if plain {
                    s.push('.');
                    s.push_str(k);
                } else {
                    let quoted = serde_json::to_string(k).unwrap_or_default();
                    let _ = write!(s, "[{quoted}]");
                }
            }
        }
    }
    s
}

/// A path in the pattern and the errors found so far.
struct Validator<'a> {
    path: Vec<Seg<'a>>,
    errors: Vec<PatternError>,
}

impl<'a> Validator<'a> {
    fn err(&mut self, message: impl Into<String>) {
        self.errors.push(PatternError {
            path: render_path(&self.path),
            message: message.into(),
        });
    }

    fn err_at(&mut self, seg: Seg<'a>, message: impl Into<String>) {
        self.path.push(seg);
        self.err(message);
        self.path.pop();
    }

    /// Whether `s` is free of U+0000; if not, says so at the current path.
    fn no_nul(&mut self, s: &str) -> bool {
        let clean = !s.contains('\0');
        if !clean {
            self.err(NUL_MESSAGE);
        }
        clean
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

// ---------------------------------------------------------------------------
// Size and depth, measured without recursion so no input can exhaust the stack

/// Nesting depth of containers (objects and arrays); a scalar is 0.
pub(crate) fn depth_of(value: &Value) -> usize {
    let mut max = 0;
    let mut stack: Vec<(&Value, usize)> = vec![(value, 1)];
    while let Some((v, d)) = stack.pop() {
        match v {
            Value::Array(items) => {
                max = max.max(d);
                stack.extend(items.iter().map(|i| (i, d + 1)));
            }
            Value::Object(map) => {
                max = max.max(d);
                stack.extend(map.values().map(|i| (i, d + 1)));
            }
            _ => {}
        }
    }
    max
}

/// Counts the characters of the compact JSON serialisation, stopping early
/// once past `limit`.
pub(crate) fn compact_chars(value: &Value, limit: usize) -> usize {
    struct Counter {
        chars: usize,
        limit: usize,
    }
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            // Count UTF-8 leading bytes, i.e. characters.
            self.chars += buf.iter().filter(|b| (**b & 0xC0) != 0x80).count();
            if self.chars > self.limit {
                return Err(std::io::Error::other("over limit"));
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Counter { chars: 0, limit };
    let _ = serde_json::to_writer(&mut c, value);
    c.chars
}

// ---------------------------------------------------------------------------
// Validation

/// A pattern as written, after validation but before `$or` expansion.
pub(crate) struct RNode {
    /// (dot-split path, content)
    pub(crate) fields: Vec<(Vec<Arc<str>>, RField)>,
    pub(crate) ors: Vec<Vec<RNode>>,
    /// What expanding this node's `$or`s (and those below) yields.
    pub(crate) expansion: Expansion,
    /// Path of the `$or` last multiplied into `expansion`, here or below:
    /// the one to blame when an ancestor's expansion goes over a limit.
    last_or: Option<String>,
}

pub(crate) enum RField {
    Leaf(Matchers),
    Node(RNode),
}

/// The size of a node's `$or` expansion, counted without expanding:
/// how many clauses, and how many values to match they hold in all
/// ([`Matcher::values`]; each clause repeats the leaves beside the `$or`s).
/// Saturating, so that no input overflows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Expansion {
    pub(crate) clauses: u64,
    pub(crate) values: u64,
}

impl Expansion {
    /// Nothing yet: one empty clause.
    const EMPTY: Expansion = Expansion {
        clauses: 1,
        values: 0,
    };

    /// Both in every clause: each clause of one joined with each of the
    /// other.
    fn and(self, other: Expansion) -> Expansion {
        Expansion {
            clauses: self.clauses.saturating_mul(other.clauses),
            values: self
                .values
                .saturating_mul(other.clauses)
                .saturating_add(other.values.saturating_mul(self.clauses)),
        }
    }

    /// Either: the clauses of both.
    fn or(self, other: Expansion) -> Expansion {
        Expansion {
            clauses: self.clauses.saturating_add(other.clauses),
            values: self.values.saturating_add(other.values),
        }
    }

    /// Why this expansion is refused, if it is. Without `$or` (one clause)
    /// the values are those written, which `PatternLimits::max_chars`
    /// bounds already.
    fn over_limit(self) -> Option<String> {
        if self.clauses > MAX_CLAUSES {
            return Some(format!(
                "the \"$or\" alternatives of this pattern combine into more than {MAX_CLAUSES} cases; simplify it or split it into several patterns"
            ));
        }
        if self.clauses > 1 && self.values > MAX_EXPANDED_VALUES as u64 {
            return Some(format!(
                "this \"$or\" makes the pattern expand into {} cases holding {} values to match in all (each case repeats the conditions beside the \"$or\"s); the limit is {MAX_EXPANDED_VALUES}: use fewer or smaller alternatives, keep long lists of values out of patterns with \"$or\", or split the pattern into several",
                self.clauses, self.values
            ));
        }
        None
    }
}

/// Checks `value` against the pattern language's rules and limits; returns
/// it as written, not yet expanded, or every problem found.
pub(crate) fn validate(value: &Value, limits: &PatternLimits) -> Result<RNode, Vec<PatternError>> {
    let top = |message: String| {
        Err(vec![PatternError {
            path: "$".into(),
            message,
        }])
    };
    // Validation recurses once per level, so the depth limit also bounds the
    // stack; a configured limit above MAX_DEPTH_CAP is capped.
    let max_depth = limits.max_depth.min(MAX_DEPTH_CAP);
    let depth = depth_of(value);
    if depth > max_depth {
        return top(format!(
            "the pattern nests {depth} levels of objects and arrays; the limit is {max_depth}"
        ));
    }
    let chars = compact_chars(value, limits.max_chars);
    if chars > limits.max_chars {
        return top(format!(
            "the pattern is longer than {} characters (measured as compact JSON)",
            limits.max_chars
        ));
    }
    let Value::Object(map) = value else {
        return top(format!(
            "a pattern must be a JSON object, found {}",
            kind_of(value)
        ));
    };
    let mut v = Validator {
        path: Vec::new(),
        errors: Vec::new(),
    };
    let root = validate_object(&mut v, map);
    if !v.errors.is_empty() {
        return Err(v.errors);
    }
    match root {
        Some(root) => Ok(root),
        None => top("the pattern is not valid".into()),
    }
}

fn validate_object<'a>(v: &mut Validator<'a>, map: &'a Map<String, Value>) -> Option<RNode> {
    if map.is_empty() {
        v.err("an object in a pattern needs at least one field");
        return None;
    }
    let mut node = RNode {
        fields: Vec::new(),
        ors: Vec::new(),
        expansion: Expansion::EMPTY,
        last_or: None,
    };
    let mut ok = true;
    // Once this node's expansion is refused, its other problems are still
    // reported, but not the same excess again.
    let mut over = false;
    for (key, value) in map {
        v.path.push(Seg::Key(key));
        // Each part joins the node's expansion; when that goes over a limit,
        // the `$or` that brought in the clauses is the one to change.
        let mut part: Option<(Expansion, Option<String>)> = None;
        if key == "$or" {
            match validate_or(v, value) {
                Some(branches) => {
                    let alternatives = branches
                        .iter()
                        .map(|b| b.expansion)
                        .reduce(Expansion::or)
                        .unwrap_or(Expansion::EMPTY);
                    part = Some((alternatives, Some(render_path(&v.path))));
                    node.ors.push(branches);
                }
                None => ok = false,
            }
        } else {
            ok &= v.no_nul(key);
            let segments: Vec<Arc<str>> = key.split('.').map(Arc::from).collect();
            let field = match value {
                Value::Array(items) => validate_leaf(v, items).map(RField::Leaf),
                Value::Object(inner) => validate_object(v, inner).map(RField::Node),
                other => {
                    v.err(format!(
                        "a field's value must be an array of values to match or an object of nested fields, found {}",
                        kind_of(other)
                    ));
                    None
                }
            };
            match field {
                Some(f) => {
                    part = Some(match &f {
                        RField::Leaf(m) => (
                            Expansion {
                                clauses: 1,
                                values: m.iter().map(Matcher::values).sum(),
                            },
                            None,
                        ),
                        RField::Node(child) => (child.expansion, child.last_or.clone()),
                    });
                    node.fields.push((segments, f));
                }
                None => ok = false,
            }
        }
        if let Some((expansion, or_path)) = part
            && !over
        {
            node.expansion = node.expansion.and(expansion);
            if or_path.is_some() {
                node.last_or = or_path;
            }
            if let Some(message) = node.expansion.over_limit() {
                let path = node.last_or.clone().unwrap_or_else(|| render_path(&v.path));
                v.errors.push(PatternError { path, message });
                over = true;
                ok = false;
            }
        }
        v.path.pop();
    }
    ok.then_some(node)
}

fn validate_or<'a>(v: &mut Validator<'a>, value: &'a Value) -> Option<Vec<RNode>> {
    let Value::Array(items) = value else {
        v.err(format!(
            "\"$or\" needs an array of at least two pattern objects, found {}",
            kind_of(value)
        ));
        return None;
    };
    if items.len() < 2 {
        v.err("\"$or\" needs at least two alternatives");
        return None;
    }
    let mut branches = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        v.path.push(Seg::Index(i));
        match item {
            Value::Object(map) => match validate_object(v, map) {
                Some(n) => branches.push(n),
                None => ok = false,
            },
            other => {
                v.err(format!(
                    "each \"$or\" alternative must be a pattern object, found {}",
                    kind_of(other)
                ));
                ok = false;
            }
        }
        v.path.pop();
    }
    ok.then_some(branches)
}

fn validate_leaf<'a>(v: &mut Validator<'a>, items: &'a [Value]) -> Option<Matchers> {
    if items.is_empty() {
        v.err("an array of values to match cannot be empty");
        return None;
    }
    let mut out = Vec::with_capacity(items.len());
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        v.path.push(Seg::Index(i));
        let m = match item {
            Value::String(s) => v
                .no_nul(s)
                .then(|| Matcher::Exact(Exact::Str(s.as_str().into()))),
            Value::Number(n) => Some(Matcher::Exact(Exact::Num(Num::from_json(n)))),
            Value::Bool(b) => Some(Matcher::Exact(Exact::Bool(*b))),
            Value::Null => Some(Matcher::Exact(Exact::Null)),
            Value::Array(_) => {
                v.err("a value to match cannot be an array; list the values directly");
                None
            }
            Value::Object(map) => validate_operator(v, map),
        };
        match m {
            Some(m) => out.push(m),
            None => ok = false,
        }
        v.path.pop();
    }
    if ok {
        let wildcards: Vec<&Wildcard> = out
            .iter()
            .flat_map(|m| match m {
                Matcher::Wildcard(w) => std::slice::from_ref(w),
                Matcher::AnythingBut(AnythingBut::Wildcard(ws)) => &ws[..],
                _ => &[],
            })
            .collect();
        if !wildcards.is_empty() && wildcard_complexity(&wildcards).is_err() {
            v.err(
                "rule is too complex: use fewer wildcard characters, or fewer repeated character sequences after a wildcard",
            );
            return None;
        }
    }
    ok.then(|| out.into())
}

/// [`super::OPERATORS`] as a message lists them.
fn operators() -> String {
    super::OPERATORS.join(", ")
}

/// The one key and value of an operator object, or `None` when it has more
/// or fewer.
fn only_entry(map: &Map<String, Value>) -> Option<(&String, &Value)> {
    let mut iter = map.iter();
    match (iter.next(), iter.next()) {
        (Some(entry), None) => Some(entry),
        _ => None,
    }
}

fn validate_operator<'a>(v: &mut Validator<'a>, map: &'a Map<String, Value>) -> Option<Matcher> {
    let Some((op, arg)) = only_entry(map) else {
        v.err(format!(
            "an operator object needs exactly one operator ({}), found {} keys",
            operators(),
            map.len()
        ));
        return None;
    };
    v.path.push(Seg::Key(op));
    let result = match op.as_str() {
        "prefix" => string_or_ignore_case(v, "prefix", arg).map(|(s, ic)| {
            if ic {
                Matcher::PrefixIc(lowercase(&s).into())
            } else {
                Matcher::Prefix(s.into())
            }
        }),
        "suffix" => string_or_ignore_case(v, "suffix", arg).map(|(s, ic)| {
            if ic {
                Matcher::SuffixIc(lowercase(&s).into())
            } else {
                Matcher::Suffix(s.into())
            }
        }),
        "equals-ignore-case" => match arg {
            Value::String(s) => v.no_nul(s).then(|| Matcher::EqIc(lowercase(s).into())),
            other => {
                v.err(format!(
                    "\"equals-ignore-case\" needs a string, found {}",
                    kind_of(other)
                ));
                None
            }
        },
        "wildcard" => match arg {
            Value::String(s) if !v.no_nul(s) => None,
            Value::String(s) => match Wildcard::parse(s) {
                Ok(w) => Some(Matcher::Wildcard(w)),
                Err(e) => {
                    v.err(e);
                    None
                }
            },
            other => {
                v.err(format!(
                    "\"wildcard\" needs a string, found {}",
                    kind_of(other)
                ));
                None
            }
        },
        "anything-but" => validate_anything_but(v, arg).map(Matcher::AnythingBut),
        "numeric" => validate_numeric(v, arg).map(Matcher::Numeric),
        "cidr" => match arg {
            Value::String(s) => match s.parse::<IpNet>() {
                Ok(net) => Some(Matcher::Cidr(net.trunc())),
                Err(_) => {
                    v.err(format!(
                        "{} is not an IP address range in CIDR notation (like \"10.0.0.0/24\" or \"2001:db8::/32\")",
                        serde_json::to_string(s).unwrap_or_default()
                    ));
                    None
                }
            },
            other => {
                v.err(format!(
                    "\"cidr\" needs a string in CIDR notation, found {}",
                    kind_of(other)
                ));
                None
            }
        },
        "exists" => match arg {
            Value::Bool(b) => Some(Matcher::Exists(*b)),
            other => {
                v.err(format!(
                    "\"exists\" needs true or false, found {}",
                    kind_of(other)
                ));
                None
            }
        },
        other => {
            let hint = if super::OPERATORS
                .iter()
                .any(|o| o.eq_ignore_ascii_case(other))
            {
                " (operator names are lowercase)"
            } else {
                ""
            };
            v.path.pop();
            v.err(format!(
                "{} is not an operator{hint}; use one of {}",
                serde_json::to_string(other).unwrap_or_default(),
                operators()
            ));
            return None;
        }
    };
    v.path.pop();
    result
}

/// `"text"` or `{"equals-ignore-case": "text"}`; returns (text, ignore_case).
fn string_or_ignore_case<'a>(
    v: &mut Validator<'a>,
    op: &str,
    arg: &'a Value,
) -> Option<(String, bool)> {
    match arg {
        Value::String(s) => v.no_nul(s).then(|| (s.clone(), false)),
        Value::Object(map) if map.len() == 1 && map.contains_key("equals-ignore-case") => {
            match map.get("equals-ignore-case") {
                Some(Value::String(s)) if s.contains('\0') => {
                    v.err_at(Seg::Key("equals-ignore-case"), NUL_MESSAGE);
                    None
                }
                Some(Value::String(s)) => Some((s.clone(), true)),
                Some(other) => {
                    v.err_at(
                        Seg::Key("equals-ignore-case"),
                        format!(
                            "\"equals-ignore-case\" needs a string, found {}",
                            kind_of(other)
                        ),
                    );
                    None
                }
                None => None,
            }
        }
        other => {
            v.err(format!(
                "\"{op}\" needs a string or {{\"equals-ignore-case\": string}}, found {}",
                kind_of(other)
            ));
            None
        }
    }
}

fn validate_anything_but<'a>(v: &mut Validator<'a>, arg: &'a Value) -> Option<AnythingBut> {
    match arg {
        Value::String(s) => v
            .no_nul(s)
            .then(|| AnythingBut::Strings(Arc::from([s.clone()]))),
        Value::Number(n) => Some(AnythingBut::Numbers(Arc::from([Num::from_json(n)]))),
        Value::Array(items) => {
            if items.is_empty() {
                v.err("\"anything-but\" needs at least one value");
                return None;
            }
            if items.iter().all(Value::is_string) {
                let mut clean = true;
                for (i, item) in items.iter().enumerate() {
                    if item.as_str().is_some_and(|s| s.contains('\0')) {
                        v.err_at(Seg::Index(i), NUL_MESSAGE);
                        clean = false;
                    }
                }
                clean.then(|| {
                    AnythingBut::Strings(
                        items
                            .iter()
                            .filter_map(|i| i.as_str().map(str::to_owned))
                            .collect(),
                    )
                })
            } else if let Some(nums) = items
                .iter()
                .map(|i| i.as_number().map(Num::from_json))
                .collect::<Option<Arc<[Num]>>>()
            {
                Some(AnythingBut::Numbers(nums))
            } else {
                v.err(
                    "\"anything-but\" takes a list of only strings or only numbers (no null, booleans, objects or a mix)",
                );
                None
            }
        }
        Value::Object(map) => {
            let Some((op, inner)) = only_entry(map) else {
                v.err(format!(
                    "\"anything-but\" takes one of prefix, suffix, equals-ignore-case or wildcard, found {} keys",
                    map.len()
                ));
                return None;
            };
            v.path.push(Seg::Key(op));
            let strings = |v: &mut Validator<'a>, allow_empty: bool| -> Option<Vec<String>> {
                let list: Vec<&Value> = match inner {
                    Value::Array(items) if !items.is_empty() => items.iter().collect(),
                    Value::Array(_) => {
                        v.err(format!("\"{op}\" needs at least one string"));
                        return None;
                    }
                    single => vec![single],
                };
                let mut out = Vec::new();
                for (i, item) in list.iter().enumerate() {
                    match item {
                        Value::String(s) if s.contains('\0') => {
                            if matches!(inner, Value::Array(_)) {
                                v.err_at(Seg::Index(i), NUL_MESSAGE);
                            } else {
                                v.err(NUL_MESSAGE);
                            }
                            return None;
                        }
                        Value::String(s) if allow_empty || !s.is_empty() => out.push(s.clone()),
                        Value::String(_) => {
                            v.err(format!(
                                "\"anything-but\" with \"{op}\" cannot use an empty string"
                            ));
                            return None;
                        }
                        other => {
                            let at = if matches!(inner, Value::Array(_)) {
                                format!(" (element {i})")
                            } else {
                                String::new()
                            };
                            v.err(format!(
                                "\"{op}\" inside \"anything-but\" needs a string or a list of strings, found {}{at}",
                                kind_of(other)
                            ));
                            return None;
                        }
                    }
                }
                Some(out)
            };
            let result = match op.as_str() {
                "prefix" => strings(v, false).map(|list| AnythingBut::Prefix(list.into())),
                "suffix" => strings(v, false).map(|list| AnythingBut::Suffix(list.into())),
                "equals-ignore-case" => strings(v, true).map(|list| {
                    AnythingBut::IgnoreCase(list.iter().map(|s| lowercase(s)).collect())
                }),
                "wildcard" => strings(v, true).and_then(|list| {
                    let mut out = Vec::new();
                    for s in &list {
                        match Wildcard::parse(s) {
                            Ok(w) => out.push(w),
                            Err(e) => {
                                v.err(e);
                                return None;
                            }
                        }
                    }
                    Some(AnythingBut::Wildcard(out.into()))
                }),
                other => {
                    v.err(format!(
                        "{} cannot be used inside \"anything-but\"; use prefix, suffix, equals-ignore-case or wildcard",
                        serde_json::to_string(other).unwrap_or_default()
                    ));
                    None
                }
            };
            v.path.pop();
            result
        }
        other => {
            v.err(format!(
                "\"anything-but\" needs a string, a number, a list of strings or numbers, or an object with prefix, suffix, equals-ignore-case or wildcard; found {}",
                kind_of(other)
            ));
            None
        }
    }
}

fn validate_numeric<'a>(v: &mut Validator<'a>, arg: &'a Value) -> Option<Range> {
    let Value::Array(items) = arg else {
        v.err(format!(
            "\"numeric\" needs an array of operator and number pairs, like [\">\", 0, \"<=\", 5]; found {}",
            kind_of(arg)
        ));
        return None;
    };
    if items.is_empty() || items.len() % 2 != 0 || items.len() > 4 {
        v.err("\"numeric\" needs one or two pairs of an operator and a number, like [\">\", 0, \"<=\", 5]");
        return None;
    }
    let mut range = Range {
        lower: None,
        upper: None,
    };
    let mut equals = false;
    for pair in items.chunks(2) {
        let (op, num) = (&pair[0], &pair[1]);
        let Some(op) = op.as_str() else {
            v.err(format!(
                "expected a numeric operator (<, <=, =, >, >=), found {}",
                kind_of(op)
            ));
            return None;
        };
        let n = match num {
            Value::Number(n) => Num::from_json(n),
            other => {
                v.err(format!(
                    "\"{op}\" must be followed by a JSON number, found {}",
                    kind_of(other)
                ));
                return None;
            }
        };
        let slot = match op {
            ">" | ">=" => &mut range.lower,
            "<" | "<=" => &mut range.upper,
            "=" => {
                equals = true;
                range.lower = Some((n, true));
                range.upper = Some((n, true));
                continue;
            }
            other => {
                v.err(format!(
                    "{} is not a numeric operator (use <, <=, =, >, >=)",
                    serde_json::to_string(other).unwrap_or_default()
                ));
                return None;
            }
        };
        if slot.is_some() {
            v.err("\"numeric\" allows at most one lower bound (> or >=) and one upper bound (< or <=)");
            return None;
        }
        *slot = Some((n, op.ends_with('=')));
    }
    if equals && items.len() > 2 {
        v.err("\"=\" cannot be combined with another bound in \"numeric\"");
        return None;
    }
    if let (Some((lo, lo_inc)), Some((hi, hi_inc))) = (range.lower, range.upper) {
        use std::cmp::Ordering::*;
        let empty = match lo.cmp_num(hi) {
            Greater => true,
            Equal => !(lo_inc && hi_inc),
            Less => false,
        };
        if empty {
            v.err("the lower bound of this \"numeric\" range is not below its upper bound, so nothing can match");
            return None;
        }
    }
    Some(range)
}
