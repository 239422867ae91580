"""`clowncar --version`: the package version and, in a git checkout, the commit the code runs from.

`clowncar.worker.provenance.git_state` records the same facts in every result.json, but it imports torch (seconds
to load); this module stays light so that `--version` answers at once, and outside the trial worker's imports so
that it adds nothing to a trial's counted code bytes (`clowncar.worker.code_bytes`)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import clowncar

PACKAGE_ROOT = Path(clowncar.__file__).resolve().parents[1]


def checkout_commit(root: Path = PACKAGE_ROOT) -> tuple[str, bool] | None:
    """(commit, dirty) of the git checkout at `root`, dirty meaning a tracked file differs from the commit;
    None when the code does not run from a checkout (an installed package, an image) or git is missing."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()
    try:
        if Path(git("rev-parse", "--show-toplevel")).resolve() != root.resolve():  # a package installed inside some other checkout
            return None
        return git("rev-parse", "HEAD"), bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None


def version_line(root: Path = PACKAGE_ROOT) -> str:
    """`clowncar 0.1.0`, plus `(git COMMIT)` in a checkout, `(git COMMIT, with uncommitted changes)` when a
    tracked file was changed since that commit."""
    state = checkout_commit(root)
    if state is None:
        return f"clowncar {clowncar.__version__}"
    commit, dirty = state
    return f"clowncar {clowncar.__version__} (git {commit}{', with uncommitted changes' if dirty else ''})"
