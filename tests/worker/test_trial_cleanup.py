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


def test_an_out_holding_an_earlier_trial_is_refused_unless_overwrite_removes_it_first(tmp_path: Path,
                                                                                      capsys) -> None:
    import pytest

    from clowncar.errors import EXIT_BAD_INPUT, ClownCarError
    from clowncar.worker.commands import earlier_trial

    earlier_trial(tmp_path, overwrite=False)  # an empty folder, or one of the user's own files: fine
    (tmp_path / "notes.txt").write_text("mine")
    earlier_trial(tmp_path, overwrite=False)
    (tmp_path / "result.json").write_text('{"status": "ok", "q_val_bpb": 2.04}')
    (tmp_path / "model.ptz").write_bytes(b"x")
    with pytest.raises(ClownCarError) as err:
        earlier_trial(tmp_path, overwrite=False)
    assert str(err.value) == (f"{tmp_path} holds an earlier trial (status ok): result.json, model.ptz; pass "
                              "--overwrite to replace it, or choose another --out")
    assert err.value.exit_code == EXIT_BAD_INPUT and (tmp_path / "result.json").exists()
    earlier_trial(tmp_path, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]  # gone before the new trial starts
    assert capsys.readouterr().out == f"removed the earlier trial's result.json, model.ptz from {tmp_path} (--overwrite)\n"


def test_an_earlier_trial_without_a_status_in_its_result_is_named_without_one(tmp_path: Path) -> None:
    import pytest

    from clowncar.errors import ClownCarError
    from clowncar.worker.commands import earlier_trial

    (tmp_path / "model.ptz").write_bytes(b"x")  # no result.json
    with pytest.raises(ClownCarError) as err:
        earlier_trial(tmp_path, overwrite=False)
    assert str(err.value) == (f"{tmp_path} holds an earlier trial: model.ptz; pass --overwrite to replace it, or "
                              "choose another --out")
    (tmp_path / "result.json").write_text('{"status": 3}')  # a status that is no word: not shown
    with pytest.raises(ClownCarError) as err:
        earlier_trial(tmp_path, overwrite=False)
    assert str(err.value).startswith(f"{tmp_path} holds an earlier trial: result.json, model.ptz; pass --overwrite")
