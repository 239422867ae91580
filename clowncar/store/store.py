"""`Store`: idempotent writes and DataFrame reads over the `clowncar_` tables (see `schema.py`).

The contract (pinned by tests/store/test_contract.py, run against SQLite and PostgreSQL):

- A trial is identified by its `trial_uid` (unique across the database); it belongs to one sweep and may run
  several attempts (0, 1, ...). Step, probe and eval rows belong to one attempt.
- Writing the same thing twice leaves one copy: `create_or_get_sweep` returns the existing id,
  `start_trial` keeps the first start of an attempt, `add_steps` / `add_evals` / `add_probes` ignore rows
  whose key already exists, `finish_trial` overwrites the attempt's outcome with the latest call.
- Frames (see `frames.py`): `trials_frame` has one row per trial (its latest attempt, the one that counts),
  `steps_frame`, `evals_frame`, `probes_frame` are long tables, `sweeps_frame` one row per sweep.
- `with store.transaction():` groups several writes into one transaction (all or nothing), as the
  importers do per file.
- An imported trial (its sweep's source is `import`) can be read back as the importer wrote it
  (`imported_reading`) and replaced whole by a new reading of its file (`replace_imported_trial`, one
  transaction; see `imported.py`); a trial clowncar ran is never replaced.
- A sweep has at most one live driver: `acquire_lease` / `renew_lease` / `release_lease` (see `lease.py`).
- With `retry_seconds` > 0 (a running sweep) a write that meets a transient failure (`retry.py`: the server
  restarting) is retried as a whole transaction. Each retried write is safe to repeat after a COMMIT whose reply
  was lost: `create_or_get_sweep`, `start_trial` and `add_*` insert if absent on a natural key, `add_artifact`
  upserts, `set_sweep_status`, `restart_sweep`, `finish_trial` and `close_running` write fixed values (a repeated
  `close_running` counts 0). Every read is retried the same way (`retried_read`: a read is always safe to
  repeat). Lease writes are never retried: the heartbeat is its own retry, and taking or giving up a lease
  happens outside a sweep's run.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, select, update
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError

from clowncar.errors import StoreError
from clowncar.events import TRIAL_STATUSES
from clowncar.store import schema as s
from clowncar.store.bulk import bulk_insert_ignore, insert_ignore, upsert
from clowncar.store.engine import WRITE_OPTION, make_engine, parse_url, safe_url, store_error
from clowncar.store.frames import FrameReads
from clowncar.store.imported import ImportedTrialOps
from clowncar.store.lease import LeaseOps
from clowncar.store.migrations import ensure_schema, numeric_metrics
from clowncar.store.retry import retried_read, retried_write

STEP_COLUMNS = ("step", "kind", "train_loss", "lr_scale", "phase", "elapsed_ms", "tokens")
EVAL_COLUMNS = ("step", "mode", "weights", "val_loss", "val_bpb", "tokens_scored", "bytes_scored")
PROBE_COLUMNS = ("step", "mode", "probe_loss")
NAMED_EVAL_COLUMNS = ("seq", "name", "mode", "weights", "quant", "step", "val_loss", "val_bpb", "eval_ms", "line",
                      "repeats")
EVAL_DEFAULTS = {"mode": "standard", "weights": "raw"}
NAMED_EVAL_DEFAULTS = {"mode": "standard", "weights": "quantized"}
SWEEP_STATUSES = ("created", "running", "done", "failed", "stopped", "imported")
SOURCES = ("run", "import")
_STEP_CHUNK = 50_000


def config_hash(config: Mapping[str, Any]) -> str:
    """16 hex digits of the canonical JSON: the same digest as `TrialConfig.content_hash()`."""
    canonical = json.dumps(jsonable(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def jsonable(value: Any) -> Any:
    """A JSON-safe deep copy: NaN and infinities become None (PostgreSQL's JSON has no NaN), tuples become
    lists, anything else unknown (paths, numpy scalars) its text or number."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | bool):
        return value
    if hasattr(value, "item"):  # numpy scalar
        return jsonable(value.item())
    return str(value)


def utc(unix: float | None = None) -> dt.datetime:
    return dt.datetime.now(dt.UTC) if unix is None else dt.datetime.fromtimestamp(unix, dt.UTC)


class Store(FrameReads, LeaseOps, ImportedTrialOps):
    """One results database. Create it with `clowncar.store.open_store(url)`; close it with `close()`."""

    def __init__(self, engine: Engine, url: URL, schema_found: int) -> None:
        self.engine = engine
        self._real_url = url  # for scrubbing the password out of driver messages; never printed
        self.url = safe_url(url)
        """The SQLAlchemy URL with the password hidden (safe to print)."""
        self.schema_found = schema_found
        """The schema version the database had when opened (before any upgrade)."""
        self._local = threading.local()
        self._attempt_ids: dict[tuple[str, int], int] = {}
        self.retry_seconds = 0.0
        """How long a read or write that failed because the server is away (restarting) is tried again before it
        fails; 0 fails at once. The sweep driver sets it (CLOWNCAR_STORE_RETRY_SECONDS) once its sweep runs."""

    @classmethod
    def open(cls, url: str | None = None, *, create: bool = True) -> Store:
        """See `clowncar.store.open_store`."""
        from clowncar.store import resolve_url

        parsed = parse_url(resolve_url(url))
        engine = make_engine(parsed, create)
        store = cls(engine, parsed, 0)
        try:
            with store._write() as conn:
                store.schema_found = ensure_schema(conn, create, store.url)
        except BaseException:
            engine.dispose()
            raise
        return store

    def close(self) -> None:
        """Release the connection pool."""
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- connections -------------------------------------------------------------------------------------------
    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """This thread's open transaction, or a new writing one committed at the end of the block."""
        current = getattr(self._local, "conn", None)
        if current is not None:
            yield current
            return
        try:
            with self.engine.connect() as conn:
                conn.execution_options(**{WRITE_OPTION: True})
                self._local.conn, self._local.pending = conn, {}
                try:
                    with conn.begin():
                        yield conn
                    # ids seen inside the transaction are shared only once it committed
                    self._attempt_ids.update(self._local.pending)
                finally:
                    self._local.conn, self._local.pending = None, {}
        except SQLAlchemyError as err:
            raise store_error(err, self._real_url, "store write failed at") from None

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        current = getattr(self._local, "conn", None)
        if current is not None:
            yield current
            return
        try:
            with self.engine.connect() as conn, conn.begin():
                yield conn
        except SQLAlchemyError as err:
            raise store_error(err, self._real_url, "store read failed at") from None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Run every write of this thread inside the block in one transaction: all of it lands or none."""
        with self._write():
            yield

    # -- lookups -----------------------------------------------------------------------------------------------
    def _sweep_id(self, conn: Connection, name: str) -> int:
        sid = conn.execute(select(s.sweeps.c.id).where(s.sweeps.c.name == name)).scalar()
        if sid is None:
            raise StoreError(f"no sweep named {name!r} in {self.url}")
        return int(sid)

    def _attempt_id(self, conn: Connection, trial_uid: str, attempt: int) -> int:
        key = (trial_uid, attempt)
        pending = getattr(self._local, "pending", None)
        if key in self._attempt_ids:
            return self._attempt_ids[key]
        if pending and key in pending:
            return pending[key]
        aid = conn.execute(
            select(s.attempts.c.id).join(s.trials, s.trials.c.id == s.attempts.c.trial_id)
            .where(s.trials.c.uid == trial_uid, s.attempts.c.attempt == attempt)).scalar()
        if aid is None:
            raise StoreError(f"trial {trial_uid!r} attempt {attempt} was never started in {self.url}")
        if getattr(self._local, "conn", None) is not None:
            self._local.pending[key] = int(aid)  # may still roll back: cache it after the commit
        else:
            self._attempt_ids[key] = int(aid)
        return int(aid)

    # -- writes ------------------------------------------------------------------------------------------------
    @retried_write
    def create_or_get_sweep(self, name: str, spec: Mapping[str, Any], parent: str | None = None,
                            source: str = "run") -> int:
        """Create sweep `name` (status `created`) or return the id of the existing one (its spec is kept).

        `parent` names the sweep this one reruns (it must exist); `source` is `run` or `import`."""
        if source not in SOURCES:
            raise StoreError(f"sweep source must be one of {', '.join(SOURCES)}, not {source!r}")
        if not name:
            raise StoreError("a sweep needs a name")
        with self._write() as conn:
            parent_id = self._sweep_id(conn, parent) if parent else None
            now = utc()
            insert_ignore(conn, s.sweeps, [{"name": name, "spec": jsonable(spec), "status": "created",
                                            "source": source, "parent_id": parent_id,
                                            "created_at": now, "updated_at": now}], keys=["name"])
            return self._sweep_id(conn, name)

    @retried_write
    def set_sweep_status(self, name: str, status: str, reason: str | None = None) -> None:
        """Set a sweep's status (one of SWEEP_STATUSES) and why (`reason`, e.g. what stopped a failed start;
        None clears it). Unknown sweep -> StoreError."""
        if status not in SWEEP_STATUSES:
            raise StoreError(f"sweep status must be one of {', '.join(SWEEP_STATUSES)}, not {status!r}")
        with self._write() as conn:
            sid = self._sweep_id(conn, name)
            conn.execute(update(s.sweeps).where(s.sweeps.c.id == sid).values(status=status, reason=reason,
                                                                            updated_at=utc()))

    @retried_write
    def restart_sweep(self, name: str, spec: Mapping[str, Any]) -> None:
        """Start a sweep that never got to a trial over: its spec becomes `spec`, its status `created`, its
        reason none. A sweep with trials is a StoreError (it continues with resume, it is not restarted)."""
        with self._write() as conn:
            sid = self._sweep_id(conn, name)
            if conn.execute(select(func.count()).select_from(s.trials).where(s.trials.c.sweep_id == sid)).scalar():
                raise StoreError(f"sweep {name!r} has trials: it cannot start over")
            conn.execute(update(s.sweeps).where(s.sweeps.c.id == sid).values(
                spec=jsonable(spec), status="created", reason=None, updated_at=utc()))

    @retried_write
    def start_trial(self, sweep: str, trial_uid: str, number: int, attempt: int, config: Mapping[str, Any],
                    seed: int | None, node: str | None, started_at: float | None = None) -> None:
        """Record that attempt `attempt` of trial `trial_uid` (trial `number` of `sweep`) started on `node`.

        `config` is the nested trial config dict (`TrialConfig.to_dict()`, or a partial one for imports); its
        hash is `TrialConfig.content_hash()`'s algorithm. The attempt's status becomes `running`.
        Idempotent: a second call for the same (trial, attempt) changes nothing. The same uid under another
        sweep, or with another config, is a StoreError. `started_at` is unix seconds (default: now)."""
        chash = config_hash(config)
        with self._write() as conn:
            sid = self._sweep_id(conn, sweep)
            now = utc(started_at)
            insert_ignore(conn, s.trials, [{"uid": trial_uid, "sweep_id": sid, "number": number,
                                            "config": jsonable(config), "config_hash": chash, "seed": seed,
                                            "created_at": now}], keys=["uid"])
            row = conn.execute(select(s.trials.c.id, s.trials.c.sweep_id, s.trials.c.config_hash)
                               .where(s.trials.c.uid == trial_uid)).one()
            if row.sweep_id != sid:
                raise StoreError(f"trial {trial_uid!r} already belongs to another sweep than {sweep!r}")
            if row.config_hash != chash:
                raise StoreError(f"trial {trial_uid!r} is stored with config {row.config_hash}, not {chash}")
            insert_ignore(conn, s.attempts, [{"trial_id": row.id, "attempt": attempt, "status": "running",
                                              "reason": None, "node": node, "started_at": now}],
                          keys=["trial_id", "attempt"])

    @retried_write
    def add_steps(self, trial_uid: str, attempt: int, rows: Iterable[Mapping[str, Any]]) -> int:
        """Bulk-insert step rows (the worker's `step` event records; keys STEP_COLUMNS, extra keys ignored,
        missing ones None). Rows whose (trial, attempt, step) exists are ignored. Returns rows offered."""
        columns = ("attempt_id", *STEP_COLUMNS)
        offered = 0
        with self._write() as conn:
            aid = self._attempt_id(conn, trial_uid, attempt)
            batch: list[tuple[Any, ...]] = []
            for r in rows:
                batch.append((aid, int(r["step"]), r.get("kind"), r.get("train_loss"), r.get("lr_scale"),
                              r.get("phase"), r.get("elapsed_ms"), r.get("tokens")))
                if len(batch) >= _STEP_CHUNK:
                    bulk_insert_ignore(conn, s.steps, columns, batch)
                    offered += len(batch)
                    batch = []
            bulk_insert_ignore(conn, s.steps, columns, batch)
            return offered + len(batch)

    @retried_write
    def _add_rows(self, table: Any, trial_uid: str, attempt: int, rows: Iterable[Mapping[str, Any]],
                  columns: tuple[str, ...], defaults: Mapping[str, Any]) -> int:
        with self._write() as conn:
            aid = self._attempt_id(conn, trial_uid, attempt)
            out = [{"attempt_id": aid, **{c: (r.get(c) if r.get(c) is not None else defaults.get(c))
                                          for c in columns}} for r in rows]
            insert_ignore(conn, table, out)
            return len(out)

    def add_evals(self, trial_uid: str, attempt: int, rows: Iterable[Mapping[str, Any]]) -> int:
        """Insert eval rows (`eval` event records, keys EVAL_COLUMNS; `mode` defaults to `standard`,
        `weights` to `raw`). Key: (trial, attempt, step, mode, weights); duplicates ignored."""
        return self._add_rows(s.evals, trial_uid, attempt, rows, EVAL_COLUMNS, EVAL_DEFAULTS)

    def add_named_evals(self, trial_uid: str, attempt: int, rows: Iterable[Mapping[str, Any]]) -> int:
        """Insert named evals (keys NAMED_EVAL_COLUMNS: one row per final / eval line, `seq` its order in the
        run, the last one the headline). Key: (trial, attempt, seq); duplicates ignored."""
        return self._add_rows(s.named_evals, trial_uid, attempt, rows, NAMED_EVAL_COLUMNS, NAMED_EVAL_DEFAULTS)

    def add_probes(self, trial_uid: str, attempt: int, rows: Iterable[Mapping[str, Any]]) -> int:
        """Insert probe rows (`probe` event records, keys PROBE_COLUMNS). Key: (trial, attempt, step, mode)."""
        return self._add_rows(s.probes, trial_uid, attempt, rows, PROBE_COLUMNS, {"mode": "C"})

    @retried_write
    def finish_trial(self, trial_uid: str, attempt: int, status: str, reason: str | None,
                     result: Mapping[str, Any] | None, ended_at: float | None = None) -> None:
        """Record an attempt's outcome. `status` is one of `events.TRIAL_STATUSES`; `result` is the worker's
        result.json dict (None when there was none, e.g. `crashed`). Every numeric result value is also
        stored as a metric row. A second call overwrites the first (the latest outcome wins)."""
        if status not in TRIAL_STATUSES:
            raise StoreError(f"trial status must be one of {', '.join(TRIAL_STATUSES)}, not {status!r}")
        result = jsonable(result) if result is not None else None
        with self._write() as conn:
            aid = self._attempt_id(conn, trial_uid, attempt)
            conn.execute(update(s.attempts).where(s.attempts.c.id == aid).values(
                status=status, reason=reason, result=result, ended_at=utc(ended_at)))
            conn.execute(delete(s.metrics).where(s.metrics.c.attempt_id == aid))
            metric_rows = [{"attempt_id": aid, "name": k, "value": v}
                           for k, v in numeric_metrics(result).items()]
            insert_ignore(conn, s.metrics, metric_rows)

    @retried_write
    def add_artifact(self, trial_uid: str, attempt: int, path: str, size_bytes: int | None,
                     code_bytes: int | None = None, sha256: str | None = None, kind: str = "model") -> None:
        """Record an artifact file of an attempt (compressed model: `size_bytes` of the file, `code_bytes`
        counted beside it). Key: (trial, attempt, path); a second call updates the row."""
        with self._write() as conn:
            aid = self._attempt_id(conn, trial_uid, attempt)
            upsert(conn, s.artifacts, {"attempt_id": aid, "path": str(path), "kind": kind,
                                       "size_bytes": size_bytes, "code_bytes": code_bytes, "sha256": sha256,
                                       "created_at": utc()}, keys=["attempt_id", "path"])

    @retried_write
    def close_running(self, sweep: str, status: str = "crashed", reason: str = "head restarted") -> int:
        """Mark every attempt of `sweep` still `running` as `status` (for resume after a head crash).
        Returns how many attempts changed."""
        if status not in TRIAL_STATUSES:
            raise StoreError(f"trial status must be one of {', '.join(TRIAL_STATUSES)}, not {status!r}")
        with self._write() as conn:
            sid = self._sweep_id(conn, sweep)
            ids = select(s.trials.c.id).where(s.trials.c.sweep_id == sid).scalar_subquery()
            res = conn.execute(update(s.attempts).where(s.attempts.c.trial_id.in_(ids),
                                                        s.attempts.c.status == "running")
                               .values(status=status, reason=reason, ended_at=utc()))
            return int(res.rowcount or 0)

    # -- point reads -------------------------------------------------------------------------------------------
    @retried_read
    def trial_states(self, sweep: str) -> dict[str, tuple[int, str]]:
        """{trial_uid: (latest attempt, its status)} for a sweep (resume decides what to rerun from this)."""
        with self._read() as conn:
            sid = self._sweep_id(conn, sweep)
            rows = conn.execute(select(s.trials.c.uid, s.attempts.c.attempt, s.attempts.c.status)
                                .join(s.attempts, s.attempts.c.trial_id == s.trials.c.id)
                                .where(s.trials.c.sweep_id == sid).order_by(s.attempts.c.attempt))
            return {r.uid: (r.attempt, r.status) for r in rows}  # ordered by attempt: the latest wins

    @retried_read
    def trial_sweeps(self, trial_uids: Iterable[str]) -> dict[str, str]:
        """{trial_uid: its sweep's name} for those of `trial_uids` that are stored (an importer's "already
        present" check)."""
        uids = list(trial_uids)
        out: dict[str, str] = {}
        with self._read() as conn:
            for k in range(0, len(uids), 500):
                rows = conn.execute(select(s.trials.c.uid, s.sweeps.c.name)
                                    .join(s.sweeps, s.sweeps.c.id == s.trials.c.sweep_id)
                                    .where(s.trials.c.uid.in_(uids[k:k + 500])))
                out.update({r.uid: r.name for r in rows})
        return out

    @retried_read
    def max_step(self, trial_uid: str, attempt: int) -> int:
        """Highest stored step of an attempt (0 when none): a relay can skip rows it already wrote."""
        with self._read() as conn:
            aid = self._attempt_id(conn, trial_uid, attempt)
            return int(conn.execute(select(func.max(s.steps.c.step)).where(s.steps.c.attempt_id == aid))
                       .scalar() or 0)
