"""Every tensor of a freshly built model starts as its architecture says (reference/seed_facts.md sections 4
and 5): a table per model names each tensor's rule, and the test fails on a tensor the table does not name.

The crawler's rules (`weight_init: auto`): the tied embedding N(0, tied_embed_init_std); output projections
zero; matrices with both sides >= 64 orthogonal, those named `.proj` scaled by 1 / sqrt(2 x layers); smaller
matrices PyTorch's default U(+-1/sqrt(fan_in)); flow instructions N(0, 0.01) down and zero up. The GPT keeps
PyTorch's default for every matrix but the zeroed outputs. `weight_init: normal` draws q, k, v and the MLP
input from N(0, 0.02)."""

from __future__ import annotations

import math
from collections.abc import Callable
from fnmatch import fnmatch
from typing import Any

import pytest
import torch
from torch import Tensor

from clowncar.config_model import ModelConfig
from clowncar.model import build_model
from clowncar.model.crawler import drawn_loop_offsets, fixed_loop_offsets

Rule = Callable[[Tensor], None]


def zero(t: Tensor) -> None:
    assert not t.any()


def const(value: float) -> Rule:
    def check(t: Tensor) -> None:
        assert torch.equal(t, torch.full_like(t, value))
    return check


def rows(*values: float) -> Rule:
    def check(t: Tensor) -> None:
        assert torch.equal(t, torch.stack([torch.full_like(t[0], v) for v in values]))
    return check


def normal(std: float) -> Rule:
    def check(t: Tensor) -> None:
        n = t.numel()  # the sample sd of n normals is within 5 standard errors of std
        assert abs(t.std().item() - std) < 5 * std / math.sqrt(2 * n), (t.std().item(), std)
        assert abs(t.mean().item()) < 5 * std / math.sqrt(n)
    return check


def orthogonal(scale: float = 1.0) -> Rule:
    def check(t: Tensor) -> None:
        short = t if t.size(0) <= t.size(1) else t.T
        torch.testing.assert_close(short @ short.T, scale ** 2 * torch.eye(short.size(0)), atol=1e-5, rtol=0)
    return check


def default_linear(t: Tensor) -> None:
    """nn.Linear's own init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), so sd bound / sqrt(3)."""
    bound = 1 / math.sqrt(t.size(1))
    assert t.abs().max().item() <= bound
    sd = bound / math.sqrt(3)
    assert abs(t.std().item() - sd) < 0.1 * sd


def check_table(model: torch.nn.Module, table: dict[str, Rule]) -> None:
    """Each parameter against the longest pattern that matches its name (the most specific)."""
    for name, p in model.named_parameters():
        patterns = [pattern for pattern in table if fnmatch(name, pattern)]
        assert patterns, f"{name} has no rule in the table"
        try:
            table[max(patterns, key=len)](p.detach())
        except AssertionError as err:
            raise AssertionError(f"{name}: {err}") from err


BLOCK = {  # what every block starts with, whatever the model
    "*.attn.proj.weight": zero, "*.mlp.proj.weight": zero, "*.attn_scale": const(1.0), "*.mlp_scale": const(1.0),
    "*.resid_mix": rows(1.0, 0.0),
}

# 128 wide, heads of 64 (q 128x128, k/v 64x128, MLP 256x128 and 512x128): every block matrix is orthogonal.
CRAWLER = {"vocab_size": 96, "model_dim": 128, "num_heads": 2, "num_kv_heads": 1, "num_flat_layers": 3,
           "num_crawler_layers": 2, "crawler_loops": 3, "inst_dim": 16, "mlp_mult": 2.0, "crawler_mlp_mult": 4.0,
           "qk_gain_init": 1.25, "tied_embed_init_std": 0.02, "bigram_vocab_size": 40, "bigram_dim": 64,
           "smear_gate": True, "value_embed_dim": 64, "trigram_vocab_size": 30, "trigram_dim": 8}


def test_crawler_tensors_start_as_the_seed_built_them() -> None:
    torch.manual_seed(0)
    layers = 3 + 2
    check_table(build_model(ModelConfig(**CRAWLER)), {
        **BLOCK, "*.q_gain": const(1.25), "*.weight": orthogonal(),
        "tok_emb.weight": normal(0.02), "skip_weights": const(1.0), "smear.gate": zero,
        "loop_inst_proj.weight": normal(0.01), "loop_inst_up.*": zero,
        "bigram.embed.weight": zero, "bigram.scale": const(0.05), "bigram.proj.weight": orthogonal(
            1 / math.sqrt(2 * layers)),
        # 8 wide: below the orthogonal threshold, so PyTorch's default, unscaled, as the seed left it
        "trigram.embed.weight": zero, "trigram.scale": const(0.05), "trigram.proj.weight": default_linear,
        "value_embed.embed.weight": normal(0.01), "value_embed.scale": const(0.1),
        "value_embed.proj.weight": orthogonal(1 / math.sqrt(2 * layers)), "value_embed_scales": const(1.0),
    })


def test_deltanet_and_deliberation_tensors_start_as_documented() -> None:
    torch.manual_seed(0)
    cfg = ModelConfig(**{**CRAWLER, "num_crawler_layers": 1, "crawler_loops": 2, "inst_dim": 0,
                         "loop_offsets": "learned", "crawler_mode": "deliberate", "delta_net_heads": 2,
                         "bigram_vocab_size": 0, "trigram_vocab_size": 0, "value_embed_dim": 0, "smear_gate": False})
    model = build_model(cfg)
    check_table(model, {
        **BLOCK, "*.q_gain": const(1.25), "*.weight": orthogonal(), "tok_emb.weight": normal(0.02),
        "skip_weights": const(1.0), "loop_pos": orthogonal(0.01),
        "delta_net.o_proj.weight": zero, "delta_net.b_proj.*": lambda t: None,  # PyTorch's default (2 x 128)
        "delta_net.*_conv.weight": lambda t: None,  # Conv1d's default
        "deliberation.consensus_ref": zero, "deliberation.delib_scale": zero,
    })
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters() if n.startswith(("deliberation.", "loop_pos"))}
    assert shapes == {"deliberation.delib_gate.weight": (128, 256), "deliberation.consensus_ref": (1, 1, 128),
                      "deliberation.delib_scale": (), "loop_pos": (2, 128)}
    bound = 1 / math.sqrt(128)
    assert model.delta_net.b_proj.weight.abs().max() <= bound and model.delta_net.b_proj.bias.abs().max() <= bound
    assert model.delta_net.b_proj.weight.std() > bound / 3


def test_gpt_keeps_pytorch_defaults_but_zeroes_its_outputs() -> None:
    torch.manual_seed(0)
    cfg = ModelConfig(arch="gpt", vocab_size=96, model_dim=128, num_heads=2, num_kv_heads=1, num_layers=5,
                      qk_gain_init=1.5, tied_embed_init_std=0.005)
    check_table(build_model(cfg), {**BLOCK, "*.q_gain": const(1.5), "*.weight": default_linear,
                                   "tok_emb.weight": normal(0.005), "skip_weights": const(1.0)})


@pytest.mark.parametrize("arch", ["gpt", "crawler"])
def test_normal_init_draws_qkv_and_mlp_input_from_0_02(arch: str) -> None:
    torch.manual_seed(0)
    cfg = ModelConfig(**{**CRAWLER, "arch": arch, "num_layers": 3, "weight_init": "normal", "inst_dim": 0,
                         "crawler_loops": 1, "bigram_vocab_size": 0, "trigram_vocab_size": 0,
                         "value_embed_dim": 0, "smear_gate": False})
    check_table(build_model(cfg), {
        **BLOCK, "*.q_gain": const(1.25), "tok_emb.weight": normal(0.02), "skip_weights": const(1.0),
        "*.attn.c_?.weight": normal(0.02), "*.mlp.fc.weight": normal(0.02)})


def test_small_crawler_matrices_keep_the_default_init(tiny_cfg: Any) -> None:
    torch.manual_seed(0)
    model = build_model(tiny_cfg(arch="crawler"))  # 32 wide: no matrix reaches 64 on both sides
    check_table(model, {**BLOCK, "*.q_gain": const(1.5), "*.weight": default_linear,
                        "tok_emb.weight": normal(0.005), "skip_weights": const(1.0),
                        "loop_inst_proj.weight": normal(0.01), "loop_inst_up.*": zero})


def test_fixed_offsets_are_the_same_orthogonal_rows_whatever_the_seed() -> None:
    a = fixed_loop_offsets(3, 40)
    torch.manual_seed(123)
    b = fixed_loop_offsets(3, 40)
    assert torch.equal(a, b) and a.shape == (3, 40)
    orthogonal(0.01)(a)
    torch.manual_seed(0)
    model = build_model(ModelConfig(**{**CRAWLER, "inst_dim": 0}))
    assert torch.equal(model.loop_pos, fixed_loop_offsets(3, 128))
    assert "loop_pos" not in model.state_dict()  # derived, so never stored in a checkpoint or artifact
    assert fixed_loop_offsets(1, 8).shape == (1, 8)


def test_fixed_offsets_are_pinned_because_no_artifact_stores_them() -> None:
    """A model loaded from an artifact rebuilds its fixed offsets: a changed generator seed or draw would make
    every stored crawler of this kind compute another function, silently."""
    want = torch.tensor([[-0.00327806, -0.00709094, 0.00488996, -0.00388088],
                         [0.00629228, -0.00525262, -0.00523859, -0.00231827]])
    torch.testing.assert_close(fixed_loop_offsets(2, 4), want, atol=2e-8, rtol=0)


def test_drawn_offsets_follow_the_trial_seed() -> None:
    torch.manual_seed(5)
    a = drawn_loop_offsets(4, 32)
    torch.manual_seed(5)
    b = drawn_loop_offsets(4, 32)
    torch.manual_seed(6)
    c = drawn_loop_offsets(4, 32)
    assert torch.equal(a, b) and not torch.equal(a, c) and a.shape == (4, 32)
    orthogonal(0.01)(a)
    torch.manual_seed(0)
    cfg = ModelConfig(**{**CRAWLER, "inst_dim": 0, "loop_offsets": "learned_n_row"})
    model = build_model(cfg)
    assert model.loop_pos.shape == (4, 128) and model.loop_pos.requires_grad  # one row more, for the N-step
    orthogonal(0.01)(model.loop_pos.detach())


@pytest.mark.parametrize("init, rule", [("zero", zero), ("orthogonal", orthogonal())])
def test_deltanet_o_proj_is_zero_or_the_seeds_unscaled_orthogonal(init: str, rule: Rule) -> None:
    torch.manual_seed(0)
    cfg = ModelConfig(**{**CRAWLER, "delta_net_heads": 2, "delta_net_o_init": init})
    rule(build_model(cfg).delta_net.o_proj.weight.detach())


def test_unused_value_embedding_starts_as_the_seeds() -> None:
    cfg = ModelConfig(**{**CRAWLER, "unused_value_embed_dim": 64, "num_kv_heads": 2})  # kv 128: proj 128x64
    model = build_model(cfg)
    layers = 3 + 2
    normal(0.01)(model.ve_shared.embed.weight.detach())
    orthogonal(1 / math.sqrt(2 * layers))(model.ve_shared.proj.weight.detach())
    assert model.ve_shared.scale.item() == pytest.approx(0.1)
    assert [t.tolist() for t in model.ve_layer_scales] == [[1.0], [1.0]]
    small = build_model(ModelConfig(**{**CRAWLER, "unused_value_embed_dim": 32}))  # 32 -> 64: too small
    zero(small.ve_shared.proj.weight.detach())
    same = build_model(ModelConfig(**{**CRAWLER, "unused_value_embed_dim": 64}))  # 64 = kv width: no proj
    assert same.ve_shared.proj is None


@pytest.mark.parametrize("arch", ["gpt", "crawler"])
def test_every_attention_gets_the_configured_backend(arch: str, tiny_cfg: Any) -> None:
    for backend in ("sdpa", "flash", "auto"):
        model = build_model(tiny_cfg(arch=arch, attn_backend=backend))
        found = [m.backend for m in model.modules() if hasattr(m, "c_q")]
        assert len(found) == 3 and set(found) == {backend}  # 3 blocks in the tiny GPT, 2 flat + 1 shared


def test_a_zero_trigram_projection_stays_zero_even_where_the_crawler_makes_matrices_orthogonal() -> None:
    torch.manual_seed(0)
    cfg = ModelConfig(**{**CRAWLER, "trigram_dim": 64, "trigram_zero_init": True})  # proj 128 x 64: orthogonal size
    zero(build_model(cfg).trigram.proj.weight.detach())
    orthogonal(1 / math.sqrt(2 * 5))(build_model(cfg.model_copy(update={"trigram_zero_init": False}))
                                     .trigram.proj.weight.detach())
