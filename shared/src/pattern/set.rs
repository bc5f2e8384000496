//! [`PatternSet`]: many patterns compiled into one automaton.
//!
//! Each pattern's clauses (its `$or`s expanded) become chains of conditions,
//! most selective first, and chains that start with the same conditions
//! share their states, as in aws/event-ruler and quamina. A state's
//! transitions are per-field value indexes ([`FieldIndex`]), so following
//! them costs a hash probe or a binary search, not a scan over patterns.
//! Matching an event reads it once ([`scan`](super::scan)), keeping only the
//! fields some pattern names, and walks the automaton from the root. A
//! clause that reaches its final state is checked against the kept fields
//! for what the automaton does not track — `exists: false`, and array
//! element consistency where the event has several objects at a path two of
//! the clause's conditions share — and accepted as is otherwise.
//!
//! Unlike event-ruler and quamina, states are reference-counted, so removing
//! a pattern frees exactly what only it used, and nothing is ever rebuilt.
//! Wildcards are indexed by their literal prefix or suffix and matched by a
//! linear-time glob, never expanded into automaton states, so they cannot
//! blow up.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};

use super::compile::{FieldKind, Matcher, Matchers, Node};
use super::index::FieldIndex;
use super::scan::{Doc, Kind, NONE, PathTrie, ROOT, scan};
use super::{EventError, Pattern};

/// Memory limits of a [`PatternSet`].
#[derive(Debug, Clone)]
pub struct SetLimits {
    /// Approximate bytes the compiled patterns may use (estimated from each
    /// pattern's size and shape). Default 256 MiB.
    pub max_bytes: usize,
    /// Maximum number of patterns. Default 1,000,000.
    pub max_patterns: usize,
}

impl Default for SetLimits {
    fn default() -> Self {
        SetLimits {
            max_bytes: 256 << 20,
            max_patterns: 1_000_000,
        }
    }
}

/// A pattern could not be added to a [`PatternSet`]. The set is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetError {
    /// Adding the pattern would take the set over its memory limit.
    #[error(
        "adding this pattern would take the pattern set to about {needed} bytes, over its limit of {limit} bytes"
    )]
    MemoryLimit {
        /// Estimated bytes with the pattern added.
        needed: usize,
        /// The configured [`SetLimits::max_bytes`].
        limit: usize,
    },
    /// The set already holds [`SetLimits::max_patterns`] patterns.
    #[error("the pattern set already holds its limit of {limit} patterns")]
    TooManyPatterns {
        /// The configured [`SetLimits::max_patterns`].
        limit: usize,
    },
}

/// A clause tree with field names resolved to trie nodes.
#[derive(Debug)]
struct VNode {
    fields: Vec<VField>,
}

#[derive(Debug)]
struct VField {
    trie: u32,
    kind: VKind,
}

#[derive(Debug)]
enum VKind {
    Leaf(Matchers),
    Node(VNode),
}

/// One condition of a chain: a leaf's matchers on one path. A leaf that
/// `$or` expansion puts in many clauses is one `Cond` shared by their chains
/// (key and matchers alike).
#[derive(Debug, Clone)]
struct Cond {
    key: Arc<str>,
    trie: u32,
    matchers: Matchers,
}

#[derive(Debug)]
struct ClauseEntry {
    pattern: u32,
    tree: VNode,
    /// Some leaf is neither on the chain nor a plain `exists: false` (it
    /// combines `exists: false` with other matchers, or repeats another
    /// leaf's path), so reaching the chain's end does not prove the clause.
    always_verify: bool,
    /// Paths of the clause's plain `exists: false` leaves: when the event
    /// has no scalar at any of them, they hold in every object, so they
    /// cannot change the answer.
    absent: Vec<u32>,
    /// Paths (trie nodes, the root included) with two or more of the clause's
    /// leaves below them: only where the event has several objects at one of
    /// these can array element consistency reject what the chain accepted.
    shared: Vec<u32>,
    chain: Vec<Cond>,
    /// Trie nodes acquired for the clause's leaf paths.
    paths: Vec<u32>,
}

#[derive(Debug, Default)]
struct State {
    /// Next state per condition key, for insertion and removal.
    children: FxHashMap<Arc<str>, u32>,
    /// Per field: the index from values to next states.
    trans: Vec<(u32, FieldIndex)>,
    /// Clauses whose chain ends here.
    terminals: Vec<u32>,
    /// Chains passing through or ending here.
    refs: u32,
}

#[derive(Debug)]
struct PatternEntry<Id> {
    id: Id,
    clauses: Vec<u32>,
    bytes: usize,
    cost: usize,
}

/// Many patterns, each under an id, compiled into one automaton: given an
/// event, [`matches`](PatternSet::matches) returns the ids of every pattern
/// that matches it, at a cost that follows the event's size and the number
/// of matches rather than the number of patterns.
///
/// Patterns can be added, replaced and removed one at a time without
/// rebuilding the others. Matching takes `&self`, so one set can serve many
/// threads or tasks at once (share it in an `Arc`; updates need `&mut`, e.g.
/// behind an `RwLock` or by swapping in a new `Arc`).
///
/// ```
/// use triggeriq::pattern::{Pattern, PatternSet};
///
/// let mut set = PatternSet::new();
/// set.insert(1, &Pattern::parse(r#"{"type": ["signup"]}"#)?)?;
/// set.insert(2, &Pattern::parse(r#"{"data": {"plan": [{"prefix": "pro"}]}}"#)?)?;
/// let event = br#"{"type": "signup", "data": {"plan": "pro-annual"}}"#;
/// assert_eq!(set.matches(event)?, vec![1, 2]);
///
/// assert!(set.remove(&1));
/// assert_eq!(set.matches(event)?, vec![2]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct PatternSet<Id> {
    limits: SetLimits,
    trie: PathTrie,
    states: Vec<State>,
    free_states: Vec<u32>,
    clauses: Vec<Option<ClauseEntry>>,
    free_clauses: Vec<u32>,
    patterns: Vec<Option<PatternEntry<Id>>>,
    free_patterns: Vec<u32>,
    by_id: HashMap<Id, u32>,
    bytes: usize,
    cost: usize,
}

impl<Id> Default for PatternSet<Id>
where
    Id: Clone + Eq + Hash + Send + Sync,
{
    fn default() -> Self {
        Self::new()
    }
}

/// Per-thread buffers for matching, so that `matches` allocates only its
/// result.
#[derive(Default)]
struct Scratch {
    doc: Doc,
    generation: u32,
    state_seen: Vec<u32>,
    pattern_seen: Vec<u32>,
    stack: Vec<u32>,
    found: Vec<u32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// A leaf's identity within one pattern: the address of its matchers, which
/// `$or` expansion shares between the clauses that hold the leaf.
fn leaf_id(matchers: &Matchers) -> usize {
    Arc::as_ptr(matchers).cast::<()>().addr()
}

/// The chain conditions of one pattern's leaves, each built once for all
/// the clauses that hold it, while the pattern is inserted.
#[derive(Default)]
struct LeafConds {
    /// Leaves that every clause holds. They head each clause's chain, so
    /// that the clauses of a pattern with `$or` share the states and index
    /// entries of what they have in common instead of repeating them once
    /// per clause; the rest of each chain is ordered by [`rank`].
    in_all: FxHashSet<usize>,
    /// By (trie path, leaf).
    built: FxHashMap<(u32, usize), ChainCond>,
}

/// A condition with what orders it in a chain.
#[derive(Clone)]
struct ChainCond {
    /// (not held by every clause, [`rank`]): lower goes first.
    order: (u8, u8),
    /// The leaf's path, segments joined by NUL, for a stable order.
    path: Arc<str>,
    cond: Cond,
}

impl LeafConds {
    fn new(clauses: &[Node]) -> LeafConds {
        let mut counts: FxHashMap<usize, usize> = FxHashMap::default();
        for clause in clauses {
            for leaf in clause.leaves() {
                *counts.entry(leaf_id(leaf.matchers)).or_default() += 1;
            }
        }
        LeafConds {
            in_all: counts
                .into_iter()
                .filter(|(_, n)| *n == clauses.len())
                .map(|(id, _)| id)
                .collect(),
            built: FxHashMap::default(),
        }
    }
}

/// How selective a leaf condition is likely to be; lower goes first in a chain.
fn rank(matchers: &[Matcher]) -> u8 {
    matchers
        .iter()
        .map(|m| match m {
            Matcher::Exact(_) | Matcher::EqIc(_) => 0,
            Matcher::Prefix(_)
            | Matcher::PrefixIc(_)
            | Matcher::Suffix(_)
            | Matcher::SuffixIc(_) => 1,
            Matcher::Cidr(_) => 1,
            Matcher::Wildcard(w)
                if !w.literal_prefix().is_empty() || !w.literal_suffix().is_empty() =>
            {
                2
            }
            Matcher::Numeric(_) => 2,
            Matcher::Wildcard(_) => 3,
            Matcher::AnythingBut(_) | Matcher::Exists(_) => 4,
        })
        .max()
        .unwrap_or(4)
}

impl<Id> PatternSet<Id>
where
    Id: Clone + Eq + Hash + Send + Sync,
{
    /// An empty set with the default [`SetLimits`].
    pub fn new() -> Self {
        Self::with_limits(SetLimits::default())
    }

    /// An empty set with the given memory limits.
    pub fn with_limits(limits: SetLimits) -> Self {
        PatternSet {
            limits,
            trie: PathTrie::new(),
            states: vec![State::default()],
            free_states: Vec::new(),
            clauses: Vec::new(),
            free_clauses: Vec::new(),
            patterns: Vec::new(),
            free_patterns: Vec::new(),
            by_id: HashMap::new(),
            bytes: 0,
            cost: 0,
        }
    }

    /// Number of patterns in the set.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether the set holds no pattern.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Whether a pattern is stored under `id`.
    pub fn contains(&self, id: &Id) -> bool {
        self.by_id.contains_key(id)
    }

    /// Estimated memory used by the compiled patterns, in bytes (what
    /// [`SetLimits::max_bytes`] is compared with).
    pub fn approx_bytes(&self) -> usize {
        self.bytes
    }

    /// The sum of the [`cost`](Pattern::cost) of the patterns in the set:
    /// the values to match they hold once their `$or`s are expanded, which
    /// the set's memory and matching work grow with. A caller can hold one
    /// tenant's set to a budget by checking
    /// `set.cost() + pattern.cost()` before an insert (or each pattern's
    /// cost when the set is built).
    pub fn cost(&self) -> usize {
        self.cost
    }

    /// Adds `pattern` under `id`, replacing any pattern already under that
    /// id. Fails, leaving the set unchanged, when the set would exceed its
    /// limits.
    pub fn insert(&mut self, id: Id, pattern: &Pattern) -> Result<(), SetError> {
        let estimate = estimate_bytes(pattern);
        let old = self
            .by_id
            .get(&id)
            .and_then(|p| self.patterns[*p as usize].as_ref());
        let old_bytes = old.map_or(0, |p| p.bytes);
        if old.is_none() && self.by_id.len() >= self.limits.max_patterns {
            return Err(SetError::TooManyPatterns {
                limit: self.limits.max_patterns,
            });
        }
        let needed = self.bytes - old_bytes + estimate;
        if needed > self.limits.max_bytes {
            return Err(SetError::MemoryLimit {
                needed,
                limit: self.limits.max_bytes,
            });
        }
        self.remove(&id);
        let slot = match self.free_patterns.pop() {
            Some(s) => s,
            None => {
                self.patterns.push(None);
                (self.patterns.len() - 1) as u32
            }
        };
        let mut conds = LeafConds::new(pattern.clauses());
        let clauses = pattern
            .clauses()
            .iter()
            .map(|c| self.add_clause(slot, c, &mut conds))
            .collect();
        let cost = pattern.cost();
        self.patterns[slot as usize] = Some(PatternEntry {
            id: id.clone(),
            clauses,
            bytes: estimate,
            cost,
        });
        self.by_id.insert(id, slot);
        self.bytes += estimate;
        self.cost = self.cost.saturating_add(cost);
        Ok(())
    }

    /// Removes the pattern under `id`; returns whether there was one.
    pub fn remove(&mut self, id: &Id) -> bool {
        let Some(slot) = self.by_id.remove(id) else {
            return false;
        };
        if let Some(entry) = self.patterns[slot as usize].take() {
            for c in entry.clauses {
                self.remove_clause(c);
            }
            self.bytes -= entry.bytes;
            self.cost -= entry.cost;
        }
        self.free_patterns.push(slot);
        true
    }

    /// The ids of all patterns matching `event` (JSON bytes), each once, in
    /// a stable order (by insertion slot). Fails only when the event is not
    /// valid JSON or is nested deeper than
    /// [`EVENT_MAX_DEPTH`](super::EVENT_MAX_DEPTH).
    pub fn matches(&self, event: &[u8]) -> Result<Vec<Id>, EventError> {
        let mut out = Vec::new();
        self.for_each_match(event, |id| out.push(id.clone()))?;
        Ok(out)
    }

    /// Like [`matches`](PatternSet::matches), calling `f` with each matching
    /// id instead of collecting them.
    pub fn for_each_match(&self, event: &[u8], mut f: impl FnMut(&Id)) -> Result<(), EventError> {
        SCRATCH.with(|cell| {
            // A nested call on the same thread (from `f`) gets fresh buffers.
            let mut fallback;
            let mut guard = cell.try_borrow_mut();
            let scratch: &mut Scratch = match guard.as_deref_mut() {
                Ok(s) => s,
                Err(_) => {
                    fallback = Scratch::default();
                    &mut fallback
                }
            };
            self.run(event, scratch)?;
            for p in &scratch.found {
                if let Some(entry) = &self.patterns[*p as usize] {
                    f(&entry.id);
                }
            }
            Ok(())
        })
    }

    fn run(&self, event: &[u8], sc: &mut Scratch) -> Result<(), EventError> {
        let text = scan(event, &self.trie, &mut sc.doc)?;
        sc.generation = sc.generation.wrapping_add(1);
        if sc.generation == 0 {
            sc.state_seen.iter_mut().for_each(|x| *x = 0);
            sc.pattern_seen.iter_mut().for_each(|x| *x = 0);
            sc.generation = 1;
        }
        let generation = sc.generation;
        if sc.state_seen.len() < self.states.len() {
            sc.state_seen.resize(self.states.len(), 0);
        }
        if sc.pattern_seen.len() < self.patterns.len() {
            sc.pattern_seen.resize(self.patterns.len(), 0);
        }
        sc.found.clear();
        sc.stack.clear();
        sc.stack.push(0);
        sc.state_seen[0] = generation;
        let Scratch {
            doc,
            state_seen,
            pattern_seen,
            stack,
            found,
            ..
        } = sc;
        while let Some(s) = stack.pop() {
            let state = &self.states[s as usize];
            for c in &state.terminals {
                let Some(clause) = &self.clauses[*c as usize] else {
                    continue;
                };
                let p = clause.pattern as usize;
                if pattern_seen[p] == generation {
                    continue;
                }
                let proven = !clause.always_verify
                    && clause.absent.iter().all(|t| !doc.has_scalars(*t))
                    && clause.shared.iter().all(|t| doc.objects_at(*t) <= 1);
                if proven || verify(doc, text, &clause.tree) {
                    pattern_seen[p] = generation;
                    found.push(clause.pattern);
                }
            }
            for (trie, index) in &state.trans {
                let mut leaves = doc.leaves_at(*trie).peekable();
                if leaves.peek().is_none() {
                    continue;
                }
                let mut visit = |t: u32| {
                    if state_seen[t as usize] != generation {
                        state_seen[t as usize] = generation;
                        stack.push(t);
                    }
                };
                index.any_targets().iter().for_each(|t| visit(*t));
                if index.needs_lowercase() {
                    let mut leaf = doc.heads[*trie as usize];
                    while leaf != NONE {
                        let lower = doc.lowered(text, leaf);
                        let lower_str =
                            lower.and_then(|(a, b)| doc.lower_buf.get(a as usize..b as usize));
                        index.lookup(doc.scalar(text, leaf), lower_str, &mut visit);
                        leaf = doc.leaf_next[leaf as usize];
                    }
                } else {
                    for leaf in leaves {
                        index.lookup(doc.scalar(text, leaf), None, &mut visit);
                    }
                }
            }
        }
        found.sort_unstable();
        Ok(())
    }

    fn alloc_state(&mut self) -> u32 {
        match self.free_states.pop() {
            Some(s) => s,
            None => {
                self.states.push(State::default());
                (self.states.len() - 1) as u32
            }
        }
    }

    /// Adds one clause of pattern slot `pattern`, with the conditions of the
    /// pattern's leaves built so far in `leaf_conds`.
    fn add_clause(&mut self, pattern: u32, clause: &Node, leaf_conds: &mut LeafConds) -> u32 {
        let leaves = clause.leaves();
        let mut paths = Vec::with_capacity(leaves.len());
        let mut conds: Vec<ChainCond> = Vec::new();
        let mut absent = Vec::new();
        let mut off_chain = false;
        for leaf in &leaves {
            let trie = self.trie.acquire(&leaf.path);
            paths.push(trie);
            if leaf
                .matchers
                .iter()
                .any(|m| matches!(m, Matcher::Exists(false)))
            {
                if leaf
                    .matchers
                    .iter()
                    .all(|m| matches!(m, Matcher::Exists(false)))
                {
                    absent.push(trie);
                } else {
                    off_chain = true;
                }
                continue;
            }
            let id = leaf_id(leaf.matchers);
            let in_all = leaf_conds.in_all.contains(&id);
            let cond = leaf_conds.built.entry((trie, id)).or_insert_with(|| {
                let mut parts: Vec<String> =
                    leaf.matchers.iter().map(|m| format!("{m:?}")).collect();
                parts.sort();
                parts.dedup();
                let key = format!("{trie}|{}", parts.join("|"));
                ChainCond {
                    order: (u8::from(!in_all), rank(leaf.matchers)),
                    path: leaf.path.join("\u{0}").into(),
                    cond: Cond {
                        key: key.into(),
                        trie,
                        matchers: Arc::clone(leaf.matchers),
                    },
                }
            });
            conds.push(cond.clone());
        }
        conds.sort_by(|a, b| (a.order, &a.path, &a.cond.key).cmp(&(b.order, &b.path, &b.cond.key)));
        conds.dedup_by(|a, b| a.cond.key == b.cond.key);
        let chain: Vec<Cond> = conds.into_iter().map(|c| c.cond).collect();

        let tree = self.resolve(clause, 0);
        let always_verify = off_chain || chain.len() + absent.len() < leaves.len();
        let mut shared = Vec::new();
        shared_paths(&tree, 0, &mut shared);
        let id = match self.free_clauses.pop() {
            Some(c) => c,
            None => {
                self.clauses.push(None);
                (self.clauses.len() - 1) as u32
            }
        };
        let mut state = 0u32;
        self.states[0].refs += 1;
        for cond in &chain {
            let next = match self.states[state as usize].children.get(&cond.key) {
                Some(n) => *n,
                None => {
                    let n = self.alloc_state();
                    let st = &mut self.states[state as usize];
                    st.children.insert(Arc::clone(&cond.key), n);
                    let pos = match st.trans.iter().position(|(t, _)| *t == cond.trie) {
                        Some(p) => p,
                        None => {
                            st.trans.push((cond.trie, FieldIndex::default()));
                            st.trans.len() - 1
                        }
                    };
                    for m in cond.matchers.iter() {
                        st.trans[pos].1.add(m, n);
                    }
                    n
                }
            };
            self.states[next as usize].refs += 1;
            state = next;
        }
        self.states[state as usize].terminals.push(id);
        self.clauses[id as usize] = Some(ClauseEntry {
            pattern,
            tree,
            always_verify,
            absent,
            shared,
            chain,
            paths,
        });
        id
    }

    /// The clause tree with each field resolved to its trie node (the paths
    /// were acquired just before).
    fn resolve(&self, node: &Node, at: u32) -> VNode {
        VNode {
            fields: node
                .fields
                .iter()
                .map(|f| {
                    let trie = self.trie.lookup(at, &f.key).unwrap_or(NONE);
                    VField {
                        trie,
                        kind: match &f.kind {
                            FieldKind::Leaf(m) => VKind::Leaf(Arc::clone(m)),
                            FieldKind::Node(n) => VKind::Node(self.resolve(n, trie)),
                        },
                    }
                })
                .collect(),
        }
    }

    fn remove_clause(&mut self, id: u32) {
        let Some(clause) = self.clauses[id as usize].take() else {
            return;
        };
        self.free_clauses.push(id);
        let mut path = vec![0u32];
        for cond in &clause.chain {
            let at = path[path.len() - 1];
            match self.states[at as usize].children.get(&cond.key) {
                Some(n) => path.push(*n),
                None => break,
            }
        }
        let last = path[path.len() - 1];
        let terms = &mut self.states[last as usize].terminals;
        if let Some(i) = terms.iter().position(|c| *c == id) {
            terms.swap_remove(i);
        }
        for i in (1..path.len()).rev() {
            let s = path[i];
            let st = &mut self.states[s as usize];
            st.refs -= 1;
            if st.refs == 0 {
                self.states[s as usize] = State::default();
                self.free_states.push(s);
                let cond = &clause.chain[i - 1];
                let parent = &mut self.states[path[i - 1] as usize];
                parent.children.remove(&cond.key);
                if let Some(pos) = parent.trans.iter().position(|(t, _)| *t == cond.trie) {
                    for m in cond.matchers.iter() {
                        parent.trans[pos].1.remove(m, s);
                    }
                    if parent.trans[pos].1.is_empty() {
                        parent.trans.swap_remove(pos);
                    }
                }
            }
        }
        self.states[0].refs -= 1;
        for p in clause.paths {
            self.trie.release(p);
        }
    }
}

/// Collects the trie nodes of `node` and below with two or more leaves
/// beneath them; returns the number of leaves under `node`.
fn shared_paths(node: &VNode, trie: u32, out: &mut Vec<u32>) -> usize {
    let mut leaves = 0;
    for f in &node.fields {
        leaves += match &f.kind {
            VKind::Leaf(_) => 1,
            VKind::Node(child) => shared_paths(child, f.trie, out),
        };
    }
    if leaves >= 2 {
        out.push(trie);
    }
    leaves
}

/// Rough memory cost of a compiled pattern. Matchers and strings are shared,
/// not copied, by the clauses and states that use them, so the text counts
/// once; what repeats is per clause (its entry and states) and per leaf of
/// each clause (tree, chain and trie entries), and per value repeated across
/// clauses (an index entry in each state it leads from). Calibrated on the
/// `or` section of the pattern benchmark, where it is within about 10% for
/// 1,024-clause patterns and above the heap actually used otherwise.
fn estimate_bytes(pattern: &Pattern) -> usize {
    let chars = super::validate::compact_chars(pattern.as_value(), usize::MAX);
    let clauses = pattern.clauses();
    let clause_leaves: usize = clauses.iter().map(|c| c.leaves().len()).sum();
    256 + chars * 8 + clauses.len() * 320 + clause_leaves * 256 + pattern.cost().saturating_mul(8)
}

// ---------------------------------------------------------------------------
// Verification of a candidate clause against the kept fields. Same semantics
// as the reference interpreter (see `interp`), on the scanned tree.

/// Calls `f` on every object among the values of `parent`'s children
/// (filtered by `key` for object entries), looking through arrays; stops and
/// returns true as soon as `f` does.
fn objects_under(doc: &Doc, parent: u32, key: Option<u32>, f: &mut dyn FnMut(u32) -> bool) -> bool {
    let mut c = doc.nodes[parent as usize].first;
    while c != NONE {
        let n = &doc.nodes[c as usize];
        if key.is_none_or(|k| n.keyed && n.trie == k) {
            let hit = match n.kind {
                Kind::Obj => f(c),
                Kind::Arr => objects_under(doc, c, None, f),
                Kind::Leaf => false,
            };
            if hit {
                return true;
            }
        }
        c = n.next;
    }
    false
}

/// Like `objects_under`, for scalars.
fn scalars_under(doc: &Doc, parent: u32, key: Option<u32>, f: &mut dyn FnMut(u32) -> bool) -> bool {
    let mut c = doc.nodes[parent as usize].first;
    while c != NONE {
        let n = &doc.nodes[c as usize];
        if key.is_none_or(|k| n.keyed && n.trie == k) {
            let hit = match n.kind {
                Kind::Leaf => f(n.leaf),
                Kind::Arr => scalars_under(doc, c, None, f),
                Kind::Obj => false,
            };
            if hit {
                return true;
            }
        }
        c = n.next;
    }
    false
}

fn verify(doc: &Doc, text: &str, tree: &VNode) -> bool {
    node_matches(doc, text, tree, ROOT, None)
}

fn node_matches(doc: &Doc, text: &str, node: &VNode, parent: u32, key: Option<u32>) -> bool {
    let mut any_object = false;
    let hit = objects_under(doc, parent, key, &mut |o| {
        any_object = true;
        fields_match(doc, text, node, Some(o))
    });
    hit || (!any_object && fields_match(doc, text, node, None))
}

fn fields_match(doc: &Doc, text: &str, node: &VNode, obj: Option<u32>) -> bool {
    node.fields.iter().all(|f| match &f.kind {
        VKind::Node(child) => match obj {
            Some(o) => node_matches(doc, text, child, o, Some(f.trie)),
            None => fields_match(doc, text, child, None),
        },
        VKind::Leaf(matchers) => matchers.iter().any(|m| {
            let Some(o) = obj else {
                return matches!(m, Matcher::Exists(false));
            };
            match m {
                Matcher::Exists(want) => {
                    scalars_under(doc, o, Some(f.trie), &mut |_| true) == *want
                }
                m => scalars_under(doc, o, Some(f.trie), &mut |leaf| {
                    m.matches(doc.scalar(text, leaf))
                }),
            }
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pattern::value::{Num, Scalar};

    fn p(s: &str) -> Pattern {
        Pattern::parse(s).expect("valid pattern")
    }

    #[test]
    fn removal_frees_states_and_trie_nodes() {
        let mut set = PatternSet::new();
        set.insert("a", &p(r#"{"type": ["x"], "n": [{"numeric": [">", 1]}]}"#))
            .expect("insert");
        set.insert("b", &p(r#"{"type": ["x"], "s": [{"prefix": "ab"}]}"#))
            .expect("insert");
        let states_with_both = set.states.len() - set.free_states.len();
        assert_eq!(
            states_with_both, 4,
            "root, type=x shared, and one state each"
        );
        assert!(set.remove(&"a"));
        assert_eq!(set.states.len() - set.free_states.len(), 3);
        assert!(set.remove(&"b"));
        assert_eq!(set.states.len() - set.free_states.len(), 1);
        assert!(set.states[0].trans.is_empty());
        assert!(
            set.trie.capacity() - set.trie.free_count() == 1,
            "only the root path node remains"
        );
        assert_eq!(set.approx_bytes(), 0);
        assert!(!set.remove(&"b"));
    }

    /// What every clause of a pattern holds heads each chain, so the
    /// `$or` cases share it: one state and one index for `z`, not one per
    /// case.
    #[test]
    fn what_every_or_case_holds_is_indexed_once() {
        let mut set = PatternSet::new();
        let pattern = p(r#"{"z": [1, 2], "$or": [{"a": [1]}, {"b": [1]}, {"c": [1]}]}"#);
        set.insert(0, &pattern).expect("insert");
        let live = set.states.len() - set.free_states.len();
        assert_eq!(live, 5, "root, z, then a, b and c");
        let z_indexes = set
            .states
            .iter()
            .flat_map(|st| st.trans.iter())
            .filter(|(_, index)| {
                let mut hit = false;
                index.lookup(Scalar::Num(Num::Int(2)), None, &mut |_| hit = true);
                hit
            })
            .count();
        assert_eq!(z_indexes, 1);
        assert_eq!(set.matches(br#"{"z": 2, "b": 1}"#).expect("json"), vec![0]);
        assert!(
            set.matches(br#"{"z": 3, "b": 1}"#)
                .expect("json")
                .is_empty()
        );
        assert!(set.remove(&0));
        assert_eq!(set.states.len() - set.free_states.len(), 1);
    }

    #[test]
    fn insert_replaces_and_limits_refuse_without_change() {
        let mut set = PatternSet::with_limits(SetLimits {
            max_bytes: 100_000,
            max_patterns: 2,
        });
        set.insert(1, &p(r#"{"a": ["x"]}"#)).expect("insert");
        set.insert(1, &p(r#"{"a": ["y"]}"#)).expect("replace");
        assert_eq!(set.len(), 1);
        assert_eq!(
            set.matches(br#"{"a": "x"}"#).expect("json"),
            Vec::<i32>::new()
        );
        assert_eq!(set.matches(br#"{"a": "y"}"#).expect("json"), vec![1]);
        set.insert(2, &p(r#"{"a": ["z"]}"#)).expect("insert");
        assert_eq!(
            set.insert(3, &p(r#"{"a": ["w"]}"#)),
            Err(SetError::TooManyPatterns { limit: 2 })
        );
        let big = format!(
            r#"{{"a": [{}]}}"#,
            (0..2000)
                .map(|i| format!("\"v{i}\""))
                .collect::<Vec<_>>()
                .join(",")
        );
        let big = Pattern::parse_with(
            &big,
            &crate::pattern::PatternLimits {
                max_chars: 100_000,
                max_depth: 32,
            },
        )
        .expect("valid");
        assert!(matches!(
            set.insert(2, &big),
            Err(SetError::MemoryLimit { .. })
        ));
        assert_eq!(
            set.matches(br#"{"a": "z"}"#).expect("json"),
            vec![2],
            "unchanged after refusal"
        );
    }
}
