"""The cluster-wide GPU ledger: one detached Ray actor on the head that every GPU sweep asks before a trial starts.

Each sweep's driver holds a `Gate`. Before Tune gets a trial, the searcher asks the gate; the gate asks the ledger
(`placement.GpuBook` decides: a plan of the rest of the shared run, packing, measured start costs) and, once
granted, the trial's placement group is pinned to the granted node (a node label selector; a retried trial whose
node died is placed anywhere). Ray's placement groups remain what stops double-booking; the ledger only decides
order and node, so if it is unreachable the gate admits at once and Ray's own placement applies (logged once).
Unreachable means no answer at all for `patience_s`: a call that times out before that (the actor still starting,
or slow on a crowded head) is asked again, since one sweep placed by Ray alone defeats the ledger for every other
sweep too (its trials take the GPUs the ledger drains for theirs).

Leases end when the trial ends (`release`), when the driver closes the gate, or, for a SIGKILLed driver, when
its heartbeat has been silent for `ttl_s`. A ledger that restarts (head restart) relearns the leases from the
drivers' heartbeats. A released lease keeps its GPUs booked until Ray has removed the trial's placement group
(Tune keeps a finished trial's actor, and its GPUs, for reuse by the same sweep); when another sweep's trial
waits for those GPUs, the ledger's answer tells the owner's driver to drop that actor (`DropsIdleActor`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from ray.tune import PlacementGroupFactory
from ray.tune.schedulers import FIFOScheduler

from clowncar.orchestrator.asha import FinishingASHA
from clowncar.orchestrator.placement import GpuBook
from clowncar.settings import lease_ttl_seconds

NAME, NAMESPACE = "clowncar-gpu-ledger", "clowncar"
log = logging.getLogger(__name__)


class Ledger:
    """The actor's body (`ray.remote` is applied in `ledger_handle`)."""

    def __init__(self, ttl_s: float, settle_s: float) -> None:
        self.book = GpuBook(ttl_s=ttl_s, settle_s=settle_s)
        self.nodes_at = 0.0
        self.log: deque[tuple[float, str, str, str]] = deque(maxlen=20_000)
        """(time, 'grant' | 'release', lease key, node): what `clowncar sweep` benchmarks and tests read."""

    def _refresh(self, now: float) -> None:
        import ray

        if now - self.nodes_at < 2.0:
            return
        from clowncar.orchestrator.preflight import node_gpus

        self.nodes_at = now
        self.book.set_nodes(node_gpus(ray.nodes()))

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

    def request(self, owner: str, key: str, gpus: int, expected_s: float, backlog: Sequence[float] = (),
                limit: int = 0) -> tuple[str | None, bool]:
        """The granted node (None: not yet), and whether the owner should drop its idle actor (`idle_blocks`)."""
        now = time.time()
        self._refresh(now)
        before = set(self.book.leases)
        node = self.book.request(owner, key, gpus, expected_s, now, gone=self._gone, backlog=backlog, limit=limit)
        self._log_grants(before, now)
        return node, node is None and self.book.idle_blocks(owner)

    def _log_grants(self, before: set[str], now: float) -> None:
        for key in set(self.book.leases) - before:
            self.log.append((now, "grant", key, self.book.leases[key].node))

    def release(self, key: str) -> None:
        now = time.time()
        if key in self.book.leases:
            self.log.append((now, "release", key, self.book.leases[key].node))
        self.book.release(key, now)
        before = set(self.book.leases)
        self.book.tick(now, gone=self._gone)
        self._log_grants(before, now)

    def confirm(self, key: str, node: str, pg: str) -> None:
        self.book.confirm(key, node, pg, time.time())

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

    def history(self) -> list[tuple[float, str, str, str]]:
        return list(self.log)


def ledger_handle(ttl_s: float | None = None, settle_s: float = 60.0) -> Any:
    """The cluster's ledger actor, created on the head by the first sweep that needs it."""
    import ray

    ttl = ttl_s if ttl_s is not None else lease_ttl_seconds()
    # not connected yet: `.remote` connects (a local Ray), as before, and there is no job's env to inherit
    own_env = ledger_runtime_env(ray.get_runtime_context().runtime_env) if ray.is_initialized() else None
    actor = ray.remote(Ledger).options(
        name=NAME, namespace=NAMESPACE, lifetime="detached", get_if_exists=True, num_cpus=0, max_restarts=-1,
        max_task_retries=-1, resources={"node:__internal_head__": 0.001},
        **({"runtime_env": own_env} if own_env else {}))
    return actor.remote(ttl, settle_s)


def ledger_runtime_env(job_env: dict[str, Any]) -> dict[str, Any] | None:
    """The ledger's own runtime environment when the job creating it ships a working_dir (a submitted sweep:
    `submit.job_runtime_env`), else None (it inherits the job's, which is none for an embedded or attached driver).

    A detached actor inherits its creator's runtime environment, working_dir included, and outlives the job: the
    ledger would keep the job's package referenced in the head's GCS, and unpacked as its working directory, for
    as long as the cluster runs, and a submitted job's working_dir holds its `--store` URL with its password
    (`submit.STORE_FILE`). Ray takes no local path for an actor's working_dir and no null that clears the
    inherited one, so it gets a URI the job already holds and that carries no secret: the job's own code package
    (its first zip `py_modules` entry), which it keeps as py_modules too, so `clowncar` imports as before."""
    working_dir = job_env.get("working_dir")
    modules = list(job_env.get("py_modules") or [])
    code = [m for m in modules if str(m).endswith(".zip")]
    if not working_dir or not code:
        return None
    return {"working_dir": code[0], "py_modules": modules}


class Gate:
    """A driver's side of the ledger: asks, releases, and heartbeats every `beat_s` from a daemon thread."""

    def __init__(self, gpus: int, limit: int = 0, beat_s: float = 5.0, timeout_s: float = 10.0,
                 patience_s: float = 120.0) -> None:
        """`limit`: the sweep's max concurrent trials (the ledger plans no more of them at once). A call waits
        `timeout_s` for its answer; the gate gives up on the ledger only when none has come for `patience_s`."""
        import ray

        self.gpus, self.limit, self.timeout_s, self.patience_s = gpus, limit, timeout_s, patience_s
        self.answered = time.monotonic()
        """When the ledger last answered (or the gate opened)."""
        self.owner = f"{ray.get_runtime_context().get_job_id()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.leases: dict[str, tuple[str, int, str, float, float]] = {}
        """Tune trial id -> (lease key, gpus, node, expected_s, start)."""
        self.pgs: dict[str, str] = {}
        """Tune trial id -> the placement group last told to the ledger."""
        self.broken = False
        self.on_idle_blocks: Callable[[], None] | None = None
        """Called when the ledger says this sweep's idle Tune actor holds GPUs another sweep waits for (set by
        `DropsIdleActor`); it runs on Tune's control thread, inside the searcher's call."""
        try:
            self.handle = ledger_handle()
        except Exception as err:  # e.g. the head cannot host the actor: Ray places trials alone
            self._fail(err)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._beat = threading.Thread(target=self._heartbeat, args=(beat_s,), name="clowncar-gate", daemon=True)
        self._beat.start()

    def _call(self, method: str, *args: Any) -> Any:
        import ray

        if self.broken:
            return None
        try:
            answer = ray.get(getattr(self.handle, method).remote(*args), timeout=self.timeout_s)
        except TimeoutError as err:  # Ray's GetTimeoutError is one: slow, maybe not gone
            if time.monotonic() - self.answered >= self.patience_s:
                self._fail(err)
            return None  # a request asks again (its key makes a repeat find a grant it missed)
        except Exception as err:  # the sweep goes on under Ray's own placement
            self._fail(err)
            return None
        self.answered = time.monotonic()
        return answer

    def _fail(self, err: Exception) -> None:
        self.broken = True
        log.warning("GPU ledger unreachable (%s: %s); trials are placed by Ray alone from now on",
                    type(err).__name__, str(err).splitlines()[0] if str(err) else "")

    def admit(self, trial_id: str, key: str, expected_s: float, backlog: Sequence[float] = ()) -> str | None:
        """The node to pin trial `trial_id` to ('' = no pin), or None: not yet, ask again later. `backlog`: the
        expected seconds of the sweep's trials still to come after this one, in the order it will ask them (the
        ledger plans them)."""
        lease_key = f"{self.owner}/{key}"
        node, drop = (self._call("request", self.owner, lease_key, self.gpus, expected_s, list(backlog), self.limit)
                      or (None, False))
        if drop and self.on_idle_blocks is not None:
            self.on_idle_blocks()
        if node is None and not self.broken:
            return None
        node = node or ""
        with self._lock:
            self.leases[trial_id] = (lease_key, self.gpus, node, expected_s, time.time())
        return node

    def confirm(self, trial_id: str, node: str, pg: str) -> None:
        with self._lock:
            held = self.leases.get(trial_id)
            if held is None or (held[2] == node and self.pgs.get(trial_id, "") == pg):
                return  # nothing new: no call
            self.leases[trial_id] = (held[0], held[1], node, held[3], held[4])
            self.pgs[trial_id] = pg
        self._call("confirm", held[0], node, pg)

    def release(self, trial_id: str) -> None:
        with self._lock:
            held = self.leases.pop(trial_id, None)
            self.pgs.pop(trial_id, None)
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


class DropsIdleActor:
    """Mixed into the Tune trial scheduler of a gated sweep: drops the sweep's idle trial actor, and its GPUs,
    when the ledger says another sweep's trial waits for them (`GpuBook.idle_blocks`).

    Tune keeps one finished trial's actor for reuse while its sweep has nothing staged, and offers no call to drop
    it. The scheduler is the component Tune hands its controller to, so it keeps that controller and, on the
    ledger's word, runs the controller's own clean-up of cached actors (the one Tune runs when a sweep ends; never
    a kill from outside, which Tune would fail on). A sweep with no trial running waits inside Tune's blocking poll
    of the searcher, where no actor event is handled, so neither those actors nor the ones Tune was already
    stopping (a finished trial's actor that the one-actor cache did not take) ever give their GPUs back while it
    waits: their placement groups are removed here at once, which is what frees the GPUs (Tune then sees the stop
    it asked for). Both use Tune internals (pinned Ray; `test_gpu_ledger` checks them)."""

    controller: Any = None
    removed: set[Any]

    def listen(self, gate: Gate) -> None:
        self.removed = set()
        gate.on_idle_blocks = self.drop_idle_actors

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        self.controller = getattr(tune_controller, "_tune_controller", tune_controller)
        super().on_trial_add(tune_controller, trial)  # type: ignore[misc]

    def drop_idle_actors(self) -> None:
        controller = self.controller
        if controller is None:
            return
        try:
            live = controller._actor_manager._live_actors_to_ray_actors_resources  # actor -> (handle, resources)
            controller._cleanup_cached_actors(force_all=True)  # cached actors: now stopping too
            stopping = list(controller._stopping_actors)
            groups = [live[a][1].placement_group for a in stopping if a in live]
        except AttributeError as err:  # another Ray: the idle actor stays until Tune drops it itself
            log.warning("this Ray Tune cannot drop an idle trial actor (%s); a waiting gang may stall", err)
            self.controller = None
            return
        from ray.util.placement_group import remove_placement_group

        for group in groups:
            if group.id not in self.removed:  # a stopping actor stays listed until Tune's loop sees it stop
                self.removed.add(group.id)
                remove_placement_group(group)

    def __getstate__(self) -> dict[str, Any]:  # Tune pickles its config: not the controller
        return {**self.__dict__, "controller": None}


class GatedFIFO(DropsIdleActor, FIFOScheduler):
    """Tune's default scheduler, for a gated sweep."""


class GatedASHA(DropsIdleActor, FinishingASHA):
    """ASHA, for a gated sweep."""


NODE_LABEL = "ray.io/node-id"


class PinnedBundle(PlacementGroupFactory):
    """A trial's bundle pinned to the granted node for its first placement only.

    Tune asks again for the same trial only to restart it, typically after its actor or node died: Ray's GCS
    may not know the node is dead yet, and a placement group pinned to a dead node waits forever, so a restart
    goes wherever Ray finds room (the ledger learns the new node from the trial's first report)."""

    def to_placement_group(self) -> Any:
        import ray
        from ray.util.placement_group import placement_group

        first = not getattr(self, "_placed", False)
        self._placed = True
        node = self._bound.kwargs["bundle_label_selector"][0][NODE_LABEL]
        if first and any(n.get("NodeID") == node and n.get("Alive") for n in ray.nodes()):
            return super().to_placement_group()
        return placement_group(self.bundles, strategy="PACK")


def trial_resources(cpus: float, gpus: int, config: dict[str, Any]) -> Any:
    """A trial's one bundle, pinned to the node the ledger granted (`_cc.node` in its config).

    A hard pin (node label selector), not Ray's soft target: with a soft target, a trial whose node is still
    held by the previous trial's actor lands on any node with room, which may be the very node being drained for
    a whole-node trial. A restarted trial is placed anywhere (see `PinnedBundle`)."""
    from ray import tune

    node = (config.get("_cc") or {}).get("node") or None
    if node is None:
        return tune.PlacementGroupFactory([{"CPU": cpus, "GPU": gpus}])
    return PinnedBundle([{"CPU": cpus, "GPU": gpus}], strategy="STRICT_PACK",
                        bundle_label_selector=[{NODE_LABEL: node}])
