#!/usr/bin/env bash
# The wheels a lent GPU machine lacks, for benchmarks/gpu_session.sh (which installs ./.whl/*.whl there).
# Its image ('cuda': Python 3.12, torch, triton, numpy, sentencepiece, typer, pyyaml, pandas, transformers, einops)
# has no pydantic (nor pydantic's own needs), no zstandard and no flash-linear-attention. The pydantic stack and
# zstandard are fetched at the versions this checkout's .venv runs, so the GPU runs the code the tests passed on.
#   bash scripts/gpu_wheels.sh          # then: device tool, carry [".whl"]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
FLA_VERSION=${FLA_VERSION:-0.6.0}
version() { "$PY" -c "import importlib.metadata as m; print(m.version('$1'))"; }
pins=()
for pkg in pydantic pydantic_core annotated-types typing-inspection zstandard; do
  pins+=("$pkg==$(version "$pkg")")
done
pins+=("flash-linear-attention==$FLA_VERSION" "fla-core==$FLA_VERSION")
rm -rf .whl && mkdir .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl "${pins[@]}"
ls .whl
du -sh .whl
