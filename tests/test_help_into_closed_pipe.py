"""`clowncar ... --help | head -1`: rich's help, whose reader has gone, ends quietly with 141 as any other output
does; rich points stdout at /dev/null itself and exits 1, which was reported as an internal BrokenPipeError."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize("argv", [["--help"], ["artifact", "eval", "--help"]])
def test_help_whose_reader_closed_the_pipe_ends_quietly_with_141(tmp_path: Path, argv: list[str]) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run([sys.executable, "-m", "clowncar", *argv], stdout=write_end, stderr=subprocess.PIPE,
                              text=True, env=env, cwd=tmp_path, timeout=120)
    finally:
        os.close(write_end)
    assert (proc.returncode, proc.stderr) == (141, "")
