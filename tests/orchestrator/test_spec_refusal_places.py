"""Where a sweep spec's refusal points (`orchestrator/spec_values.py`, `orchestrator/spec_checks.py`): a value
that is not one value is named at that value, and each check's line names the part of the spec at fault (the
overrides, the space, a queued config, the scheduler at its point, resources), with the exact line."""

from __future__ import annotations

import datetime as dt

from .test_spec_rules import LOOPS, refusal, spec_of


def test_a_list_or_mapping_where_one_value_goes_is_named_at_that_value() -> None:
    one = "expected a number, string or bool, not"
    assert refusal(space={LOOPS: {"choice": [1, [2]]}}) == f"sweep spec key 'space.{LOOPS}.choice.1': {one} a list"
    assert refusal(enqueue=[{LOOPS: 2}, {LOOPS: {"a": 1}}]) == f"sweep spec key 'enqueue.1.{LOOPS}': {one} a mapping"
    assert refusal(points={"a": {LOOPS: None}}) == f"sweep spec key 'points.a.{LOOPS}': {one} null"
    # a tuple (a spec built in Python) is a list; what YAML reads as another type is named by that type
    assert refusal(points={"a": {LOOPS: (2,)}}) == f"sweep spec key 'points.a.{LOOPS}': {one} a list"
    assert refusal(points={"a": {LOOPS: dt.date(2026, 12, 7)}}) == f"sweep spec key 'points.a.{LOOPS}': {one} a date"
    assert refusal(space={"train.matrix_lr": {"choice": [0.1, float("inf")]}}) == (
        "sweep spec key 'space.train.matrix_lr.choice.1': Input should be a finite number")
    # the values that were accepted still are, each of its own type
    spec = spec_of(space={LOOPS: {"choice": [1, 2]}, "train.cadence": {"choice": [1, 2], "when": {LOOPS: [2]}}},
                   points={"a": {"model.xsa": "off", "train.matrix_lr": 0.01, "quant.enabled": True}})
    assert spec.points["a"] == {"model.xsa": "off", "train.matrix_lr": 0.01, "quant.enabled": True}
    assert spec.space["train.cadence"].when == {LOOPS: [2]}


def test_each_refusal_names_the_part_of_the_spec_at_fault() -> None:
    assert refusal(overrides={"model.nope": 1}) == "sweep spec overrides: unknown config key 'model.nope'"
    assert refusal(overrides={"model.crawler_loops.deep": 1}) == (  # refused as the base is built
        "sweep spec overrides: unknown config key 'model.crawler_loops.deep'")
    # a value its own field refuses is found past a value that only clashes with another key (kv heads 3 of 4)
    assert refusal(sampler="grid", budget={}, space={"model.num_kv_heads": {"grid": [3, -1]}}) == (
        "sweep spec space: config key 'model.num_kv_heads': Input should be greater than or equal to 1 "
        "(with {'model.num_kv_heads': -1})")
    # a space key's bad value is the space's, though the spec has seeds
    assert refusal(seeds=[1, 2], space={LOOPS: {"choice": [2, 0]}}) == (
        "sweep spec space: config key 'model.crawler_loops': Input should be greater than or equal to 1 "
        "(with {'model.crawler_loops': 0})")
    # a queued config's searched value is checked past its keys that are not searched
    assert refusal(space={LOOPS: {"choice": [1, 2]}}, enqueue=[{"train.matrix_lr": 0.01, LOOPS: 9}]) == (
        "sweep spec key 'enqueue.0': model.crawler_loops = 9 is not one of its choice values (1, 2)")
    # the point a scheduler problem was found at, every key of it
    assert refusal(scheduler={"type": "asha", "grace_period": 10},
                   space={LOOPS: {"choice": [1, 2]}, "train.seed": {"choice": [1, 2]}}).endswith(
        "(at the point model.crawler_loops=1, train.seed=1)")


def test_two_gpus_must_divide_grad_accum_and_max_t_places_the_first_rung() -> None:
    assert refusal(resources={"gpus": 2}, overrides={"train.grad_accum": 1}) == (
        "sweep spec key 'resources.gpus': a trial on 2 GPUs runs 2 processes, which must divide train.grad_accum "
        "(1): set train.grad_accum to a multiple of 2")
    spec_of(resources={"gpus": 2}, overrides={"train.grad_accum": 2})
    # max_t 10 caps the grace period of 35: the first rung is at step 10, before the anneal (step 31)
    assert "Set scheduler.max_t >= 31" in refusal(scheduler={"type": "asha", "grace_period": 35, "max_t": 10})
    # max_t 32 caps 33: the one rung, 32, is where val_bpb is measured (every 8 steps)
    spec_of(scheduler={"type": "asha", "metric": "val_bpb", "grace_period": 33, "max_t": 32},
            overrides={"train.val_every": 8})


def test_a_sampled_space_past_the_checked_grid_size_leaves_a_point_that_cannot_build_to_its_trial() -> None:
    """Only a grid has every distinct point built before it starts; a random search over 71 choices checks its
    first corner, and a choice below the smallest legal model is the trial's to reject."""
    spec = spec_of(space={"model.param_budget": {"choice": [200_000, *range(10, 80)]}},
                   overrides={"model.model_dim": "auto"})
    assert spec.grid_size() == 71
