"""The runs dir must be, or become, a folder this process writes in: `sweep run` refuses one that cannot before it
records anything (one line, exit code 2), by the same check `clowncar doctor`'s disk row makes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import clowncar.cli as cli
from clowncar.errors import EXIT_BAD_INPUT, ConfigError
from clowncar.settings import check_runs_dir, runs_dir_problem

SPEC = "name: s\npreset: tiny-cpu\nsampler: random\nbudget: {max_trials: 1}\n"


def test_a_folder_or_one_that_can_be_made_is_a_runs_dir(tmp_path: Path) -> None:
    assert runs_dir_problem(tmp_path) is None
    assert runs_dir_problem(tmp_path / "not" / "yet") is None
    assert not (tmp_path / "not").exists()  # looking creates nothing


def test_a_file_or_a_path_under_one_is_no_runs_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "runs"
    blocker.write_text("")
    assert runs_dir_problem(blocker) == f"the runs dir {blocker} is not a folder"
    assert runs_dir_problem(blocker / "a" / "b") == (f"the runs dir {blocker / 'a' / 'b'} cannot be made: {blocker} "
                                                     "is not a folder")
    with pytest.raises(ConfigError) as err:
        check_runs_dir(blocker)
    assert str(err.value) == f"the runs dir {blocker} is not a folder; set CLOWNCAR_RUNS_DIR to a folder you can write in"
    assert err.value.exit_code == EXIT_BAD_INPUT


def test_a_folder_without_write_or_search_permission_is_no_runs_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != tmp_path)
    assert runs_dir_problem(tmp_path / "runs") == (f"the runs dir {tmp_path / 'runs'} cannot be written: no write "
                                                   f"or search permission on {tmp_path}")


@pytest.mark.parametrize("lacking", [os.W_OK, os.X_OK], ids=["write", "search"])
def test_a_folder_lacking_either_write_or_search_permission_is_no_runs_dir(
        lacking: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Making a sweep's folders in it takes both: a folder one may enter but not write in, or write in but not
    enter, is refused. (The process's own permissions stand in: as root, the kernel grants both on any folder.)"""
    monkeypatch.setattr(os, "access", lambda path, mode: not (Path(path) == tmp_path and mode & lacking))
    missing = {os.W_OK: "write", os.X_OK: "search"}[lacking]  # named: both are needed, either may be missing
    assert runs_dir_problem(tmp_path / "runs") == (f"the runs dir {tmp_path / 'runs'} cannot be written: no {missing} "
                                                   f"permission on {tmp_path}")
    assert runs_dir_problem(tmp_path.parent / "elsewhere") is None  # a folder with both is one


def test_a_relative_runs_dir_is_looked_up_from_the_working_folder(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert runs_dir_problem(Path("clowncar-runs")) is None
    (tmp_path / "clowncar-runs").write_text("")
    assert runs_dir_problem(Path("clowncar-runs")) == "the runs dir clowncar-runs is not a folder"


def test_sweep_run_refuses_a_runs_dir_that_is_a_file_and_records_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "runs"
    blocker.write_text("not a folder")
    (tmp_path / "s.yaml").write_text(SPEC)
    monkeypatch.setenv("CLOWNCAR_RUNS_DIR", str(blocker))
    monkeypatch.delenv("CLOWNCAR_RAY_ADDRESS", raising=False)
    with pytest.raises(SystemExit) as ended:
        cli.main(["sweep", "run", str(tmp_path / "s.yaml"), "--store", f"sqlite:///{tmp_path / 'c.db'}", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert ended.value.code == EXIT_BAD_INPUT
    assert err == (f"clowncar: error: the runs dir {blocker} is not a folder; set CLOWNCAR_RUNS_DIR to a folder you "
                   "can write in")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs", "s.yaml"]  # no store, no sweep marked failed
    assert blocker.read_text() == "not a folder"


def test_demo_refuses_a_runs_dir_that_is_a_file_before_it_builds_data(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "runs"
    blocker.write_text("not a folder")
    monkeypatch.setenv("CLOWNCAR_RUNS_DIR", str(blocker))
    monkeypatch.setenv("CLOWNCAR_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(SystemExit) as ended:
        cli.main(["demo", "--quiet", "--store", f"sqlite:///{tmp_path / 'c.db'}"])
    captured = capsys.readouterr()
    assert ended.value.code == EXIT_BAD_INPUT
    assert captured.err.strip() == (f"clowncar: error: the runs dir {blocker} is not a folder; set CLOWNCAR_RUNS_DIR "
                                    "to a folder you can write in")
    assert captured.out == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]  # no data built, no store
