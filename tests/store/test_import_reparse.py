"""`clowncar import` of files already present whose stored trials an older importer read otherwise: the row names
the differing fields and nothing changes; `--reparse` replaces those trials (same id, same sweep), a second
`--reparse` finds nothing to do, and a trial clowncar ran is never touched. Run through the real entry point
against SQLite and PostgreSQL; the store operation itself is in test_contract.py."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlalchemy import delete, select, update

from clowncar.store import open_store
from clowncar.store import schema as s

LOG = ("step:1/4 train_loss:5.0000 train_time:10ms step_avg:10.00ms\n"
       "step:2/4 train_loss:4.5000 train_time:20ms step_avg:10.00ms\n"
       "step:2/4 val_loss:4.4 val_bpb:2.6\n"
       "Serialized model int8+zlib: 15000000 bytes\n"
       "Code size (compressed): 20000 bytes\n"
       "Total submission size int8+zlib: 15020000 bytes\n"
       "final_int8_zlib_roundtrip val_loss:2.0000 val_bpb:1.2345 eval_time:1500ms\n"
       "final_int8_zlib_roundtrip_exact val_loss:2.00000000 val_bpb:1.23450000\n")

Cli = Callable[..., tuple[int, str, str]]


def _log(tmp_path: Path, name: str = "a.log", text: str = LOG) -> Path:
    path = tmp_path / "logs" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _as_the_old_importer_read_it(url: str) -> None:
    """Turn the stored trial into what the importer stored before it read code bytes and repeats: no code bytes,
    the file bytes as the artifact total, a TTT-style eval time counted twice, no `repeats`, a step row lost."""
    with open_store(url) as st, st.engine.begin() as conn:
        aid, result = conn.execute(select(s.attempts.c.id, s.attempts.c.result)).one()
        old = {k: v for k, v in result.items() if k != "artifact_code_bytes"}
        old.update(artifact_bytes=15_000_000, eval_seconds=3.0)
        conn.execute(update(s.attempts).where(s.attempts.c.id == aid).values(result=old))
        conn.execute(update(s.named_evals).values(repeats=None))
        conn.execute(delete(s.steps).where(s.steps.c.step == 2))


def _stored(url: str) -> tuple[dict, list, list]:
    with open_store(url) as st, st.engine.connect() as conn:
        result = conn.execute(select(s.attempts.c.result)).scalar_one()
        steps = conn.execute(select(s.steps.c.step).order_by(s.steps.c.step)).scalars().all()
        repeats = conn.execute(select(s.named_evals.c.repeats).order_by(s.named_evals.c.seq)).scalars().all()
    return result, steps, repeats


def test_a_present_file_whose_stored_values_differ_is_named_and_nothing_changes(store_url: str, tmp_path: Path,
                                                                               cli: Cli) -> None:
    path = _log(tmp_path)
    assert cli("import", str(path), "--store", store_url, "-q")[0] == 0
    code, out, _ = cli("import", str(path), "--store", store_url, "-q")
    assert code == 0 and f"already present  {path} (training-log): 1 trial already stored in sweep a\n" in out
    _as_the_old_importer_read_it(store_url)
    before = _stored(store_url)
    code, out, _ = cli("import", str(path), "--store", store_url, "-q")
    assert code == 0
    assert out.splitlines()[1] == (
        f"already present  {path} (training-log): 1 trial already stored in sweep a; stored values differ from "
        "this importer's reading: artifact_code_bytes, artifact_bytes, eval_seconds, steps (1 row stored, 2 read), "
        "named_evals.repeats; --reparse replaces them")
    assert "re-read" not in out
    assert _stored(store_url) == before


def test_reparse_replaces_the_differing_trials_and_a_second_reparse_changes_nothing(store_url: str,
                                                                                   tmp_path: Path, cli: Cli) -> None:
    path = _log(tmp_path)
    cli("import", str(path), "--store", store_url, "-q")
    fresh = _stored(store_url)
    _as_the_old_importer_read_it(store_url)
    code, out, _ = cli("import", "--reparse", str(path), "--store", store_url, "-q")
    assert code == 0
    fields = "artifact_code_bytes, artifact_bytes, eval_seconds, steps (1 row stored, 2 read), named_evals.repeats"
    assert out.splitlines()[1:] == [
        f"re-read          {path} (training-log): 1 trial of sweep a replaced by this importer's reading "
        f"(fields changed: {fields})",
        "1 file: 0 imported (0 new trials), 1 already present, 0 refused, 0 skipped (not a training log)",
        f"re-read 1 trial (fields changed: {fields})"]
    assert _stored(store_url) == fresh
    assert fresh[0]["artifact_bytes"] == 15_020_000 and fresh[1] == [1, 2]
    with open_store(store_url) as st:
        trials = st.trials_frame()  # the same one trial, in the same sweep, with the new reading
        assert trials[["sweep", "artifact_bytes", "eval_seconds"]].values.tolist() == [["a", 15_020_000, 1.5]]
    code, out, _ = cli("import", "--reparse", str(path), "--store", store_url, "-q")
    assert code == 0 and out.splitlines()[-1] == (
        "re-read 0 trials: every stored trial of these files holds this importer's reading")
    assert _stored(store_url) == fresh


def test_reparse_never_touches_a_trial_clowncar_ran(store_url: str, tmp_path: Path, cli: Cli) -> None:
    """A sweep clowncar ran holds a trial under the id the log's digest gives (and another trial of its own):
    the file reads as present there, no difference is claimed and --reparse leaves both trials as they were."""
    path = _log(tmp_path)
    cli("import", str(path), "--store", f"sqlite:///{tmp_path / 'probe.db'}", "-q")
    with open_store(f"sqlite:///{tmp_path / 'probe.db'}") as probe:
        uid = probe.trials_frame()["trial_uid"].iloc[0]
    with open_store(store_url) as st:
        st.create_or_get_sweep("ran", {"space": {}}, source="run")
        for number, own in enumerate((uid, "ran-1")):
            st.start_trial("ran", own, number, 0, {"model": {"num_layers": 9}}, 1337, "node-a")
            st.add_steps(own, 0, [{"step": 1, "train_loss": 9.0}])
            st.finish_trial(own, 0, "ok", None, {"artifact_bytes": 1, "eval_seconds": 2.0})
        before = [st.get_trial(u) for u in (uid, "ran-1")]
    code, out, _ = cli("import", "--reparse", str(path), "--store", store_url, "-q")
    assert code == 0
    assert out.splitlines()[1:] == [
        f"already present  {path} (training-log): 1 trial already stored in sweep ran",
        "1 file: 0 imported (0 new trials), 1 already present, 0 refused, 0 skipped (not a training log)",
        "re-read 0 trials: every stored trial of these files holds this importer's reading"]
    with open_store(store_url) as st:
        assert [st.get_trial(u) for u in (uid, "ran-1")] == before


def test_an_import_stopped_by_a_refused_file_still_names_present_files_that_differ(tmp_path: Path,
                                                                                    cli: Cli) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    path = _log(tmp_path)
    cli("import", str(path), "--store", url, "-q")
    _as_the_old_importer_read_it(url)
    before = _stored(url)
    cut = _log(tmp_path, "cut.log", LOG.split("Serialized")[0].replace("step:2/4 val", "step:2/9 val"))
    code, out, err = cli("import", "--reparse", str(path), str(cut), "--store", url, "-q")
    assert code == 2 and "cut.log" in err
    assert (f"already present  {path} (training-log): 1 trial already stored in sweep a; stored values differ "
            "from this importer's reading: ") in out
    assert "re-read" not in out and _stored(url) == before


# The comparison and the replacing loop on their own: TrialReadings made here, a stub in place of the store.

def _reading(**fields: object) -> object:
    import datetime as dt

    from clowncar.store.imported import TrialReading

    base: dict[str, object] = {"config": {"model": {"d": 1, "keep": 5, "gone": 2}}, "seed": 1, "status": "ok",
                               "reason": None, "result": {"steps": 2},
                               "started_at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC)}
    return TrialReading(**{**base, **fields})  # type: ignore[arg-type]


def test_differences_name_each_config_key_that_differs_is_added_or_is_gone_and_no_other() -> None:
    from clowncar.store.importers.reread import differences

    read = _reading(config={"model": {"d": 3, "keep": 5, "new": 4}})
    assert differences(_reading(), read) == ["config.model.d", "config.model.new", "config.model.gone"]
    assert differences(_reading(), _reading()) == []
    assert differences(_reading(), _reading(seed=2, status="failed")) == ["seed", "status"]


def test_a_start_time_differs_past_a_millisecond_and_only_when_the_reading_has_one() -> None:
    import datetime as dt

    from clowncar.store.importers.reread import differences

    t = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert differences(_reading(), _reading(started_at=t + dt.timedelta(milliseconds=1))) == []
    assert differences(_reading(), _reading(started_at=t - dt.timedelta(microseconds=1001))) == ["started_at"]
    assert differences(_reading(), _reading(started_at=t + dt.timedelta(seconds=1))) == ["started_at"]
    assert differences(_reading(started_at=None), _reading()) == ["started_at"]
    assert differences(_reading(), _reading(started_at=None)) == []


def test_rows_compare_as_stored_with_the_stores_defaults_a_missing_float_as_none_and_the_first_row_of_a_key() -> None:
    from clowncar.store.importers.reread import differences

    stored = _reading(evals=[{"step": 1, "mode": "standard", "weights": "raw", "val_loss": None, "val_bpb": 1.5}],
                      named_evals=[{"seq": 0, "name": "final", "mode": "standard", "weights": "quantized"}])
    read = _reading(evals=[{"step": 1, "val_loss": float("nan"), "val_bpb": 1.5},
                           {"step": 1, "mode": "standard", "weights": "raw", "val_bpb": 9.0}],  # same key: dropped
                    named_evals=[{"seq": 0, "name": "final"}])
    assert differences(stored, read) == []
    read.evals[0]["val_bpb"] = 1.6  # type: ignore[attr-defined]
    assert differences(stored, read) == ["evals.val_bpb"]


def test_reading_of_a_trial_is_what_write_stores_for_it(tmp_path: Path) -> None:
    import datetime as dt
    import os

    from clowncar.store.importers import FileReport, provenance
    from clowncar.store.importers.base import LegacyTrial, Parsed
    from clowncar.store.importers.reread import reading_of

    trials = [LegacyTrial(key="a", config={"model": {"d": 1}}, result={"steps": 2, "provenance": {"run": 2}},
                          seed=7, status="failed", started_at=1_700_000_000.5, steps=[{"step": 1}],
                          evals=[{"step": 1}], named_evals=[{"seq": 0}]),
              LegacyTrial(key="b", config={}, result={"steps": 2})]
    rep = FileReport(path=tmp_path / "a.log", status="present", parsed=Parsed("training-log", trials),
                     uids=["u1", "u2"], sha256="S", content_sha256="C")
    first, second = (reading_of(rep, t) for t in trials)
    assert (first.config, first.seed, first.status) == ({"model": {"d": 1}}, 7, "failed")
    assert first.reason == f"imported from {os.path.abspath(tmp_path / 'a.log')}"
    assert first.result == {"steps": 2, "provenance": {"run": 2, **provenance(rep)}}
    assert first.started_at == dt.datetime.fromtimestamp(1_700_000_000.5, dt.UTC)
    assert (first.steps, first.evals, first.named_evals) == ([{"step": 1}], [{"step": 1}], [{"seq": 0}])
    assert second.result == {"steps": 2, "provenance": provenance(rep)} and second.started_at is None


class _Store:
    """imported_reading from a dict; replace_imported_trial refuses the ids in `refuse`."""

    def __init__(self, stored: dict[str, object], refuse: tuple[str, ...] = ()) -> None:
        self.stored, self.refuse, self.replaced = stored, refuse, []

    def imported_reading(self, uid: str) -> object:
        return self.stored.get(uid)

    def replace_imported_trial(self, uid: str, reading: object) -> None:
        from clowncar.errors import StoreError

        if uid in self.refuse:
            raise StoreError("no such trial")
        self.replaced.append(uid)


def _present(tmp_path: Path, name: str, uids: list[str], status: str = "present") -> object:
    from clowncar.store.importers import FileReport
    from clowncar.store.importers.base import LegacyTrial, Parsed

    trials = [LegacyTrial(key=u, config={"model": {"d": 1, "keep": 5, "gone": 2}}, seed=1,
                          result={"steps": 2}) for u in uids]
    return FileReport(path=tmp_path / name, status=status, parsed=Parsed("training-log", trials), uids=uids)


def test_compare_present_reads_back_every_trial_of_each_present_file_but_those_found_under_another_id(
        tmp_path: Path) -> None:
    from clowncar.store.importers.reread import compare_present
    from clowncar.store.importers.same_run import SameRun

    store = _Store({u: _reading(started_at=None) for u in ("r1", "p1", "p2", "p3")})  # no provenance: differ
    ready = _present(tmp_path, "r.log", ["r1"], status="ready")
    present = _present(tmp_path, "p.log", ["p1", "p2", "p3"])
    present.same_as["p1"] = SameRun("other", "sw", "why")  # type: ignore[attr-defined]
    compare_present(store, [ready, present])  # type: ignore[arg-type]
    assert ready.differs == {}  # type: ignore[attr-defined]
    assert list(present.differs) == ["p2", "p3"]  # type: ignore[attr-defined]


def test_reparse_replaces_each_differing_trial_and_stops_a_file_at_its_first_refused_one(tmp_path: Path) -> None:
    from clowncar.store.importers import where
    from clowncar.store.importers.reread import reparse

    idle = _present(tmp_path, "idle.log", ["i1"])  # present, nothing differs
    both = _present(tmp_path, "both.log", ["b1", "b2"])
    stopped = _present(tmp_path, "stopped.log", ["s1", "s2", "s3"])
    after = _present(tmp_path, "after.log", ["a1"])
    for rep in (both, stopped, after):
        rep.differs = {u: ["seed"] for u in rep.uids}  # type: ignore[attr-defined]
    store = _Store({}, refuse=("s2",))
    reparse(store, [idle, both, stopped, after])  # type: ignore[arg-type]
    assert store.replaced == ["b1", "b2", "s1", "a1"]
    assert (idle.status, both.status, both.reread, after.status) == ("present", "re-read", 2, "re-read")  # type: ignore[attr-defined]
    assert (stopped.status, stopped.reread) == ("refused", 1)  # type: ignore[attr-defined]
    assert stopped.reason == f"{where(tmp_path / 'stopped.log')}: trial s2 not re-read: no such trial"  # type: ignore[attr-defined]
