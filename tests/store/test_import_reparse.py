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
