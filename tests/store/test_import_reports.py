"""`clowncar import` in this process, on short files written here: which files are tried, the id each trial gets,
what lands in the store (whole file or nothing), and the report a user reads. The command's own output is in
test_import_command.py; the command-line runs over the legacy runs are in test_importers.py and
test_records_import.py."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from clowncar.errors import StoreError
from clowncar.store import importers as imp
from clowncar.store import open_store
from clowncar.store.import_command import _groups, _headlines, _row, _skipped_lines, _totals
from clowncar.store.importers import (
    FileReport,
    LegacyFormatError,
    NotATrainingLog,
    parse_file,
    scan,
    sweep_csv,
    uids_of,
    where,
)
from clowncar.store.importers.base import LegacyTrial, Parsed, Skipped

LOG = ("step:1/4 train_loss:5.0000 train_time:10ms step_avg:10.00ms\n"
       "step:2/4 train_loss:4.5000 train_time:20ms step_avg:10.00ms\n"
       "step:2/4 val_loss:4.4 val_bpb:2.6\n"
       "noise here\n"
       "final_int8_zlib_roundtrip_exact val_loss:2.0 val_bpb:1.2345\n")
TWO_RUNS = LOG + LOG.replace("5.0000", "5.5000")
CSV_HEAD = ",".join(sweep_csv.HEADER) + "\n"
CSV_ROW = "2026-03-25 09:30:00,frug2_001,1.2345,3,1,2,4,0.002,1.0,3.5,0,1000,250,750,80.5,81.2,1234567,why,note\n"
TSV = "step\ttype\ttrain_loss\tval_bpb\tstep_ms\tgravity\n1\tF\t3.5\t\t100.5\t\n2\tEVAL\t\t1.9\t\t\n"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def store(tmp_path: Path):
    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as st:
        yield st


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# --- which files, and what each one is ------------------------------------------------------------------------

def test_where_is_the_absolute_path_quoted_for_a_shell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert where(Path("a.log")) == str(tmp_path / "a.log")
    assert where(Path("my runs/a b.log")) == f"'{tmp_path}/my runs/a b.log'"


def test_a_file_that_cannot_be_read_or_is_not_utf8_is_said_so(tmp_path: Path, monkeypatch) -> None:
    blob = tmp_path / "blob.log"
    blob.write_bytes(b"step:1/2 loss:3\n\xff\xfe")
    with pytest.raises(NotATrainingLog) as err:
        imp._read(blob)
    assert str(err.value) == f"{blob}: not a training log: not UTF-8 text (byte 16 is 0xff)"

    def denied(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_bytes", denied)
    with pytest.raises(LegacyFormatError) as err:
        imp._read(blob)
    assert str(err.value) == f"cannot read {blob}: Permission denied"
    assert not isinstance(err.value, NotATrainingLog)  # a file we could not read is refused, never skipped


def test_an_os_error_without_a_message_still_names_the_file(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(Path, "read_bytes", lambda self: (_ for _ in ()).throw(OSError("odd")))
    with pytest.raises(LegacyFormatError, match=r"^cannot read .*x\.log: odd$"):
        imp._read(tmp_path / "x.log")


def test_the_format_comes_from_the_content_never_the_name(tmp_path: Path) -> None:
    assert parse_file(write(tmp_path / "a.csv", LOG)).format == "training-log"
    assert parse_file(write(tmp_path / "b.log", CSV_HEAD + CSV_ROW)).format == "frugendorff-csv"
    assert parse_file(write(tmp_path / "c.csv", TSV)).format == "cadence-tsv"
    assert parse_file(tmp_path / "c.csv", text=LOG).format == "training-log"  # text given: the file isn't read
    cadence = parse_file(write(tmp_path / "clean_cadence2.tsv", TSV))
    assert cadence.trials[0].key == "clean_cadence2"  # a trace's key is its file's stem


@pytest.mark.parametrize("text", ["", " \n\t\n"])
def test_an_empty_file_is_not_a_training_log(tmp_path: Path, text: str) -> None:
    path = write(tmp_path / "e.log", text)
    with pytest.raises(NotATrainingLog) as err:
        parse_file(path)
    assert str(err.value) == f"{path}: not a training log: empty file"


def test_every_directory_named_is_searched(tmp_path: Path) -> None:
    write(tmp_path / "one/a.log", LOG)
    write(tmp_path / "two/b.log", LOG)
    assert [f.name for f, _ in imp._files([tmp_path / "one", tmp_path / "two"])] == ["a.log", "b.log"]


def test_directories_are_searched_in_path_order_and_a_missing_path_stops_everything(tmp_path: Path) -> None:
    for name in ("d/b.log", "d/a/z.log", "d/a/y.txt", "e.log"):
        write(tmp_path / name, LOG)
    files = imp._files([tmp_path / "d", tmp_path / "e.log"])
    assert files == [(tmp_path / "d/a/y.txt", False), (tmp_path / "d/a/z.log", False),
                     (tmp_path / "d/b.log", False), (tmp_path / "e.log", True)]
    with pytest.raises(LegacyFormatError) as err:
        imp._files([tmp_path / "e.log", tmp_path / "gone.log"])
    assert str(err.value) == f"no such file or directory: {tmp_path / 'gone.log'}"


def test_a_fifo_or_a_link_loop_is_named_for_what_it_is_not_as_missing(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    (tmp_path / "dangling").symlink_to(tmp_path / "gone.log")
    with pytest.raises(LegacyFormatError) as err:
        imp._files([tmp_path / "pipe"])
    assert str(err.value) == f"{tmp_path / 'pipe'} is not a regular file or a directory"
    for name in ("loop", "dangling"):
        with pytest.raises(LegacyFormatError) as err:
            imp._files([tmp_path / name])
        assert str(err.value) == f"{tmp_path / name} is a symbolic link to nothing readable (dangling or a loop)"
    write(tmp_path / "d/a.log", LOG)
    os.mkfifo(tmp_path / "d/pipe.log")  # inside a directory: not a file to try, never opened
    assert imp._files([tmp_path / "d"]) == [(tmp_path / "d/a.log", False)]


def test_scan_says_for_each_file_ready_refused_or_skipped(tmp_path: Path) -> None:
    good = write(tmp_path / "runs/good.log", LOG)
    write(tmp_path / "runs/README.md", "# notes\n\nnothing here\n")
    write(tmp_path / "runs/cut.csv", CSV_HEAD + '2026,"open quote\n')
    named = write(tmp_path / "notes.txt", "just notes\n")
    reports = scan([tmp_path / "runs", named])
    assert [(r.path.name, r.status) for r in reports] == [
        ("README.md", "skipped"), ("cut.csv", "refused"), ("good.log", "ready"), ("notes.txt", "refused")]
    readme, cut, ready, notes = reports
    with pytest.raises(NotATrainingLog) as err:
        parse_file(tmp_path / "runs/README.md")
    assert readme.reason == str(err.value)  # inside a directory: skipped, with no list of formats
    assert readme.reason.startswith(f"{tmp_path / 'runs/README.md'}: not a training log")
    assert notes.reason.endswith(" (expected one of: frugendorff-csv, micro-crawler-log, cadence-tsv, "
                                 "training-log)")
    assert "truncated file?" in cut.reason and cut.parsed is None and cut.uids == []
    assert ready.sha256 == sha(LOG) and ready.uids == [f"log-{sha(LOG)[:16]}"] and ready.reason == ""
    assert ready.format == "training-log" and ready.trials == 1
    assert (readme.format, readme.trials) == ("", 0)
    assert good == ready.path


# --- trial ids ---------------------------------------------------------------------------------------------

def parsed(fmt: str, n: int, per_trial: bool = False) -> Parsed:
    return Parsed(format=fmt, trials=[LegacyTrial(key=f"k{i}", config={}, result={}) for i in range(n)],
                  per_trial_identity=per_trial)


def test_a_file_identified_trial_is_its_format_prefix_and_the_file_digest() -> None:
    digest = "0123456789abcdef" + "f" * 48
    assert uids_of(parsed("training-log", 1), digest) == ["log-0123456789abcdef"]
    assert uids_of(parsed("cadence-tsv", 1), digest) == ["tsv-0123456789abcdef"]
    assert uids_of(parsed("something-new", 1), digest) == ["file-0123456789abcdef"]
    assert uids_of(parsed("training-log", 3), digest) == [
        "log-0123456789abcdef-run1", "log-0123456789abcdef-run2", "log-0123456789abcdef-run3"]


def test_a_row_identified_trial_is_its_key_and_a_digest_of_its_own_content() -> None:
    p = parsed("frugendorff-csv", 2, per_trial=True)
    first = uids_of(p, "x" * 64)
    assert [u.split("-")[0] for u in first] == ["k0", "k1"] and all(len(u.split("-")[1]) == 12 for u in first)
    assert first == uids_of(p, "y" * 64)  # the file's digest plays no part: a file that grows keeps old ids
    assert first[0] != first[1].replace("k1", "k0")  # the key is part of the digest too
    base = imp._digest(p.trials[0])
    changes = [("config", {"model": {"crawler_loops": 4}}), ("result", {"val_bpb": 1.2}), ("seed", 7),
               ("steps", [{"step": 1}]), ("evals", [{"step": 1}]), ("named_evals", [{"name": "f"}])]
    for attr, value in changes:
        t = LegacyTrial(key="k0", config={}, result={})
        setattr(t, attr, value)
        assert imp._digest(t) != base, attr
    assert imp._digest(LegacyTrial(key="k0", config={}, result={}, status="failed", started_at=5.0)) == base


def test_ids_are_stable_across_releases(tmp_path: Path) -> None:
    """A store filled by an earlier release must recognize a file imported again: the id of a row and of a
    file may never change (these are the ids this release gives; a change to them is a migration)."""
    (row,) = uids_of(sweep_csv.parse(CSV_HEAD + CSV_ROW, "f.csv"), "")
    assert row == "frug2_001-e23ec7820682"
    assert uids_of(parse_file(write(tmp_path / "a.log", LOG)), sha(LOG)) == ["log-" + sha(LOG)[:16]]


def test_a_digest_does_not_depend_on_key_order() -> None:
    a = LegacyTrial(key="k", config={"a": 1, "b": {"x": 1, "y": 2}}, result={})
    b = LegacyTrial(key="k", config={"b": {"y": 2, "x": 1}, "a": 1}, result={})
    assert imp._digest(a) == imp._digest(b)
    assert len(imp._digest(a)) == 64


# --- writing ---------------------------------------------------------------------------------------------------

def test_a_file_lands_whole_in_a_sweep_named_after_it(store, tmp_path: Path) -> None:
    path = write(tmp_path / "run_a.log", TWO_RUNS)
    (rep,) = imp.import_paths(store, [path])
    assert (rep.status, rep.sweep, rep.new_trials, rep.steps, rep.evals, rep.named_evals) == (
        "imported", "run_a", 2, 4, 4, 2)
    sweep = store.get_sweep("run_a")
    assert sweep["source"] == "import" and sweep["status"] == "imported"
    assert sweep["spec"] == {"imported": True, "format": "training-log"}
    base = f"log-{sha(TWO_RUNS)[:16]}"
    assert sorted(store.trial_states("run_a")) == [f"{base}-run1", f"{base}-run2"]
    assert [store.get_trial(f"{base}-run{i}")["number"] for i in (1, 2)] == [0, 1]
    trial = store.get_trial(f"{base}-run2")
    (attempt,) = trial["attempts"]
    assert attempt["reason"] == f"imported from {path}"
    assert attempt["result"]["provenance"] == {"run": "2 of 2", "imported_from": str(path),
                                               "file_sha256": sha(TWO_RUNS), "content_sha256": sha(TWO_RUNS.rstrip()),
                                               "format": "training-log"}
    assert (attempt["steps"], attempt["evals"], len(attempt["named_evals"])) == (2, 2, 1)


def test_a_trial_keeps_its_config_seed_and_times(store, tmp_path: Path) -> None:
    trial = LegacyTrial(key="k", config={"train": {"seed": 7}, "model": {"crawler_loops": 3}}, result={"x": 1},
                        seed=7, started_at=1_700_000_000.0, status="diverged")
    rep = FileReport(tmp_path / "f.log", "ready", parsed=Parsed(format="training-log", trials=[trial]),
                     uids=["log-k"], sha256="ab" * 32)
    imp.write(store, [FileReport(tmp_path / "skipped.md", "skipped", "not a log"), rep])
    assert rep.status == "imported" and rep.sweep == "f"
    stored = store.get_trial("log-k")
    assert stored["config"] == trial.config and stored["seed"] == 7
    (attempt,) = stored["attempts"]
    assert attempt["status"] == "diverged"
    assert attempt["started_at"].timestamp() == attempt["ended_at"].timestamp() == 1_700_000_000.0


def test_three_runs_are_numbered_in_order(store, tmp_path: Path) -> None:
    (rep,) = imp.import_paths(store, [write(tmp_path / "three.log", TWO_RUNS + LOG.replace("5.0000", "9.0000"))])
    assert sorted(store.get_trial(uid)["number"] for uid in rep.uids) == [0, 1, 2]
    assert [uid[-5:] for uid in rep.uids] == ["-run1", "-run2", "-run3"]


def test_import_paths_keeps_going_past_a_file_the_store_refuses(store, tmp_path: Path, monkeypatch) -> None:
    real = store.add_steps
    first = {"done": False}

    def refuse_once(*args, **kwargs):
        if not first["done"]:
            first["done"] = True
            raise StoreError("no")
        return real(*args, **kwargs)

    monkeypatch.setattr(store, "add_steps", refuse_once)
    paths = [write(tmp_path / "a.log", LOG), write(tmp_path / "b.log", LOG.replace("5.0000", "6.0000"))]
    reports = imp.import_paths(store, paths, keep_going=True)
    assert [r.status for r in reports] == ["refused", "imported"]


def test_the_same_file_again_under_another_name_is_already_present(store, tmp_path: Path) -> None:
    imp.import_paths(store, [write(tmp_path / "a.log", LOG)], sweep="first")
    (rep,) = imp.import_paths(store, [write(tmp_path / "copy/b.log", LOG)])
    assert (rep.status, rep.present_in, rep.new_trials, rep.sweep) == ("present", ["first"], 0, "b")
    assert store.get_sweep("b") is None  # nothing was created for it
    assert list(store.trial_states("first")) == [f"log-{sha(LOG)[:16]}"]


def test_a_grown_file_adds_only_its_new_trials_numbered_after_the_old(store, tmp_path: Path) -> None:
    path = write(tmp_path / "sweep.csv", CSV_HEAD + CSV_ROW)
    imp.import_paths(store, [path], sweep="frug")
    path.write_text(CSV_HEAD + CSV_ROW + CSV_ROW.replace("frug2_001", "frug2_002"))
    (rep,) = imp.import_paths(store, [path], sweep="frug")
    assert (rep.status, rep.new_trials) == ("imported", 1)
    numbers = sorted((store.get_trial(uid)["number"], uid.split("-")[0]) for uid in store.trial_states("frug"))
    assert numbers == [(0, "frug2_001"), (1, "frug2_002")]


def test_a_file_the_store_refuses_is_rolled_back_and_stops_the_rest(store, tmp_path: Path, monkeypatch) -> None:
    first = write(tmp_path / "a.log", LOG)
    second = write(tmp_path / "b.log", LOG.replace("5.0000", "6.0000"))
    third = write(tmp_path / "c.log", LOG.replace("5.0000", "7.0000"))
    real = store.add_evals
    calls = {"n": 0}

    def refuse_second(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise StoreError("trial stored with another config")
        return real(*args, **kwargs)

    monkeypatch.setattr(store, "add_evals", refuse_second)
    reports = scan([first, second, third])
    imp.write(store, reports)
    assert [r.status for r in reports] == ["imported", "refused", "ready"]
    refused = reports[1]
    assert refused.reason == f"{second}: trial stored with another config"
    assert (refused.new_trials, refused.steps, refused.evals, refused.named_evals) == (0, 0, 0, 0)
    assert store.get_sweep("b") is None and store.get_sweep("c") is None  # b rolled back, c never tried
    calls["n"] = -10
    reports = scan([first, second, third])
    monkeypatch.setattr(store, "add_evals", refuse_second)
    calls["n"] = 1
    imp.write(store, reports, keep_going=True)
    assert [r.status for r in reports] == ["present", "refused", "imported"]


def test_a_stopped_import_says_which_unwritten_files_are_already_stored(store, tmp_path: Path, monkeypatch) -> None:
    old = write(tmp_path / "old.log", LOG)
    imp.write(store, scan([old]))
    new = write(tmp_path / "new.log", LOG.replace("5.0000", "6.0000"))
    other = write(tmp_path / "other.log", LOG.replace("5.0000", "7.0000"))

    def refuse(*args, **kwargs):
        raise StoreError("no")

    monkeypatch.setattr(store, "add_steps", refuse)
    reports = scan([new, old, other])
    imp.write(store, reports)  # new.log refused: the import stops before old.log and other.log
    assert [(r.status, r.present_in) for r in reports] == [("refused", []), ("present", ["old"]), ("ready", [])]


def test_import_paths_refuses_everything_when_one_file_is_bad(store, tmp_path: Path) -> None:
    good = write(tmp_path / "a.log", LOG)
    bad = write(tmp_path / "b.txt", "just notes\n")
    with pytest.raises(LegacyFormatError) as err:
        imp.import_paths(store, [good, bad])
    assert str(err.value).startswith(f"{bad}: not a training log")
    assert store.get_sweep("a") is None
    reports = imp.import_paths(store, [good, bad], keep_going=True)
    assert [r.status for r in reports] == ["imported", "refused"]


# --- what the user reads ---------------------------------------------------------------------------------------

def test_skipped_lines_group_across_blank_lines_with_one_reason() -> None:
    skipped = [Skipped(3, "prose", "banner"), Skipped(4, "prose", "more"), Skipped(6, "prose", "after a blank"),
               Skipped(8, "prose", "after a non-blank"), Skipped(9, "bad number", "x:y"), Skipped(10, "prose", "z")]
    assert _groups(skipped, blank={5}) == [(3, 6, 3, "prose", "banner"), (8, 8, 1, "prose", "after a non-blank"),
                                           (9, 9, 1, "bad number", "x:y"), (10, 10, 1, "prose", "z")]
    assert _groups([], set()) == []


def report_for(tmp_path: Path, text: str, name: str = "a.log") -> FileReport:
    (rep,) = scan([write(tmp_path / name, text)])
    rep.status = "imported"
    return rep


def test_a_files_skipped_lines_are_counted_by_reason_or_listed_block_by_block(tmp_path: Path) -> None:
    text = LOG + "\n".join(["more prose"] * 3 + ["", "x" * 120]) + "\n"
    rep = report_for(tmp_path, text)
    path = tmp_path / "a.log"
    assert _skipped_lines(rep, every=False) == [
        f"  skipped lines of {path}: 5 text without a value (banner or prose)",
        f"  not stored from the step lines of {path}: step_avg (2 lines)"]
    assert _skipped_lines(rep, every=True) == [
        f"  skipped {path}:4: text without a value (banner or prose): noise here",
        f"  skipped {path}:6-10: text without a value (banner or prose) (4 lines): more prose",
        f"  not stored from the step lines of {path}: step_avg (2 lines)"]
    rep.parsed.skipped[-1] = Skipped(11, "other", "x" * 120)
    rep.parsed.skipped.insert(1, Skipped(5, "other", "y" * 100))
    every = _skipped_lines(rep, every=True)
    assert every[1].endswith(": other: " + "y" * 100)  # 100 characters are shown whole
    assert every[-2].endswith(": other: " + "x" * 97 + "...")  # longer ones are cut to 100
    counts = _skipped_lines(rep, every=False)[0]
    assert counts.endswith("4 text without a value (banner or prose), 2 other")  # most first


def test_a_clean_file_reports_no_skipped_lines(tmp_path: Path) -> None:
    rep = report_for(tmp_path, "step:1/2 train_loss:5.0\nfinal_int8_zlib_roundtrip_exact val_loss:2 val_bpb:1.5\n")
    assert _skipped_lines(rep, every=False) == [] and _skipped_lines(rep, every=True) == []


def test_the_headline_of_each_run_is_named_with_its_mode_and_line(tmp_path: Path) -> None:
    rep = report_for(tmp_path, TWO_RUNS)
    assert _headlines(rep) == (
        "; run 1: headline final_int8_zlib_roundtrip_exact val_bpb 1.2345 (standard, quantized, int8; line 5)"
        "; run 2: headline final_int8_zlib_roundtrip_exact val_bpb 1.2345 (standard, quantized, int8; line 10)")
    one = report_for(tmp_path, LOG.replace("final_int8_zlib_roundtrip_exact", "final_x"), "b.log")
    one.parsed.trials[0].named_evals[-1].update(mode="sliding", weights="", quant=None, repeats=3)
    assert _headlines(one) == "; headline final_x val_bpb 1.2345 (sliding, repeats 3; line 5)"
    bare = report_for(tmp_path, "step:1/2 train_loss:5.0\nstep:2/2 val_loss:4 val_bpb:2\n", "c.log")
    assert _headlines(bare) == "; no final/eval line, so no headline"
    csv = report_for(tmp_path, CSV_HEAD + CSV_ROW, "d.csv")
    assert _headlines(csv) == ""


def test_each_status_has_its_row_and_the_totals_count_them(tmp_path: Path) -> None:
    rep = report_for(tmp_path, LOG)
    rep.sweep, rep.new_trials, rep.steps, rep.evals, rep.named_evals = "a", 1, 2, 2, 1
    path = tmp_path / "a.log"
    assert _row(rep) == (f"imported         {path} (training-log) -> sweep a: 1 trial (1 new), 2 step rows, 2 eval "
                         "rows and 1 named evals written" + _headlines(rep))
    present = report_for(tmp_path, LOG, "p.log")
    present.status, present.present_in = "present", ["x", "y"]
    assert _row(present) == f"already present  {tmp_path / 'p.log'} (training-log): 1 trial already stored in sweep x, y"
    assert _row(present, "x") == _row(present)  # --sweep x: where it is already
    assert _row(present, "grp") == (
        f"already present  {tmp_path / 'p.log'} (training-log): 1 trial already stored in sweep x, y; they stay "
        "there, not in grp")
    ready = report_for(tmp_path, LOG, "r.log")
    ready.status = "ready"
    assert _row(ready) == f"not written      {tmp_path / 'r.log'} (training-log): 1 trial (the import stopped)"
    refused = FileReport(tmp_path / "bad.txt", "refused", f"{tmp_path / 'bad.txt'}: not a training log: empty file")
    assert _row(refused) == f"refused          {tmp_path / 'bad.txt'}: not a training log: empty file"
    skipped = FileReport(tmp_path / "R.md", "skipped", "cannot read it")
    assert _row(skipped) == f"skipped          {tmp_path / 'R.md'}: cannot read it"
    reports = [rep, present, ready, refused, skipped]
    assert _totals(reports) == ("5 files: 1 imported (1 new trial), 1 already present, 1 refused, 1 skipped "
                                "(not a training log), 1 not written")
    assert _totals([rep, present]) == ("2 files: 1 imported (1 new trial), 1 already present, 0 refused, "
                                       "0 skipped (not a training log)")


def test_a_run_without_a_headline_does_not_hide_the_next_ones(tmp_path: Path) -> None:
    no_final = LOG.replace("final_int8_zlib_roundtrip_exact val_loss:2.0 val_bpb:1.2345\n", "")
    rep = report_for(tmp_path, no_final + LOG)
    assert _headlines(rep) == ("; run 1: no final/eval line, so no headline; run 2: headline "
                               "final_int8_zlib_roundtrip_exact val_bpb 1.2345 (standard, quantized, int8; line 9)")


def test_a_skipped_line_of_101_characters_is_cut(tmp_path: Path) -> None:
    rep = report_for(tmp_path, LOG)
    rep.parsed.skipped = [Skipped(4, "prose", "z" * 101)]
    assert _skipped_lines(rep, every=True)[0].endswith(": prose: " + "z" * 97 + "...")


def test_every_unstored_field_is_named(tmp_path: Path) -> None:
    rep = report_for(tmp_path, LOG)
    rep.parsed.unstored_fields = {"tok_s": 3, "mem": 1}
    assert _skipped_lines(rep, every=False)[-1].endswith(": mem (1 lines), tok_s (3 lines)")
