//! Validation of pattern JSON and its compiled form: every `$or` expanded into
//! clauses (conjunctions), each clause a tree of single-segment field names
//! with the leaf conditions at its leaves.

use std::fmt::Write as _;

use ipnet::IpNet;
use serde_json::{Map, Value};

use super::value::{Num, Wildcard, lowercase, wildcard_complexity};
use super::{PatternError, PatternLimits};

/// Upper bound on the clauses a pattern's `$or`s may expand into. Each clause
/// is matched separately, so this bounds the work one pattern can cost.
pub(crate) const MAX_CLAUSES: usize = 1024;

/// Hard ceiling on `PatternLimits::max_depth`.
pub(crate) const MAX_DEPTH_CAP: usize = 256;

/// One element of a leaf array: a value to equal or one operator.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Matcher {
    Exact(Exact),
    Prefix(String),
    /// Lowercased.
    PrefixIc(String),
    Suffix(String),
    /// Lowercased.
    SuffixIc(String),
    /// Lowercased.
    EqIc(String),
    Wildcard(Wildcard),
    AnythingBut(AnythingBut),
    Numeric(Range),
    Cidr(IpNet),
    Exists(bool),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Exact {
    Str(String),
    Num(Num),
    Bool(bool),
    Null,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum AnythingBut {
    Strings(Vec<String>),
    Numbers(Vec<Num>),
    Prefix(Vec<String>),
    Suffix(Vec<String>),
    /// Lowercased.
    IgnoreCase(Vec<String>),
    Wildcard(Vec<Wildcard>),
}

/// A numeric range; `(bound, inclusive)`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Range {
    pub(crate) lower: Option<(Num, bool)>,
    pub(crate) upper: Option<(Num, bool)>,
}

impl Range {
    pub(crate) fn contains(&self, n: Num) -> bool {
        use std::cmp::Ordering::*;
        if let Some((lo, inc)) = self.lower {
            match n.cmp_num(lo) {
                Less => return false,
                Equal if !inc => return false,
                _ => {}
            }
        }
        if let Some((hi, inc)) = self.upper {
            match n.cmp_num(hi) {
                Greater => return false,
                Equal if !inc => return false,
                _ => {}
            }
        }
        true
    }
}

/// A conjunction of conditions as a tree. Field keys are single path
/// segments: dotted keys are split and fields with the same key merged, so
/// that `{"a.b": [1], "a": {"c": [2]}}` is `a → {b, c}` and both conditions
/// are checked on the same element when `a` is an array of objects.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Node {
    pub(crate) fields: Vec<Field>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Field {
    pub(crate) key: String,
    pub(crate) kind: FieldKind,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum FieldKind {
    Leaf(Vec<Matcher>),
    Node(Node),
}

/// A leaf condition with its full path, as listed by [`Node::leaves`].
pub(crate) struct LeafRef<'a> {
    pub(crate) path: Vec<&'a str>,
    pub(crate) matchers: &'a [Matcher],
}

impl Node {
    fn insert(&mut self, path: &[String], matchers: Vec<Matcher>) {
        let Some((head, rest)) = path.split_first() else {
            return;
        };
        if rest.is_empty() {
            self.fields.push(Field {
                key: head.clone(),
                kind: FieldKind::Leaf(matchers),
            });
            return;
        }
        let existing = self
            .fields
            .iter_mut()
            .find(|f| f.key == *head && matches!(f.kind, FieldKind::Node(_)));
        let child = match existing {
            Some(f) => f,
            None => {
                self.fields.push(Field {
                    key: head.clone(),
                    kind: FieldKind::Node(Node::default()),
                });
                let last = self.fields.len() - 1;
                &mut self.fields[last]
            }
        };
        if let FieldKind::Node(n) = &mut child.kind {
            n.insert(rest, matchers);
        }
    }

    /// Every leaf condition with its path, depth first.
    pub(crate) fn leaves(&self) -> Vec<LeafRef<'_>> {
        let mut out = Vec::new();
        let mut prefix = Vec::new();
        self.collect_leaves(&mut prefix, &mut out);
        out
    }

    fn collect_leaves<'a>(&'a self, prefix: &mut Vec<&'a str>, out: &mut Vec<LeafRef<'a>>) {
        for f in &self.fields {
            prefix.push(&f.key);
            match &f.kind {
                FieldKind::Leaf(m) => out.push(LeafRef {
                    path: prefix.clone(),
                    matchers: m,
                }),
                FieldKind::Node(n) => n.collect_leaves(prefix, out),
            }
            prefix.pop();
        }
    }
}

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
struct RNode {
    /// (dot-split path, content)
    fields: Vec<(Vec<String>, RField)>,
    ors: Vec<Vec<RNode>>,
}

enum RField {
    Leaf(Vec<Matcher>),
    Node(RNode),
}

/// Validates `value` and compiles it into clauses.
pub(crate) fn compile(
    value: &Value,
    limits: &PatternLimits,
) -> Result<Vec<Node>, Vec<PatternError>> {
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
    let Some(root) = root else {
        return top("the pattern is not valid".into());
    };
    let conjunctions = expand(&root, &[]).map_err(|message| {
        vec![PatternError {
            path: "$".into(),
            message,
        }]
    })?;
    let mut clauses = Vec::with_capacity(conjunctions.len());
    for conj in conjunctions {
        let mut node = Node::default();
        for (path, matchers) in conj {
            node.insert(&path, matchers);
        }
        clauses.push(node);
    }
    Ok(clauses)
}

fn validate_object<'a>(v: &mut Validator<'a>, map: &'a Map<String, Value>) -> Option<RNode> {
    if map.is_empty() {
        v.err("an object in a pattern needs at least one field");
        return None;
    }
    let mut node = RNode {
        fields: Vec::new(),
        ors: Vec::new(),
    };
    let mut ok = true;
    for (key, value) in map {
        v.path.push(Seg::Key(key));
        if key == "$or" {
            match validate_or(v, value) {
                Some(branches) => node.ors.push(branches),
                None => ok = false,
            }
        } else {
            let segments: Vec<String> = key.split('.').map(str::to_owned).collect();
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
                Some(f) => node.fields.push((segments, f)),
                None => ok = false,
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

fn validate_leaf<'a>(v: &mut Validator<'a>, items: &'a [Value]) -> Option<Vec<Matcher>> {
    if items.is_empty() {
        v.err("an array of values to match cannot be empty");
        return None;
    }
    let mut out = Vec::with_capacity(items.len());
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        v.path.push(Seg::Index(i));
        let m = match item {
            Value::String(s) => Some(Matcher::Exact(Exact::Str(s.clone()))),
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
                Matcher::AnythingBut(AnythingBut::Wildcard(ws)) => ws.as_slice(),
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
    ok.then_some(out)
}

const OPERATORS: &str =
    "prefix, suffix, equals-ignore-case, wildcard, anything-but, numeric, cidr, exists";

fn validate_operator<'a>(v: &mut Validator<'a>, map: &'a Map<String, Value>) -> Option<Matcher> {
    let mut iter = map.iter();
    let (Some((op, arg)), None) = (iter.next(), iter.next()) else {
        v.err(format!(
            "an operator object needs exactly one operator ({OPERATORS}), found {} keys",
            map.len()
        ));
        return None;
    };
    v.path.push(Seg::Key(op));
    let result = match op.as_str() {
        "prefix" => string_or_ignore_case(v, "prefix", arg).map(|(s, ic)| {
            if ic {
                Matcher::PrefixIc(lowercase(&s))
            } else {
                Matcher::Prefix(s)
            }
        }),
        "suffix" => string_or_ignore_case(v, "suffix", arg).map(|(s, ic)| {
            if ic {
                Matcher::SuffixIc(lowercase(&s))
            } else {
                Matcher::Suffix(s)
            }
        }),
        "equals-ignore-case" => match arg {
            Value::String(s) => Some(Matcher::EqIc(lowercase(s))),
            other => {
                v.err(format!(
                    "\"equals-ignore-case\" needs a string, found {}",
                    kind_of(other)
                ));
                None
            }
        },
        "wildcard" => match arg {
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
            let hint = if OPERATORS.split(", ").any(|o| o.eq_ignore_ascii_case(other)) {
                " (operator names are lowercase)"
            } else {
                ""
            };
            v.path.pop();
            v.err(format!(
                "{} is not an operator{hint}; use one of {OPERATORS}",
                serde_json::to_string(other).unwrap_or_default()
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
        Value::String(s) => Some((s.clone(), false)),
        Value::Object(map) if map.len() == 1 && map.contains_key("equals-ignore-case") => {
            match map.get("equals-ignore-case") {
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
        Value::String(s) => Some(AnythingBut::Strings(vec![s.clone()])),
        Value::Number(n) => Some(AnythingBut::Numbers(vec![Num::from_json(n)])),
        Value::Array(items) => {
            if items.is_empty() {
                v.err("\"anything-but\" needs at least one value");
                return None;
            }
            if items.iter().all(Value::is_string) {
                Some(AnythingBut::Strings(
                    items
                        .iter()
                        .filter_map(|i| i.as_str().map(str::to_owned))
                        .collect(),
                ))
            } else if let Some(nums) = items
                .iter()
                .map(|i| i.as_number().map(Num::from_json))
                .collect::<Option<Vec<_>>>()
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
            let mut iter = map.iter();
            let (Some((op, inner)), None) = (iter.next(), iter.next()) else {
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
                "prefix" => strings(v, false).map(AnythingBut::Prefix),
                "suffix" => strings(v, false).map(AnythingBut::Suffix),
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
                    Some(AnythingBut::Wildcard(out))
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

// ---------------------------------------------------------------------------
// `$or` expansion

type Conj = Vec<(Vec<String>, Vec<Matcher>)>;

fn expand(node: &RNode, prefix: &[String]) -> Result<Vec<Conj>, String> {
    let mut acc: Vec<Conj> = vec![Vec::new()];
    for (path, field) in &node.fields {
        let full: Vec<String> = prefix.iter().chain(path.iter()).cloned().collect();
        match field {
            RField::Leaf(m) => {
                for c in &mut acc {
                    c.push((full.clone(), m.clone()));
                }
            }
            RField::Node(child) => {
                let sub = expand(child, &full)?;
                acc = product(acc, &sub)?;
            }
        }
    }
    for branches in &node.ors {
        let mut alts = Vec::new();
        for b in branches {
            alts.extend(expand(b, prefix)?);
            if alts.len() > MAX_CLAUSES {
                return Err(too_many());
            }
        }
        acc = product(acc, &alts)?;
    }
    Ok(acc)
}

fn too_many() -> String {
    format!(
        "the \"$or\" alternatives of this pattern combine into more than {MAX_CLAUSES} cases; simplify it or split it into several patterns"
    )
}

fn product(left: Vec<Conj>, right: &[Conj]) -> Result<Vec<Conj>, String> {
    if right.len() == 1 {
        let mut left = left;
        for c in &mut left {
            c.extend(right[0].iter().cloned());
        }
        return Ok(left);
    }
    if left.len().saturating_mul(right.len()) > MAX_CLAUSES {
        return Err(too_many());
    }
    let mut out = Vec::with_capacity(left.len() * right.len());
    for l in &left {
        for r in right {
            let mut c = l.clone();
            c.extend(r.iter().cloned());
            out.push(c);
        }
    }
    Ok(out)
}
