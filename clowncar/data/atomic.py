"""Publishing output directories atomically: build in a hidden sibling, rename into place at the end.

A failed or interrupted build leaves neither a half-written target nor the staging directory behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from clowncar.data.paths import cannot_create, make_output_dir, remove_created
from clowncar.errors import DataError


def default_mode(directory: bool = False) -> int:
    """The mode a plain `open`/`mkdir` would give under the current umask (temp files start private)."""
    mask = os.umask(0)
    os.umask(mask)
    return (0o777 if directory else 0o666) & ~mask


def is_nonempty_dir(path: Path) -> bool:
    return path.is_dir() and any(path.iterdir())


Foreign = Callable[[Path], "Path | None"]
"""Given a full output directory, the first entry in it that the command did not write (None: all its own).
`--overwrite` replaces only a directory of the command's own output, never one that holds anything else."""


def check_target(out: Path, overwrite: bool, foreign: Foreign | None = None, replacer: str = "--overwrite") -> None:
    """Refuse up front to replace existing output unless asked to, and (with `foreign`) unless it is all output.
    `replacer`: what replaces output in the command that asks (its option, or `data demo`, which always does)."""
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: exists and is not a directory")
    if not is_nonempty_dir(out):
        return
    if not overwrite:
        raise DataError(f"{out}: output directory exists and is not empty (pass --overwrite to replace it)")
    stranger = foreign(out) if foreign is not None else None
    if stranger is not None:
        raise DataError(f"refusing to replace {out}: it holds {stranger.name}, which no build writes "
                        f"({replacer} replaces only an earlier build or an empty folder: move {stranger.name} out)")


@contextmanager
def staged_directory(out: Path, overwrite: bool = False, foreign: Foreign | None = None,
                     replacer: str = "--overwrite") -> Iterator[Path]:
    """Yield an empty staging directory next to `out`; on success it replaces `out` in one rename."""
    out = Path(out)
    check_target(out, overwrite, foreign, replacer)
    created = make_output_dir(out, "the output directory", parents_only=True)
    try:  # /proc, say, has a parent that exists and takes no new folder: said as bad input, not a crash
        stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.building-", dir=out.parent))
    except OSError as exc:
        remove_created(created)
        raise cannot_create(out, "the output directory", exc) from None
    stage.chmod(default_mode(directory=True))
    try:
        yield stage
        publish(stage, out, overwrite, foreign, replacer)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        remove_created(created)  # innermost first: only directories this build created and left empty
        raise


def publish(stage: Path, out: Path, overwrite: bool, foreign: Foreign | None = None,
            replacer: str = "--overwrite") -> None:
    """Move a finished staging directory to `out`, replacing an old one only when allowed."""
    if is_nonempty_dir(out):
        if not overwrite:
            raise DataError(f"{out}: output directory appeared during the build; not replaced")
        check_target(out, overwrite, foreign, replacer)  # what was put there while the build ran is not replaced either
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        os.rmdir(old)
        os.rename(out, old)
        os.rename(stage, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        if out.is_dir():
            out.rmdir()
        os.rename(stage, out)


def copy_file_atomic(src: Path, dst: Path) -> None:
    """Copy `src` to `dst` through a temporary name in `dst`'s directory."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.chmod(tmp, default_mode())
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
