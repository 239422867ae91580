"""Sweep specs: the shipped ones load, and malformed or adversarial ones give one line and exit code 2."""

from __future__ import annotations

import itertools
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clowncar.errors import ConfigError
from clowncar.orchestrator.spec import load_spec, spec_from_dict

REPO = Path(__file__).resolve().parents[2]
GOOD: dict[str, Any] = {"name": "s", "preset": "tiny-cpu", "sampler": "grid",
                        "space": {"model.crawler_loops": {"grid": [1, 2]}}}

BAD: list[tuple[dict[str, Any] | Any, str]] = [
    ({**GOOD, "colour": "red"}, "unknown key 'colour'"),
    ({**GOOD, "name": "../etc/passwd"}, "name"),
    ({**GOOD, "name": "x" * 200}, "name"),
    ({**GOOD, "sampler": "annealing"}, "sampler"),
    ({**GOOD, "space": {"model.no_such_key": {"grid": [1]}}}, "unknown config key 'model.no_such_key'"),
    ({**GOOD, "space": {"model.crawler_loops": {"grid": [0]}}}, "model.crawler_loops"),
    ({**GOOD, "space": {"model.crawler_loops": {"grid": []}}}, "at least one value"),
    ({**GOOD, "space": {"model.crawler_loops": {"grid": [1, 1]}}}, "no repeats"),
    ({**GOOD, "space": {"model.crawler_loops": {"grid": [1], "int": [1, 2]}}}, "exactly one of"),
    ({**GOOD, "sampler": "tpe", "budget": {"max_trials": 3},
      "space": {"train.matrix_lr": {"float": [0.0, 0.1], "log": True}}}, "log range needs low > 0"),
    ({**GOOD, "sampler": "tpe", "budget": {"max_trials": 3},
      "space": {"train.matrix_lr": {"float": [1.0, 0.1]}}}, "low <= high"),
    ({**GOOD, "sampler": "tpe", "budget": {"max_trials": 3},
      "space": {"train.matrix_lr": {"float": [0, float("inf")]}}}, "finite"),
    ({**GOOD, "sampler": "tpe"}, "max_trials is required"),
    ({**GOOD, "budget": {"max_trials": 99}}, "exceeds the grid size"),
    ({**GOOD, "budget": {"max_gpu_hours": -1}}, "max_gpu_hours"),
    ({**GOOD, "budget": {"max_gpu_hours": 1.0}}, "max_gpu_hours needs resources.gpus > 0"),
    ({**GOOD, "resources": {"gpus": -1}}, "resources.gpus"),
    ({**GOOD, "max_concurrent": 0}, "max_concurrent"),
    ({**GOOD, "seeds": [1, 1]}, "seeds repeat"),
    ({**GOOD, "seeds": [1], "space": {"train.seed": {"grid": [1]}}}, "not both"),
    ({**GOOD, "space": {"model.crawler_loops": {"grid": [1], "when": {"model.xsa": "off"}}}}, "when"),
    ({**GOOD, "preset": "nope"}, "unknown preset 'nope'"),
    ({**GOOD, "overrides": {"model.num_heads": 3}}, "num_heads"),
    ({**GOOD, "worker": {"module": "os; rm -rf /"}}, "worker.module"),
    ({**GOOD, "scheduler": {"type": "hyperband"}}, "scheduler.type"),
    (["name", "s"], "must be a mapping"),
    ({"space": {}}, "name"),
]


@pytest.mark.parametrize(("data", "expected"), BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_spec_is_one_line_naming_the_problem(data: Any, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        spec_from_dict(data)
    msg = str(info.value)
    assert expected in msg and "\n" not in msg


def test_shipped_sweeps_load_and_size_their_budgets() -> None:
    specs = {p.stem: load_spec(p) for p in sorted((REPO / "sweeps").glob("*.yaml"))}
    assert set(specs) >= {"smoke", "frugendorff_grid", "clowncar_seeds", "cadence_ablation"}
    assert specs["smoke"].max_trials() == 6 and specs["smoke"].preset == "tiny-cpu"
    assert specs["clowncar_seeds"].resources.gpus == 8 and specs["clowncar_seeds"].grid()["train.seed"] == [
        1337, 42, 2025]
    assert specs["frugendorff_grid"].trial_config({}).model.model_dim == "auto"
    # the record seeds twice: the fixed model, and the seed's own run to set beside the published numbers
    assert specs["clowncar_seeds"].preset == "clowncar" and specs["clowncar_seed_seeds"].preset == "clowncar-seed"
    assert specs["clowncar_seed_seeds"].grid()["train.seed"] == specs["clowncar_seeds"].grid()["train.seed"]
    assert not specs["clowncar_seed_seeds"].trial_config({}).train.train_flow_instructions


@pytest.mark.parametrize("name", ["smoke", "signals"])
def test_the_demo_sweeps_are_step_bounded_so_machine_load_does_not_change_their_answer(name: str) -> None:
    """walk 6, F2: smoke.yaml capped each trial at 20 s of wall clock; the same config got 34 steps in one run and
    40 in another (0.097 BPB apart) and the best config flipped. Every trial now trains the same steps, its LR
    warms down over the last warmdown_iters of them, and the plan still has a per-trial estimate."""
    spec = load_spec(REPO / "sweeps" / f"{name}.yaml")
    trains = [spec.trial_config(point).train for point in spec.distinct_grid().points]
    assert {t.max_wallclock_seconds for t in trains} == {0}
    assert len({t.iterations for t in trains}) == 1
    assert all(0 < t.warmdown_iters < t.iterations for t in trains)
    assert spec.budget.trial_seconds_estimate


def test_the_example_spec_in_the_spec_modules_docstring_loads(tmp_path: Path) -> None:
    """The example users copy from spec.py's docstring parses through `load_spec` (the loader `sweep run` uses): it
    once searched a float range and a `when:` under `sampler: grid`, which the parser refuses."""
    from clowncar.orchestrator import spec as spec_module

    doc = spec_module.__doc__ or ""
    after = doc.split("Example", 1)[1].split("\n", 1)[1].lstrip("\n")
    block = itertools.takewhile(lambda line: line.startswith("    ") or not line.strip(), after.splitlines())
    path = tmp_path / "example.yaml"
    path.write_text(textwrap.dedent("\n".join(block)))
    spec = load_spec(path)
    assert any(p.when for p in spec.space.values()) and spec.budget.max_trials  # the whole block was read


def test_conditional_param_is_sampled_only_when_its_condition_holds() -> None:
    import optuna

    from clowncar.orchestrator.sampler import define_space

    spec = spec_from_dict({"name": "c", "preset": "tiny-cpu", "sampler": "random", "budget": {"max_trials": 5},
                           "space": {"model.num_crawler_layers": {"choice": [1, 2]},
                                     "model.delta_net_heads": {"choice": [0, 2],
                                                               "when": {"model.num_crawler_layers": 2}}}})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        t = study.ask()
        define_space(spec)(t)
        assert ("model.delta_net_heads" in t.params) == (t.params["model.num_crawler_layers"] == 2)
        study.tell(t, 0.0)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids, max_size=3),
                    max_leaves=12))
def test_generated_specs_never_escape_as_anything_but_one_line(data: Any) -> None:
    try:
        spec_from_dict(data)
    except ConfigError as err:
        assert "\n" not in str(err)


@settings(max_examples=40, deadline=None)
@given(st.fixed_dictionaries({"name": st.from_regex(r"[a-z]{1,8}", fullmatch=True)}, optional={
    "sampler": st.sampled_from(["grid", "random", "tpe", "gp", "nsga2", "bogus"]),
    "max_concurrent": st.integers(-3, 5),
    "seeds": st.lists(st.integers(-2, 3), max_size=3),
    "space": st.dictionaries(st.sampled_from(["model.crawler_loops", "train.matrix_lr", "model.bogus"]),
                             st.fixed_dictionaries({}, optional={"grid": st.lists(st.integers(-1, 3), max_size=3),
                                                                 "float": st.tuples(st.floats(-1, 1), st.floats(-1, 1)),
                                                                 "log": st.booleans()}), max_size=2),
    "budget": st.fixed_dictionaries({}, optional={"max_trials": st.integers(-1, 50)}),
}))
def test_generated_near_valid_specs_load_or_fail_in_one_line(data: dict[str, Any]) -> None:
    data = {"preset": "tiny-cpu", **data}
    try:
        spec = spec_from_dict(data)
    except ConfigError as err:
        assert "\n" not in str(err)
        return
    assert spec.max_trials() >= 0


def test_cli_rejects_bad_specs_with_exit_2(sweep_env) -> None:
    cases = {"missing": None, "notyaml": "name: [unclosed", "badkey": yaml.safe_dump({**GOOD, "bogus": 1})}
    for name, text in cases.items():
        path = sweep_env.tmp / f"{name}.yaml"
        if text is not None:
            path.write_text(text)
        r = sweep_env.cli("sweep", "run", str(path), timeout=60)
        assert r.returncode == 2, (name, r.stdout, r.stderr)
        assert r.stderr.startswith("clowncar: error:") and len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = sweep_env.cli("sweep", "resume", "never-ran", timeout=60)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_a_spec_path_the_system_cannot_look_at_says_why(tmp_path: Path) -> None:
    long = tmp_path / ("x" * 300 + ".yaml")  # longer than a file name may be: not "not found", the OS's reason
    with pytest.raises(ConfigError) as err:
        load_spec(long)
    assert str(err.value) == f"cannot read sweep spec {long}: File name too long"
