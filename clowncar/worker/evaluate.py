"""Validation loss and bits per byte, exactly as Parameter Golf counts them, with every target scored once.

Targets: with N validation tokens there are M = N - 1 targets; target j is token j+1, predicted from tokens
0..j. A *window* feeds tokens [start, end) and scores the targets [score_from, end), so each scored target
sees at least `end - score_from` ... `end - start` tokens of context.

- Non-overlapping (stride 0 or >= seq_len): windows [kL, kL+L), each scoring all its targets (the last may be
  shorter when M is not a multiple of L; `load_validation_tokens` truncates so that it is).
- Sliding (0 < stride < seq_len): the first window scores all of its L targets; window k >= 1 ends at
  min(L + k*stride, M) and scores only the targets after the previous window's end, so the last window is
  pulled back to end exactly at M instead of scoring the tail again (the seed scored the last 64 tokens
  ~31 times). Every target is scored exactly once, with at least L - stride tokens of context after the first
  window.

Windows are split into contiguous blocks across ranks; each rank runs them in batches; the fp64 sums of NLL,
targets and bytes are all-reduced. Bytes use `clowncar.data.bpb.count_target_bytes` (leading-space byte only
after a non-boundary token), so BPB = sum(nll) / (ln 2 * bytes).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from clowncar.data.bpb import count_target_bytes

BYTE_CHUNK = 1 << 22  # targets per byte-counting call: bounds the int64 temporaries on long splits


@dataclass(frozen=True)
class WindowPlan:
    """Windows as parallel arrays (a full split at stride 64 has ~1M windows: no Python objects per window)."""

    starts: np.ndarray
    ends: np.ndarray
    score_from: np.ndarray

    def __len__(self) -> int:
        return len(self.starts)

    def part(self, rank: int, world_size: int) -> WindowPlan:
        """Rank's contiguous block of windows (sizes differ by at most one)."""
        n = len(self)
        lo, hi = rank * n // world_size, (rank + 1) * n // world_size
        return WindowPlan(self.starts[lo:hi], self.ends[lo:hi], self.score_from[lo:hi])


def plan_windows(num_targets: int, seq_len: int, stride: int) -> WindowPlan:
    """The windows that score each of `num_targets` targets exactly once (see the module docstring)."""
    if num_targets < 1 or seq_len < 1:
        raise ValueError(f"need at least one target and seq_len >= 1 (got {num_targets}, {seq_len})")
    m, length = num_targets, seq_len
    if stride <= 0 or stride >= length:
        starts = np.arange(0, m, length, dtype=np.int64)
        ends = np.minimum(starts + length, m)
        return WindowPlan(starts, ends, starts.copy())
    count = 1 + -(-max(m - length, 0) // stride)  # first window, then one per stride until M is reached
    ends = np.minimum(length + np.arange(count, dtype=np.int64) * stride, m)
    starts = np.maximum(ends - length, 0)
    score_from = np.concatenate([[0], ends[:-1]]).astype(np.int64)
    return WindowPlan(starts, ends, score_from)


def autocast(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on GPU (the model returns fp32 logits and losses either way); plain fp32 on CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _as_token_tensor(tokens: Any) -> torch.Tensor:
    if isinstance(tokens, torch.Tensor):
        return tokens.to(torch.int64)
    return torch.from_numpy(np.asarray(tokens).astype(np.int64))


def _count_bytes(tokens: torch.Tensor, lo: int, hi: int, luts: Any) -> int:
    """Bytes of targets lo..hi-1 (target j = token j+1, its predecessor token j)."""
    total = 0
    for a in range(lo, hi, BYTE_CHUNK):
        b = min(a + BYTE_CHUNK, hi)
        total += int(count_target_bytes(tokens[a:b], tokens[a + 1:b + 1], luts).sum())
    return total


def _batches(plan: WindowPlan, per_batch: int) -> list[tuple[int, int]]:
    """[lo, hi) index ranges of windows that share one length, at most `per_batch` each."""
    lengths = plan.ends - plan.starts
    out: list[tuple[int, int]] = []
    lo = 0
    while lo < len(plan):
        hi = min(lo + per_batch, len(plan))
        same = np.nonzero(lengths[lo:hi] != lengths[lo])[0]
        if len(same):
            hi = lo + int(same[0])
        out.append((lo, hi))
        lo = hi
    return out


def evaluate_bpb(model: nn.Module, val_tokens: Any, luts: Any, seq_len: int, stride: int,
                 batch_tokens: int, rank: int = 0, world_size: int = 1,
                 device: torch.device | str = "cpu") -> dict[str, float | int]:
    """Score every validation target once with `model` (any module mapping [B, T] ids to [B, T, V] logits).

    Returns val_loss (mean nll in nats), val_bpb, tokens_scored, bytes_scored, summed over all ranks.
    `batch_tokens` is the tokens per forward pass summed over ranks."""
    with torch.no_grad():  # not a decorator: mutation testing (mutmut) skips decorated functions
        device = torch.device(device)
        if world_size > 1 and not (dist.is_available() and dist.is_initialized()):
            raise ValueError("evaluate_bpb with world_size > 1 needs an initialized process group")
        tokens = _as_token_tensor(val_tokens)
        plan = plan_windows(len(tokens) - 1, seq_len, stride).part(rank, world_size)
        on_device = tokens.to(device)
        per_batch = max(1, batch_tokens // (seq_len * world_size))
        amp = autocast(device)

        nll_sum = torch.zeros((), dtype=torch.float64, device=device)
        scored = 0
        was_training = model.training
        model.eval()
        try:
            for lo, hi in _batches(plan, per_batch):
                starts = torch.from_numpy(plan.starts[lo:hi]).to(device)
                length = int(plan.ends[lo] - plan.starts[lo])
                idx = starts[:, None] + torch.arange(length, device=device)
                x, y = on_device[idx], on_device[idx + 1]
                with amp:
                    logits = model(x)
                nll = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1),
                                      reduction="none").view_as(y)
                first = torch.from_numpy(plan.score_from[lo:hi] - plan.starts[lo:hi]).to(device)
                mask = torch.arange(length, device=device)[None, :] >= first[:, None]
                nll_sum += (nll.double() * mask).sum()  # no boolean indexing: it would sync every batch
                scored += int((plan.ends[lo:hi] - plan.score_from[lo:hi]).sum())
        finally:
            model.train(was_training)

        n_bytes = _count_bytes(tokens, int(plan.score_from[0]), int(plan.ends[-1]), luts) if len(plan) else 0
        totals = torch.tensor([nll_sum.item(), float(scored), float(n_bytes)], dtype=torch.float64, device=device)
        if world_size > 1:
            dist.all_reduce(totals, op=dist.ReduceOp.SUM)
        total_nll, total_tokens, total_bytes = totals.tolist()
        return {
            "val_loss": total_nll / total_tokens,
            "val_bpb": total_nll / (math.log(2) * total_bytes),
            "tokens_scored": int(total_tokens),
            "bytes_scored": int(total_bytes),
        }
