"""Every bad input in the corpus (tests/bad_inputs/cases/*.yaml) ends the way the README promises: the exit code
the case names, one line `clowncar: error: ...` on stderr holding the case's error text, no traceback, and not a
file or folder more than the case started with and none of its files changed (no half-written store, no stray
runs or trial folder).

Cases run the CLI in this process (`clowncar.cli.main(argv)`, fast: most fail in validation before torch or Ray
load); cases marked `subprocess: true` run `python -m clowncar` as a user does, which proves that nothing but
the one line reaches the terminal.

A case: `id`, `argv` (the words after `clowncar`), `files` (written into the case's own directory, see
conftest.write_case_files), `exit`, `error` (text the one line must hold; `stdout` instead for a case that
succeeds but must say something), optional `absent` (text that must appear nowhere, e.g. a password), `env`,
`needs: legacy` (the shared legacy runs). Placeholders in argv, env and text files: {tmp} (the case directory),
{closed_port}, {dataset} and {tokenizer} (a small real dataset), {legacy}.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from clowncar.strict_yaml import yaml_load

CASES_DIR = Path(__file__).resolve().parent / "cases"
REPO = Path(__file__).resolve().parents[2]
LEGACY = REPO.parent / "shared" / "legacy-runs"
CASE_KEYS = {"id", "argv", "files", "exit", "error", "stdout", "absent", "env", "subprocess", "needs"}


def load_cases() -> list[dict[str, Any]]:
    cases = []
    for path in sorted(CASES_DIR.glob("*.yaml")):
        for case in yaml_load(path.read_text(encoding="utf-8")):
            unknown = set(case) - CASE_KEYS
            assert not unknown, f"{path.name} {case.get('id')}: unknown keys {unknown}"
            cases.append({**case, "group": path.stem})
    return cases


CASES = load_cases()


def test_corpus_is_large_unique_and_covers_every_kind_of_input() -> None:
    ids = [f"{c['group']}:{c['id']}" for c in CASES]
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})
    assert len(CASES) >= 200
    groups = {c["group"] for c in CASES}
    assert {"cli", "configs", "specs", "shards", "tokenizers", "logs", "artifacts", "stores"} <= groups
    assert sum(bool(c.get("subprocess")) for c in CASES) >= 5


def _tree(root: Path) -> dict[str, str]:
    """Every path under `root` with what it holds (a digest for a file), so a file a case found but changed (an
    empty file turned into a database, say) shows as clearly as one it left behind."""
    return {str(p.relative_to(root)): "dir" if p.is_dir() else hashlib.blake2b(p.read_bytes()).hexdigest()
            for p in root.rglob("*")}


@pytest.fixture
def fill(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[str], str]:
    """Placeholders of a case, each resolved (and its fixture built) only when the case uses it."""
    sources: dict[str, Callable[[], str]] = {
        "tmp": lambda: str(tmp_path),
        "closed_port": lambda: str(request.getfixturevalue("closed_port")),
        "dataset": lambda: str(request.getfixturevalue("tiny_dataset")),
        "tokenizer": lambda: str(request.getfixturevalue("tiny_dataset") / "tokenizer.model"),
        "legacy": lambda: str(LEGACY),
    }

    def fill(text: str) -> str:
        for key, value in sources.items():
            if "{" + key + "}" in text:
                text = text.replace("{" + key + "}", value())
        return text

    return fill


def _in_process(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    from clowncar.cli import main

    try:
        main(argv)
        code = 0
    except SystemExit as ended:
        code = ended.code if isinstance(ended.code, int) else 1
    out = capsys.readouterr()
    return code, out.out, out.err


def _subprocess(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str, str]:
    full = {**os.environ, **env, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "clowncar", *argv], capture_output=True, text=True, cwd=cwd,
                          env=full, timeout=300)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.mark.parametrize("case", CASES, ids=[f"{c['group']}:{c['id']}" for c in CASES])
def test_bad_input_is_one_line_the_documented_code_and_leaves_nothing_behind(
        case: dict[str, Any], tmp_path: Path, fill: Callable[[str], str],
        write_case_files: Callable[..., None], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    if case.get("needs") == "legacy" and not LEGACY.is_dir():
        pytest.skip(f"legacy runs not found at {LEGACY}")
    write_case_files(tmp_path, case.get("files") or {}, fill)
    before = _tree(tmp_path)
    env = {"CLOWNCAR_RUNS_DIR": str(tmp_path / "runs"), "CLOWNCAR_DATA_DIR": str(tmp_path / "data"),
           **{k: fill(str(v)) for k, v in (case.get("env") or {}).items()}}
    for key in ("CLOWNCAR_STORE", "CLOWNCAR_RAY_ADDRESS", "CLOWNCAR_DEBUG"):
        if key not in env:
            monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    argv = [fill(str(a)) for a in case["argv"]]
    if case.get("subprocess"):
        code, out, err = _subprocess(argv, tmp_path, env)
    else:
        import clowncar.orchestrator.tune as tune

        def no_ray(*_: Any) -> None:  # a bad input that got as far as starting Ray was not caught
            raise AssertionError("the case reached Ray")

        monkeypatch.setattr(tune, "init_ray", no_ray)
        code, out, err = _in_process(argv, capsys)
    lines = err.strip().splitlines()
    assert code == case["exit"], f"exit {code}, expected {case['exit']}; stderr: {err[-2000:]}"
    assert "Traceback" not in err and "internal error" not in err, err[-2000:]
    if "error" in case:
        assert len(lines) == 1 and lines[0].startswith("clowncar: error: "), err[-2000:]
        assert case["error"] in lines[0], lines[0]
    if "stdout" in case:
        assert case["stdout"] in out, out[-2000:]
    if "absent" in case:
        assert case["absent"] not in out + err
    after = _tree(tmp_path)
    assert after == before, f"left behind or changed: {sorted(k for k in after if after[k] != before.get(k))}"
