"""Planning the rest of a shared run (orchestrator/plan.py): list scheduling from the cluster's state under each
order of the sweeps, with and without reservation, and the plan that ends soonest."""

from __future__ import annotations

import pytest

from clowncar.orchestrator.plan import Queue, _reserve, best_plan, list_schedule

NODES = {f"n{i}": 8 for i in range(4)}
SMALL = Queue("small", 1, tuple(sorted((30 + 60 * i / 47 for i in range(48)), reverse=True)))
GANGS = Queue("gangs", 8, tuple(sorted((30 + 40 * i / 15 for i in range(16)), reverse=True)))


def test_the_plan_that_ends_soonest_is_kept_over_every_order_of_the_sweeps() -> None:
    small_first = list_schedule(NODES, [], [SMALL, GANGS], [0, 1], False, 0.0)
    gangs_first = list_schedule(NODES, [], [SMALL, GANGS], [1, 0], True, 0.0)
    assert small_first.end < gangs_first.end  # on this workload: small trials first, then the gangs
    best = best_plan(NODES, [], [GANGS, SMALL], 0.0)
    assert best.end == small_first.end and best.rule.startswith("small>gangs")
    busy = sum(SMALL.seconds) + 8 * sum(GANGS.seconds)
    assert busy / (32 * best.end) > 0.98  # what bench_utilization's clairvoyant reference reaches


def test_plan_starts_now_what_fits_now_and_then_the_first_later_start() -> None:
    plan = list_schedule({"n0": 8}, [("n0", 6, 50.0, "other")], [Queue("a", 1, (10.0, 10.0, 10.0))], [0], False, 0.0)
    assert plan.starts["a"] == [("n0", 0.0), ("n0", 0.0), ("n0", 10.0)]


def test_a_blocked_trial_reserves_the_node_that_frees_first_and_only_shorter_trials_backfill_it() -> None:
    running = [("n0", 6, 100.0, "x"), ("n1", 6, 40.0, "x")]
    gang, small = Queue("gang", 8, (50.0,)), Queue("small", 2, (60.0, 60.0, 30.0))
    plan = list_schedule({"n0": 8, "n1": 8}, running, [gang, small], [0, 1], True, 0.0)
    assert plan.starts["gang"] == [("n1", 40.0)]  # n1 frees at 40, n0 at 100
    # The first small trial goes off the reserved node; the second (60 s) would end after 40 and waits, and the
    # one behind it may not pass it (a sweep's trials start in its order): both follow on n0 when the first ends.
    assert plan.starts["small"] == [("n0", 0.0), ("n0", 60.0)]
    loose = list_schedule({"n0": 8, "n1": 8}, running, [gang, small], [0, 1], False, 0.0)
    assert loose.starts["small"][:2] == [("n0", 0.0), ("n1", 0.0)]
    assert loose.ends["gang"] == 120.0  # without reservation small trials keep n1 busy until 70


def test_a_sweeps_limit_caps_its_trials_at_once() -> None:
    plan = list_schedule({"n0": 8}, [("n0", 1, 20.0, "a")], [Queue("a", 1, (10.0,) * 4, limit=2)], [0], False, 0.0)
    assert plan.starts["a"] == [("n0", 0.0), ("n0", 10.0)]  # one already runs: one more now
    assert plan.end == 30.0


def test_the_sweep_s_previous_node_is_preferred_so_its_actor_is_reused() -> None:
    queue = Queue("a", 1, (10.0,), prefer=frozenset({"n1"}))
    plan = list_schedule({"n0": 8, "n1": 8}, [("n0", 4, 50.0, "x")], [queue], [0], False, 0.0)
    assert plan.starts["a"] == [("n1", 0.0)]  # best fit would be n0


def test_equal_last_ends_go_to_the_plan_where_the_sweeps_end_sooner() -> None:
    long_one = Queue("long", 8, (100.0,))
    short = Queue("short", 8, (10.0,))
    plan = best_plan({"n0": 8}, [], [long_one, short], 0.0)
    assert plan.end == 110.0 and plan.ends == {"short": 10.0, "long": 110.0}  # the short sweep is not put last


def test_trials_that_overran_their_estimate_are_planned_to_end_now() -> None:
    plan = list_schedule({"n0": 8}, [("n0", 8, 5.0, "x")], [Queue("a", 8, (10.0,))], [0], False, 20.0)
    assert plan.starts["a"] == [("n0", 20.0)] and plan.end == 30.0


def test_new_actors_queue_to_start_and_a_trial_taking_over_its_sweeps_actor_does_not() -> None:
    queue = Queue("a", 1, (10.0,) * 3, prefer=frozenset({"n0"}))
    plan = list_schedule({"n0": 8}, [], [queue], [0], False, 0.0, start_s=2.0)
    # One takes over the idle actor at once; the two new actors start one after the other (2 s, then 4 s).
    assert plan.end == 14.0 and plan.ends == {"a": 14.0}


def test_a_pass_over_its_time_budget_keeps_the_plans_it_has_tried(monkeypatch: pytest.MonkeyPatch) -> None:
    from clowncar.orchestrator import plan as plan_module

    full = best_plan(NODES, [], [SMALL, GANGS], 0.0)
    monkeypatch.setattr(plan_module, "BUDGET_S", 0.0)
    only = best_plan(NODES, [], [SMALL, GANGS], 0.0)
    assert only.rule == "gangs>small" and only.end > full.end  # larger first is tried first; smaller first wins


# -- list scheduling, by hand ------------------------------------------------------------------------------------

def test_a_trial_that_ends_hands_its_actor_to_the_next_trial_and_new_actors_pay_their_start() -> None:
    queue = Queue("a", 1, (10.0, 20.0, 30.0))
    free_starts = list_schedule({"n0": 2}, [], [queue], [0], False, 0.0)
    assert (free_starts.end, free_starts.rule) == (40.0, "a")
    assert free_starts.starts["a"] == [("n0", 0.0), ("n0", 0.0), ("n0", 10.0)]
    # Two new actors start one after the other (ends 1 + 10 and 2 + 20); the third trial takes over the first
    # trial's actor at t=11 and pays nothing: 11 + 30.
    paid = list_schedule({"n0": 2}, [], [queue], [0], False, 0.0, start_s=1.0)
    assert paid.end == 41.0 and paid.starts["a"][2] == ("n0", 11.0)


def test_an_idle_actor_is_taken_over_once_and_the_next_trial_starts_a_new_one() -> None:
    queue = Queue("a", 1, (10.0, 10.0), prefer=frozenset({"n1"}))
    plan = list_schedule({"n0": 8, "n1": 8}, [("n0", 7, 50.0, "x")], [queue], [0], False, 0.0, start_s=2.0)
    assert plan.starts["a"] == [("n1", 0.0), ("n0", 0.0)]  # then the tightest fit, cold: 2 + 10
    assert plan.end == 12.0


def test_a_node_with_another_sweeps_idle_actor_is_used_last() -> None:
    queue = Queue("a", 1, (10.0,), avoid=frozenset({"n0"}))
    plan = list_schedule({"n0": 8, "n1": 8}, [("n0", 4, 50.0, "x")], [queue], [0], False, 0.0)
    assert plan.starts["a"] == [("n1", 0.0)]


def test_a_sweep_that_fits_no_node_is_left_unplanned_and_an_empty_plan_ends_now() -> None:
    plan = list_schedule({"n0": 8}, [], [Queue("big", 16, (10.0,)), Queue("a", 1, (5.0,))], [0, 1], False, 0.0)
    assert plan.starts == {"big": [], "a": [("n0", 0.0)]} and plan.end == 5.0 and plan.rule == "big>a"
    empty = list_schedule({"n0": 8}, [], [], [], True, 7.0)
    assert (empty.end, empty.ends, empty.rule) == (7.0, {}, " reserve")


def test_a_limit_of_two_keeps_two_running_as_trials_end() -> None:
    plan = list_schedule({"n0": 8}, [], [Queue("a", 1, (10.0, 20.0, 10.0, 10.0), limit=2)], [0], False, 0.0)
    assert plan.starts["a"] == [("n0", 0.0), ("n0", 0.0), ("n0", 10.0)]
    assert plan.ends == {"a": 30.0}  # 10 | 20, then 10 -> 20, then 20 -> 30


def test_a_reserved_node_takes_only_trials_that_end_by_its_reservation_counting_their_start() -> None:
    running = [("n0", 8, 30.0, "x"), ("n1", 6, 20.0, "x")]
    gang, small = Queue("gang", 8, (50.0,)), Queue("small", 1, (20.0, 20.0))
    on_time = list_schedule({"n0": 8, "n1": 8}, running, [gang, small], [0, 1], True, 0.0, start_s=0.0)
    assert on_time.starts["gang"] == [("n1", 20.0)] and on_time.starts["small"][:2] == [("n1", 0.0), ("n1", 0.0)]
    late = list_schedule({"n0": 8, "n1": 8}, running, [gang, small], [0, 1], True, 0.0,
                         start_s=1.0)  # 1 + 20 ends after the reservation at 20: they wait
    assert late.starts["gang"] == [("n1", 20.0)] and late.starts["small"][0][1] > 0.0
    assert on_time.rule == "gang>small reserve" and list_schedule(
        {"n0": 8}, [], [gang, small], [1, 0], False, 0.0).rule == "small>gang"


def test_a_reservation_goes_to_the_first_big_enough_node_where_enough_gpus_free_soonest() -> None:
    nodes = {"unseen": 8, "tiny": 2, "late": 8, "a": 8, "b": 8}
    free = {"tiny": 2, "late": 2, "a": 2, "b": 2, "unseen": 2}
    by_node = {"late": [(50.0, 6)], "a": [(10.0, 2), (20.0, 2), (30.0, 2)], "b": [(20.0, 4), (99.0, 2)]}
    reserved: dict[str, float] = {}
    _reserve(nodes, free, by_node, reserved, 6, 0.0)
    assert reserved == {"a": 20.0}  # a: 2 + 2 + 2 by t=20; b also at 20 but comes later; unseen never frees
    _reserve(nodes, free, by_node, reserved, 6, 0.0)
    assert reserved == {"a": 20.0, "b": 20.0}
    _reserve(nodes, free, by_node, reserved, 6, 0.0)
    assert reserved == {"a": 20.0, "b": 20.0, "late": 50.0}
    _reserve(nodes, free, by_node, reserved, 6, 0.0)
    assert "unseen" not in reserved and "tiny" not in reserved
    now_free: dict[str, float] = {}
    _reserve({"n": 8}, {"n": 8}, {}, now_free, 8, 5.0)
    assert now_free == {"n": 5.0}


def test_the_plan_looks_at_the_first_128_trials_of_each_sweep() -> None:
    plan = best_plan({"n0": 1}, [], [Queue("a", 1, (1.0,) * 200)], 0.0)
    assert plan.end == 128.0 and plan.rule == "a"  # one sweep: one order, nothing to reserve against


def test_a_single_pass_tries_larger_sweeps_first_by_their_trial_size(monkeypatch: pytest.MonkeyPatch) -> None:
    from clowncar.orchestrator import plan as plan_module

    monkeypatch.setattr(plan_module, "BUDGET_S", 0.0)
    small, big = Queue("small", 1, (10.0,)), Queue("big", 4, (10.0,))
    assert best_plan({"n0": 8}, [], [small, big], 0.0).rule == "big>small"
    assert best_plan({"n0": 8}, [], [big, small], 0.0).rule == "big>small"


def test_the_soonest_end_wins_when_the_tolerance_is_a_fraction_of_the_time_left() -> None:
    # y first ends 150 s from now (x's sweep ends at 150, y's at 110); x first ends at 160 with the sweeps' ends
    # summing less (50 + 160). 10 s is past the tolerance (max(1 s, 0.002 x 150 s)) at any clock.
    x, y = Queue("x", 2, (5.0, 50.0)), Queue("y", 4, (100.0, 10.0, 100.0))
    now = 1_000_000.0
    plan = best_plan({"n0": 8}, [], [x, y], now)
    assert plan.end == now + 150.0 and plan.rule.startswith("y>x")


def test_a_plan_that_ends_exactly_at_the_tolerance_still_counts() -> None:
    # x first ends at 10 (the sweeps' ends sum to 18); y first at 11 = 10 + 1 s of tolerance, summing 16.
    x, y = Queue("x", 4, (10.0, 2.0)), Queue("y", 4, (1.0, 5.0))
    plan = best_plan({"n0": 8}, [], [x, y], 0.0)
    assert plan.end == 11.0 and plan.rule.startswith("y>x")


def test_a_trial_backfilling_a_reserved_node_goes_elsewhere_when_it_can() -> None:
    running = [("n0", 8, 30.0, "x"), ("n1", 6, 20.0, "x")]
    gang, small = Queue("gang", 8, (50.0,)), Queue("small", 1, (20.0,))
    plan = list_schedule({"n0": 8, "n1": 8, "n2": 4}, running, [gang, small], [0, 1], True, 0.0)
    assert plan.starts["gang"] == [("n1", 20.0)] and plan.starts["small"] == [("n2", 0.0)]


def test_an_idle_actor_on_a_reserved_node_backfills_without_its_start_cost() -> None:
    running = [("n0", 8, 30.0, "x"), ("n1", 6, 20.0, "x")]
    gang = Queue("gang", 8, (50.0,))
    small = Queue("small", 1, (20.0, 20.0), prefer=frozenset({"n1"}))  # its idle actor sits on n1
    plan = list_schedule({"n0": 8, "n1": 8}, running, [gang, small], [0, 1], True, 0.0, start_s=1.0)
    assert plan.starts["small"][0] == ("n1", 0.0)  # 0 + 20 ends by the reservation at 20
    assert plan.starts["small"][1][1] > 0.0  # a new actor: 1 + 20 would not


def test_each_trial_that_ends_leaves_one_actor_to_hand_over() -> None:
    queue = Queue("a", 1, (10.0, 10.0))
    # a's trial and another sweep's end at t=10: one actor of a's to take over, the other start is new (5 s).
    one = list_schedule({"n0": 2}, [("n0", 1, 10.0, "a"), ("n0", 1, 10.0, "b")], [queue], [0], False, 0.0,
                        start_s=5.0)
    assert one.ends == {"a": 25.0}
    # two of a's trials end at t=10: both next trials take an actor over.
    two = list_schedule({"n0": 2}, [("n0", 1, 10.0, "a"), ("n0", 1, 10.0, "a")], [queue], [0], False, 0.0,
                        start_s=5.0)
    assert two.ends == {"a": 20.0}


def test_every_order_of_up_to_four_sweeps_is_tried() -> None:
    nodes = {"n0": 8, "n1": 8}
    three = [Queue("q0", 8, (2.0, 1.0, 1.0)), Queue("q1", 2, (20.0, 2.0, 5.0)), Queue("q2", 4, (20.0,))]
    plan = best_plan(nodes, [], three, 0.0)
    assert (plan.end, plan.rule) == (20.0, "q2>q0>q1")  # neither by size: larger first or smaller first end at 22
    four = [Queue("q0", 8, (40.0, 2.0, 2.0, 40.0)), Queue("q1", 2, (40.0, 1.0, 40.0, 1.0)), Queue("q2", 2, (5.0,)),
            Queue("q3", 1, (10.0, 20.0, 40.0))]
    plan = best_plan(nodes, [], four, 0.0)
    assert plan.end == 82.0 and plan.rule.startswith("q1>q0>q3>q2")  # by size: 84 at best
