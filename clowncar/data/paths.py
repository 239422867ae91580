"""Checks on the paths and globs a user hands to clowncar, shared by the data commands, the artifact reader,
config validation and the commands that write an output directory (`make_output_dir`). Light on purpose (no numpy, no torch): `clowncar.config` imports it."""

from __future__ import annotations

import errno
import os
import re
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


def missing_dirs(out: Path) -> list[Path]:
    """`out` and those of its parents that do not exist yet, innermost first."""
    missing = []
    for p in (out, *out.parents):
        if p.exists():
            break
        missing.append(p)
    return missing


def _why_not_a_dir(out: Path, exc: OSError) -> str:
    """Why `out` cannot be created as a directory: the first thing on the path that is not one, else the OS's
    words (/proc refuses a new folder with 'No such file or directory', a read-only disk says so)."""
    for p in (out, *out.parents):
        try:
            mode = os.stat(p).st_mode
        except OSError:
            continue
        if not stat.S_ISDIR(mode):
            kind = "a regular file" if stat.S_ISREG(mode) else file_kind(mode)
            return f"{p} is {kind}, not a directory"
        if exc.errno == errno.ENOENT:  # the folder is there, yet what was made in it is not: it takes none
            return f"{p} does not take new directories ({exc.strerror})"
        break
    return exc.strerror or str(exc)


def cannot_create(out: Path, what: str, exc: OSError) -> DataError:
    """The one-line error for an output directory `out` that could not be made (or made beside)."""
    return DataError(f"cannot create {what} {out}: {_why_not_a_dir(out, exc)}")


def make_output_dir(out: Path, what: str, parents_only: bool = False) -> list[Path]:
    """Create the directory `out` (only its missing parents with `parents_only`, for a build staged beside it)
    before any work that would write there, and return the directories created, innermost first, for
    `remove_created` to take back if the command then fails. A path that cannot be a directory is a DataError
    naming it and why (`cannot_create`), never an OSError from deep inside the work."""
    target = out.parent if parents_only else out
    created = missing_dirs(target)
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        remove_created(created)  # mkdir may have made some parents before it failed
        raise cannot_create(out, what, exc) from None
    return created


def remove_created(dirs: list[Path]) -> None:
    """Remove directories `make_output_dir` created, innermost first, each only while empty: what a command
    created and left unused goes, and nothing anyone else put there."""
    for d in dirs:
        try:
            d.rmdir()
        except FileNotFoundError:
            continue  # never made (mkdir failed before it), or removed already
        except OSError:
            break


class OutputDir:
    """`with OutputDir(out, what):` makes `out` before the body runs (`make_output_dir`: a path that cannot be a
    directory is refused before any work) and, when the body fails, takes back what it made while still empty:
    a command refused for another reason (an unknown sweep, a missing store) leaves no empty folder behind."""

    def __init__(self, out: Path, what: str) -> None:
        self.out, self.what = out, what
        self.created: list[Path] = []

    def __enter__(self) -> list[Path]:
        self.created = make_output_dir(self.out, self.what)
        return self.created

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc_type is not None:
            remove_created(self.created)


def glob_problem(pattern: str) -> str | None:
    """Why `pattern` cannot select shard files inside a shard directory, or None when it can. These are the
    patterns on which pathlib's glob raises (or, for an absolute one or one with '..', would look outside the
    directory)."""
    if not pattern.strip():
        return "is empty (it must match shard file names, e.g. fineweb_val_*.bin)"
    path = PurePosixPath(pattern)
    if path.is_absolute():
        return "is an absolute path: shard globs are matched inside the shard directory"
    if ".." in path.parts:  # another dataset's shards, encoded with another tokenizer than the one checked
        return "climbs out with '..': shard globs are matched inside the shard directory"
    if not path.parts:
        return "names no file (it must match shard file names, e.g. fineweb_val_*.bin)"
    if any("**" in part and part != "**" for part in path.parts):
        return "uses '**' inside a name: '**' can only be a whole path component"
    return None


FINEWEB_NAME = re.compile(r"fineweb10B_(sp\d+|byte260)")
"""The names `data fetch-fineweb --variant V` gives the challenge's datasets (`fetch.dataset_name_for_variant`)."""


def how_to_get_dataset(dataset: str) -> str:
    """What makes a dataset that is not on this machine, for the line that says it is missing: the fetch for a
    FineWeb name (the seed presets read fineweb10B_sp1024), else the commands that build one."""
    fineweb = FINEWEB_NAME.fullmatch(Path(dataset).name)
    if fineweb:
        return (f"fetch it with `clowncar data fetch-fineweb --variant {fineweb.group(1)}`, or point data.dataset "
                "at a build (the demo's: data.dataset=demo_sp1024 with data.tokenizer=demo_1024_bpe.model)")
    return ("`clowncar data demo`, `data fetch-fineweb` or `data build` makes one; CLOWNCAR_DATA_DIR says where "
            "datasets are looked for")


def dataset_not_found(dataset: str, directory: Path) -> str:
    """The line for a dataset whose folder does not exist (a trial's, a sweep's preflight)."""
    return f"dataset {dataset!r} not found at {directory} ({how_to_get_dataset(dataset)})"
