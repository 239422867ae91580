"""The small layers do what the seed's formulas say."""

from __future__ import annotations

import torch

from clowncar.model.layers import (
    BigramHashEmbedding,
    SmearGate,
    apply_rotary,
    exclude_self_value,
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
