#!/usr/bin/env bash
# One device session for the model: GPU tests, then both benchmarks on CUDA. Output goes to stdout and $OUT.
set -u
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
PY=${PY:-python}
{
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
  $PY -c "import torch, importlib.util as u; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'fla', u.find_spec('fla') is not None, 'flash_attn', u.find_spec('flash_attn') is not None, 'fa3', u.find_spec('flash_attn_interface') is not None, 'triton', u.find_spec('triton') is not None)"
  timeout 150 $PY -m pytest -q -p no:cacheprovider tests/model/test_cuda.py tests/model/test_deltanet.py -rs 2>&1 | tail -8
  timeout 90 $PY benchmarks/bench_deltanet.py --device cuda --reps 10
  timeout 240 $PY benchmarks/bench_crawler_overhead.py --device cuda --dim 512 --heads 8 --seq 1024 --batch 8 --reps 10 --warmup 2
} 2>&1 | tee "$OUT/gpu_check.txt"
