"""What `sweep rerun` says before it runs (the estimate from the parent's measured trial times, a child name that is
taken or that the parent's name cannot give) and what a rerun child says afterwards (`sweep resume`, `sweep status`,
`sweep ls`); in this process, the sweep runner replaced (walk 5, F6, F10, F14, F15, F17)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from clowncar.errors import ClownCarError
from clowncar.orchestrator import commands as cmd
from clowncar.orchestrator.rerun import child_spec
from clowncar.orchestrator.spec import NAME_RE, spec_from_dict
from clowncar.orchestrator.tune import open_study
from clowncar.store import open_store
from clowncar.store.commands import ls as store_ls

optuna.logging.set_verbosity(optuna.logging.WARNING)
LOOPS, SEED = "model.crawler_loops", "train.seed"
DISTS = {LOOPS: CategoricalDistribution([1, 2, 3]), SEED: CategoricalDistribution([1, 2, 7, 8])}
PARENT = {"name": "par", "preset": "tiny-cpu", "sampler": "random", "budget": {"max_trials": 8},
          "space": {LOOPS: {"choice": [1, 2, 3]}}, "seeds": [1, 2]}


def add(study: optuna.Study, loops: int, seed: int, value: float, seconds: float = 0.0) -> None:
    """A finished trial of `loops` at `seed` that ran for `seconds` (0: told at once, as an enqueued value is)."""
    trial = create_trial(params={LOOPS: loops, SEED: seed}, distributions=DISTS, value=value,
                         state=TrialState.COMPLETE, constraints={"artifact_bytes_over_cap": -1.0})
    trial.datetime_start = trial.datetime_complete - timedelta(seconds=seconds)
    study.add_trial(trial)


def stored_parent(url: str, trials: list[tuple[int, int, float, float]]) -> None:
    with open_store(url) as st:
        st.create_or_get_sweep("par", PARENT)
    study = optuna.create_study(study_name="par", storage=open_study(url))
    for loops, seed, value, seconds in trials:
        add(study, loops, seed, value, seconds)


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    calls: list[Any] = []
    monkeypatch.setattr(cmd, "run_spec", lambda spec, *args, **kw: calls.append(spec))
    return calls


def test_a_rerun_estimates_its_trials_from_the_parents_measured_times(url: str, runs: list, capsys) -> None:
    # config loops=2 took 20 s and 16 s in the parent; the other config's 40 s is not what the child runs
    stored_parent(url, [(2, 1, 1.1, 20.0), (2, 2, 1.2, 16.0), (1, 1, 1.5, 40.0)])
    cmd.rerun_cmd("par", top=1, seeds="7,8", store=url)
    out = capsys.readouterr().out.splitlines()
    assert out[2:4] == [
        "  estimated: 36 trial-seconds on CPU (2 trials x 18 s on average, no GPU)",
        "  per trial: 18.0 s, the mean wall-clock time of the parent's 2 finished trials of these configs; the "
        "driver uses the measured trial times once trials finish"]
    assert sum(line.startswith("  estimated: ") for line in out) == 1  # said once (F6)
    (spec,) = runs
    assert spec.budget.trial_seconds_estimate == 18.0  # the driver starts from it too


def test_a_parent_without_measured_times_keeps_the_specs_estimate(url: str, runs: list, capsys) -> None:
    stored_parent(url, [(2, 1, 1.1, 0.0)])  # told at once: no time measured
    cmd.rerun_cmd("par", top=1, seeds="7", dry_run=True, store=url)
    assert capsys.readouterr().out.splitlines()[2] == (
        "  estimated: 1.1 trial-minutes on CPU (1 trial x 66 s on average, no GPU)")


@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "run"])
@pytest.mark.parametrize(("status", "said"), [
    ("done", "sweep 'kid' already exists (done: `clowncar sweep status kid`); give this rerun another name with "
             "--name"),
    ("imported", "sweep 'kid' already exists (imported: `clowncar sweep status kid`); give this rerun another name "
                 "with --name"),
    ("stopped", "sweep 'kid' already exists; continue it with `clowncar sweep resume kid` or give this rerun "
                    "another name with --name")])
def test_a_child_name_that_is_taken_is_refused_by_a_dry_run_as_by_the_run(url: str, runs: list, capsys,
                                                                          dry_run: bool, status: str,
                                                                          said: str) -> None:
    stored_parent(url, [(2, 1, 1.1, 10.0)])
    with open_store(url) as st:
        st.create_or_get_sweep("kid", {**PARENT, "name": "kid"}, parent="par")
        st.set_sweep_status("kid", status, None)
    optuna.create_study(study_name="kid", storage=open_study(url))
    with pytest.raises(ClownCarError) as err:
        cmd.rerun_cmd("par", top=1, seeds="7", child="kid", dry_run=dry_run, store=url)
    assert (str(err.value), err.value.exit_code) == (said, 2)
    assert runs == [] and capsys.readouterr().out == ""


def test_a_child_name_of_a_sweep_that_never_started_is_free(url: str, runs: list) -> None:
    stored_parent(url, [(2, 1, 1.1, 10.0)])
    with open_store(url) as st:  # a start that failed before any trial: the run takes the name over
        st.create_or_get_sweep("kid", {**PARENT, "name": "kid"}, parent="par")
    cmd.rerun_cmd("par", top=1, seeds="7", child="kid", store=url)
    assert [s.name for s in runs] == ["kid"]


@pytest.mark.parametrize("parent", [
    "2026-03-19_int6_STE QAT_ MLP_bigram _U_Net.train",
    "2026-03-19_SlidingWindow_FP16Emb_10L_MuonWD_OvertoneInit.train_seed1337"])
def test_a_parent_name_that_gives_no_sweep_name_gets_a_valid_child_name(parent: str) -> None:
    from clowncar.orchestrator.rerun import default_child_name

    base = spec_from_dict(PARENT)
    name = child_spec(base, parent, [{LOOPS: 2}], [7], 1, None).name
    assert NAME_RE.match(name) and name.endswith("-rerun-top1") and name.startswith("2026-03-19_")
    assert " " not in name and len(name) <= 64
    # two long names that differ only past the cut stay apart
    assert default_child_name(parent + "_seed42", 1) != default_child_name(parent + "_seed43", 1)
    assert default_child_name("par", 2) == "par-rerun-top2"  # a valid name stays as it was


def child_that_ran(url: str) -> str:
    """Parent `par` and its rerun child of loops=2 at seeds 7 and 8, both finished."""
    stored_parent(url, [(2, 1, 1.10, 10.0), (2, 2, 1.30, 10.0), (1, 1, 1.5, 10.0)])
    child = child_spec(spec_from_dict(PARENT), "par", [{LOOPS: 2}], [7, 8], 1, None)
    with open_store(url) as st:
        st.create_or_get_sweep(child.name, child.to_dict(), parent="par")
        st.set_sweep_status(child.name, "done", None)
    study = optuna.create_study(study_name=child.name, storage=open_study(url))
    add(study, 2, 7, 1.25, 10.0)
    add(study, 2, 8, 1.35, 10.0)
    return child.name


ANSWER = ["each config over the seeds (objective q_sliding_val_bpb, else q_val_bpb; `clowncar analyze "
          "par-rerun-top1` tests them):",
          "  1. mean 1.3000 sd 0.0707 (n=2: 7: 1.2500, 8: 1.3500); parent 1.2000 (n=2)"]


def test_a_resumed_rerun_ends_with_each_configs_mean_over_the_seeds(url: str, runs: list, capsys) -> None:
    name = child_that_ran(url)
    cmd.resume_cmd(name, store=url)
    assert [s.name for s in runs] == [name]
    assert capsys.readouterr().out.splitlines() == ANSWER


def test_the_status_of_a_rerun_gives_each_configs_mean_and_ls_says_its_best_is_one_run(url: str, capsys) -> None:
    name = child_that_ran(url)
    cmd.status_cmd(name, store=url)
    assert capsys.readouterr().out.splitlines()[-2:] == ANSWER
    note = ("note: a rerun's best_bpb (a sweep with a parent) is its best single run, not a mean over seeds: "
            "`clowncar sweep status NAME` gives each config's mean")
    cmd.ls_cmd(store=url)
    assert capsys.readouterr().out.splitlines()[-1] == note
    store_ls(store=url)
    assert capsys.readouterr().out.splitlines()[-1] == note


def test_a_child_name_given_that_is_no_sweep_name_is_refused_as_the_option(url: str, runs: list) -> None:
    stored_parent(url, [(2, 1, 1.1, 10.0)])
    with pytest.raises(ClownCarError) as err:  # not "sweep spec: name ...", a spec the user never wrote (F15)
        cmd.rerun_cmd("par", top=1, seeds="7", child="a b", dry_run=True, store=url)
    assert str(err.value) == "--name 'a b' must be 1-64 letters, digits, '_', '-', '.'" and runs == []


LEFT_OUT_WHY = ("as a config's value at its parent's seed is the one it was picked by (biased by the picking), and "
                "rerunning it would repeat that trial; --seeds sets the seeds")
REPEAT_WHY = ("the value a config was picked by (biased by the picking), so the summary gives the mean over the other "
              "seeds beside the parent's value")


def test_the_seed_note_names_each_left_out_or_repeated_seed_with_the_configs_the_parent_ran_at_it() -> None:
    from clowncar.orchestrator.rerun import SeedPlan
    from clowncar.orchestrator.rerun_lines import seed_note

    # every one of several configs, one config, some configs; a seed left out wins over a seed repeated
    assert seed_note(SeedPlan([42, 2025], {1337: [1, 2, 3], 7: [2]}, {3: [1, 3]}), 3) == (
        "seeds 42, 2025: left out 1337 (the parent ran every config at it); 7 (the parent ran config 2 at it), "
        + LEFT_OUT_WHY)
    assert seed_note(SeedPlan([1, 2], {}, {1: [1, 3], 2: [1]}), 3) == (
        "seed 1 repeats the parent's trial of configs 1, 3; seed 2 repeats the parent's trial of config 1: "
        + REPEAT_WHY)
    # the only config of a one-config rerun is "config 1", not "every config"
    assert seed_note(SeedPlan([1], {}, {1: [1]}), 1) == "seed 1 repeats the parent's trial of config 1: " + REPEAT_WHY
    # both configs of a two-config rerun are "every config"
    assert seed_note(SeedPlan([1337], {}, {1337: [1, 2]}), 2) == (
        "seed 1337 repeats the parent's trial of every config: " + REPEAT_WHY)
    assert seed_note(SeedPlan([7, 8], {}, {}), 2) is None  # nothing left out, nothing repeated: nothing to say


def test_a_child_name_held_only_by_an_optuna_study_is_taken(url: str) -> None:
    """A study with trials but no sweep row (a store whose sweep row was lost, or a study made by hand): the name is
    not free, and the line says to resume it."""
    from clowncar.orchestrator.rerun_lines import refuse_taken

    stored_parent(url, [(2, 1, 1.1, 10.0)])
    add(optuna.create_study(study_name="orphan", storage=open_study(url)), 1, 1, 1.2)
    with pytest.raises(ClownCarError, match=r"^sweep 'orphan' already exists; continue it with `clowncar sweep "
                                            r"resume orphan` or give this rerun another name with --name$"):
        refuse_taken(url, "orphan")
    refuse_taken(url, "free")  # neither a sweep row nor a study: nothing to refuse


def test_the_child_name_check_never_creates_a_store(tmp_path) -> None:
    from clowncar.orchestrator.rerun_lines import refuse_taken
    from clowncar.store import StoreError

    missing = tmp_path / "none.db"
    with pytest.raises(StoreError):
        refuse_taken(f"sqlite:///{missing}", "kid")
    assert not missing.exists()


def test_each_parent_seed_measured_again_is_named_with_its_value() -> None:
    from clowncar.orchestrator.rerun_lines import _again_text

    assert _again_text([]) == ""
    assert _again_text([(1337, 2.31234), (42, 2.3)]) == (
        "; the parent's seed, at which the config was picked, left out of the mean: 1337: 2.3123, 42: 2.3000")


def test_a_child_name_whose_failed_start_left_only_queued_points_is_free(url: str) -> None:
    """A start that failed after queueing its points (a study of WAITING trials, no trial in the store) is no
    sweep yet: the name is free, read through the study's own storage."""
    from clowncar.orchestrator.rerun_lines import refuse_taken

    stored_parent(url, [(2, 1, 1.1, 10.0)])
    with open_store(url) as st:
        st.create_or_get_sweep("kid", {**PARENT, "name": "kid"}, parent="par")
    optuna.create_study(study_name="kid", storage=open_study(url)).enqueue_trial({LOOPS: 2, SEED: 7})
    refuse_taken(url, "kid")


def test_a_parent_whose_trials_took_under_a_second_gives_the_estimate_to_a_tenth_of_a_second(url: str, runs: list,
                                                                                              capsys) -> None:
    stored_parent(url, [(2, 1, 1.1, 0.42), (2, 2, 1.2, 0.5)])  # 0.46 s on average: 0.5 s, not 0 s nor 0.46 s
    cmd.rerun_cmd("par", top=1, seeds="7", store=url)
    assert capsys.readouterr().out.splitlines()[3].startswith(
        "  per trial: 0.5 s, the mean wall-clock time of the parent's 2 finished trials of these configs;")
    (spec,) = runs
    assert spec.budget.trial_seconds_estimate == 0.5


def test_a_finished_parent_trial_without_a_start_time_counts_as_a_value_but_not_as_a_time(url: str,
                                                                                          capsys) -> None:
    """A queued point finished through the study's storage without ever running (Optuna keeps no start time for
    it): its value is the parent's, but it says nothing of how long a trial takes."""
    stored_parent(url, [(2, 1, 1.1, 20.0)])
    study = optuna.load_study(study_name="par", storage=open_study(url))
    study.enqueue_trial({LOOPS: 2, SEED: 2})
    (queued,) = [t for t in study.get_trials() if t.state == TrialState.WAITING]
    study._storage.set_trial_state_values(queued._trial_id, TrialState.COMPLETE, [1.2])
    cmd.rerun_cmd("par", top=1, seeds="7", dry_run=True, store=url)
    out = capsys.readouterr().out.splitlines()
    assert out[1] == "  1. model.crawler_loops=2 (parent mean 1.1500 sd 0.0707, n=2)"
    assert out[3].startswith(
        "  per trial: 20.0 s, the mean wall-clock time of the parent's 1 finished trial of these configs;")


MLP, CADENCE = "model.crawler_mlp_mult", "train.cadence"
POINTED = {"name": "pp", "preset": "tiny-cpu", "sampler": "random", "budget": {"max_trials": 8},
           "points": {"wide": {MLP: 3.0, CADENCE: 3}, "narrow": {MLP: 1.0}},
           "space": {LOOPS: {"choice": [1, 2, 3]}}}  # no `seeds`: every trial ran at the preset's seed, 1337
POINTED_DISTS = {LOOPS: CategoricalDistribution([1, 2, 3]), "point": CategoricalDistribution(["wide", "narrow"]),
                 MLP: CategoricalDistribution([1.0, 3.0]), SEED: CategoricalDistribution([42, 1337])}


def add_point(study: optuna.Study, params: dict[str, Any], value: float, seconds: float) -> None:
    trial = create_trial(params=params, distributions={k: POINTED_DISTS[k] for k in params}, value=value,
                         state=TrialState.COMPLETE, constraints={"artifact_bytes_over_cap": -1.0})
    trial.datetime_start = trial.datetime_complete - timedelta(seconds=seconds)
    study.add_trial(trial)


def pointed_parent(url: str) -> None:
    """Parent `pp` of named points: 'narrow' at loops 2 (1.1, 20 s) and at loops 3 (1.2, 10 s), 'wide' at loops 1."""
    with open_store(url) as st:
        st.create_or_get_sweep("pp", POINTED)
    study = optuna.create_study(study_name="pp", storage=open_study(url))
    for loops, point, value, seconds in [(1, "wide", 1.3, 30.0), (2, "narrow", 1.1, 20.0), (3, "narrow", 1.2, 10.0)]:
        add_point(study, {LOOPS: loops, "point": point}, value, seconds)


def test_with_keys_the_estimate_is_the_time_of_the_parents_trials_whose_spelled_out_point_is_the_config(
        url: str, capsys) -> None:
    # config mlp_mult=1.0 runs at the base's loops 2: point 'narrow' at loops 2 (20 s), not at loops 3, another config
    pointed_parent(url)
    cmd.rerun_cmd("pp", top=1, seeds="7", keys=MLP, dry_run=True, store=url)
    out = capsys.readouterr().out.splitlines()
    assert out[1] == "  1. model.crawler_mlp_mult=1.0 (parent 1.1000, n=1)"
    assert out[3].startswith(
        "  per trial: 20.0 s, the mean wall-clock time of the parent's 1 finished trial of these configs;")


def pointed_child(url: str, configs: list[dict[str, Any]], ran: list[tuple[int, float]]) -> str:
    """A finished rerun child of `pp` of `configs` (one here) that ran at the seeds and values of `ran`."""
    pointed_parent(url)
    child = child_spec(spec_from_dict(POINTED), "pp", configs, [s for s, _ in ran], 1, None)
    with open_store(url) as st:
        st.create_or_get_sweep(child.name, child.to_dict(), parent="pp")
        st.set_sweep_status(child.name, "done", None)
    study = optuna.create_study(study_name=child.name, storage=open_study(url))
    for seed, value in ran:
        add_point(study, {**configs[0], SEED: seed}, value, 10.0)
    return child.name


def test_a_rerun_of_a_named_point_reads_the_parents_trials_of_that_point_and_the_seed_they_ran_at(
        url: str, capsys) -> None:
    """The parent named no seed: its trials ran at the preset's train.seed, 1337, which the child measured again."""
    name = pointed_child(url, [{LOOPS: 2, "point": "narrow"}], [(1337, 1.15), (42, 1.25)])
    cmd.status_cmd(name, store=url)
    assert capsys.readouterr().out.splitlines()[-1] == (
        "  1. mean 1.2500 over the fresh seeds (n=1: 42: 1.2500); parent 1.1000 (n=1); the parent's seed, at which "
        "the config was picked, left out of the mean: 1337: 1.1500")


def test_a_rerun_with_keys_reads_the_parents_trials_of_the_spelled_out_points_and_the_seed_they_ran_at(
        url: str, capsys) -> None:
    """--keys carried mlp_mult alone: the child runs it at the base's loops 2, so the parent's 'narrow' trial at
    loops 2 is the config, and the one at loops 3 is another."""
    name = pointed_child(url, [{MLP: 1.0}], [(1337, 1.15), (42, 1.25)])
    cmd.status_cmd(name, store=url)
    assert capsys.readouterr().out.splitlines()[-1] == (
        "  1. mean 1.2500 over the fresh seeds (n=1: 42: 1.2500); parent 1.1000 (n=1); the parent's seed, at which "
        "the config was picked, left out of the mean: 1337: 1.1500")


def test_the_status_of_a_rerun_with_keys_says_the_parent_never_ran_a_config_whose_other_keys_it_ran_otherwise(
        url: str, capsys) -> None:
    """--keys carried mlp_mult 3.0 from point 'wide', which also sets cadence 3: the child runs it at the base's
    cadence and loops, a config the parent never ran, so there is no parent value to compare its mean with."""
    name = pointed_child(url, [{MLP: 3.0}], [(1337, 1.35), (42, 1.25)])
    cmd.status_cmd(name, store=url)
    assert capsys.readouterr().out.splitlines()[-1] == (
        "  1. mean 1.3000 sd 0.0707 (n=2: 1337: 1.3500, 42: 1.2500); the parent never ran this config")


def test_the_status_of_a_rerun_of_an_imported_sweep_gives_each_configs_mean_without_the_parents(
        url: str, capsys) -> None:
    """An imported parent has no spec and no study to match: the child's own seeds alone."""
    with open_store(url) as st:
        st.create_or_get_sweep("legacy", {"imported": True, "format": "frugendorff-csv"}, source="import")
    base = spec_from_dict({**PARENT, "name": "base"})
    child = child_spec(base, "legacy", [{LOOPS: 2}], [7, 8], 1, None)
    with open_store(url) as st:
        st.create_or_get_sweep(child.name, child.to_dict(), parent="legacy")
        st.set_sweep_status(child.name, "done", None)
    study = optuna.create_study(study_name=child.name, storage=open_study(url))
    add(study, 2, 7, 1.25, 10.0)
    add(study, 2, 8, 1.35, 10.0)
    cmd.status_cmd(child.name, store=url)
    assert capsys.readouterr().out.splitlines()[-2:] == [
        "each config over the seeds (objective q_sliding_val_bpb, else q_val_bpb; `clowncar analyze "
        "legacy-rerun-top1` tests them):",
        "  1. mean 1.3000 sd 0.0707 (n=2: 7: 1.2500, 8: 1.3500)"]


def test_a_rerun_childs_lines_never_create_a_store(tmp_path) -> None:
    from clowncar.orchestrator.rerun_lines import child_seed_lines
    from clowncar.store import StoreError

    missing = tmp_path / "none.db"
    child = child_spec(spec_from_dict(PARENT), "par", [{LOOPS: 2}], [7], 1, None)
    with pytest.raises(StoreError):
        child_seed_lines(f"sqlite:///{missing}", child)
    assert not missing.exists()


def test_an_imported_configs_note_is_its_value_or_its_mean_over_seeds_and_none_without_a_value() -> None:
    from clowncar.orchestrator.rerun_lines import imported_notes

    assert imported_notes("val_bpb", [[2.19534], [2.1, 2.2], []]) == [
        " (val_bpb 2.1953, n=1)", " (val_bpb mean 2.1500 sd 0.0707, n=2)", ""]


def test_seeds_that_name_none_are_refused_before_the_store_is_read(tmp_path) -> None:
    missing = tmp_path / "none.db"
    with pytest.raises(ClownCarError) as err:
        cmd.rerun_cmd("par", seeds=" , ", store=f"sqlite:///{missing}")
    assert str(err.value) == "--seeds needs at least one seed" and not missing.exists()
