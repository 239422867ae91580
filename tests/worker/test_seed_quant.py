"""The seed's quantizer, switch by switch (docs/fidelity.md): each one changes exactly what it names."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from clowncar.config import QuantConfig, TrialConfig
from clowncar.worker.artifact import export_artifact, read_artifact
from clowncar.worker.qscale import (
    SCALE_PERCENTILES,
    SEED_INT8_CLIP_Q,
    Rounding,
    quantize_int8_baseline,
    quantize_rtn,
    search_row_scales,
    sorted_quantile,
    torch_row_quantile,
)
from clowncar.worker.quant import classify, gptq_columns, gptq_quantize, quantize_model, quantize_tensor

SEED = Rounding(floor=True, quantile="torch", fp32_scale=True, per_tensor=True)


def small_and_normal_rows() -> torch.Tensor:
    """Row 0: weights of at most 0.01 (a typical small row); row 1: weights of order 1."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(2, 64, generator=g)
    w[0] = w[0] / w[0].abs().max() * 0.01
    return w


# -- scale floors ---------------------------------------------------------------------------------------------

def test_int8_floor_puts_a_small_weight_row_at_one_over_127() -> None:
    w = small_and_normal_rows()
    q_ours, s_ours = quantize_int8_baseline(w)
    q_seed, s_seed = quantize_int8_baseline(w, Rounding(floor=True))
    assert s_seed[0] == torch.tensor(1 / 127, dtype=torch.float16)
    assert s_ours[0] < s_seed[0]  # ours: the row's own clip / 127, about 0.01 / 127
    assert set(q_seed[0].tolist()) <= {-1, 0, 1}  # the floor leaves this row three levels
    assert q_ours[0].abs().max() == 127
    assert torch.equal(s_seed[1], s_ours[1]) and torch.equal(q_seed[1], q_ours[1])  # a large row: no floor


def test_int6_clip_search_and_gptq_floor_small_rows_at_one_over_31() -> None:
    w = small_and_normal_rows()
    stored, used = search_row_scales(w, 31, Rounding(floor=True))
    assert stored[0] == torch.tensor(1 / 31, dtype=torch.float16) and torch.equal(used, stored.float())
    ours, _ = search_row_scales(w, 31)
    assert ours[0] < stored[0] and torch.equal(ours[1], stored[1])
    _, s_gptq, _ = gptq_quantize(w, torch.eye(64), "int6", rnd=Rounding(floor=True))
    assert s_gptq[0] == torch.tensor(1 / 31, dtype=torch.float16)


def test_a_vector_gets_no_floor_as_in_the_seeds_per_tensor_int8() -> None:
    v = torch.linspace(-0.01, 0.01, 100)
    _, s = quantize_int8_baseline(v, Rounding(floor=True))
    assert s[0] < 1 / 127


# -- GPTQ feedback ------------------------------------------------------------------------------------------------

# H^-1 = M with upper Cholesky factor U (M = U^T U), both written out so the updates can be done by hand.
U = torch.tensor([[2.0, 1.0, 1.0], [0.0, 2.0, 1.0], [0.0, 0.0, 2.0]])
M = torch.tensor([[4.0, 2.0, 2.0], [2.0, 5.0, 3.0], [2.0, 3.0, 6.0]])


@pytest.mark.parametrize("block_size", [1, 2, 3])
def test_gptq_variants_differ_exactly_where_the_feedback_rule_differs(block_size: int) -> None:
    """Scale 1, row w = (0.4, 1.6, 0.92).
    Column 0 rounds to 0, residual 0.4. Cholesky: err 0.4/U00 = 0.2, columns 1 and 2 lose 0.2 * U0k = 0.2.
    Full inverse: err 0.4/M00 = 0.1, they lose 0.1 * M0k = 0.2: the same first update.
    Column 1: 1.6 - 0.2 = 1.4 rounds to 1, residual 0.4. Cholesky: column 2 loses 0.4/U11 * U12 = 0.2, so
    0.92 - 0.2 - 0.2 = 0.52 rounds to 1. Full inverse: it loses 0.4/M11 * M12 = 0.24, so 0.48 rounds to 0."""
    w = torch.tensor([[0.4, 1.6, 0.92]])
    one = torch.ones(1)
    q_chol = gptq_columns(w.clone(), one, U, 31, block_size)
    q_full = gptq_columns(w.clone(), one, M, 31, block_size)
    assert q_chol.tolist() == [[0, 1, 1]]
    assert q_full.tolist() == [[0, 1, 0]]


def test_gptq_variants_agree_when_only_the_first_column_feeds_back() -> None:
    """w = (0.4, 1.2, 0.92): column 1 becomes 1.2 - 0.2 = 1.0, rounds exactly, feeds nothing forward."""
    w = torch.tensor([[0.4, 1.2, 0.92]])
    one = torch.ones(1)
    assert gptq_columns(w.clone(), one, U, 31, 3).tolist() == gptq_columns(w.clone(), one, M, 31, 3).tolist() \
        == [[0, 1, 1]]


@pytest.mark.parametrize("feedback", ["cholesky", "full_inverse"])
def test_gptq_quantize_feeds_back_through_the_factor_its_switch_names(feedback: str) -> None:
    g = torch.Generator().manual_seed(1)
    w = torch.randn(6, 12, generator=g) * 0.05
    x = torch.randn(200, 12, generator=g) @ torch.randn(12, 12, generator=g)
    h = x.T @ x / 200
    q, scale, fell_back = gptq_quantize(w, h, "int6", block_size=4, damp=0.01, col_order="natural",
                                        feedback=feedback)
    damped = h + torch.eye(12) * 0.01 * h.diagonal().mean()
    inverse = torch.cholesky_inverse(torch.linalg.cholesky(damped))
    factor = torch.linalg.cholesky(inverse, upper=True) if feedback == "cholesky" else inverse
    expected = gptq_columns(w.clone(), scale.float(), factor, 31, 4)
    assert not fell_back and torch.equal(q, expected)
    other = "full_inverse" if feedback == "cholesky" else "cholesky"
    assert not torch.equal(q, gptq_quantize(w, h, "int6", 4, 0.01, "natural", other)[0])


# -- passthrough order: fp16 control tensors ----------------------------------------------------------------------

class WithControls(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.tok_emb = nn.Embedding(64, 32)
        self.fc = nn.Linear(32, 64)
        self.resid_mix = nn.Parameter(torch.rand(2, 32) + 0.1)
        self.attn_scale = nn.Parameter(torch.rand(32) + 0.1)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.fc(self.tok_emb(ids) * self.resid_mix[0] * self.attn_scale)


@pytest.mark.parametrize("order, control", [("control_first", torch.float32), ("size_first", torch.float16)])
def test_small_control_tensors_are_fp16_in_the_artifact_when_size_comes_first(order: str, control: torch.dtype,
                                                                              tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = WithControls()
    cfg = TrialConfig.model_validate({"quant": {"passthrough_max_numel": 1024, "flat_scheme": "int8",
                                                "passthrough_order": order, "zstd_level": 3}})
    export_artifact(model, cfg, None, tmp_path / "a.ptz")
    stored, _ = read_artifact(tmp_path / "a.ptz")
    for name in ("resid_mix", "attn_scale"):
        assert stored.tensors[name].data.dtype == control, name
        assert stored.tensors[name].scheme == ("fp32" if control == torch.float32 else "fp16")
    assert stored.tensors["fc.weight"].scheme == "int8"  # large tensors are unaffected
    big = torch.zeros(2, 40_000)  # above passthrough_max_numel: the control pattern decides, in both orders
    assert classify("resid_mix", big, QuantConfig(passthrough_order=order)) == ("passthrough", "fp32")


# -- plain int6: one clip percentile per tensor ---------------------------------------------------------------------

def test_per_tensor_clip_picks_one_percentile_for_every_row() -> None:
    g = torch.Generator().manual_seed(2)
    w = torch.randn(8, 256, generator=g) * 0.1
    w[0, 0] = 3.0  # one outlier row: per row it wants a clipped scale, the others the max
    _, per_row = quantize_rtn(w, "int6")
    q, per_tensor = quantize_rtn(w, "int6", Rounding(per_tensor=True))
    sorted_abs = w.abs().sort(dim=1).values
    candidates = [(sorted_quantile(sorted_abs, p, "exact") / 31).half() for p in SCALE_PERCENTILES]
    assert any(torch.equal(per_tensor, c) for c in candidates)  # all rows from one percentile
    assert not any(torch.equal(per_row, c) for c in candidates)  # per row they mix percentiles
    assert torch.equal(q, torch.clamp(torch.round(w / per_tensor.float()[:, None]), -31, 31).to(torch.int8))


# -- torch.quantile and the seed's q --------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [48, 512, 1536])
def test_torch_quantile_impl_is_torch_quantile_bit_for_bit(n: int) -> None:
    a = torch.randn(32, n, generator=torch.Generator().manual_seed(n)).abs()
    s = a.sort(dim=1).values
    for q in (*SCALE_PERCENTILES[:-1], SEED_INT8_CLIP_Q):
        assert torch.equal(torch_row_quantile(s, q), torch.quantile(a, q, dim=1)), q
    exact = sorted_quantile(s, 0.9999984, "exact")
    assert not torch.equal(exact, torch.quantile(a, SEED_INT8_CLIP_Q, dim=1))  # so the switch changes clips


def test_int8_with_torch_quantile_clips_at_the_seeds_quantile() -> None:
    w = torch.randn(16, 700, generator=torch.Generator().manual_seed(3))
    q, s = quantize_int8_baseline(w, Rounding(quantile="torch"))
    clip = torch.quantile(w.abs(), 99.99984 / 100, dim=1)
    assert torch.equal(s, (clip / 127).half())
    assert torch.equal(q, torch.clamp(torch.round(torch.clamp(w, -clip[:, None], clip[:, None]) /
                                                  s.float()[:, None]), -127, 127).to(torch.int8))


# -- rounding against the fp32 scale ---------------------------------------------------------------------------------

def test_fp32_scale_rounding_rounds_on_the_fp32_grid_and_stores_fp16() -> None:
    w = torch.randn(64, 300, generator=torch.Generator().manual_seed(4))
    q_ours, s_ours = quantize_int8_baseline(w)
    q_seed, s_seed = quantize_int8_baseline(w, Rounding(fp32_scale=True))
    assert torch.equal(s_ours, s_seed)  # the same stored scales
    clip = sorted_quantile(w.abs().sort(dim=1).values, 0.9999984, "exact")
    clipped = torch.maximum(torch.minimum(w, clip[:, None]), -clip[:, None])
    assert torch.equal(q_seed, torch.clamp(torch.round(clipped / (clip / 127)[:, None]), -127, 127).to(torch.int8))
    assert not torch.equal(q_seed, q_ours)  # some weights sit on the other side of a rounding boundary


def test_the_seed_rounding_switches_all_at_once_still_round_trip_codes_in_range() -> None:
    w = small_and_normal_rows().repeat(8, 4)
    for q, _ in (quantize_int8_baseline(w, SEED), quantize_rtn(w, "int6", SEED)):
        assert q.dtype == torch.int8 and q.abs().max() <= 127


# -- DeltaNet projections -------------------------------------------------------------------------------------------

def test_delta_net_scheme_moves_only_the_deltanet_tensors() -> None:
    big = torch.zeros(64, 64)
    seed = QuantConfig(flat_scheme="gptq_int6", passthrough_max_numel=1024, delta_net_scheme="int8")
    ours = QuantConfig(flat_scheme="gptq_int6", passthrough_max_numel=1024)
    assert classify("delta_net.q_proj.weight", big, seed) == ("flat", "int8")
    assert classify("delta_net.q_proj.weight", big, ours) == ("flat", "gptq_int6")
    assert classify("flat_blocks.0.attn.c_q.weight", big, seed) == ("flat", "gptq_int6")


def test_quantize_model_applies_the_seed_quantizer_from_the_config() -> None:
    torch.manual_seed(0)
    model = WithControls()
    calib = torch.randint(64, (4, 16))
    seed_cfg = QuantConfig(passthrough_max_numel=1024, flat_scheme="gptq_int6", scale_floor=True,
                           gptq_feedback="full_inverse", scale_rounding="fp32", quantile_impl="torch")
    ours = quantize_model(model, QuantConfig(passthrough_max_numel=1024, flat_scheme="gptq_int6"), calib)
    seed = quantize_model(model, seed_cfg, calib)
    fc_w = model.fc.weight.detach()
    assert torch.equal(seed.tensors["fc.weight"].scale, search_row_scales(fc_w, 31, Rounding(
        floor=True, quantile="torch", fp32_scale=True))[0])
    assert not torch.equal(seed.tensors["fc.weight"].q, ours.tensors["fc.weight"].q)


@pytest.mark.parametrize("scheme", ["int8", "int6", "gptq_int6"])
def test_each_scheme_of_a_tensor_rounds_by_the_configs_rule(scheme: str) -> None:
    """The scale floor reaches the int8, plain-rounding and GPTQ paths of quantize_tensor alike."""
    w = small_and_normal_rows()
    cfgs = {rule: QuantConfig(scale_floor=rule == "seed") for rule in ("seed", "ours")}
    scales = {rule: quantize_tensor("fc.weight", w, "flat", scheme, cfg, torch.eye(64))[0].scale
              for rule, cfg in cfgs.items()}
    expected = {"int8": quantize_int8_baseline(w, Rounding(floor=True))[1],
                "int6": quantize_rtn(w, "int6", Rounding(floor=True))[1],
                "gptq_int6": search_row_scales(w, 31, Rounding(floor=True))[0]}[scheme]
    assert torch.equal(scales["seed"], expected) and not torch.equal(scales["ours"], expected)
