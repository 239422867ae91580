"""Plan ahead for the GPU ledger: list-schedule every sweep's queued trials from the cluster as it is now, under a
few simple priority rules, and keep the plan that ends soonest (a rollout over those rules). Pure, no Ray.

One request per sweep, ordered by a rule of thumb, cannot see what a whole-node trial arriving later will need, so
it leaves drains and a tail (bench_utilization: 0.950 replayed without overhead, where a scheduler that knows every
trial up front reaches 0.986). The ledger knows more than one request per sweep: each request carries the expected
durations of its sweep's trials still to come (a grid's unvisited points, longest first, or the budget's trials
at the expected length). So each pass plans the rest of the run, for every order of the sweeps (which sweep's
trials are placed first: small trials first fill the GPUs, larger first keeps whole nodes for gangs) with and
without reservation (a blocked sweep's next trial holds the node where it can start soonest; a later one may
still start there if it ends before then: EASY backfill), and keeps the plan with the earliest end of the last
trial (then the earliest sum of the sweeps' ends, so a small sweep is not put behind a big one for nothing). The
ledger then starts what that plan starts now. Plans are recomputed on every change, so a duration that was
misjudged costs one pass, not the run.
"""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass, field, replace
from itertools import permutations

MAX_ORDERS = 4
"""Up to this many sweeps with waiting requests every order of them is tried; beyond, larger-first and
smaller-first only (4! x 2 = 48 plans per pass at most)."""
HORIZON = 128
"""Trials of each sweep a plan looks at (the first ones it will ask): what starts now depends on the near future,
and a pass stays in milliseconds to tenths of a second (benchmarks/bench_plan.py)."""
BUDGET_S = 1.0
"""A pass stops trying further orders after this many seconds (the ledger is one actor that every driver's
request waits for). Larger-first and smaller-first, with and without reservation, are tried first."""
END_TOLERANCE, END_TOLERANCE_S = 0.002, 1.0
"""Plans whose last trial ends within this fraction of the time left (and at least this many seconds) of the
soonest are equal: durations are estimates, and a plan that ends 0.02 s later on paper is no worse. Among them,
the one where the sweeps end soonest (sum of their ends) is kept."""


@dataclass(frozen=True)
class Queue:
    owner: str
    gpus: int
    seconds: tuple[float, ...]
    """Expected seconds of the sweep's trials in the order it will ask them; the first ones are its waiting
    requests."""
    prefer: frozenset[str] = frozenset()
    """Nodes where the sweep's previous trial just ended (its actor can be reused there): placed there first."""
    avoid: frozenset[str] = frozenset()
    """Nodes where another sweep's idle actor holds GPUs (free once it is dropped, which takes a moment): placed
    there last."""
    limit: int = 0
    """Most trials of the sweep that may run at once (its max_concurrent; 0: no limit)."""


@dataclass
class Plan:
    at: float
    """When it was made: the trials that start then start now."""
    end: float
    """When the last planned trial ends."""
    ends: dict[str, float]
    """Per sweep: when its last planned trial ends."""
    starts: dict[str, list[tuple[str, float]]] = field(default_factory=dict)
    """Per sweep: (node, start) of its trials that start at `at`, then of the first one that starts later."""
    rule: str = ""


Running = tuple[str, int, float, str]
"""A trial that holds GPUs now: (node, gpus, expected end, owner)."""


def best_plan(nodes: dict[str, int], running: list[Running], queues: list[Queue], now: float,
              start_s: float = 0.0) -> Plan:
    """The plan, over the candidate rules, whose last trial ends first. `nodes`: node -> GPUs, in packing order;
    `start_s`: what starting a trial on a node where its sweep has no actor to hand over costs (`list_schedule`)."""
    queues = [replace(q, seconds=q.seconds[:HORIZON]) for q in queues]
    by_size = sorted(range(len(queues)), key=lambda i: queues[i].gpus)
    orders = [by_size[::-1], by_size]
    if len(queues) <= MAX_ORDERS:
        orders += [list(p) for p in permutations(range(len(queues))) if list(p) not in orders]
    began, plans = time.monotonic(), []
    for order in orders if len(queues) > 1 else orders[:1]:
        for reserve in (False, True) if len(queues) > 1 else (False,):
            if plans and time.monotonic() - began > BUDGET_S:
                break
            plans.append(list_schedule(nodes, running, queues, order, reserve, now, start_s))
    soonest = min(p.end for p in plans)
    close = soonest + max(END_TOLERANCE_S, END_TOLERANCE * (soonest - now))
    return min((p for p in plans if p.end <= close), key=lambda p: (sum(p.ends.values()), p.end))


def list_schedule(nodes: dict[str, int], running: list[Running], queues: list[Queue], order: list[int],
                  reserve: bool, now: float, start_s: float = 0.0) -> Plan:
    """List scheduling from `now`: at each moment the sweeps in `order` start their next trials while one fits
    (best fit: the node it fills most); with `reserve`, a sweep whose next trial fits nowhere reserves the node
    where it could start soonest, and later sweeps may start there only trials that end before that.

    A trial that starts on a node the moment one of its sweep's trials of its size ends there (or where the
    sweep's idle actor sits now) takes that actor over; any other start needs a new trial actor and its worker,
    and those starts queue for `start_s` each (the cluster's CPUs and Ray's scheduler start them, so thirty at
    once take thirty times as long). So a plan that moves sweeps between nodes less often, and starts fewer new
    actors at once, wins: which is what a measured start cost asks for."""
    free = dict(nodes)
    which = {q.owner: i for i, q in enumerate(queues)}
    count = [0] * len(queues)
    ends: list[tuple[float, str, int, int]] = []
    for node, gpus, end, owner in running:
        if node in free:
            free[node] -= gpus
            heapq.heappush(ends, (max(end, now), node, gpus, which.get(owner, -1)))
            if owner in which:
                count[which[owner]] += 1
    index = {n: i for i, n in enumerate(nodes)}
    heads = [0] * len(queues)
    warm = {(n, i): 1 for i, q in enumerate(queues) for n in q.prefer}
    starter = now  # when the queue of new actors' starts is free
    plan = Plan(now, now, {q.owner: now for q in queues}, {q.owner: [] for q in queues},
                f"{'>'.join(queues[i].owner for i in order)}{' reserve' if reserve else ''}")
    t = now
    while True:
        reserved: dict[str, float] = {}
        by_node: dict[str, list[tuple[float, int]]] | None = None  # made once per moment, when a trial reserves
        for i in order:
            q = queues[i]
            while heads[i] < len(q.seconds) and (not q.limit or count[i] < q.limit):
                seconds = q.seconds[heads[i]]
                cold = max(t, starter) + start_s - t + seconds  # from t to the end, when a new actor is needed
                fits = [n for n, f in free.items()
                        if f >= q.gpus and (n not in reserved
                                            or t + (seconds if warm.get((n, i), 0) else cold) <= reserved[n])]
                if not fits:
                    if reserve:
                        if by_node is None:
                            by_node = _ends_by_node(ends)
                        _reserve(nodes, free, by_node, reserved, q.gpus, t)
                    break
                node = min(fits, key=lambda n: (n in reserved, warm.get((n, i), 0) == 0, n in q.avoid,
                                                free[n] - q.gpus, index[n]))
                if warm.get((node, i), 0):
                    warm[(node, i)] -= 1
                else:
                    starter = max(t, starter) + start_s
                    seconds = cold
                free[node] -= q.gpus
                heapq.heappush(ends, (t + seconds, node, q.gpus, i))
                by_node = None
                count[i] += 1
                plan.ends[q.owner] = max(plan.ends[q.owner], t + seconds)
                starts = plan.starts[q.owner]
                if not starts or starts[-1][1] <= now:
                    starts.append((node, t))
                heads[i] += 1
        if not ends or all(h == len(q.seconds) for h, q in zip(heads, queues, strict=True)):
            break
        t, warm = ends[0][0], {}  # an actor not taken over at once is gone (Tune keeps one; the ledger drops it)
        while ends and ends[0][0] <= t:
            _, node, gpus, i = heapq.heappop(ends)
            free[node] += gpus
            if i >= 0:
                count[i] -= 1
                warm[(node, i)] = warm.get((node, i), 0) + (gpus == queues[i].gpus)
    plan.end = max(plan.ends.values(), default=now)
    return plan


def _ends_by_node(ends: list[tuple[float, str, int, int]]) -> dict[str, list[tuple[float, int]]]:
    out: dict[str, list[tuple[float, int]]] = {}
    for end, node, gpus, _ in sorted(ends):
        out.setdefault(node, []).append((end, gpus))
    return out


def _reserve(nodes: dict[str, int], free: dict[str, int], by_node: dict[str, list[tuple[float, int]]],
             reserved: dict[str, float], gpus: int, now: float) -> None:
    """Reserve, for a trial of `gpus`, the unreserved node where that many GPUs free up soonest."""
    best: tuple[float, str] | None = None
    for node, size in nodes.items():
        if node in reserved or size < gpus:
            continue
        have, at = free[node], now
        for end, g in by_node.get(node, ()):
            if have >= gpus:
                break
            have, at = have + g, end
        if have < gpus:  # held by something the plan does not see end
            continue
        if best is None or at < best[0]:
            best = (at, node)
    if best is not None:
        reserved[best[1]] = best[0]
