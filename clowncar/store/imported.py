"""What the store holds for an imported trial, and replacing it with a new reading of its file (mixed into
`Store`): `clowncar import --reparse` after the importer learned to read a log better.

An imported trial has one attempt (0). Its reading is the trial's config and seed, the attempt's status,
reason, result and start time, and its step, eval and named-eval rows (metric rows follow from the result).
Only trials of sweeps whose source is `import` are read or replaced here: a trial clowncar ran is never touched.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, delete, select, update

from clowncar.errors import StoreError
from clowncar.store import schema as s
from clowncar.store.retry import retried_read, retried_write

ROW_TABLES = {"steps": s.steps, "evals": s.evals, "named_evals": s.named_evals}
"""The row tables of a reading, by the name the reading (and a message) gives them."""


@dataclass
class TrialReading:
    """One imported trial as an importer read it, or as the store holds it. Rows are dicts of the store's
    columns (`STEP_COLUMNS`, `EVAL_COLUMNS`, `NAMED_EVAL_COLUMNS`)."""

    config: dict[str, Any]
    seed: int | None
    status: str
    reason: str | None
    result: dict[str, Any] | None
    started_at: dt.datetime | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)
    evals: list[dict[str, Any]] = field(default_factory=list)
    named_evals: list[dict[str, Any]] = field(default_factory=list)


class ImportedTrialOps:
    """The re-read half of `Store` (mixed in; uses its `_write` / `_read` transactions and writers)."""

    _write: Callable[..., Any]
    _read: Callable[..., Any]
    retry_seconds: float
    add_steps: Callable[..., int]
    add_evals: Callable[..., int]
    add_named_evals: Callable[..., int]
    finish_trial: Callable[..., None]

    def _imported_ids(self, conn: Connection, trial_uid: str) -> tuple[int, int] | None:
        """(trial id, attempt 0's id) of an imported trial; None when the trial is not stored or its sweep is
        not an import."""
        t, a, sw = s.trials, s.attempts, s.sweeps
        row = conn.execute(select(t.c.id, a.c.id.label("aid"), sw.c.source).join(sw, sw.c.id == t.c.sweep_id)
                           .join(a, (a.c.trial_id == t.c.id) & (a.c.attempt == 0))
                           .where(t.c.uid == trial_uid)).one_or_none()
        if row is None or row.source != "import":
            return None
        return int(row.id), int(row.aid)

    @retried_read
    def imported_reading(self, trial_uid: str) -> TrialReading | None:
        """What the store holds for imported trial `trial_uid` (None when it is not stored, or not imported)."""
        with self._read() as conn:
            ids = self._imported_ids(conn, trial_uid)
            if ids is None:
                return None
            trial = conn.execute(select(s.trials.c.config, s.trials.c.seed).where(s.trials.c.id == ids[0])).one()
            at = conn.execute(select(s.attempts).where(s.attempts.c.id == ids[1])).one()
            rows = {name: _rows(conn, table, ids[1]) for name, table in ROW_TABLES.items()}
        started = at.started_at.replace(tzinfo=dt.UTC) if at.started_at.tzinfo is None else at.started_at
        return TrialReading(config=trial.config, seed=trial.seed, status=at.status, reason=at.reason,
                            result=at.result, started_at=started.astimezone(dt.UTC), **rows)

    @retried_read
    def imported_with_metric(self, name: str, value: float) -> list[tuple[str, str, dict[str, Any] | None]]:
        """(trial id, sweep, result) of every imported trial whose metric `name` is `value`, in the order they were
        stored: the few trials a new file's trial may be the same run as (`clowncar import`, `same_run.py`);
        one look-up in the metrics' (name, value) index, whatever the store holds."""
        t, a, sw, m = s.trials, s.attempts, s.sweeps, s.metrics
        query = (select(t.c.uid, sw.c.name, a.c.result).join(sw, sw.c.id == t.c.sweep_id)
                 .join(a, (a.c.trial_id == t.c.id) & (a.c.attempt == 0)).join(m, m.c.attempt_id == a.c.id)
                 .where(sw.c.source == "import", m.c.name == name, m.c.value == float(value)).order_by(t.c.id))
        with self._read() as conn:
            return [(r.uid, r.name, r.result) for r in conn.execute(query)]

    @retried_write
    def replace_imported_trial(self, trial_uid: str, reading: TrialReading) -> None:
        """Replace everything stored for imported trial `trial_uid` by `reading`, in one transaction (it lands
        whole or not at all): same uid, sweep and number; its config, seed, outcome, result, metric rows and
        step, eval and named-eval rows become the reading's. A trial that is not stored, or that a sweep
        clowncar ran holds, is a StoreError and nothing changes."""
        from clowncar.store.store import config_hash, jsonable

        with self._write() as conn:
            ids = self._imported_ids(conn, trial_uid)
            if ids is None:
                raise StoreError(f"trial {trial_uid!r} is not an imported trial of this store: it is not replaced")
            conn.execute(update(s.trials).where(s.trials.c.id == ids[0]).values(
                config=jsonable(reading.config), config_hash=config_hash(reading.config), seed=reading.seed))
            if reading.started_at is not None:
                conn.execute(update(s.attempts).where(s.attempts.c.id == ids[1])
                             .values(started_at=reading.started_at))
            for table in (*ROW_TABLES.values(), s.probes):
                conn.execute(delete(table).where(table.c.attempt_id == ids[1]))
            self.add_steps(trial_uid, 0, reading.steps)
            self.add_evals(trial_uid, 0, reading.evals)
            self.add_named_evals(trial_uid, 0, reading.named_evals)
            ended = reading.started_at.timestamp() if reading.started_at is not None else None
            self.finish_trial(trial_uid, 0, reading.status, reading.reason, reading.result, ended_at=ended)


def _rows(conn: Connection, table: Any, attempt_id: int) -> list[dict[str, Any]]:
    keys = [c for c in table.primary_key.columns if c.name != "attempt_id"]
    query = select(table).where(table.c.attempt_id == attempt_id).order_by(*keys)
    return [{k: v for k, v in r._mapping.items() if k != "attempt_id"} for r in conn.execute(query)]

