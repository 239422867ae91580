"""Which program a sweep's trials may run (only what the installation registers: a spec read back from the store
must not choose code for every node) and which metrics a trial of a config reports, so an objective the trials
never report is refused before the sweep starts."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from clowncar.config_load import load_config
from clowncar.errors import ConfigError
from clowncar.events import RESULT_METRICS
from clowncar.orchestrator import workers
from clowncar.orchestrator.spec import WorkerSpec
from clowncar.orchestrator.workers import (
    QUANT_METRICS,
    SLIDING_METRICS,
    check_objective,
    check_worker,
    registered_workers,
    reported_metrics,
)


def ep(name: str, value: str, dist: str | None) -> Any:
    return SimpleNamespace(name=name, value=value, dist=SimpleNamespace(name=dist) if dist else None)


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The entry points of the group `clowncar.workers` this installation declares (none until a test adds)."""
    eps: list[Any] = []
    groups: list[str] = []
    monkeypatch.setattr(workers, "entry_points", lambda group: groups.append(group) or list(eps))
    yield eps
    assert set(groups) <= {"clowncar.workers"}


def test_the_builtin_worker_is_always_registered(installed: list[Any]) -> None:
    assert registered_workers() == {"clowncar.worker": "clowncar"}


def test_an_entry_point_registers_its_module_under_its_distribution(installed: list[Any]) -> None:
    installed += [ep("contract", "contract_worker", "clowncar-bench"), ep("fast", " labs.fast : main ", None),
                  ep("slow", "labs.slow:run", "labs"),
                  ep("shadow", "clowncar.worker", "evil")]
    assert registered_workers() == {"clowncar.worker": "clowncar", "contract_worker": "clowncar-bench",
                                    "labs.fast": "fast", "labs.slow": "labs"}  # the built-in keeps its owner


def test_a_distribution_without_a_name_is_named_by_its_entry_point(installed: list[Any]) -> None:
    installed.append(SimpleNamespace(name="x", value="mod.x", dist=SimpleNamespace(name="")))
    assert registered_workers()["mod.x"] == "x"


def test_a_spec_runs_only_a_registered_worker_and_adds_no_import_paths(installed: list[Any]) -> None:
    check_worker(WorkerSpec())
    installed.append(ep("contract", "contract_worker", "bench"))
    check_worker(WorkerSpec(module="contract_worker"))
    with pytest.raises(ConfigError) as err:
        check_worker(WorkerSpec(module="os.path"))
    assert str(err.value) == ("sweep spec key 'worker.module': 'os.path' is not a registered worker (registered: "
                              "clowncar.worker, contract_worker; a worker is registered as an entry point of the "
                              "group 'clowncar.workers')")
    with pytest.raises(ConfigError) as err:
        check_worker(WorkerSpec(pythonpath=["/tmp/evil"]))
    assert str(err.value) == ("sweep spec key 'worker.pythonpath': a spec may not add import paths; install the "
                              "worker as an entry point of the group 'clowncar.workers' instead")


def test_the_real_installation_registers_the_builtin_worker() -> None:
    assert registered_workers()["clowncar.worker"] == "clowncar"


def cfg(*overrides: str) -> Any:
    return load_config(preset="tiny-cpu", overrides=list(overrides))


def test_a_quantizing_trial_with_a_sliding_eval_reports_every_metric() -> None:
    c = cfg("eval.stride=32")  # 0 < 32 < 128
    assert reported_metrics(c) == RESULT_METRICS


def test_without_quantization_no_quantized_numbers_are_reported() -> None:
    got = reported_metrics(cfg("quant.enabled=false"))
    assert got == tuple(m for m in RESULT_METRICS if m not in QUANT_METRICS)
    assert "val_bpb" in got and "sliding_val_bpb" in got and "q_sliding_val_bpb" not in got


@pytest.mark.parametrize("stride", [0, 128])
def test_a_stride_of_zero_or_the_whole_window_reports_no_sliding_numbers(stride: int) -> None:
    c = cfg(f"eval.stride={stride}")
    assert reported_metrics(c) == tuple(m for m in RESULT_METRICS if m not in SLIDING_METRICS)


def test_a_stride_of_one_token_is_a_sliding_eval() -> None:
    assert "sliding_val_bpb" in reported_metrics(cfg("eval.stride=1"))
    assert "sliding_val_bpb" in reported_metrics(cfg("eval.stride=127"))


def test_auto_means_post_quantization_bpb_and_needs_quantization() -> None:
    check_objective("auto", cfg(), "the base config")
    with pytest.raises(ConfigError) as err:
        check_objective("auto", cfg("quant.enabled=false"), "the base config")
    assert str(err.value) == ("sweep spec key 'objective.metric': auto means post-quantization BPB, but the base "
                              "config has quant.enabled false; name the metric (e.g. val_bpb)")


def test_an_objective_the_trials_report_is_accepted() -> None:
    for metric in ("val_bpb", "q_val_bpb", "artifact_bytes", "sliding_val_bpb"):
        check_objective(metric, cfg("eval.stride=32"), "the base config")


@pytest.mark.parametrize(("metric", "overrides", "why"), [
    ("q_val_bpb", ["quant.enabled=false"], "quant.enabled is false"),
    ("q_sliding_val_bpb", ["quant.enabled=false", "eval.stride=32"], "quant.enabled is false"),
    ("q_sliding_val_bpb", ["eval.stride=0"], "the sliding eval is off (eval.stride)"),
    ("sliding_val_bpb", ["eval.stride=0"], "the sliding eval is off (eval.stride)"),
    ("sliding_val_bpb", ["quant.enabled=false", "eval.stride=0"], "the sliding eval is off (eval.stride)"),
])
def test_an_objective_the_trials_never_report_says_why(metric: str, overrides: list[str], why: str) -> None:
    with pytest.raises(ConfigError) as err:
        check_objective(metric, cfg(*overrides), "space point 3")
    assert str(err.value) == (f"sweep spec key 'objective.metric': a trial of space point 3 does not report "
                              f"'{metric}' ({why})")


def test_an_unknown_objective_lists_the_metrics() -> None:
    with pytest.raises(ConfigError) as err:
        check_objective("bpb", cfg(), "the base config")
    assert str(err.value) == ("sweep spec key 'objective.metric': 'bpb' is not a metric a trial reports (one of: "
                              "auto, " + ", ".join(RESULT_METRICS) + ")")
