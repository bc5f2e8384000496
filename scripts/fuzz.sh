#!/usr/bin/env bash
# `make fuzz`: the libFuzzer targets of fuzz/ for a bounded time each (FUZZ_SECONDS, 60 by
# default), on the stable toolchain (no cargo-fuzz needed): pattern_parse and pattern_match
# (the pattern engine), request_json (the one JSON rule and the ingest body reader). Corpora
# are seeded from the recorded EventBridge cases and kept in fuzz/corpus (git-ignored), so a
# later run goes on from where the last one stopped. A crash fails the run and leaves its
# input in fuzz/artifacts.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../fuzz"
seconds="${FUZZ_SECONDS:-60}"
target="$(rustc -vV | sed -n 's/^host: //p')"
# Built where cargo puts it: CARGO_TARGET_DIR when set (CI keeps one under ~/.cache), else fuzz/target.
out_dir="${CARGO_TARGET_DIR:-$PWD/target}/$target/release"

echo "==> building the fuzz targets (release, coverage instrumentation)"
RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
  -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
  -Cllvm-args=-sanitizer-coverage-trace-compares" \
  cargo build --release --target "$target" --quiet

python3 - <<'PY'
import json, os
os.makedirs("corpus/pattern_parse", exist_ok=True)
os.makedirs("corpus/pattern_match", exist_ok=True)
os.makedirs("corpus/request_json", exist_ok=True)
for i, line in enumerate(open("../shared/tests/data/conformance/eventbridge-patterns.jsonl")):
    c = json.loads(line)
    p, e = json.dumps(c["pattern"]).encode(), json.dumps(c["event"]).encode()
    open(f"corpus/pattern_parse/case{i}", "wb").write(p)
    open(f"corpus/pattern_match/case{i}", "wb").write(p + b"\xff" + e)
    open(f"corpus/request_json/case{i}", "wb").write(json.dumps({"events": [c["event"]]}).encode())
for name in os.listdir("../events"):
    if name.endswith(".json"):
        body = json.load(open(f"../events/{name}")).get("body")
        if isinstance(body, str):
            open(f"corpus/request_json/sample-{name}", "w").write(body)
PY

mkdir -p artifacts
for t in pattern_parse pattern_match request_json; do
  echo "==> fuzzing $t for ${seconds}s"
  out=$("$out_dir/$t" "corpus/$t" -max_total_time="$seconds" -max_len=8192 \
        -artifact_prefix="artifacts/$t-" -print_final_stats=1 2>&1) || { echo "$out" | tail -40; exit 1; }
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' <<<"$out" | grep -o '[0-9]*$' || echo "?")
  echo "    $t: $runs inputs in ${seconds}s, no failure"
done
