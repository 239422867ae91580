#!/usr/bin/env bash
# Every GPU check the issues name, in one command for one lent GPU (each step has its own time limit, and its
# output is kept in $OUT even when a later step runs out of time):
#   1. CUDA tests: FLA delta rule vs our PyTorch path in bf16, causality and CPU agreement on CUDA
#   2. a real trial through `python -m clowncar.worker` on the GPU: cadence 2 (C- and N-steps), GPTQ int6 +
#      int8 crawler export and the artifact round trip, on random-token shards
#   3. the `clowncar` preset's training step at seq 2048 with torch.compile, its peak memory, eval plain vs sliding
#   4. DeltaNet chunked vs recurrent reference on CUDA; crawler vs same-depth GPT tokens/s on CUDA
#   5. issue #26: 20 steps eager vs CUDA graphs in a real trial (the gpu test), then the `clowncar` preset's
#      step side by side: eager / compile / compile + CUDA graphs x fp32 / bf16 parameters, and trial start-up
#      with a cold and a warm compile cache. With a 15-minute device budget run only these, as two calls
#      (gpu_speed first: it holds the figures, and prints each variant as it finishes):
#        STEPS=gpu_speed bash benchmarks/gpu_session.sh          (device tool: carry [".whl"], timeout_s 450)
#        STEPS=cuda_graph_test bash benchmarks/gpu_session.sh    (device tool: carry [".whl"], timeout_s 200)
# Wheels the GPU image lacks (pydantic, zstandard, flash-linear-attention) are carried in ./.whl: make it here
# first with `bash scripts/gpu_wheels.sh` (9.4 MB).
#   run: bash benchmarks/gpu_session.sh      (device tool: carry [".whl"], timeout_s 560)
#   STEPS="cuda_tests bench_deltanet" bash benchmarks/gpu_session.sh runs only the named steps.
set -u
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site:$PWD
fi
wanted() { [[ -z "${STEPS:-}" || " $STEPS " == *" $1 "* ]]; }
step() {
  local name=$1 limit=$2; shift 2
  wanted "$name" || return 0
  echo "=== $name (limit ${limit}s)"; timeout "$limit" "$@" 2>&1 | tee "$OUT/$name.txt"; echo "=== $name exit ${PIPESTATUS[0]}"
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/device.txt"
python3 -c "import torch, importlib.util as u; print('torch', torch.__version__, 'cuda', torch.version.cuda, *(f'{m}={u.find_spec(m) is not None}' for m in ('fla', 'flash_attn', 'triton')))" | tee -a "$OUT/device.txt"

step cuda_tests 180 python3 -m pytest -q -p no:cacheprovider tests/model/test_cuda.py tests/model/test_deltanet.py -rs

if wanted trial_gpu && [[ ! -d /tmp/cc/shards ]]; then  # only trial_gpu reads it; a warm machine keeps it
  mkdir -p /tmp/cc && python3 -c "import sys; sys.path.insert(0, 'benchmarks'); from pathlib import Path; from bench_worker import make_dataset; make_dataset(Path('/tmp/cc'), train_tokens=2_000_000, val_tokens=140_000)"
fi
step trial_gpu 110 python3 -m clowncar.worker /dev/null --preset clowncar --out /tmp/cc/out \
  --set data.dataset=/tmp/cc/shards --set data.tokenizer=/tmp/cc/tokenizer.model --set train.cadence=2 \
  --set train.iterations=12 --set train.warmup_steps=0 --set train.compile=false --set train.train_batch_tokens=131072 \
  --set train.max_wallclock_seconds=0 --set eval.max_tokens=131072 --set eval.stride=256 \
  --set quant.gptq_calib_seqs=16
cp /tmp/cc/out/result.json "$OUT/trial_result.json" 2>/dev/null

step bench_worker 170 python3 benchmarks/bench_worker.py --device cuda --skip-cpu
step bench_deltanet 45 python3 benchmarks/bench_deltanet.py --device cuda --reps 10
step bench_crawler 80 python3 benchmarks/bench_crawler_overhead.py --device cuda --dim 512 --heads 8 --seq 1024 --batch 8 --reps 10 --warmup 2 --no-preset

step cuda_graph_test 180 python3 -m pytest -q -p no:cacheprovider tests/worker/test_compile_modes.py -rs -k needs_cuda
step gpu_speed 420 python3 benchmarks/gpu_trial.py --startup --json "$OUT/gpu_speed.json"
