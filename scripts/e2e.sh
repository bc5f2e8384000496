#!/usr/bin/env bash
# `make e2e`: starts the local stack exactly as `make dev` does (scripts/dev.sh), on ports of
# its own and with a database of its own, runs the end-to-end tests (cli/tests/e2e.rs)
# against it, prints the latency report, and stops everything it started.
#
# Ports: API 3010, cargo lambda watch 9010, moto 5010, receiver 9110, Bedrock stand-in 9111
# (override with E2E_API_PORT, E2E_WATCH_PORT, E2E_MOTO_PORT, E2E_RECEIVER_PORT,
# E2E_BEDROCK_PORT). Set E2E_SKIP_LATENCY=1 to leave out the 1,000-event latency run, and
# E2E_LATENCY_EVENTS / E2E_LATENCY_RATE to change its size and pace (1,000 at 50/s);
# E2E_SKIP_FAULTS=1 to leave out the fault-injection run (E2E_FAULT_EVENTS, 1,000) and
# E2E_SKIP_SCHEMATHESIS=1 the generated requests (E2E_SCHEMATHESIS_EXAMPLES per operation).
#
# The stack runs with a short webhook retry schedule and queue visibility timeouts capped at
# 10 s, so that the retries and redeliveries the fault injection causes finish in minutes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)

export TRIGGERIQ_PORT="${E2E_API_PORT:-3010}"
export TRIGGERIQ_WATCH_PORT="${E2E_WATCH_PORT:-9010}"
export MOTO_PORT="${E2E_MOTO_PORT:-5010}"
export TRIGGERIQ_RECEIVER_PORT="${E2E_RECEIVER_PORT:-9110}"
export TRIGGERIQ_BEDROCK_PORT="${E2E_BEDROCK_PORT:-9111}"
export DATABASE_URL="${E2E_DATABASE_URL:-postgres://postgres:postgres@127.0.0.1:5432/triggeriq_e2e}"
export NO_COLOR=1

work=$(mktemp -d)
log="$root/.dev/e2e-stack.log"
mkdir -p "$root/.dev"
stack_pid=""

# shellcheck disable=SC2329 # run by the EXIT trap
stop_stack() {
  if [[ -n "$stack_pid" ]] && kill -0 "$stack_pid" 2>/dev/null; then
    echo "==> stopping the stack"
    # The group holds dev.sh and `triggeriq dev`; they stop cargo lambda watch and moto.
    kill -INT -- "-$stack_pid" 2>/dev/null || true
    for _ in $(seq 1 60); do
      kill -0 "$stack_pid" 2>/dev/null || break
      sleep 0.5
    done
    kill -KILL -- "-$stack_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap stop_stack EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A fresh database each run: no state (say, a demo trigger a sample edited) carries over.
# Only the default one on the local cluster: a database named by E2E_DATABASE_URL is left alone.
if [[ -z "${E2E_DATABASE_URL:-}" ]] && pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  su postgres -c "dropdb --if-exists --force '${DATABASE_URL##*/}'"
fi

echo "==> starting the stack (scripts/dev.sh; log $log)"
# A process group of its own (job control on for this one job), so that it can be stopped as
# a whole, as Ctrl-C stops `make dev`.
set -m
bash scripts/dev.sh --ready-file "$work/ready.json" \
  --function-env WEBHOOK_RETRY_SCHEDULE=1s,2s,4s,8s,15s,30s,60s \
  --parameter 'TimersSchedule=rate(2 seconds)' \
  --max-visibility-timeout 10s --no-reload >"$log" 2>&1 &
stack_pid=$!
set +m
# The first run builds every function: allow for it.
for _ in $(seq 1 1800); do
  [[ -s "$work/ready.json" ]] && break
  if ! kill -0 "$stack_pid" 2>/dev/null; then
    echo "the stack did not start; its log:" >&2
    tail -n 80 "$log" >&2
    exit 1
  fi
  sleep 1
done
[[ -s "$work/ready.json" ]] || { echo "the stack was not ready within 30 minutes" >&2; tail -n 80 "$log" >&2; exit 1; }
echo "==> stack ready: $(cat "$work/ready.json")"

export TRIGGERIQ_E2E_API="http://127.0.0.1:$TRIGGERIQ_PORT"
# What the stack started, and where (the functions' watch address is [::1] or 127.0.0.1).
export TRIGGERIQ_E2E_READY="$work/ready.json"
# What an operator's shell has when it creates tenants (README): the stack's table, signing key
# and emulator, so that `tenant create` makes and seals each tenant's first signing secret.
env_file=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["env_file"])' "$work/ready.json")
[[ "$env_file" == /* ]] || env_file="$root/$env_file"
set -a
# shellcheck disable=SC1090
source <(grep -E '^(TABLE_NAME|SIGNING_KEY_ID|AWS_[A-Z_]+)=' "$env_file")
set +a
# The stack's output: what `make dev` prints (the demo curl lines) and the demo receiver's lines.
export TRIGGERIQ_E2E_LOG="$log"
status=0
cargo test -p triggeriq-cli --test e2e -- --ignored --test-threads=1 --nocapture --skip latency_report --skip fault_injection_report || status=$?
# The latency run last and alone: the load it puts on the stack cannot disturb the others.
if ((status == 0)) && [[ -z "${E2E_SKIP_LATENCY:-}" ]]; then
  cargo test -p triggeriq-cli --test e2e -- --ignored --nocapture --exact latency_report || status=$?
fi
# Generated requests from openapi.yaml: no 5xx, every answer as described.
if ((status == 0)) && [[ -z "${E2E_SKIP_SCHEMATHESIS:-}" ]]; then
  echo "==> schemathesis against the stack"
  bin="${CARGO_TARGET_DIR:-$root/target}/debug/triggeriq"
  field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
  created=$("$bin" tenant create "schemathesis" --json)
  key=$(field api_key <<<"$created")
  tenant=$(field tenant_id <<<"$created")
  # The access cases: a read-only key of the same tenant, a key of another tenant, and a key
  # of a suspended tenant (never used before its suspension, so no cached answer lets it in).
  READ_KEY=$("$bin" api-key create --tenant "$tenant" --scope read --name read-only --json | field api_key)
  OTHER_KEY=$("$bin" tenant create "schemathesis-other" --json | field api_key)
  suspended=$("$bin" tenant create "schemathesis-suspended" --json)
  SUSPENDED_KEY=$(field api_key <<<"$suspended")
  "$bin" tenant suspend "$(field tenant_id <<<"$suspended")"
  export READ_KEY OTHER_KEY SUSPENDED_KEY
  scripts/schemathesis.sh "$TRIGGERIQ_E2E_API" "$key" "${E2E_SCHEMATHESIS_EXAMPLES:-80}" || status=$?
fi
# Faults last: they restart PostgreSQL and freeze moto under load.
if ((status == 0)) && [[ -z "${E2E_SKIP_FAULTS:-}" ]]; then
  cargo test -p triggeriq-cli --test e2e -- --ignored --nocapture --exact fault_injection_report || status=$?
fi
if ((status != 0)); then
  echo "==> the end-to-end tests failed; the stack's last lines:" >&2
  tail -n 60 "$log" >&2
fi
exit "$status"
