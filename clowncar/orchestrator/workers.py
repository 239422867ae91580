"""Which programs a sweep's trials may run, and which metrics a trial reports.

A spec names the module each trial runs (`worker.module`, run as `python -m MODULE trial.json --out DIR`). A spec
can come from the store (`sweep resume`, `sweep rerun` read it back), and whoever can write the store must not
be able to choose code for every node to execute. So only a module registered by the installation runs: the
built-in `clowncar.worker`, or a module that an installed distribution declares as an entry point of the group
`clowncar.workers` (`[project.entry-points."clowncar.workers"] NAME = "MODULE"`). The spec can no longer add
import paths (`worker.pythonpath`): a path chosen by the store could shadow any module, clowncar's own included.
The benchmarks folder registers the contract worker this way (`benchmarks/*.dist-info`), for the tests and
benchmarks that put it on PYTHONPATH.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from clowncar.errors import ConfigError
from clowncar.events import RESULT_METRICS

BUILTIN_WORKER = "clowncar.worker"
WORKER_GROUP = "clowncar.workers"
QUANT_METRICS = ("q_val_loss", "q_val_bpb", "q_sliding_val_loss", "q_sliding_val_bpb", "quant_gap",
                 "quant_seconds", "artifact_bytes", "artifact_file_bytes", "artifact_code_bytes")
"""Reported only when the trial quantizes (`quant.enabled`)."""
SLIDING_METRICS = ("sliding_val_loss", "sliding_val_bpb", "q_sliding_val_loss", "q_sliding_val_bpb")
"""Reported only with a sliding eval (0 < eval.stride < the eval sequence length)."""


def registered_workers() -> dict[str, str]:
    """module -> who registered it. Read from this process's installed distributions on every call (cheap: a
    few ms), so a worker installed while a long-lived process runs is seen."""
    found = {BUILTIN_WORKER: "clowncar"}
    for ep in entry_points(group=WORKER_GROUP):
        module = ep.value.split(":", 1)[0].strip()
        dist = getattr(ep, "dist", None)
        found.setdefault(module, getattr(dist, "name", None) or ep.name)
    return found


def check_worker(worker: Any) -> None:
    """A one-line ConfigError unless the spec's worker is registered and adds no import paths."""
    if worker.pythonpath:
        raise ConfigError("sweep spec key 'worker.pythonpath': a spec may not add import paths; install the "
                          f"worker as an entry point of the group '{WORKER_GROUP}' instead")
    known = registered_workers()
    if worker.module not in known:
        raise ConfigError(f"sweep spec key 'worker.module': '{worker.module}' is not a registered worker "
                          f"(registered: {', '.join(sorted(known))}; a worker is registered as an entry point "
                          f"of the group '{WORKER_GROUP}')")


def reported_metrics(cfg: Any) -> tuple[str, ...]:
    """The result.json numbers a trial with config `cfg` reports (the worker contract, `clowncar.events`)."""
    missing: set[str] = set()
    if not cfg.quant.enabled:
        missing.update(QUANT_METRICS)
    if not 0 < cfg.eval.stride < cfg.eval_seq_len:
        missing.update(SLIDING_METRICS)
    return tuple(m for m in RESULT_METRICS if m not in missing)


def check_objective(metric: str, cfg: Any, where: str) -> None:
    """`objective.metric` must be a number that a trial with this config reports (or `auto`)."""
    if metric == "auto":
        if not cfg.quant.enabled:
            raise ConfigError(f"sweep spec key 'objective.metric': auto means post-quantization BPB, but {where} "
                              "has quant.enabled false; name the metric (e.g. val_bpb)")
        return
    if metric in reported_metrics(cfg):
        return
    if metric in RESULT_METRICS:
        why = "quant.enabled is false" if metric in QUANT_METRICS and not cfg.quant.enabled else \
            "the sliding eval is off (eval.stride)"
        raise ConfigError(f"sweep spec key 'objective.metric': a trial of {where} does not report '{metric}' "
                          f"({why})")
    raise ConfigError(f"sweep spec key 'objective.metric': '{metric}' is not a metric a trial reports "
                      f"(one of: auto, {', '.join(RESULT_METRICS)})")
