"""The README's two commands start from scripts/setup.sh: a second run with nothing changed installs nothing."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def copy_scripts(tmp: Path) -> Path:
    shutil.copytree(REPO / "scripts", tmp / "scripts")
    shutil.copy(REPO / "pyproject.toml", tmp / "pyproject.toml")
    return tmp


def stamp_for(root: Path, python: str, torch_spec: str = "torch==2.13.0") -> str:
    version = subprocess.run([python, "-V"], capture_output=True, text=True, check=True).stdout.strip()
    digest = hashlib.sha256((root / "pyproject.toml").read_bytes()).hexdigest()[:16]
    return f"{digest} {torch_spec} {version}"


def installed_venv(root: Path, python: str) -> None:
    """What a finished setup leaves: .venv/bin/clowncar and the stamp of what was installed."""
    bin_dir = root / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "clowncar").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "clowncar").chmod(0o755)
    (root / ".venv" / ".clowncar-installed").write_text(stamp_for(root, python) + "\n")


def run_setup(root: Path, python: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "scripts/setup.sh"], cwd=root, capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "PYTHON": python, "HOME": str(root), "CLOWNCAR_NO_APT": "1"})


def test_setup_installs_nothing_when_the_stamp_matches(tmp_path: Path) -> None:
    root = copy_scripts(tmp_path)
    installed_venv(root, sys.executable)
    proc = run_setup(root, sys.executable)
    assert proc.returncode == 0, proc.stderr
    assert "environment up to date" in proc.stdout
    assert not (root / ".venv" / "setup.log").exists()  # pip never ran


def test_setup_reinstalls_when_pyproject_changes(tmp_path: Path) -> None:
    root = copy_scripts(tmp_path)
    installed_venv(root, sys.executable)
    with (root / "pyproject.toml").open("a") as f:
        f.write("\n# changed\n")
    # No .venv/bin/python here, so the install path makes a venv: stop it at once with an interpreter that
    # cannot make one, and check that it got that far (the up-to-date shortcut was not taken).
    fake = tmp_path / "py"
    fake.write_text(f"#!/bin/sh\n[ \"$1\" = \"-m\" ] && exit 1\nexec {sys.executable} \"$@\"\n")
    fake.chmod(0o755)
    (root / ".venv" / ".clowncar-installed").write_text(stamp_for(root, str(fake)).replace(" ", "x", 1))
    proc = run_setup(root, str(fake))
    assert "up to date" not in proc.stdout
    assert proc.returncode != 0 and "virtual environment" in proc.stderr
    assert proc.stderr.count("\n") == 1  # one line, no traceback


def test_setup_refuses_an_old_python_in_one_line(tmp_path: Path) -> None:
    root = copy_scripts(tmp_path)
    fake = tmp_path / "py310"
    fake.write_text("#!/bin/sh\n[ \"$1\" = \"-V\" ] && { echo 'Python 3.10.12'; exit 0; }\nexit 1\n")
    fake.chmod(0o755)
    proc = run_setup(root, str(fake))
    assert proc.returncode == 1
    assert proc.stderr.strip() == ("clowncar-setup: error: Python 3.10.12 is too old: clowncar needs Python 3.11+ "
                                   "(set PYTHON=/path/to/python3.11)")


def test_system_setup_needs_the_venv_first(tmp_path: Path) -> None:
    root = copy_scripts(tmp_path)
    proc = subprocess.run(["bash", "scripts/setup-system.sh"], cwd=root, capture_output=True, text=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin", "CLOWNCAR_NO_APT": "1"})
    assert proc.returncode == 1 and "run scripts/setup.sh first" in proc.stderr


def test_ci_runs_the_readmes_test_command_and_nothing_else() -> None:
    lines = [ln for ln in (REPO / ".ci" / "run").read_text().splitlines() if ln and not ln.startswith("#")]
    assert lines[-1] == "exec bash scripts/test.sh"
    readme = (REPO / "README.md").read_text()
    assert "bash scripts/test.sh" in readme and "bash scripts/demo.sh" in readme
