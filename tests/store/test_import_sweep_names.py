"""Which sweep an imported file lands in: one per file, named after it, and never one sweep of unrelated runs when
files in different folders share a name (every record folder of the challenge holds a `train_seed1337.log`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clowncar.store import open_store
from clowncar.store.importers import default_sweeps, import_paths


def log_text(bpb: float) -> str:
    return ("step:1/2 train_loss:5.0000 train_time:10ms step_avg:10.00ms\n"
            "step:2/2 train_loss:4.5000 train_time:20ms step_avg:10.00ms\n"
            f"final_int8_zlib_roundtrip_exact val_loss:2.0 val_bpb:{bpb}\n")


def test_a_file_with_a_name_of_its_own_gets_a_sweep_named_after_its_stem() -> None:
    paths = [Path("r/logs/cadence2.tsv"), Path("r/logs/frugendorff.csv"), Path("r/train_gpt.log")]
    assert default_sweeps(paths) == {paths[0]: "cadence2", paths[1]: "frugendorff", paths[2]: "train_gpt"}
    assert default_sweeps([]) == {}
    top = [Path("/r1/train.log"), Path("/r2/train.log")]  # told apart by the folder just below the root
    assert default_sweeps(top) == {top[0]: "r1.train", top[1]: "r2.train"}


def test_files_sharing_a_stem_are_named_with_the_fewest_folders_that_tell_them_apart() -> None:
    paths = [Path("/r/10min/2026-03-19_A/train_seed1337.log"), Path("/r/10min/2026-03-20_B/train_seed1337.log"),
             Path("/r/10min/2026-03-20_B/train_seed42.log"), Path("/r/10min/X/train.log"),
             Path("/r/nonrecord/X/train.log")]
    assert default_sweeps(paths) == {
        paths[0]: "2026-03-19_A.train_seed1337", paths[1]: "2026-03-20_B.train_seed1337",
        paths[2]: "train_seed42",  # no other file has its stem
        paths[3]: "10min.X.train", paths[4]: "nonrecord.X.train"}  # the same folder name: one level further up


def test_two_files_of_one_folder_sharing_a_stem_keep_their_suffix(tmp_path: Path) -> None:
    paths = [tmp_path / "run" / "train.log", tmp_path / "run" / "train.txt", tmp_path / "other" / "train.log"]
    assert default_sweeps(paths) == {paths[0]: "run.train.log", paths[1]: "run.train.txt", paths[2]: "other.train"}


def test_relative_and_absolute_paths_are_told_apart_by_where_they_are(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "a").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    paths = [Path("train.log"), tmp_path / "b" / "train.log"]
    assert default_sweeps(paths) == {paths[0]: "a.train", paths[1]: "b.train"}


def test_importing_a_folder_of_records_puts_each_file_in_its_own_sweep(tmp_path: Path) -> None:
    for record, bpb in (("2026-03-19_A", 1.25), ("2026-03-20_B", 1.20)):
        (tmp_path / "records" / record).mkdir(parents=True)
        (tmp_path / "records" / record / "train_seed1337.log").write_text(log_text(bpb))
    (tmp_path / "records" / "2026-03-20_B" / "train_seed42.log").write_text(log_text(1.21))
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with open_store(url) as st:
        reports = import_paths(st, [tmp_path / "records"])
        assert [(r.path.name, r.status, r.sweep) for r in reports] == [
            ("train_seed1337.log", "imported", "2026-03-19_A.train_seed1337"),
            ("train_seed1337.log", "imported", "2026-03-20_B.train_seed1337"),
            ("train_seed42.log", "imported", "train_seed42")]
        frame = st.trials_frame()
        assert sorted(zip(frame["sweep"], frame["q_val_bpb"], strict=True)) == [
            ("2026-03-19_A.train_seed1337", 1.25), ("2026-03-20_B.train_seed1337", 1.20), ("train_seed42", 1.21)]


def test_a_named_sweep_still_takes_every_file(tmp_path: Path) -> None:
    for record in ("A", "B"):
        (tmp_path / record).mkdir()
        (tmp_path / record / "train.log").write_text(log_text(1.2 if record == "A" else 1.3))
    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as st:
        reports = import_paths(st, [tmp_path / "A", tmp_path / "B"], sweep="records")
        assert [r.sweep for r in reports] == ["records", "records"]
        assert len(st.trials_frame("records")) == 2


def _ran_sweep(st: Any, name: str) -> None:
    """A sweep as `sweep run` leaves it: source run, one finished trial, status done."""
    st.create_or_get_sweep(name, {"name": name})
    st.start_trial(name, f"{name}/0", 0, 0, {}, 1337, "node")
    st.finish_trial(f"{name}/0", 0, "ok", None, {"val_bpb": 2.0})
    st.set_sweep_status(name, "done")


def test_a_default_name_that_a_sweep_clowncar_ran_holds_takes_the_files_folder(tmp_path: Path) -> None:
    (tmp_path / "smoke.log").write_text(log_text(1.5))
    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as st:
        _ran_sweep(st, "smoke")
        (rep,) = import_paths(st, [tmp_path / "smoke.log"])
        assert (rep.status, rep.sweep) == ("imported", f"{tmp_path.name}.smoke")
        assert (st.get_sweep("smoke")["status"], len(st.trials_frame("smoke"))) == ("done", 1)  # untouched


def test_a_sweep_clowncar_ran_named_outright_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    (tmp_path / "smoke.log").write_text(log_text(1.5))
    (tmp_path / "other.log").write_text(log_text(1.4))
    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as st:
        _ran_sweep(st, "smoke")
        reports = import_paths(st, [tmp_path / "other.log", tmp_path / "smoke.log"], sweep="smoke")
        assert [r.status for r in reports] == ["refused", "refused"]
        assert reports[1].reason == (
            f"{tmp_path / 'smoke.log'}: sweep 'smoke' is a sweep clowncar ran, not an import: its trials come from "
            "its own Optuna study; import into another sweep with --sweep NAME")
        assert (st.get_sweep("smoke")["status"], len(st.trials_frame("smoke"))) == ("done", 1)  # untouched
        (rep,) = import_paths(st, [tmp_path / "smoke.log"], sweep="smoke-imported")
        assert rep.status == "imported" and st.get_sweep("smoke-imported")["source"] == "import"


def test_a_later_import_of_another_folders_same_named_file_gets_a_sweep_of_its_own(tmp_path: Path) -> None:
    for record, bpb in (("A", 1.25), ("B", 1.20), ("C", 1.30)):
        (tmp_path / record).mkdir()
        (tmp_path / record / "train_seed1337.log").write_text(log_text(bpb))
    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as st:
        (a,) = import_paths(st, [tmp_path / "A"])
        (b,) = import_paths(st, [tmp_path / "B"])  # one at a time, as new records appear
        (again,) = import_paths(st, [tmp_path / "A"])
        assert (a.sweep, b.sweep) == ("train_seed1337", "B.train_seed1337")
        assert (again.status, again.present_in) == ("present", ["train_seed1337"])
        (tmp_path / "A" / "train_seed1337.log").write_text(log_text(1.26))  # rewritten: a new trial, same sweep
        (grown,) = import_paths(st, [tmp_path / "A"])
        assert (grown.status, grown.sweep) == ("imported", "train_seed1337")
        assert len(st.trials_frame("train_seed1337")) == 2 and len(st.trials_frame("B.train_seed1337")) == 1


def test_the_names_a_file_may_take_go_one_folder_deeper_at_a_time() -> None:
    from clowncar.store.importers import _candidates

    assert _candidates(Path("/r/a/b/train.log"), "train") == ["train", "b.train", "a.b.train", "r.a.b.train"]
    assert _candidates(Path("/r/a/b/train.log"), "a.b.train") == ["a.b.train", "b.train", "r.a.b.train"]
    # a default that kept the suffix (train.log beside train.txt) keeps it further up too
    assert _candidates(Path("/x/run/train.log"), "run.train.log") == ["run.train.log", "x.run.train.log"]


def test_held_means_a_sweep_clowncar_ran_or_another_files_trials(tmp_path: Path) -> None:
    from clowncar.store.importers import _held_by_others

    mine, theirs = tmp_path / "mine" / "train.log", tmp_path / "theirs" / "train.log"
    for path, bpb in ((mine, 1.2), (theirs, 1.3)):
        path.parent.mkdir()
        path.write_text(log_text(bpb))
    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as st:
        assert _held_by_others(st, "nothing-here", mine) is False
        import_paths(st, [theirs], sweep="theirs-sweep")
        import_paths(st, [mine], sweep="mine-sweep")
        assert _held_by_others(st, "theirs-sweep", mine) is True
        assert _held_by_others(st, "mine-sweep", mine) is False  # its own trials: the same sweep again
        st.create_or_get_sweep("empty-import", {"imported": True}, source="import")
        assert _held_by_others(st, "empty-import", mine) is False  # no trials: nobody's yet
        st.create_or_get_sweep("bare", {"imported": True}, source="import")  # trials without provenance
        st.start_trial("bare", "b0", 0, 0, {}, 1, None)
        st.finish_trial("b0", 0, "ok", None, {"val_bpb": 1.0})
        assert _held_by_others(st, "bare", mine) is True
        _ran_sweep(st, "ran")
        assert _held_by_others(st, "ran", mine) is True


def test_two_files_of_one_import_never_move_into_the_same_free_name(tmp_path: Path) -> None:
    (tmp_path / "d" / "x").mkdir(parents=True)
    (tmp_path / "d" / "x" / "train.log").write_text(log_text(1.2))  # default "train", held: takes "x.train"
    (tmp_path / "d" / "x.train.log").write_text(log_text(1.3))  # default "x.train", now taken: one folder up
    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as st:
        _ran_sweep(st, "train")
        reports = import_paths(st, [tmp_path / "d"])
        assert [(r.path.name, r.sweep) for r in reports] == [("train.log", "x.train"), ("x.train.log", "d.x.train")]


def test_when_every_name_is_held_the_default_stays_and_a_run_sweep_still_refuses(tmp_path: Path,
                                                                                  monkeypatch) -> None:
    import clowncar.store.importers as importers

    (tmp_path / "smoke.log").write_text(log_text(1.5))
    (tmp_path / "other.log").write_text(log_text(1.4))
    monkeypatch.setattr(importers, "_held_by_others", lambda store, name, path: True)  # every candidate taken
    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as st:
        _ran_sweep(st, "smoke")
        reports = import_paths(st, [tmp_path / "other.log", tmp_path / "smoke.log"])
        assert [r.status for r in reports] == ["ready", "refused"]  # nothing written: no keep_going
        assert st.get_sweep("other") is None
        reports = import_paths(st, [tmp_path / "other.log", tmp_path / "smoke.log"], keep_going=True)
        assert [(r.status, r.sweep) for r in reports] == [("imported", "other"), ("refused", "")]
