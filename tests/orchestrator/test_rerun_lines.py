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
