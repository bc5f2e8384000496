//! One field's value index in the automaton: given a scalar, which next
//! states do its matchers lead to. Each kind of matcher has a structure whose
//! lookup cost does not grow with the number of matchers on the field (hash
//! maps for exact values, one probe per distinct length for prefixes and
//! suffixes, sorted bounds for numeric ranges, one probe per distinct prefix
//! length for CIDR blocks); only `anything-but` and wildcards with no literal
//! prefix or suffix are checked one by one.

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use rustc_hash::FxHashMap;

use super::compile::{Exact, Matcher, Range};
use super::value::{Num, NumKey, Scalar, Wildcard};

type Targets = Vec<u32>;

fn add_target(list: &mut Targets, t: u32) {
    list.push(t);
}

fn remove_target(list: &mut Targets, t: u32) {
    if let Some(i) = list.iter().position(|x| *x == t) {
        list.swap_remove(i);
    }
}

/// Strings keyed by themselves, probed by every distinct key length.
#[derive(Debug, Default)]
struct Affix {
    /// Keyed by the pattern's own string, shared, so that a prefix in many
    /// states is stored once.
    map: FxHashMap<Arc<str>, Targets>,
    /// (length in bytes, number of keys with that length), sorted by length.
    lens: Vec<(usize, u32)>,
}

impl Affix {
    fn add(&mut self, key: &Arc<str>, t: u32) {
        let list = self.map.entry(Arc::clone(key)).or_default();
        if list.is_empty() {
            match self.lens.binary_search_by_key(&key.len(), |(l, _)| *l) {
                Ok(i) => self.lens[i].1 += 1,
                Err(i) => self.lens.insert(i, (key.len(), 1)),
            }
        }
        add_target(list, t);
    }

    fn remove(&mut self, key: &str, t: u32) {
        if let Some(list) = self.map.get_mut(key) {
            remove_target(list, t);
            if list.is_empty() {
                self.map.remove(key);
                if let Ok(i) = self.lens.binary_search_by_key(&key.len(), |(l, _)| *l) {
                    self.lens[i].1 -= 1;
                    if self.lens[i].1 == 0 {
                        self.lens.remove(i);
                    }
                }
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn prefixes(&self, v: &str, out: &mut impl FnMut(u32)) {
        for (len, _) in &self.lens {
            if *len > v.len() {
                break;
            }
            if let Some(list) = v.get(..*len).and_then(|p| self.map.get(p)) {
                list.iter().for_each(|t| out(*t));
            }
        }
    }

    fn suffixes(&self, v: &str, out: &mut impl FnMut(u32)) {
        for (len, _) in &self.lens {
            if *len > v.len() {
                break;
            }
            if let Some(list) = v.get(v.len() - len..).and_then(|p| self.map.get(p)) {
                list.iter().for_each(|t| out(*t));
            }
        }
    }
}

/// Wildcards grouped by their literal prefix (or suffix), so only the ones
/// whose literal part fits are tried.
#[derive(Debug, Default)]
struct WildIndex {
    by_prefix: FxHashMap<Box<str>, Vec<(Wildcard, u32)>>,
    prefix_lens: Vec<(usize, u32)>,
    by_suffix: FxHashMap<Box<str>, Vec<(Wildcard, u32)>>,
    suffix_lens: Vec<(usize, u32)>,
    floating: Vec<(Wildcard, u32)>,
}

fn lens_add(lens: &mut Vec<(usize, u32)>, len: usize) {
    match lens.binary_search_by_key(&len, |(l, _)| *l) {
        Ok(i) => lens[i].1 += 1,
        Err(i) => lens.insert(i, (len, 1)),
    }
}

fn lens_remove(lens: &mut Vec<(usize, u32)>, len: usize) {
    if let Ok(i) = lens.binary_search_by_key(&len, |(l, _)| *l) {
        lens[i].1 -= 1;
        if lens[i].1 == 0 {
            lens.remove(i);
        }
    }
}

impl WildIndex {
    fn add(&mut self, w: &Wildcard, t: u32) {
        let (p, s) = (w.literal_prefix(), w.literal_suffix());
        if !p.is_empty() && p.len() >= s.len() {
            let list = self.by_prefix.entry(p.into()).or_default();
            if list.is_empty() {
                lens_add(&mut self.prefix_lens, p.len());
            }
            list.push((w.clone(), t));
        } else if !s.is_empty() {
            let list = self.by_suffix.entry(s.into()).or_default();
            if list.is_empty() {
                lens_add(&mut self.suffix_lens, s.len());
            }
            list.push((w.clone(), t));
        } else {
            self.floating.push((w.clone(), t));
        }
    }

    fn remove(&mut self, w: &Wildcard, t: u32) {
        let take = |list: &mut Vec<(Wildcard, u32)>| {
            if let Some(i) = list.iter().position(|(x, y)| x == w && *y == t) {
                list.swap_remove(i);
            }
        };
        let (p, s) = (w.literal_prefix(), w.literal_suffix());
        if !p.is_empty() && p.len() >= s.len() {
            if let Some(list) = self.by_prefix.get_mut(p) {
                take(list);
                if list.is_empty() {
                    self.by_prefix.remove(p);
                    lens_remove(&mut self.prefix_lens, p.len());
                }
            }
        } else if !s.is_empty() {
            if let Some(list) = self.by_suffix.get_mut(s) {
                take(list);
                if list.is_empty() {
                    self.by_suffix.remove(s);
                    lens_remove(&mut self.suffix_lens, s.len());
                }
            }
        } else {
            take(&mut self.floating);
        }
    }

    fn is_empty(&self) -> bool {
        self.by_prefix.is_empty() && self.by_suffix.is_empty() && self.floating.is_empty()
    }

    fn lookup(&self, v: &str, out: &mut impl FnMut(u32)) {
        for (len, _) in &self.prefix_lens {
            if *len > v.len() {
                break;
            }
            if let Some(list) = v.get(..*len).and_then(|p| self.by_prefix.get(p)) {
                for (w, t) in list {
                    if w.matches(v) {
                        out(*t);
                    }
                }
            }
        }
        for (len, _) in &self.suffix_lens {
            if *len > v.len() {
                break;
            }
            if let Some(list) = v.get(v.len() - len..).and_then(|p| self.by_suffix.get(p)) {
                for (w, t) in list {
                    if w.matches(v) {
                        out(*t);
                    }
                }
            }
        }
        for (w, t) in &self.floating {
            if w.matches(v) {
                out(*t);
            }
        }
    }
}

/// Numeric ranges: one-sided ones sorted by their bound, so the matching
/// ones are a contiguous run found by binary search; two-sided ones sorted by
/// lower bound and checked up to the value, a block at a time: a block whose
/// highest upper bound is below the value is passed over whole, so a lookup
/// checks about the ranges that contain the value plus one per block.
#[derive(Debug, Default)]
struct Ranges {
    /// `> b` / `>= b`: (bound, inclusive, target), sorted by bound.
    lower: Vec<(Num, bool, u32)>,
    /// `< b` / `<= b`, sorted by bound.
    upper: Vec<(Num, bool, u32)>,
    both: Vec<(Range, u32)>,
    /// For each block of `RANGE_BLOCK` entries of `both`: the highest upper
    /// bound in it.
    both_max: Vec<Num>,
}

const RANGE_BLOCK: usize = 16;

fn num_sort_key(a: &(Num, bool, u32), b: &(Num, bool, u32)) -> std::cmp::Ordering {
    a.0.cmp_num(b.0)
}

impl Ranges {
    fn add(&mut self, r: &Range, t: u32) {
        match (r.lower, r.upper) {
            (Some((lo, inc)), None) => {
                let e = (lo, inc, t);
                let i = self.lower.partition_point(|x| num_sort_key(x, &e).is_lt());
                self.lower.insert(i, e);
            }
            (None, Some((hi, inc))) => {
                let e = (hi, inc, t);
                let i = self.upper.partition_point(|x| num_sort_key(x, &e).is_lt());
                self.upper.insert(i, e);
            }
            _ => {
                let lo = r.lower.map(|l| l.0);
                let i = self.both.partition_point(|(x, _)| match (x.lower, lo) {
                    (Some((a, _)), Some(b)) => a.cmp_num(b).is_lt(),
                    _ => false,
                });
                self.both.insert(i, (r.clone(), t));
                self.index_blocks();
            }
        }
    }

    fn remove(&mut self, r: &Range, t: u32) {
        match (r.lower, r.upper) {
            (Some((lo, inc)), None) => {
                if let Some(i) = self
                    .lower
                    .iter()
                    .position(|(b, i2, t2)| *b == lo && *i2 == inc && *t2 == t)
                {
                    self.lower.remove(i);
                }
            }
            (None, Some((hi, inc))) => {
                if let Some(i) = self
                    .upper
                    .iter()
                    .position(|(b, i2, t2)| *b == hi && *i2 == inc && *t2 == t)
                {
                    self.upper.remove(i);
                }
            }
            _ => {
                if let Some(i) = self.both.iter().position(|(x, t2)| x == r && *t2 == t) {
                    self.both.remove(i);
                    self.index_blocks();
                }
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.lower.is_empty() && self.upper.is_empty() && self.both.is_empty()
    }

    /// Recomputes `both_max` (inserts and removals already cost O(n)).
    fn index_blocks(&mut self) {
        self.both_max = self
            .both
            .chunks(RANGE_BLOCK)
            .map(|block| {
                block
                    .iter()
                    .map(|(r, _)| r.upper.map_or(Num::Float(f64::MAX), |(hi, _)| hi))
                    .reduce(|a, b| if a.cmp_num(b).is_lt() { b } else { a })
                    .unwrap_or(Num::Float(f64::MAX))
            })
            .collect();
    }

    fn lookup(&self, n: Num, out: &mut impl FnMut(u32)) {
        // Lower bounds below n all match; equal ones when inclusive.
        let below = self.lower.partition_point(|(b, _, _)| b.cmp_num(n).is_lt());
        self.lower[..below].iter().for_each(|(_, _, t)| out(*t));
        for (b, inc, t) in &self.lower[below..] {
            if !b.cmp_num(n).is_eq() {
                break;
            }
            if *inc {
                out(*t);
            }
        }
        let at_or_above = self.upper.partition_point(|(b, _, _)| b.cmp_num(n).is_lt());
        for (b, inc, t) in &self.upper[at_or_above..] {
            if b.cmp_num(n).is_gt() || *inc {
                out(*t);
            }
        }
        for (block, max) in self.both.chunks(RANGE_BLOCK).zip(&self.both_max) {
            if let Some((lo, _)) = block.first().and_then(|(r, _)| r.lower)
                && lo.cmp_num(n).is_gt()
            {
                break;
            }
            if max.cmp_num(n).is_lt() {
                continue;
            }
            for (r, t) in block {
                if let Some((lo, _)) = r.lower
                    && lo.cmp_num(n).is_gt()
                {
                    break;
                }
                if r.contains(n) {
                    out(*t);
                }
            }
        }
    }
}

/// CIDR blocks keyed by (prefix length, network address).
#[derive(Debug, Default)]
struct Cidrs {
    map: FxHashMap<(u8, IpAddr), Targets>,
    v4_lens: Vec<(usize, u32)>,
    v6_lens: Vec<(usize, u32)>,
}

impl Cidrs {
    fn lens(&mut self, net: &IpNet) -> &mut Vec<(usize, u32)> {
        match net {
            IpNet::V4(_) => &mut self.v4_lens,
            IpNet::V6(_) => &mut self.v6_lens,
        }
    }

    fn add(&mut self, net: &IpNet, t: u32) {
        let key = (net.prefix_len(), net.network());
        let list = self.map.entry(key).or_default();
        let new = list.is_empty();
        add_target(list, t);
        if new {
            lens_add(self.lens(net), usize::from(net.prefix_len()));
        }
    }

    fn remove(&mut self, net: &IpNet, t: u32) {
        let key = (net.prefix_len(), net.network());
        if let Some(list) = self.map.get_mut(&key) {
            remove_target(list, t);
            if list.is_empty() {
                self.map.remove(&key);
                lens_remove(self.lens(net), usize::from(net.prefix_len()));
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn lookup(&self, v: &str, out: &mut impl FnMut(u32)) {
        let Ok(ip) = v.parse::<IpAddr>() else {
            return;
        };
        let lens = match ip {
            IpAddr::V4(_) => &self.v4_lens,
            IpAddr::V6(_) => &self.v6_lens,
        };
        for (len, _) in lens {
            let Ok(net) = IpNet::new(ip, *len as u8) else {
                continue;
            };
            if let Some(list) = self.map.get(&(*len as u8, net.network())) {
                list.iter().for_each(|t| out(*t));
            }
        }
    }
}

/// The matchers used less often, kept out of line so a field with only exact
/// values stays small.
#[derive(Debug, Default)]
struct Rare {
    ignore_case: FxHashMap<Arc<str>, Targets>,
    prefix: Affix,
    prefix_ic: Affix,
    suffix: Affix,
    suffix_ic: Affix,
    wildcard: WildIndex,
    ranges: Ranges,
    cidr: Cidrs,
    anything_but: Vec<(Matcher, u32)>,
}

impl Rare {
    fn is_empty(&self) -> bool {
        self.ignore_case.is_empty()
            && self.prefix.is_empty()
            && self.prefix_ic.is_empty()
            && self.suffix.is_empty()
            && self.suffix_ic.is_empty()
            && self.wildcard.is_empty()
            && self.ranges.is_empty()
            && self.cidr.is_empty()
            && self.anything_but.is_empty()
    }

    fn needs_lowercase(&self) -> bool {
        !(self.ignore_case.is_empty() && self.prefix_ic.is_empty() && self.suffix_ic.is_empty())
    }
}

/// Maps a field's scalar values to next states.
#[derive(Debug, Default)]
pub(crate) struct FieldIndex {
    /// `exists: true`: any scalar at all.
    any: Targets,
    /// Keyed by the pattern's own strings, shared: a value that leads to
    /// many states (one per `$or` clause) is stored once.
    strings: FxHashMap<Arc<str>, Targets>,
    numbers: FxHashMap<NumKey, Targets>,
    trues: Targets,
    falses: Targets,
    nulls: Targets,
    rare: Option<Box<Rare>>,
}

impl FieldIndex {
    fn rare(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Default::default)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.any.is_empty()
            && self.strings.is_empty()
            && self.numbers.is_empty()
            && self.trues.is_empty()
            && self.falses.is_empty()
            && self.nulls.is_empty()
            && self.rare.as_ref().is_none_or(|r| r.is_empty())
    }

    pub(crate) fn add(&mut self, m: &Matcher, t: u32) {
        match m {
            Matcher::Exists(true) => add_target(&mut self.any, t),
            // Negative conditions never lead anywhere: they are checked when a
            // candidate clause is verified.
            Matcher::Exists(false) => {}
            Matcher::Exact(Exact::Str(s)) => {
                add_target(self.strings.entry(Arc::clone(s)).or_default(), t)
            }
            Matcher::Exact(Exact::Num(n)) => {
                add_target(self.numbers.entry(n.key()).or_default(), t)
            }
            Matcher::Exact(Exact::Bool(true)) => add_target(&mut self.trues, t),
            Matcher::Exact(Exact::Bool(false)) => add_target(&mut self.falses, t),
            Matcher::Exact(Exact::Null) => add_target(&mut self.nulls, t),
            Matcher::EqIc(s) => {
                add_target(self.rare().ignore_case.entry(Arc::clone(s)).or_default(), t)
            }
            Matcher::Prefix(s) => self.rare().prefix.add(s, t),
            Matcher::PrefixIc(s) => self.rare().prefix_ic.add(s, t),
            Matcher::Suffix(s) => self.rare().suffix.add(s, t),
            Matcher::SuffixIc(s) => self.rare().suffix_ic.add(s, t),
            Matcher::Wildcard(w) => self.rare().wildcard.add(w, t),
            Matcher::Numeric(r) => {
                if let (Some((lo, true)), Some((hi, true))) = (r.lower, r.upper)
                    && lo == hi
                {
                    add_target(self.numbers.entry(lo.key()).or_default(), t);
                } else {
                    self.rare().ranges.add(r, t);
                }
            }
            Matcher::Cidr(net) => self.rare().cidr.add(net, t),
            Matcher::AnythingBut(_) => self.rare().anything_but.push((m.clone(), t)),
        }
    }

    pub(crate) fn remove(&mut self, m: &Matcher, t: u32) {
        fn from_map<K, Q>(map: &mut FxHashMap<Q, Targets>, key: &K, t: u32)
        where
            K: std::hash::Hash + Eq + ?Sized,
            Q: std::hash::Hash + Eq + std::borrow::Borrow<K>,
        {
            if let Some(list) = map.get_mut(key) {
                remove_target(list, t);
                if list.is_empty() {
                    map.remove(key);
                }
            }
        }
        match m {
            Matcher::Exists(true) => remove_target(&mut self.any, t),
            Matcher::Exists(false) => {}
            Matcher::Exact(Exact::Str(s)) => from_map(&mut self.strings, &**s, t),
            Matcher::Exact(Exact::Num(n)) => from_map(&mut self.numbers, &n.key(), t),
            Matcher::Exact(Exact::Bool(true)) => remove_target(&mut self.trues, t),
            Matcher::Exact(Exact::Bool(false)) => remove_target(&mut self.falses, t),
            Matcher::Exact(Exact::Null) => remove_target(&mut self.nulls, t),
            Matcher::Numeric(r) => {
                if let (Some((lo, true)), Some((hi, true))) = (r.lower, r.upper)
                    && lo == hi
                {
                    from_map(&mut self.numbers, &lo.key(), t);
                } else if let Some(rare) = self.rare.as_mut() {
                    rare.ranges.remove(r, t);
                }
            }
            _ => {
                if let Some(rare) = self.rare.as_mut() {
                    match m {
                        Matcher::EqIc(s) => from_map(&mut rare.ignore_case, &**s, t),
                        Matcher::Prefix(s) => rare.prefix.remove(s, t),
                        Matcher::PrefixIc(s) => rare.prefix_ic.remove(s, t),
                        Matcher::Suffix(s) => rare.suffix.remove(s, t),
                        Matcher::SuffixIc(s) => rare.suffix_ic.remove(s, t),
                        Matcher::Wildcard(w) => rare.wildcard.remove(w, t),
                        Matcher::Cidr(net) => rare.cidr.remove(net, t),
                        Matcher::AnythingBut(_) => {
                            if let Some(i) = rare
                                .anything_but
                                .iter()
                                .position(|(x, y)| x == m && *y == t)
                            {
                                rare.anything_but.swap_remove(i);
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        if self.rare.as_ref().is_some_and(|r| r.is_empty()) {
            self.rare = None;
        }
    }

    /// Targets for `exists: true`, reached when the field has any scalar.
    pub(crate) fn any_targets(&self) -> &[u32] {
        &self.any
    }

    pub(crate) fn needs_lowercase(&self) -> bool {
        self.rare.as_ref().is_some_and(|r| r.needs_lowercase())
    }

    /// Calls `out` with every target whose matcher accepts the scalar.
    /// `lower` is the lowercased string, given when `needs_lowercase`.
    pub(crate) fn lookup(&self, s: Scalar<'_>, lower: Option<&str>, out: &mut impl FnMut(u32)) {
        match s {
            Scalar::Str(v) => {
                if let Some(list) = self.strings.get(v) {
                    list.iter().for_each(|t| out(*t));
                }
                if let Some(rare) = &self.rare {
                    if let Some(lower) = lower {
                        if let Some(list) = rare.ignore_case.get(lower) {
                            list.iter().for_each(|t| out(*t));
                        }
                        rare.prefix_ic.prefixes(lower, out);
                        rare.suffix_ic.suffixes(lower, out);
                    }
                    rare.prefix.prefixes(v, out);
                    rare.suffix.suffixes(v, out);
                    rare.wildcard.lookup(v, out);
                    if !rare.cidr.is_empty() {
                        rare.cidr.lookup(v, out);
                    }
                }
            }
            Scalar::Num(n) => {
                if let Some(list) = self.numbers.get(&n.key()) {
                    list.iter().for_each(|t| out(*t));
                }
                if let Some(rare) = &self.rare {
                    rare.ranges.lookup(n, out);
                }
            }
            Scalar::Bool(true) => self.trues.iter().for_each(|t| out(*t)),
            Scalar::Bool(false) => self.falses.iter().for_each(|t| out(*t)),
            Scalar::Null => self.nulls.iter().for_each(|t| out(*t)),
        }
        if let Some(rare) = &self.rare {
            for (m, t) in &rare.anything_but {
                if m.matches(s) {
                    out(*t);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Many two-sided ranges on one field (several blocks), with shared and
    /// inclusive/exclusive bounds, integers and floats: every lookup finds
    /// exactly the ranges that contain the value, before and after removals.
    #[test]
    fn two_sided_ranges_are_found_exactly_across_blocks() {
        let num = |x: f64| {
            if x.fract() == 0.0 {
                Num::Int(x as i128)
            } else {
                Num::Float(x)
            }
        };
        let mut ranges: Vec<(Range, u32)> = Vec::new();
        let mut seed = 7u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as u32
        };
        for t in 0..200u32 {
            let lo = f64::from(next() % 100) / 2.0;
            let hi = lo + f64::from(1 + next() % 30) / 2.0;
            ranges.push((
                Range {
                    lower: Some((num(lo), next() % 2 == 0)),
                    upper: Some((num(hi), next() % 2 == 0)),
                },
                t,
            ));
        }
        let mut index = Ranges::default();
        for (r, t) in &ranges {
            index.add(r, *t);
        }
        let check = |index: &Ranges, live: &[(Range, u32)]| {
            for v in -4..140 {
                let n = num(f64::from(v) / 2.0);
                let mut got = Vec::new();
                index.lookup(n, &mut |t| got.push(t));
                got.sort_unstable();
                let mut want: Vec<u32> = live
                    .iter()
                    .filter(|(r, _)| r.contains(n))
                    .map(|(_, t)| *t)
                    .collect();
                want.sort_unstable();
                assert_eq!(got, want, "value {v}/2");
            }
        };
        check(&index, &ranges);
        let (gone, kept): (Vec<_>, Vec<_>) = ranges.into_iter().partition(|(_, t)| t % 3 == 0);
        for (r, t) in &gone {
            index.remove(r, *t);
        }
        check(&index, &kept);
    }
}
