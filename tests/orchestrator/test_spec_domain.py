"""The values a spec may name for a searched parameter (`orchestrator/spec_domain.py`): a queued config's value of a
searched key, and the values a `when:` condition lists, must be ones the parameter can take, as the sampler
suggests them."""

from __future__ import annotations

from typing import Any

import pytest

from .test_spec_rules import LOOPS, refusal, spec_of

# --- queued values of searched keys -------------------------------------------------------------------------

QUEUED_SPACES = [({"choice": [1, 3]}, [1, 3, 3.0], [2, "1", 0]),
                 ({"grid": [2]}, [2], [1, 3]),
                 ({"int": [1, 5], "step": 2}, [1, 3, 5, 3.0], [0, 2, 7, 2.5, "3", True]),
                 ({"int": [1, 4], "log": True}, [1, 2, 4], [0, 5, 1.5])]


@pytest.mark.parametrize(("param", "taken", "refused"), QUEUED_SPACES)
def test_a_queued_value_of_a_searched_key_is_one_optuna_suggests_as_queued(param: dict[str, Any], taken: list[Any],
                                                                          refused: list[Any]) -> None:
    import warnings

    import optuna

    from clowncar.orchestrator.sampler import define_space

    for value in taken:  # accepted at load time, and Optuna hands the trial the queued value without a warning
        spec = spec_of(space={LOOPS: param}, enqueue=[{LOOPS: value}])
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        study.enqueue_trial(spec.enqueue[0])
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            trial = study.ask()
            define_space(spec)(trial)
        assert trial.params[LOOPS] == value
    for value in refused:
        assert refusal(space={LOOPS: param}, enqueue=[{LOOPS: value}]).startswith(
            f"sweep spec key 'enqueue.0': {LOOPS} = ")


def test_a_queued_float_is_checked_against_its_range_and_step() -> None:
    lr = "train.matrix_lr"
    assert refusal(space={lr: {"float": [0.01, 0.05]}}, enqueue=[{lr: 0.06}]) == (
        "sweep spec key 'enqueue.0': train.matrix_lr = 0.06 is outside its float range [0.01, 0.05]")
    assert refusal(space={lr: {"float": [0.01, 0.05], "step": 0.01}}, enqueue=[{lr: 0.025}]) == (
        "sweep spec key 'enqueue.0': train.matrix_lr = 0.025 is not on the step of its float range [0.01, 0.05] "
        "with step 0.01")
    spec_of(space={lr: {"float": [0.01, 0.05], "step": 0.01}}, enqueue=[{lr: 0.03}, {lr: 0.05}])



def test_a_range_of_no_whole_number_of_steps_refuses_its_stated_high_end_in_one_line_without_optunas_warning(
        ) -> None:
    """Optuna cuts [0.01, 0.05] at step 0.03 down to [0.01, 0.04] and warns in two raw lines; the spec's check says
    why the stated high end is refused, and nothing else reaches the console."""
    import warnings

    lr = "train.matrix_lr"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert refusal(space={lr: {"float": [0.01, 0.05], "step": 0.03}}, enqueue=[{lr: 0.05}]) == (
            "sweep spec key 'enqueue.0': train.matrix_lr = 0.05 is not on the step of its float range [0.01, 0.05] "
            "with step 0.03")
        assert refusal(space={LOOPS: {"int": [1, 4], "step": 2}}, enqueue=[{LOOPS: 4}]) == (
            f"sweep spec key 'enqueue.0': {LOOPS} = 4 is not on the step of its int range [1, 4] with step 2")
    assert refusal(space={LOOPS: {"int": [1, 3]}}, enqueue=[{LOOPS: True}]) == (  # a flag, written as YAML reads it
        f"sweep spec key 'enqueue.0': {LOOPS} = true is not a number (its int range [1, 3])")


def test_a_queued_key_the_space_does_not_set_is_an_override_and_a_queued_seed_one_of_the_seeds() -> None:
    spec = spec_of(space={LOOPS: {"choice": [1, 2]}}, seeds=[7, 8],
                   enqueue=[{LOOPS: 2, "model.model_dim": 96, "train.seed": 8}])
    assert spec.trial_config(spec.enqueue[0]).model.model_dim == 96
    assert refusal(space={LOOPS: {"choice": [1, 2]}}, seeds=[7, 8], enqueue=[{LOOPS: 2}, {"train.seed": 9}]) == (
        "sweep spec key 'enqueue.1': train.seed = 9 is not one of the spec's seeds (7, 8)")
    assert refusal(points={"wide": {"model.model_dim": 96}}, enqueue=[{"point": "tall"}]) == (
        "sweep spec enqueue: unknown point 'tall' (the spec's points: wide)")


def test_a_condition_names_values_its_parameter_can_take() -> None:
    cadence = "train.cadence"
    spec_of(space={LOOPS: {"int": [1, 3]}, cadence: {"choice": [2, 4], "when": {LOOPS: [2, 3.0]}}})
    spec_of(points={"a": {}, "b": {}}, space={cadence: {"choice": [2, 4], "when": {"point": "b"}}})
    assert refusal(space={LOOPS: {"choice": [1, 2]}, cadence: {"choice": [2, 4], "when": {LOOPS: [7]}}}) == (
        "sweep spec: space.train.cadence.when: model.crawler_loops = 7 is not one of its choice values (1, 2); "
        "train.cadence would never be sampled")
    assert refusal(points={"a": {}}, space={cadence: {"choice": [2, 4], "when": {"point": ["a", "z"]}}}) == (
        "sweep spec: space.train.cadence.when: point = 'z' is not one of its grid values ('a')")
    assert refusal(space={LOOPS: {"choice": [1, 2]}, cadence: {"choice": [2, 4], "when": {LOOPS: []}}}) == (
        "sweep spec: space.train.cadence.when: model.crawler_loops lists no value; train.cadence would never be "
        "sampled")
