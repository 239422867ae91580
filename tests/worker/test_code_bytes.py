"""Artifact code bytes: the challenge's rule counts every project module a trial imports to train and
evaluate; the eval-path rule only what rebuilds and scores the model. The rule used is recorded in the
artifact, in result.json and in the store."""

from __future__ import annotations

import json
import modulefinder
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from clowncar.config import TrialConfig
from clowncar.worker.artifact import export_artifact, read_artifact
from clowncar.worker.code_bytes import CODE_FILES, _imports_of, code_bytes, code_files

REPO_ROOT = Path(__file__).resolve().parents[2]
QUANT = ["quant.enabled=true", "quant.flat_scheme=gptq_int6", "quant.passthrough_max_numel=256",
         "quant.gptq_calib_seqs=4", "quant.gptq_calib_seq_len=32", "quant.zstd_level=3"]

# A fresh interpreter runs one trial through the worker's own entry point and reports which clowncar modules
# it imported: nothing else has been imported there, unlike in this test process.
TRIAL_AND_LIST_MODULES = """
import json, sys
from clowncar.worker.__main__ import main
code = main(sys.argv[2:])
files = sorted(m.__file__ for name, m in sys.modules.items()
               if name.split(".")[0] == "clowncar" and getattr(m, "__file__", None))
json.dump({"code": code, "files": files}, open(sys.argv[1], "w"))
"""


@pytest.mark.slow
def test_challenge_code_bytes_are_the_file_sizes_of_every_module_a_trial_imports(
        tiny_overrides: list[str], tmp_path: Path, worker_env: dict[str, str],
        read_trial: Callable[..., Any]) -> None:
    (tmp_path / "trial.yaml").write_text("preset: tiny-cpu\n")
    sets = [a for o in [*tiny_overrides, *QUANT] for a in ("--set", o)]
    report = tmp_path / "modules.json"
    proc = subprocess.run([sys.executable, "-c", TRIAL_AND_LIST_MODULES, str(report), str(tmp_path / "trial.yaml"),
                           "--out", str(tmp_path / "out"), *sets], capture_output=True, text=True, env=worker_env,
                          timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    imported = json.loads(report.read_text())
    assert imported["code"] == 0
    files = [Path(f) for f in imported["files"]]
    result, _ = read_trial(tmp_path / "out")
    assert result["artifact_code_rule"] == "challenge"
    assert result["artifact_code_bytes"] == sum(f.stat().st_size for f in files)
    assert [REPO_ROOT / p for p in code_files("challenge")] == sorted(files)
    assert {"clowncar/worker/train.py", "clowncar/worker/optim.py", "clowncar/data/tokenizer.py"} <= {
        str(p) for p in code_files("challenge")}  # training code counts, not only the eval path


class Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.tok_emb = nn.Embedding(64, 32)
        self.fc = nn.Linear(32, 64)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.fc(self.tok_emb(ids))


@pytest.mark.parametrize("rule", ["challenge", "eval_path"])
def test_the_rule_decides_the_counted_files_and_is_recorded_in_the_artifact(rule: str, tmp_path: Path,
                                                                             run_cli: Callable[..., Any]) -> None:
    cfg = TrialConfig.model_validate({"quant": {"passthrough_max_numel": 512, "code_bytes": rule,
                                                "zstd_level": 3}})
    torch.manual_seed(0)
    fields = export_artifact(Toy(), cfg, None, tmp_path / "a.ptz")
    assert fields["artifact_code_rule"] == rule
    assert fields["artifact_code_bytes"] == code_bytes(rule) == sum(
        (REPO_ROOT / p).stat().st_size for p in code_files(rule))
    _, meta = read_artifact(tmp_path / "a.ptz")
    assert meta["code_rule"] == rule
    proc = run_cli("artifact", "inspect", str(tmp_path / "a.ptz"), "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["artifact_code_rule"] == rule and summary["artifact_code_bytes"] == code_bytes(rule)


def _module_level_imports(path: Path) -> set[Path]:
    """The project files that loading `path` runs: its module-level imports and their packages' __init__.py."""
    import ast

    root = Path(__file__).resolve().parents[2]
    out: set[Path] = set()
    for node in ast.parse((root / path).read_text()).body:
        names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                 [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else [])
        for name in (n for n in names if n.split(".")[0] == "clowncar"):
            parts = name.split(".")
            out |= {Path(*parts[:i], "__init__.py") for i in range(1, len(parts))}
            out |= {p for p in (Path(*parts).with_suffix(".py"), Path(*parts, "__init__.py")) if (root / p).exists()}
    return out


def test_the_eval_path_files_hold_everything_loading_them_runs() -> None:
    files = set(code_files("eval_path"))
    assert {(f, m) for f in files for m in _module_level_imports(f) if m not in files} == set()


def test_eval_path_files_are_a_subset_of_the_challenge_files() -> None:
    eval_path, challenge = set(code_files("eval_path")), set(code_files("challenge"))
    assert eval_path < challenge
    assert {Path(p) for p in CODE_FILES if "*" not in p} <= eval_path
    with pytest.raises(ValueError, match=r"^unknown code-byte rule 'whole_repo' \(known: challenge, eval_path\)$"):
        code_files("whole_repo")


def test_the_default_rule_is_the_challenges() -> None:
    assert code_files() == code_files("challenge") != code_files("eval_path")
    assert code_bytes() == code_bytes("challenge") != code_bytes("eval_path")


class ProjectModules(modulefinder.ModuleFinder):
    """The standard library's static import finder, kept inside the clowncar package (it would otherwise read
    torch and everything torch imports)."""

    def import_hook(self, name: str, caller: Any = None, fromlist: Any = None, level: int = -1) -> Any:
        if level <= 0 and name.split(".")[0] != "clowncar":
            return None
        return super().import_hook(name, caller, fromlist, level)


def test_challenge_files_are_the_import_closure_that_the_standard_library_finds() -> None:
    finder = ProjectModules(path=[str(REPO_ROOT)])
    finder.run_script(str(REPO_ROOT / "clowncar" / "worker" / "__main__.py"))
    found = {Path(m.__file__).relative_to(REPO_ROOT) for m in finder.modules.values() if m.__file__}
    assert code_files("challenge") == sorted(found)
    assert Path("clowncar/cli.py") not in found and Path("clowncar/analysis/stats.py") not in found


def test_the_challenge_count_holds_no_dataset_builder() -> None:
    """A trial reads shards; it does not build them (the seed kept data preparation out of its counted script)."""
    counted = {str(p) for p in code_files("challenge")}
    assert not counted & {"clowncar/data/build.py", "clowncar/data/corpus.py", "clowncar/data/atomic.py"}
    assert "clowncar/data/record.py" in counted  # the tokenizer and shard-record checks a trial runs


def test_imports_are_resolved_absolute_relative_and_inside_functions(tmp_path: Path) -> None:
    """A module `clowncar.worker.probe` and a package `clowncar.worker` (its __init__.py), with every form
    of import statement; only names that are clowncar modules (files of this checkout) are kept."""
    source = (
        "import os, torch.nn\n"
        "import clowncar.config\n"
        "from clowncar.data import bpb, nothing_here\n"
        "from . import quant\n"
        "from .qscale import QMAX\n"
        "from ..model import build_model\n"
        "from .. import errors\n"
        "def lazy() -> None:\n"
        "    from clowncar.analysis import stats\n"
        "    text = 'non-ASCII text: H\u207b\u00b9 \u00b7 \u00e9'\n")
    common = {"clowncar.config", "clowncar.data", "clowncar.data.bpb", "clowncar.analysis",
              "clowncar.analysis.stats", "clowncar", "clowncar.errors", "clowncar.model"}
    probe = tmp_path / "probe.py"
    probe.write_text(source, encoding="utf-8")
    relative = {"clowncar.worker", "clowncar.worker.quant", "clowncar.worker.qscale"}
    assert _imports_of("clowncar.worker.probe", probe) == common | relative
    # in a package's __init__.py, `.` is the package itself: the same statements name the same modules
    package = tmp_path / "__init__.py"
    package.write_text(source, encoding="utf-8")
    assert _imports_of("clowncar.worker", package) == common | relative


def test_the_count_does_not_depend_on_the_locale(tmp_path: Path) -> None:
    """Sources are read as UTF-8 even where the locale's encoding is ASCII (the C locale, UTF-8 mode off)."""
    probe = tmp_path / "probe.py"
    probe.write_text("import clowncar.config\nNOTE = 'H\u207b\u00b9 \u00b7 \u00e9'\n", encoding="utf-8")
    script = ("import sys; from pathlib import Path; from clowncar.worker.code_bytes import _imports_of; "
              "print(sorted(_imports_of('clowncar.worker.probe', Path(sys.argv[1]))))")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "LC_ALL": "C", "PYTHONUTF8": "0",
           "PYTHONCOERCECLOCALE": "0"}
    proc = subprocess.run([sys.executable, "-c", script, str(probe)], capture_output=True, text=True, env=env,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "['clowncar.config']"


def test_the_rule_reaches_the_store_with_the_result(tmp_path: Path) -> None:
    from clowncar.store import open_store

    result = {"status": "ok", "val_bpb": 3.0, "artifact_bytes": 1000, "artifact_code_bytes": 900,
              "artifact_code_rule": "challenge"}
    config = TrialConfig().to_dict()
    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as st:
        st.create_or_get_sweep("sw", {})
        st.start_trial("sw", "t0", 0, 0, config, 1337, "node")
        st.finish_trial("t0", 0, "ok", None, result)
        frame = st.trials_frame("sw")
        assert frame.loc[0, "artifact_code_rule"] == "challenge"
        assert frame.loc[0, "quant.code_bytes"] == "challenge"
        assert st.get_trial("t0")["attempts"][0]["result"]["artifact_code_rule"] == "challenge"
