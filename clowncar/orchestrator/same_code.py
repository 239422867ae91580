"""On the head: whether the trials' workers ran the driver's clowncar code.

A Ray node started without the driver's PYTHONPATH (or a cluster whose nodes run another image) imports clowncar
from wherever its Python finds it, and nothing else notices: the sweep's runs then pool several versions of the
code. The driver's git commit and dirty flag are read when the sweep starts (`clowncar.version.checkout_commit`);
each worker's are in its result.json (`provenance.git_commit`, `provenance.git_dirty`), which the store keeps per
run. The first finished trial whose code differs gets one warning line; the rest of the sweep is not repeated.

This module runs on the driver only: nothing here is imported by the worker, so the artifact's counted code bytes
(`clowncar.worker.code_bytes`) do not change with it."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import Any

from ray.tune import Callback

from clowncar.version import checkout_commit

Code = tuple[str, bool]
"""(git commit, whether a tracked file differs from it)."""


def _named(code: Code) -> str:
    commit, dirty = code
    return commit[:12] + (" with uncommitted changes" if dirty else "")


def worker_code(result: Mapping[str, Any] | None) -> Code | None:
    """The worker's (commit, dirty) from its result.json; None when it records no commit (not a checkout)."""
    prov = (result or {}).get("provenance")
    commit = prov.get("git_commit") if isinstance(prov, Mapping) else None
    if not isinstance(commit, str) or not commit:
        return None
    return commit, bool(prov.get("git_dirty"))


def differs(driver: Code | None, worker: Code | None) -> bool:
    """Whether the two certainly ran different code: another commit, or one clean and one dirty tree at the same
    commit. Two dirty trees of one commit may or may not differ (the report cautions about dirty runs); a side
    that runs from no checkout (an installed package, an image) cannot be compared."""
    return driver is not None and worker is not None and driver != worker


def warning_line(driver: Code, worker: Code, number: int, host: str | None) -> str:
    where = f" on {host}" if host else ""
    return (f"warning: trial {number} ran clowncar {_named(worker)}{where}, the driver runs {_named(driver)}: the "
            "workers import another copy of clowncar (check PYTHONPATH, or the image, on the Ray nodes); each "
            "run's commit is in the store, and `clowncar analyze` cautions when the runs span several commits. "
            "Said once per sweep")


class SameCode(Callback):
    """A Tune callback on the driver: compares each finished trial's worker code with the driver's, and prints
    one warning line, once, when they differ."""

    def __init__(self, driver: Code | None) -> None:
        self.driver = driver
        """The driver's (commit, dirty), read at sweep start; None when it runs from no checkout."""
        self.warned = False

    @classmethod
    def at_sweep_start(cls) -> SameCode:
        """The driver's code as it is now, when the sweep starts (its modules are already imported)."""
        return cls(checkout_commit())

    def check(self, result: Mapping[str, Any] | None, number: int, host: str | None) -> str | None:
        """The warning line for the first trial whose worker code differs from the driver's, else None."""
        worker = worker_code(result)
        if self.warned or self.driver is None or worker is None or not differs(self.driver, worker):
            return None
        self.warned = True
        return warning_line(self.driver, worker, number, host)

    def on_trial_result(self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any],
                        **info: Any) -> None:
        if not result.get("final") or not result.get("result_json") or self.warned:
            return
        try:
            res = json.loads(result["result_json"])
        except (TypeError, ValueError):
            return
        number = int(trial.config.get("_cc", {}).get("number", 0))
        line = self.check(res if isinstance(res, dict) else None, number, result.get("host"))
        if line:
            print(line, file=sys.stdout, flush=True)
