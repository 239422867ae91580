"""The small layers do what the seed's formulas say."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from clowncar.model import build_model, layers
from clowncar.model.layers import (
    BigramHashEmbedding,
    SmearGate,
    TrigramHashEmbedding,
    apply_rotary,
    exclude_self_value,
    fake_int6,
    rotary_tables,
)


def test_ntk_rotary_base_at_2048_with_16_dims_is_the_seeds_22082() -> None:
    cos, _ = rotary_tables(2048, 16, 10000.0, 1024, torch.device("cpu"))
    base = 10000.0 * 2 ** (16 / 14)
    assert round(base) == 22082
    slowest = 1.0 / base ** (14 / 16)  # the lowest frequency of 16 rotary dims
    assert torch.allclose(cos[0, 1, 0, -1], torch.tensor(slowest).cos())
    plain, _ = rotary_tables(1024, 16, 10000.0, 1024, torch.device("cpu"))  # not longer than 1024: no scaling
    assert torch.allclose(plain[0, 1, 0, -1], torch.tensor(1.0 / 10000.0 ** (14 / 16)).cos())


def test_partial_rotary_leaves_the_other_dims_alone() -> None:
    x = torch.randn(1, 5, 2, 12)
    cos, sin = rotary_tables(5, 4, 10000.0, 0, torch.device("cpu"))
    y = apply_rotary(x, cos, sin)
    assert torch.equal(y[..., 4:], x[..., 4:])
    assert torch.allclose(y[..., :4].norm(dim=-1), x[..., :4].norm(dim=-1), atol=1e-6)  # a rotation
    assert not torch.allclose(y[:, 1:, :, :4], x[:, 1:, :, :4])


def test_bigram_buckets_follow_the_seed_hash() -> None:
    emb = BigramHashEmbedding(2048, 8, 16)
    ids = emb.bucket_ids(torch.tensor([[5, 7, 1023]]))
    assert ids.tolist() == [[2047, (36313 * 7 ^ 27191 * 5) % 2047, (36313 * 1023 ^ 27191 * 7) % 2047]]


def test_smear_gate_starts_as_the_mean_with_the_previous_token() -> None:
    x = torch.randn(2, 4, 3)
    y = SmearGate(3)(x)
    assert torch.allclose(y[:, 0], 0.5 * x[:, 0])
    assert torch.allclose(y[:, 1:], 0.5 * (x[:, 1:] + x[:, :-1]))


def test_xsa_output_is_orthogonal_to_the_tokens_own_value() -> None:
    y = torch.randn(2, 6, 4, 8)  # 4 query heads
    v = torch.randn(2, 6, 2, 8)  # sharing 2 value heads
    out = exclude_self_value(y, v)
    v_per_head = v.repeat_interleave(2, dim=2)
    assert (out * v_per_head).sum(-1).abs().max() < 1e-5


def test_ntk_scaling_starts_only_above_the_threshold_whatever_it_is() -> None:
    cpu = torch.device("cpu")
    for above in (1, 6):
        at, _ = rotary_tables(above, 8, 100.0, above, cpu)
        plain, _ = rotary_tables(above, 8, 100.0, 0, cpu)
        assert torch.equal(at, plain)  # a sequence exactly at the threshold is not scaled
        longer, _ = rotary_tables(above + 1, 8, 100.0, above, cpu)
        base = 100.0 * ((above + 1) / above) ** (8 / 6)
        want = torch.arange(above + 1.0)[:, None] / base ** (torch.arange(0, 8, 2) / 8.0)
        torch.testing.assert_close(longer[0, :, 0], want.cos(), atol=1e-6, rtol=0)


def test_rotary_runs_in_the_activations_dtype_with_tables_rounded_to_it() -> None:
    x = torch.randn(1, 7, 2, 8).bfloat16()
    cos, sin = rotary_tables(7, 8, 10000.0, 0, torch.device("cpu"))
    y = apply_rotary(x, cos, sin)
    c, s = cos.bfloat16(), sin.bfloat16()
    assert y.dtype == torch.bfloat16
    assert torch.equal(y, torch.cat((x[..., :4] * c + x[..., 4:] * s, x[..., 4:] * c - x[..., :4] * s), dim=-1))


def test_fake_int6_picks_the_nearest_of_63_levels_with_the_outliers_clipped() -> None:
    torch.manual_seed(1)
    w = torch.randn(6, 2000) * torch.tensor([1.0, 1e-3, 5.0, 1e-6, 1.0, 1.0])[:, None]
    w[4, 7], w[4, 9] = 40.0, -40.0  # outliers beyond the 99.95th percentile: clipped to +-31 steps
    w[5] = 0.0
    q = fake_int6(w)
    for i in range(5):
        step = torch.quantile(w[i].abs(), 0.9995) / 31
        inside = w[i].abs() <= 31 * step
        assert (q[i][inside] - w[i][inside]).abs().max() <= step / 2 * (1 + 1e-5)  # nearest level
        levels = torch.round(q[i] / step)
        assert levels.min() == -31 and levels.max() == 31  # both ends reached, never 32
    assert (torch.round(q[4, [7, 9]] / (torch.quantile(w[4].abs(), 0.9995) / 31))).tolist() == [31, -31]
    assert torch.equal(q[5], torch.zeros(2000))  # an all-zero row stays zero, no 0 / 0
    half = fake_int6(w[:2].bfloat16())
    assert half.dtype == torch.bfloat16
    assert torch.equal(half, fake_int6(w[:2].bfloat16().float()).bfloat16())


def fake_flash(*args: object, **kwargs: object) -> torch.Tensor:
    raise AssertionError("flash-attn was called on CPU fp32 tensors")


@pytest.mark.parametrize("backend, picked", [("auto", True), ("flash", True), ("sdpa", False)])
def test_flash_attention_is_looked_up_unless_sdpa_is_asked_for(backend: str, picked: bool,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(layers, "flash_attn_func", lambda: fake_flash)
    attn = layers.CausalSelfAttention(16, 2, 1, 1.5, xsa=False, backend=backend, q_gain=True)
    assert attn.backend == backend and (attn._flash is fake_flash) == picked
    x = torch.randn(1, 5, 16)
    cos, sin = rotary_tables(5, 8, 10000.0, 0, torch.device("cpu"))
    if backend == "flash":  # flash-attn takes bf16/fp16 CUDA tensors only: asked for on CPU, it is an error
        with pytest.raises(RuntimeError, match=r"^attn_backend=flash needs flash-attn and bf16/fp16 CUDA tensors$"):
            attn(x, cos, sin)
    else:
        assert attn(x, cos, sin).shape == (1, 5, 16)  # SDPA ran: the fake was never called


def test_flash_attn_3_is_preferred_to_2_and_neither_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    def module(name: str, fn: object) -> types.ModuleType:
        m = types.ModuleType(name)
        m.flash_attn_func = fn  # type: ignore[attr-defined]
        return m

    def fa3() -> None: ...
    def fa2() -> None: ...

    for present, want in (({"flash_attn_interface": fa3, "flash_attn": fa2}, fa3), ({"flash_attn": fa2}, fa2),
                          ({}, None)):
        for name in ("flash_attn_interface", "flash_attn"):
            monkeypatch.setitem(sys.modules, name, module(name, present[name]) if name in present else None)
        layers.flash_attn_func.cache_clear()
        assert layers.flash_attn_func() is want
    layers.flash_attn_func.cache_clear()


def test_the_q_gain_is_applied_in_the_activation_dtype() -> None:
    """As the seed did: the fp32 gain is rounded to bf16 first, so a gain and its bf16 rounding give one output."""
    torch.manual_seed(0)
    attn = layers.CausalSelfAttention(16, 2, 1, 9.03, xsa=False, backend="sdpa", q_gain=True).bfloat16()
    attn.q_gain.data = torch.full((2,), 9.03)  # a bf16 model keeps its 1-D gains fp32
    with torch.no_grad():
        attn.proj.weight.normal_()
    x = torch.randn(1, 32, 16).bfloat16()
    cos, sin = rotary_tables(32, 8, 10000.0, 0, torch.device("cpu"))
    out = attn(x, cos, sin)
    attn.q_gain.data = attn.q_gain.data.bfloat16().float()  # 9.03 -> 9.0
    assert out.dtype == torch.bfloat16 and torch.equal(out, attn(x, cos, sin))



def test_bf16_tables_count_positions_as_the_seeds_bf16_arange() -> None:
    """The seed built positions with `arange(T, dtype=bf16)`, which truncates where bf16 steps by 32: position 4113
    is 4096 there (rounding to nearest would give 4128). A sequence exactly at the NTK threshold is not scaled, so
    its table stays bf16."""
    cpu = torch.device("cpu")
    cos, sin = rotary_tables(4200, 16, 10000.0, 0, cpu, torch.bfloat16)
    assert torch.equal(cos[0, 4113], cos[0, 4096]) and torch.equal(sin[0, 4113], sin[0, 4096])
    assert not torch.equal(cos[0, 4113], cos[0, 4128])
    at, _ = rotary_tables(64, 16, 10000.0, 64, cpu, torch.bfloat16)
    assert at.dtype == torch.bfloat16


def test_the_models_rotary_tables_take_the_configured_dtype(tiny_cfg: Any) -> None:
    for dtype, want in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
        cos, sin = build_model(tiny_cfg(rope_table_dtype=dtype)).rotary(300, torch.device("cpu"))
        assert cos.dtype == sin.dtype == want


def test_trigram_hash_starts_at_the_third_token() -> None:
    tri = TrigramHashEmbedding(101, 4, 8)
    t = [5, 9, 17]
    assert tri.bucket_ids(torch.tensor([t])).tolist() == [
        [100, (36313 * 9 ^ 27191 * 5) % 100, (36313 * 17 ^ 27191 * 9 ^ 51647 * 5) % 100]]
    assert tri.bucket_ids(torch.tensor([t[:2]])).tolist() == [[100, (36313 * 9 ^ 27191 * 5) % 100]]
