#!/usr/bin/env bash
# `make dev`: runs the whole of TriggerIQ on this machine.
#
# Installs what is missing (scripts/setup.sh: no sqlx-cli), starts PostgreSQL and the AWS
# emulator (moto) unless they already run, builds the CLI and every function in one cargo build,
# then runs `triggeriq dev`, which creates the queues, table and bucket of template.yaml in moto,
# applies the migrations (compiled into it), keeps the demo tenant in place, starts
# `cargo lambda watch` and serves the API. Ctrl-C stops what
# this script started, and nothing else: a PostgreSQL or moto that was already running is left
# running.
#
# Ports (environment variables): TRIGGERIQ_PORT (API, 3000), TRIGGERIQ_WATCH_PORT (cargo
# lambda watch, 9000), MOTO_PORT (5000), TRIGGERIQ_RECEIVER_PORT (demo receiver, 9100),
# TRIGGERIQ_BEDROCK_PORT (Bedrock stand-in, 9101). Extra arguments go to `triggeriq dev`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)

say() { printf '==> %s\n' "$*"; }

export DATABASE_URL="${DATABASE_URL:-postgres://postgres:postgres@127.0.0.1:5432/triggeriq}"
moto_port="${MOTO_PORT:-5000}"
export MOTO_ENDPOINT="http://127.0.0.1:$moto_port"
export PATH="$root/.venv/bin:$PATH"
target="${CARGO_TARGET_DIR:-$root/target}"
# The queries are checked against the committed .sqlx data, not the database: on a first run
# the database has no schema until `triggeriq dev` migrates it. cargo lambda watch inherits this
# when it rebuilds a function you changed.
export SQLX_OFFLINE=true

started_postgres=""
moto_pid=""
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [[ -n "$moto_pid" ]] && kill -0 "$moto_pid" 2>/dev/null; then
    # moto runs in a process group of its own, whose id is its pid.
    kill -TERM -- "-$moto_pid" 2>/dev/null || true
    say "stopped moto (port $moto_port)"
  fi
  if [[ -n "$started_postgres" ]]; then
    pg_ctlcluster "$started_postgres" main stop 2>/dev/null && say "stopped PostgreSQL $started_postgres"
  fi
  exit "$status"
}
trap cleanup EXIT
# The API server gets the same Ctrl-C and shuts down on its own; we then clean up after it.
# Stopping is what Ctrl-C asks for, so it is a success (no "Error 130" from make).
trap 'exit 0' INT TERM

scripts/setup.sh

# --- PostgreSQL ----------------------------------------------------------------------------
pg_online() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
if ! pg_online; then
  versions=(/usr/lib/postgresql/*)
  started_postgres=$(printf '%s\n' "${versions[@]##*/}" | sort -V | tail -n 1)
  say "starting PostgreSQL $started_postgres (stopped again on exit)"
fi
scripts/postgres.sh >/dev/null

# --- moto ------------------------------------------------------------------------------------
moto_answers() {
  python3 - "$MOTO_ENDPOINT" <<'PY'
import sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1] + "/moto-api/", timeout=2) as r:
        sys.exit(0 if r.status == 200 else 1)
except Exception:
    sys.exit(1)
PY
}
if moto_answers; then
  say "moto already answers on $MOTO_ENDPOINT: using it (and leaving it running)"
elif (exec 3<>"/dev/tcp/127.0.0.1/$moto_port") 2>/dev/null; then
  echo "port $moto_port is in use by something that is not moto; set MOTO_PORT to a free port" >&2
  exit 1
else
  mkdir -p .dev
  # A process group of its own (job control on for this one job): Ctrl-C in the terminal does
  # not reach it, and cleanup stops the whole group.
  set -m
  bash scripts/moto.sh serve "$moto_port" >.dev/moto.log 2>&1 &
  moto_pid=$!
  set +m
  for _ in $(seq 1 60); do
    moto_answers && break
    kill -0 "$moto_pid" 2>/dev/null || { cat .dev/moto.log >&2; exit 1; }
    sleep 0.5
  done
  moto_answers || { echo "moto did not start; see .dev/moto.log" >&2; exit 1; }
  say "moto started on $MOTO_ENDPOINT (log .dev/moto.log)"
fi

# --- build -------------------------------------------------------------------------------------
# One cargo build of the whole workspace: the CLI and every function, with cargo's progress.
# Whole-workspace is what cargo lambda watch's `cargo run --bin <function>` and a later
# `cargo run --bin triggeriq` select, so neither finds anything left to compile (`make cli`).
functions=(functions/*/)
say "building the CLI and the ${#functions[@]} functions (the first time takes several minutes)"
started=$SECONDS
cargo build --workspace --bins
say "built in $((SECONDS - started)) s"

# --- run -------------------------------------------------------------------------------------
"$target/debug/triggeriq" dev --demo "$@"
