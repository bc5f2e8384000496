#!/usr/bin/env bash
# Prints the arm64 deployment zip of every function (written by `make build`, i.e. cargo lambda
# build --output-format zip) against the 4 MB budget of issue 6. Exits non-zero when a function
# has no zip. Usage: tools/coldstart/zip-sizes.sh [TARGET_DIR]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
target="${1:-${CARGO_TARGET_DIR:-target}}"
budget=4000000
missing=0
printf '%-24s %14s %14s  %s\n' function "zip (arm64)" bootstrap "budget 4 MB"
for manifest in functions/*/Cargo.toml; do
  name="$(basename "$(dirname "$manifest")")"
  zip="$target/lambda/$name/bootstrap.zip"
  if [[ ! -f "$zip" ]]; then
    printf '%-24s %14s %14s  %s\n' "$name" - - "not built"
    missing=1
    continue
  fi
  zip_bytes="$(stat -c %s "$zip")"
  bin_bytes="$(unzip -Z -t "$zip" 2>/dev/null | awk '{print $3}')"
  verdict=ok
  if ((zip_bytes > budget)); then verdict=OVER; fi
  printf '%-24s %11.2f MB %11.2f MB  %s\n' "$name" \
    "$(awk "BEGIN{print $zip_bytes/1e6}")" "$(awk "BEGIN{print ${bin_bytes:-0}/1e6}")" "$verdict"
done
exit "$missing"
