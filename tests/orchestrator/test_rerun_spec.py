"""`sweep rerun` (`orchestrator/rerun.py`) without Ray: which of a parent sweep's trials are its best configs, and
the child sweep that runs them over seeds."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from clowncar.errors import ClownCarError
from clowncar.orchestrator.rerun import best_configs, child_spec
from clowncar.orchestrator.spec import spec_from_dict
from clowncar.orchestrator.tune import open_study

optuna.logging.set_verbosity(optuna.logging.WARNING)
LOOPS, SEED = "model.crawler_loops", "train.seed"
DISTS = {LOOPS: CategoricalDistribution([1, 2, 3, 4]), SEED: CategoricalDistribution([1, 2, 3, 4, 7])}


def parent_of(**fields: Any) -> Any:
    return spec_from_dict({"name": "par", "preset": "tiny-cpu", "sampler": "random", "budget": {"max_trials": 8},
                           "space": {LOOPS: {"choice": [1, 2, 3, 4]}}, "seeds": [1, 2], **fields})


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


def _add(study: optuna.Study, loops: int, seed: int, value: float | None, over_cap: float = -1.0,
         state: TrialState = TrialState.COMPLETE, fixed: bool = False) -> None:
    params = {SEED: seed} if fixed else {LOOPS: loops, SEED: seed}
    study.add_trial(create_trial(params=params, distributions={k: DISTS[k] for k in params}, value=value,
                                 state=state, constraints={"artifact_bytes_over_cap": over_cap},
                                 system_attrs={"fixed_params": {LOOPS: loops}} if fixed else None))


def _parent_study(url: str, direction: str = "minimize") -> optuna.Study:
    return _parent_study_named(url, "par", direction)


def _parent_study_named(url: str, name: str, direction: str = "minimize") -> optuna.Study:
    return optuna.create_study(study_name=name, storage=open_study(url), direction=direction)


def test_the_best_feasible_configs_are_ranked_by_objective_without_their_seeds(url: str) -> None:
    study = _parent_study(url)
    _add(study, 1, 1, 2.0)
    _add(study, 2, 1, 1.5)
    _add(study, 2, 2, 1.4)  # the same config under another seed: once
    _add(study, 3, 1, 1.0, over_cap=1.0)  # one byte over the size cap: not feasible
    _add(study, 4, 1, math.inf)
    _add(study, 4, 2, None, state=TrialState.FAIL)
    _add(study, 1, 2, 0.5, state=TrialState.PRUNED)
    assert best_configs(parent_of(), url, 2) == [{LOOPS: 2}, {LOOPS: 1}]
    assert best_configs(parent_of(), url, 9) == [{LOOPS: 2}, {LOOPS: 1}]
    assert best_configs(parent_of(), url, 1) == [{LOOPS: 2}]


def test_a_config_run_at_several_seeds_ranks_by_its_mean_not_its_luckiest_seed(url: str) -> None:
    """As the report's top-configs table ranks them: loops 3's best seed (1.0) beats every other trial, but its
    mean (1.6) is behind loops 2's (1.3) and loops 1's single run (1.5)."""
    study = _parent_study(url)
    _add(study, 3, 1, 1.0)
    _add(study, 2, 1, 1.2)
    _add(study, 2, 2, 1.4)
    _add(study, 1, 1, 1.5)
    _add(study, 3, 2, 2.2)
    assert best_configs(parent_of(), url, 3) == [{LOOPS: 2}, {LOOPS: 1}, {LOOPS: 3}]
    assert best_configs(parent_of(), url, 3, keys=[LOOPS]) == [{LOOPS: 2}, {LOOPS: 1}, {LOOPS: 3}]
    up = _parent_study_named(url, "up", "maximize")
    for loops, seed, value in [(3, 1, 9.0), (2, 1, 5.0), (2, 2, 6.0), (3, 2, 1.0)]:
        _add(up, loops, seed, value)
    assert best_configs(parent_of(name="up", objective={"metric": "auto", "mode": "max"}), url, 2) == [
        {LOOPS: 2}, {LOOPS: 3}]  # means 5.5 and 5.0: the largest first


def test_equal_means_keep_the_order_of_their_best_trials(url: str) -> None:
    """Both means are 1.25; loops 1 holds the best trial, loops 2 the first trial and the worst: only the order of
    the best trials puts loops 1 first."""
    study = _parent_study(url)
    for loops, seed, value in [(2, 1, 1.0625), (2, 2, 1.0625), (2, 3, 1.625), (1, 1, 1.0), (1, 2, 1.5)]:
        _add(study, loops, seed, value)
    assert best_configs(parent_of(), url, 2) == [{LOOPS: 1}, {LOOPS: 2}]


def test_trials_of_a_config_at_one_seed_count_once_in_its_mean() -> None:
    from clowncar.orchestrator.rerun import pick

    # a: seed 1 twice (an imported log's repeats) and seed 2: per seed 1.0 and 1.6, mean 1.3 (the 3 trials: 1.2);
    # b: one seed, 1.25. By seed b ranks first; a trial that names no seed is its own value (c: 1.0 and 1.7)
    configs = [{LOOPS: 1, SEED: 1}, {LOOPS: 1, SEED: 1}, {LOOPS: 3}, {LOOPS: 2, SEED: 1}, {LOOPS: 1, SEED: 2},
               {LOOPS: 3}]
    assert pick(configs, 3, None, [1.0, 1.0, 1.0, 1.25, 1.6, 1.7]) == [{LOOPS: 2}, {LOOPS: 1}, {LOOPS: 3}]


def test_a_key_the_import_renames_is_named_with_the_key_to_ask_for() -> None:
    from clowncar.orchestrator.rerun import _nothing_to_carry

    renames = {"model.mlp_mult": "model.crawler_mlp_mult", "legacy.lr": "train.matrix_lr"}
    err = _nothing_to_carry("frug", ["model.mlp_mult", "legacy.lr", "model.crawler_loops"], renames)
    assert str(err) == ("the best trials of sweep 'frug' set none of the keys to carry (model.mlp_mult is carried as "
                        "model.crawler_mlp_mult, legacy.lr is carried as train.matrix_lr for this import: --keys "
                        "model.crawler_mlp_mult,train.matrix_lr,model.crawler_loops)")
    assert str(_nothing_to_carry("frug", ["model.crawler_loops"], renames)) == (
        "the best trials of sweep 'frug' set none of the keys to carry (model.crawler_loops)")


def test_a_maximised_objective_ranks_the_largest_first_and_a_queued_value_counts(url: str) -> None:
    study = _parent_study(url, "maximize")
    _add(study, 1, 1, 2.0)
    _add(study, 3, 1, 3.0, fixed=True)  # loops came from the queue (fixed_params), not the sampler
    _add(study, 2, 1, 1.0, over_cap=0.0)  # exactly at the cap: feasible
    assert best_configs(parent_of(objective={"metric": "auto", "mode": "max"}), url, 3) == [
        {LOOPS: 3}, {LOOPS: 1}, {LOOPS: 2}]


def test_a_parent_without_a_study_or_a_feasible_trial_is_one_line(url: str) -> None:
    _parent_study(url)
    with pytest.raises(ClownCarError) as err:
        best_configs(parent_of(name="other"), url, 2)
    assert str(err.value) == "sweep 'other' has no Optuna study"
    with pytest.raises(ClownCarError) as err:
        best_configs(parent_of(), url, 2)
    assert str(err.value) == "sweep 'par' has no feasible finished trial to rerun"


def test_the_child_queues_each_best_config_under_each_seed_and_nothing_else(url: str) -> None:
    study = _parent_study(url)
    _add(study, 2, 1, 1.5)
    _add(study, 1, 1, 2.0)
    _add(study, 3, 1, 9.0)
    parent = parent_of(sampler="tpe", scheduler={"type": "asha", "grace_period": 31},
                       budget={"max_trials": 8, "max_gpu_hours": None})
    child = child_spec(parent, "par", best_configs(parent, url, 2), [7, 8, 9], 2, None)
    assert child.name == "par-rerun-top2" and child.parent == "par" and child.sampler == "random"
    assert child.enqueue == [{LOOPS: 2, SEED: 7}, {LOOPS: 2, SEED: 8}, {LOOPS: 2, SEED: 9},
                             {LOOPS: 1, SEED: 7}, {LOOPS: 1, SEED: 8}, {LOOPS: 1, SEED: 9}]
    assert child.space == {} and child.seeds == [] and child.scheduler.type == "none"
    assert child.budget.max_trials == 6 and child.max_trials() == 6
    assert child.preset == parent.preset and child.objective == parent.objective
    assert child_spec(parent, "par", [{LOOPS: 2}], [5], 1, "mine").name == "mine"
    with pytest.raises(ClownCarError) as err:
        child_spec(parent, "par", [{LOOPS: 2}], [], 2, None)
    assert str(err.value) == "--seeds needs at least one seed"


def test_a_carried_config_that_does_not_build_on_the_base_names_the_parent_and_the_way_out() -> None:
    parent = parent_of()
    with pytest.raises(ClownCarError) as err:  # the Frugendorff CSV's model_dim 0 reads as auto: no budget here
        child_spec(parent, "frug", [{"model.model_dim": "auto"}], [1], 1, None)
    assert str(err.value) == (
        "a config carried from sweep 'frug' does not build on this base (model.model_dim is 'auto' but "
        "model.param_budget is not set): carry fewer keys with --keys, or give --base a spec that fits them")
    assert err.value.exit_code == 2
    with pytest.raises(ClownCarError) as other:  # an error of the child itself is left as it is
        child_spec(parent, "frug", [{LOOPS: 2}], [1], 1, "a b")
    assert not str(other.value).startswith("a config carried")


def test_a_rerun_ends_with_each_configs_seeds_and_the_parents_mean(url: str) -> None:
    from clowncar.orchestrator.rerun import ParentMatch
    from clowncar.orchestrator.rerun_lines import seed_lines

    parent = _parent_study(url)
    for loops, seed, value in [(2, 1, 1.2), (2, 2, 1.4), (1, 1, 1.5), (3, 1, 9.0)]:
        _add(parent, loops, seed, value)
    child = child_spec(parent_of(), "par", [{LOOPS: 2}, {LOOPS: 1}, {LOOPS: 4}], [3, 4], 3, None)
    study = _parent_study_named(url, child.name)
    _add(study, 2, 3, 1.5)
    _add(study, 2, 4, 1.7)
    _add(study, 1, 3, 1.6)
    _add(study, 1, 4, 0.1, over_cap=1.0)  # over the size cap: not a result
    _add(study, 4, 3, None, state=TrialState.FAIL)
    configs = [{LOOPS: 2}, {LOOPS: 1}, {LOOPS: 4}]
    assert seed_lines(url, child, configs, ParentMatch("par")) == [
        "each config over the seeds (objective q_sliding_val_bpb, else q_val_bpb; `clowncar analyze par-rerun-top3` "
        "tests them):",
        "  1. mean 1.6000 sd 0.1414 (n=2: 3: 1.5000, 4: 1.7000); parent 1.3000 (n=2)",
        "  2. mean 1.6000 (n=1: 3: 1.6000); parent 1.5000 (n=1)",
        "  3. no finished seed"]
    assert seed_lines(url, child, configs, None)[1] == "  1. mean 1.6000 sd 0.1414 (n=2: 3: 1.5000, 4: 1.7000)"
    gone = child_spec(parent_of(), "par", configs, [1], 3, "never-ran")
    assert seed_lines(url, gone, configs, ParentMatch("par")) == []  # no study: nothing ran
    named = child_spec(parent_of(objective={"metric": "val_bpb"}), "par", configs, [1, 2], 3, None)
    assert seed_lines(url, named, configs, ParentMatch("par"))[0].startswith("each config over the seeds (objective val_bpb; ")


def test_a_rerun_at_the_parents_seed_gives_the_mean_over_the_fresh_seeds_beside_the_parents_value(url: str) -> None:
    from clowncar.orchestrator.rerun import ParentMatch
    from clowncar.orchestrator.rerun_lines import seed_lines

    parent = _parent_study(url)
    _add(parent, 2, 1, 1.2)  # the config was picked at seed 1
    _add(parent, 1, 2, 1.5)
    child = child_spec(parent_of(), "par", [{LOOPS: 2}, {LOOPS: 1}], [1, 2, 3], 2, None)
    study = _parent_study_named(url, child.name)
    for loops, seed, value in [(2, 1, 1.2), (2, 2, 1.4), (2, 3, 1.5), (1, 1, 1.6), (1, 2, 1.5)]:
        _add(study, loops, seed, value)
    assert seed_lines(url, child, [{LOOPS: 2}, {LOOPS: 1}], ParentMatch("par"))[1:] == [
        "  1. mean 1.4500 sd 0.0707 over the fresh seeds (n=2: 2: 1.4000, 3: 1.5000); parent 1.2000 (n=1); the "
        "parent's seed, at which the config was picked, left out of the mean: 1: 1.2000",
        "  2. mean 1.6000 over the fresh seeds (n=1: 1: 1.6000); parent 1.5000 (n=1); the parent's seed, at which "
        "the config was picked, left out of the mean: 2: 1.5000"]


def test_a_parent_without_seeds_ran_at_its_presets_seed(url: str) -> None:
    from clowncar.orchestrator.rerun import ParentMatch, parent_seeds

    study = _parent_study(url)
    study.add_trial(create_trial(params={LOOPS: 2}, distributions={LOOPS: DISTS[LOOPS]}, value=1.0,
                                 constraints={"artifact_bytes_over_cap": -1.0}))
    _add(study, 3, 7, 1.1, fixed=True)  # a queued point that names its seed
    spec = parent_of(seeds=[])
    found = parent_seeds(url, ParentMatch("par", spec=spec), [{LOOPS: 2}, {LOOPS: 3}, {LOOPS: 4}])
    assert found == [{1337}, {7}, set()]  # tiny-cpu's train.seed
    assert parent_seeds(url, None, [{LOOPS: 2}]) == [set()]  # no match (another base): nothing is a repeat


@pytest.mark.parametrize(("ran", "given", "seeds", "left_out", "repeats"), [
    ([{1337}, {1337}], None, [42, 2025, 314], {1337: [1, 2]}, {}),
    ([set(), set()], None, [1337, 42, 2025], {}, {}),  # nothing known: the old default
    ([{1337, 42}, {2025}], None, [314, 999, 7], {1337: [1], 42: [1], 2025: [2]}, {}),
    ([{1337, 42, 2025, 314, 999, 7, 1}], None, [2, 3, 4],  # past SEED_ORDER: 1, 2, ..., each once
     {1337: [1], 42: [1], 2025: [1], 314: [1], 999: [1], 7: [1], 1: [1]}, {}),
    ([{1337}, {5}], [1337, 5, 9], [1337, 5, 9], {}, {1337: [1], 5: [2]}),  # given: kept as given, repeats named
])
def test_default_seeds_skip_every_seed_the_parent_ran_a_config_at(ran: list, given: list | None, seeds: list,
                                                                   left_out: dict, repeats: dict) -> None:
    from clowncar.orchestrator.rerun import SeedPlan, plan_seeds

    assert plan_seeds(ran, given) == SeedPlan(seeds, left_out, repeats)


def test_a_config_with_no_parent_trial_gets_no_parent_note(url: str) -> None:
    from clowncar.orchestrator.rerun import ParentMatch
    from clowncar.orchestrator.rerun_lines import parent_notes

    parent = _parent_study(url)
    for loops, seed, value in [(2, 1, 1.2), (2, 2, 1.4)]:
        _add(parent, loops, seed, value)
    assert parent_notes(url, ParentMatch("par"), [{LOOPS: 2}, {LOOPS: 4}]) == [
        " (parent mean 1.3000 sd 0.1414, n=2)", ""]
    assert parent_notes(url, None, [{LOOPS: 2}]) == [""]


def test_a_config_with_no_finished_seed_does_not_end_the_list(url: str) -> None:
    from clowncar.orchestrator.rerun_lines import seed_lines

    child = child_spec(parent_of(), "par", [{LOOPS: 4}, {LOOPS: 2}], [1], 2, None)
    study = _parent_study_named(url, child.name)
    _add(study, 4, 1, None, state=TrialState.FAIL)
    _add(study, 2, 1, 1.5)
    assert seed_lines(url, child, [{LOOPS: 4}, {LOOPS: 2}], None)[1:] == [
        "  1. no finished seed", "  2. mean 1.5000 (n=1: 1: 1.5000)"]
