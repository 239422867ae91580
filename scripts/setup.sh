#!/usr/bin/env bash
# The project's virtual environment in .venv: PyTorch (CPU build by default), clowncar (editable) and the dev
# tools. Idempotent: a stamp records what was installed (pyproject.toml's hash, the torch spec, the Python), so a
# second run with nothing changed installs nothing and returns at once. Both README commands start here.
#   TORCH_SPEC  the PyTorch requirement (default torch==2.13.0, the CPU wheel; a CUDA machine may pass another)
#   PYTHON      the interpreter that makes the venv (default python3; must be 3.11 or newer)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}

command -v "$PYTHON" >/dev/null || die "$PYTHON not found: install Python 3.11+ (Debian/Ubuntu: apt-get install python3)"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
  die "$("$PYTHON" -V 2>&1) is too old: clowncar needs Python 3.11+ (set PYTHON=/path/to/python3.11)"

stamp=.venv/.clowncar-installed
want="$(sha256sum pyproject.toml | cut -c1-16) $TORCH_SPEC $("$PYTHON" -V 2>&1)"
if [ -x .venv/bin/clowncar ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  say "environment up to date (.venv)"
  exit 0
fi

if [ ! -x .venv/bin/python ]; then
  if ! "$PYTHON" -m venv .venv >/dev/null 2>&1; then
    rm -rf .venv
    # Debian and Ubuntu ship venv's pip bootstrap in a package of its own.
    minor=$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
    apt_install "python$minor-venv" || die "cannot make a virtual environment: install python$minor-venv (apt-get install python$minor-venv)"
    "$PYTHON" -m venv .venv || die "cannot make a virtual environment with $PYTHON"
  fi
fi
say "installing into .venv ($TORCH_SPEC, clowncar and its dev tools; a few minutes the first time)"
log=.venv/setup.log
: > "$log"
# pip and the build backend are chatty (deprecation notes, index warnings): keep that in a log, show it on failure.
pip_q() {
  .venv/bin/python -m pip install --disable-pip-version-check "$@" >>"$log" 2>&1 ||
    { tail -n 25 "$log" >&2; die "pip install $* failed (full log: $log)"; }
}
pip_q --upgrade pip
# torch first: the project's own requirement (torch>=2.5) is then already met and pulls no other build.
pip_q "$TORCH_SPEC"
pip_q -e ".[dev]"
.venv/bin/clowncar --help >/dev/null
echo "$want" > "$stamp"
say "environment ready: .venv (activate with '. .venv/bin/activate')"
