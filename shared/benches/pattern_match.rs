//! `cargo bench -p triggeriq --no-default-features --bench pattern_match`
//!
//! TriggerIQ's `PatternSet` at 10, 100, 1,000 and 10,000 mixed patterns on
//! ~1 KB events — validating each event (`matches`) and trusting events
//! validated at ingest (`matches_trusted`) — and quamina 0.7 on the same
//! events with the patterns it supports. Prints a summary table (events/s,
//! ratios, matches per event, disagreements with the reference interpreter)
//! after the criterion runs, then the growth of the cost with patterns that
//! add no matches.

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use quamina::{Quamina, QuaminaBuilder};
use serde_json::Value;
use triggeriq::pattern::{Pattern, PatternLimits, PatternSet};

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

    let mut group = c.benchmark_group("triggeriq_trusted");
    group.throughput(Throughput::Elements(events.len() as u64));
    for s in &setups {
        group.bench_with_input(BenchmarkId::from_parameter(s.n), &s.ours, |b, set| {
            b.iter(|| {
                for e in &events {
                    black_box(set.matches_trusted(e).expect("valid"));
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
        "{:>7} | {:>14} | {:>9} | {:>14} | {:>9} | {:>14} | {:>14} | {:>7} | {:>10} | {:>11}",
        "pattern",
        "triggeriq ev/s",
        "ns/event",
        "trusted ev/s",
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
    let mut trusted_ns_at = Vec::new();
    for s in setups {
        let ours = rate(events, |e| {
            black_box(s.ours.matches(e).expect("valid"));
        });
        let trusted = rate(events, |e| {
            black_box(s.ours.matches_trusted(e).expect("valid"));
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
        trusted_ns_at.push(1e9 / trusted);
        println!(
            "{:>7} | {:>14.0} | {:>9.0} | {:>14.0} | {:>9.0} | {:>14.0} | {:>14.0} | {:>6.1}x | {:>10.2} | {:>5} (+{:.0} ms build)",
            s.n,
            ours,
            1e9 / ours,
            trusted,
            1e9 / trusted,
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
    if let (Some(first), Some(last)) = (trusted_ns_at.first(), trusted_ns_at.last()) {
        println!(
            "per-event cost at 10,000 / at 10 (mixed set, trusted): {:.2}x",
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
    let mut best_trusted = vec![f64::MAX; sets.len()];
    for _ in 0..7 {
        for (k, (_, set)) in sets.iter().enumerate() {
            let start = Instant::now();
            for e in events {
                black_box(set.matches(e).expect("valid"));
            }
            best[k] = best[k].min(start.elapsed().as_secs_f64() / events.len() as f64);
            let start = Instant::now();
            for e in events {
                black_box(set.matches_trusted(e).expect("valid"));
            }
            best_trusted[k] =
                best_trusted[k].min(start.elapsed().as_secs_f64() / events.len() as f64);
        }
    }
    for (k, (n, _)) in sets.iter().enumerate() {
        println!(
            "{:>6} patterns: {:>10.0} events/s, {:>6.0} ns/event, {:.2}x the 10-pattern cost | trusted {:>10.0} events/s, {:>6.0} ns/event, {:.2}x",
            n,
            1.0 / best[k],
            best[k] * 1e9,
            best[k] / best[0],
            1.0 / best_trusted[k],
            best_trusted[k] * 1e9,
            best_trusted[k] / best_trusted[0]
        );
    }
}

/// Compares both matchers with the reference interpreter on a sample.
fn check(s: &Setup, values: &[Value], events: &[Vec<u8>]) {
    let sample = if s.n >= 10_000 { 50 } else { values.len() };
    let mut ours_wrong = 0;
    let mut trusted_wrong = 0;
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
        let mut got = s.ours.matches_trusted(e).expect("valid");
        got.sort_unstable();
        if got != expected {
            trusted_wrong += 1;
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
        "        disagreements with the reference interpreter over {sample} events: triggeriq {ours_wrong} (trusted {trusted_wrong}), quamina {quamina_wrong}"
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
