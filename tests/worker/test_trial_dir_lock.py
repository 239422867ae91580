"""`trial run` holds its folder while it runs: a second `trial run --overwrite` into the folder of one still running
removed its files and the two wrote one folder (train.log of one trial, result.json and model.ptz of the other)."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

import clowncar.worker.run as run_module
from clowncar.errors import ClownCarError, ConfigError
from clowncar.worker.commands import _run, running_in


def _locked_elsewhere(out: Path) -> bool:
    fd = os.open(out, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def test_a_run_into_the_folder_of_a_running_trial_is_refused_even_with_overwrite(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(run_module, "run_trial", lambda cfg, out: pytest.fail("the second trial ran"))
    out = tmp_path / "t"
    out.mkdir()
    for name in ("train.log", "events.jsonl"):
        (out / name).write_text("the running trial's")
    with running_in(out, []), pytest.raises(ClownCarError) as err:
        _run(None, out, "tiny-cpu", [], overwrite=True)
    assert str(err.value) == (f"{out} is the folder of a trial running now (another `clowncar trial run`): wait for "
                              "it to end, or choose another --out")
    assert err.value.exit_code == 2
    assert sorted(p.name for p in out.iterdir()) == ["events.jsonl", "train.log"]


def test_a_new_folder_is_made_and_held_while_the_trial_runs(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "a" / "t"
    seen = []

    def fake_run_trial(cfg, out_dir: Path) -> int:
        seen.append(_locked_elsewhere(out_dir))
        (out_dir / "result.json").write_text('{"status": "ok"}')
        return 0

    monkeypatch.setattr(run_module, "run_trial", fake_run_trial)
    _run(None, out, "tiny-cpu", [])
    assert seen == [True] and not _locked_elsewhere(out)


def test_a_run_refused_before_it_writes_leaves_no_folder(tmp_path: Path, monkeypatch) -> None:
    def refused(cfg, out_dir: Path) -> int:
        raise ConfigError("train.device is cuda but no CUDA device is available")

    monkeypatch.setattr(run_module, "run_trial", refused)
    with pytest.raises(ConfigError):
        _run(None, tmp_path / "a" / "t", "tiny-cpu", [])
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match="exists and is not a directory"):
        _run(None, tmp_path / "f", "tiny-cpu", [])
