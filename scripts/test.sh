#!/usr/bin/env bash
# Set up .venv and run every check: lint, format, types, docs, and the three test suites
# (kernel side, server side, browser). Extra arguments go to each pytest run; a suite in which
# they select no test (pytest exit code 5, e.g. `-k NAME` matching only another suite's tests)
# counts as passed, but a run in which no suite ran any test fails.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup-env.sh dev
export PATH="$root/.venv/bin:$PATH"
# Kernels and servers started by the tests must not read the developer's own Jupyter config.
export JUPYTER_PLATFORM_DIRS=1
export NO_MKDOCS_2_WARNING=1

suites_run=0
suites_empty=0
# Run one pytest suite; exit code 5 ("no tests collected") is not a failure.
run_suite() {
  local code=0
  python -m pytest "$@" || code=$?
  if [ "$code" -eq 5 ]; then
    echo "(no tests selected in this suite)"
    suites_empty=$((suites_empty + 1))
    return 0
  fi
  suites_run=$((suites_run + 1))
  return "$code"
}

echo "== ruff"
ruff check .
ruff format --check .
echo "== mypy"
bash scripts/typecheck.sh
echo "== mkdocs build --strict"
mkdocs build --strict --quiet --site-dir "$(mktemp -d)"
echo "== kernel-side tests (anyio plugin: asyncio and trio)"
run_suite tests/kernel_side "$@"
if [ -n "$(find tests/server_side -name 'test_*.py' -print -quit)" ]; then
  echo "== server-side tests (pytest-jupyter)"
  run_suite -p no:anyio tests/server_side "$@"
fi
echo "== browser tests (JupyterLab in Debian's Chromium, Playwright)"
CHROMIUM="$(bash scripts/ensure-chromium.sh)"
export CHROMIUM
run_suite -p no:anyio tests/browser "$@"
if [ "$suites_run" -eq 0 ]; then
  echo "No test selected in any of the ${suites_empty} suites (check the -k / path arguments)." >&2
  exit 5
fi
