"""Parameter counts against the references, and width auto-sizing to a parameter budget."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from clowncar.config_load import load_config
from clowncar.errors import ConfigError
from clowncar.model import build_model, count_params, params_at_width, resolve_model_dim
from clowncar.model.build import width_step

SEED_CLOWNCAR_PARAMS = 13_430_316
SEED_VALUE_EMBEDDING_PARAMS = 1024 * 128 + 128 * 256 + 1 + 2
SEED_DELTANET_4_HEADS_PARAMS = 14_487_088 - SEED_CLOWNCAR_PARAMS  # Medusa's logged model_params minus ClownCar


def test_baseline_preset_has_the_reference_17_059_912_parameters() -> None:
    model = build_model(load_config(preset="baseline"))
    assert count_params(model) == 17_059_912


def test_clowncar_preset_matches_the_seed_except_its_unused_value_embedding(capsys: Any) -> None:
    """The seed's ClownCar logs 13,430,316 parameters; ours has 13,266,473, exactly 163,843 fewer.

    The difference is the seed's value embedding, which we deliberately do not build: `VE_LAYERS=9,10`
    indexed crawler blocks 0..n-1, so `ve_shared` (a 1024 x 128 table, a 128 -> 256 projection and a scale)
    and its two per-layer scales were created, optimized and exported but never used in the forward pass
    (1024*128 + 128*256 + 1 + 2 = 163,843). Everything else matches the seed tensor for tensor: 4 flat blocks
    9,445,408, the shared crawler block 2,885,640, tied embedding 524,288, bigram hash 2048x128 + 128->512 +
    scale 327,681, smear gate 512, U-Net skip weights 1,024, flow instructions 512->32 + 4 x 32->512 81,920.
    """
    with torch.device("meta"):  # the same construction code, without allocating or initializing 13M weights
        model = build_model(load_config(preset="clowncar"))
    n = count_params(model)
    print(f"clowncar preset: {n:,} parameters (seed {SEED_CLOWNCAR_PARAMS:,}, "
          f"difference {SEED_CLOWNCAR_PARAMS - n:,} = the unused value embedding)")
    assert sum(p.numel() for p in model.flat_blocks.parameters()) == 9_445_408
    assert sum(p.numel() for p in model.crawler_blocks.parameters()) == 2_885_640
    assert n == SEED_CLOWNCAR_PARAMS - SEED_VALUE_EMBEDDING_PARAMS == 13_266_473


def test_deltanet_with_4_heads_adds_the_seeds_canonical_deltanet_size() -> None:
    cfg = load_config(preset="clowncar", overrides=["model.delta_net_heads=4"])
    added = params_at_width(cfg.model, 512) - params_at_width(load_config(preset="clowncar").model, 512)
    assert added == SEED_DELTANET_4_HEADS_PARAMS == 1_056_772


@pytest.mark.parametrize("arch", ["gpt", "crawler"])
def test_auto_width_is_the_widest_legal_width_within_budget(arch: str) -> None:
    cfg = load_config(preset="clowncar", overrides=[f"model.arch={arch}", "model.model_dim=auto",
                                                    "model.param_budget=3000000", "model.xsa='off'",
                                                    "model.num_layers=4"])
    dim = resolve_model_dim(cfg.model)
    step = width_step(cfg.model)
    assert dim % step == 0
    assert params_at_width(cfg.model, dim) <= 3_000_000 < params_at_width(cfg.model, dim + step)
    model = build_model(cfg)
    assert model.model_dim == dim and count_params(model) == params_at_width(cfg.model, dim)


def test_auto_width_respects_deltanet_heads_and_rotary_dims(tiny_cfg: Any) -> None:
    cfg = tiny_cfg(model_dim="auto", param_budget=150_000, delta_net_heads=3, rope_dims=8)
    dim = resolve_model_dim(cfg)
    assert dim % 24 == 0 and dim // cfg.num_heads >= 8
    assert params_at_width(cfg, dim) <= 150_000 < params_at_width(cfg, dim + 24)


def test_budget_below_the_smallest_model_is_a_config_error(tiny_cfg: Any) -> None:
    with pytest.raises(ConfigError, match="param_budget"):
        resolve_model_dim(tiny_cfg(model_dim="auto", param_budget=100))


@pytest.mark.parametrize(("overrides", "message"), [
    ({"delta_net_heads": 3}, "delta_net_heads"),
    ({"arch": "gpt", "xsa": "crawler"}, "xsa"),
    ({"rope_dims": 6, "rope_ntk_above": 4, "model_dim": 16}, "rope_dims"),
])
def test_shapes_that_cannot_work_are_config_errors(tiny_cfg: Any, overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_model(tiny_cfg(**overrides))
