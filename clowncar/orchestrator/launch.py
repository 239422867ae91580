"""Launch wrapper for worker processes: `python -m clowncar.orchestrator.launch MODULE ARGS...`.

It asks the kernel to SIGKILL this process when its parent dies (PR_SET_PDEATHSIG), then runs MODULE as
`__main__` in the same process. The trainable launches the worker through it (directly, or as each rank under
torchrun), so a worker never outlives its trial even when the trial's actor or the whole driver is SIGKILLed and
no `finally` runs. torchrun puts each rank in a new session, out of reach of the trial's process-group kill, which
is why every rank sets this itself. Linux only; elsewhere it just runs the module.
"""

from __future__ import annotations

import ctypes
import os
import runpy
import signal
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    expected = int(os.environ.get("CLOWNCAR_LAUNCHER_PARENT", "0") or 0)
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    # The parent may have died before prctl took effect: then we were re-parented and must not run.
    if os.getppid() != parent or (expected and parent != expected and "LOCAL_RANK" not in os.environ):
        os._exit(137)


def main() -> None:
    if len(sys.argv) < 2:
        print("usage: python -m clowncar.orchestrator.launch MODULE [ARGS...]", file=sys.stderr)
        sys.exit(2)
    die_with_parent()
    module = sys.argv[1]
    sys.argv = [module, *sys.argv[2:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
