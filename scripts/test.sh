#!/usr/bin/env bash
# The test command (what CI runs): sets up whatever is missing (.venv, a PostgreSQL server, headless Chromium),
# then ruff and the whole suite on CPU. A part that cannot be installed stops it with one line, before any test
# runs, instead of skipping tests. Extra arguments go to pytest (e.g. `bash scripts/test.sh tests/store -x`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/setup-system.sh
PY=.venv/bin/python
"$PY" -m ruff check .
# Two pytest-xdist workers: tests/orchestrator (Ray clusters, timed trials, mostly waiting) runs on one of them in
# order while the other takes the rest (tests/conftest.py). TEST_WORKERS=0 runs all of it in one process.
"$PY" -m pytest -q -n "${TEST_WORKERS:-2}" "$@"
