"""clowncar/worker/heap.py, called by the CPU worker and the DeltaNet benchmark: freed multi-MB buffers stay in
the process heap for the next step instead of going back to the kernel (to be page-faulted in again)."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from pathlib import Path

import pytest

import clowncar

SCRIPT = """
import ctypes, sys, torch
from clowncar.worker.heap import keep_freed_memory
class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                     "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
applied = keep_freed_memory() if sys.argv[1] == "keep" else None
x, y = torch.ones(4 << 20), torch.ones(4 << 20)  # 2 x 16 MB, written in full
del x, y
print(applied, libc.mallinfo2().fordblks >> 20)  # MB that are free but still held by malloc
"""


def test_worker_malloc_setting_keeps_freed_buffers_in_the_process() -> None:
    """Runs in subprocesses, because the setting is process-wide; glibc's defaults give the memory back, so the
    check can fail."""
    if not sys.platform.startswith("linux") or not hasattr(ctypes.CDLL(None), "mallinfo2"):
        pytest.skip("needs glibc >= 2.33 (mallopt, mallinfo2)")
    root = str(Path(clowncar.__file__).resolve().parents[1])  # this checkout's code in the subprocess
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    runs = {mode: subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, env=env,
                                 check=True).stdout.split() for mode in ("keep", "default")}
    assert runs["keep"][0] == "True"
    assert int(runs["keep"][1]) >= 32
    assert int(runs["default"][1]) < 16  # the defaults unmapped them on free
