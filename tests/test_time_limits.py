"""Every test runs under a time limit (pytest-timeout, configured in pyproject.toml), so a hung test fails alone
instead of hanging CI; tests marked slow get the larger limit of tests/conftest.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def test_a_test_that_hangs_fails_at_the_configured_limit(tmp_path: Path) -> None:
    (tmp_path / "test_hang.py").write_text("import time\n\ndef test_hangs():\n    time.sleep(60)\n")
    repo = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c",
                        str(repo / "pyproject.toml"), "--rootdir", str(tmp_path), "-o", "timeout=2",
                        str(tmp_path / "test_hang.py")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Timeout" in r.stdout and "1 failed" in r.stdout


def test_the_default_limit_comes_from_pyproject(request: pytest.FixtureRequest) -> None:
    assert float(request.config.getini("timeout")) == 300
    assert request.node.get_closest_marker("timeout") is None


@pytest.mark.slow
def test_slow_tests_get_the_larger_limit(request: pytest.FixtureRequest) -> None:
    assert request.node.get_closest_marker("timeout").args == (1200,)
