"""Fixtures for the model tests: tiny configs and helpers (shared as fixtures: there is no tests package)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

from clowncar.config_model import ModelConfig

TINY: dict[str, Any] = {
    "vocab_size": 64, "model_dim": 32, "num_heads": 4, "num_kv_heads": 2, "num_layers": 3,
    "num_flat_layers": 2, "num_crawler_layers": 1, "crawler_loops": 3, "inst_dim": 8,
    "mlp_mult": 2.0, "crawler_mlp_mult": 2.0,
}

# Every model option the causality and gradient tests must cover, by readable id.
VARIANTS: dict[str, dict[str, Any]] = {
    "gpt": {"arch": "gpt"},
    "gpt-bigram-smear-xsa-lnscale": {"arch": "gpt", "bigram_vocab_size": 37, "bigram_dim": 16,
                                     "smear_gate": True, "xsa": "all", "ln_scale": True},
    "crawler-flow": {"arch": "crawler"},
    "crawler-fixed-offsets": {"arch": "crawler", "inst_dim": 0},
    "crawler-one-loop": {"arch": "crawler", "crawler_loops": 1},
    "crawler-no-flat-layers": {"arch": "crawler", "num_flat_layers": 0},
    "crawler-2shared-3flat": {"arch": "crawler", "num_crawler_layers": 2, "num_flat_layers": 3},
    "crawler-deltanet": {"arch": "crawler", "delta_net_heads": 2, "delta_net_chunk": 8},
    "crawler-everything": {"arch": "crawler", "delta_net_heads": 2, "delta_net_chunk": 5,
                           "bigram_vocab_size": 37, "bigram_dim": 16, "smear_gate": True, "xsa": "crawler",
                           "ln_scale": True, "rope_dims": 4, "rope_ntk_above": 8},
    # The seed's sweep trainers' layouts (reference/seed_facts.md section 9).
    "fractal-shared-stack": {"arch": "crawler", "num_flat_layers": 0, "num_crawler_layers": 2, "crawler_loops": 2,
                             "inst_dim": 0, "loop_offsets": "learned_n_row", "resid_mix": False, "q_gain": False,
                             "weight_init": "normal"},
    "micro-crawler-at-end-trigram": {"arch": "crawler", "crawler_position": "end", "num_flat_layers": 3,
                                     "inst_dim": 0, "loop_offsets": "learned_n_row", "trigram_vocab_size": 37,
                                     "trigram_dim": 16, "resid_mix": False, "q_gain": False},
    "flat-control-no-crawler": {"arch": "crawler", "crawler_position": "end", "num_flat_layers": 3,
                                "num_crawler_layers": 0},
    "deliberate-value-embed": {"arch": "crawler", "crawler_mode": "deliberate", "crawler_loops": 2, "inst_dim": 0,
                               "loop_offsets": "learned", "num_crawler_layers": 2, "value_embed_dim": 8,
                               "trigram_vocab_size": 37, "trigram_dim": 16, "xsa": "crawler", "smear_gate": True},
    # The seed-exact switches (docs/fidelity.md): its DeltaNet layer, a bf16 model, bf16 logits and rotary.
    "crawler-seed-deltanet": {"arch": "crawler", "delta_net_heads": 2, "delta_net_chunk": 8,
                              "delta_net_conv_silu": False, "delta_net_head_norm": False,
                              "delta_net_out_norm": True, "delta_net_o_init": "orthogonal"},
    "crawler-seed-bf16": {"arch": "crawler", "param_dtype": "bf16", "softcap_dtype": "activation",
                          "rope_table_dtype": "bf16", "bigram_vocab_size": 37, "bigram_dim": 16},
}


@pytest.fixture
def tiny_cfg() -> Callable[..., ModelConfig]:
    """tiny_cfg(**overrides) -> a ModelConfig a few thousand parameters in size."""

    def make(**overrides: Any) -> ModelConfig:
        return ModelConfig(**{**TINY, **overrides})

    return make


@pytest.fixture
def perturb() -> Callable[[nn.Module, int], nn.Module]:
    """Add noise to every parameter, so zero-initialized projections cannot hide a path (a model whose
    attention output projection is zero would pass a causality test whatever its attention did)."""

    @torch.no_grad()
    def apply(model: nn.Module, seed: int = 0) -> nn.Module:
        g = torch.Generator().manual_seed(seed)
        for p in model.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=g))
        return model

    return apply


@pytest.fixture
def rel_err() -> Callable[[torch.Tensor, torch.Tensor], float]:
    """Relative RMS error ||a - b|| / ||b|| (flash-linear-attention's comparison)."""

    def err(a: torch.Tensor, b: torch.Tensor) -> float:
        a, b = a.detach().double(), b.detach().double()
        return float((a - b).norm() / b.norm().clamp_min(1e-30))

    return err


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test that takes `model_variant` runs once per entry of VARIANTS (the overrides dict), by name; one that
    takes `reference_variant` once per fp32 entry and per entry of its module's EXTRA table."""
    if "model_variant" in metafunc.fixturenames:
        metafunc.parametrize("model_variant", list(VARIANTS.values()), ids=list(VARIANTS))
    if "reference_variant" in metafunc.fixturenames:
        chosen = {name: v for name, v in VARIANTS.items() if v.get("param_dtype", "fp32") == "fp32"}
        chosen.update(getattr(metafunc.module, "EXTRA", {}))
        metafunc.parametrize("reference_variant", list(chosen.values()), ids=list(chosen))
