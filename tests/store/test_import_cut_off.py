"""`clowncar import --keep-cut-off`: a run whose training log stops before its last step with no final/eval line
(the challenge's records hold one, killed at step 16/100) is stored as a crashed trial, its steps kept and its
reason saying where it stops, instead of refusing the file; without the flag the file is refused, as a log still
being written must be."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from clowncar.store import open_store
from clowncar.store.import_command import import_runs
from clowncar.store.importers import LegacyFormatError, import_paths, scan
from clowncar.store.importers.base import LegacyTrial
from clowncar.store.importers.train_log import parse

END = "final_int8_zlib_roundtrip_exact val_loss:2.10000000 val_bpb:1.30000000\n"
CUT = "step:1/9 train_loss:3.0\nstep:2/9 train_loss:2.9\nstep:2/9 val_loss:2.8 val_bpb:1.7\n"
CUT_XNOR = "track_non_record_16mb/2026-04-05_118M_XNOR-Net_FP8_1024D_10L/log_eggroll_all-layers-perturbed.txt"


def test_a_cut_off_run_kept_is_a_crashed_trial_with_its_steps_and_no_score() -> None:
    (trial,) = parse(CUT, "cut.log", keep_cut_off=True).trials
    assert (trial.status, trial.key) == ("crashed", "run1")
    assert trial.reason == "log cut off: run 1 stops at step 2/9 (line 3) with no final/eval line"
    assert trial.notes == ["run 1 is cut off at step 2/9: stored as a crashed trial, its steps kept, no score"]
    assert [s["step"] for s in trial.steps] == [1, 2] and trial.result["steps"] == 2
    assert not trial.named_evals and "headline_bpb" not in trial.result
    assert trial.result["val_bpb"] == 1.7  # the last in-training eval, as for any run; a crashed trial never ranks


def test_only_the_cut_off_run_of_a_file_is_crashed_and_a_whole_log_is_unchanged() -> None:
    whole = "step:1/1 train_loss:3.0\n" + END
    parsed = parse(whole + CUT, "two.log", keep_cut_off=True)
    assert [(t.status, t.reason) for t in parsed.trials] == [
        ("ok", ""), ("crashed", "log cut off: run 2 stops at step 2/9 (line 5) with no final/eval line")]
    assert parsed.trials[1].result["provenance"]["run"] == "2 of 2"
    kept, plain = parse(whole, "w.log", keep_cut_off=True), parse(whole, "w.log")
    assert [(t.status, t.reason, t.notes, t.result) for t in kept.trials] == [
        (t.status, t.reason, t.notes, t.result) for t in plain.trials]
    with pytest.raises(LegacyFormatError, match=r"^two\.log: run 2 stops at step 2/9 .*--keep-cut-off stores it "):
        parse(whole + CUT, "two.log")


def test_the_command_stores_the_cut_off_run_as_crashed_once(tmp_path: Path, capsys) -> None:
    log = tmp_path / "cut.log"
    log.write_text(CUT)
    store = f"sqlite:///{tmp_path / 's.db'}"
    with pytest.raises(LegacyFormatError, match="--keep-cut-off stores it as a crashed trial"):
        import_runs([log], sweep=None, store=store, keep_going=False, quiet=True, verbose=False)
    assert not (tmp_path / "s.db").exists()  # refused before the store was opened
    capsys.readouterr()
    import_runs([log], sweep=None, store=store, keep_going=False, quiet=True, verbose=False, keep_cut_off=True)
    out = capsys.readouterr().out.splitlines()
    assert out[1].endswith("; no final/eval line, so no headline; note: run 1 is cut off at step 2/9: "
                           "stored as a crashed trial, its steps kept, no score")
    assert out[2] == "1 file: 1 imported (1 new trial), 0 already present, 0 refused, 0 skipped (not a training log)"
    import_runs([log], sweep=None, store=store, keep_going=False, quiet=True, verbose=False, keep_cut_off=True)
    assert "already present" in capsys.readouterr().out  # its id is the file's digest: never stored twice
    with open_store(store) as st:
        trials = st.trials_frame("cut")
    assert len(trials) == 1 and trials.loc[0, "status"] == "crashed"
    assert trials.loc[0, "reason"] == ("log cut off: run 1 stops at step 2/9 (line 3) with no final/eval line; "
                                       f"imported from {os.path.abspath(log)}")


def test_every_record_log_imports_with_keep_cut_off(records: Path, tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path / 'r.db'}") as st:
        reports = import_paths(st, [records], keep_cut_off=True)
        crashed = st.trials_frame().query("status != 'ok'")
    assert not [r for r in reports if r.status == "refused"]
    (rep,) = [r for r in reports if r.path == records / CUT_XNOR]
    assert rep.status == "imported" and rep.steps == 16
    assert list(crashed["reason"]) == [
        f"log cut off: run 1 stops at step 16/100 (line 1506) with no final/eval line; imported from "
        f"{os.path.abspath(records / CUT_XNOR)}"]


def test_a_cut_off_log_is_refused_unless_asked_by_every_entry_point(tmp_path: Path) -> None:
    log = tmp_path / "cut.log"
    log.write_text(CUT)
    (report,) = scan([log])
    assert report.status == "refused" and "--keep-cut-off" in report.reason
    assert scan([log], keep_cut_off=True)[0].status == "ready"
    with open_store(f"sqlite:///{tmp_path / 's.db'}") as st, pytest.raises(LegacyFormatError, match="cut off"):
        import_paths(st, [log])


def test_a_trials_id_leaves_out_a_section_only_its_derived_keys_filled_and_keeps_the_rest() -> None:
    from clowncar.store.importers import _underived

    trial = LegacyTrial(key="k", config={"model": {"trigram": 1}, "train": {"seed": 3, "lr": 0.1}, "eval": {}},
                        result={}, derived=["model.trigram", "train.lr"])
    assert _underived(trial) == {"train": {"seed": 3}, "eval": {}}
