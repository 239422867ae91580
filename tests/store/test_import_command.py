"""`clowncar import` as a command, in this process, on short files written here: what it prints (the store, each
file's row, skipped lines, totals), --keep-going, -q and -v, and that a refusal or nothing to write leaves the
store alone. What each file's report holds is in test_import_reports.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from clowncar.errors import StoreError
from clowncar.store import open_store
from clowncar.store.import_command import import_runs
from clowncar.store.importers import LegacyFormatError

LOG = ("step:1/4 train_loss:5.0000 train_time:10ms step_avg:10.00ms\n"
       "step:2/4 train_loss:4.5000 train_time:20ms step_avg:10.00ms\n"
       "step:2/4 val_loss:4.4 val_bpb:2.6\n"
       "noise here\n"
       "final_int8_zlib_roundtrip_exact val_loss:2.0 val_bpb:1.2345\n")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cmd.db'}"


def test_the_command_writes_reports_and_totals(tmp_path: Path, capsys) -> None:
    path = write(tmp_path / "a.log", LOG)
    import_runs([path], sweep=None, store=url(tmp_path), keep_going=False, quiet=False, verbose=False)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"store: sqlite:///{tmp_path / 'cmd.db'}"
    assert out[1] == f"  skipped lines of {path}: 1 text without a value (banner or prose)"
    assert out[3].startswith(f"imported         {path} (training-log) -> sweep a: 1 trial (1 new)")
    assert out[4] == "1 file: 1 imported (1 new trial), 0 already present, 0 refused, 0 skipped (not a training log)"
    import_runs([path], sweep=None, store=url(tmp_path), keep_going=False, quiet=True, verbose=True)
    out = capsys.readouterr().out.splitlines()
    assert out == [f"store: sqlite:///{tmp_path / 'cmd.db'}", f"already present  {path} (training-log): 1 trial already stored in sweep a",
                   "1 file: 0 imported (0 new trials), 1 already present, 0 refused, 0 skipped (not a training log)"]


def test_quiet_lists_no_skipped_file_and_still_counts_it(tmp_path: Path, capsys) -> None:
    log = write(tmp_path / "d/a.log", LOG)
    write(tmp_path / "d/submission.json", '{"val_bpb": 1.2}\n')
    import_runs([tmp_path / "d"], sweep=None, store=url(tmp_path), keep_going=False, quiet=True, verbose=False)
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out] == ["store:", "imported", "2"]
    assert out[1].startswith(f"imported         {log}")
    assert out[2] == "2 files: 1 imported (1 new trial), 0 already present, 0 refused, 1 skipped (not a training log)"
    import_runs([tmp_path / "d"], sweep=None, store=url(tmp_path), keep_going=False, quiet=False, verbose=False)
    assert f"skipped          {tmp_path / 'd/submission.json'}: not a training log" in capsys.readouterr().out


def test_sweep_over_files_stored_in_other_sweeps_says_they_stay_there(tmp_path: Path, capsys) -> None:
    a, b = write(tmp_path / "a.log", LOG), write(tmp_path / "b.log", LOG.replace("5.0000", "6.0000"))
    import_runs([a, b], store=url(tmp_path))  # one sweep per file: a, b
    capsys.readouterr()
    import_runs([a, b], sweep="grp", store=url(tmp_path), quiet=True)
    out = capsys.readouterr().out.splitlines()
    assert out[1] == f"already present  {a} (training-log): 1 trial already stored in sweep a; they stay there, not in grp"
    assert out[2] == f"already present  {b} (training-log): 1 trial already stored in sweep b; they stay there, not in grp"
    assert out[3].startswith("2 files: 0 imported (0 new trials), 2 already present")
    assert out[4] == ("nothing was added to sweep grp: 2 files are already stored in other sweeps and stay there (a "
                      "trial, whose id is a digest of its file, is in one sweep of a store); to group them under grp, "
                      "import them into another store (--store sqlite:///OTHER.db --sweep grp)")
    assert json_sweeps(tmp_path) == "a b"
    c = write(tmp_path / "c.log", LOG.replace("5.0000", "7.0000"))
    import_runs([a, c], sweep="grp", store=url(tmp_path), quiet=True)
    out = capsys.readouterr().out.splitlines()
    assert out[-1].startswith("sweep grp holds only the new trials: 1 files are already stored in other sweeps")
    assert json_sweeps(tmp_path) == "a b grp"


def test_an_import_stopped_by_a_refusal_still_says_what_is_already_stored(tmp_path: Path, capsys) -> None:
    old = write(tmp_path / "a.log", LOG)
    import_runs([old], store=url(tmp_path), quiet=True)
    capsys.readouterr()
    new = write(tmp_path / "c.log", LOG.replace("5.0000", "6.0000"))
    bad = write(tmp_path / "b.txt", "notes only\n")
    with pytest.raises(LegacyFormatError, match="nothing was written"):
        import_runs([old, bad, new], store=url(tmp_path), quiet=True)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"already present  {old} (training-log): 1 trial already stored in sweep a"
    assert out[2] == f"not written      {new} (training-log): 1 trial (the import stopped)"
    assert out[3] == ("3 files: 0 imported (0 new trials), 1 already present, 1 refused, 0 skipped (not a training "
                      "log), 1 not written")


def test_the_command_lists_every_skipped_block_when_verbose(tmp_path: Path, capsys) -> None:
    path = write(tmp_path / "a.log", LOG)
    import_runs([path], sweep="s", store=url(tmp_path), keep_going=False, quiet=False, verbose=True)
    out = capsys.readouterr().out.splitlines()
    assert out[1] == f"  skipped {path}:4: text without a value (banner or prose): noise here"
    assert "-> sweep s:" in out[3]


def test_a_refused_file_stops_the_command_before_the_store_is_opened(tmp_path: Path, capsys) -> None:
    good = write(tmp_path / "a.log", LOG)
    bad = write(tmp_path / "b.txt", "notes only\n")
    with pytest.raises(LegacyFormatError) as err:
        import_runs([good, bad], sweep=None, store=url(tmp_path), keep_going=False, quiet=False, verbose=False)
    assert str(err.value) == (f"{bad}: not a training log: no step or eval lines (expected one of: "
                              "frugendorff-csv, micro-crawler-log, cadence-tsv, training-log) (1 of 2 files refused; "
                              "nothing was written: --keep-going imports the others)")
    assert not (tmp_path / "cmd.db").exists()
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"not written      {good}") and out[1].startswith(f"refused          {bad}")
    assert out[2].endswith(", 1 not written")


def test_keep_going_imports_the_others_and_still_fails(tmp_path: Path, capsys) -> None:
    good = write(tmp_path / "a.log", LOG)
    bad = write(tmp_path / "b.txt", "notes only\n")
    with pytest.raises(LegacyFormatError) as err:
        import_runs([good, bad], sweep=None, store=url(tmp_path), keep_going=True, quiet=True, verbose=False)
    assert str(err.value).endswith("training-log) (1 of 2 files refused)")
    assert capsys.readouterr().out.splitlines()[1].startswith(f"imported         {good}")
    with pytest.raises(LegacyFormatError) as err:  # one file named alone: its reason, nothing added
        import_runs([bad], sweep=None, store=url(tmp_path), keep_going=False, quiet=True, verbose=False)
    assert str(err.value).endswith("(expected one of: frugendorff-csv, micro-crawler-log, cadence-tsv, "
                                   "training-log)")


def test_a_folder_with_nothing_to_import_is_refused_and_never_opens_the_store(tmp_path: Path, capsys) -> None:
    write(tmp_path / "d/README.md", "# notes\n")
    with pytest.raises(LegacyFormatError) as err:
        import_runs([tmp_path / "d"], sweep=None, store=url(tmp_path), keep_going=False, quiet=False, verbose=False)
    assert str(err.value) == (f"nothing to import under {tmp_path / 'd'}: none of its 1 files is a training log or "
                              "legacy run file (all skipped)")
    assert capsys.readouterr().out.splitlines()[-1].endswith("0 refused, 1 skipped (not a training log)")
    assert os.listdir(tmp_path) == ["d"]


def test_an_empty_folder_is_refused_and_one_among_others_is_named(tmp_path: Path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(LegacyFormatError) as err:
        import_runs([tmp_path / "empty"], store=url(tmp_path))
    assert str(err.value) == f"nothing to import under {tmp_path / 'empty'}: it holds no files"
    assert capsys.readouterr().out == "0 files: 0 imported (0 new trials), 0 already present, 0 refused, 0 skipped (not a training log)\n"
    log = write(tmp_path / "logs/a.log", LOG)
    import_runs([tmp_path / "empty", log.parent], store=url(tmp_path), quiet=True)
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == f"nothing to import under {tmp_path / 'empty'}: it holds no files"
    assert out[-2].startswith("1 file: 1 imported")


def test_the_command_defaults_count_skipped_lines_and_stop_at_a_refusal(tmp_path: Path, capsys) -> None:
    path = write(tmp_path / "a.log", LOG)
    import_runs([path], store=url(tmp_path))
    out = capsys.readouterr().out.splitlines()
    assert out[1] == f"  skipped lines of {path}: 1 text without a value (banner or prose)"  # not quiet, not every
    bad = write(tmp_path / "b.txt", "notes only\n")
    with pytest.raises(LegacyFormatError):
        import_runs([write(tmp_path / "c.log", LOG.replace("5.0000", "6.0000")), bad], store=url(tmp_path))
    assert json_sweeps(tmp_path) == "a"  # without --keep-going nothing of c.log was written


def json_sweeps(tmp_path: Path) -> str:
    with open_store(url(tmp_path)) as st:
        return " ".join(st.sweeps_frame()["name"])


def test_the_command_keeps_going_past_a_file_the_store_refuses(tmp_path: Path, monkeypatch, capsys) -> None:
    from clowncar.store.store import Store

    real = Store.add_steps
    calls = {"n": 0}

    def refuse_first(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise StoreError("no")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Store, "add_steps", refuse_first)
    paths = [write(tmp_path / "a.log", LOG), write(tmp_path / "b.log", LOG.replace("5.0000", "6.0000"))]
    with pytest.raises(LegacyFormatError, match=r"a\.log: no \(1 of 2 files refused\)$"):
        import_runs(paths, store=url(tmp_path), keep_going=True)
    assert json_sweeps(tmp_path) == "b"


def test_the_command_is_registered_as_import() -> None:
    import typer

    from clowncar.store.import_command import register

    app = typer.Typer()
    register(app)
    (command,) = app.registered_commands
    assert command.name == "import" and command.callback is import_runs


@pytest.mark.parametrize("name", ["../../etc", "a/b", "a\\b", "a\nb", "tab\there", "", ".", "..", " padded",
                                  "padded ", "x" * 129])
def test_a_typed_sweep_name_that_is_a_path_or_not_one_printable_line_is_refused(name: str, tmp_path: Path) -> None:
    from clowncar.errors import ClownCarError

    with pytest.raises(ClownCarError) as err:
        import_runs([tmp_path / "nothing-read.log"], sweep=name, store=f"sqlite:///{tmp_path / 's.db'}")
    assert str(err.value) == (f"--sweep {name!r}: a sweep name is 1-128 printable characters, no '/' or '\\', not "
                              "only dots, no leading or trailing space")
    assert not list(tmp_path.iterdir())  # refused before any path is read or store made


@pytest.mark.parametrize("name", ["records 2026-03", "v2.final", "x" * 128, "a.b-c_d", "XX.X", ".hidden"])
def test_a_typed_sweep_name_may_hold_spaces_and_dots(name: str, tmp_path: Path) -> None:
    log = tmp_path / "t.log"
    log.write_text("step:1/1 train_loss:3.0\nfinal_int8_zlib_roundtrip_exact val_loss:2.0 val_bpb:1.2\n")
    import_runs([log], sweep=name, store=f"sqlite:///{tmp_path / 's.db'}", quiet=True)
    with open_store(f"sqlite:///{tmp_path / 's.db'}") as st:
        assert st.get_sweep(name) is not None
