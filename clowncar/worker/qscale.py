"""Per-row scales and plain rounding: the int8 baseline scheme, the int6/int5 clip search, and the seed's
variants of each (`Rounding`, from the `quant.*` seed switches; docs/fidelity.md).

A scale is chosen in fp32 from a clip value (a quantile of |w| per row), stored in fp16, and (by default) the
stored fp16 value is also the one the weights are rounded against, so that dequantization reproduces exactly
the grid the codes were chosen on. The seed differed in four ways, each a switch:
- `scale_floor`: every per-row scale is at least 1/qmax (1/127, 1/31), also inside the clip search. A row
  whose weights are all below 1 then gets a step of at least 0.0079 (int8) or 0.032 (int6), which crushes the
  small weights of most rows; we only replace a zero scale by 1 so that all-zero rows stay exact.
- `quantile_impl: torch`: torch.quantile's arithmetic (the rank q(n-1) in the tensor's float32, then
  `torch.lerp`) and the seed's int8 q = 99.99984/100, instead of the rank in float64; the clip values differ
  in the last bits. Implemented here without torch.quantile's input-size limit.
- `scale_rounding: fp32`: int8 and GPTQ round against the fp32 scale and store its fp16 rounding, so the
  dequantized grid is not quite the one the codes were chosen on (the seed's plain int6 used fp16 already).
- `rtn_clip: tensor`: plain int6/int5 picks one clip percentile for the whole tensor, by mean squared error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor

QMAX = {"int8": 127, "int6": 31, "int5": 15}
INT8_CLIP_Q = 0.9999984
SEED_INT8_CLIP_Q = 99.99984 / 100.0  # the seed's expression: one ulp above 0.9999984
SCALE_PERCENTILES = (0.999, 0.9995, 0.9999, 0.99999, 1.0)


@dataclass(frozen=True)
class Rounding:
    """How scales are chosen and used; the defaults are ours, the other values the seed's."""

    floor: bool = False
    quantile: str = "exact"  # exact | torch
    fp32_scale: bool = False
    per_tensor: bool = False

    @classmethod
    def of(cls, qcfg: Any) -> Rounding:
        return cls(floor=qcfg.scale_floor, quantile=qcfg.quantile_impl, fp32_scale=qcfg.scale_rounding == "fp32",
                   per_tensor=qcfg.rtn_clip == "tensor")


OURS = Rounding()


def as_rows(w: Tensor) -> Tensor:
    """View any tensor as [rows, cols] in fp32 (a vector is one row)."""
    w = w.detach().float()
    return w.reshape(1, -1) if w.ndim < 2 else w.reshape(w.shape[0], -1)


# -- quantiles --------------------------------------------------------------------------------------------------

def row_quantile(a: Tensor, q: float) -> Tensor:
    """Per-row quantile with linear interpolation (torch.quantile's rule), without its size limit."""
    return a.amax(dim=1) if q >= 1.0 else _sorted_quantile(a.sort(dim=1).values, q)


def _sorted_quantile(s: Tensor, q: float) -> Tensor:
    if q >= 1.0:
        return s[:, -1]
    pos = q * (s.shape[1] - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, s.shape[1] - 1)
    return s[:, lo] + (s[:, hi] - s[:, lo]) * (pos - lo)


def torch_row_quantile(s: Tensor, q: float) -> Tensor:
    """torch.quantile(x, q, dim=1) of rows already sorted ascending, bit for bit: the rank is computed in the
    tensor's dtype and the two neighbours are blended with torch.lerp."""
    rank = torch.tensor(q, dtype=s.dtype, device=s.device) * (s.shape[1] - 1)
    lo, hi = rank.long(), rank.ceil().long()
    return torch.lerp(s[:, lo], s[:, hi], rank - lo)


def sorted_quantile(s: Tensor, q: float, impl: str) -> Tensor:
    return torch_row_quantile(s, q) if impl == "torch" and q < 1.0 else _sorted_quantile(s, q)


# -- scales and rounding ------------------------------------------------------------------------------------------

def row_scales(clip: Tensor, qmax: int, rnd: Rounding = OURS) -> tuple[Tensor, Tensor]:
    """(stored fp16 scales, fp32 scales to round against) from per-row clip values."""
    s32 = clip / qmax
    if rnd.floor:
        s32 = s32.clamp_min(1.0 / qmax)
    stored = s32.to(torch.float16)
    stored = torch.where(stored > 0, stored, torch.ones_like(stored))  # an all-zero row stays exactly zero
    used = torch.where(s32 > 0, s32, stored.float()) if rnd.fp32_scale else stored.float()
    return stored, used


def round_rows(w: Tensor, scale: Tensor, qmax: int) -> Tensor:
    return torch.clamp(torch.round(w / scale.float()[:, None]), -qmax, qmax).to(torch.int8)


def quantize_int8_baseline(w: Tensor, rnd: Rounding = OURS) -> tuple[Tensor, Tensor]:
    """The baseline's per-row int8: 99.99984th-percentile clip, fp16 scales."""
    rnd = rnd if w.ndim >= 2 else replace(rnd, floor=False)  # the seed's per-tensor path had no floor
    w = as_rows(w)
    q_clip = SEED_INT8_CLIP_Q if rnd.quantile == "torch" else INT8_CLIP_Q
    clip = sorted_quantile(w.abs().sort(dim=1).values, q_clip, rnd.quantile)
    stored, used = row_scales(clip, 127, rnd)
    w = torch.maximum(torch.minimum(w, clip[:, None]), -clip[:, None])
    return round_rows(w, used, 127), stored


def search_row_scales(w: Tensor, qmax: int, rnd: Rounding = OURS) -> tuple[Tensor, Tensor]:
    """Per row, the clip percentile whose plain rounding has the least squared error.
    Returns (stored fp16 scales, the scales to round against)."""
    w = as_rows(w)
    sorted_abs = w.abs().sort(dim=1).values  # once, for all five percentiles
    best: tuple[Tensor, Tensor, Tensor] | None = None
    for pct in SCALE_PERCENTILES:
        stored, used = row_scales(sorted_quantile(sorted_abs, pct, rnd.quantile), qmax, rnd)
        err = (w - round_rows(w, used, qmax).float() * used[:, None]).pow(2).sum(dim=1)
        if best is None:
            best = (stored, used, err)
        else:
            better = err < best[2]
            best = tuple(torch.where(better, new, old) for new, old in zip((stored, used, err), best, strict=True))
    assert best is not None
    return best[0], best[1]


def quantize_rtn(w: Tensor, bits: str, rnd: Rounding = OURS) -> tuple[Tensor, Tensor]:
    """Plain rounding at int6/int5 with searched scales: per row, or (`rnd.per_tensor`, the seed) one clip
    percentile for the whole tensor. Rounds against the stored fp16 scales (as the seed's plain int6 did)."""
    qmax = QMAX[bits]
    w = as_rows(w)
    rnd = replace(rnd, fp32_scale=False)
    if not rnd.per_tensor:
        scale, _ = search_row_scales(w, qmax, rnd)
        return round_rows(w, scale, qmax), scale
    sorted_abs = w.abs().sort(dim=1).values
    best: tuple[Tensor, Tensor, float] | None = None
    for pct in SCALE_PERCENTILES:
        scale, _ = row_scales(sorted_quantile(sorted_abs, pct, rnd.quantile), qmax, rnd)
        q = round_rows(w, scale, qmax)
        err = float((w - q.float() * scale.float()[:, None]).pow(2).mean())
        if best is None or err < best[2]:
            best = (q, scale, err)
    assert best is not None
    return best[0], best[1]
