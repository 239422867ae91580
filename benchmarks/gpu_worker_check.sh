#!/usr/bin/env bash
# The worker's device check in one go (one GPU): the `clowncar` preset's training step at seq 2048 with compile
# and its peak memory, eval throughput plain vs sliding (bench_worker.py --device cuda), then a short compiled
# trial with cadence 2 (C- and N-step graphs) through `python -m clowncar.worker`. pydantic is not in the GPU
# image: wheels in ./.whl (carried) are installed into /tmp/site first. Output: stdout and $OUT/gpu_worker.txt.
set -u
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD
fi
{
  git rev-parse --abbrev-ref HEAD 2>/dev/null; ls clowncar/worker | tr '\n' ' '; echo
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
  timeout 420 python3 benchmarks/bench_worker.py --device cuda --skip-cpu
  python3 -c "import sys; sys.path.insert(0, 'benchmarks'); from pathlib import Path; from bench_worker import make_dataset; p = Path('/tmp/cc'); p.mkdir(exist_ok=True); make_dataset(p, train_tokens=2_000_000, val_tokens=70_000)"
  printf 'preset: clowncar\n' > /tmp/cc/trial.yaml
  timeout 200 python3 -m clowncar.worker /tmp/cc/trial.yaml --out /tmp/cc/out --set data.dataset=/tmp/cc/shards \
    --set data.tokenizer=/tmp/cc/tokenizer.model --set train.cadence=2 --set train.iterations=8 \
    --set train.warmup_steps=2 --set train.log_every=1 --set train.train_batch_tokens=131072 --set train.max_wallclock_seconds=0 \
    --set eval.max_tokens=65536 --set eval.stride=256 --set quant.enabled=false
  echo "cadence-2 trial exit code: $?"
  grep -o '"kind":"[CN]","train_loss":[0-9.]*' /tmp/cc/out/events.jsonl | tr '\n' ' '; echo
  python3 -c "import json; r = json.load(open('/tmp/cc/out/result.json')); print({k: r[k] for k in ('status', 'reason', 'steps', 'c_steps', 'n_steps', 'val_bpb', 'sliding_val_bpb', 'train_seconds', 'peak_mem_bytes', 'evaluated_weights')})"
} 2>&1 | tee "$OUT/gpu_worker.txt"
