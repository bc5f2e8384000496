#!/usr/bin/env bash
# Installs sqlx-cli (crates.io, cached under ~/.cache/triggeriq/tools) when it is missing: what
# `make migrate`, `make sqlx-check` and `make sqlx-prepare` (and so `make test`) run. Compiling it
# takes several minutes, once; `make dev` does not need it (`triggeriq dev` applies the
# migrations compiled into it). Safe to run again.
set -euo pipefail

tools="${TRIGGERIQ_TOOLS:-$HOME/.cache/triggeriq/tools}"
if [[ ! -x "$tools/bin/cargo-sqlx" ]]; then
  printf '==> %s\n' "installing sqlx-cli into $tools (a few minutes, once)"
  cargo install sqlx-cli --version 0.8.6 --locked --no-default-features --features postgres,rustls \
    --root "$tools" --quiet
fi
