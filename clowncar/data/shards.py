"""The Parameter Golf shard format, read and written exactly as the challenge does.

A shard is a 1024-byte header of 256 little-endian int32 (`[0]` magic 20240520, `[1]` version 1, `[2]` the
token count, the rest zero) followed by that many little-endian uint16 tokens. A file whose size is not
exactly `1024 + 2 * count` is rejected, as the challenge's own reader does: a truncated download or a file
with trailing bytes must never be trained on silently.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from clowncar.data.paths import file_kind, glob_problem
from clowncar.errors import DataError

MAGIC = 20240520
VERSION = 1
HEADER_INTS = 256
HEADER_BYTES = HEADER_INTS * 4
HEADER_DTYPE = np.dtype("<i4")
TOKEN_DTYPE = np.dtype("<u2")
MAX_VOCAB = 2**16
"""Token ids are stored as uint16, so a vocabulary may hold at most 65536 ids."""


@dataclass(frozen=True)
class ShardHeader:
    path: Path
    magic: int
    version: int
    num_tokens: int

    @property
    def file_bytes(self) -> int:
        return HEADER_BYTES + TOKEN_DTYPE.itemsize * self.num_tokens


def shard_name(split: str, index: int) -> str:
    """The official file name, so that every reader (ours, the challenge's, forks') finds the shards."""
    return f"fineweb_{split}_{index:06d}.bin"


SHARD_NAME = re.compile(r"fineweb_(val|train)_(\d{6})\.bin")
"""The names `shard_name` gives a split's shards (groups: split, number): what a build and a fetch write."""


def read_header(path: str | os.PathLike[str]) -> ShardHeader:
    """Read and validate a shard header against the file's size; raise DataError naming the file."""
    p = Path(path)
    try:
        size = p.stat().st_size
        with p.open("rb") as f:
            raw = f.read(HEADER_BYTES)
    except IsADirectoryError:
        raise DataError(f"{p}: is a directory, not a shard") from None
    except OSError as exc:
        raise DataError(f"{p}: cannot read shard ({exc.strerror or exc})") from None
    if len(raw) < HEADER_BYTES:
        raise DataError(f"{p}: truncated shard: {size} bytes, shorter than the {HEADER_BYTES}-byte header")
    header = np.frombuffer(raw, dtype=HEADER_DTYPE, count=HEADER_INTS)
    magic, version, num_tokens = (int(v) for v in header[:3])
    if magic != MAGIC:
        raise DataError(f"{p}: bad magic {magic} (expected {MAGIC}): not a shard in the Parameter Golf format")
    if version != VERSION:
        raise DataError(f"{p}: unsupported shard version {version} (expected {VERSION})")
    if num_tokens < 0:
        raise DataError(f"{p}: corrupt header: negative token count {num_tokens}")
    h = ShardHeader(path=p, magic=magic, version=version, num_tokens=num_tokens)
    if size < h.file_bytes:
        raise DataError(f"{p}: truncated shard: header says {num_tokens} tokens ({h.file_bytes} bytes), "
                        f"file has {size} bytes")
    if size > h.file_bytes:
        raise DataError(f"{p}: over-long shard: header says {num_tokens} tokens ({h.file_bytes} bytes), "
                        f"file has {size} bytes")
    return h


def read_shard(path: str | os.PathLike[str]) -> np.ndarray:
    """The tokens of one shard as a read-only memory-mapped uint16 array (header validated first)."""
    h = read_header(path)
    if h.num_tokens == 0:
        return np.zeros(0, dtype=np.uint16)
    try:
        return np.memmap(h.path, dtype=TOKEN_DTYPE, mode="r", offset=HEADER_BYTES, shape=(h.num_tokens,))
    except (OSError, ValueError) as exc:
        raise DataError(f"{h.path}: cannot map shard ({exc})") from None


def _default_file_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _as_tokens(tokens: Sequence[int] | np.ndarray, path: Path) -> np.ndarray:
    arr = np.asarray(tokens)
    if arr.ndim != 1:
        raise DataError(f"{path}: tokens must be a 1-D sequence, got shape {arr.shape}")
    if arr.dtype == np.uint16:
        return arr.astype(TOKEN_DTYPE, copy=False)
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise DataError(f"{path}: tokens must be integers, got {arr.dtype}")
    if arr.size and (int(arr.min()) < 0 or int(arr.max()) >= MAX_VOCAB):
        bad = int(arr.max()) if int(arr.max()) >= MAX_VOCAB else int(arr.min())
        raise DataError(f"{path}: token id {bad} does not fit uint16 (vocab must be <= {MAX_VOCAB})")
    return arr.astype(TOKEN_DTYPE)


def write_shard(path: str | os.PathLike[str], tokens: Sequence[int] | np.ndarray) -> Path:
    """Write one shard atomically: a temporary file in the same directory, then a rename."""
    p = Path(path)
    toks = _as_tokens(tokens, p)
    if toks.size >= 2**31:
        raise DataError(f"{p}: {toks.size} tokens do not fit the int32 header")
    header = np.zeros(HEADER_INTS, dtype=HEADER_DTYPE)
    header[:3] = (MAGIC, VERSION, toks.size)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(header.tobytes())
            f.write(toks.tobytes())
        os.chmod(tmp, _default_file_mode())
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return p


def not_a_shard_directory(path: Path) -> str:
    """Why `path` is no shard directory: missing, a shard (pass its folder), another file, or a device/FIFO."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return f"{path}: shard directory not found"
    if not stat.S_ISREG(mode):
        return f"{path}: is {file_kind(mode)}, not a shard directory"
    try:
        read_header(path)
    except DataError:
        return (f"{path}: is a regular file, not a shard directory: pass the directory that holds the shards "
                "(fineweb_val_*.bin, fineweb_train_*.bin)")
    return f"{path}: is a shard file, not a shard directory: pass its folder ({path.parent})"


def list_shards(directory: str | os.PathLike[str], glob: str) -> list[Path]:
    """Shards matching `glob` in `directory`, sorted by name (the order every reader streams them in)."""
    d = Path(directory)
    if not d.is_dir():
        raise DataError(not_a_shard_directory(d))
    problem = glob_problem(glob)
    if problem:
        raise DataError(f"shard glob {glob!r} {problem}")
    try:
        return sorted(p for p in d.glob(glob) if p.is_file())
    except (ValueError, NotImplementedError, IndexError) as exc:  # a pattern pathlib refuses that we did not foresee
        raise DataError(f"shard glob {glob!r} is not a usable pattern ({str(exc) or type(exc).__name__})") from None


def require_shards(directory: str | os.PathLike[str], glob: str, split: str) -> list[Path]:
    """`list_shards`, and a DataError naming the split when none match."""
    files = list_shards(directory, glob)
    if not files:
        raise DataError(f"no {split} shards matching {glob} in {directory}")
    return files


def shards_digest(files: Sequence[Path]) -> dict[str, Any]:
    """What a run read from one split, small enough for its provenance: how many shards, their tokens, and a
    digest of their names and token counts (headers only: hashing FineWeb's shards whole would take minutes per
    trial). A shard lost, added or rebuilt to another length between two runs changes it."""
    headers = [read_header(f) for f in files]
    listing = "\n".join(f"{h.path.name} {h.num_tokens}" for h in headers)
    return {"shards": len(headers), "tokens": sum(h.num_tokens for h in headers),
            "digest": hashlib.sha256(listing.encode()).hexdigest()[:16]}
