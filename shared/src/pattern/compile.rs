//! The compiled form of a pattern: each leaf's conditions as [`Matcher`]s,
//! and every `$or` expanded into clauses (conjunctions), each clause a tree
//! of single-segment field names with the leaf conditions at its leaves.
//! The interpreter and the [`PatternSet`](super::PatternSet) both work from
//! these clauses; [`validate`](super::validate) decides what may be compiled.

use std::sync::Arc;

use ipnet::IpNet;
use serde_json::Value;

use super::validate::{RField, RNode, validate};
use super::value::{Num, Wildcard};
use super::{PatternError, PatternLimits};

/// A leaf's conditions. Shared, not copied, by every clause the `$or`
/// expansion puts the leaf in, and by the [`PatternSet`](super::PatternSet)
/// structures built from those clauses.
pub(crate) type Matchers = Arc<[Matcher]>;

/// One element of a leaf array: a value to equal or one operator.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Matcher {
    Exact(Exact),
    Prefix(Arc<str>),
    /// Lowercased.
    PrefixIc(Arc<str>),
    Suffix(Arc<str>),
    /// Lowercased.
    SuffixIc(Arc<str>),
    /// Lowercased.
    EqIc(Arc<str>),
    Wildcard(Wildcard),
    AnythingBut(AnythingBut),
    Numeric(Range),
    Cidr(IpNet),
    Exists(bool),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Exact {
    Str(Arc<str>),
    Num(Num),
    Bool(bool),
    Null,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum AnythingBut {
    Strings(Arc<[String]>),
    Numbers(Arc<[Num]>),
    Prefix(Arc<[String]>),
    Suffix(Arc<[String]>),
    /// Lowercased.
    IgnoreCase(Arc<[String]>),
    Wildcard(Arc<[Wildcard]>),
}

impl Matcher {
    /// How many values to match this holds: one, or one per element of an
    /// `anything-but` list, which is checked element by element. The unit
    /// of a pattern's [`cost`](super::Pattern::cost).
    pub(crate) fn values(&self) -> u64 {
        let n = match self {
            Matcher::AnythingBut(
                AnythingBut::Strings(list)
                | AnythingBut::Prefix(list)
                | AnythingBut::Suffix(list)
                | AnythingBut::IgnoreCase(list),
            ) => list.len(),
            Matcher::AnythingBut(AnythingBut::Numbers(list)) => list.len(),
            Matcher::AnythingBut(AnythingBut::Wildcard(list)) => list.len(),
            _ => 1,
        };
        u64::try_from(n).unwrap_or(u64::MAX)
    }
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
    pub(crate) key: Arc<str>,
    pub(crate) kind: FieldKind,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum FieldKind {
    Leaf(Matchers),
    Node(Node),
}

/// A leaf condition with its full path, as listed by [`Node::leaves`].
pub(crate) struct LeafRef<'a> {
    pub(crate) path: Vec<&'a str>,
    pub(crate) matchers: &'a Matchers,
}

impl Node {
    fn insert(&mut self, path: &[Arc<str>], matchers: Matchers) {
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

/// A valid pattern, compiled.
#[derive(Debug, Clone)]
pub(crate) struct Compiled {
    /// The pattern with every `$or` expanded: it matches when any clause
    /// does.
    pub(crate) clauses: Vec<Node>,
    /// The values to match the clauses hold in all (see [`Matcher::values`]).
    pub(crate) cost: u64,
}

/// Validates `value` and compiles it into clauses.
pub(crate) fn compile(
    value: &Value,
    limits: &PatternLimits,
) -> Result<Compiled, Vec<PatternError>> {
    let root = validate(value, limits)?;
    let conjunctions = expand(&root, &[]);
    let mut clauses = Vec::with_capacity(conjunctions.len());
    for conj in conjunctions {
        let mut node = Node::default();
        for (path, matchers) in conj {
            node.insert(&path, matchers);
        }
        clauses.push(node);
    }
    Ok(Compiled {
        clauses,
        cost: root.expansion.values,
    })
}

// ---------------------------------------------------------------------------
// `$or` expansion. Validation has bounded what it produces (clauses and the
// values they hold), so it cannot fail; the clauses share each leaf's path
// and matchers instead of copying them.

type Conj = Vec<(Arc<[Arc<str>]>, Matchers)>;

fn expand(node: &RNode, prefix: &[Arc<str>]) -> Vec<Conj> {
    let mut acc: Vec<Conj> = vec![Vec::new()];
    for (path, field) in &node.fields {
        let full: Vec<Arc<str>> = prefix.iter().chain(path.iter()).cloned().collect();
        match field {
            RField::Leaf(m) => {
                let full: Arc<[Arc<str>]> = full.into();
                for c in &mut acc {
                    c.push((Arc::clone(&full), Arc::clone(m)));
                }
            }
            RField::Node(child) => {
                let sub = expand(child, &full);
                acc = product(acc, &sub);
            }
        }
    }
    for branches in &node.ors {
        let alts: Vec<Conj> = branches.iter().flat_map(|b| expand(b, prefix)).collect();
        acc = product(acc, &alts);
    }
    acc
}

fn product(left: Vec<Conj>, right: &[Conj]) -> Vec<Conj> {
    if let [only] = right {
        let mut left = left;
        for c in &mut left {
            c.extend(only.iter().cloned());
        }
        return left;
    }
    let mut out = Vec::with_capacity(left.len().saturating_mul(right.len()));
    for l in &left {
        for r in right {
            let mut c = l.clone();
            c.extend(r.iter().cloned());
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compiled(text: &str) -> Compiled {
        let value: Value = serde_json::from_str(text).expect("json");
        let limits = PatternLimits {
            max_chars: 1 << 20,
            max_depth: 64,
        };
        compile(&value, &limits).expect("valid")
    }

    /// Validation counts the expansion without doing it; the count must be
    /// what expanding gives, or the budget bounds the wrong thing.
    #[test]
    fn the_counted_expansion_is_the_expansion() {
        for text in [
            r#"{"a": [1]}"#,
            r#"{"a": [1, 2, {"anything-but": ["x", "y", "z"]}]}"#,
            r#"{"t": ["x", "y"], "$or": [{"a": [1]}, {"b": [1, 2]}, {"c": {"d": [3]}}]}"#,
            r#"{"a": {"$or": [{"b": [1]}, {"c": [2]}]}, "e": {"$or": [{"f": [1]}, {"g": [2, 3]}, {"h": [4]}]}, "z": [0, 0, 0]}"#,
            r#"{"$or": [{"a": [1], "$or": [{"b": [2]}, {"c": [3]}]}, {"d": {"e": [4], "$or": [{"f": [5]}, {"g": [6, 7]}]}}]}"#,
            r#"{"a.b": [1], "a": {"$or": [{"c": [2]}, {"d.e": [3]}]}, "$or": [{"x": [{"exists": false}]}, {"y": [{"prefix": "p"}]}]}"#,
        ] {
            let c = compiled(text);
            let values: u64 = c
                .clauses
                .iter()
                .flat_map(|clause| clause.leaves())
                .map(|leaf| leaf.matchers.iter().map(Matcher::values).sum::<u64>())
                .sum();
            assert_eq!(c.cost, values, "{text}");
        }
        let c = compiled(
            r#"{"a": {"$or": [{"b": [1]}, {"c": [2]}]}, "e": {"$or": [{"f": [1]}, {"g": [2, 3]}, {"h": [4]}]}, "z": [0, 0, 0]}"#,
        );
        assert_eq!(c.clauses.len(), 6);
        assert_eq!(c.cost, 6 * (1 + 3) + 2 * (1 + 2 + 1));
    }

    /// Clauses share each leaf's matchers and path segments: expansion
    /// copies pointers, not conditions.
    #[test]
    fn clauses_share_their_leaves() {
        let c = compiled(r#"{"z": [1, 2, 3], "$or": [{"a": [1]}, {"b": [2]}, {"c": [3]}]}"#);
        let z: Vec<&Matchers> = c
            .clauses
            .iter()
            .flat_map(|clause| clause.fields.iter())
            .filter_map(|f| match &f.kind {
                FieldKind::Leaf(m) if &*f.key == "z" => Some(m),
                _ => None,
            })
            .collect();
        assert_eq!(z.len(), 3);
        assert!(z.iter().all(|m| Arc::ptr_eq(m, z[0])));
        // One per clause: validation's own went with the unexpanded pattern.
        assert_eq!(Arc::strong_count(z[0]), 3);
    }
}
