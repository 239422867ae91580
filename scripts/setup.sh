#!/usr/bin/env bash
# One set-up command: a virtual environment in .venv with PyTorch and clowncar (editable) plus the dev tools.
# TORCH_SPEC picks the PyTorch build (default torch==2.13.0, the CPU wheel on our CI machines; on a GPU
# machine use e.g. TORCH_SPEC="torch==2.13.0" with the CUDA index, then `pip install -e '.[gpu]'`).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch first: the project's own requirement (torch>=2.5) is then already met and pulls no other build.
.venv/bin/python -m pip install -q "$TORCH_SPEC"
.venv/bin/python -m pip install -q -e ".[dev]"
.venv/bin/clowncar --help >/dev/null
echo "clowncar is installed in .venv: run '. .venv/bin/activate' and then 'clowncar --help'."
