#!/usr/bin/env bash
# The model's device checks in one go: CUDA tests (FLA vs PyTorch DeltaNet in bf16, causality on CUDA), then
# both benchmarks on CUDA, including the `clowncar` preset at seq 2048 compiled. Needs pydantic and,
# for the FLA checks, flash-linear-attention: if ./.whl holds wheels (see the model report for the
# `pip download` line) they are installed into /tmp/site first. Output: stdout and $OUT/gpu_check.txt.
set -u
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
PY=${PY:-python3}
if compgen -G ".whl/*.whl" > /dev/null; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONUNBUFFERED=1
{
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
  $PY -c "import torch, importlib.util as u; print('torch', torch.__version__, 'cuda', torch.version.cuda, *(f'{m}={u.find_spec(m) is not None}' for m in ('fla', 'flash_attn', 'flash_attn_interface', 'triton', 'pydantic')))"
  timeout 150 $PY -m pytest -q -p no:cacheprovider tests/model/test_cuda.py tests/model/test_deltanet.py -rs 2>&1 | tail -8
  timeout 90 $PY benchmarks/bench_deltanet.py --device cuda --reps 10
  timeout 240 $PY benchmarks/bench_crawler_overhead.py --device cuda --dim 512 --heads 8 --seq 1024 --batch 8 --reps 10 --warmup 2
} 2>&1 | tee "$OUT/gpu_check.txt"
