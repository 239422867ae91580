"""Per-row scales and plain rounding (qscale.py), step by step against values worked out by hand and against a
plain reference written here in float64 numpy (one row at a time, the percentile rule as the docs state it)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch

from clowncar.config import QuantConfig
from clowncar.worker.qscale import (
    OURS,
    SCALE_PERCENTILES,
    Rounding,
    as_rows,
    quantize_int8_baseline,
    quantize_rtn,
    round_rows,
    row_quantile,
    row_scales,
    search_row_scales,
    sorted_quantile,
    torch_row_quantile,
)

F16 = torch.float16


# -- the reference ----------------------------------------------------------------------------------------------

def ref_quantile(row: np.ndarray, q: float) -> float:
    """Linear interpolation between the ranks floor(q(n-1)) and the next one (torch.quantile's rule)."""
    s = np.sort(row.astype(np.float64))
    pos = q * (len(s) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return float(s[lo] + (s[hi] - s[lo]) * (pos - lo))


def ref_scale(clip: float, qmax: int) -> float:
    """The fp16 value of clip / qmax; an all-zero row gets 1."""
    s = float(np.float16(clip / qmax))
    return s if s > 0 else 1.0


def ref_codes(row: np.ndarray, scale: float, qmax: int) -> np.ndarray:
    return np.clip(np.round(row.astype(np.float64) / scale), -qmax, qmax)


def torch_quantile(row: np.ndarray, q: float) -> float:
    """torch.quantile itself, on the row in float32 (the seed's rule)."""
    return float(torch.quantile(torch.from_numpy(row.astype(np.float32)), q))


def ref_search(row: np.ndarray, qmax: int, quantile: Callable[[np.ndarray, float], float] = ref_quantile) -> float:
    """The stored scale of the percentile whose rounding has the least squared error (the first on a tie)."""
    best_err, best_scale = math.inf, 0.0
    for pct in (0.999, 0.9995, 0.9999, 0.99999, 1.0):
        scale = ref_scale(quantile(np.abs(row), pct), qmax)
        err = float(((row - ref_codes(row, scale, qmax) * scale) ** 2).sum())
        if err < best_err:
            best_err, best_scale = err, scale
    return best_scale


def spread_rows(rows: int, cols: int, seed: int) -> torch.Tensor:
    """Rows of very different widths: even rows Gaussian with an outlier (clipping pays), odd rows uniform
    (the largest weight is the best clip), so the percentiles really compete."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(rows, cols, generator=g)
    w[1::2] = torch.rand(rows // 2, cols, generator=g) * 2 - 1
    w[0::2, 7] *= 8.0
    return w * torch.logspace(-3, 0, rows)[:, None]


# -- switches and shapes ------------------------------------------------------------------------------------------

def test_each_seed_switch_sets_exactly_its_rounding_field() -> None:
    assert Rounding.of(QuantConfig()) == Rounding() == OURS == Rounding(False, "exact", False, False)
    assert Rounding.of(QuantConfig(scale_floor=True)) == Rounding(floor=True)
    assert Rounding.of(QuantConfig(quantile_impl="torch")) == Rounding(quantile="torch")
    assert Rounding.of(QuantConfig(scale_rounding="fp32")) == Rounding(fp32_scale=True)
    assert Rounding.of(QuantConfig(rtn_clip="tensor")) == Rounding(per_tensor=True)


def test_as_rows_makes_a_vector_one_row_and_folds_the_trailing_dimensions() -> None:
    assert as_rows(torch.tensor(2.0)).tolist() == [[2.0]]
    assert as_rows(torch.arange(4.0)).tolist() == [[0.0, 1.0, 2.0, 3.0]]
    assert as_rows(torch.arange(6.0).reshape(3, 2)).tolist() == [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]
    cube = torch.arange(24, dtype=F16).reshape(2, 3, 4).requires_grad_()
    rows = as_rows(cube)
    assert rows.dtype == torch.float32 and not rows.requires_grad
    assert rows.tolist() == [list(map(float, range(12))), list(map(float, range(12, 24)))]


# -- quantiles ----------------------------------------------------------------------------------------------------

# q -> (row 0, row 1) by hand: row 0 is 0..10, row 1 nine zeros then 10 and 20 (ranks 9 and 10)
QUANTILES_BY_HAND = {0.0: (0.0, 0.0), 0.5: (5.0, 0.0), 0.95: (9.5, 15.0), 0.999: (9.99, 19.9), 1.0: (10.0, 20.0)}


@pytest.mark.parametrize("q", sorted(QUANTILES_BY_HAND))
def test_quantiles_interpolate_between_the_two_neighbouring_ranks(q: float) -> None:
    rows = torch.tensor([[3.0, 10.0, 0.0, 7.0, 1.0, 9.0, 2.0, 8.0, 4.0, 6.0, 5.0],
                         [0.0, 20.0, 0.0, 0.0, 0.0, 0.0, 10.0, 0.0, 0.0, 0.0, 0.0]])
    expected = torch.tensor(QUANTILES_BY_HAND[q])
    s = rows.sort(dim=1).values
    for got in (row_quantile(rows, q), sorted_quantile(s, q, "exact"), sorted_quantile(s, q, "torch"),
                torch_row_quantile(s, q)):
        assert torch.allclose(got, expected, rtol=1e-6, atol=0), (q, got)


def test_the_torch_rule_is_used_only_when_asked_and_below_one() -> None:
    s = torch.rand(4, 1001, generator=torch.Generator().manual_seed(8)).sort(dim=1).values
    q = 0.9999
    assert torch.equal(sorted_quantile(s, q, "torch"), torch_row_quantile(s, q))
    assert torch.equal(sorted_quantile(s, q, "exact"), torch.tensor([ref_quantile(r, q) for r in s.numpy()],
                                                                     dtype=torch.float32))
    assert torch.equal(sorted_quantile(s, 1.0, "torch"), s[:, -1])


def test_the_top_percentile_of_a_row_holding_inf_is_inf_not_nan() -> None:
    """q = 1 is the largest value itself, never an interpolation (inf - inf would make it NaN)."""
    s = torch.tensor([[0.0, 1.0, math.inf], [0.0, 1.0, 2.0]])
    for impl in ("exact", "torch"):
        assert sorted_quantile(s, 1.0, impl).tolist() == [math.inf, 2.0], impl
    assert row_quantile(s, 1.0).tolist() == [math.inf, 2.0]


def test_the_torch_rule_ranks_in_the_rows_own_dtype() -> None:
    """In float64 the rank is float64 too, as torch.quantile computes it (a float32 rank moves the result)."""
    a = torch.rand(3, 1537, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    s = a.sort(dim=1).values
    for q in (0.999, 0.9995, 0.9999, 0.99999, 0.9999984):
        assert torch.equal(torch_row_quantile(s, q), torch.quantile(a, q, dim=1)), q
    q32 = torch.tensor(0.9999984, dtype=torch.float32).double() * 1536
    assert q32 != torch.tensor(0.9999984, dtype=torch.float64) * 1536  # the two ranks differ here


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_the_torch_rule_on_cuda_is_torch_quantile_on_cuda_needs_cuda() -> None:
    """The rank is made on the rows' device (GPTQ quantizes on the GPU): the same bits as torch.quantile there."""
    a = torch.rand(3, 1537, generator=torch.Generator().manual_seed(9), dtype=torch.float64).cuda()
    s = a.sort(dim=1).values
    for q in (0.999, 0.9999984):
        got = torch_row_quantile(s, q)
        assert got.device == a.device and torch.equal(got, torch.quantile(a, q, dim=1)), q


# -- scales and rounding ------------------------------------------------------------------------------------------

def test_row_scales_by_hand() -> None:
    clip = torch.tensor([0.0, 3.1, 62.0, 0.31])  # / 31 = 0, 0.1, 2, 0.01
    fp16 = torch.tensor([1.0, 0.1, 2.0, 0.01], dtype=F16)  # an all-zero row gets scale 1
    stored, used = row_scales(clip, 31)
    assert torch.equal(stored, fp16) and torch.equal(used, fp16.float())
    stored, used = row_scales(clip, 31, Rounding(fp32_scale=True))
    assert torch.equal(stored, fp16)
    assert used[0] == 1.0 and used[2] == 2.0  # zero -> the stored 1; 2 is exact in fp16
    assert abs(float(used[1]) - 0.1) < 1e-8 and used[1] != fp16[1].float()  # fp32, not the fp16 value
    assert abs(float(used[3]) - 0.01) < 1e-9 and used[3] != fp16[3].float()
    stored, used = row_scales(clip, 31, Rounding(floor=True))  # every scale at least 1/31, zero rows too
    assert torch.equal(stored, torch.tensor([1 / 31, 0.1, 2.0, 1 / 31], dtype=F16))
    stored, _ = row_scales(clip, 127, Rounding(floor=True))  # int8's floor is 1/127
    assert torch.equal(stored, torch.tensor([1 / 127, 3.1 / 127, 62 / 127, 1 / 127], dtype=F16))


def test_round_rows_rounds_half_to_even_and_clamps_at_qmax() -> None:
    w = torch.tensor([[0.5, 1.5, 2.5, -0.5, -2.5, 3.4, 40.0, -40.0],
                      [0.2, 0.3, 0.75, -15.6, 15.6, 1.0, 2.0, 3.0]])
    q = round_rows(w, torch.tensor([1.0, 0.5], dtype=F16), 31)
    assert q.dtype == torch.int8
    assert q.tolist() == [[0, 2, 2, 0, -2, 3, 31, -31], [0, 1, 2, -31, 31, 2, 4, 6]]
    assert round_rows(w, torch.tensor([1.0, 0.5], dtype=F16), 15).tolist()[1] == [0, 1, 2, -15, 15, 2, 4, 6]


# -- int8 ---------------------------------------------------------------------------------------------------------

def test_int8_row_by_hand() -> None:
    """|w| tops out twice at 127/64, so the 99.99984th percentile is 127/64 and the scale exactly 1/64."""
    w = torch.tensor([[1.984375, -1.984375, 0.3, -0.7, 0.0, 1.0]])
    q, s = quantize_int8_baseline(w)
    assert s.dtype == F16 and s.tolist() == [1 / 64]
    assert q.tolist() == [[127, -127, 19, -45, 0, 64]]  # 0.3 * 64 = 19.2, -0.7 * 64 = -44.8


def test_an_int8_scale_that_underflows_fp16_still_clamps_the_codes_at_127() -> None:
    """|w| up to 1e-5: clip / 127 = 7.9e-8 is stored as the smallest fp16 subnormal, 2^-24 = 6e-8, on which
    1e-5 would be code 168: it is clamped to 127 (5e-6 -> 83.9 -> 84)."""
    q, s = quantize_int8_baseline(torch.tensor([[1e-5, -1e-5, 5e-6, 0.0]]))
    assert s.tolist() == [2.0**-24] and q.tolist() == [[127, -127, 84, 0]]


def outlier_row() -> torch.Tensor:
    """1,000,001 weights: 999,999 of 0.001, then 0.1 and 0.9. The 99.99984th percentile sits at rank 999998.4:
    0.001 + 0.4 * (0.1 - 0.001) = 0.0406, far below the largest weight."""
    w = torch.full((1, 1_000_001), 0.001)
    w[0, 10], w[0, 20] = 0.1, -0.9
    return w


def test_int8_clips_at_the_99_99984th_percentile() -> None:
    q, s = quantize_int8_baseline(outlier_row())
    assert s.tolist() == [float(np.float16(0.0406 / 127))]
    assert q[0, 20] == -127 and q[0, 10] == 127 and q[0, 0] == round(0.001 / float(s[0]))


def test_with_the_floor_the_clip_still_bounds_the_codes() -> None:
    """The floor makes the scale 1/127, larger than 0.0406 / 127: the clipped outlier becomes
    -0.0406 * 127 = -5.16 -> -5, not -0.9 * 127 = -114."""
    q, s = quantize_int8_baseline(outlier_row(), Rounding(floor=True))
    assert s.tolist() == [float(np.float16(1 / 127))]
    assert q[0, 20] == -5 and q[0, 10] == 5 and q[0, 0] == 0


# -- the clip search ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bits, qmax", [("int6", 31), ("int5", 15)])
def test_the_clip_search_picks_the_reference_scale_for_every_row(bits: str, qmax: int) -> None:
    w = spread_rows(24, 300, seed=qmax)
    expected = [ref_search(r, qmax) for r in w.numpy()]
    stored, used = search_row_scales(w, qmax)
    assert stored.tolist() == expected and torch.equal(used, stored.float())
    at_max = [s == ref_scale(float(np.abs(r).max()), qmax) for s, r in zip(expected, w.numpy(), strict=True)]
    assert any(at_max) and not all(at_max)  # some rows clip, some do not: the search mattered
    q, scale = quantize_rtn(w, bits)
    assert torch.equal(scale, stored)
    assert q.tolist() == [ref_codes(r, s, qmax).astype(int).tolist() for r, s in zip(w.numpy(), expected,
                                                                                         strict=True)]


def test_plain_rounding_searches_and_rounds_on_the_stored_scale_even_under_fp32_rounding() -> None:
    w = torch.randn(64, 64, generator=torch.Generator().manual_seed(0))
    fp32_choice, used = search_row_scales(w, 31, Rounding(fp32_scale=True))  # GPTQ's: errors on the fp32 grid
    assert not torch.equal(used, fp32_choice.float())
    assert not torch.equal(fp32_choice, search_row_scales(w, 31)[0])  # which picks other percentiles here
    expected = [ref_search(r, 31) for r in w.numpy()]
    for rnd in (OURS, Rounding(fp32_scale=True)):
        q, scale = quantize_rtn(w, "int6", rnd)
        assert scale.tolist() == expected
        assert q.tolist() == [ref_codes(r, s, 31).astype(int).tolist() for r, s in zip(w.numpy(), expected,
                                                                                         strict=True)]


def test_on_a_tie_the_first_percentile_wins() -> None:
    """This row's squared error is 0.00152587890625 exactly at both 99.95 and 99.99 (scales 0.07855224609375
    and 0.07861328125): the search keeps the first."""
    w = torch.tensor([[-1.5, -0.9375, -2.4375, 0.75, 0.875, -1.5]])
    assert ref_search(w[0].numpy(), 31) == 0.07855224609375
    assert search_row_scales(w, 31)[0].tolist() == [0.07855224609375]
    assert quantize_rtn(w, "int6", Rounding(per_tensor=True))[1].tolist() == [0.07855224609375]


def test_the_seed_quantile_rule_reaches_the_clip_search() -> None:
    w = torch.randn(64, 1536, generator=torch.Generator().manual_seed(3))
    stored, _ = search_row_scales(w, 31, Rounding(quantile="torch"))
    expected = [ref_search(r, 31, torch_quantile) for r in w.numpy()]
    assert stored.tolist() == expected
    assert expected != [ref_search(r, 31) for r in w.numpy()]  # here the rule changes a row's scale


def test_plain_rounding_applies_the_floor_and_the_quantile_rule_per_row_and_per_tensor() -> None:
    small = torch.full((2, 64), 0.001)
    small[1] = torch.linspace(-1, 1, 64)
    for per_tensor in (False, True):
        _, scale = quantize_rtn(small, "int6", Rounding(floor=True, per_tensor=per_tensor))
        assert scale[0] == torch.tensor(1 / 31, dtype=F16), per_tensor
    w = torch.randn(64, 1536, generator=torch.Generator().manual_seed(3))
    _, per_tensor = quantize_rtn(w, "int6", Rounding(quantile="torch", per_tensor=True))
    candidates = [[ref_scale(torch_quantile(np.abs(r), pct), 31) for r in w.numpy()] for pct in SCALE_PERCENTILES]
    assert per_tensor.tolist() in candidates
    exact = [[ref_scale(ref_quantile(np.abs(r), pct), 31) for r in w.numpy()] for pct in SCALE_PERCENTILES]
    assert per_tensor.tolist() not in exact


def test_the_per_tensor_clip_is_the_percentile_with_the_least_mean_squared_error() -> None:
    w = spread_rows(12, 256, seed=6)
    a = w.numpy()
    errors = []
    for pct in SCALE_PERCENTILES:
        scales = np.array([ref_scale(ref_quantile(np.abs(r), pct), 31) for r in a])
        errors.append(float(((a - ref_codes(a, scales[:, None], 31) * scales[:, None]) ** 2).mean()))
    best = SCALE_PERCENTILES[int(np.argmin(errors))]
    q, scale = quantize_rtn(w, "int6", Rounding(per_tensor=True))
    expected = [ref_scale(ref_quantile(np.abs(r), best), 31) for r in a]
    assert scale.tolist() == expected and scale.dtype == F16
    assert q.tolist() == ref_codes(a, np.array(expected)[:, None], 31).astype(int).tolist()
    assert best != 1.0  # the outliers make a clipped percentile win: the search mattered
