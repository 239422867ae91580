"""Build a model from the trial config, size it to a parameter budget, and split its parameters for the
optimizers."""

from __future__ import annotations

import torch
from torch import nn

from clowncar.buildable import check_arch, check_width, width_step
from clowncar.config import TrialConfig
from clowncar.config_model import ModelConfig
from clowncar.errors import ConfigError
from clowncar.model.crawler import CrawlerGPT
from clowncar.model.gpt import GPT

MAX_AUTO_WIDTH = 16384


def count_params(model: nn.Module) -> int:
    """Unique parameters (the tied head is the embedding and counts once)."""
    return sum(p.numel() for p in model.parameters())


def _construct(cfg: ModelConfig, dim: int) -> nn.Module:
    return GPT(cfg, dim) if cfg.arch == "gpt" else CrawlerGPT(cfg, dim)


BUDGET_BLOCKS = ("tok_emb.", "blocks.", "flat_blocks.", "crawler_blocks.")
"""What `param_budget_counts: blocks` counts: the token embedding and the transformer blocks."""


def params_at_width(cfg: ModelConfig, dim: int) -> int:
    """Exact parameter count at width `dim`, from a model built on the meta device (no memory, no init)."""
    with torch.device("meta"):
        return count_params(_construct(cfg, dim))


def budget_params_at_width(cfg: ModelConfig, dim: int) -> int:
    """The parameters `model_dim: auto` counts against `param_budget` at width `dim`: all of them, or with
    `param_budget_counts: blocks` the token embedding and the blocks only (the seed's small trainers' estimate)."""
    if cfg.param_budget_counts == "all":
        return params_at_width(cfg, dim)
    with torch.device("meta"):
        model = _construct(cfg, dim)
    return sum(p.numel() for name, p in model.named_parameters() if name.startswith(BUDGET_BLOCKS))


def resolve_model_dim(cfg: ModelConfig) -> int:
    """The configured width, or for `model_dim: auto` the widest legal width whose parameter count fits
    `param_budget` (the parameter count grows with the width, so a binary search over legal widths finds it)."""
    check_arch(cfg)
    if cfg.model_dim != "auto":
        check_width(cfg, cfg.model_dim)
        return cfg.model_dim
    step = width_step(cfg)
    min_head_dim = max(2, cfg.rope_dims, 4 if cfg.rope_ntk_above else 0)  # heads must hold the rotary dims
    lo = -(-min_head_dim * cfg.num_heads // step)
    if budget_params_at_width(cfg, lo * step) > cfg.param_budget:
        raise ConfigError(f"model.param_budget {cfg.param_budget:,} is below the smallest legal model "
                          f"({budget_params_at_width(cfg, lo * step):,} parameters at width {lo * step})")
    hi = lo + 1  # first multiple known (or found) to exceed the budget
    while budget_params_at_width(cfg, hi * step) <= cfg.param_budget:
        if hi * step > MAX_AUTO_WIDTH:
            raise ConfigError(f"model.param_budget {cfg.param_budget:,} asks for a width above {MAX_AUTO_WIDTH}")
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if budget_params_at_width(cfg, mid * step) <= cfg.param_budget:
            lo = mid
        else:
            hi = mid
    dim = lo * step
    check_width(cfg, dim)
    return dim


def build_model(cfg: TrialConfig | ModelConfig) -> nn.Module:
    """The model the config describes, with its width resolved (recorded as `model.model_dim`) and its
    parameters in `model.param_dtype` (given a TrialConfig, the untrained ones are known; see `untrained`)."""
    model_cfg = cfg.model if isinstance(cfg, TrialConfig) else cfg
    model = _construct(model_cfg, resolve_model_dim(model_cfg))
    if model_cfg.param_dtype == "bf16":
        cast_params_bf16(model, untrained(cfg) if isinstance(cfg, TrialConfig) else ())
    return model


def untrained(cfg: TrialConfig) -> tuple[str, ...]:
    """Name prefixes of the parameters the config keeps out of every optimizer group (the seed's flow
    instructions and DeltaNet). They still get gradients, which, as in the seed, no optimizer applies or
    clears, and which the gradient-norm clip counts (the seed clipped over every parameter)."""
    prefixes = []
    if not cfg.train.train_flow_instructions:
        prefixes.append("loop_inst_")
    if not cfg.train.train_delta_net:
        prefixes.append("delta_net.")
    return tuple(prefixes)


# 2-D control tensors that the seed kept in fp32 in its bf16 model (its CONTROL_TENSOR_NAME_PATTERNS).
FP32_CONTROLS = ("resid_mix", "skip_weights")


@torch.no_grad()
def cast_params_bf16(model: nn.Module, untrained_prefixes: tuple[str, ...] = ()) -> None:
    """The seed's bf16 build: `model.bfloat16()`, then its CastedLinear matrices and its low-dim and control
    tensors back to fp32. Here: the weights of trained `nn.Linear` layers (the matrices Muon updates, cast to the
    activation dtype where they are used) and every tensor of < 2 dims or named in FP32_CONTROLS stay fp32;
    the rest (embeddings, untrained matrices, convolution kernels, float buffers) become bf16."""
    linear_weights = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    for name, p in model.named_parameters():
        trained_matrix = id(p) in linear_weights and not name.startswith(untrained_prefixes)
        if p.ndim >= 2 and not trained_matrix and not any(c in name for c in FP32_CONTROLS):
            p.data = p.data.to(torch.bfloat16)
    for module in model.modules():
        for bname, b in module.named_buffers(recurse=False):
            if b is not None and b.is_floating_point():
                setattr(module, bname, b.to(torch.bfloat16))


def param_groups(model: nn.Module, untrained_prefixes: tuple[str, ...] = ()) -> dict[str, list[nn.Parameter]]:
    """Split every trainable parameter into exactly one optimizer group (none for names starting with one of
    `untrained_prefixes`, see `untrained`).

    `matrix` (Muon): the weights of `nn.Linear` layers: attention, MLP, bigram projection, flow instructions,
    DeltaNet projections. `embed` (Adam, embedding LR): `nn.Embedding` tables (the tied token embedding, the
    bigram table). `scalar` (Adam, scalar LR): everything else: gains, scales, residual mixes, skip weights,
    the smear gate, biases and the DeltaNet convolution kernels.
    """
    groups: dict[str, list[nn.Parameter]] = {"matrix": [], "embed": [], "scalar": []}
    seen: set[int] = set()
    for mname, module in model.named_modules():
        for pname, p in module.named_parameters(recurse=False):
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            if f"{mname}.{pname}".removeprefix(".").startswith(untrained_prefixes):
                continue
            if isinstance(module, nn.Embedding):
                groups["embed"].append(p)
            elif isinstance(module, nn.Linear) and pname == "weight":
                groups["matrix"].append(p)
            else:
                groups["scalar"].append(p)
    return groups
