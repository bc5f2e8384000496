//! `cargo bench -p triggeriq --no-default-features --bench pattern_match`
//!
//! TriggerIQ's `PatternSet` at 10, 100, 1,000 and 10,000 mixed patterns on
//! ~1 KB events, and quamina 0.7 on the same events with the patterns it
//! supports. Prints a summary table (events/s,
//! ratios, matches per event, disagreements with the reference interpreter)
//! after the criterion runs, then the growth of the cost with patterns that
//! add no matches.
//!
//! Sections, chosen with `PATTERN_BENCH` (comma-separated; all by default):
//! `match` (the above) and `or` (the costliest `$or` expansion the limits
//! allow: its size, compile time and memory, and the reference
//! interpreter's and the set's time on it).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use quamina::{Quamina, QuaminaBuilder};
use serde_json::{Value, json};
use triggeriq::pattern::{DEFAULT_MATCH_STEPS, MatchError, Pattern, PatternLimits, PatternSet};

/// Counts live and peak heap bytes, so that the `or` section can report the
/// memory a compile takes (peak) and keeps (live after). Two relaxed atomic
/// adds per allocation; matching allocates only its result, so the timed
/// sections are not affected measurably.
struct CountingAlloc;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(bytes: usize) {
    let now = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to the system allocator unchanged; the
// counters only observe sizes.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Runs `f`; returns its result, the heap bytes it still holds when done
/// (what it returned, mostly) and the peak above the starting point.
fn measure_heap<T>(f: impl FnOnce() -> T) -> (T, usize, usize) {
    let start = LIVE.load(Ordering::Relaxed);
    PEAK.store(start, Ordering::Relaxed);
    let out = f();
    let live = LIVE.load(Ordering::Relaxed).saturating_sub(start);
    let peak = PEAK.load(Ordering::Relaxed).saturating_sub(start);
    (out, live, peak)
}

/// Whether `PATTERN_BENCH` selects `section` (all sections when unset).
fn selected(section: &str) -> bool {
    std::env::var("PATTERN_BENCH").map_or(true, |v| v.split(',').any(|s| s.trim() == section))
}

const SIZES: [usize; 4] = [10, 100, 1_000, 10_000];
const EVENTS: usize = 2_000;
/// quamina panics on the first match after ~256 patterns share a field with
/// numeric/anything-but (BENCHMARKS.md); its sets keep at most this many of
/// each such template.
const QUAMINA_RISKY_CAP: usize = 200;

struct Setup {
    n: usize,
    ours: PatternSet<usize>,
    /// Our set restricted to the patterns quamina gets, for a like-for-like ratio.
    ours_subset: PatternSet<usize>,
    quamina: Quamina<usize>,
    quamina_ids: Vec<usize>,
    quamina_build: Duration,
    patterns: Vec<Pattern>,
}

fn setup(n: usize, events: &[Vec<u8>]) -> Setup {
    let generated = common::patterns(n, 42);
    let limits = PatternLimits::default();
    let patterns: Vec<Pattern> = generated
        .iter()
        .map(|g| Pattern::parse_with(&g.json, &limits).expect("generated patterns are valid"))
        .collect();
    let mut ours = PatternSet::new();
    for (i, p) in patterns.iter().enumerate() {
        ours.insert(i, p).expect("within limits");
    }
    // quamina: supported patterns only, risky templates capped, anything-but last.
    let mut per_template = [0usize; common::TEMPLATES];
    let mut chosen: Vec<usize> = Vec::new();
    for (i, g) in generated.iter().enumerate() {
        if !g.quamina {
            continue;
        }
        if g.quamina_risky {
            if per_template[g.template] >= QUAMINA_RISKY_CAP {
                continue;
            }
            per_template[g.template] += 1;
        }
        chosen.push(i);
    }
    chosen.sort_by_key(|i| generated[*i].anything_but);
    // Its default 10 MiB automaton budget is too small for the larger sets.
    let mut quamina: Quamina<usize> = QuaminaBuilder::new()
        .with_arena_byte_budget(4 << 30)
        .build()
        .expect("quamina builder");
    let mut ours_subset = PatternSet::new();
    for i in &chosen {
        quamina
            .add_pattern(*i, &generated[*i].json)
            .expect("quamina accepts the pattern");
        ours_subset
            .insert(*i, &patterns[*i])
            .expect("within limits");
    }
    let start = Instant::now();
    let _ = quamina.matches_for_event(&events[0]);
    let quamina_build = start.elapsed();
    Setup {
        n,
        ours,
        ours_subset,
        quamina,
        quamina_ids: chosen,
        quamina_build,
        patterns,
    }
}

fn quamina_events(n: usize) -> usize {
    match n {
        0..=100 => EVENTS,
        101..=1_000 => 500,
        _ => 100,
    }
}

fn bench(c: &mut Criterion) {
    let events = common::events(EVENTS, 7);
    let avg = events.iter().map(Vec::len).sum::<usize>() / events.len();
    println!("corpus: {} events, {avg} bytes on average", events.len());
    if selected("or") {
        or_worst_case();
    }
    if !selected("match") {
        return;
    }
    let setups: Vec<Setup> = SIZES.iter().map(|n| setup(*n, &events)).collect();

    let mut group = c.benchmark_group("triggeriq");
    group.throughput(Throughput::Elements(events.len() as u64));
    for s in &setups {
        group.bench_with_input(BenchmarkId::from_parameter(s.n), &s.ours, |b, set| {
            b.iter(|| {
                for e in &events {
                    black_box(set.matches(e).expect("valid"));
                }
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("quamina");
    for s in &setups {
        let batch = &events[..quamina_events(s.n)];
        group.throughput(Throughput::Elements(batch.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(s.n), &s.quamina, |b, q| {
            b.iter(|| {
                for e in batch {
                    black_box(q.matches_for_event(e).expect("valid"));
                }
            })
        });
    }
    group.finish();

    summary(&setups, &events);
}

/// Best-of-5 events per second.
fn rate(events: &[Vec<u8>], mut f: impl FnMut(&[u8])) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        for e in events {
            f(e);
        }
        best = best.min(start.elapsed().as_secs_f64());
    }
    events.len() as f64 / best
}

fn summary(setups: &[Setup], events: &[Vec<u8>]) {
    println!();
    println!("=== pattern matching, one core, ~1 KB events ===");
    println!(
        "{:>7} | {:>14} | {:>9} | {:>14} | {:>14} | {:>7} | {:>10} | {:>11}",
        "pattern",
        "triggeriq ev/s",
        "ns/event",
        "same subset",
        "quamina ev/s",
        "ratio",
        "matches/ev",
        "quamina set"
    );
    let values: Vec<Value> = events
        .iter()
        .take(200)
        .map(|e| serde_json::from_slice(e).expect("json"))
        .collect();
    let mut ns_at = Vec::new();
    for s in setups {
        let ours = rate(events, |e| {
            black_box(s.ours.matches(e).expect("valid"));
        });
        let subset = rate(events, |e| {
            black_box(s.ours_subset.matches(e).expect("valid"));
        });
        let qbatch = &events[..quamina_events(s.n)];
        let quamina = rate(qbatch, |e| {
            black_box(s.quamina.matches_for_event(e).expect("valid"));
        });
        let matches: usize = events
            .iter()
            .map(|e| s.ours.matches(e).map(|m| m.len()).unwrap_or(0))
            .sum();
        ns_at.push(1e9 / ours);
        println!(
            "{:>7} | {:>14.0} | {:>9.0} | {:>14.0} | {:>14.0} | {:>6.1}x | {:>10.2} | {:>5} (+{:.0} ms build)",
            s.n,
            ours,
            1e9 / ours,
            subset,
            quamina,
            subset / quamina,
            matches as f64 / events.len() as f64,
            s.quamina_ids.len(),
            s.quamina_build.as_secs_f64() * 1e3
        );
        check(s, &values, events);
    }
    if let (Some(first), Some(last)) = (ns_at.first(), ns_at.last()) {
        println!(
            "per-event cost at 10,000 / at 10 (mixed set): {:.2}x",
            last / first
        );
    }

    // Cost growth with the number of patterns alone: the 10-pattern mixed
    // set plus patterns that match nothing in the corpus.
    println!();
    println!("=== growth with patterns that add no matches ===");
    let base = common::patterns(10, 42);
    let filler = common::non_matching_patterns(10_000, 99);
    let sets: Vec<(usize, PatternSet<usize>)> = [0usize, 90, 990, 9_990]
        .iter()
        .map(|extra| {
            let mut set = PatternSet::new();
            for (i, g) in base.iter().enumerate() {
                set.insert(i, &Pattern::parse(&g.json).expect("valid"))
                    .expect("insert");
            }
            for (i, f) in filler.iter().take(*extra).enumerate() {
                set.insert(1_000 + i, &Pattern::parse(f).expect("valid"))
                    .expect("insert");
            }
            (10 + extra, set)
        })
        .collect();
    // Interleaved rounds, best of each, so that a burst of load on a shared
    // machine does not land on one size only.
    let mut best = vec![f64::MAX; sets.len()];
    for _ in 0..7 {
        for (k, (_, set)) in sets.iter().enumerate() {
            let start = Instant::now();
            for e in events {
                black_box(set.matches(e).expect("valid"));
            }
            best[k] = best[k].min(start.elapsed().as_secs_f64() / events.len() as f64);
        }
    }
    for (k, (n, _)) in sets.iter().enumerate() {
        println!(
            "{:>6} patterns: {:>10.0} events/s, {:>6.0} ns/event, {:.2}x the 10-pattern cost",
            n,
            1.0 / best[k],
            best[k] * 1e9,
            best[k] / best[0],
        );
    }
}

/// The leaf whose copies a `$or` expansion multiplies.
#[derive(Clone, Copy, Debug)]
enum BigLeaf {
    /// `[0, 0, …]`: many exact values.
    Exact,
    /// `[{"anything-but": [0, 0, …, 1]}]`: one matcher with a long list.
    AnythingBut,
    /// `["xxx…"]`: one long string.
    LongString,
}

fn letter(i: usize) -> String {
    char::from(b'a' + (i % 25) as u8).to_string()
}

/// `fields` sibling fields, each a `ways`-way `$or` (`ways^fields` clauses),
/// beside a root leaf `z` of `n` values (or one string of `n` characters),
/// which expansion repeats in every clause.
fn or_shape(big: BigLeaf, fields: usize, ways: usize, n: usize) -> String {
    let mut obj = serde_json::Map::new();
    for f in 0..fields {
        let alternatives: Vec<Value> = (0..ways).map(|w| json!({ letter(w): [0] })).collect();
        obj.insert(letter(f), json!({ "$or": alternatives }));
    }
    let mut zeros = vec![json!(0); n];
    let leaf = match big {
        BigLeaf::Exact => Value::Array(zeros),
        // Ending in 1, which the event holds, so that refusing it takes a
        // scan of the whole list.
        BigLeaf::AnythingBut => {
            if let Some(last) = zeros.last_mut() {
                *last = json!(1);
            }
            json!([{ "anything-but": zeros }])
        }
        BigLeaf::LongString => json!(["x".repeat(n)]),
    };
    obj.insert("z".into(), leaf);
    Value::Object(obj).to_string()
}

/// The largest `n` that keeps the pattern within `max_chars`.
fn or_size_that_fits(big: BigLeaf, fields: usize, ways: usize, max_chars: usize) -> usize {
    let one = or_shape(big, fields, ways, 1).len();
    let per_unit = match big {
        BigLeaf::Exact | BigLeaf::AnythingBut => 2,
        BigLeaf::LongString => 1,
    };
    1 + max_chars.saturating_sub(one) / per_unit
}

/// An event that satisfies every alternative of every `$or` and holds
/// `values` ones at `z`, which its leaf refuses (no exact zero or long
/// string matches them; the anything-but list excludes them, at its end):
/// every clause is tried to its end, and the automaton reaches every
/// clause's last state.
fn or_event(fields: usize, ways: usize, values: usize) -> Vec<u8> {
    let mut obj = serde_json::Map::new();
    for f in 0..fields {
        let all: serde_json::Map<String, Value> =
            (0..ways).map(|w| (letter(w), json!(0))).collect();
        obj.insert(letter(f), Value::Object(all));
    }
    obj.insert("z".into(), Value::Array(vec![json!(1); values]));
    serde_json::to_vec(&Value::Object(obj)).expect("serialise")
}

fn best_of<T>(n: usize, mut f: impl FnMut() -> T) -> Duration {
    (0..n)
        .map(|_| {
            let start = Instant::now();
            black_box(f());
            start.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}

/// The costliest `$or` expansions the default limits allow. Five 4-way
/// `$or`s make 1,024 clauses (the clause limit) in the fewest characters;
/// two make 16 and one 8-way one makes 8, leaving more room for the root
/// leaf `z`, which fills the rest of the 4,096 characters and is repeated in
/// every clause. For each: its expanded size, what compiling it costs (time,
/// and heap through the counting allocator: peak while compiling, kept
/// after), and the time of the reference interpreter and of the set on an
/// event that drives every clause to its end. When validation refuses the
/// full shape, the same follows for the largest `z` it accepts.
fn or_worst_case() {
    println!();
    println!("=== the costliest $or expansions under the default limits ===");
    let limits = PatternLimits::default();
    // The set's own memory estimate against the heap it keeps, on the mixed
    // corpus's patterns.
    let mixed: Vec<Pattern> = common::patterns(1_000, 42)
        .iter()
        .map(|g| Pattern::parse(&g.json).expect("valid"))
        .collect();
    let (set, kept, _) = measure_heap(|| {
        let mut set = PatternSet::new();
        for (i, p) in mixed.iter().enumerate() {
            set.insert(i, p).expect("within limits");
        }
        set
    });
    println!(
        "1,000 mixed patterns: PatternSet keeps {:.2} MiB, estimates {:.2} MiB; cost() {}",
        mib(kept),
        mib(set.approx_bytes()),
        set.cost()
    );
    for (fields, ways) in [(5, 4), (2, 4), (1, 8)] {
        for big in [BigLeaf::Exact, BigLeaf::AnythingBut, BigLeaf::LongString] {
            or_case(big, fields, ways, limits.max_chars);
        }
    }
}

fn or_case(big: BigLeaf, fields: usize, ways: usize, max_chars: usize) {
    let clauses = ways.pow(fields as u32);
    let full = or_size_that_fits(big, fields, ways, max_chars);
    let mut n = full;
    let text = or_shape(big, fields, ways, n);
    let pattern = match Pattern::parse(&text) {
        Ok(p) => p,
        Err(e) => {
            let refused_in = best_of(3, || Pattern::parse(&text));
            println!(
                "{big:?} z, {clauses} clauses, n = {n} ({} chars): refused in {:.1} us at {}",
                text.len(),
                refused_in.as_secs_f64() * 1e6,
                e.errors[0].path,
            );
            // The largest z that validation accepts.
            let (mut lo, mut hi) = (0, full);
            while lo < hi {
                let mid = (lo + hi).div_ceil(2);
                if Pattern::parse(&or_shape(big, fields, ways, mid)).is_ok() {
                    lo = mid;
                } else {
                    hi = mid - 1;
                }
            }
            n = lo;
            match Pattern::parse(&or_shape(big, fields, ways, n)) {
                Ok(p) => p,
                Err(e) => {
                    println!("        no z accepted: {}", e.errors[0]);
                    return;
                }
            }
        }
    };
    let text = or_shape(big, fields, ways, n);
    let per_clause = match big {
        BigLeaf::Exact | BigLeaf::AnythingBut => fields + n,
        BigLeaf::LongString => fields + 1,
    };
    let (_, pattern_live, pattern_peak) = measure_heap(|| Pattern::parse(&text));
    let parse = best_of(5, || Pattern::parse(&text));
    let insert = || {
        let mut set = PatternSet::new();
        set.insert(0u32, &pattern).expect("within the set's limits");
        set
    };
    let (set, set_live, set_peak) = measure_heap(insert);
    let insert_time = best_of(5, insert);
    println!(
        "{big:?} z, {clauses} clauses, n = {n} ({} chars): expands to {clauses} x {per_clause} = {} values (cost() {})",
        text.len(),
        clauses * per_clause,
        pattern.cost(),
    );
    println!(
        "        Pattern::parse {:>8.2} ms, peak {:>6.1} MiB, keeps {:>6.2} MiB | PatternSet::insert {:>8.2} ms, peak {:>6.1} MiB, keeps {:>6.2} MiB (estimate {:.2} MiB)",
        parse.as_secs_f64() * 1e3,
        mib(pattern_peak),
        mib(pattern_live),
        insert_time.as_secs_f64() * 1e3,
        mib(set_peak),
        mib(set_live),
        mib(set.approx_bytes()),
    );
    // Every clause is tried to its end, so the costs are linear in the
    // values at z: each is timed on 64 values, then on a 256 KB event
    // (131,072 values) when that is predicted to take under 10 s.
    let small = or_event(fields, ways, 64);
    let large = or_event(fields, ways, 131_072);
    let scale = 131_072.0 / 64.0;
    // `bounded` runs stop on their own, so they always run at 256 KB.
    let run = |name: &str, bounded: bool, f: &dyn Fn(&[u8]) -> String| {
        let at_small = best_of(1, || f(&small)).as_secs_f64();
        let predicted = at_small * scale;
        let at_large = if bounded || predicted < 10.0 {
            let start = Instant::now();
            let answer = f(&large);
            format!("{:.3} s ({answer})", start.elapsed().as_secs_f64())
        } else {
            format!("~{predicted:.0} s (scaled, not run)")
        };
        println!(
            "        {name}: {:.2} ms with 64 values at z; 256 KB event: {at_large}",
            at_small * 1e3,
        );
    };
    run("interpreter, unbounded", false, &|e| {
        pattern.matches(e).expect("json").to_string()
    });
    run("interpreter, DEFAULT_MATCH_STEPS", true, &|e| match pattern
        .matches_within(e, DEFAULT_MATCH_STEPS)
    {
        Ok(answer) => answer.to_string(),
        Err(MatchError::TooExpensive { .. }) => "too expensive".to_owned(),
        Err(MatchError::Event(e)) => e.to_string(),
    });
    run("PatternSet::matches", false, &|e| {
        format!("{} ids", set.matches(e).expect("json").len())
    });
}

/// Compares both matchers with the reference interpreter on a sample.
fn check(s: &Setup, values: &[Value], events: &[Vec<u8>]) {
    let sample = if s.n >= 10_000 { 50 } else { values.len() };
    let mut ours_wrong = 0;
    let mut quamina_wrong = 0;
    let mut example = None;
    for (v, e) in values.iter().zip(events).take(sample) {
        let expected: Vec<usize> = (0..s.patterns.len())
            .filter(|i| s.patterns[*i].matches_value(v))
            .collect();
        let mut got = s.ours.matches(e).expect("valid");
        got.sort_unstable();
        if got != expected {
            ours_wrong += 1;
        }
        let mut want_q: Vec<usize> = s
            .quamina_ids
            .iter()
            .copied()
            .filter(|i| s.patterns[*i].matches_value(v))
            .collect();
        want_q.sort_unstable();
        let mut got_q = s.quamina.matches_for_event(e).expect("valid");
        got_q.sort_unstable();
        if got_q != want_q {
            quamina_wrong += 1;
            if example.is_none() {
                let extra: Vec<&usize> = got_q.iter().filter(|i| !want_q.contains(i)).collect();
                let missing: Vec<&usize> = want_q.iter().filter(|i| !got_q.contains(i)).collect();
                let show =
                    |ids: &[&usize]| ids.first().map(|i| s.patterns[**i].as_value().to_string());
                example = Some(format!(
                    "quamina extra {:?} e.g. {:?}; missing {:?} e.g. {:?}",
                    extra.len(),
                    show(&extra),
                    missing.len(),
                    show(&missing)
                ));
            }
        }
    }
    println!(
        "        disagreements with the reference interpreter over {sample} events: triggeriq {ours_wrong}, quamina {quamina_wrong}"
    );
    if let Some(x) = example {
        println!("        {x}");
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
