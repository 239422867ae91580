"""What a sweep spec derives and refuses (`orchestrator/spec.py`), each with its exact value or line: the stored
form, the objectives told to Optuna, the size cap, trial times, grid sizes and budgets, trial configs, and the
checks of the space's corners against the trial config (invalid points, ASHA rungs, the objective)."""

from __future__ import annotations

import typing
from typing import Any

import pytest
from pydantic import BaseModel

from clowncar.errors import ConfigError
from clowncar.orchestrator.spec import ParamSpec, SweepSpec, spec_from_dict

BASE = {"name": "rules", "preset": "tiny-cpu", "sampler": "random", "budget": {"max_trials": 2}}
LOOPS = "model.crawler_loops"


def spec_of(**fields: Any) -> SweepSpec:
    return spec_from_dict({**BASE, **fields})


def refusal(**fields: Any) -> str:
    with pytest.raises(ConfigError) as err:
        spec_of(**fields)
    return str(err.value)


# --- derived values -----------------------------------------------------------------------------------------

def test_the_stored_form_uses_the_spec_keys_plain_json_and_no_unset_fields() -> None:
    spec = spec_of(space={LOOPS: {"int": [1, 4]}, "train.matrix_lr": {"float": [0.01, 0.1], "log": True}},
                   seeds=[1, 2])
    stored = spec.to_dict()
    assert stored["space"] == {LOOPS: {"int": [1, 4], "log": False},
                               "train.matrix_lr": {"float": [0.01, 0.1], "log": True}}
    assert stored["seeds"] == [1, 2] and stored["budget"] == {"max_trials": 2} and "parent" not in stored
    assert stored["scheduler"] == {"type": "none", "metric": "train_loss", "grace_period": 10,
                                   "reduction_factor": 2.0}
    assert spec_from_dict(stored).to_dict() == stored


def test_nsga2_tells_optuna_two_objectives_and_every_other_sampler_one() -> None:
    assert spec_of(sampler="nsga2").metrics() == ["objective", "artifact_bytes"]
    for sampler in ("random", "tpe", "gp"):
        assert spec_of(sampler=sampler).metrics() == ["objective"]


def test_the_size_cap_is_the_constraint_else_the_configs_own() -> None:
    assert spec_of(constraint={"max_artifact_bytes": 123_456}).size_cap() == 123_456
    assert spec_of().size_cap() == 16_000_000
    assert spec_of(overrides={"quant.size_cap_bytes": 9_000_000}).size_cap() == 9_000_000


def test_a_trials_expected_time_is_the_estimate_else_its_wallclock_cap_plus_a_tenth() -> None:
    spec = spec_of(space={"train.max_wallclock_seconds": {"choice": [60, 120]}})
    assert spec.expected_trial_seconds() == pytest.approx(66.0)
    assert spec.expected_trial_seconds({"train.max_wallclock_seconds": 120}) == pytest.approx(132.0)
    assert spec.expected_trial_seconds({"model.num_heads": 3}) == 0.0  # no valid config: unknown
    assert spec_of(budget={"max_trials": 2, "trial_seconds_estimate": 5}).expected_trial_seconds() == 5


def test_the_grid_size_multiplies_every_dimension_and_an_empty_space_is_one_trial() -> None:
    assert spec_of().grid_size() == 1
    assert spec_of(space={LOOPS: {"choice": [1, 2, 3]}, "train.matrix_lr": {"choice": [0.01, 0.02]}}).grid_size() == 6
    both = spec_of(space={LOOPS: {"choice": [1, 2, 3]}}, seeds=[1, 2], points={"a": {}, "b": {}})
    assert both.grid_size() == 12


def test_a_grid_without_a_budget_runs_its_distinct_points_and_its_queued_ones() -> None:
    spec = spec_from_dict({**BASE, "sampler": "grid", "budget": {},
                           "space": {LOOPS: {"grid": [1]}, "train.cadence": {"grid": [2, 3]}},
                           "enqueue": [{"train.matrix_lr": 0.01, "train.cadence": 2},
                                       {"train.matrix_lr": 0.02, "train.cadence": 2}]})
    assert len(spec.distinct_grid().points) == 1 and len(spec.distinct_grid().merged) == 1  # loops 1: cadence moot
    assert spec.max_trials() == 3
    random = spec_of(budget={}, enqueue=[{LOOPS: 2}, {LOOPS: 2, "train.cadence": 2}, {LOOPS: 3}])
    assert random.distinct_grid().points == [] and random.max_trials() == len(random.distinct_enqueue().points)


def test_queued_points_that_make_one_trial_are_merged() -> None:
    spec = spec_of(budget={}, enqueue=[{LOOPS: 1, "train.cadence": 2}, {LOOPS: 1, "train.cadence": 3}, {LOOPS: 2}])
    assert spec.max_trials() == 2 and len(spec.distinct_enqueue().merged) == 1


def test_a_grid_budget_may_reach_its_distinct_trials_and_its_queue_but_not_pass_them() -> None:
    grid = {"sampler": "grid", "space": {LOOPS: {"grid": [1]}, "train.cadence": {"grid": [2, 3]}}}
    assert spec_of(**grid, budget={"max_trials": 1}).max_trials() == 1
    assert spec_of(**grid, budget={"max_trials": 2}, enqueue=[{"train.matrix_lr": 0.01}]).max_trials() == 2
    assert refusal(**grid, budget={"max_trials": 2}) == (
        "sweep spec key 'budget.max_trials': 2 exceeds the grid's 1 distinct trials (1 of its points repeat "
        "another's trial; see `clowncar sweep plan`)")


def test_a_range_starts_at_its_low_end() -> None:
    assert ParamSpec(int=(3, 9)).first() == 3 and ParamSpec(float=(0.5, 2.0)).first() == 0.5
    assert ParamSpec(choice=["b", "a"]).first() == "b"


# --- trial configs ------------------------------------------------------------------------------------------

def test_a_trial_config_ignores_private_keys_and_names_the_points_it_knows() -> None:
    spec = spec_of(points={"wide": {"model.model_dim": 96}, "deep": {"model.num_flat_layers": 4}})
    assert spec.trial_config({"_cc": {"number": 3}, LOOPS: 2}) == spec.trial_config({LOOPS: 2})
    assert spec.trial_config({"point": "wide"}).model.model_dim == 96
    with pytest.raises(ConfigError) as err:
        spec.trial_config({"point": "tall"})
    assert str(err.value) == "unknown point 'tall' (the spec's points: wide, deep)"


def test_the_base_config_is_built_once_per_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = spec_of()
    calls: list[int] = []
    real = SweepSpec.base_dict

    def counted(self: SweepSpec) -> dict[str, Any]:
        calls.append(1)
        return real(self)

    monkeypatch.setattr(SweepSpec, "base_dict", counted)
    first = spec.trial_config({LOOPS: 2})
    assert spec.trial_config({LOOPS: 2}) == first and spec.trial_config({LOOPS: 3}) != first
    assert calls == []  # built once already, by the checks of spec_from_dict


# --- refusals -----------------------------------------------------------------------------------------------

def test_a_spec_that_is_not_a_mapping_names_what_it_is() -> None:
    for data, kind in (([1, 2], "list"), ("name: x", "str"), (None, "NoneType")):
        with pytest.raises(ConfigError) as err:
            spec_from_dict(data)
        assert str(err.value) == f"sweep spec must be a mapping, not {kind}"


def test_a_field_error_names_its_key_and_a_spec_error_names_none() -> None:
    assert refusal(space={LOOPS: {"choice": [1], "int": [1, 2]}}) == (
        f"sweep spec key 'space.{LOOPS}': give exactly one of grid, choice, int, float")
    assert refusal(budget={}, space={LOOPS: {"choice": [1, 2]}}) == (
        "sweep spec: budget.max_trials is required for the random sampler")
    assert refusal(colour="red") == "sweep spec: unknown key 'colour'"


def test_overrides_nested_past_the_recursion_limit_are_one_line() -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(5000):
        node["a"] = {}
        node = node["a"]
    message = refusal(overrides=deep)
    assert message.startswith("sweep spec: maximum recursion depth exceeded") and len(message) <= 212


def test_an_odd_error_is_its_first_line_cut_at_two_hundred_characters(monkeypatch: pytest.MonkeyPatch) -> None:
    def odd(data: Any) -> SweepSpec:
        raise TypeError("y" * 300 + "\nsecond line")

    monkeypatch.setattr(SweepSpec, "model_validate", odd)
    assert refusal() == "sweep spec: " + "y" * 200


def test_every_point_of_a_small_grid_must_make_a_config() -> None:
    lrs = [round(0.001 * i, 3) for i in range(1, 17)]  # 4 x 16 = 64 points: all checked
    message = refusal(sampler="grid", budget={"max_trials": 1},
                      space={"model.num_kv_heads": {"grid": [1, 2, 4, 3]}, "train.matrix_lr": {"grid": lrs}})
    assert message == ("sweep spec space: model.num_heads (4) must be divisible by model.num_kv_heads (3) "
                       "(with {'model.num_kv_heads': 3, 'train.matrix_lr': 0.001})")
    # 65 points: only the corners are checked; the trial itself reports a bad point
    spec = spec_of(sampler="grid", budget={"max_trials": 1},
                   space={"model.num_kv_heads": {"grid": [1, 2, 4, 3, 6]}, "train.matrix_lr": {"grid": lrs[:13]}})
    assert spec.grid_size() == 65


def test_other_samplers_check_the_first_corner_and_every_named_point() -> None:
    assert spec_of(space={"model.num_kv_heads": {"choice": [1, 3]}}).grid_size() == 2  # 3 is the trial's to report
    message = refusal(points={"a": {"model.num_heads": 4}, "b": {"model.num_heads": 3}, "c": {"model.num_heads": 8}})
    assert message == "sweep spec key 'points.b': model.num_heads (3) must be divisible by model.num_kv_heads (2)"


def test_a_gpu_count_that_does_not_divide_grad_accum_is_refused_before_any_trial_is_rejected_for_it() -> None:
    gpus = {"gpus": 8, "cpus": 8}
    assert refusal(resources=gpus) == (
        "sweep spec key 'resources.gpus': a trial on 8 GPUs runs 8 processes, which must divide train.grad_accum "
        "(2): set train.grad_accum to a multiple of 8")
    assert refusal(resources=gpus, space={"train.grad_accum": {"choice": [8, 4]}}, sampler="grid") == (
        "sweep spec key 'resources.gpus': a trial on 8 GPUs runs 8 processes, which must divide train.grad_accum "
        "(4): set train.grad_accum to a multiple of 8 (at the point train.grad_accum=4)")
    assert spec_of(resources=gpus, overrides={"train.grad_accum": 16}).resources.gpus == 8
    assert spec_of(resources={"gpus": 1}).resources.gpus == 1  # one process: any grad_accum
    assert spec_of(resources=gpus, worker={"launcher": "single"}).resources.gpus == 8  # one process for 8 GPUs


def test_a_named_point_that_fails_alone_is_refused_under_its_own_key_and_a_clash_with_the_space_under_the_space(
        ) -> None:
    assert refusal(points={"a": {LOOPS: 2}, "b": {LOOPS: "x"}}) == (
        "sweep spec key 'points.b': config key 'model.crawler_loops': Input should be a valid integer, unable to "
        "parse string as an integer")
    assert refusal(points={"a": {LOOPS: 0}}) == (
        "sweep spec key 'points.a': config key 'model.crawler_loops': Input should be greater than or equal to 1")
    assert refusal(points={"a": {"model.depth": 2}}).startswith("sweep spec key 'points.a': unknown config key "
                                                                 "'model.depth'")
    # the point builds alone (4 heads over the base's 2 kv heads); the space's 3 kv heads clash with it
    assert refusal(points={"a": {"model.num_heads": 4}}, space={"model.num_kv_heads": {"choice": [3]}}) == (
        "sweep spec space: model.num_heads (4) must be divisible by model.num_kv_heads (3) "
        "(with {'point': 'a', 'model.num_kv_heads': 3})")


def test_a_rung_before_the_anneal_is_refused_with_the_point_it_was_found_at() -> None:
    asha = {"type": "asha", "grace_period": 10}
    with_space = refusal(scheduler=asha, space={LOOPS: {"choice": [1, 2]}})
    assert with_space.startswith("sweep spec scheduler: ASHA's first rung (step 10) comes before the LR anneals")
    assert with_space.endswith("Set scheduler.grace_period >= 31, or drop the scheduler "
                               "(at the point model.crawler_loops=1)")
    assert refusal(scheduler=asha).endswith("Set scheduler.grace_period >= 31, or drop the scheduler")


def test_asha_on_a_metric_not_measured_at_its_rungs_is_refused_at_the_point_where_it_is_not() -> None:
    # tiny-cpu: 40 steps, anneals from step 31, probes every 5 steps, no val_bpb before the final eval
    assert refusal(scheduler={"type": "asha", "metric": "val_bpb", "grace_period": 31}) == (
        "sweep spec scheduler: ASHA's metric val_bpb is never measured before the last step (train.val_every 0: "
        "only the final eval measures it), so its rung at step 31 compares nothing and stops no trial. Set "
        "train.val_every to 31 (it divides every rung), or use scheduler.metric: train_loss")
    assert refusal(scheduler={"type": "asha", "metric": "probe_loss", "grace_period": 33}).startswith(
        "sweep spec scheduler: ASHA's rung at step 33 falls between the steps where probe_loss is measured")
    # every point of a small grid is checked: measured at one point is not enough
    assert refusal(sampler="grid", budget={}, space={"train.val_every": {"grid": [8, 0]}},
                   scheduler={"type": "asha", "metric": "val_bpb", "grace_period": 32}).endswith(
        "Set train.val_every to 32 (it divides every rung), or use scheduler.metric: train_loss (at the point "
        "train.val_every=0)")
    measured = spec_of(overrides={"train.val_every": 8}, scheduler={"type": "asha", "metric": "val_bpb",
                                                                   "grace_period": 32})
    assert measured.scheduler.metric == "val_bpb"
    assert spec_of(scheduler={"type": "asha", "metric": "probe_loss", "grace_period": 35}).scheduler.grace_period == 35


def test_a_schedulers_max_t_before_the_anneal_is_refused_and_one_after_it_accepted() -> None:
    assert "ASHA's first rung (step 10) comes before the LR anneals" in refusal(
        scheduler={"type": "asha", "grace_period": 10, "max_t": 10})
    spec = spec_of(scheduler={"type": "asha", "grace_period": 31, "max_t": 31})
    assert spec.scheduler.max_t == 31


def test_an_objective_a_point_cannot_report_names_where_it_was_found() -> None:
    off = {"quant.enabled": False}
    assert refusal(overrides=off) == (
        "sweep spec key 'objective.metric': auto means post-quantization BPB, but the base config has "
        "quant.enabled false; name the metric (e.g. val_bpb)")
    assert refusal(overrides=off, space={LOOPS: {"choice": [1, 2]}}) == (
        "sweep spec key 'objective.metric': auto means post-quantization BPB, but the space point "
        "{'model.crawler_loops': 1} has quant.enabled false; name the metric (e.g. val_bpb)")


def test_points_that_make_no_config_are_kept_apart_unless_they_are_the_same_point() -> None:
    from clowncar.orchestrator.distinct import Merged, distinct_points

    spec = spec_of()
    three, five = {"model.num_heads": 3}, {"model.num_heads": 5}  # neither divides by the 2 KV heads
    got = distinct_points(spec, [three, five, dict(three), {LOOPS: 1, "train.cadence": 2},
                                 {LOOPS: 1, "train.cadence": 3}])
    assert got.points == [three, five, {LOOPS: 1, "train.cadence": 2}]  # each bad point is its own trial's error
    assert got.merged == [Merged(three, three), Merged({LOOPS: 1, "train.cadence": 3}, {LOOPS: 1, "train.cadence": 2})]


def test_an_error_of_the_overrides_names_the_overrides_without_an_empty_point() -> None:
    assert refusal(sampler="grid", budget={}, overrides={"model.num_heads": 3}) == (
        "sweep spec overrides: model.num_heads (3) must be divisible by model.num_kv_heads (2)")
    # with a space too: the base config fails the same way, so the overrides are to blame, not the point
    assert refusal(overrides={"model.crawlr_loops": 2}, space={LOOPS: {"choice": [1, 2]}}) == (
        "sweep spec overrides: unknown config key 'model.crawlr_loops' (did you mean model.crawler_loops, "
        "model.crawler_mode, model.crawler_position?)")
    # a clash the searched value makes stays the space's, with the point
    assert refusal(sampler="grid", budget={}, overrides={"model.num_heads": 8},
                   space={"model.num_kv_heads": {"grid": [2, 3]}}) == (
        "sweep spec space: model.num_heads (8) must be divisible by model.num_kv_heads (3) "
        "(with {'model.num_kv_heads': 3})")


def test_a_config_that_cannot_build_is_refused_before_the_sweep_runs() -> None:
    auto = {"model.model_dim": "auto"}
    tiny_budget = "model.param_budget 10 is below the smallest legal model (18,301 parameters at width 8)"
    assert refusal(sampler="grid", budget={}, overrides={**auto, "model.param_budget": 10}) == (
        f"sweep spec overrides: {tiny_budget}")
    assert refusal(sampler="grid", budget={}, overrides=auto,
                   space={"model.param_budget": {"grid": [200000, 10]}}) == (
        f"sweep spec space: {tiny_budget} (with {{'model.param_budget': 10}})")
    assert refusal(overrides={**auto, "model.param_budget": 200000},  # a queued override, not a searched value
                   enqueue=[{"model.param_budget": 150000}, {"model.param_budget": 10}]) == (
        f"sweep spec enqueue: {tiny_budget}")
    # a grid past the size whose points are all checked as corners: every distinct point must still build
    lrs = [round(0.001 * i, 3) for i in range(1, 23)]
    message = refusal(sampler="grid", budget={}, space={"eval.seq_len": {"grid": [128, 256, 100000]},
                                                        "train.matrix_lr": {"grid": lrs}})
    assert message == ("sweep spec space: eval.max_tokens (16,384) is less than one eval sequence of 100,000 "
                       "tokens: no validation token would be scored (with {'eval.seq_len': 100000, "
                       "'train.matrix_lr': 0.001})")


def test_a_large_grid_checks_the_points_after_one_that_is_invalid_in_itself() -> None:
    # 68 points, past the corner check: 4 kv heads of 3 do not divide 4 heads (each such trial reports that
    # itself), and the points after them must still be checked
    lrs = [round(0.001 * i, 3) for i in range(1, 18)]
    message = refusal(sampler="grid", budget={}, space={"eval.seq_len": {"grid": [128, 100000]},
                                                        "model.num_kv_heads": {"grid": [2, 3]},
                                                        "train.matrix_lr": {"grid": lrs}})
    assert message.startswith("sweep spec space: eval.max_tokens (16,384) is less than one eval sequence of "
                              "100,000 tokens")
    assert message.endswith("'model.num_kv_heads': 2, 'train.matrix_lr': 0.001})")


def test_an_unknown_key_in_the_space_is_named_without_the_point_it_was_found_at() -> None:
    assert refusal(sampler="grid", budget={}, space={"model.depth": {"grid": [1, 2]}}) == (
        "sweep spec space: unknown config key 'model.depth'")


def test_a_spec_without_a_space_runs_its_one_config_per_seed_without_a_sampler_choice() -> None:
    one = spec_from_dict({"name": "one", "preset": "tiny-cpu", "overrides": {"train.iterations": 5}})
    assert (one.sampler, one.max_trials(), one.grid()) == ("grid", 1, {})
    seeded = spec_from_dict({"name": "one", "preset": "tiny-cpu", "seeds": [1, 2]})
    assert (seeded.sampler, seeded.max_trials()) == ("grid", 2)
    assert spec_from_dict(seeded.to_dict()).sampler == "grid"  # stored as it runs
    # a space, or enqueued points, keep the default sampler; a sampler asked for is kept, and its error says more
    assert spec_from_dict({"name": "s", "space": {LOOPS: {"choice": [1, 2]}}, "budget": {"max_trials": 2}}
                          ).sampler == "tpe"
    assert spec_from_dict({"name": "s", "enqueue": [{LOOPS: 2}]}).sampler == "tpe"
    with pytest.raises(ConfigError) as err:
        spec_from_dict({"name": "s", "preset": "tiny-cpu", "sampler": "tpe"})
    assert str(err.value) == ("sweep spec: budget.max_trials is required for the tpe sampler; a spec without a "
                              "space or points is one config (per seed): leave out `sampler` or give `sampler: grid` "
                              "to run it once")


def _spec_file(tmp_path: Any, **fields: Any) -> Any:
    import yaml

    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({**BASE, **fields}), encoding="utf-8")
    return path


@pytest.mark.parametrize("fields", [
    {"overrides": {"model.delta_net_heads": 0, "model.delta_net_out_norm": True}},
    {"overrides": {"model": {"delta_net_out_norm": True}}},  # nested, on tiny-cpu's model without DeltaNet
    # a searched key that cannot add what the switch needs
    {"overrides": {"quant.flat_scheme": "int8", "quant.gptq_feedback": "full_inverse"},
     "space": {LOOPS: {"grid": [1, 2]}}},
    {"overrides": {"model.inst_dim": 0, "train.train_flow_instructions": False},
     "points": {"a": {"train.matrix_lr": 0.01}}},
])
def test_a_spec_file_whose_overrides_name_a_switch_no_trial_can_act_on_is_refused(tmp_path: Any,
                                                                                  fields: dict[str, Any]) -> None:
    from clowncar.orchestrator.spec import load_spec

    with pytest.raises(ConfigError) as err:
        load_spec(_spec_file(tmp_path, **fields))
    assert str(err.value).startswith("sweep spec overrides: ") and "cannot act on this model: it needs" in str(err.value)
    assert spec_of(**fields).name == "rules"  # a stored spec (spec_from_dict, as resume reads it) still loads


@pytest.mark.parametrize("fields", [
    # the space, a named point or a queued config may add what the switch needs at some trials
    {"overrides": {"model.delta_net_out_norm": True}, "space": {"model.delta_net_heads": {"grid": [0, 2]}}},
    {"overrides": {"quant.gptq_feedback": "full_inverse", "quant.flat_scheme": "int8"},
     "points": {"gptq": {"quant.flat_scheme": "gptq_int6"}, "rtn": {"quant.flat_scheme": "int8"}}},
    {"overrides": {"model.crawler_loops": 1, "train.train_flow_instructions": False},
     "enqueue": [{"model.crawler_loops": 2}], "sampler": "grid", "budget": {}},
    # the switch acts on the base itself
    {"overrides": {"model.delta_net_heads": 2, "model.delta_net_out_norm": True}},
    # a preset's own switch: left to the canonical form, as in a trial's file
    {"overrides": {"quant.delta_net_scheme": "int8"}},
])
def test_a_switch_that_some_trial_can_act_on_is_accepted(tmp_path: Any, fields: dict[str, Any]) -> None:
    from clowncar.orchestrator.spec import load_spec

    assert load_spec(_spec_file(tmp_path, **fields)).name == "rules"


def test_every_key_a_switch_condition_reads_is_listed_as_one_it_reads() -> None:
    """A sweep may leave a switch named only when no searched key can change its condition: READS must hold every
    key the condition looks at (recorded here over configs that take each branch)."""
    from clowncar.config import TrialConfig
    from clowncar.config_inert import READS, SWITCHES

    class Recording(dict):  # type: ignore[type-arg]
        def __init__(self, section: str, values: dict[str, Any], seen: set[str]) -> None:
            super().__init__(values)
            self.section, self.seen = section, seen

        def __getitem__(self, key: str) -> Any:
            self.seen.add(f"{self.section}.{key}")
            return super().__getitem__(key)

    variants = [{}, {"model": {"delta_net_heads": 2}}, {"quant": {"flat_scheme": "gptq_int6"}},
                {"quant": {"enabled": False}}, {"model": {"arch": "gpt"}}, {"model": {"num_crawler_layers": 0}},
                {"model": {"crawler_loops": 1}}, {"model": {"inst_dim": 0}}, {"model": {"loop_offsets": "learned"}}]
    for key, (acts, _) in SWITCHES.items():
        seen: set[str] = set()
        for variant in variants:
            cfg = TrialConfig().to_dict()
            for section, values in variant.items():
                cfg[section].update(values)
            acts({s: Recording(s, v, seen) for s, v in cfg.items()})
        assert seen == READS[key], key


def test_an_all_grid_space_without_a_sampler_is_told_the_default_is_tpe_and_how_to_run_the_grid() -> None:
    grid_hint = "; `sampler` defaults to tpe: write `sampler: grid` to run the grid"
    with pytest.raises(ConfigError) as err:
        spec_from_dict({"name": "s", "preset": "tiny-cpu", "space": {LOOPS: {"grid": [1, 2, 3]}}})
    assert str(err.value) == "sweep spec: budget.max_trials is required for the tpe sampler" + grid_hint
    with pytest.raises(ConfigError) as err:  # named points are a grid dimension too
        spec_from_dict({"name": "s", "preset": "tiny-cpu", "points": {"a": {LOOPS: 1}, "b": {LOOPS: 2}}})
    assert str(err.value).endswith(grid_hint)
    # tpe written out, a `choice:` or a conditional grid parameter: the user did not write a plain grid
    for fields in ({"sampler": "tpe", "space": {LOOPS: {"grid": [1, 2]}}},
                   {"space": {LOOPS: {"grid": [1, 2]}, "train.cadence": {"choice": [1, 2]}}},
                   {"space": {LOOPS: {"grid": [1, 2]}, "train.cadence": {"grid": [1, 2], "when": {LOOPS: 2}}}}):
        with pytest.raises(ConfigError) as err:
            spec_from_dict({"name": "s", "preset": "tiny-cpu", **fields})
        assert str(err.value) == "sweep spec: budget.max_trials is required for the tpe sampler", fields


def _flag_for(annotation: Any) -> Any:
    """A value of a field typed `annotation` with true where a number goes (None: the field holds no number, or
    takes true/false itself)."""
    args = typing.get_args(annotation)
    if annotation in (int, float):
        return True
    if typing.get_origin(annotation) is typing.Annotated:
        return _flag_for(args[0])
    if annotation is bool or (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
        return None
    if typing.get_origin(annotation) in (list, tuple):
        inner = _flag_for(args[0])
        return None if inner is None else [inner] * (len(args) if typing.get_origin(annotation) is tuple else 1)
    if typing.get_origin(annotation) is dict:
        inner = _flag_for(args[1])
        return None if inner is None else {"k": inner}
    members = [a for a in args if a is not type(None)]
    if bool in members:  # a union that takes true/false (Scalar)
        return None
    flags = [f for f in map(_flag_for, members) if f is not None]
    return flags[0] if flags else None


def _numeric_fields(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """Every field of a spec model (and the models it holds) that holds a number: its path and a value with
    true in the number's place."""
    found = []
    for name, info in model.model_fields.items():
        path = (*prefix, info.alias or name)
        annotation = info.annotation
        for arg in (annotation, *typing.get_args(annotation)):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                found += _numeric_fields(arg, path)
        flag = _flag_for(annotation)
        if flag is not None:
            found.append((path, flag))
    return found


def test_no_numeric_field_of_a_spec_reads_true_as_a_number() -> None:
    fields = _numeric_fields(SweepSpec)
    # the walk reaches every kind of number field: top level, a list, a nested model, a range in the space
    assert {("seeds",), ("max_concurrent",), ("resources", "gpus"), ("budget", "trial_seconds_estimate")} <= {
        path for path, _ in fields} and any(path[0] == "space" for path, _ in fields)
    for path, flag in fields:
        value: Any = flag
        if path[0] == "space":  # a parameter of the space: one range, under a searched key
            value = {LOOPS: {"float" if path[-1] == "float" else "int": [1, 2], **{path[-1]: flag}}}
            path = path[:1]
        for key in reversed(path[1:]):
            value = {key: value}
        message = refusal(**{path[0]: value})
        assert "expected a number, not true" in message and "\n" not in message, (path, message)

