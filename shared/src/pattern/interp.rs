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
//!
//! Its work is counted in [`Steps`], so that a caller can stop it: a pattern
//! with many clauses against an event with many values at the paths they
//! name can otherwise take minutes.

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
        #[cfg(test)]
        tests::WORK.with(|w| w.set(w.get() + self.values()));
        match (self, s) {
            (Matcher::Exact(e), s) => exact_matches(e, s),
            (Matcher::Prefix(p), Scalar::Str(v)) => v.starts_with(&**p),
            (Matcher::PrefixIc(p), Scalar::Str(v)) => starts_with_ignore_case(v, p),
            (Matcher::Suffix(p), Scalar::Str(v)) => v.ends_with(&**p),
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
        (Exact::Str(a), Scalar::Str(b)) => **a == *b,
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
        (AnythingBut::Prefix(list), Scalar::Str(v)) => list.iter().any(|p| v.starts_with(&**p)),
        (AnythingBut::Suffix(list), Scalar::Str(v)) => list.iter().any(|p| v.ends_with(&**p)),
        (AnythingBut::IgnoreCase(list), Scalar::Str(v)) => {
            let lower = lowercase(v);
            list.contains(&lower)
        }
        (AnythingBut::Wildcard(list), Scalar::Str(v)) => list.iter().any(|w| w.matches(v)),
        _ => false,
    }
}

/// The work the interpreter may still do for one event. A step is one value
/// to match ([`Matcher::values`]) tested against one event value, or one
/// event entry or value visited while gathering a field's values; strings
/// compare in time linear in their length, which the event's size bounds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Steps {
    left: u64,
}

/// The interpreter used up its [`Steps`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OutOfSteps;

impl Steps {
    pub(crate) fn new(max: u64) -> Steps {
        Steps { left: max }
    }

    /// Steps not yet spent.
    pub(crate) fn left(&self) -> u64 {
        self.left
    }

    /// Takes `n` steps, or fails, before the work they stand for is done.
    fn spend(&mut self, n: u64) -> Result<(), OutOfSteps> {
        self.left = self.left.checked_sub(n).ok_or(OutOfSteps)?;
        Ok(())
    }

    fn spend_len(&mut self, n: usize) -> Result<(), OutOfSteps> {
        self.spend(u64::try_from(n).unwrap_or(u64::MAX))
    }
}

/// A leaf condition over all the scalars found under its field.
fn leaf_matches(
    matchers: &[Matcher],
    scalars: &[Scalar<'_>],
    steps: &mut Steps,
) -> Result<bool, OutOfSteps> {
    for m in matchers {
        let hit = match m {
            Matcher::Exists(want) => {
                steps.spend(1)?;
                scalars.is_empty() != *want
            }
            m => {
                let cost = m.values();
                let mut hit = false;
                for s in scalars {
                    steps.spend(cost)?;
                    if m.matches(*s) {
                        hit = true;
                        break;
                    }
                }
                hit
            }
        };
        if hit {
            return Ok(true);
        }
    }
    Ok(false)
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

fn collect_scalars<'a>(
    v: &NVal<'a>,
    out: &mut Vec<Scalar<'a>>,
    steps: &mut Steps,
) -> Result<(), OutOfSteps> {
    steps.spend(1)?;
    match v {
        NVal::Scalar(s) => out.push(*s),
        NVal::Arr(items) => {
            for i in items {
                collect_scalars(i, out, steps)?;
            }
        }
        NVal::Obj(_) => {}
    }
    Ok(())
}

fn collect_objects<'v, 'a>(
    v: &'v NVal<'a>,
    out: &mut Vec<&'v NObj<'a>>,
    steps: &mut Steps,
) -> Result<(), OutOfSteps> {
    steps.spend(1)?;
    match v {
        NVal::Obj(o) => out.push(o),
        NVal::Arr(items) => {
            for i in items {
                collect_objects(i, out, steps)?;
            }
        }
        NVal::Scalar(_) => {}
    }
    Ok(())
}

fn node_matches(node: &Node, values: &[&NVal<'_>], steps: &mut Steps) -> Result<bool, OutOfSteps> {
    let mut objects = Vec::new();
    for v in values {
        collect_objects(v, &mut objects, steps)?;
    }
    if objects.is_empty() {
        return fields_match(node, &NObj::default(), steps);
    }
    for o in objects {
        if fields_match(node, o, steps)? {
            return Ok(true);
        }
    }
    Ok(false)
}

fn fields_match(node: &Node, obj: &NObj<'_>, steps: &mut Steps) -> Result<bool, OutOfSteps> {
    for f in &node.fields {
        steps.spend_len(obj.entries.len())?;
        let values: Vec<&NVal<'_>> = obj
            .entries
            .iter()
            .filter(|(k, _)| *k == &*f.key)
            .map(|(_, v)| v)
            .collect();
        let hit = match &f.kind {
            FieldKind::Leaf(matchers) => {
                let mut scalars = Vec::new();
                for v in &values {
                    collect_scalars(v, &mut scalars, steps)?;
                }
                leaf_matches(matchers, &scalars, steps)?
            }
            FieldKind::Node(child) => node_matches(child, &values, steps)?,
        };
        if !hit {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Whether any clause matches the event, within `steps`.
pub(crate) fn matches_value(
    clauses: &[Node],
    event: &Value,
    steps: &mut Steps,
) -> Result<bool, OutOfSteps> {
    // Reading the event is linear in its size, which the caller bounds; the
    // steps count what the clauses multiply.
    let root = normalize(event);
    for c in clauses {
        if node_matches(c, &[&root], steps)? {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::cell::Cell;

    use serde_json::json;

    use super::*;
    use crate::pattern::{MAX_EXPANDED_VALUES, Pattern};

    thread_local! {
        /// Values to match compared with event values on this thread, counted
        /// where the comparing is done ([`Matcher::matches`]), apart from the
        /// interpreter's own accounting.
        pub(crate) static WORK: Cell<u64> = const { Cell::new(0) };
    }

    fn letter(i: usize) -> String {
        char::from(b'a' + i as u8).to_string()
    }

    /// Five 4-way `$or`s (1,024 clauses) and a root leaf `z` as large as the
    /// expansion budget allows; and an event that satisfies every
    /// alternative and holds `values` ones at `z`, which no clause accepts,
    /// so that every clause is tried to its end.
    fn worst_case(values: usize) -> (Pattern, Value) {
        let per_clause = MAX_EXPANDED_VALUES / 1024 - 5;
        let mut pattern = serde_json::Map::new();
        let mut event = serde_json::Map::new();
        for f in 0..5 {
            let alternatives: Vec<Value> = (0..4).map(|w| json!({ letter(w): [0] })).collect();
            pattern.insert(letter(f), json!({ "$or": alternatives }));
            event.insert(letter(f), json!({"a": 0, "b": 0, "c": 0, "d": 0}));
        }
        pattern.insert("z".into(), json!(vec![0; per_clause]));
        event.insert("z".into(), json!(vec![1; values]));
        let pattern = Pattern::from_value(&Value::Object(pattern), &Default::default())
            .expect("within the budget");
        assert_eq!(pattern.cost(), MAX_EXPANDED_VALUES);
        (pattern, Value::Object(event))
    }

    /// Unbounded, the worst case compares every clause's 11 values with
    /// each of the event's 20,000: 225 million comparisons (minutes in a
    /// debug build). With an allowance the interpreter stops, having done
    /// no more comparisons than allowed.
    #[test]
    fn the_allowance_bounds_the_work_of_the_costliest_pattern() {
        let (pattern, event) = worst_case(20_000);
        let unbounded = 1024 * 11 * 20_000u64;
        let allowance = 200_000;
        WORK.with(|w| w.set(0));
        let mut steps = Steps::new(allowance);
        let answer = matches_value(pattern.clauses(), &event, &mut steps);
        let work = WORK.with(Cell::get);
        assert_eq!(answer, Err(OutOfSteps));
        assert!(
            work <= allowance,
            "{work} comparisons for {allowance} steps"
        );
        assert!(work * 1000 < unbounded, "{work}");
        // It got there by comparing, not by refusing up front.
        assert!(work > allowance / 2, "{work}");
    }

    /// Steps are taken as the work is done, and exactly: the steps one
    /// answer took are enough for it, one fewer is not.
    #[test]
    fn an_answer_takes_exactly_the_steps_it_counts() {
        let (pattern, event) = worst_case(3);
        for event in [
            event,
            json!({"a": {"d": 0}, "b": [{"a": 0}, {"c": 0}], "c": {"b": 0}, "d": {"a": 0}, "e": {"d": 0}, "z": [5, 0]}),
            json!({"z": 0}),
        ] {
            let mut steps = Steps::new(u64::MAX);
            let answer = matches_value(pattern.clauses(), &event, &mut steps);
            let taken = u64::MAX - steps.left();
            assert!(taken > 0);
            let mut exact = Steps::new(taken);
            assert_eq!(matches_value(pattern.clauses(), &event, &mut exact), answer);
            let mut short = Steps::new(taken - 1);
            assert_eq!(
                matches_value(pattern.clauses(), &event, &mut short),
                Err(OutOfSteps)
            );
        }
    }
}
