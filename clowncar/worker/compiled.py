"""How a trial's model runs: eager, or torch.compile in the mode `train.compile_mode` names.

`CompilePlan` turns the config and the device into one torch.compile call. The CUDA-graph modes
(`reduce-overhead`, `max-autotune`) capture each compiled graph, forward and backward, in a CUDA graph through
inductor's CUDA graph trees. The crawler's loops are a Python loop that dynamo unrolls, so one C-step forward
is one graph holding every loop and one N-step forward is another (tests/model/test_one_graph.py checks there
is no graph break): the whole forward and backward of a micro-batch replays as one graph each, which is the
seed's ClownCar_III plan. On CPU there are no CUDA graphs, so those modes compile as their graph-free
equivalents: the same computation as plain compile, and the log says so.

Two things the training loop does differently when CUDA graphs are live:
- `begin_step()` before every micro-batch's forward marks a new graph-tree iteration, so the previous
  micro-batch's outputs (already consumed) may be overwritten;
- the first gradient a parameter receives is cloned out of the graph's memory pool
  (`keep_grads_out_of_graph_pool`). Without it the autograd engine would keep the graph's output buffer as
  `.grad`, and the next micro-batch's replay would overwrite it: gradient accumulation would be wrong, and
  torch 2.13 refuses it with "accessing gradient tensor output of CUDAGraphs that has been overwritten".
  Later micro-batches add in place into that clone, and `.grad = None` between steps keeps its meaning (a
  parameter an N-step does not use gets no update).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from clowncar.config import TrainConfig

CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")
WITHOUT_CUDA_GRAPHS = {"reduce-overhead": "default", "max-autotune": "max-autotune-no-cudagraphs"}


@dataclass(frozen=True)
class CompilePlan:
    """What runs: `mode` None is eager, else torch.compile's mode name ("default" is torch's own default)."""

    mode: str | None
    cuda_graphs: bool
    asked: str
    """The configured mode ("eager" when train.compile is off), for the log and result.json."""

    @property
    def label(self) -> str:
        if self.mode is None:
            return "eager"
        text = f"torch.compile mode {self.mode}" + (" (CUDA graphs)" if self.cuda_graphs else "")
        if self.mode != self.asked:
            text += f" (train.compile_mode {self.asked} needs CUDA for its graphs: {self.mode} here)"
        return text

    def compile(self, model: nn.Module) -> nn.Module:
        """The module to call: `model` itself when eager, else its torch.compile wrapper."""
        if self.mode is None:
            return model
        # mode None is torch.compile's "default": `train.compile: true` compiles exactly as it always did.
        mode = None if self.mode == "default" else self.mode
        return torch.compile(model, mode=mode)  # type: ignore[return-value]

    def for_evaluation(self) -> CompilePlan:
        """The same compilation without CUDA graphs, for a model that is only evaluated (the quantized round
        trip): a few large eval batches gain nothing from graph replay, and each batch shape would record
        one."""
        if not self.cuda_graphs:
            return self
        return CompilePlan(WITHOUT_CUDA_GRAPHS[self.mode or ""], False, self.asked)

    def begin_step(self) -> None:
        """Before each micro-batch's forward: a new CUDA graph tree iteration (no-op without graphs)."""
        if self.cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()


def compile_plan(train: TrainConfig, device: torch.device) -> CompilePlan:
    if not train.compile:
        return CompilePlan(None, False, "eager")
    mode = train.compile_mode
    if mode in CUDA_GRAPH_MODES and device.type != "cuda":
        return CompilePlan(WITHOUT_CUDA_GRAPHS[mode], False, mode)
    return CompilePlan(mode, mode in CUDA_GRAPH_MODES, mode)


def keep_grads_out_of_graph_pool(model: nn.Module) -> list[RemovableHandle]:
    """Clone each parameter's gradient when it has no `.grad` yet, so `.grad` never aliases a CUDA graph's
    output buffer (see the module docstring). Returns the hook handles."""
    handles = []
    for p in model.parameters():
        if p.requires_grad:
            handles.append(p.register_hook(_clone_first_gradient(p)))
    return handles


def _clone_first_gradient(p: nn.Parameter) -> Any:
    def hook(grad: torch.Tensor) -> torch.Tensor | None:
        return grad.clone() if p.grad is None else None  # None: accumulate `grad` as it is

    return hook
