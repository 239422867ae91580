#!/usr/bin/env bash
# bench_utilization on a lent device machine (16 cores: Ray actors start in ~1 s there, against ~20 s here), whose
# image has no Ray, Optuna or SQLAlchemy. Two steps:
#   here:   bash benchmarks/device_utilization.sh wheels     (fills ./.whlray, ~57 MB; add /.whlray/ to
#           .git/info/exclude first)
#   device: bash benchmarks/device_utilization.sh run [SCALE [BENCH ARGS...]] (device tool: carry [".whlray"],
#           timeout_s 580; SCALE 1 takes ~6 min there)
# Ray's wheel (79 MB) is over the 64 MiB a call may carry, so its Java jars and dashboard web UI (unused by the
# benchmark) are left out and the rest is carried as a plain zip, unpacked with its file modes.
set -euo pipefail
case "${1:-}" in
wheels)
  mkdir -p .whlray/tmp
  get() { python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$1" "${@:2}"; }
  get .whlray optuna==5.0.0 alembic==1.20.1 Mako==1.4.3 colorlog==6.12.0 jsonschema==4.26.0 \
    jsonschema-specifications==2025.9.1 referencing==0.37.0 rpds-py==2026.9.1 SQLAlchemy==2.1.9 greenlet \
    tensorboardX==2.6.5 pydantic==2.12.5 pydantic-core==2.41.5 annotated-types typing-inspection zstandard
  get .whlray/tmp ray==2.60.0
  python3 - <<'PY'
import glob, os, zipfile
src = zipfile.ZipFile(glob.glob(".whlray/tmp/ray-*.whl")[0])
with zipfile.ZipFile(".whlray/ray-stripped.zip", "w", zipfile.ZIP_DEFLATED, compresslevel=6) as out:
    for info in src.infolist():
        if not info.filename.startswith(("ray/jars/", "ray/dashboard/client/build/")):
            out.writestr(info, src.read(info))
PY
  rm -rf .whlray/tmp; du -sh .whlray ;;
run)
  site=/tmp/site; mkdir -p "$site"
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" .whlray/*.whl
  python3 - "$site" <<'PY'
import os, sys, zipfile
with zipfile.ZipFile(".whlray/ray-stripped.zip") as z:
    for info in z.infolist():
        path = z.extract(info, sys.argv[1])
        if info.external_attr >> 16:
            os.chmod(path, info.external_attr >> 16)
PY
  # a .pth file, not PYTHONPATH: the benchmark sets PYTHONPATH for the sweeps it starts
  echo "$site" > "$(python3 -c 'import site; print(site.getsitepackages()[0])')/zz_clowncar.pth"
  OUT=${OUT:-/tmp/util_out}; mkdir -p "$OUT"
  PYTHONUNBUFFERED=1 PYTHONPATH=$PWD timeout 500 python3 benchmarks/bench_utilization.py --scale "${2:-1}" \
    --placement ledger --orders 200 "${@:3}" 2>&1 | tee "$OUT/bench.txt" ;;
*) echo "usage: $0 wheels | run [SCALE [BENCH ARGS...]]" >&2; exit 2 ;;
esac
