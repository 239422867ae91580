"""On the head: the Tune callback that writes the store, and the live progress view.

Every Tune report of a trial carries the worker's new step / eval / probe rows (`new_rows`); the callback writes
them as they come, so the store fills while trials run. The final report (`final: True`) is written with
`finish_trial` in `on_trial_result`, which Tune calls before it tells the searcher (so a head that dies between
the two leaves a result that `sweep resume` tells Optuna instead of re-running the trial). Pruned, stopped and
crashed outcomes are written when the searcher has decided them (`on_tell`).
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ray.tune import Callback

from clowncar.orchestrator.ray_console import RAY_ERRORS, TRIAL_ERROR, error_text, failure_cause, last_failure
from clowncar.orchestrator.ray_oom import memory_kill
from clowncar.orchestrator.spec import SweepSpec
from clowncar.orchestrator.status_lines import params_text
from clowncar.orchestrator.trainable import trial_dir_of
from clowncar.overrides import apply_overrides
from clowncar.store.frames import FAILED

REPEAT_S = 60.0
"""A progress line with no news is printed again after this long (the time and the ETA move on)."""


def trial_uid(sweep: str, number: int) -> str:
    return f"{sweep}/{number}"


@dataclass
class Tally:
    """What the progress line shows."""

    total: int
    started: float = field(default_factory=time.time)
    by_status: dict[str, int] = field(default_factory=dict)
    running: set[str] = field(default_factory=set)
    running_since: dict[str, float] = field(default_factory=dict)
    """When each running trial's store attempt started: the ETA counts the time they have already run."""
    best: tuple[float, int, dict[str, Any]] | None = None
    gpu_seconds: float = 0.0
    walls: list[float] = field(default_factory=list)
    gpus: int = 0
    """GPUs per trial: a CPU sweep's line has no GPU-hours."""
    metric: str = "objective"
    """What `best` is, named on the line."""

    def done(self) -> int:
        return sum(self.by_status.values())

    def line(self, concurrency: int) -> str:
        s = self.by_status
        failed = sum(s.get(k, 0) for k in FAILED)
        left = max(0, self.total - self.done())
        eta = self._eta(left, concurrency) if self.walls and left else ""
        best = "-"
        if self.best:
            best = f"{self.best[0]:.4f} (trial {self.best[1]}: {params_text(self.best[2])})"
        gpu = f" | GPU-h {self.gpu_seconds / 3600:.3f}" if self.gpus else ""
        return (f"done {self.done()}/{self.total} (ok {s.get('ok', 0)}, failed {failed}, pruned "
                f"{s.get('pruned', 0)}, stopped {s.get('stopped', 0)}) | running {len(self.running)} | "
                f"best {self.metric} {best}{gpu} | {time.time() - self.started:.0f}s{eta}")

    def _eta(self, left: int, concurrency: int) -> str:
        """The trials left at the mean trial time, less what the running ones have run already (each at most the
        mean), over the concurrent slots; a running trial past the mean is overdue, not finishing now."""
        mean = sum(self.walls) / len(self.walls)
        now = time.time()
        ran = sum(min(mean, now - self.running_since[r]) for r in self.running if r in self.running_since)
        seconds = (left * mean - ran) / max(1, concurrency)
        if seconds < 0.5 and self.running:
            return f" | ETA overdue (trials take {mean:.0f}s on average)"
        return f" | ETA {seconds:.0f}s"

    def news(self) -> tuple[Any, ...]:
        """What changes the line other than the clock (elapsed time, ETA, GPU-hours): a line is printed again
        when this changes, or after REPEAT_S."""
        return tuple(sorted(self.by_status.items())), len(self.running), self.best


class StoreCallback(Callback):
    def __init__(self, spec: SweepSpec, store: Any, tally: Tally, show: bool = True,
                 runs_dir: Path | None = None) -> None:
        self.spec, self.store, self.tally, self.show = spec, store, tally, show
        self.runs_dir = runs_dir
        """Where the trial directories are (`trials/SWEEP/NNNNN-A`): Ray's text of a failure is kept there."""
        self.started: set[str] = set()
        """Tune trial ids whose current attempt the store has started."""
        self.meta: dict[str, tuple[str, int, int, dict[str, Any]]] = {}
        """Tune trial id -> (trial uid, number, current attempt, params): a Tune retry moves it to the next attempt."""
        self.trials: dict[str, Any] = {}
        """Tune trial id -> Tune's Trial, whose error.txt says how a failure ended (`error_outcome`)."""
        self.billed_from: dict[str, float] = {}
        """Tune trial id -> when its current execution's worker first reported: GPU time is billed from there."""
        self.on_retry: Callable[[str, int], None] | None = None
        """Told (Tune trial id, the retry's attempt) when Tune runs a trial again: the searcher's `retried`."""
        self._last_print = 0.0
        self._last_news: tuple[Any, ...] | None = None
        self._live: Any = None
        if show and sys.stdout.isatty():
            from rich.live import Live

            self._live = Live("", refresh_per_second=2, transient=False)
            self._live.start()

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its callbacks into the experiment directory, which we never restore from (see
        # resume.py): leave out the database connection and the live display.
        return {**self.__dict__, "store": None, "_live": None, "on_retry": None, "trials": {}}

    def _ids(self, trial: Any) -> tuple[str, int, int, dict[str, Any]]:
        self.trials[trial.trial_id] = trial
        if trial.trial_id not in self.meta:
            cc = trial.config.get("_cc", {})
            number, attempt = int(cc.get("number", 0)), int(cc.get("attempt", 0))
            params = {k: v for k, v in trial.config.items() if not k.startswith("_")}
            self.meta[trial.trial_id] = (trial_uid(self.spec.name, number), number, attempt, params)
        return self.meta[trial.trial_id]

    def _start(self, trial_id: str, host: str | None) -> bool:
        """Record in the store that the trial's current attempt started on `host` (once); True when this call did."""
        if trial_id in self.started:
            return False
        uid, number, attempt, params = self.meta[trial_id]
        try:
            config = self.spec.trial_config(params).to_dict()
        except Exception:  # an impossible combination: store what was asked; the trial reports the error
            config = apply_overrides(self.spec.base_dict(), params)
        self.store.start_trial(self.spec.name, uid, number, attempt, config, config.get("train", {}).get("seed"),
                               host)
        self.started.add(trial_id)
        self.tally.running.add(trial_id)
        self.tally.running_since[trial_id] = time.time()  # this attempt's start: a retry starts again
        return True

    def _bill(self, trial_id: str) -> None:
        """Add the GPU time of the trial's execution that ends now, from its worker's first report, as `sweep
        status` bills it (search.gpu_seconds_used); an execution that never reported used no GPU."""
        since = self.billed_from.pop(trial_id, None)
        if since is not None:
            self.tally.gpu_seconds += max(0.0, time.time() - since) * self.spec.resources.gpus

    def on_trial_result(self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any],
                        **info: Any) -> None:
        uid, number, attempt, params = self._ids(trial)
        if int(result.get("attempt", attempt)) != attempt:
            return  # a late report of an execution Tune has retried since: its rows are not this attempt's
        if self._start(trial.trial_id, result.get("host")):
            self.billed_from[trial.trial_id] = time.time()
        rows = json.loads(result.get("new_rows") or "{}")
        if rows.get("steps"):
            self.store.add_steps(uid, attempt, rows["steps"])
        if rows.get("evals"):
            self.store.add_evals(uid, attempt, rows["evals"])
        if rows.get("probes"):
            self.store.add_probes(uid, attempt, rows["probes"])
        if result.get("final"):
            res = json.loads(result["result_json"]) if result.get("result_json") else None
            status = str(result["status"])
            self.store.finish_trial(uid, attempt, status, result.get("reason") or None, res)
            if res and res.get("artifact_path"):  # the worker's model.ptz: where, how big, which bytes
                self.store.add_artifact(uid, attempt, str(res["artifact_path"]), res.get("artifact_file_bytes"),
                                        res.get("artifact_code_bytes"), res.get("artifact_sha256"))
            self._bill(trial.trial_id)
            self._count(trial, status, result, number, params)
        self._print()

    def on_tell(self, trial_id: str, result: dict[str, Any], outcome: str) -> None:
        """Called by the searcher after its tell, for outcomes without a final report."""
        if result.get("final") or trial_id not in self.meta:
            return
        uid, _, attempt, _ = self.meta[trial_id]
        reason = {"pruned": "stopped early by ASHA", "stopped": "sweep stopped",
                  "crashed": "trial failed after its retries (node or actor lost)",
                  "oom": self.error_outcome(trial_id)[1]}.get(outcome)
        # A retry stopped before it started never ran: no attempt of it is stored (`sweep resume` runs the next).
        if trial_id in self.started or outcome != "stopped":
            self._start(trial_id, None)
            self.store.finish_trial(uid, attempt, outcome, reason, None)
        self._bill(trial_id)
        self.tally.running.discard(trial_id)
        self.tally.running_since.pop(trial_id, None)
        self.tally.by_status[outcome] = self.tally.by_status.get(outcome, 0) + 1
        self._print(force=True)

    def error_outcome(self, trial_id: str) -> tuple[str, str | None]:
        """How a trial that Tune gave up on ended, from Ray's text of its last failure: `oom` with one short
        reason when Ray's memory monitor killed its actor (ray_oom.py), else `crashed` (its reason said later)."""
        killed = memory_kill(error_text(self.trials.get(trial_id)))  # a trial never seen has no text: ''
        return ("oom", killed) if killed else ("crashed", None)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        """Tune gave up on the trial (its actor or node died, Ray's memory monitor killed it, or the trainable
        raised, past `max_failures`): the outcome and reason are stored, Ray's whole text goes to the trial's
        directory, and the console gets one line."""
        if trial.trial_id not in self.meta or trial.error_file is None:
            return
        uid, number, attempt, _ = self.meta[trial.trial_id]
        text = error_text(trial)
        status, reason = self.error_outcome(trial.trial_id)
        reason = reason or last_failure(text) or "its Ray actor failed"
        self._start(trial.trial_id, None)  # a retry that failed before its first report is an attempt all the same
        self._bill(trial.trial_id)
        self.store.finish_trial(uid, attempt, status, reason, None)
        where = self._keep(trial_dir_of(self.runs_dir, self.spec.name, number, attempt) / TRIAL_ERROR, text,
                           append=False) if self.runs_dir is not None and text.strip() else None
        self._say(f"trial {number} {status}: {reason}" + (f"; Ray's full error: {where}" if where else ""))

    def on_trial_recover(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        """Tune runs the trial again after its actor or node died. Each execution is its own attempt, as a re-run
        by `sweep resume` is: the one that died ends `crashed` (`oom` when Ray's memory monitor killed it; its rows,
        node and start kept), the retry is the
        next attempt, with its own rows, node, start and trial folder (the trainable reads its attempt from the
        config Tune starts it with, changed here). One line on the console; Ray's text goes to the sweep's log."""
        uid, number, attempt, params = self._ids(trial)
        text = error_text(trial)
        why, ray_says = failure_cause(text), last_failure(text) or "its Ray actor failed"
        killed = memory_kill(text)  # Ray's memory monitor: the attempt ran out of host memory, in Ray's own words
        status, reason = ("oom", killed) if killed else ("crashed", f"{why} (Ray: {ray_says})")
        retry = attempt + 1
        trial.config["_cc"] = {**trial.config.get("_cc", {}), "attempt": retry}
        if self.on_retry is not None:  # the study first: a head that dies next resumes the retry, not the crash
            self.on_retry(trial.trial_id, retry)
        self._start(trial.trial_id, None)  # an execution that died before its first report is an attempt too
        self._bill(trial.trial_id)
        self.store.finish_trial(uid, attempt, status, f"{reason}; Tune retried it as attempt {retry}", None)
        self.meta[trial.trial_id] = (uid, number, retry, params)
        self.started.discard(trial.trial_id)
        failures = trial.run_metadata.num_failures  # Tune counts the failure before it calls back
        where = self._keep(self.runs_dir / "trials" / self.spec.name / RAY_ERRORS,
                           f"trial {number}, failure {failures}:\n{text}\n", append=True) \
            if self.runs_dir is not None and text.strip() else None
        self._say(f"trial {number}: {killed or why}; Tune runs it again as attempt {retry} (retry {failures} of "
                  f"max_failures {self.spec.max_failures})" + (f"; Ray's error: {where}" if where else ""))

    @staticmethod
    def _keep(path: Path, text: str, append: bool) -> Path | None:
        """Write Ray's text where a person finds it; None when it cannot be written (the line says less)."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a" if append else "w") as fh:
                fh.write(text)
        except OSError:
            return None
        return path

    def _say(self, line: str) -> None:
        """A trial's failure, one line on stdout, also with --quiet: it is news, not progress."""
        print(line, flush=True)

    def _count(self, trial: Any, status: str, result: dict[str, Any], number: int, params: dict[str, Any]) -> None:
        t = self.tally
        t.running.discard(trial.trial_id)
        t.running_since.pop(trial.trial_id, None)
        t.by_status[status] = t.by_status.get(status, 0) + 1
        t.walls.append(float(result.get("wall_s") or 0.0))
        value = result.get("objective")
        if result.get("feasible") and isinstance(value, float) and math.isfinite(value):
            sign = 1 if self.spec.objective.mode == "min" else -1
            if t.best is None or sign * value < sign * t.best[0]:
                t.best = (value, number, params)

    def _print(self, force: bool = False) -> None:
        if not self.show:
            return
        text = self.tally.line(self.spec.max_concurrent)
        if self._live is not None:
            self._live.update(text)
            return
        since = time.time() - self._last_print
        news = self.tally.news()
        # a line with news at most every 10 s (a trial's end at once); the same line again only after REPEAT_S
        if (news != self._last_news and (force or since > 10)) or since >= REPEAT_S:
            print(text, flush=True)
            self._last_print, self._last_news = time.time(), news

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._print(force=True)

    def close(self) -> None:
        if self._live is not None:
            self._live.update(self.tally.line(self.spec.max_concurrent))
            self._live.stop()
