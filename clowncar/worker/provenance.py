"""Where a result came from: code version, config, software, hardware. Stored in every result.json."""

from __future__ import annotations

import os
import platform
import resource
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
import zstandard

from clowncar.config import TrialConfig

REPO_ROOT = Path(__file__).resolve().parents[2]


def git_state(root: Path = REPO_ROOT) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the checkout the code runs from; (None, None) outside a git checkout (an image)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()
    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None, None
    return commit, dirty


LIBRARIES = ("numpy", "zstandard", "sentencepiece", "triton", "flash-attn", "flash-linear-attention")
"""Packages whose version can move a trial's numbers (kernels, compression, tokenization); torch has its own key."""


def library_versions() -> dict[str, str | None]:
    """Each of LIBRARIES' installed version (None when absent; a `-` in its name becomes `_`), read from package
    metadata so the optional GPU extras are never imported for it; plus the CUDA torch was built for and the zstd
    library that sets the artifact's bytes."""
    versions: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            version: str | None = metadata.version(name)
        except metadata.PackageNotFoundError:
            version = None
        versions[name.replace("-", "_")] = version
    versions["libzstd"] = ".".join(str(part) for part in zstandard.ZSTD_VERSION)
    versions["cuda"] = torch.version.cuda
    return versions


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu:{platform.processor() or platform.machine()}"


def provenance(cfg: TrialConfig, device: torch.device, world_size: int) -> dict[str, Any]:
    commit, dirty = git_state()
    return {
        "git_commit": commit,
        "git_dirty": dirty,
        "config": cfg.to_dict(),
        "config_hash": cfg.content_hash(),
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        **library_versions(),
        "device": device_name(device),
        "world_size": world_size,
        # CPU kernels sum in another order with another thread count: bf16 results move by ~0.0005 BPB with it
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "seed": cfg.train.seed,
        "host": socket.gethostname(),
    }


def peak_memory_bytes(device: torch.device) -> int:
    """Peak CUDA memory allocated by tensors on GPU; on CPU the process's peak resident set size."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)  # Linux reports KiB, macOS bytes
