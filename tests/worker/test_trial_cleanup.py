"""What an interrupted `trial run` takes back (clowncar/worker/commands.py `_discard`), in this process: a folder it
made goes whole; in a folder that was there, only the run's own files modified since it began go. The real
signals on a real process are in test_trial_interrupts.py."""

from __future__ import annotations

import os
from pathlib import Path

from clowncar.worker.commands import _discard, _modified_since


def test_a_file_modified_at_the_start_counts_as_the_runs_and_a_missing_one_does_not(tmp_path: Path) -> None:
    f = tmp_path / "train.log"
    f.write_text("x")
    os.utime(f, (1000.0, 1000.0))
    assert _modified_since(f, 1000.0) and not _modified_since(f, 1000.5)
    assert not _modified_since(tmp_path / "none", 0.0)


def test_in_a_folder_that_was_there_only_the_runs_own_new_files_go(tmp_path: Path) -> None:
    for name in ("train.log", "result.json", "notes.txt", ".model.ptz.tmp-12"):
        (tmp_path / name).write_text("x")
    os.utime(tmp_path / "result.json", (1000.0, 1000.0))  # an earlier trial's result: older than the run
    _discard(tmp_path, [], since=2000.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "result.json"]


def test_a_folder_the_run_made_goes_with_the_parents_it_made(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b"
    out.mkdir(parents=True)
    (out / "train.log").write_text("x")
    _discard(out, [out, out.parent], since=0.0)
    assert list(tmp_path.iterdir()) == []
