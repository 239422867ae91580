"""A spec never runs the same trial twice by accident: grid points with one canonical config hash are merged
before the start (seeds stay apart), named points are one more grid dimension, `clowncar sweep plan` prints the
distinct trials, the merged points and the GPU-hours, and ASHA's rungs never rank trials before their LR anneals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from clowncar.errors import ConfigError
from clowncar.orchestrator.rungs import asha_rungs
from clowncar.orchestrator.sampler import LongestFirstGrid
from clowncar.orchestrator.spec import load_spec, spec_from_dict
from clowncar.orchestrator.sweep_plan import make_plan

REPO = Path(__file__).resolve().parents[2]


def tiny_spec(**fields: Any) -> Any:
    data = {"name": "t", "preset": "tiny-cpu", "sampler": "grid", **fields}
    return spec_from_dict(data)


def test_frugendorff_grid_merges_its_24_repeated_points_and_runs_104() -> None:
    spec = load_spec(REPO / "sweeps" / "frugendorff_grid.yaml")
    distinct = spec.distinct_grid()
    assert spec.grid_size() == 128 and len(distinct.points) == 104 and len(distinct.merged) == 24
    for m in distinct.merged:  # one loop: the cadence changes nothing, so cadence 2-4 run as cadence 1
        assert m.point["model.crawler_loops"] == 1 and m.point["train.cadence"] in (2, 3, 4)
        assert m.same_as == {**m.point, "train.cadence": 1}
        assert spec.trial_config(m.point).content_hash() == spec.trial_config(m.same_as).content_hash()
    hashes = {spec.trial_config(p).content_hash() for p in distinct.points}
    assert len(hashes) == 104
    assert spec.max_trials() == 104
    sampler = LongestFirstGrid(spec)
    assert len(sampler._all_grids) == sampler._n_min_trials == 104  # the Optuna grid holds the distinct points only


def test_seeds_stay_distinct_trials_when_points_merge() -> None:
    spec = tiny_spec(space={"model.crawler_loops": {"grid": [1]}, "train.cadence": {"grid": [1, 2, 3]}},
                     seeds=[1, 2])
    distinct = spec.distinct_grid()
    assert [(p["train.seed"], p["train.cadence"]) for p in distinct.points] == [(1, 1), (2, 1)]
    assert len(distinct.merged) == 4 and spec.max_trials() == 2


def test_named_points_are_one_more_grid_dimension_applied_before_the_space() -> None:
    spec = tiny_spec(points={"wide": {"model.model_dim": 96}, "deep": {"model.num_flat_layers": 4}},
                     space={"model.crawler_loops": {"grid": [2, 3]}})
    assert spec.grid_size() == 4 and spec.search_space()["point"].values == ["wide", "deep"]
    wide = spec.trial_config({"point": "wide", "model.crawler_loops": 3})
    assert wide.model.model_dim == 96 and wide.model.crawler_loops == 3 and wide.model.num_flat_layers == 2
    assert spec.trial_config({"point": "deep", "model.crawler_loops": 2}).model.num_flat_layers == 4
    with pytest.raises(ConfigError, match="unknown point 'tall'"):
        spec.trial_config({"point": "tall"})


@pytest.mark.parametrize("fields, fragment", [
    ({"points": {"a": {"model.crawler_loops": 2}}, "space": {"model.crawler_loops": {"grid": [1]}}},
     "points.a sets model.crawler_loops, which the space also sets"),
    ({"points": {"a": {"train.seed": 5}}},  # no seeds, no space: a seed is never a point's
     "points.a sets train.seed: give seeds as `seeds:` (every point runs at each), not in a point"),
    ({"points": {"a": {"train.seed": 5}}, "seeds": [1, 2]},
     "points.a sets train.seed: give seeds as `seeds:` (every point runs at each), not in a point"),
    ({"points": {"a b": {"model.crawler_loops": 2}}}, "points: name 'a b'"),
    ({"points": {"a": {"model.crawler_lops": 2}}}, "unknown config key 'model.crawler_lops'"),
    ({"space": {"model.crawler_loops": {"grid": [1]}, "train.cadence": {"grid": [1, 2, 3]}},
      "budget": {"max_trials": 2}}, "exceeds the grid's 1 distinct trials (2 of its points repeat another's"),
])
def test_bad_points_and_budgets_are_one_line_errors(fields: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        tiny_spec(**fields)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_plan_command_prints_distinct_trials_merged_points_and_gpu_hours(run_cli: Any) -> None:
    r = run_cli("sweep", "plan", str(REPO / "sweeps" / "frugendorff_grid.yaml"), timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "sweep frugendorff-grid (grid): 128 grid points, 104 distinct trials"
    assert "24 points would repeat another's trial" in lines[1]
    assert ("model.num_crawler_layers=3, model.crawler_loops=1, model.crawler_mlp_mult=3.0: train.cadence=2 | "
            "train.cadence=3 | train.cadence=4 -> runs as train.cadence=1") in r.stdout
    # 104 trials x 1 GPU x (600 s wallclock + 10 %) = 19.07 GPU-hours
    assert "estimated: 19.07 GPU-hours (104 trials x 1 GPU x 660 s on average)" in r.stdout


def test_plan_counts_gpu_hours_from_the_trial_estimate_and_gpus() -> None:
    plan = make_plan(load_spec(REPO / "sweeps" / "cadence_ablation.yaml"))
    assert (plan.points, plan.distinct, plan.trials, plan.gpus) == (8, 8, 8, 8)
    assert plan.gpu_hours == pytest.approx(8 * 8 * 400 / 3600)


def test_plan_of_a_sampled_sweep_counts_its_budget_at_the_expected_length() -> None:
    spec = tiny_spec(sampler="random", space={"train.matrix_lr": {"float": [0.01, 0.1]}},
                     budget={"max_trials": 10, "trial_seconds_estimate": 36})
    plan = make_plan(spec)
    assert plan.trials == 10 and plan.trial_seconds == 360 and plan.gpus == 0


# -- ASHA ----------------------------------------------------------------------------------------------------------

def test_rung_steps_are_the_ones_tune_uses() -> None:
    from ray.tune.schedulers import ASHAScheduler

    for grace, rf, top in ((3, 2, 20), (200, 3, 20000), (11, 2, 40), (5, 4, 5)):
        tune = ASHAScheduler(time_attr="step", metric="m", mode="min", max_t=top, grace_period=grace,
                             reduction_factor=rf)
        assert sorted(r for r, _ in tune._brackets[0]._rungs) == asha_rungs(grace, rf, top)


def asha_spec(overrides: dict[str, Any], grace: int) -> Any:
    return tiny_spec(overrides=overrides, space={"model.crawler_loops": {"grid": [1, 2]}},
                     scheduler={"type": "asha", "metric": "train_loss", "grace_period": grace,
                                "reduction_factor": 2})


@pytest.mark.parametrize("overrides, grace, fragment", [
    # tiny-cpu: 40 iterations, warm-down 10, 60 s wallclock: the warm-down has begun for sure only by step 31
    ({}, 5, "ASHA's first rung (step 5) comes before the LR anneals (a wallclock warm-down of 10 steps starts at "
            "a step that depends on the step time; only the iteration limit (40) places it, by step 31)"),
    ({"train.max_wallclock_seconds": 0}, 30, "the warm-down covers the last 10 of 40 steps"),
    ({"train.lr_schedule": "cosine", "train.lr_warmup_steps": 8}, 8, "cosine, after the 8-step LR warm-up"),
])
def test_a_rung_before_the_lr_anneals_is_refused_in_one_line(overrides: dict[str, Any], grace: int,
                                                             fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        asha_spec(overrides, grace)
    msg = str(info.value)
    assert fragment in msg and "\n" not in msg and "scheduler.grace_period" in msg


@pytest.mark.parametrize("overrides, grace", [
    ({}, 31), ({"train.max_wallclock_seconds": 0}, 31), ({"train.warmdown_iters": 0}, 3),
    ({"train.lr_schedule": "cosine", "train.lr_warmup_steps": 8}, 9), ({}, 40)])
def test_rungs_after_the_lr_starts_annealing_are_accepted(overrides: dict[str, Any], grace: int) -> None:
    assert asha_spec(overrides, grace).scheduler.grace_period == grace


def test_asha_lets_a_trial_that_reaches_its_last_step_finish_its_evaluation() -> None:
    from ray.tune.experiment import Trial
    from ray.tune.schedulers import TrialScheduler

    from clowncar.orchestrator.tune import build_scheduler

    spec = asha_spec({"train.warmdown_iters": 0}, 3)
    scheduler = build_scheduler(spec, None)
    trial = Trial("t", stub=True)
    scheduler.on_trial_add(None, trial)
    # Step 40 is train.iterations (ASHA's max_t): the worker reports it before its final eval and export.
    assert scheduler.on_trial_result(None, trial, {"step": 40, "train_loss": 1.0, "train_loss_step": 40,
                                                   "last_step": 40}) == TrialScheduler.CONTINUE


def test_shipped_specs_state_what_they_reproduce_and_what_differs() -> None:
    for name in ("frugendorff_v2", "micro_crawler", "cadence_ablation"):
        text = (REPO / "sweeps" / f"{name}.yaml").read_text()
        assert "# What it reproduces:" in text and "# What differs:" in text, name
        assert yaml.safe_load(text)["name"]


@pytest.mark.slow  # embedded Ray
def test_a_sweep_with_repeated_points_runs_each_trial_once_per_seed(sweep_env: Any) -> None:
    spec = sweep_env.spec("dedup", space={"model.crawler_loops": {"grid": [1]}, "train.cadence": {"grid": [1, 2, 3]}},
                          seeds=[1, 2])
    r = sweep_env.cli("sweep", "run", str(spec), "--num-cpus", "2", "--quiet", timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("sweep dedup (grid): 6 grid points, 2 distinct trials")
    trials = sweep_env.store().trials_frame(sweeps="dedup")
    assert len(trials) == 2 and sorted(trials["train.seed"]) == [1, 2] and set(trials["train.cadence"]) == {1}
    assert trials["config_hash"].nunique() == 2


def test_plan_and_run_take_a_name_that_overrides_the_specs(tmp_path: Path, monkeypatch, capsys) -> None:
    from clowncar.orchestrator import commands as cmd

    spec_file = tmp_path / "s.yaml"
    spec_file.write_text(yaml.safe_dump({"name": "mini", "preset": "tiny-cpu", "sampler": "grid",
                                         "space": {"model.crawler_loops": {"grid": [1, 2]}}}))
    cmd.plan_cmd(spec_file, name="mini-2")
    assert capsys.readouterr().out.splitlines()[0].startswith("sweep mini-2 (grid): ")
    ran: list[Any] = []
    monkeypatch.setattr(cmd, "run_spec", lambda spec, *args, **kw: ran.append(spec))
    monkeypatch.delenv("CLOWNCAR_RAY_ADDRESS", raising=False)
    cmd.run_cmd(spec_file, name="mini-2")
    cmd.run_cmd(spec_file)
    assert [s.name for s in ran] == ["mini-2", "mini"]
    assert ran[0].to_dict() == {**ran[1].to_dict(), "name": "mini-2"}  # the name and nothing else


@pytest.mark.parametrize("name", ["a b", "", "-x", "x" * 65, "a/b"])
def test_a_name_a_spec_could_not_have_is_refused_in_one_line(name: str, tmp_path: Path) -> None:
    from clowncar.errors import ClownCarError
    from clowncar.orchestrator import commands as cmd

    spec_file = tmp_path / "s.yaml"
    spec_file.write_text("name: mini\npreset: tiny-cpu\nsampler: grid\n")
    for command in (cmd.plan_cmd, cmd.run_cmd):
        with pytest.raises(ClownCarError) as err:
            command(spec_file, name=name)
        assert str(err.value) == f"--name '{name}' must be 1-64 letters, digits, '_', '-', '.'"
        assert err.value.exit_code == 2
