"""Shared fixtures. Tests are collected with --import-mode=importlib (no tests package), so shared helpers
are fixtures here rather than importable modules."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    # Run the code of this checkout, whatever is installed in the environment.
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.pop("CLOWNCAR_DEBUG", None)
    env.update(extra or {})
    return env


@pytest.fixture
def run_cli(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run `clowncar ARGS` as a user would (a new process), in tmp_path, with the store and data under it."""

    def run(*args: str, env: dict[str, str] | None = None, timeout: float = 600,
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        base = {"CLOWNCAR_RUNS_DIR": str(tmp_path / "runs"), "CLOWNCAR_DATA_DIR": str(tmp_path / "data")}
        return subprocess.run([sys.executable, "-m", "clowncar", *args], capture_output=True, text=True,
                              env=cli_env({**base, **(env or {})}), timeout=timeout, cwd=cwd or tmp_path)

    return run


@pytest.fixture(scope="session")
def legacy_runs() -> Path:
    path = SHARED / "legacy-runs"
    if not path.is_dir():
        pytest.skip(f"legacy runs not found at {path}")
    return path
