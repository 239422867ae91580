"""Building a model from a config, at the edges: the widths that are legal (and the exact line for those that are
not, also for a bare ModelConfig that no TrialConfig check has seen), auto width when the budget is met exactly,
at the smallest legal model and at the largest width allowed, and an optimizer split that takes each trainable
parameter exactly once."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from clowncar.config_model import ModelConfig
from clowncar.errors import ConfigError
from clowncar.model.build import (
    BUDGET_BLOCKS,
    MAX_AUTO_WIDTH,
    _construct,
    budget_params_at_width,
    check_arch,
    check_width,
    param_groups,
    params_at_width,
    resolve_model_dim,
    width_step,
)

SMALL = {"vocab_size": 64, "num_heads": 4, "num_kv_heads": 2, "num_layers": 1, "num_flat_layers": 2,
         "num_crawler_layers": 1, "crawler_loops": 2, "inst_dim": 8, "mlp_mult": 2.0, "crawler_mlp_mult": 2.0}


def cfg(**kw: Any) -> ModelConfig:
    return ModelConfig(**{**SMALL, **kw})


def refused(call: Any, *args: Any) -> str:
    with pytest.raises(ConfigError) as err:
        call(*args)
    return str(err.value)


@pytest.mark.parametrize("model, dim, line", [
    (cfg(), 30, "model.model_dim 30 must be a multiple of 2 x model.num_heads (8)"),
    (cfg(), 36, "model.model_dim 36 must be a multiple of 2 x model.num_heads (8)"),  # head dim 9: odd
    (cfg(num_heads=2, num_kv_heads=1), 6, "model.model_dim 6 must be a multiple of 2 x model.num_heads (4)"),
    (cfg(rope_dims=10), 32, "model.rope_dims (10) must be even and at most the head dim 8"),
    (cfg(rope_dims=6), 16, "model.rope_dims (6) must be even and at most the head dim 4"),
    (cfg(rope_dims=2, rope_ntk_above=8), 32,
     "model.rope_ntk_above needs at least 4 rotary dims (the NTK exponent is d / (d - 2))"),
    (cfg(delta_net_heads=3), 32, "model.model_dim 32 must be a multiple of model.delta_net_heads (3)"),
    (cfg(num_heads=1, num_kv_heads=1, inst_dim=0, crawler_loops=3), 2,
     "model.crawler_loops (3) exceeds the width 2: the loop offsets need one orthogonal direction per loop"),
    (cfg(num_heads=1, num_kv_heads=1, inst_dim=0, crawler_loops=2, loop_offsets="learned_n_row"), 2,
     "model.crawler_loops (2) exceeds the width 2: the loop offsets need one orthogonal direction per loop"),
])
def test_a_width_that_cannot_work_is_one_exact_line(model: ModelConfig, dim: int, line: str) -> None:
    assert refused(check_width, model, dim) == line


@pytest.mark.parametrize("model, dim", [
    (cfg(), 8), (cfg(), 32),  # head dim 2: the smallest even one
    (cfg(rope_dims=8), 32),  # rotary over the whole head
    (cfg(rope_dims=4, rope_ntk_above=8), 32), (cfg(rope_ntk_above=8), 16),  # 4 rotary dims: the NTK minimum
    (cfg(delta_net_heads=3), 24),
    (cfg(num_heads=1, num_kv_heads=1, inst_dim=0, crawler_loops=2), 2),  # one direction per loop, exactly
    (cfg(num_heads=1, num_kv_heads=1, inst_dim=0, crawler_loops=1, loop_offsets="learned_n_row"), 2),
    (cfg(num_heads=1, num_kv_heads=1, inst_dim=4, crawler_loops=3), 2),  # flow instructions need no directions
    (cfg(num_heads=1, num_kv_heads=1, arch="gpt", inst_dim=0, crawler_loops=3), 2),  # a GPT has no loops
])
def test_a_width_on_the_edge_is_accepted(model: ModelConfig, dim: int) -> None:
    check_width(model, dim)


def test_an_architecture_mismatch_is_refused_even_without_the_trial_checks() -> None:
    assert refused(check_arch, cfg(arch="gpt", xsa="crawler")) == (
        "model.xsa = crawler needs model.arch = crawler (use 'all' or 'off' for a GPT)")
    assert refused(check_arch, cfg(arch="gpt", delta_net_heads=2)) == "model.delta_net_heads needs model.arch = crawler"
    check_arch(cfg(arch="gpt", xsa="all"))
    check_arch(cfg(arch="crawler", delta_net_heads=2, xsa="crawler"))


def test_legal_widths_step_by_whole_rotary_heads_and_whole_deltanet_heads() -> None:
    assert width_step(cfg()) == 8
    assert width_step(cfg(delta_net_heads=3)) == 24
    assert width_step(cfg(delta_net_heads=4)) == 8
    assert width_step(cfg(num_heads=6, num_kv_heads=2, delta_net_heads=4)) == 12


def test_a_budget_met_exactly_gets_that_width() -> None:
    for dim in (8, 48):
        exact = cfg(model_dim="auto", param_budget=params_at_width(cfg(), dim))
        assert resolve_model_dim(exact) == dim
        below = cfg(model_dim="auto", param_budget=params_at_width(cfg(), dim + 8) - 1)
        assert resolve_model_dim(below) == dim


@pytest.mark.parametrize("extra, smallest", [({}, 8), ({"rope_dims": 6}, 24), ({"rope_ntk_above": 8}, 16),
                                             ({"rope_dims": 4, "delta_net_heads": 3}, 24)])
def test_the_smallest_legal_model_is_the_floor_of_auto_width(extra: dict[str, Any], smallest: int) -> None:
    floor = params_at_width(cfg(**extra), smallest)
    assert resolve_model_dim(cfg(model_dim="auto", param_budget=floor, **extra)) == smallest
    line = refused(resolve_model_dim, cfg(model_dim="auto", param_budget=floor - 1, **extra))
    assert line == (f"model.param_budget {floor - 1:,} is below the smallest legal model ({floor:,} parameters at "
                    f"width {smallest})")


def test_auto_width_stops_at_the_largest_width_allowed() -> None:
    gpt = {"arch": "gpt", "vocab_size": 2, "num_layers": 1, "mlp_mult": 1.0}
    at_max = params_at_width(cfg(**gpt), MAX_AUTO_WIDTH)
    assert resolve_model_dim(cfg(model_dim="auto", param_budget=at_max, **gpt)) == MAX_AUTO_WIDTH == 16384
    over = params_at_width(cfg(**gpt), 2 * MAX_AUTO_WIDTH)
    assert refused(resolve_model_dim, cfg(model_dim="auto", param_budget=over, **gpt)) == (
        f"model.param_budget {over:,} asks for a width above 16384")


def test_a_blocks_only_budget_counts_the_embedding_and_blocks() -> None:
    model = cfg(bigram_vocab_size=16, bigram_dim=8, param_budget_counts="blocks")
    assert BUDGET_BLOCKS == ("tok_emb.", "blocks.", "flat_blocks.", "crawler_blocks.")
    with torch.device("meta"):
        built = _construct(model, 32)
    blocks = sum(p.numel() for n, p in built.named_parameters() if n.startswith(BUDGET_BLOCKS))
    assert budget_params_at_width(model, 32) == blocks < params_at_width(model, 32)
    assert budget_params_at_width(cfg(bigram_vocab_size=16, bigram_dim=8), 32) == params_at_width(model, 32)


class Shared(nn.Module):
    """Parameters the way a model may hold them: on the root, shared between two layers, frozen."""

    def __init__(self) -> None:
        super().__init__()
        self.loop_inst_gate = nn.Parameter(torch.ones(3))
        self.gain = nn.Parameter(torch.ones(3))
        self.a = nn.Linear(3, 3)
        self.b = nn.Linear(3, 3)
        self.b.weight = self.a.weight  # tied: one tensor, two modules
        self.frozen = nn.Linear(3, 3)
        self.frozen.weight.requires_grad_(False)
        self.table = nn.Embedding(5, 3)


def test_each_trainable_parameter_lands_in_exactly_one_group() -> None:
    m = Shared()
    groups = param_groups(m)
    ids = {k: [id(p) for p in v] for k, v in groups.items()}
    assert ids["matrix"] == [id(m.a.weight)]  # the tied weight once
    assert ids["embed"] == [id(m.table.weight)]
    assert sorted(ids["scalar"]) == sorted(map(id, [m.loop_inst_gate, m.gain, m.a.bias, m.b.bias, m.frozen.bias]))
    untrained = param_groups(m, ("loop_inst_",))  # a root parameter's name has no leading dot
    assert [id(p) for p in untrained["scalar"]] == [id(p) for p in groups["scalar"] if p is not m.loop_inst_gate]
