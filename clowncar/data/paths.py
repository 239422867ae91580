"""Checks on the paths and globs a user hands to clowncar, shared by the data commands, the artifact reader and
config validation. Light on purpose (no numpy, no torch): `clowncar.config` imports it."""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath

from clowncar.errors import DataError

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"))


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words, from its `st_mode`."""
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def require_regular_file(path: Path, what: str) -> None:
    """Raise DataError unless `path` (followed through symlinks) is a regular file. Called before any read:
    /dev/zero never ends, and opening a FIFO blocks until someone writes to it."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise DataError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(mode):
        raise DataError(f"cannot read {what} {path}: it is {file_kind(mode)}, not a regular file")


def glob_problem(pattern: str) -> str | None:
    """Why `pattern` cannot select shard files inside a shard directory, or None when it can. These are the
    patterns on which pathlib's glob raises (or, for an absolute one, would look outside the directory)."""
    if not pattern.strip():
        return "is empty (it must match shard file names, e.g. fineweb_val_*.bin)"
    path = PurePosixPath(pattern)
    if path.is_absolute():
        return "is an absolute path: shard globs are matched inside the shard directory"
    if not path.parts:
        return "names no file (it must match shard file names, e.g. fineweb_val_*.bin)"
    if any("**" in part and part != "**" for part in path.parts):
        return "uses '**' inside a name: '**' can only be a whole path component"
    return None
