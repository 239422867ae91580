"""Reads of the store as pandas DataFrames and plain dicts (mixed into `Store`). pandas is imported inside the
readers so that opening a store for writing stays light."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, func, select

from clowncar.did_you_mean import hint, nearest
from clowncar.errors import StoreError
from clowncar.store import schema as s
from clowncar.store.longread import DTYPES, categorical, read_long
from clowncar.store.retry import retried_read

if TYPE_CHECKING:
    import pandas as pd

FAILED = ("diverged", "oom", "error", "rejected", "crashed")
BASE_TRIAL_COLUMNS = ("sweep", "trial_uid", "number", "attempt", "attempts", "status", "reason", "seed",
                      "config_hash", "node", "started_at", "ended_at", "source")


def aware(value: Any) -> Any:
    """Datetimes as timezone-aware UTC (SQLite hands back naive ones, PostgreSQL aware ones)."""
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
    return value


def _names(value: str | Iterable[str] | None) -> list[str] | None:
    if value is None:
        return None
    return [value] if isinstance(value, str) else list(value)


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted keys: {"model": {"crawler_loops": 3}} -> {"model.crawler_loops": 3}."""
    out: dict[str, Any] = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def _latest_attempts() -> Any:
    a = s.attempts
    return (select(a.c.trial_id, func.max(a.c.attempt).label("latest"), func.count().label("n"))
            .group_by(a.c.trial_id).subquery())


class FrameReads:
    url: str
    _read: Callable[[], AbstractContextManager[Connection]]
    _sweep_id: Callable[[Connection, str], int]

    # -- attempts selection shared by the long tables -----------------------------------------------------------
    def _attempt_index(self, conn: Connection, sweeps: list[str] | None, uids: list[str] | None,
                       all_attempts: bool) -> list[tuple[int, str, str, int]]:
        """[(attempt id, sweep name, trial uid, attempt)] in trial then attempt order."""
        a, t, sw = s.attempts, s.trials, s.sweeps
        q = (select(a.c.id, sw.c.name, t.c.uid, a.c.attempt).join(t, t.c.id == a.c.trial_id)
             .join(sw, sw.c.id == t.c.sweep_id))
        if not all_attempts:
            latest = _latest_attempts()
            q = q.join(latest, (latest.c.trial_id == a.c.trial_id) & (latest.c.latest == a.c.attempt))
        if sweeps is not None:
            q = q.where(sw.c.name.in_(sweeps))
        if uids is not None:
            q = q.where(t.c.uid.in_(uids))
        return [tuple(r) for r in conn.execute(q.order_by(sw.c.name, t.c.number, t.c.uid, a.c.attempt))]

    @retried_read
    def _long_frame(self, table: Any, columns: tuple[str, ...], sweeps: Any, uids: Any,
                    all_attempts: bool, order: tuple[str, ...]) -> pd.DataFrame:
        import numpy as np
        import pandas as pd

        with self._read() as conn:
            index = self._attempt_index(conn, _names(sweeps), _names(uids), all_attempts)
            cols, pos = read_long(conn, table.name, columns, order, [i[0] for i in index])
        if not len(pos):
            empty = {"sweep": pd.Categorical([]), "trial_uid": pd.Categorical([]),
                     "attempt": np.array([], dtype=np.int64)}
            return pd.DataFrame({**empty, **{c: pd.Series([], dtype=DTYPES[c]) for c in columns}})
        # pos: each row's attempt as its position in the index (sweep, trial number, uid, attempt order)
        sweep_names = sorted({i[1] for i in index})
        uid_names = list(dict.fromkeys(i[2] for i in index))
        sweep_code = pd.Index(sweep_names).get_indexer([i[1] for i in index])
        uid_code = pd.Index(uid_names).get_indexer([i[2] for i in index])
        out = {
            "sweep": pd.Categorical.from_codes(sweep_code[pos], sweep_names),
            "trial_uid": pd.Categorical.from_codes(uid_code[pos], uid_names),
            "attempt": np.asarray([i[3] for i in index], dtype=np.int64)[pos],
        }
        for c in columns:
            out[c] = categorical(cols[c]) if DTYPES[c] == "category" else cols[c]
        return pd.DataFrame(out, copy=False)  # the columns are ours alone: no second copy of 3.5 M rows

    # -- the long tables ---------------------------------------------------------------------------------------
    def steps_frame(self, sweeps: str | Iterable[str] | None = None,
                    trial_uids: str | Iterable[str] | None = None, all_attempts: bool = False) -> pd.DataFrame:
        """Long table: sweep, trial_uid, attempt, step, kind (`C`/`N`), train_loss, lr_scale, phase,
        elapsed_ms, tokens; ordered by trial, attempt and step. Only each trial's latest attempt unless
        `all_attempts`. `sweep` and `trial_uid` are categoricals (cheap for millions of rows)."""
        from clowncar.store.store import STEP_COLUMNS

        return self._long_frame(s.steps, STEP_COLUMNS, sweeps, trial_uids, all_attempts, ("step",))

    def evals_frame(self, sweeps: str | Iterable[str] | None = None,
                    trial_uids: str | Iterable[str] | None = None, all_attempts: bool = False) -> pd.DataFrame:
        """Long table: sweep, trial_uid, attempt, step, mode, weights, val_loss, val_bpb, tokens_scored,
        bytes_scored."""
        from clowncar.store.store import EVAL_COLUMNS

        return self._long_frame(s.evals, EVAL_COLUMNS, sweeps, trial_uids, all_attempts,
                                ("step", "mode", "weights"))

    def probes_frame(self, sweeps: str | Iterable[str] | None = None,
                     trial_uids: str | Iterable[str] | None = None, all_attempts: bool = False) -> pd.DataFrame:
        """Long table: sweep, trial_uid, attempt, step, mode, probe_loss."""
        from clowncar.store.store import PROBE_COLUMNS

        return self._long_frame(s.probes, PROBE_COLUMNS, sweeps, trial_uids, all_attempts, ("step", "mode"))

    def named_evals_frame(self, sweeps: str | Iterable[str] | None = None,
                          trial_uids: str | Iterable[str] | None = None, all_attempts: bool = False) -> pd.DataFrame:
        """Long table of the final / eval lines of imported logs: sweep, trial_uid, attempt, seq, name, mode,
        weights, quant, step, val_loss, val_bpb, eval_ms, line, repeats; per trial in `seq` order (the last row
        of a trial is its headline)."""
        from clowncar.store.store import NAMED_EVAL_COLUMNS

        return self._long_frame(s.named_evals, NAMED_EVAL_COLUMNS, sweeps, trial_uids, all_attempts, ("seq",))


    # -- trials ------------------------------------------------------------------------------------------------
    def _trial_rows(self, conn: Connection, sweeps: list[str] | None,
                    status: list[str] | None) -> list[dict[str, Any]]:
        a, t, sw = s.attempts, s.trials, s.sweeps
        latest = _latest_attempts()
        q = (select(sw.c.name.label("sweep"), t.c.uid.label("trial_uid"), t.c.number, a.c.attempt,
                    latest.c.n.label("attempts"), a.c.status, a.c.reason, t.c.seed, t.c.config_hash, a.c.node,
                    a.c.started_at, a.c.ended_at, sw.c.source, a.c.result, t.c.config)
             .join(t, t.c.id == a.c.trial_id).join(sw, sw.c.id == t.c.sweep_id)
             .join(latest, (latest.c.trial_id == a.c.trial_id) & (latest.c.latest == a.c.attempt)))
        if sweeps is not None:
            q = q.where(sw.c.name.in_(sweeps))
        if status is not None:
            q = q.where(a.c.status.in_(status))
        return [dict(r._mapping) for r in conn.execute(q.order_by(sw.c.name, t.c.number, t.c.uid))]

    @retried_read
    def trials_frame(self, sweeps: str | Iterable[str] | None = None, status: str | Iterable[str] | None = None,
                     where: Mapping[str, Any] | None = None) -> pd.DataFrame:
        """One row per trial (its latest attempt): sweep, trial_uid, number, attempt, attempts, status,
        reason, seed, config_hash, node, started_at, ended_at (UTC timestamps), source, then every scalar
        result.json value as its own column (val_bpb, q_val_bpb, steps, ...; missing -> NaN/None), then
        `provenance.*` (nested values dotted: `provenance.data.tokenizer.sha256`), then the config flattened as dotted columns (`model.crawler_loops`, ...).

        Filters: `sweeps` and `status` (a name or several); `where` maps a column to a value or a list of
        allowed values (`{"model.crawler_loops": [2, 3]}`); an unknown `where` column is a StoreError."""
        import pandas as pd

        with self._read() as conn:
            rows = self._trial_rows(conn, _names(sweeps), _names(status))
        records, metric_cols, prov_cols, cfg_cols = [], {}, {}, {}
        for r in rows:
            result, config = r.pop("result") or {}, r.pop("config") or {}
            prov = result.get("provenance") if isinstance(result.get("provenance"), Mapping) else {}
            metrics = {k: v for k, v in result.items()
                       if k not in ("status", "reason", "provenance") and not isinstance(v, dict | list)}
            # nested provenance (the shards' and tokenizer's digests under `data`) as dotted columns, as the config
            prov = {k: v for k, v in flatten({k: v for k, v in prov.items() if k not in ("config", "config_hash")},
                                             "provenance.").items() if not isinstance(v, list)}
            cfg = flatten(config)
            for cols, values in ((metric_cols, metrics), (prov_cols, prov), (cfg_cols, cfg)):
                cols.update(dict.fromkeys(values))
            records.append({**r, **metrics, **prov, **cfg})
        columns = [*BASE_TRIAL_COLUMNS, *metric_cols, *prov_cols, *cfg_cols]
        frame = pd.DataFrame.from_records(records, columns=columns)
        for col in ("started_at", "ended_at"):
            frame[col] = pd.to_datetime(frame[col], utc=True)
        for key, allowed in (where or {}).items():
            if key not in frame.columns:
                raise StoreError(f"no trial column {key!r} to filter on (columns are the config keys such "
                                 "as model.crawler_loops, the result metrics and the trial fields)")
            values = allowed if isinstance(allowed, list | tuple | set) else [allowed]
            frame = frame[frame[key].isin(values)]
        return frame.reset_index(drop=True)

    # -- sweeps ------------------------------------------------------------------------------------------------
    @retried_read
    def sweep_names(self) -> list[str]:
        """Every sweep's name, sorted (only the names: `sweeps_frame` reads every trial too)."""
        with self._read() as conn:
            return sorted(conn.execute(select(s.sweeps.c.name)).scalars())  # Python's order on every backend

    @retried_read
    def ranked_trials(self, name: str, feasible_only: bool = True) -> tuple[str, list[dict[str, Any]]] | None:
        """(metric, the sweep's feasible trials best first, each {trial_uid, number, config, result, ...}) as
        `ranked` orders them (the first is `sweep_summary`'s best; `feasible_only=False`: every ok trial, over
        its size cap too), or None when no ok trial measured a BPB."""
        with self._read() as conn:
            found = ranked(self._trial_rows(conn, [name], ["ok"]))
        return None if found is None else (found[0], [t for _, t in found[1] if feasible(t) or not feasible_only])

    def no_sweep_hint(self, name: str) -> str:
        """' (did you mean a, b?)' with the store's sweep names nearest to an unknown `name`, or nothing."""
        return hint(nearest(name, self.sweep_names()))

    @retried_read
    def get_sweep(self, name: str) -> dict[str, Any] | None:
        """{id, name, spec, status, reason, source, parent, created_at, updated_at} or None."""
        sw, parent = s.sweeps, s.sweeps.alias("parent")
        with self._read() as conn:
            row = conn.execute(select(sw, parent.c.name.label("parent"))
                               .outerjoin(parent, parent.c.id == sw.c.parent_id)
                               .where(sw.c.name == name)).one_or_none()
        if row is None:
            return None
        out = {k: aware(v) for k, v in row._mapping.items()}
        out.pop("parent_id", None)
        return out

    @retried_read
    def sweeps_frame(self) -> pd.DataFrame:
        """One row per sweep: name, status, source, parent, created_at, updated_at, trials, ok, running,
        failed (diverged/oom/error/rejected/crashed), pruned, stopped (ok to stopped add up to trials), best_bpb
        (the lowest score of its feasible trials, ok and not over their size cap: see `feasible`; scored on the
        one of q_sliding_val_bpb, q_val_bpb, sliding_val_bpb, val_bpb that most of its ok trials measured),
        best_metric (which one that was: the numbers of two sweeps compare only when it is the same),
        unranked_headlines (ok trials whose headline_bpb is not that metric's value: see `headline_unranked`) and
        over_cap (ok trials over their size cap, never a best: see `feasible`)."""
        import pandas as pd

        sw, parent = s.sweeps, s.sweeps.alias("parent")
        with self._read() as conn:
            sweeps = [dict(r._mapping) for r in conn.execute(
                select(sw.c.name, sw.c.status, sw.c.source, parent.c.name.label("parent"), sw.c.created_at,
                       sw.c.updated_at).outerjoin(parent, parent.c.id == sw.c.parent_id).order_by(sw.c.name))]
            trials = self._trial_rows(conn, None, None)
        for row in sweeps:
            mine = [t for t in trials if t["sweep"] == row["name"]]
            row["trials"] = len(mine)
            row["ok"] = sum(t["status"] == "ok" for t in mine)
            row["running"] = sum(t["status"] == "running" for t in mine)
            row["failed"] = sum(t["status"] in FAILED for t in mine)
            row["pruned"] = sum(t["status"] == "pruned" for t in mine)
            row["stopped"] = sum(t["status"] == "stopped" for t in mine)
            found = _best(mine)
            row["best_bpb"], row["best_metric"] = (found[0], found[1]) if found else (None, None)
            metric = (ranked(mine) or (None,))[0]  # over every ok trial, over its size cap too
            row["unranked_headlines"] = 0 if metric is None else sum(
                t["status"] == "ok" and headline_unranked(t["result"], metric) for t in mine)
            row["over_cap"] = sum(t["status"] == "ok" and not feasible(t) for t in mine)
        columns = ["name", "status", "source", "parent", "created_at", "updated_at", "trials", "ok", "running",
                   "failed", "pruned", "stopped", "best_bpb", "best_metric", "unranked_headlines", "over_cap"]
        frame = pd.DataFrame.from_records(sweeps, columns=columns)
        for col in ("created_at", "updated_at"):
            frame[col] = pd.to_datetime(frame[col], utc=True)
        return frame

    @retried_read
    def sweep_summary(self, name: str) -> dict[str, Any]:
        """For `clowncar sweep status`: {name, status, reason, source, parent, created_at, trials, by_status: {status:
        n}, best: {trial_uid, number, val_bpb, q_val_bpb, score, metric} | None, running: [{trial_uid, number,
        attempt, node, started_at, last_step}]}. `score`: see `sweeps_frame`'s best_bpb.
        Unknown sweep -> StoreError."""
        sweep = self.get_sweep(name)
        if sweep is None:
            raise StoreError(f"no sweep named {name!r} in {self.url}{self.no_sweep_hint(name)}")
        a, st = s.attempts, s.steps
        with self._read() as conn:
            trials = self._trial_rows(conn, [name], None)
            ids = select(s.trials.c.id).where(s.trials.c.sweep_id == sweep["id"]).scalar_subquery()
            last = dict(conn.execute(select(a.c.id, func.max(st.c.step)).join(st, st.c.attempt_id == a.c.id)
                                     .where(a.c.trial_id.in_(ids), a.c.status == "running")
                                     .group_by(a.c.id)).all())
            running_ids = {(r.uid, r.attempt): r.id for r in conn.execute(
                select(a.c.id, a.c.attempt, s.trials.c.uid).join(s.trials, s.trials.c.id == a.c.trial_id)
                .where(a.c.trial_id.in_(ids), a.c.status == "running"))}
        by_status: dict[str, int] = {}
        for t in trials:
            by_status[t["status"]] = by_status.get(t["status"], 0) + 1
        best = None
        if (found := _best(trials)) is not None:
            sc, metric, t = found
            best = {"trial_uid": t["trial_uid"], "number": t["number"], "score": sc, "metric": metric,
                    "val_bpb": (t["result"] or {}).get("val_bpb"), "q_val_bpb": (t["result"] or {}).get("q_val_bpb")}
        running = [{"trial_uid": t["trial_uid"], "number": t["number"], "attempt": t["attempt"], "node": t["node"],
                    "started_at": aware(t["started_at"]),
                    "last_step": last.get(running_ids.get((t["trial_uid"], t["attempt"]), -1), 0)}
                   for t in trials if t["status"] == "running"]
        return {k: sweep[k] for k in ("name", "status", "reason", "source", "parent", "created_at")} | {
            "trials": len(trials), "by_status": by_status, "best": best, "running": running}

    # -- one trial ---------------------------------------------------------------------------------------------
    @retried_read
    def get_trial(self, trial_uid: str) -> dict[str, Any] | None:
        """Everything about one trial for `store show`: {trial_uid, sweep, number, config, config_hash, seed,
        attempts: [{attempt, status, reason, node, started_at, ended_at, result, steps, evals, probes,
        named_evals: [...], artifacts: [...]}]} or None. `steps`/`evals`/`probes` are row counts."""
        t, a = s.trials, s.attempts
        with self._read() as conn:
            row = conn.execute(select(t, s.sweeps.c.name.label("sweep")).join(s.sweeps, s.sweeps.c.id == t.c.sweep_id)
                               .where(t.c.uid == trial_uid)).one_or_none()
            if row is None:
                return None
            trial = {k: aware(v) for k, v in row._mapping.items()}
            attempts = []
            for at in conn.execute(select(a).where(a.c.trial_id == trial["id"]).order_by(a.c.attempt)):
                item = {k: aware(v) for k, v in at._mapping.items()}
                for key, table in (("steps", s.steps), ("evals", s.evals), ("probes", s.probes)):
                    item[key] = conn.execute(select(func.count()).select_from(table)
                                             .where(table.c.attempt_id == item["id"])).scalar()
                item["artifacts"] = [{k: aware(v) for k, v in x._mapping.items()} for x in conn.execute(
                    select(s.artifacts).where(s.artifacts.c.attempt_id == item["id"]))]
                item["named_evals"] = [dict(x._mapping) for x in conn.execute(
                    select(s.named_evals).where(s.named_evals.c.attempt_id == item["id"])
                    .order_by(s.named_evals.c.seq))]
                for x in [*item["artifacts"], *item["named_evals"]]:
                    x.pop("attempt_id")
                item.pop("trial_id")
                item.pop("id")
                attempts.append(item)
        trial["trial_uid"] = trial.pop("uid")
        for key in ("id", "sweep_id"):
            trial.pop(key)
        trial["attempts"] = attempts
        return trial

    @retried_read
    def artifacts_frame(self, sweeps: str | Iterable[str] | None = None) -> pd.DataFrame:
        """sweep, trial_uid, attempt, kind, path, size_bytes, code_bytes, sha256, created_at."""
        import pandas as pd

        ar, a, t, sw = s.artifacts, s.attempts, s.trials, s.sweeps
        q = (select(sw.c.name.label("sweep"), t.c.uid.label("trial_uid"), a.c.attempt, ar.c.kind, ar.c.path,
                    ar.c.size_bytes, ar.c.code_bytes, ar.c.sha256, ar.c.created_at)
             .join(a, a.c.id == ar.c.attempt_id).join(t, t.c.id == a.c.trial_id).join(sw, sw.c.id == t.c.sweep_id))
        names = _names(sweeps)
        if names is not None:
            q = q.where(sw.c.name.in_(names))
        with self._read() as conn:
            rows = [dict(r._mapping) for r in conn.execute(q.order_by(sw.c.name, t.c.number, a.c.attempt))]
        columns = ["sweep", "trial_uid", "attempt", "kind", "path", "size_bytes", "code_bytes", "sha256",
                   "created_at"]
        return pd.DataFrame.from_records(rows, columns=columns)


SCORE_KEYS = ("q_sliding_val_bpb", "q_val_bpb", "sliding_val_bpb", "val_bpb")


def ranked(trials: list[dict[str, Any]]) -> tuple[str, list[tuple[float, dict[str, Any]]]] | None:
    """(metric, [(score, trial), ...] lowest first) over the ok trials, like with like: the metric is the one of
    SCORE_KEYS (post-quantization first) that most ok trials measured, so a sliding-window value never beats a
    standard one; trials without it are left out, ties keep the given order."""
    ok = [t for t in trials if t["status"] == "ok" and isinstance(t["result"], Mapping)]
    counts = {k: sum(isinstance(t["result"].get(k), int | float) for t in ok) for k in SCORE_KEYS}
    if not ok or not max(counts.values()):
        return None
    key = max(SCORE_KEYS, key=lambda k: (counts[k], -SCORE_KEYS.index(k)))
    scored = [(float(t["result"][key]), t) for t in ok if isinstance(t["result"].get(key), int | float)]
    return key, sorted(scored, key=lambda x: x[0])


def headline_unranked(result: Mapping[str, Any] | None, metric: str) -> bool:
    """Whether a trial's headline_bpb (an imported log's last eval line) is another number than the `metric` its
    sweep is ranked by: a TTT or n-gram eval, which no SCORE_KEYS holds, or a kind its sweep does not rank."""
    head = (result or {}).get("headline_bpb")
    return isinstance(head, int | float) and head != (result or {}).get(metric)


CHALLENGE_CAP_BYTES = 16_000_000  # Parameter Golf's limit on code + compressed model


def feasible(trial: Mapping[str, Any]) -> bool:
    """Whether a stored trial may be a sweep's best (or picked by `sweep rerun`): it ended ok and did not break its
    size cap. The sweep driver stores `over_cap: true` in the result of every trial it told Optuna was over its one
    cap (`trainable.stored_result`), so this is the rule `sweep status` reads from the study's constraint; an
    imported record says no over_cap, only its `artifact_bytes`, which are held to the cap its trial was held to."""
    result = trial["result"]
    if trial["status"] != "ok":
        return False
    if not isinstance(result, Mapping):
        return True
    size = result.get("artifact_bytes")
    measured = isinstance(size, int | float) and not isinstance(size, bool)
    return result.get("over_cap") is not True and not (measured and size > size_cap(trial))


def size_cap(trial: Mapping[str, Any]) -> float:
    """The byte cap a stored trial was held to: the sweep's stricter one where the driver applied it
    (`size_cap_applied`), else its config's quant.size_cap_bytes, else the challenge's 16,000,000."""
    result, config = trial.get("result"), trial.get("config")
    quant = config.get("quant") if isinstance(config, Mapping) else None
    for cap in (result.get("size_cap_applied") if isinstance(result, Mapping) else None,
                quant.get("size_cap_bytes") if isinstance(quant, Mapping) else None):
        if isinstance(cap, int | float) and not isinstance(cap, bool) and cap > 0:
            return float(cap)
    return float(CHALLENGE_CAP_BYTES)


def _best(trials: list[dict[str, Any]]) -> tuple[float, str, dict[str, Any]] | None:
    """(score, its metric, trial): the first feasible trial of `ranked` (whose metric the ok trials over their
    size cap still help choose: a sweep's best_metric does not change as its trials' sizes do)."""
    found = ranked(trials)
    if found is None:
        return None
    key, scored = found
    return next(((score, key, t) for score, t in scored if feasible(t)), None)
