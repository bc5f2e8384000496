#!/usr/bin/env bash
# Installs what TriggerIQ's local stack (`make dev`) and tests need and is missing on this
# machine: PostgreSQL and curl (apt), a Python virtualenv at .venv with moto's server and
# cargo-lambda (PyPI). Seconds once cached. sqlx-cli, which only the .sqlx checks need and which
# takes minutes to compile, is scripts/sqlx-cli.sh's (`make test` runs both). Safe to run again.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf '==> %s\n' "$*"; }

# --- PostgreSQL -------------------------------------------------------------------------
if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  say "installing PostgreSQL from apt"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq postgresql >/dev/null
fi

# curl: the lines `make dev` prints use it, and the end-to-end test runs them.
if ! command -v curl >/dev/null 2>&1; then
  say "installing curl from apt"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq curl >/dev/null
fi

# --- Python tools -------------------------------------------------------------------------
# moto: the local DynamoDB/SQS/S3. cargo-lambda (with Zig) from PyPI: seconds, where
# `cargo install cargo-lambda` takes 13 minutes; don't mix the two (switching rebuilds).
PY_PACKAGES=("moto[server]==5.2.1" "cargo-lambda==1.9.2")
venv=.venv
stamp="$venv/.setup-packages"
if [[ ! -x "$venv/bin/python" ]]; then
  say "creating the Python virtualenv $venv"
  python3 -m venv "$venv"
fi
if [[ "$(cat "$stamp" 2>/dev/null)" != "${PY_PACKAGES[*]}" ]]; then
  say "installing ${PY_PACKAGES[*]}"
  "$venv/bin/python" -m pip install --quiet --no-cache-dir --disable-pip-version-check "${PY_PACKAGES[@]}"
  echo "${PY_PACKAGES[*]}" >"$stamp"
fi

say "setup done"
