#!/usr/bin/env bash
# The test command (what CI runs): lint, then the whole suite on CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
"$PY" -m ruff check .
"$PY" -m pytest -q "$@"
