#!/usr/bin/env bash
# The main job in one command: sets up whatever is missing (.venv with PyTorch and clowncar, the demo data),
# runs the demo sweep end to end (embedded Ray on 127.0.0.1, SQLite store in ./clowncar-runs), then prints the
# best trial, where the signal report is and the command that opens the live dashboard on the same store.
# Extra arguments go to `clowncar demo` (e.g. `bash scripts/demo.sh --quiet`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/clowncar demo "$@"
