"""The GPU book's accounting under every serving order: a long random run of requests, releases, reports,
heartbeats, closes and silent owners never books more GPUs on a node than it has, never grants a key twice, and,
once the cluster drains, serves every request that fits a node. Then the accounting rules one by one."""

from __future__ import annotations

import random
from typing import Any

import pytest

from clowncar.orchestrator.placement import ORDERS, START_PRIOR_S, UNPINNED, GpuBook, Lease, Request

NODES = {"n0": 8, "n1": 4, "n2": 2}


def check_books(b: GpuBook) -> None:
    for node, gpus in b.nodes.items():
        assert b.used(node) <= gpus, (node, b.snapshot())
    assert not set(b.leases) & set(b.requests)


@pytest.mark.parametrize("order", ORDERS)
def test_a_random_shared_run_never_overbooks_and_ends_with_everything_served(order: str) -> None:
    rng = random.Random(f"book-{order}")
    b = GpuBook(ttl_s=30.0, settle_s=20.0, order=order, start_prior_s=1.0)
    b.set_nodes(NODES)
    owners = ["a", "b", "c", "d"]
    size = {"a": 1, "b": 2, "c": 8, "d": 16}  # d asks for more than any node holds: left to Ray
    asked: dict[str, str] = {}  # key -> owner, for every key ever asked
    granted: dict[str, str] = {}
    gone: set[str] = set()
    now, n = 0.0, 0
    for _ in range(600):
        now += rng.choice([0.1, 0.5, 2.0])
        owner = rng.choice(owners)
        op = rng.random()
        waiting = [k for k, o in asked.items() if o == owner and k not in granted]
        mine = [k for k, o in granted.items() if o == owner and k in b.leases]
        if op < 0.45:
            key = waiting[0] if waiting else f"{owner}{(n := n + 1)}"
            asked[key] = owner
            node = b.request(owner, key, size[owner], rng.choice([0.0, 5.0, 40.0]), now, gone=gone.__contains__,
                             backlog=[10.0] * rng.randrange(4), limit=rng.choice([0, 2]))
            if node is not None:
                assert key not in granted or granted[key] == owner
                granted[key] = owner
                assert node == UNPINNED if size[owner] > 8 else node in NODES
        elif op < 0.65 and mine:
            key = rng.choice(mine)
            if not b.leases[key].pg and rng.random() < 0.7:
                b.confirm(key, b.leases[key].node, f"pg-{key}", now)
            else:
                b.release(key, now)
                if rng.random() < 0.5:
                    gone.add(f"pg-{key}")
        elif op < 0.9:
            held = [(k, x.gpus, x.node, x.expected_s, x.start) for k, x in b.leases.items() if x.owner == owner]
            b.heartbeat(owner, held, now)
            b.tick(now, gone=gone.__contains__)
        elif op < 0.95:
            b.close(owner, now)
        else:
            now += 31.0  # everybody silent past the TTL
            b.tick(now, gone=gone.__contains__)
            assert not b.leases and not b.requests
        granted.update({k: b.leases[k].owner for k in b.leases if k not in granted})
        check_books(b)
    assert len(granted) > 50  # the run did grant, on every node
    assert {x for x in (b.leases[k].node for k in b.leases)} <= set(NODES) | {UNPINNED}

    for key in list(b.leases):  # drain: every trial ends, and Ray removes the placement groups
        b.release(key, now)
    for _ in range(5):
        now += 1.0
        for owner in owners:
            b.request(owner, f"{owner}-last", size[owner], 5.0, now, gone=lambda pg: True)
        check_books(b)
    assert {f"{o}-last" for o in owners} <= set(b.leases)


def lease_book(**kw: Any) -> GpuBook:
    b = GpuBook(start_prior_s=0.0, **kw)
    b.set_nodes({"n0": 8, "n1": 4, "empty": 0})
    return b


def test_nodes_without_gpus_are_not_nodes_and_free_counts_released_leases() -> None:
    b = lease_book()
    assert b.nodes == {"n0": 8, "n1": 4}
    assert b.free("unknown") == 0 and b.free("n0") == 8
    b.leases["x"] = Lease("o", 3, "n0", 0.0, pg="p")
    b.leases["y"] = Lease("o", 2, "n0", 0.0, released=5.0)  # its placement group is still there
    b.leases["z"] = Lease("o", 4, "n1", 0.0)
    assert (b.used("n0"), b.free("n0"), b.used("n1"), b.free("n1")) == (5, 3, 4, 0)


def test_the_start_estimate_walks_leases_by_their_expected_end() -> None:
    b = lease_book()
    b.leases["late"] = Lease("o", 4, "n0", 0.0, expected_s=100.0)
    b.leases["early"] = Lease("o", 2, "n0", 0.0, expected_s=30.0)
    b.leases["done"] = Lease("o", 1, "n0", 0.0, expected_s=500.0, released=3.0)  # ends as soon as Ray lets go
    assert b.start_estimate("n0", 1, now=10.0) == 10.0  # one GPU free now
    assert b.start_estimate("n0", 2, now=10.0) == 30.0  # 'early' ends at 30
    assert b.start_estimate("n0", 3, now=10.0) == 30.0
    assert b.start_estimate("n0", 7, now=10.0) == 100.0  # both trials must end; the released one frees now
    assert b.start_estimate("n0", 8, now=10.0) == 100.0
    assert b.start_estimate("n0", 2, now=50.0) == 50.0  # overdue leases count as ending now


def test_a_release_frees_at_once_without_a_placement_group_and_after_ray_or_settle_with_one() -> None:
    b = lease_book(settle_s=20.0)
    b.release("never-asked", now=0.0)
    b.requests["w"] = Request("o", 1, 5.0, 0.0, 0.0)
    b.release("w", now=0.0)  # a withdrawn request
    assert "w" not in b.requests
    b.leases["plain"] = Lease("o", 2, "n0", 0.0)
    b.release("plain", now=1.0)
    assert "plain" not in b.leases
    b.leases["held"] = Lease("o", 2, "n0", 0.0, pg="p")
    b.release("held", now=1.0)
    assert b.leases["held"].released == 1.0 and b.used("n0") == 2
    b.tick(21.0, gone=lambda pg: False)
    assert "held" in b.leases  # 20 s after its release: not past settle_s yet
    b.tick(21.5, gone=lambda pg: False)
    assert "held" not in b.leases
    b.leases["ray"] = Lease("o", 2, "n0", 0.0, pg="q", released=30.0)
    b.tick(31.0, gone=lambda pg: pg == "q")
    assert "ray" not in b.leases


def test_a_report_moves_the_lease_and_times_a_cold_start_over_the_actors_starting() -> None:
    b = lease_book()
    b.leases["k"] = Lease("o", 1, "n0", 10.0, starting=4)
    b.confirm("k", "n1", "pg1", now=30.0)
    assert (b.leases["k"].node, b.leases["k"].pg) == ("n1", "pg1") and list(b.cold_starts) == [5.0]
    b.confirm("k", "", "", now=90.0)  # a later report: nothing new, and no second timing
    assert (b.leases["k"].node, b.leases["k"].pg) == ("n1", "pg1") and list(b.cold_starts) == [5.0]
    b.leases["warm"] = Lease("o", 1, "n0", 10.0, starting=0)  # took over an actor: not a start
    b.confirm("warm", "n0", "pg2", now=30.0)
    b.leases["untimed"] = Lease("o", 1, "n0", 10.0)
    b.confirm("untimed", "n0", "pg3")
    b.leases["early"] = Lease("o", 1, "n0", 10.0)
    b.confirm("early", "n0", "pg4", now=5.0)  # a clock behind the grant counts as no time
    assert list(b.cold_starts) == [5.0, 0.0]
    b.leases["gone"] = Lease("o", 1, "n0", 10.0, released=20.0)
    b.confirm("gone", "n1", "pg5", now=30.0)
    assert b.leases["gone"].node == "n0" and b.leases["gone"].pg == ""  # a released lease is not moved


def test_the_start_cost_is_the_median_measured_or_the_prior() -> None:
    assert GpuBook().start_s == START_PRIOR_S == 2.0
    assert GpuBook(start_prior_s=0.5).start_s == 0.5
    b = GpuBook()
    b.cold_starts.extend([9.0, 1.0, 3.0])
    assert b.start_s == 3.0
    with pytest.raises(ValueError) as err:
        GpuBook(order="random")
    assert str(err.value) == "order must be one of plan, finish, arrival, larger, not 'random'"


def test_a_heartbeat_relearns_leases_and_a_close_drains_its_owner() -> None:
    b = lease_book()
    b.requests["k"] = Request("o", 2, 5.0, 0.0, 0.0)
    b.heartbeat("o", [("k", 2, "n0", 40.0, 3.0), ("j", 1, "n1", 0.0, 4.0)], now=10.0)
    assert "k" not in b.requests and b.seen["o"] == 10.0
    k = b.leases["k"]
    assert (k.owner, k.gpus, k.node, k.expected_s, k.start, k.released) == ("o", 2, "n0", 40.0, 3.0, None)
    b.heartbeat("o", [("k", 8, "n1", 1.0, 9.0)], now=11.0)  # a lease already known is kept as it is
    assert (b.leases["k"].gpus, b.leases["k"].node) == (2, "n0")
    b.leases["k"].pg = "p"
    b.requests["r"] = Request("o", 1, 5.0, 0.0, 0.0)
    b.requests["other"] = Request("p", 1, 5.0, 0.0, 0.0)
    b.queued["o"] = (1, (), 0)
    b.close("o", now=12.0)
    assert set(b.requests) == {"other"} and "o" not in b.queued
    assert b.leases["k"].released == 12.0 and "j" not in b.leases


def test_a_request_not_asked_again_within_the_ttl_is_dropped() -> None:
    b = lease_book(ttl_s=30.0)
    b.leases["full0"] = Lease("x", 8, "n0", 0.0)
    b.leases["full1"] = Lease("x", 4, "n1", 0.0)
    assert b.request("o", "r", 4, 5.0, now=0.0) is None
    b.heartbeat("o", [], now=20.0)
    b.heartbeat("x", [], now=20.0)
    b.tick(30.0)
    assert "r" in b.requests  # asked 30 s ago: not more than the TTL
    b.heartbeat("o", [], now=40.0)
    b.heartbeat("x", [], now=40.0)
    b.tick(40.0)
    assert "r" not in b.requests and "o" in b.seen  # the owner lives; the request it stopped asking is gone


def test_the_snapshot_says_who_holds_what() -> None:
    b = lease_book()
    b.leases["k"] = Lease("o", 2, "n0", 0.0, released=1.0)
    b.requests["r"] = Request("p", 4, 5.0, 0.0, 0.0)
    b.reserved = {"n1": ("r", 9.0)}
    assert b.snapshot() == {"nodes": {"n0": 8, "n1": 4}, "leases": {"k": ("o", 2, "n0", True)},
                            "requests": {"r": ("p", 4)}, "reserved": {"n1": "r"}}
