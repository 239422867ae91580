"""`CompilePlan` rule by rule: what torch.compile is called with for each mode, what an evaluation-only model
gets, and the plan of an uncompiled trial. (Compiled training itself: test_compile_modes.py.)"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from clowncar.config import TrainConfig
from clowncar.worker import compiled
from clowncar.worker.compiled import CompilePlan, compile_plan


def test_an_uncompiled_trial_runs_eager_and_says_so() -> None:
    plan = compile_plan(TrainConfig(compile=False, compile_mode="reduce-overhead"), torch.device("cuda"))
    assert plan == CompilePlan(None, False, "eager")
    assert plan.label == "eager"


@pytest.mark.parametrize(("mode", "passed"), [("default", None), ("max-autotune-no-cudagraphs",
                                                                   "max-autotune-no-cudagraphs"),
                                              ("reduce-overhead", "reduce-overhead")])
def test_torch_compile_gets_the_model_and_its_mode(monkeypatch, mode: str, passed: str | None) -> None:
    calls: list[tuple] = []
    monkeypatch.setattr(torch, "compile", lambda model, mode=None: calls.append((model, mode)) or "compiled")
    model = nn.Linear(2, 2)
    assert CompilePlan(mode, mode == "reduce-overhead", mode).compile(model) == "compiled"
    assert calls == [(model, passed)]  # "default" is torch's own default: mode=None, as `train.compile: true` was


def test_an_eager_plan_returns_the_model_itself(monkeypatch) -> None:
    monkeypatch.setattr(torch, "compile", lambda *a, **k: pytest.fail("compiled an eager plan"))
    model = nn.Linear(2, 2)
    assert CompilePlan(None, False, "eager").compile(model) is model


@pytest.mark.parametrize(("mode", "without"), [("reduce-overhead", "default"),
                                               ("max-autotune", "max-autotune-no-cudagraphs")])
def test_an_evaluation_only_model_drops_the_graphs_and_keeps_what_was_asked(mode: str, without: str) -> None:
    plan = CompilePlan(mode, True, mode)
    assert plan.for_evaluation() == CompilePlan(without, False, mode)
    plain = CompilePlan("default", False, "default")
    assert plain.for_evaluation() is plain


def test_begin_step_marks_a_graph_iteration_only_with_graphs(monkeypatch) -> None:
    marks: list[int] = []
    monkeypatch.setattr(torch.compiler, "cudagraph_mark_step_begin", lambda: marks.append(1))
    CompilePlan("default", False, "default").begin_step()
    assert marks == []
    CompilePlan("reduce-overhead", True, "reduce-overhead").begin_step()
    assert marks == [1]


def test_labels_say_what_runs_and_why_a_mode_changed() -> None:
    assert CompilePlan("default", False, "default").label == "torch.compile mode default"
    assert CompilePlan("reduce-overhead", True, "reduce-overhead").label == (
        "torch.compile mode reduce-overhead (CUDA graphs)")
    assert CompilePlan("default", False, "reduce-overhead").label == (
        "torch.compile mode default (train.compile_mode reduce-overhead needs CUDA for its graphs: default here)")


@pytest.mark.parametrize(("mode", "device", "expected"), [
    ("reduce-overhead", "cpu", CompilePlan("default", False, "reduce-overhead")),
    ("max-autotune", "cpu", CompilePlan("max-autotune-no-cudagraphs", False, "max-autotune")),
    ("reduce-overhead", "cuda", CompilePlan("reduce-overhead", True, "reduce-overhead")),
    ("default", "cuda", CompilePlan("default", False, "default")),
])
def test_a_compiled_trial_gets_graphs_only_on_cuda(mode: str, device: str, expected: Any) -> None:
    assert compile_plan(TrainConfig(compile=True, compile_mode=mode), torch.device(device)) == expected


def test_every_graph_mode_has_a_graph_free_twin() -> None:
    assert set(compiled.WITHOUT_CUDA_GRAPHS) == set(compiled.CUDA_GRAPH_MODES)
