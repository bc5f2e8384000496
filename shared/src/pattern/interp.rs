//! The reference interpreter: one pattern against one event held as a
//! `serde_json::Value`, written to be obviously right rather than fast. The
//! compiled [`PatternSet`](super::PatternSet) must agree with it (property
//! tests check that), and leaf conditions are evaluated by the same code here.
//!
//! Semantics, shared with the compiled matcher:
//! - Event keys are split at dots and merged with nested objects, so
//!   `{"a.b": 1}` and `{"a": {"b": 1}}` are the same event.
//! - A field's values are every scalar found under it, looking through arrays
//!   at any depth. A leaf condition holds when one of its matchers holds:
//!   `exists: true` when there is at least one scalar, `exists: false` when
//!   there is none (objects are not scalars), any other matcher when some
//!   scalar satisfies it.
//! - A nested pattern object is matched against the objects found under the
//!   field (through arrays): one of them must satisfy all its fields, which
//!   gives array element consistency. When there is no object at all, it is
//!   matched against an empty object, where only `exists: false` holds.

use std::net::IpAddr;

use serde_json::{Map, Value};

use super::compile::{AnythingBut, Exact, FieldKind, Matcher, Node};
use super::value::{
    Num, Scalar, ends_with_ignore_case, eq_ignore_case, lowercase, starts_with_ignore_case,
};

impl Matcher {
    /// Whether one scalar satisfies this matcher. `exists` is decided by the
    /// caller, which knows whether there are any scalars at all.
    pub(crate) fn matches(&self, s: Scalar<'_>) -> bool {
        match (self, s) {
            (Matcher::Exact(e), s) => exact_matches(e, s),
            (Matcher::Prefix(p), Scalar::Str(v)) => v.starts_with(p.as_str()),
            (Matcher::PrefixIc(p), Scalar::Str(v)) => starts_with_ignore_case(v, p),
            (Matcher::Suffix(p), Scalar::Str(v)) => v.ends_with(p.as_str()),
            (Matcher::SuffixIc(p), Scalar::Str(v)) => ends_with_ignore_case(v, p),
            (Matcher::EqIc(p), Scalar::Str(v)) => eq_ignore_case(v, p),
            (Matcher::Wildcard(w), Scalar::Str(v)) => w.matches(v),
            (Matcher::AnythingBut(a), s) => !anything_but_excludes(a, s),
            (Matcher::Numeric(r), Scalar::Num(n)) => r.contains(n),
            (Matcher::Cidr(net), Scalar::Str(v)) => {
                v.parse::<IpAddr>().is_ok_and(|ip| net.contains(&ip))
            }
            _ => false,
        }
    }
}

fn exact_matches(e: &Exact, s: Scalar<'_>) -> bool {
    match (e, s) {
        (Exact::Str(a), Scalar::Str(b)) => a == b,
        (Exact::Num(a), Scalar::Num(b)) => *a == b,
        (Exact::Bool(a), Scalar::Bool(b)) => *a == b,
        (Exact::Null, Scalar::Null) => true,
        _ => false,
    }
}

/// Whether `s` is one of the values an `anything-but` excludes. Values of
/// another type (null, a number against strings) are never excluded, so they
/// match, as in EventBridge.
pub(crate) fn anything_but_excludes(a: &AnythingBut, s: Scalar<'_>) -> bool {
    match (a, s) {
        (AnythingBut::Strings(list), Scalar::Str(v)) => list.iter().any(|x| x == v),
        (AnythingBut::Numbers(list), Scalar::Num(n)) => list.contains(&n),
        (AnythingBut::Prefix(list), Scalar::Str(v)) => {
            list.iter().any(|p| v.starts_with(p.as_str()))
        }
        (AnythingBut::Suffix(list), Scalar::Str(v)) => list.iter().any(|p| v.ends_with(p.as_str())),
        (AnythingBut::IgnoreCase(list), Scalar::Str(v)) => {
            let lower = lowercase(v);
            list.contains(&lower)
        }
        (AnythingBut::Wildcard(list), Scalar::Str(v)) => list.iter().any(|w| w.matches(v)),
        _ => false,
    }
}

/// A leaf condition over all the scalars found under its field.
pub(crate) fn leaf_matches<'s>(matchers: &[Matcher], scalars: &[Scalar<'s>]) -> bool {
    matchers.iter().any(|m| match m {
        Matcher::Exists(true) => !scalars.is_empty(),
        Matcher::Exists(false) => scalars.is_empty(),
        m => scalars.iter().any(|s| m.matches(*s)),
    })
}

// ---------------------------------------------------------------------------
// Normalised events

/// An event value with dotted keys split and merged.
#[derive(Debug)]
enum NVal<'a> {
    Obj(NObj<'a>),
    Arr(Vec<NVal<'a>>),
    Scalar(Scalar<'a>),
}

#[derive(Debug, Default)]
struct NObj<'a> {
    entries: Vec<(&'a str, NVal<'a>)>,
}

fn scalar_of(v: &Value) -> Scalar<'_> {
    match v {
        Value::String(s) => Scalar::Str(s),
        Value::Number(n) => Scalar::Num(Num::from_json(n)),
        Value::Bool(b) => Scalar::Bool(*b),
        _ => Scalar::Null,
    }
}

fn normalize(v: &Value) -> NVal<'_> {
    match v {
        Value::Object(map) => {
            let mut obj = NObj::default();
            insert_all(&mut obj, map);
            NVal::Obj(obj)
        }
        Value::Array(items) => NVal::Arr(items.iter().map(normalize).collect()),
        other => NVal::Scalar(scalar_of(other)),
    }
}

fn insert_all<'a>(obj: &mut NObj<'a>, map: &'a Map<String, Value>) {
    for (k, v) in map {
        let segs: Vec<&str> = k.split('.').collect();
        insert(obj, &segs, v);
    }
}

/// Runs `f` on the object entry `key` of `obj`, creating it if missing, so
/// that dotted keys and nested objects with the same name merge.
fn with_object_entry<'a>(obj: &mut NObj<'a>, key: &'a str, f: impl FnOnce(&mut NObj<'a>)) {
    for (k, v) in obj.entries.iter_mut() {
        if *k == key
            && let NVal::Obj(o) = v
        {
            f(o);
            return;
        }
    }
    let mut o = NObj::default();
    f(&mut o);
    obj.entries.push((key, NVal::Obj(o)));
}

fn insert<'a>(obj: &mut NObj<'a>, segs: &[&'a str], v: &'a Value) {
    match segs {
        [] => {}
        [last] => match v {
            Value::Object(map) => with_object_entry(obj, last, |o| insert_all(o, map)),
            other => obj.entries.push((last, normalize(other))),
        },
        [head, rest @ ..] => with_object_entry(obj, head, |o| insert(o, rest, v)),
    }
}

fn collect_scalars<'a>(v: &NVal<'a>, out: &mut Vec<Scalar<'a>>) {
    match v {
        NVal::Scalar(s) => out.push(*s),
        NVal::Arr(items) => items.iter().for_each(|i| collect_scalars(i, out)),
        NVal::Obj(_) => {}
    }
}

fn collect_objects<'v, 'a>(v: &'v NVal<'a>, out: &mut Vec<&'v NObj<'a>>) {
    match v {
        NVal::Obj(o) => out.push(o),
        NVal::Arr(items) => items.iter().for_each(|i| collect_objects(i, out)),
        NVal::Scalar(_) => {}
    }
}

fn node_matches(node: &Node, values: &[&NVal<'_>]) -> bool {
    let mut objects = Vec::new();
    for v in values {
        collect_objects(v, &mut objects);
    }
    if objects.is_empty() {
        return fields_match(node, &NObj::default());
    }
    objects.iter().any(|o| fields_match(node, o))
}

fn fields_match(node: &Node, obj: &NObj<'_>) -> bool {
    node.fields.iter().all(|f| {
        let values: Vec<&NVal<'_>> = obj
            .entries
            .iter()
            .filter(|(k, _)| *k == f.key)
            .map(|(_, v)| v)
            .collect();
        match &f.kind {
            FieldKind::Leaf(matchers) => {
                let mut scalars = Vec::new();
                for v in &values {
                    collect_scalars(v, &mut scalars);
                }
                leaf_matches(matchers, &scalars)
            }
            FieldKind::Node(child) => node_matches(child, &values),
        }
    })
}

/// Whether any clause matches the event.
pub(crate) fn matches_value(clauses: &[Node], event: &Value) -> bool {
    let root = normalize(event);
    clauses.iter().any(|c| node_matches(c, &[&root]))
}
