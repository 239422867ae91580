"""The Ray Tune trainable: one trial = one worker program, launched, tailed, relayed and always cleaned up.

The trainable writes `trial.json`, starts the worker (one process, or `torchrun` for several GPUs) through
`clowncar.orchestrator.launch` in a new process group, and relays the worker's `events.jsonl` through
`tune.report`: every report carries the step, eval and probe rows that are new since the last one, so the store
on the head fills while the trial runs, plus the latest step/loss/BPB for ASHA. When the worker exits, the final
report carries the outcome (`ok` / `diverged` / `oom` / `error` / `rejected` / `crashed`) and result.json.

Cleanup, from the measured facts (reference/ray_tune_optuna_facts.md section 2): Tune stops a trial by raising
SystemExit inside `tune.report`, so `finally` kills the worker's whole process group; a SIGKILLed actor or driver
runs no `finally`, so every worker process also carries PDEATHSIG (set by the launch wrapper).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clowncar.errors import EXIT_BAD_INPUT, ClownCarError
from clowncar.events import (
    CONFIG_FILE,
    EVENTS_FILE,
    RESULT_FILE,
    RESULT_STATUSES,
    read_events,
    read_result,
    write_json_atomic,
)
from clowncar.orchestrator.rungs import clock
from clowncar.settings import load_settings
from clowncar.worker.startup import LAUNCH_TIME_ENV

EXIT_STATUS = {0: "ok", 3: "diverged", 4: "oom", 1: "error", 2: "rejected"}
RESULT_KEYS_FOR_TUNE = ("val_bpb", "q_val_bpb", "sliding_val_bpb", "q_sliding_val_bpb", "artifact_bytes",
                        "params", "steps", "train_seconds", "startup_seconds")


@dataclass
class TrialContext:
    """Everything a trial needs besides its sampled parameters; pickled once to every worker node."""

    sweep: str
    spec: dict[str, Any]
    runs_dir: str
    size_cap: int
    poll_s: float = 0.25
    heartbeat_s: float = 5.0
    extra_env: dict[str, str] = field(default_factory=dict)


def trial_dir_of(runs_dir: Path, sweep: str, number: int, attempt: int) -> Path:
    """Where an attempt's worker writes (on the node that ran it): config, events, log, result, artifact."""
    return runs_dir / "trials" / sweep / f"{number:05d}-{attempt}"


def worker_command(module: str, config_path: Path, out: Path, gpus: int) -> list[str]:
    args = ["-m", "clowncar.orchestrator.launch", module, str(config_path), "--out", str(out)]
    if gpus > 1:  # one rank per GPU, all on this node (the trial's bundle is on one node)
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={gpus}",
                *args]
    return [sys.executable, *args]


def worker_env(ctx: TrialContext, cpus: float, gpus: int) -> dict[str, str]:
    env = dict(os.environ)
    threads = str(max(1, int(cpus) // max(1, gpus)))
    # Ray sets OMP_NUM_THREADS=1 in actors; the worker gets the trial's CPUs, split over its ranks.
    env.update({"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "CLOWNCAR_LAUNCHER_PARENT": str(os.getpid())})
    paths = [*ctx.spec.get("worker", {}).get("pythonpath", []), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    env.update(ctx.extra_env)
    # Every trial of this node compiles into (and loads from) one cache; the launch time starts its start-up
    # clock (clowncar/worker/startup.py).
    env.update(load_settings(env).compile_cache_env(env))
    env[LAUNCH_TIME_ENV] = repr(time.time())
    return env


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the worker's process group (its ranks and anything they started), then reap it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


class Relay:
    """Tails events.jsonl and turns new records into one Tune report."""

    def __init__(self, path: Path, last_step: int | None = None) -> None:
        self.path, self.offset, self.last_step = path, 0, last_step
        self.step, self.latest = 0, {"train_loss": math.nan, "val_bpb": math.nan, "probe_loss": math.nan}
        self.measured_at = dict.fromkeys(self.latest, 0)
        """The step at which each ASHA metric's latest value was measured: ASHA's clock (asha.py)."""

    def poll(self) -> dict[str, list[dict[str, Any]]]:
        records, self.offset = read_events(self.path, self.offset)
        rows: dict[str, list[dict[str, Any]]] = {"steps": [], "evals": [], "probes": []}
        for rec in records:
            kind = rec.get("event")
            if kind == "step":
                rows["steps"].append(rec)
                self.step = max(self.step, int(rec.get("step") or 0))
                if rec.get("train_loss") is not None:
                    self._measured("train_loss", rec["train_loss"], rec)
            elif kind == "eval":
                rows["evals"].append(rec)
                if rec.get("val_bpb") is not None and rec.get("weights") != "quantized":
                    self._measured("val_bpb", rec["val_bpb"], rec)
            elif kind == "probe":
                rows["probes"].append(rec)
                if rec.get("probe_loss") is not None:
                    self._measured("probe_loss", rec["probe_loss"], rec)
        return rows

    def _measured(self, metric: str, value: Any, rec: dict[str, Any]) -> None:
        self.latest[metric] = float(value)
        self.measured_at[metric] = int(rec.get("step") or 0)

    def report(self, rows: dict[str, list[dict[str, Any]]], **extra: Any) -> dict[str, Any]:
        # Tune requires the searcher's metrics in every report; they are NaN until the final one.
        return {"step": self.step, **self.latest, **{clock(m): s for m, s in self.measured_at.items()},
                "last_step": self.last_step if self.last_step is not None else math.nan,
                "objective": math.nan, "artifact_bytes": math.nan, "new_rows": json.dumps(rows), **extra}


def objective_keys(metric: str) -> tuple[str, ...]:
    """The result.json keys a spec's objective metric reads, in order: `auto` is the sliding quantized BPB, else
    the plain one."""
    return ("q_sliding_val_bpb", "q_val_bpb") if metric == "auto" else (metric,)


def objective_value(result: dict[str, Any], metric: str) -> float | None:
    for key in objective_keys(metric):
        value = result.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    return None


def no_objective_reason(result: dict[str, Any], metric: str) -> str:
    """Why an `ok` result has no objective, naming the keys the metric resolves to and what each held."""
    keys = objective_keys(metric)
    held = ", ".join(f"{k} {json.dumps(result[k], default=str) if k in result else 'absent'}" for k in keys)
    named = " or ".join(keys) + (f" (objective '{metric}')" if metric == "auto" else "")
    return f"result.json has no finite value for {named}: {held}"


@dataclass(frozen=True)
class SizeVerdict:
    """A trial's artifact against its one cap."""

    cap: int
    over: bool
    constraint: float
    """Told to Optuna: > 0 is infeasible (NaN when no artifact size is known and nothing says it is over)."""
    reason: str | None


def own_size_cap(result: dict[str, Any] | None) -> int | None:
    """The trial's own quant.size_cap_bytes, as its worker recorded it (result.json's provenance.config)."""
    prov = (result or {}).get("provenance")
    config = prov.get("config") if isinstance(prov, dict) else None
    quant = config.get("quant") if isinstance(config, dict) else None
    cap = quant.get("size_cap_bytes") if isinstance(quant, dict) else None
    return cap if isinstance(cap, int) and not isinstance(cap, bool) and cap > 0 else None


def size_verdict(result: dict[str, Any] | None, constraint_cap: int | None, sweep_cap: int,
                 own_cap: int | None = None) -> SizeVerdict:
    """One cap per trial: the stricter of the spec's constraint.max_artifact_bytes and the trial's own
    quant.size_cap_bytes (`own_cap`, else the one in result.json); `sweep_cap` when neither is known. The worker's
    `over_cap` (against its own cap) also makes it over, so a trial can never be feasible in the sweep while its
    worker said it broke its cap."""
    res = result or {}
    own = own_cap or own_size_cap(res)
    named = [(c, where) for c, where in ((own, "the trial's quant.size_cap_bytes"),
                                        (constraint_cap, "the spec's constraint.max_artifact_bytes")) if c]
    cap, where = min(named, key=lambda c: c[0]) if named else (sweep_cap, "the sweep's size cap")
    art = res.get("artifact_bytes")
    size = float(art) if isinstance(art, int | float) and not isinstance(art, bool) else math.nan
    worker_over = res.get("over_cap") is True
    reason = None
    if size > cap:
        reason = f"artifact {art} bytes over the cap of {cap} ({where})"
    elif worker_over:
        sized = f" {art} bytes" if math.isfinite(size) else ""
        reason = f"artifact{sized} over the cap its worker applied (result.json over_cap: true)"
    over = reason is not None
    constraint = size - cap
    if over and not constraint > 0:  # the worker's verdict stands: a positive violation, whatever the sizes say
        constraint = 1.0
    return SizeVerdict(cap, over, constraint, reason)


def outcome(returncode: int, result: dict[str, Any] | None, stderr_tail: str) -> tuple[str, str | None]:
    """Map the worker's exit to (status, reason): result.json wins; no result.json means `crashed`."""
    if result is None:
        if returncode == EXIT_BAD_INPUT and stderr_tail:  # refused before the trial began (its config): as rejected
            return "rejected", stderr_tail
        how = f"killed by signal {-returncode}" if returncode < 0 else f"exit code {returncode}"
        return "crashed", f"worker {how} without result.json" + (f": {stderr_tail}" if stderr_tail else "")
    status = str(result.get("status") or EXIT_STATUS.get(returncode, "error"))
    if status not in RESULT_STATUSES:
        status = "error"
    if status == "ok" and returncode != 0:
        return "error", f"worker wrote status ok but exited {returncode}"
    return status, result.get("reason")


def stored_result(result: dict[str, Any], size: SizeVerdict) -> dict[str, Any]:
    """The worker's result as the store keeps it: over its one cap, it says so (`over_cap` true) and which cap that
    was (`size_cap_applied`), also where only the spec's stricter constraint was broken, which the worker did not
    know of: what the report marks as not submittable."""
    return {**result, "over_cap": True, "size_cap_applied": size.cap} if size.over else result


def final_report(ctx: TrialContext, status: str, reason: str | None, result: dict[str, Any] | None,
                 wall_s: float, own_cap: int | None = None) -> dict[str, Any]:
    """The last report of a trial: its outcome, objective and size verdict against its one cap (`own_cap`: the
    trial's quant.size_cap_bytes, where the caller has its config)."""
    spec = ctx.spec
    res = result or {}
    metric = spec["objective"]["metric"]
    objective = objective_value(res, metric) if status == "ok" else None
    size = size_verdict(result, (spec.get("constraint") or {}).get("max_artifact_bytes"), ctx.size_cap, own_cap)
    if status == "ok" and size.over and not reason:
        reason = size.reason
    if status == "ok" and objective is None:
        status, reason = "error", no_objective_reason(res, metric)
    out: dict[str, Any] = {
        "final": True, "status": status, "reason": reason or "", "wall_s": wall_s,
        "objective": objective if objective is not None else math.nan,
        "feasible": status == "ok" and not size.over,
        # Optuna constraint: <= 0 is feasible.
        "constraint": size.constraint,
        "result_json": json.dumps(stored_result(result, size)) if result is not None else "",
    }
    for key in RESULT_KEYS_FOR_TUNE:
        v = res.get(key)
        out[key] = float(v) if isinstance(v, int | float) and not isinstance(v, bool) else math.nan
    return out


def _watch(proc: subprocess.Popen[bytes], relay: Relay, ctx: TrialContext, base: dict[str, Any],
           stall_s: float) -> str | None:
    """Relay the worker's events to Tune until it exits; a worker silent for `stall_s` seconds (0: never) is
    killed, and the reason is returned."""
    from ray import tune

    last = heard = time.time()
    offset, nap = relay.offset, 0.01
    while proc.poll() is None:
        time.sleep(nap)
        nap = min(ctx.poll_s, nap * 2)  # short first naps: a worker that ends at once is seen at once
        rows = relay.poll()
        if relay.offset != offset:  # any event line, also those Tune is not sent (start-up, phases)
            offset, heard = relay.offset, time.time()
        elif stall_s and time.time() - heard > stall_s:
            kill_group(proc)
            return f"no event from the worker for {stall_s:g} s: killed as hung (worker.stall_seconds)"
        if any(rows.values()) or time.time() - last > ctx.heartbeat_s:
            tune.report(relay.report(rows, **base))  # Tune's stop arrives here as SystemExit
            last = time.time()
    return None


def _stderr_tail(path: Path) -> str:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""


def node_facts() -> dict[str, Any]:
    """Where this trial runs: host, Ray node, the GPUs Ray gave it, the actor's PID, its placement group (for
    the store, the GPU ledger and tests)."""
    import ray
    from ray.util import get_current_placement_group

    rc = ray.get_runtime_context()
    node_id = rc.get_node_id()
    pg = get_current_placement_group()
    return {"host": f"{socket.gethostname()}:{node_id[:12]}", "node_id": node_id, "pid": os.getpid(),
            "gpu_ids": ",".join(str(g) for g in ray.get_gpu_ids()), "pg": pg.id.hex() if pg else ""}


def run_trial(config: dict[str, Any], ctx: TrialContext) -> None:
    """The function trainable (wrapped with `tune.with_parameters(run_trial, ctx=...)`)."""
    from ray import tune

    from clowncar.orchestrator.spec import SweepSpec

    meta = config.get("_cc", {})
    spec = SweepSpec.model_validate(ctx.spec)
    attempt = int(meta.get("attempt", 0))  # a Tune retry runs as the next attempt (record.on_trial_recover)
    trial_dir = trial_dir_of(Path(ctx.runs_dir), ctx.sweep, int(meta.get("number", 0)), attempt)
    shutil.rmtree(trial_dir, ignore_errors=True)  # a folder of that name from an older sweep: its events are not ours
    trial_dir.mkdir(parents=True, exist_ok=True)
    start = time.time()
    # every report names its attempt: the driver drops a late one from an execution it has retried since
    base = {**node_facts(), "attempt": attempt}
    try:
        cfg = spec.trial_config(config)
    except ClownCarError as err:
        tune.report(Relay(trial_dir / EVENTS_FILE).report({}, **base, **final_report(ctx, "rejected", str(err),
                                                                                       None, 0.0)))
        return
    write_json_atomic(trial_dir / CONFIG_FILE, {"config": cfg.to_dict(), "sweep": ctx.sweep, "params": {
        k: v for k, v in config.items() if not k.startswith("_")}, **meta, **base})
    gpus, cpus = spec.resources.gpus, spec.resources.cpus
    ranks = gpus if spec.worker.launcher == "torchrun" else 1
    cmd = worker_command(spec.worker.module, trial_dir / CONFIG_FILE, trial_dir, ranks)
    relay = Relay(trial_dir / EVENTS_FILE, last_step=cfg.train.iterations)
    with (trial_dir / "worker.out").open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=worker_env(ctx, cpus, gpus), cwd=trial_dir, start_new_session=True)
    try:
        tune.report(relay.report(relay.poll(), worker_pid=proc.pid, **base))
        hung = _watch(proc, relay, ctx, base, float(spec.worker.stall_seconds))
        rows = relay.poll()
        result = read_result(trial_dir / RESULT_FILE)
        status, reason = outcome(proc.returncode, result, _stderr_tail(trial_dir / "worker.out"))
        if hung and result is None:
            status, reason = "crashed", hung
        final = final_report(ctx, status, reason, result, time.time() - start, cfg.quant.size_cap_bytes)
        tune.report(relay.report(rows, **base, **final))
    finally:
        kill_group(proc)
