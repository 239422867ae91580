"""The cluster-wide GPU ledger: one detached Ray actor on the head that every GPU sweep asks before a trial starts.

Each sweep's driver holds a `Gate`. Before Tune gets a trial, the searcher asks the gate; the gate asks the ledger
(`placement.GpuBook` decides: gangs first, reservation, backfill, packing) and, once granted, the trial's
placement group is pinned to the granted node (`_soft_target_node_id`: soft, so a retried trial whose node died
still lands elsewhere). Ray's placement groups remain what stops double-booking; the ledger only decides order
and node, so if it is unreachable the gate admits at once and Ray's own placement applies (logged once).

Leases end when the trial ends (`release`), when the driver closes the gate, or, for a SIGKILLed driver, when
its heartbeat has been silent for `ttl_s`. A ledger that restarts (head restart) relearns the leases from the
drivers' heartbeats. GPU sweeps run without actor reuse: a cached actor keeps its trial's GPUs, which the ledger
would already have handed to another sweep.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from typing import Any

from clowncar.orchestrator.placement import GpuBook

NAME, NAMESPACE = "clowncar-gpu-ledger", "clowncar"
TTL_ENV = "CLOWNCAR_LEASE_TTL_S"
log = logging.getLogger(__name__)


class Ledger:
    """The actor's body (`ray.remote` is applied in `ledger_handle`, so this module imports without Ray)."""

    def __init__(self, ttl_s: float, settle_s: float) -> None:
        self.book = GpuBook(ttl_s=ttl_s, settle_s=settle_s)
        self.nodes_at = 0.0

    def _refresh(self, now: float) -> None:
        import ray

        if now - self.nodes_at < 2.0:
            return
        self.nodes_at = now
        self.book.set_nodes({n["NodeID"]: int(n.get("Resources", {}).get("GPU", 0))
                             for n in ray.nodes() if n.get("Alive")})

    @staticmethod
    def _gone(pg_hex: str) -> bool:
        """True once Ray has removed the placement group (its GPUs are really free)."""
        import ray
        from ray.util.placement_group import PlacementGroup, placement_group_table

        try:
            table = placement_group_table(PlacementGroup(ray.PlacementGroupID(bytes.fromhex(pg_hex))))
        except Exception:  # unknown id: nothing holds it
            return True
        return not table or table.get("state") == "REMOVED"

    def request(self, owner: str, key: str, gpus: int, expected_s: float) -> str | None:
        now = time.time()
        self._refresh(now)
        return self.book.request(owner, key, gpus, expected_s, now, gone=self._gone)

    def release(self, key: str) -> None:
        self.book.release(key, time.time())
        self.book.tick(time.time(), gone=self._gone)

    def confirm(self, key: str, node: str, pg: str) -> None:
        self.book.confirm(key, node, pg)

    def heartbeat(self, owner: str, held: list[tuple[str, int, str, float, float]]) -> None:
        now = time.time()
        self.book.heartbeat(owner, held, now)
        self._refresh(now)
        self.book.tick(now, gone=self._gone)

    def close(self, owner: str) -> None:
        self.book.close(owner, time.time())

    def snapshot(self) -> dict[str, object]:
        self.book.tick(time.time(), gone=self._gone)
        return self.book.snapshot()


def ledger_handle(ttl_s: float | None = None, settle_s: float = 10.0) -> Any:
    """The cluster's ledger actor, created on the head by the first sweep that needs it."""
    import ray

    ttl = ttl_s if ttl_s is not None else float(os.environ.get(TTL_ENV, "30"))
    actor = ray.remote(Ledger).options(
        name=NAME, namespace=NAMESPACE, lifetime="detached", get_if_exists=True, num_cpus=0, max_restarts=-1,
        max_task_retries=-1, resources={"node:__internal_head__": 0.001})
    return actor.remote(ttl, settle_s)


class Gate:
    """A driver's side of the ledger: asks, releases, and heartbeats every `beat_s` from a daemon thread."""

    def __init__(self, gpus: int, beat_s: float = 5.0, timeout_s: float = 10.0) -> None:
        import ray

        self.gpus, self.timeout_s = gpus, timeout_s
        self.owner = f"{ray.get_runtime_context().get_job_id()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.handle = ledger_handle()
        self.leases: dict[str, tuple[str, int, str, float, float]] = {}
        """Tune trial id -> (lease key, gpus, node, expected_s, start)."""
        self.broken = False
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._beat = threading.Thread(target=self._heartbeat, args=(beat_s,), name="clowncar-gate", daemon=True)
        self._beat.start()

    def _call(self, method: str, *args: Any) -> Any:
        import ray

        if self.broken:
            return None
        try:
            return ray.get(getattr(self.handle, method).remote(*args), timeout=self.timeout_s)
        except Exception as err:  # the sweep goes on under Ray's own placement
            self.broken = True
            log.warning("GPU ledger unreachable (%s: %s); trials are placed by Ray alone from now on",
                        type(err).__name__, str(err).splitlines()[0] if str(err) else "")
            return None

    def admit(self, trial_id: str, key: str, expected_s: float) -> str | None:
        """The node to pin trial `trial_id` to ('' = no pin), or None: not yet, ask again later."""
        lease_key = f"{self.owner}/{key}"
        node = self._call("request", self.owner, lease_key, self.gpus, expected_s)
        if node is None and not self.broken:
            return None
        node = node or ""
        with self._lock:
            self.leases[trial_id] = (lease_key, self.gpus, node, expected_s, time.time())
        return node

    def confirm(self, trial_id: str, node: str, pg: str) -> None:
        with self._lock:
            held = self.leases.get(trial_id)
            if held is None or (held[2] == node and not pg):
                return
            self.leases[trial_id] = (held[0], held[1], node, held[3], held[4])
        self._call("confirm", held[0], node, pg)

    def release(self, trial_id: str) -> None:
        with self._lock:
            held = self.leases.pop(trial_id, None)
        if held is not None:
            self._call("release", held[0])

    def _heartbeat(self, every: float) -> None:
        while not self._stop.wait(every):
            with self._lock:
                held = list(self.leases.values())
            self._call("heartbeat", self.owner, held)

    def close(self) -> None:
        self._stop.set()
        self._call("close", self.owner)


def trial_resources(cpus: float, gpus: int, config: dict[str, Any]) -> Any:
    """A trial's one bundle, pinned (softly) to the node the ledger granted (`_cc.node` in its config)."""
    from ray import tune

    node = (config.get("_cc") or {}).get("node") or None
    if node is None:
        return tune.PlacementGroupFactory([{"CPU": cpus, "GPU": gpus}])
    return tune.PlacementGroupFactory([{"CPU": cpus, "GPU": gpus}], strategy="STRICT_PACK",
                                      _soft_target_node_id=node)
