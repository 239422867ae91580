"""Which GPU trial starts next, and on which node: the policy of the cluster-wide GPU ledger (pure, no Ray).

Ray alone places each trial's bundle as its request arrives, with no notion of a gang waiting: 1-GPU trials of
one sweep spread over every node, each GPU that frees is taken by the next 1-GPU trial, and an 8-GPU trial of
another sweep waits until the stream of small trials runs dry. The book below decides instead, for every sweep
that shares the cluster (each driver asks it before handing a trial to Tune, `ledger.py`):

- **First come, first served, with reservation.** Requests are served in the order they arrived. One that fits
  nowhere now reserves the node where it can start soonest (from the expected end of the leases on it): nothing
  that arrived later starts there, so the node drains and the whole-node trial gets it. A stream of small
  trials cannot starve a gang, and a stream of gangs cannot starve small trials either (largest-first would;
  it also did worse in bench_utilization's simulation: 0.851 against 0.875).
- **Backfill.** A smaller request may still start on a reserved node if, by its own expected duration, it ends
  before the reservation's expected start (the HPC schedulers' EASY backfill), so a drain idles fewer GPUs.
- **Packing.** A request goes to the node it fills most (best fit), so small trials fill one node after another
  and whole nodes stay free for gangs instead of every node being a little busy. A sweep's next trial goes first
  where its previous trial of the same size just ended, so Tune reuses that actor and its placement group.

Leases are soft state: the owner (a sweep's driver) heartbeats; an owner silent for `ttl_s` (a SIGKILLed driver)
loses its leases and requests. A released lease whose placement group Ray has not removed yet (Tune keeps a
finished trial's actor for reuse) still counts, for `settle_s` at most, so no trial is promised GPUs that another
trial's actor still holds.

Known limit (bench_utilization, measured): Tune keeps one finished trial's actor, and its GPUs, for as long as
its sweep has no staged trial, and a trial held here waiting for a slot is not staged. So a node whose last
lease is such an idle actor looks free "now" to a waiting gang, which reserves it, cannot start there, and
holds back the small trials that could, until `settle_s` passes (a 40-60 s stall per drain). Counting that
actor as busy for one more trial of its sweep removes the stall but lets every sweep keep its own nodes (the
1-GPU sweep then ran on one node all run long: 0.887 against 0.914 at --scale 2), so it was reverted. The
real fix is for the driver to drop the idle actor as soon as its sweep's next trial is granted elsewhere.
Granting such a sweep its reservation at once (a "queued" lease: Tune stages the trial, pinned, and drops the
idle actor) was tried on branch wip/queued-grants: the stall went (drains took 4-5 s instead of 40-60 s) but
utilization at --scale 2 was 0.892 (main: 0.914 and 0.930), so it is not on main. It also needs a watchdog: a
placement group pinned to a node that dies while it waits stays PENDING forever in Ray 2.60, and so does a trial
actor Tune already created in it; the branch removes the group and kills that actor (private core-worker kill),
and Tune restarts the trial elsewhere.
Also tried, each one run at --scale 2 on the same 2-core machine as main's 0.931 (branch wip/asym):
- a kept actor of a sweep whose request waits counts as never freeing when planning a reservation: 0.875 (gangs
  then kept their nodes by hand-over and the 1-GPU sweep ran on one node, then formed the tail);
- the same, but only for a larger request (so only gangs avoid such nodes): the stall went (1-GPU start wait
  3.2 s mean against 12.2 s) but 0.901, because the 1-GPU sweep finished 130 s before the gangs, which ran alone;
- that plus larger requests first (with a bound: a request overdue by its own expected duration goes first):
  0.893, the mirror image (the 1-GPU sweep starved on one node, then ran alone).
What decides this workload is which sweep ends last, not the stall: the stall happens to hold the 1-GPU sweep
back so both end together. The replay in bench_utilization reproduces main (0.928 with Tune's actor cache, 0.929
to 0.931 measured) but not these variants (it predicted ~0.948 for each), so it cannot stand in for a measurement.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

UNPINNED = ""
"""The node of a grant that no node can hold (a request larger than every node): Ray decides."""


@dataclass
class Lease:
    owner: str
    gpus: int
    node: str
    start: float
    expected_s: float = 0.0
    """Expected duration (0: unknown); the lease's expected end is start + expected_s."""
    pg: str = ""
    """Hex id of the trial's placement group, once the trial has told it."""
    released: float | None = None

    @property
    def end(self) -> float:
        return self.start + self.expected_s


@dataclass
class Request:
    owner: str
    gpus: int
    expected_s: float
    since: float
    seen: float


class GpuBook:
    def __init__(self, ttl_s: float = 30.0, settle_s: float = 60.0) -> None:
        self.ttl_s, self.settle_s = ttl_s, settle_s
        self.nodes: dict[str, int] = {}
        """Alive nodes with GPUs: node id -> GPUs, in a fixed order (the packing order)."""
        self.leases: dict[str, Lease] = {}
        self.requests: dict[str, Request] = {}
        self.seen: dict[str, float] = {}
        self.reserved: dict[str, tuple[str, float]] = {}
        """After each pass: node -> (request key, expected start) of the reservations made."""

    # -- accounting ------------------------------------------------------------------------------------------
    def set_nodes(self, nodes: dict[str, int]) -> None:
        self.nodes = {n: g for n, g in nodes.items() if g > 0}

    def used(self, node: str) -> int:
        return sum(lease.gpus for lease in self.leases.values() if lease.node == node)

    def free(self, node: str) -> int:
        return self.nodes.get(node, 0) - self.used(node)

    def start_estimate(self, node: str, gpus: int, now: float) -> float:
        """When `gpus` GPUs will be free on `node`, if every lease there ends when it is expected to."""
        free, at = self.free(node), now
        for lease in sorted((x for x in self.leases.values() if x.node == node), key=lambda x: x.end):
            if free >= gpus:
                break
            free += lease.gpus
            at = max(at, now if lease.released is not None else lease.end)
        return at

    # -- owners' calls ---------------------------------------------------------------------------------------
    def request(self, owner: str, key: str, gpus: int, expected_s: float, now: float,
                gone: Callable[[str], bool] | None = None) -> str | None:
        """Ask for `gpus` GPUs on one node under `key` (repeat the call to wait): the node, or None for not yet."""
        self.seen[owner] = now
        if key not in self.leases:
            req = self.requests.setdefault(key, Request(owner, gpus, max(0.0, expected_s), now, now))
            req.seen = now
            self.tick(now, gone)
        lease = self.leases.get(key)
        return lease.node if lease is not None else None

    def release(self, key: str, now: float) -> None:
        """The lease's trial has ended (or the request is withdrawn)."""
        self.requests.pop(key, None)
        lease = self.leases.get(key)
        if lease is None:
            return
        if lease.pg:  # its GPUs come back once Ray has removed the placement group (or settle_s has passed)
            lease.released = now
        else:
            del self.leases[key]

    def confirm(self, key: str, node: str, pg: str) -> None:
        """Where the lease's trial actually runs (Ray may place it elsewhere, e.g. when its node died)."""
        lease = self.leases.get(key)
        if lease is not None and lease.released is None:
            lease.node, lease.pg = node or lease.node, pg or lease.pg

    def heartbeat(self, owner: str, held: list[tuple[str, int, str, float, float]], now: float) -> None:
        """The owner is alive and holds these leases (key, gpus, node, expected_s, start): a restarted ledger
        learns them again from here."""
        self.seen[owner] = now
        for key, gpus, node, expected_s, start in held:
            if key not in self.leases:
                self.requests.pop(key, None)
                self.leases[key] = Lease(owner, gpus, node, start, expected_s)

    def close(self, owner: str, now: float) -> None:
        """The owner is done: its requests go, its leases drain."""
        for key in [k for k, r in self.requests.items() if r.owner == owner]:
            del self.requests[key]
        for key in [k for k, lease in self.leases.items() if lease.owner == owner]:
            self.release(key, now)

    # -- the policy ------------------------------------------------------------------------------------------
    def tick(self, now: float, gone: Callable[[str], bool] | None = None) -> list[str]:
        self._expire(now, gone)
        return self._schedule(now)

    def _expire(self, now: float, gone: Callable[[str], bool] | None) -> None:
        dead = {o for o, t in self.seen.items() if now - t > self.ttl_s}
        for key, lease in list(self.leases.items()):
            drained = lease.released is not None and (now - lease.released > self.settle_s
                                                      or (gone is not None and gone(lease.pg)))
            if lease.owner in dead or drained:
                del self.leases[key]
        for key, req in list(self.requests.items()):
            if req.owner in dead or now - req.seen > self.ttl_s:
                del self.requests[key]
        for owner in dead:
            del self.seen[owner]

    def _schedule(self, now: float) -> list[str]:
        """One pass over the waiting requests, oldest first; returns the keys granted."""
        granted: list[str] = []
        self.reserved = {}
        order = list(self.nodes)
        biggest = max(self.nodes.values(), default=0)
        for key, req in sorted(self.requests.items(), key=lambda kv: self._priority(kv[0], kv[1])):
            node: str | None = None
            if req.gpus > biggest:
                node = UNPINNED
            else:
                own = {n: self._own_drained(n, req) for n in order}
                fits = [n for n in order if self.free(n) + (req.gpus if own[n] else 0) >= req.gpus
                        and self._may_use(n, req, now)]
                if fits:  # off reserved nodes first, then where the owner's last trial ends, then best fit
                    node = min(fits, key=lambda n: (n in self.reserved, own[n] is None, self.free(n) - req.gpus,
                                                    order.index(n)))
                    if own[node]:  # hand over: Tune reuses that trial's actor and placement group
                        del self.leases[own[node]]  # type: ignore[arg-type]
                else:
                    self._reserve(key, req, now)
            if node is not None:
                del self.requests[key]
                self.leases[key] = Lease(req.owner, req.gpus, node, now, req.expected_s)
                granted.append(key)
        return granted

    @staticmethod
    def _priority(key: str, req: Request) -> tuple[float, float, str]:
        return (req.since, -req.gpus, key)

    def _own_drained(self, node: str, req: Request) -> str | None:
        """A released lease of the same owner and size on `node` whose placement group Ray still holds."""
        for key, lease in self.leases.items():
            if (lease.node == node and lease.released is not None and lease.owner == req.owner
                    and lease.gpus == req.gpus):
                return key
        return None

    def _may_use(self, node: str, req: Request, now: float) -> bool:
        if node not in self.reserved:
            return True
        return req.expected_s > 0 and now + req.expected_s <= self.reserved[node][1]  # backfill

    def _reserve(self, key: str, req: Request, now: float) -> None:
        candidates = [n for n in self.nodes if n not in self.reserved and self.nodes[n] >= req.gpus]
        if not candidates:
            return
        best = min(candidates, key=lambda n: (self.start_estimate(n, req.gpus, now), -self.free(n)))
        self.reserved[best] = (key, self.start_estimate(best, req.gpus, now))

    def snapshot(self) -> dict[str, object]:
        return {"nodes": dict(self.nodes),
                "leases": {k: (x.owner, x.gpus, x.node, x.released is not None) for k, x in self.leases.items()},
                "requests": {k: (r.owner, r.gpus) for k, r in self.requests.items()},
                "reserved": {n: k for n, (k, _) in self.reserved.items()}}
