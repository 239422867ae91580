"""Which GPU trial starts next, and on which node: the policy of the cluster-wide GPU ledger (pure, no Ray).

Ray alone places each trial's bundle as its request arrives, with no notion of a gang waiting: 1-GPU trials of
one sweep spread over every node, each GPU that frees is taken by the next 1-GPU trial, and an 8-GPU trial of
another sweep waits until the stream of small trials runs dry. The book below decides instead, for every sweep
that shares the cluster (each driver asks it before handing a trial to Tune, `ledger.py`):

- **The sweep that would finish last goes first, with reservation and a bound.** Each request carries its
  sweep's backlog (GPU-seconds of the trials it has still to ask); a sweep's finish estimate is its running
  trials' expected remainder, its waiting requests and its backlog, over the GPUs it holds now. Waiting requests
  are served latest finish first (then larger, then older): the rule that keeps sweeps ending together, as
  longest-processing-time-first does for single trials, so the end of a shared run is not one sweep's tail.
  A request that has waited as long as its own expected duration (60 s at least) goes before all others, so
  none waits for good. A request that fits nowhere now reserves the node where it can start soonest (from the
  expected end of the leases on it): nothing else starts there, so the node drains and the gang gets it.
- **Backfill.** A smaller request may still start on a reserved node if, by its own expected duration, it ends
  before the reservation's expected start (the HPC schedulers' EASY backfill), so a drain idles fewer GPUs.
- **Packing.** A request goes to the node it fills most (best fit), so small trials fill one node after another
  and whole nodes stay free for gangs instead of every node being a little busy. A sweep's next trial goes first
  where its previous trial of the same size just ended, so Tune reuses that actor and its placement group.

Leases are soft state: the owner (a sweep's driver) heartbeats; an owner silent for `ttl_s` (a SIGKILLed driver)
loses its leases and requests. A released lease whose placement group Ray has not removed yet (Tune keeps a
finished trial's actor for reuse) still counts, for `settle_s` at most, so no trial is promised GPUs that another
trial's actor still holds.

**Idle actors.** Tune keeps one finished trial's actor, and its GPUs, for as long as its sweep has no staged
trial, and a trial held here waiting for a slot is not staged. On a node being drained for another sweep's gang
that actor is of no use to its own sweep (its next trial may not start there) and holds the gang off: a 40-60 s
stall per drain in bench_utilization, and on a one-node cluster a deadlock (after `settle_s` the gang is granted,
its placement group waits for the actor's GPU, and the small sweep waits for the gang's node). So the answer to
a waiting request says so (`idle_blocks`) and the driver drops the idle actor and its placement group
(`ledger.DropsIdleActor`). With it, at bench_utilization --scale 2 on the 2-core machine, the start waits fell
(1-GPU trials 8.5 s mean / 19.6 s max, 8-GPU trials 1.4 / 4.2, against 12.2 / 55.3 and 3.6 / 23.1).

**Measured** (bench_utilization --scale 2, the 2-core machine; target 0.95, clairvoyant list scheduling 0.986):
arrival order 0.914-0.931 without the drop, 0.912 with it (the gangs ended 80 s after the small sweep); larger
requests first with the bound and the drop 0.925 (the small sweep, on one node all run long, ended 70 s after the
gangs); the sweep that would finish last first, with the drop, 0.924 (both sweeps ended within 6 s of each other;
what is left is drains when a node changes hands, the last gang alone on its node, and ~6 s to start each 1-GPU
trial); at --scale 4, 0.927 (there the gangs ended 118 s after the small sweep: the finish estimates misjudge the
end, where a few long trials decide it). Replayed without overhead over 40 random two-sweep workloads
(bench_utilization's `order_replay`; `order` here), latest finish first averages 0.928 (worst 0.858), arrival
order 0.923 (0.822), larger first 0.920 (0.834). Tried and not kept, each at --scale 2: counting an idle actor as
busy for one more trial of its sweep (0.887: sweeps then keep their nodes by hand-over); granting the waiting
request its reservation at once so that Tune stages it and drops the actor itself (0.892; a placement group pinned
to a node that dies while it waits then stays PENDING forever in Ray 2.60, so it needs a watchdog); planning
reservations larger requests first (0.892). The replay in bench_utilization does not rank these policies the way
the measurements do, so it cannot stand in for a measurement.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

ORDERS = ("finish", "arrival", "larger")
"""Orders of waiting requests: latest finish first (the ledger's), arrival order, larger first (both with the
reservation; `larger` with the same bound as `finish`)."""

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
    backlog_gpu_s: float = 0.0
    """GPU-seconds of the owner's trials not asked yet (0: none or unknown), for the finish estimate."""


class GpuBook:
    def __init__(self, ttl_s: float = 30.0, settle_s: float = 60.0, order: str = "finish") -> None:
        if order not in ORDERS:
            raise ValueError(f"order must be one of {', '.join(ORDERS)}, not {order!r}")
        self.ttl_s, self.settle_s, self.order = ttl_s, settle_s, order
        """`order`: which waiting request goes first (ORDERS; the others stay for bench_utilization's replay)."""
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
                gone: Callable[[str], bool] | None = None, backlog_gpu_s: float = 0.0) -> str | None:
        """Ask for `gpus` GPUs on one node under `key` (repeat the call to wait): the node, or None for not yet.
        `backlog_gpu_s`: the GPU-seconds of the owner's trials still to come after this one."""
        self.seen[owner] = now
        if key not in self.leases:
            req = self.requests.setdefault(key, Request(owner, gpus, max(0.0, expected_s), now, now))
            req.seen, req.backlog_gpu_s = now, max(0.0, backlog_gpu_s)
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
        finish = self.finish_estimates(now) if self.order == "finish" else {}
        waiting = sorted(self.requests.items(), key=lambda kv: (*self._priority(kv[1], now, finish), kv[0]))
        for key, req in waiting:
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

    def idle_blocks(self, owner: str) -> bool:
        """Whether `owner` holds an idle actor (a released lease whose placement group Ray still has) on a node
        reserved for another owner's request: its own next trial cannot start there, so it should drop it."""
        for lease in self.leases.values():
            held = self.reserved.get(lease.node)
            if lease.owner == owner and lease.released is not None and held is not None:
                req = self.requests.get(held[0])
                if req is not None and req.owner != owner:
                    return True
        return False

    def finish_estimates(self, now: float) -> dict[str, float]:
        """Per owner with a waiting request: seconds until its work would be done at the width it holds now (its
        running leases' expected remainder, its waiting requests and its backlog, in GPU-seconds, over the GPUs
        it holds, at least one request's worth)."""
        work: dict[str, float] = {}
        width: dict[str, int] = {}
        for req in self.requests.values():
            work[req.owner] = work.get(req.owner, 0.0) + req.gpus * req.expected_s + req.backlog_gpu_s
            width[req.owner] = max(width.get(req.owner, 0), req.gpus)
        held: dict[str, int] = {}
        for lease in self.leases.values():
            if lease.owner in work and lease.released is None:
                work[lease.owner] += lease.gpus * max(0.0, lease.end - now)
                held[lease.owner] = held.get(lease.owner, 0) + lease.gpus
        return {o: w / max(width[o], held.get(o, 0)) for o, w in work.items()}

    def _priority(self, req: Request, now: float, finish: dict[str, float]) -> tuple[float, ...]:
        """The sweep that would finish last goes first (then larger requests, then arrival), except that a request
        that has waited as long as its own expected duration (60 s at least) goes before every one that has not,
        so no request waits for good."""
        overdue = now - req.since >= max(req.expected_s, 60.0)
        if self.order == "arrival":
            return (req.since, -req.gpus)
        if self.order == "larger":
            return (not overdue, -req.gpus, req.since)
        return (not overdue, -finish.get(req.owner, 0.0), -req.gpus, req.since)

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
