"""`clowncar import` of a copy of a stored training log that differs only in line ends (CRLF) or a trailing newline:
one run stays one trial, reported already present with the trial it is; a copy with one number changed is a new
trial; a store filled before imports kept the digest of the text still finds such copies. Run through the real
entry point against SQLite and PostgreSQL; the store look-up itself is in test_contract.py."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlalchemy import func, select, update

from clowncar.store import open_store
from clowncar.store import schema as s

LOG = ("step:1/4 train_loss:5.0000 train_time:10ms step_avg:10.00ms\n"
       "step:2/4 train_loss:4.5000 train_time:20ms step_avg:10.00ms\n"
       "step:2/4 val_loss:4.4 val_bpb:2.6\n"
       "Serialized model int8+zlib: 15000000 bytes\n"
       "Code size (compressed): 20000 bytes\n"
       "final_int8_zlib_roundtrip val_loss:2.0000 val_bpb:1.2345 eval_time:1500ms\n"
       "final_int8_zlib_roundtrip_exact val_loss:2.00000000 val_bpb:1.23450000\n")
LINE_ENDS = "the files differ only in line ends or in white space at their end"

Cli = Callable[..., tuple[int, str, str]]


def _log(tmp_path: Path, folder: str, data: str) -> Path:
    path = tmp_path / folder / "train.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode())
    return path


def _trial_ids(url: str) -> list[str]:
    with open_store(url) as st, st.engine.connect() as conn:
        return list(conn.execute(select(s.trials.c.uid).order_by(s.trials.c.id)).scalars())


def _import(cli: Cli, url: str, *paths: Path) -> list[str]:
    code, out, err = cli("import", *map(str, paths), "--store", url, "-q")
    assert code == 0, err
    return out.splitlines()[1:-1]  # one row per file, between the store line and the totals


def test_crlf_and_trailing_newline_copies_of_a_log_are_the_stored_trial(store_url: str, tmp_path: Path,
                                                                         cli: Cli) -> None:
    original = _log(tmp_path, "rec", LOG)
    _import(cli, store_url, original)
    [uid] = _trial_ids(store_url)
    crlf = _log(tmp_path, "crlf", LOG.replace("\n", "\r\n"))
    newline = _log(tmp_path, "newline", LOG + "\n")
    rows = _import(cli, store_url, crlf, newline)
    assert rows == [f"already present  {p} (training-log): the same run as trial {uid} in sweep train "
                    f"({LINE_ENDS})" for p in (crlf, newline)]
    assert _trial_ids(store_url) == [uid]
    # both copies first, in one import: the second finds the trial the first just wrote
    other = tmp_path / "other"
    first, second = _log(other, "a", LOG.rstrip("\n")), _log(other, "b", LOG.replace("\n", "\r\n") + "\r\n")
    code, out, _ = cli("import", str(first), str(second), "--store", f"sqlite:///{tmp_path / 'other.db'}", "-q")
    assert code == 0 and "1 imported (1 new trial), 1 already present" in out
    assert f"already present  {second} (training-log): the same run as trial log-" in out


def test_a_copy_with_one_number_changed_is_a_new_trial_beside_the_line_end_copy(store_url: str, tmp_path: Path,
                                                                               cli: Cli) -> None:
    _import(cli, store_url, _log(tmp_path, "rec", LOG))
    crlf = _log(tmp_path, "crlf", LOG.replace("\n", "\r\n"))
    changed = _log(tmp_path, "changed", LOG.replace("train_loss:4.5000", "train_loss:4.5001"))
    rows = _import(cli, store_url, crlf, changed)
    assert rows[0].startswith(f"already present  {crlf} (training-log): the same run as trial log-")
    assert rows[1].startswith(f"imported         {changed} (training-log) -> sweep changed.train: 1 trial (1 new)")
    assert len(_trial_ids(store_url)) == 2


def _as_imported_before_the_text_digest(url: str) -> None:
    """Take `provenance.content_sha256` out of every stored result, as imports before it stored them."""
    with open_store(url) as st, st.engine.begin() as conn:
        for aid, result in conn.execute(select(s.attempts.c.id, s.attempts.c.result)).all():
            provenance = {k: v for k, v in result["provenance"].items() if k != "content_sha256"}
            conn.execute(update(s.attempts).where(s.attempts.c.id == aid)
                         .values(result={**result, "provenance": provenance}))


def test_a_store_filled_before_the_digest_finds_the_file_and_its_copies_by_their_reading(
        store_url: str, tmp_path: Path, cli: Cli) -> None:
    original = _log(tmp_path, "rec", LOG)
    _import(cli, store_url, original)
    _as_imported_before_the_text_digest(store_url)
    [uid] = _trial_ids(store_url)
    crlf = _log(tmp_path, "crlf", LOG.replace("\n", "\r\n") + "\r\n\r\n")
    changed = _log(tmp_path, "changed", LOG.replace("train_loss:4.5000", "train_loss:4.5001"))
    rows = _import(cli, store_url, original, crlf, changed)
    assert rows[0] == f"already present  {original} (training-log): 1 trial already stored in sweep train"
    assert rows[1] == (f"already present  {crlf} (training-log): the same run as trial {uid} in sweep train "
                       "(read alike: the same config, result, step, eval and named-eval rows)")
    assert rows[2].startswith(f"imported         {changed} (training-log)")
    ids = _trial_ids(store_url)
    assert len(ids) == 2 and ids[0] == uid
    with open_store(store_url) as st, st.engine.connect() as conn:  # nothing was added to the stored trial
        assert conn.execute(select(func.count()).select_from(s.attempts)).scalar() == 2


def test_a_copy_whose_result_differs_is_a_new_trial_with_or_without_the_stored_digest(
        store_url: str, tmp_path: Path, cli: Cli) -> None:
    """Same steps, same step rows, another final BPB: not the same run, whether the stored trial has the digest of
    its text (the copy's differs) or not (its result differs, so its rows are never read back)."""
    _import(cli, store_url, _log(tmp_path, "rec", LOG))
    changed = _log(tmp_path, "changed", LOG.replace("val_bpb:1.2345", "val_bpb:1.2346"))
    assert _import(cli, store_url, changed)[0].startswith(f"imported         {changed} (training-log)")
    _as_imported_before_the_text_digest(store_url)
    again = _log(tmp_path, "again", LOG.replace("val_bpb:1.2345", "val_bpb:1.2347"))
    assert _import(cli, store_url, again)[0].startswith(f"imported         {again} (training-log)")
    assert len(_trial_ids(store_url)) == 3


def test_old_mac_line_ends_and_trailing_white_space_digest_like_lf() -> None:
    from clowncar.store.importers.same_run import content_digest

    lf = content_digest("a\nb\n")
    assert content_digest("a\rb\r") == content_digest("a\r\nb\r\n") == content_digest("a\nb \n\t\n") == lf
    assert content_digest("a\n\nb") != lf and content_digest("ab") != lf


class _Store:
    """The two look-ups find_same_runs makes, answered from lists: every imported trial is a candidate (they
    all have the trial's steps), in the order given."""

    def __init__(self, candidates: list[tuple[str, str, dict[str, object]]]) -> None:
        self.candidates = candidates
        self.asked: list[object] = []

    def imported_with_metric(self, name: str, value: object) -> list[tuple[str, str, dict[str, object]]]:
        self.asked.append(value)
        return self.candidates

    def imported_reading(self, uid: str) -> None:
        return None


def _stored(run: int | None, digest: str = "D") -> dict[str, object]:
    return {"steps": 2, "provenance": {"content_sha256": digest, **({"run": run} if run is not None else {})}}


def _report(tmp_path: Path, runs: list[int | None], steps: list[object] | None = None,
            per_trial_identity: bool = False) -> object:
    from clowncar.store.importers import FileReport
    from clowncar.store.importers.base import LegacyTrial, Parsed

    steps = steps if steps is not None else [2] * len(runs)
    trials = [LegacyTrial(key=f"run{i}", config={}, result={"steps": n, "provenance": {"run": r} if r else {}})
              for i, (r, n) in enumerate(zip(runs, steps, strict=True), start=1)]
    return FileReport(path=tmp_path / "copy.log", status="ready", content_sha256="D",
                      parsed=Parsed("training-log", trials, per_trial_identity=per_trial_identity),
                      uids=[f"new{i}" for i in range(1, len(runs) + 1)])


def _found(rep: object) -> dict[str, str]:
    return {uid: f"{m.uid} {m.why == LINE_ENDS}" for uid, m in rep.same_as.items()}  # type: ignore[attr-defined]


def test_each_run_of_a_copy_is_the_stored_trial_of_the_same_run_whatever_order_they_are_listed_in(
        tmp_path: Path) -> None:
    from clowncar.store.importers.same_run import find_same_runs

    rep = _report(tmp_path, [1, 2])
    find_same_runs(_Store([("old2", "sw", _stored(2)), ("old1", "sw", _stored(1))]), rep, {})  # type: ignore[arg-type]
    assert _found(rep) == {"new1": "old1 True", "new2": "old2 True"}


def test_one_stored_trial_is_the_same_run_as_one_trial_at_most_and_never_one_of_the_files_own(tmp_path: Path) -> None:
    from clowncar.store.importers.same_run import find_same_runs

    rep = _report(tmp_path, [None, None])  # two trials that each read as the one stored trial
    find_same_runs(_Store([("old", "sw", _stored(None))]), rep, {})  # type: ignore[arg-type]
    assert _found(rep) == {"new1": "old True"}
    # new1 is stored under its own id: it is neither looked at nor taken as new2's run; new2 finds old2 after it
    rep = _report(tmp_path, [2, 2])
    store = _Store([("new1", "sw", _stored(2)), ("old2", "sw", _stored(2))])
    find_same_runs(store, rep, {"new1": "sw"})  # type: ignore[arg-type]
    assert _found(rep) == {"new2": "old2 True"} and store.asked == [2]


def test_trials_without_a_numeric_step_count_and_files_of_per_trial_ids_are_not_looked_up(tmp_path: Path) -> None:
    from clowncar.store.importers.same_run import find_same_runs

    rep = _report(tmp_path, [1, 2, 3, 4], steps=[None, True, "2", 2])
    store = _Store([("old", "sw", _stored(4))])
    find_same_runs(store, rep, {})  # type: ignore[arg-type]
    assert _found(rep) == {"new4": "old True"} and store.asked == [2]
    rep = _report(tmp_path, [4], per_trial_identity=True)
    find_same_runs(store, rep, {})  # type: ignore[arg-type]
    assert rep.same_as == {} and store.asked == [2]  # type: ignore[attr-defined]
