# TriggerIQ: `make dev` runs it locally, `make test` runs every check CI runs.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

export DATABASE_URL ?= postgres://postgres:postgres@127.0.0.1:5432/triggeriq
TOOLS ?= $(HOME)/.cache/triggeriq/tools
SQLX := PATH="$(TOOLS)/bin:$$PATH" cargo sqlx

.PHONY: fuzz help setup sqlx-cli services dev cli e2e test fmt-check no-openssl ring-only clippy sqlx-check sqlx-prepare unit lint-infra build coldstart migrate

help:
	@echo "make dev          run TriggerIQ locally (Ctrl-C stops it)"
	@echo "make cli          build the triggeriq CLI as make dev does (cargo run --bin triggeriq then starts at once)"
	@echo "make e2e          start the local stack, run the end-to-end tests, stop it"
	@echo "make test         everything CI checks: fmt, clippy, .sqlx freshness, tests, infra lint"
	@echo "make build        release arm64 zips of every function (cargo lambda), with their sizes"
	@echo "make coldstart    cold-start table: every function against hello-world Lambdas"
	@echo "make sqlx-prepare refresh .sqlx/ after changing a query"

# PostgreSQL, curl, .venv with moto and cargo-lambda: what `make dev` needs.
setup:
	scripts/setup.sh

# sqlx-cli: only the .sqlx checks and `make migrate` use it (minutes to compile, once).
sqlx-cli: setup
	scripts/sqlx-cli.sh

# Postgres (and, with the pipeline, the AWS emulator) on 127.0.0.1.
services: setup
	scripts/postgres.sh >/dev/null

migrate: services sqlx-cli
	$(SQLX) migrate run --source shared/migrations

# scripts/dev.sh installs what is missing (not sqlx-cli), starts Postgres and moto when they are
# not running (and stops them again on Ctrl-C), builds everything and runs `triggeriq dev`,
# which applies the migrations itself.
dev:
	scripts/dev.sh

# The CLI and the functions in one cargo build of the whole workspace, as `make dev` builds them:
# `cargo run --bin triggeriq` (and cargo lambda watch's `cargo run --bin <function>`) select the
# whole workspace too, so they find everything built and start at once. (`-p triggeriq-cli`
# would select other features and rebuild.)
cli:
	SQLX_OFFLINE=true cargo build --workspace --bins

# The fuzz targets for FUZZ_SECONDS each (60 by default), on the stable toolchain.
fuzz:
	scripts/fuzz.sh

# The same stack on ports of its own, the end-to-end tests against it, then everything stopped.
e2e:
	scripts/e2e.sh

fmt-check:
	cargo fmt --all -- --check

clippy:
	SQLX_OFFLINE=true cargo clippy --workspace --all-targets -- -D warnings

# Fails when a query changed without `make sqlx-prepare`.
sqlx-check: migrate
	$(SQLX) prepare --workspace --check -- --all-targets

sqlx-prepare: migrate
	$(SQLX) prepare --workspace -- --all-targets

unit: migrate
	SQLX_OFFLINE=true cargo test --workspace

lint-infra:
	scripts/lint-infra.sh

# rustls only: OpenSSL must not appear anywhere in the dependency graph.
no-openssl:
	@if cargo tree --workspace --target all -e normal,build,dev -i openssl-sys >/dev/null 2>&1; then \
	  echo "openssl-sys is in the dependency tree:"; cargo tree --workspace --target all -i openssl-sys; exit 1; fi
	@echo "no openssl-sys"

# One crypto library in the functions: ring (sqlx, triggeriq::tls). aws-lc must not reach them
# (only the CLI's reqwest has it, and the functions are built without the CLI).
# Fails closed: anything but cargo's "did not match" answer (aws-lc-rs absent) is a failure.
ring-only:
	@for f in $(FUNCTIONS); do \
	  out=$$(cargo tree -p $$f -e normal -i aws-lc-rs 2>&1 || true); \
	  if ! grep -q 'did not match any packages' <<<"$$out"; then \
	    echo "$$f links aws-lc-rs (or cargo tree failed):"; echo "$$out"; exit 1; fi; done
	@echo "functions link ring only"

test: fmt-check no-openssl ring-only clippy sqlx-check unit lint-infra
	@echo "all checks passed"

# The function crates (package name = directory name). `build` and `coldstart` name them one by
# one: a plain workspace build would also build the CLI and the harness and unify their cargo
# features (the AWS credential chain, SSO) into every function.
FUNCTIONS := $(sort $(patsubst functions/%/Cargo.toml,%,$(wildcard functions/*/Cargo.toml)))
BUILD_DIR := $(or $(CARGO_TARGET_DIR),target)

# arm64 zips in $(BUILD_DIR)/lambda/<function>/bootstrap.zip, then their sizes against the budget.
build: setup
	SQLX_OFFLINE=true PATH="$(CURDIR)/.venv/bin:$$PATH" \
	  cargo lambda build --release --arm64 --output-format zip $(addprefix -p ,$(FUNCTIONS))
	tools/coldstart/zip-sizes.sh "$(BUILD_DIR)"

# Release builds for this machine (the functions as `build` builds them, then the harness and its
# hello worlds with the same profile), then the cold-start table (tools/coldstart). Not part of
# `make test`: release builds with LTO take many minutes. Run `make build` first for the zip column.
coldstart:
	SQLX_OFFLINE=true cargo build --release $(addprefix -p ,$(FUNCTIONS))
	SQLX_OFFLINE=true cargo build --release -p coldstart
	"$(BUILD_DIR)/release/coldstart" run --repo . --target-dir "$(BUILD_DIR)"
