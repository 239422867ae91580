"""`Store`: idempotent writes and DataFrame reads over the `clowncar_` tables (see `schema.py`).

The contract (pinned by tests/store/test_contract.py, run against SQLite and PostgreSQL):

- A trial is identified by its `trial_uid` (unique across the database); it belongs to one sweep and may run
  several attempts (0, 1, ...). Step, probe and eval rows belong to one attempt.
- Writing the same thing twice leaves one copy: `create_or_get_sweep` returns the existing id,
  `start_trial` keeps the first start of an attempt, `add_steps` / `add_evals` / `add_probes` ignore rows
  whose key already exists, `finish_trial` overwrites the attempt's outcome with the latest call.
- Frames: `trials_frame` has one row per trial (its latest attempt, the one that counts), `steps_frame`,
  `evals_frame`, `probes_frame` are long tables, `sweeps_frame` one row per sweep with trial counts.
- `with store.transaction():` groups several writes into one transaction (all or nothing), as the
  importers do per file.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

STEP_COLUMNS = ("step", "kind", "train_loss", "lr_scale", "phase", "elapsed_ms", "tokens")
EVAL_COLUMNS = ("step", "mode", "weights", "val_loss", "val_bpb", "tokens_scored", "bytes_scored")
PROBE_COLUMNS = ("step", "mode", "probe_loss")
SWEEP_STATUSES = ("created", "running", "done", "failed", "stopped", "imported")
SOURCES = ("run", "import")


class Store:
    """One results database. Create it with `clowncar.store.open_store(url)`; close it with `close()`."""

    url: str
    """The SQLAlchemy URL with the password hidden (safe to print)."""

    @classmethod
    def open(cls, url: str | None = None, *, create: bool = True) -> Store:
        """See `clowncar.store.open_store`."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the connection pool."""
        raise NotImplementedError

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Run every write of this thread inside the block in one transaction: all of it lands or none."""
        raise NotImplementedError
        yield

    # -- writes ------------------------------------------------------------------------------------------------
    def create_or_get_sweep(self, name: str, spec: Mapping[str, Any], parent: str | None = None,
                            source: str = "run") -> int:
        """Create sweep `name` (status `created`) or return the id of the existing one (its spec is kept).

        `parent` names the sweep this one reruns (it must exist); `source` is `run` or `import`."""
        raise NotImplementedError

    def set_sweep_status(self, name: str, status: str) -> None:
        """Set a sweep's status (one of SWEEP_STATUSES). Unknown sweep -> StoreError."""
        raise NotImplementedError

    def start_trial(self, sweep: str, trial_uid: str, number: int, attempt: int, config: Mapping[str, Any],
                    seed: int | None, node: str | None, started_at: float | None = None) -> None:
        """Record that attempt `attempt` of trial `trial_uid` (trial `number` of `sweep`) started on `node`.

        `config` is the nested trial config dict (`TrialConfig.to_dict()`, or a partial one for imports); its
        hash is `TrialConfig.content_hash()`'s algorithm. The attempt's status becomes `running`.
        Idempotent: a second call for the same (trial, attempt) changes nothing. The same uid under another
        sweep, or with another config, is a StoreError. `started_at` is unix seconds (default: now)."""
        raise NotImplementedError

    def add_steps(self, trial_uid: str, attempt: int, rows: Iterable[Mapping[str, Any]]) -> int:
        """Bulk-insert step rows (the worker's `step` event records; keys STEP_COLUMNS, extra keys ignored,
        missing ones None). Rows whose (trial, attempt, step) exists are ignored. Returns rows offered."""
        raise NotImplementedError

    def add_evals(self, trial_uid: str, attempt: int, rows: Iterable[Mapping[str, Any]]) -> int:
        """Insert eval rows (`eval` event records, keys EVAL_COLUMNS; `mode` defaults to `standard`,
        `weights` to `raw`). Key: (trial, attempt, step, mode, weights); duplicates ignored."""
        raise NotImplementedError

    def add_probes(self, trial_uid: str, attempt: int, rows: Iterable[Mapping[str, Any]]) -> int:
        """Insert probe rows (`probe` event records, keys PROBE_COLUMNS). Key: (trial, attempt, step, mode)."""
        raise NotImplementedError

    def finish_trial(self, trial_uid: str, attempt: int, status: str, reason: str | None,
                     result: Mapping[str, Any] | None, ended_at: float | None = None) -> None:
        """Record an attempt's outcome. `status` is one of `events.TRIAL_STATUSES`; `result` is the worker's
        result.json dict (None when there was none, e.g. `crashed`). Every numeric result value is also
        stored as a metric row. A second call overwrites the first (the latest outcome wins)."""
        raise NotImplementedError

    def add_artifact(self, trial_uid: str, attempt: int, path: str, size_bytes: int | None,
                     code_bytes: int | None = None, sha256: str | None = None, kind: str = "model") -> None:
        """Record an artifact file of an attempt (compressed model: `size_bytes` of the file, `code_bytes`
        counted beside it). Key: (trial, attempt, path); a second call updates the row."""
        raise NotImplementedError

    def close_running(self, sweep: str, status: str = "crashed", reason: str = "head restarted") -> int:
        """Mark every attempt of `sweep` still `running` as `status` (for resume after a head crash).
        Returns how many attempts changed."""
        raise NotImplementedError

    # -- point reads -------------------------------------------------------------------------------------------
    def get_sweep(self, name: str) -> dict[str, Any] | None:
        """{id, name, spec, status, source, parent, created_at, updated_at} or None."""
        raise NotImplementedError

    def get_trial(self, trial_uid: str) -> dict[str, Any] | None:
        """Everything about one trial for `store show`: {trial_uid, sweep, number, config, config_hash, seed,
        attempts: [{attempt, status, reason, node, started_at, ended_at, result, steps, evals, probes,
        artifacts: [...]}]} or None."""
        raise NotImplementedError

    def trial_states(self, sweep: str) -> dict[str, tuple[int, str]]:
        """{trial_uid: (latest attempt, its status)} for a sweep (resume decides what to rerun from this)."""
        raise NotImplementedError

    def max_step(self, trial_uid: str, attempt: int) -> int:
        """Highest stored step of an attempt (0 when none): a relay can skip rows it already wrote."""
        raise NotImplementedError

    def sweep_summary(self, name: str) -> dict[str, Any]:
        """For `clowncar sweep status`: {name, status, source, parent, created_at, trials, by_status: {status:
        n}, best: {trial_uid, number, val_bpb, q_val_bpb} | None, running: [{trial_uid, number, attempt, node,
        started_at, last_step}]}. Unknown sweep -> StoreError."""
        raise NotImplementedError

    # -- frames ------------------------------------------------------------------------------------------------
    def sweeps_frame(self) -> pd.DataFrame:
        """One row per sweep: name, status, source, parent, created_at, updated_at, trials, ok, running,
        failed (diverged/oom/error/crashed), best_val_bpb (lowest final q_val_bpb, else val_bpb)."""
        raise NotImplementedError

    def trials_frame(self, sweeps: str | Iterable[str] | None = None, status: str | Iterable[str] | None = None,
                     where: Mapping[str, Any] | None = None) -> pd.DataFrame:
        """One row per trial (its latest attempt): sweep, trial_uid, number, attempt, attempts, status,
        reason, seed, config_hash, node, started_at, ended_at (UTC timestamps), source, then every scalar
        result.json value as its own column (val_bpb, q_val_bpb, steps, ...; missing -> NaN/None), then
        `provenance.*`, then the config flattened as dotted columns (`model.crawler_loops`, ...).

        Filters: `sweeps` and `status` (a name or several); `where` maps a column to a value or a list of
        allowed values (`{"model.crawler_loops": [2, 3]}`); an unknown `where` column is a StoreError."""
        raise NotImplementedError

    def steps_frame(self, sweeps: str | Iterable[str] | None = None,
                    trial_uids: str | Iterable[str] | None = None, all_attempts: bool = False) -> pd.DataFrame:
        """Long table: sweep, trial_uid, attempt, step, kind (`C`/`N`), train_loss, lr_scale, phase,
        elapsed_ms, tokens; sorted by trial and step. Only each trial's latest attempt unless
        `all_attempts`. `sweep` and `trial_uid` are categoricals (cheap for millions of rows)."""
        raise NotImplementedError

    def evals_frame(self, sweeps: str | Iterable[str] | None = None,
                    trial_uids: str | Iterable[str] | None = None, all_attempts: bool = False) -> pd.DataFrame:
        """Long table: sweep, trial_uid, attempt, step, mode, weights, val_loss, val_bpb, tokens_scored,
        bytes_scored."""
        raise NotImplementedError

    def probes_frame(self, sweeps: str | Iterable[str] | None = None,
                     trial_uids: str | Iterable[str] | None = None, all_attempts: bool = False) -> pd.DataFrame:
        """Long table: sweep, trial_uid, attempt, step, mode, probe_loss."""
        raise NotImplementedError

    def artifacts_frame(self, sweeps: str | Iterable[str] | None = None) -> pd.DataFrame:
        """sweep, trial_uid, attempt, kind, path, size_bytes, code_bytes, sha256, created_at."""
        raise NotImplementedError
