"""The GPU book's accounting under every serving order: a long random run of requests, releases, reports,
heartbeats, closes and silent owners never books more GPUs on a node than it has, never grants a key twice, and,
once the cluster drains, serves every request that fits a node. Then the accounting rules one by one."""

from __future__ import annotations

import random
from typing import Any

import pytest

from clowncar.orchestrator.placement import ORDERS, START_PRIOR_S, UNPINNED, GpuBook, Lease, Request
from clowncar.orchestrator.plan import Queue

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


# -- edges of the accounting -------------------------------------------------------------------------------------

def test_a_fresh_book_knows_no_node_and_blocks_nobody() -> None:
    b = GpuBook()
    assert (b.ttl_s, b.settle_s, b.order) == (30.0, 60.0, "plan")  # the ledger's TTL and settle time
    assert b.free("n0") == 0 and b.idle_blocks("o") is False and b.snapshot()["nodes"] == {}
    b.set_nodes({"one": 1, "none": 0})
    assert b.nodes == {"one": 1}


@pytest.mark.parametrize("order", ORDERS)
def test_with_no_gpu_node_known_a_request_is_left_to_ray(order: str) -> None:
    b = GpuBook(order=order, start_prior_s=0.0)
    assert b.request("o", "k", 1, 5.0, now=0.0, backlog=[5.0]) == UNPINNED


def test_an_owner_silent_exactly_the_ttl_still_holds_its_lease() -> None:
    b = lease_book(ttl_s=30.0)
    b.heartbeat("o", [("k", 1, "n0", 0.0, 0.0)], now=0.0)
    b.tick(30.0)
    assert "k" in b.leases
    b.tick(30.001)
    assert "k" not in b.leases and "o" not in b.seen


def test_a_backlog_of_unknown_or_negative_durations_counts_as_zero() -> None:
    b = lease_book()
    b.request("o", "k", 1, -3.0, now=0.0, backlog=[0, -5, 3], limit=-2)
    assert b.queued["o"] == (1, (0.0, 0.0, 3.0), 0)
    assert b.leases["k"].expected_s == 0.0


def test_the_start_cost_is_the_median_of_the_last_32_measured() -> None:
    b = GpuBook()
    b.cold_starts.extend([100.0] * 40 + [1.0] * 16 + [100.0] * 16)  # the last 32: half 1 s, half 100 s
    assert b.start_s == 50.5


def test_idle_blocks_only_for_another_owners_request_still_waiting() -> None:
    b = lease_book()
    b.leases["idle"] = Lease("o", 1, "n0", 0.0, pg="p", released=1.0)
    b.reserved = {"n0": ("granted-since", 0.0)}  # that request is no longer waiting
    assert b.idle_blocks("o") is False
    b.requests["mine"] = Request("o", 8, 5.0, 0.0, 0.0)
    b.reserved = {"n0": ("mine", 0.0)}
    assert b.idle_blocks("o") is False  # its own next trial
    b.requests["theirs"] = Request("p", 8, 5.0, 0.0, 0.0)
    b.reserved = {"n0": ("theirs", 0.0)}
    assert b.idle_blocks("o") is True and b.idle_blocks("p") is False


def test_finish_estimates_divide_the_remaining_gpu_seconds_by_the_width_held() -> None:
    b = lease_book()
    b.queued = {"a": (2, (10.0, 10.0), 0), "b": (1, (), 0)}
    b.requests["a1"] = Request("a", 4, 50.0, 0.0, 0.0)  # the larger request first
    b.requests["a2"] = Request("a", 2, 100.0, 0.0, 0.0)
    b.requests["b1"] = Request("b", 1, 30.0, 0.0, 0.0)
    b.leases["a-run"] = Lease("a", 1, "n0", 0.0, expected_s=130.0)  # 30 s left at t=100
    b.leases["a-late"] = Lease("a", 1, "n0", 0.0, expected_s=50.0)  # overdue: nothing left
    b.leases["a-done"] = Lease("a", 4, "n1", 0.0, expected_s=500.0, released=90.0)  # ended
    b.leases["b-run"] = Lease("b", 3, "n1", 0.0, expected_s=110.0)
    assert b.finish_estimates(100.0) == {"a": (2 * 20 + 4 * 50 + 2 * 100 + 30) / 4, "b": (30 + 3 * 10) / 3}


# -- the rules of thumb (bench_utilization's replay) -----------------------------------------------------------

def req(owner: str, gpus: int, since: float, expected_s: float = 10.0) -> Request:
    return Request(owner, gpus, expected_s, since, since)


def served_first(order: str, *reqs: Request, now: float = 30.0, finish: dict[str, float] | None = None) -> Request:
    b = GpuBook(order=order)
    return min(reqs, key=lambda r: b._priority(r, now, finish or {}))


def test_each_rule_of_thumb_serves_in_its_own_order() -> None:
    old_small, new_large = req("a", 1, 0.0), req("b", 8, 10.0)
    assert served_first("arrival", old_small, new_large) is old_small
    assert served_first("arrival", req("a", 1, 0.0), big := req("b", 8, 0.0)) is big  # a tie: the larger
    assert served_first("larger", old_small, new_large) is new_large
    assert served_first("larger", req("a", 4, 0.0), early := req("b", 4, -1.0)) is early
    late_sweep = {"a": 900.0, "b": 100.0}
    assert served_first("finish", old_small, new_large, finish=late_sweep) is old_small  # 'a' would finish last
    tie = {"a": 100.0, "b": 100.0}
    assert served_first("finish", old_small, new_large, finish=tie) is new_large


@pytest.mark.parametrize("order", ["finish", "larger"])
def test_a_request_that_waited_its_own_duration_or_a_minute_goes_first(order: str) -> None:
    waited = req("a", 1, 0.0, expected_s=10.0)
    big = req("b", 8, 50.0)
    finish = {"a": 1.0, "b": 900.0}
    assert served_first(order, waited, big, now=59.9, finish=finish) is big
    assert served_first(order, waited, big, now=60.0, finish=finish) is waited  # 60 s exactly: overdue
    long = req("a", 1, 0.0, expected_s=100.0)
    assert served_first(order, long, big, now=99.0, finish=finish) is big
    assert served_first(order, long, big, now=100.0, finish=finish) is long


def finish_book(**kw: Any) -> GpuBook:
    b = GpuBook(order="finish", start_prior_s=0.0, **kw)
    b.set_nodes({"n0": 8, "n1": 8})
    return b


def test_a_grant_records_its_start_and_duration_and_tick_names_it() -> None:
    b = finish_book()
    b.requests["k"] = Request("o", 2, 40.0, 1.0, 1.0)
    b.seen["o"] = 1.0
    b.queued["o"] = (2, (), 0)
    assert b.tick(3.0) == ["k"]
    lease = b.leases["k"]
    assert (lease.owner, lease.gpus, lease.node, lease.start, lease.expected_s) == ("o", 2, "n0", 3.0, 40.0)


def test_a_full_node_is_handed_to_the_sweep_whose_finished_trial_holds_it() -> None:
    b = finish_book()
    b.leases["other"] = Lease("x", 8, "n1", 0.0, expected_s=1000.0)
    for i in range(8):
        b.leases[f"a{i}"] = Lease("a", 1, "n0", 0.0, expected_s=1000.0, pg=f"pg{i}")
    b.seen.update({"a": 0.0, "x": 0.0})
    b.release("a3", now=1.0)  # Tune keeps its actor: n0 stays full
    assert b.request("a", "a8", 1, 10.0, now=2.0, gone=lambda pg: False) == "n0"
    assert "a3" not in b.leases and b.used("n0") == 8


def test_off_reserved_nodes_first_then_the_own_finished_slot_then_best_fit() -> None:
    b = finish_book()
    b.set_nodes({"n0": 8, "n1": 8, "n2": 8})
    b.seen.update({"a": 0.0, "g": 0.0, "x": 0.0})
    b.leases["x0"] = Lease("x", 6, "n0", 0.0, expected_s=100.0)
    b.leases["x2"] = Lease("x", 7, "n2", 0.0, expected_s=100.0)
    b.leases["mine"] = Lease("a", 1, "n1", 0.0, pg="p", released=1.0)  # 'a's idle actor on n1 (7 free)
    assert b.request("a", "a1", 1, 10.0, now=2.0, gone=lambda pg: False) == "n1"  # its own slot, not best fit
    assert b.request("a", "a2", 1, 10.0, now=2.0) == "n2"  # best fit: the node it fills most
    assert b.request("g", "gang", 8, 50.0, now=3.0, backlog=[50.0] * 9) is None
    reserved = b.snapshot()["reserved"]
    assert list(reserved.values()) == ["gang"]
    assert b.request("a", "a3", 1, 5.0, now=4.0) not in reserved  # off the reserved node though it fits there


def test_a_gang_reserves_the_big_enough_node_that_frees_first_and_short_trials_backfill_to_the_edge() -> None:
    b = finish_book()
    b.set_nodes({"small": 4, "n0": 8, "n1": 8})
    b.seen.update({"x": 0.0, "g": 0.0, "s": 0.0})
    b.leases["x0"] = Lease("x", 6, "n0", 0.0, expected_s=100.0)  # 2 free, all 8 at t=100
    b.leases["x1"] = Lease("x", 4, "n1", 0.0, expected_s=500.0)  # 4 free, all 8 at t=500
    b.leases["xs"] = Lease("x", 4, "small", 0.0, expected_s=20.0)  # frees first, but holds only 4 GPUs
    assert b.request("g", "gang", 8, 50.0, now=10.0, backlog=[50.0] * 9) is None
    assert b.snapshot()["reserved"] == {"n0": "gang"}
    b.leases["x1b"] = Lease("x", 4, "n1", 0.0, expected_s=500.0)  # now only the reserved n0 has room
    assert b.request("s", "over", 1, 91.0, now=10.0) is None  # would end after the gang could start
    assert b.request("s", "half", 1, 0.5, now=10.0) == "n0"
    assert b.request("s", "edge", 1, 90.0, now=10.0) == "n0"  # ends at t=100, exactly when the gang can start


def test_the_plan_hands_a_sweep_its_own_idle_actor_before_a_tighter_fit() -> None:
    b = lease_book()
    b.set_nodes({"n0": 8, "n1": 8})
    b.seen.update({"a": 0.0, "x": 0.0})
    b.leases["x0"] = Lease("x", 7, "n0", 0.0, expected_s=1000.0)  # n0: 1 free, the tightest fit
    b.leases["mine"] = Lease("a", 1, "n1", 0.0, pg="p", released=1.0)
    assert b.request("a", "a1", 1, 10.0, now=2.0, gone=lambda pg: False) == "n1"
    assert "mine" not in b.leases


def test_the_plan_serves_a_sweeps_requests_oldest_first() -> None:
    b = lease_book()
    b.set_nodes({"n0": 1})
    b.seen["x"] = 0.0
    assert b.request("a", "z-old", 1, 10.0, now=0.0) == "n0"
    b.leases["z-old"].released = None
    b.release("z-old", now=1.0)
    b.leases["block"] = Lease("x", 1, "n0", 0.0, expected_s=50.0)
    assert b.request("a", "b-old", 1, 10.0, now=2.0) is None
    assert b.request("a", "a-new", 1, 10.0, now=3.0) is None
    del b.leases["block"]
    assert b.tick(4.0) == ["b-old"]


@pytest.mark.parametrize("limit", [0, 2])
def test_the_plan_holds_a_whole_node_for_a_gang_sweep_between_its_trials(limit: int) -> None:
    b = lease_book(ttl_s=1e9)
    b.set_nodes({"n0": 8})
    b.seen.update({"g": 0.0, "s": 0.0})
    assert b.request("g", "g0", 8, 50.0, now=0.0, backlog=[50.0] * 5, limit=limit) == "n0"
    b.release("g0", now=50.0)  # no placement group told: free at once, and g asks its next trial in a moment
    assert b.request("s", "s0", 1, 600.0, now=50.0) is None  # a long small trial would push the gang sweep back


def test_an_overdue_trial_is_planned_to_end_a_second_from_now_not_in_the_past() -> None:
    b = lease_book(ttl_s=1e9)
    b.set_nodes({"n0": 8})
    b.seen.update({"x": 0.0, "g": 0.0})
    b.leases["late"] = Lease("x", 8, "n0", 0.0, expected_s=50.0)  # should have ended at t=50
    assert b.request("g", "gang", 8, 50.0, now=100.0, backlog=[50.0]) is None
    assert b.reserved == {}  # not planned to start now: x is not told to drop an actor it still runs


def test_the_plan_is_kept_for_five_seconds_while_nothing_changes() -> None:
    b = lease_book()
    q = [Queue("a", 1, (10.0,))]
    first = b._plan([], q, 100.0, 2.0)
    assert b._plan([], q, 104.9, 2.0) is first
    assert b._plan([], q, 104.9, 2.04) is first  # start costs compared to a tenth of a second
    assert b._plan([], q, 104.9, 2.1) is not first
    again = b._plan([], q, 110.0, 2.1)
    assert b._plan([], q, 114.9, 2.1) is again and b._plan([], q, 115.0, 2.1) is not again
    moved = b._plan([], [Queue("a", 1, (20.0,))], 115.0, 2.1)
    assert moved.at == 115.0 and b._plan([], [Queue("a", 1, (20.0,))], 116.0, 2.1) is moved
