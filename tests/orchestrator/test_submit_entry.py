"""`sweep submit --name`: the sweep is submitted, tagged and run under the name given, as `sweep run --name` runs
it, and the job's command line carries the name but never the store URL. In this process, without Ray: the job
client is replaced where it would reach a cluster, and the job's command is run through the real CLI with only
the sweep runner replaced (the cluster runs it for real in test_submit.py)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

import clowncar.cli as cli
from clowncar.errors import ClownCarError
from clowncar.orchestrator import commands as cmd
from clowncar.orchestrator import submit as submit_mod

SPEC = {"name": "s", "preset": "tiny-cpu", "sampler": "grid", "space": {"model.crawler_loops": {"grid": [1, 2]}}}
STORE = "postgresql+psycopg://u:s3cret@db:5432/runs"


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(SPEC))
    return path


def test_submit_with_a_name_submits_tags_and_names_the_sweep_by_it(spec_file: Path, monkeypatch,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    got: list[str] = []
    monkeypatch.setattr(submit_mod, "submit", lambda spec, p, address, store, python: got.append(spec.name)
                        or f"clowncar-{spec.name}-1")
    cmd.submit_cmd(spec_file, address="http://head:8265", store=STORE, name="s-again")
    assert got == ["s-again"]
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "submitted sweep s-again as Ray job clowncar-s-again-1"
    assert "clowncar sweep status s-again --store postgresql+psycopg://u:***@db:5432/runs" in out[1]
    with pytest.raises(ClownCarError, match=r"^--name 'no/slash' must be 1-64 letters"):
        cmd.submit_cmd(spec_file, address="http://head:8265", name="no/slash")
    assert got == ["s-again"]  # a bad name is refused before anything is submitted


@pytest.mark.parametrize("store_file", [False, True], ids=["head-store", "store-file"])
def test_the_jobs_command_runs_the_shipped_spec_under_the_submitted_name(
        store_file: bool, spec_file: Path, tmp_path: Path, monkeypatch) -> None:
    entry = submit_mod.job_entrypoint("python3", "s-again", store_file)
    assert "s3cret" not in entry and "--store" not in entry
    words = shlex.split(entry)
    assert words[:2] == (["CLOWNCAR_STORE=", f"CLOWNCAR_STORE_FILE=$PWD/{submit_mod.STORE_FILE}"]
                         if store_file else ["python3", "-m"])
    driver_args = words[words.index("clowncar") + 1:]
    # The job's working dir holds the spec as spec.yaml; its driver is `clowncar` with these words.
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    (job_dir / "spec.yaml").write_text(spec_file.read_text())
    monkeypatch.chdir(job_dir)
    ran: list[dict[str, Any]] = []
    monkeypatch.setattr(cmd, "run_spec", lambda spec, store, address, *a, **kw: ran.append(
        {"name": spec.name, "address": address, "store": store}))
    cli.main(driver_args)
    assert ran == [{"name": "s-again", "address": "auto", "store": None}]
