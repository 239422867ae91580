"""Which GPU trial starts next, and on which node: the policy of the cluster-wide GPU ledger (pure, no Ray).

Ray alone places each trial's bundle as its request arrives, with no notion of a gang waiting: 1-GPU trials of
one sweep spread over every node, each GPU that frees is taken by the next 1-GPU trial, and an 8-GPU trial of
another sweep waits until the stream of small trials runs dry. The book below decides instead, for every sweep
that shares the cluster (each driver asks it before handing a trial to Tune, `ledger.py`):

- **Plan the rest of the run** (`order="plan"`, the ledger's). Each request carries the expected durations of
  its sweep's trials still to come and its concurrency limit; the book keeps the latest of these per sweep, so a
  sweep between two requests still counts. Each pass list-schedules all of it from the cluster as it is, for
  every order of the sweeps, with and without reservation, and starts what the plan that ends soonest starts now
  (`plan.py`). GPUs the plan gives a sweep's next trial are not granted to another sweep's request meanwhile.
- **Packing.** A trial goes to the node it fills most (best fit), so small trials fill one node after another and
  whole nodes stay free for gangs. A sweep's next trial goes first where its previous trial of the same size just
  ended, so Tune reuses that actor and its placement group, and last where another sweep's idle actor sits.
- The rules of thumb it replaced stay as `order="finish" | "arrival" | "larger"` for bench_utilization's replay:
  one request served at a time (the sweep that would finish last, the oldest, the largest), a blocked request
  reserving the node where it can start soonest, EASY backfill, and a bound (a request that has waited its own
  expected duration, 60 s at least, goes first).

Leases are soft state: the owner (a sweep's driver) heartbeats; an owner silent for `ttl_s` (a SIGKILLed driver)
loses its leases, requests and planned trials. A released lease whose placement group Ray has not removed yet
(Tune keeps a finished trial's actor for reuse) still counts, for `settle_s` at most, so no trial is promised GPUs
that another trial's actor still holds.

**Idle actors.** Tune keeps one finished trial's actor, and its GPUs, for as long as its sweep has no staged
trial, and a trial held here waiting for a slot is not staged. When the plan starts another sweep's trial on
those GPUs, the answer to the owner's next request says so (`idle_blocks`) and its driver drops the idle actor and
its placement group (`ledger.DropsIdleActor`); without that a drain stalled 40-60 s, and a one-node cluster
deadlocked (after `settle_s` the gang is granted, its placement group waits for the actor's GPU, and the small
sweep waits for the gang's node).

**Start costs.** Each grant that needs a new trial actor (not a hand-over) is timed to the trial's first report,
shared by the new actors starting then (`start_s`, START_PRIOR_S before the first); the plan queues new actors'
starts at that cost. Without it the plan started 32 small trials at once on the 2-core machine (23 s mean start
wait, 0.922); with it the same run started them in smaller steps (2.2 s, 0.963).

**Measured** (bench_utilization --scale 2: 48 x 1-GPU and 16 x 8-GPU trials on 4 x 8 GPUs, the 2-core machine;
target 0.95). The plan with start costs: 0.963 (the 8-GPU sweep ran alone for its last 99 s; a 1-GPU trial waited
2.2 s to start). On a 16-core machine at --scale 1 (trials half as long): 0.935. Before it, every rule of thumb
measured between 0.91 and 0.93 at --scale 2 (arrival order 0.914-0.931, larger first 0.925, the sweep that would
finish last first 0.924, 0.927 at --scale 4) and 0.904-0.921 on the 16-core machine at --scale 1: they lost
GPU-seconds to drains when a node changed hands and to a tail of gangs alone, which one request per sweep cannot
see coming. Replayed without overhead and with starts free, the plan reaches 0.986 on this workload (what list
scheduling with every duration known reaches); over 40 random two-sweep workloads 0.944 mean (0.871 worst)
against finish 0.928 (0.858), arrival 0.923 (0.822), larger 0.920 (0.834).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from statistics import median

from clowncar.orchestrator.plan import Plan, Queue, Running, best_plan

ORDERS = ("plan", "finish", "arrival", "larger")
"""How waiting requests are served: the plan of the rest of the run (the ledger's); one at a time, latest finish
first, arrival order or larger first (with reservation and backfill; `finish` and `larger` with the bound)."""

START_PRIOR_S = 2.0
"""Seconds each new trial actor is taken to cost before one has been measured (a Ray actor and a worker process
on a busy node). It decides the first pass of a shared run, where every sweep starts at once: bench_utilization's
replay, with starts costing 1.3 s each, reaches 0.956 with it and 0.942 with none."""

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
    starting: int = 1
    """New actors starting when it was granted, itself included; 0 for a hand-over (its trial took over the actor
    of the owner's trial that had just ended there): how its start time is shared out."""

    @property
    def end(self) -> float:
        return self.start + self.expected_s

    @property
    def warm(self) -> bool:
        return self.starting == 0


@dataclass
class Request:
    owner: str
    gpus: int
    expected_s: float
    since: float
    seen: float


class GpuBook:
    def __init__(self, ttl_s: float = 30.0, settle_s: float = 60.0, order: str = "plan",
                 start_prior_s: float | None = None) -> None:
        if order not in ORDERS:
            raise ValueError(f"order must be one of {', '.join(ORDERS)}, not {order!r}")
        self.ttl_s, self.settle_s, self.order = ttl_s, settle_s, order
        """`order`: how waiting requests are served (ORDERS; all but `plan` stay for bench_utilization's replay)."""
        self.nodes: dict[str, int] = {}
        """Alive nodes with GPUs: node id -> GPUs, in a fixed order (the packing order)."""
        self.leases: dict[str, Lease] = {}
        self.requests: dict[str, Request] = {}
        self.seen: dict[str, float] = {}
        self.reserved: dict[str, tuple[str, float]] = {}
        """After each pass: node -> (request key, expected start) of the reservations made."""
        self.start_prior_s = START_PRIOR_S if start_prior_s is None else start_prior_s
        self.replan_s = 5.0
        self.cold_starts: deque[float] = deque(maxlen=32)
        """Per trial that needed a new actor: seconds from its grant to its first report, over the new actors that
        were starting then (`start_s`)."""
        self._cached: tuple[tuple[object, ...], Plan] | None = None
        self.queued: dict[str, tuple[int, tuple[float, ...], int]] = {}
        """Per owner, from its latest request: (GPUs per trial, expected seconds of its trials still to ask after
        that request, most trials at once): what the plan counts on while the owner has no request waiting."""

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
                gone: Callable[[str], bool] | None = None, backlog: Sequence[float] = (), limit: int = 0) -> str | None:
        """Ask for `gpus` GPUs on one node under `key` (repeat the call to wait): the node, or None for not yet.
        `backlog`: the expected seconds of the owner's trials still to come after this one, in its order; `limit`:
        how many of its trials may run at once (0: no limit)."""
        self.seen[owner] = now
        self.queued[owner] = (gpus, tuple(max(0.0, float(x)) for x in backlog), max(0, limit))
        if key not in self.leases:
            self.requests.setdefault(key, Request(owner, gpus, max(0.0, expected_s), now, now)).seen = now
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

    def confirm(self, key: str, node: str, pg: str, now: float | None = None) -> None:
        """Where the lease's trial actually runs (Ray may place it elsewhere, e.g. when its node died), told by its
        first report; at `now`, which times the start of a trial that needed a new actor."""
        lease = self.leases.get(key)
        if lease is not None and lease.released is None:
            if now is not None and not lease.pg and not lease.warm:
                self.cold_starts.append(max(0.0, now - lease.start) / max(1, lease.starting))
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
        self.queued.pop(owner, None)
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
            self.queued.pop(owner, None)

    def _schedule(self, now: float) -> list[str]:
        """One pass over the waiting requests, oldest first; returns the keys granted."""
        if self.order == "plan":
            return self._schedule_planned(now)
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

    @property
    def start_s(self) -> float:
        """What each new trial actor costs to start here, when starts queue one after another: the median of the
        last measured (`cold_starts`), or `start_prior_s` (START_PRIOR_S) before any was."""
        return median(self.cold_starts) if self.cold_starts else self.start_prior_s

    def _schedule_planned(self, now: float) -> list[str]:
        """Start what the best plan of the rest of the run starts now (`plan.best_plan`); a planned start blocked
        by another sweep's idle actor reserves its node, so that sweep drops it (`idle_blocks`)."""
        self.reserved = {}
        granted: list[str] = []
        biggest = max(self.nodes.values(), default=0)
        mine: dict[str, list[tuple[str, Request]]] = {o: [] for o, q in self.queued.items()
                                                      if q[1] and q[0] <= biggest}
        for key, req in sorted(self.requests.items(), key=lambda kv: (kv[1].since, kv[0])):
            if req.gpus > biggest:
                granted.append(self._grant(key, req, UNPINNED, now))
            else:
                mine.setdefault(req.owner, []).append((key, req))
        if not any(mine.values()):
            return granted
        start_s = self.start_s
        running = [(x.node, x.gpus, max(x.end + start_s * x.starting, now + 1.0), x.owner)
                   for x in self.leases.values() if x.released is None]
        queues = [self._queue(owner, reqs) for owner, reqs in mine.items()]
        plan = self._plan(running, queues, now, start_s)
        for queue, reqs in zip(queues, mine.values(), strict=True):  # an owner with no request waiting: held now
            for (key, req), (node, start) in zip(reqs, plan.starts[queue.owner], strict=False):
                if start > plan.at:
                    break
                own = self._own_drained(node, req)
                if self.free(node) + (req.gpus if own else 0) >= req.gpus:
                    if own:  # hand over: Tune reuses that trial's actor and placement group
                        del self.leases[own]
                    starting = 0 if own else 1 + sum(1 for x in self.leases.values() if x.starting and not x.pg)
                    granted.append(self._grant(key, req, node, now))
                    self.leases[key].starting = starting
                else:  # another sweep's idle actor holds the GPUs
                    self.reserved.setdefault(node, (key, now))
        return granted

    def _plan(self, running: list[Running], queues: list[Queue], now: float, start_s: float) -> Plan:
        """The best plan, kept while nothing it was made from changes, for `replan_s` at most: drivers ask again
        every fraction of a second, and a pass over hundreds of trials takes up to tenths of a second
        (benchmarks/bench_plan.py)."""
        state = (tuple(self.nodes.items()), tuple((k, x.node, x.released) for k, x in self.leases.items()),
                 tuple(queues), round(start_s, 1))
        if self._cached is not None and self._cached[0] == state and now - self._cached[1].at < self.replan_s:
            return self._cached[1]
        plan = best_plan(self.nodes, running, queues, now, start_s)
        self._cached = (state, plan)
        return plan

    def _queue(self, owner: str, reqs: list[tuple[str, Request]]) -> Queue:
        """The owner's trials to plan: its waiting requests, then the rest of its backlog."""
        gpus, backlog, limit = self.queued[owner]  # every request updates it
        idle = [x for x in self.leases.values() if x.released is not None]
        return Queue(owner, gpus, (*(r.expected_s for _, r in reqs), *backlog),
                     prefer=frozenset(x.node for x in idle if x.owner == owner and x.gpus == gpus),
                     avoid=frozenset(x.node for x in idle if x.owner != owner), limit=limit)

    def _grant(self, key: str, req: Request, node: str, now: float) -> str:
        del self.requests[key]
        self.leases[key] = Lease(req.owner, req.gpus, node, now, req.expected_s)
        return key

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
            if req.owner not in work:  # the backlog, once per owner
                gpus, backlog, _ = self.queued[req.owner]
                work[req.owner] = gpus * sum(backlog)
            work[req.owner] += req.gpus * req.expected_s
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
