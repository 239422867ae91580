"""Planning the rest of a shared run (orchestrator/plan.py): list scheduling from the cluster's state under each
order of the sweeps, with and without reservation, and the plan that ends soonest."""

from __future__ import annotations

import pytest

from clowncar.orchestrator.plan import Queue, best_plan, list_schedule

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
