"""Keep freed CPU memory inside the process instead of handing it back to the OS after every step.

PyTorch's CPU allocator is plain malloc. glibc serves multi-MB blocks with mmap (or trims them off the top of
the heap) and returns them to the kernel on free, so a tensor of a few MB that a training step allocates and
frees again is page-faulted back in, and zeroed by the kernel, on every step. On the DeltaNet benchmark that
is the difference between a 15 ms and a 30 ms forward at T = 2048 (benchmarks/bench_deltanet.py
--system-malloc shows the slow mode). Two glibc settings stop it: blocks up to 32 MB come from the heap, and
the heap is not trimmed below 1 GB of free space. The process then keeps its peak heap size, which a trial
reaches in its first steps anyway.
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # the largest value glibc accepts on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX)
TRIM_THRESHOLD = 1 << 30


def keep_freed_memory() -> bool:
    """Apply the two settings through glibc's `mallopt`; False where there is no glibc (macOS, musl) or it
    refuses them, in which case nothing changed."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library this process already runs on
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # mallopt returns 1 on success; musl has no such settings and glibc rejects values out of range.
    mmap_ok = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    trim_ok = mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    return mmap_ok and trim_ok
