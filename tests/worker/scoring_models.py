"""Models and splits whose scores are known without any window logic, shared by test_evaluate.py and the
processes its two-rank test spawns (which import this file by name: it needs nothing from pytest)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from clowncar.data.bpb import ByteLUTs
from clowncar.worker.evaluate import evaluate_bpb


class Bigram(nn.Module):
    """Logits from the previous token only, so every target's nll is known without any window logic."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.table = nn.Parameter(torch.randn(vocab, vocab))

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.table[input_ids]


def synthetic_split(n_tokens: int = 301) -> tuple[np.ndarray, Any]:
    """Random ids of an 8-token vocabulary with hand-made byte tables (one boundary token, three with a space)."""
    tokens = np.random.default_rng(1).integers(0, 8, size=n_tokens)
    luts = ByteLUTs(np.arange(1, 9, dtype=np.int16), np.array([0, 1, 0, 1, 0, 0, 1, 0], dtype=bool),
                    np.array([1, 0, 0, 0, 0, 0, 0, 0], dtype=bool))
    return tokens, luts


def score_as_rank(rank: int, world_size: int, rendezvous: str, out_dir: str) -> None:
    """One rank of a multi-process eval: the same seeded Bigram scores two splits; rank r writes rank{r}.json."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=world_size)
    try:
        tokens, luts = synthetic_split()
        model = Bigram(8)
        results = {"one_window": evaluate_bpb(model, tokens[:33], luts, 32, 0, 128, rank, world_size),
                   "sliding": evaluate_bpb(model, tokens, luts, 32, 8, 128, rank, world_size)}
        (Path(out_dir) / f"rank{rank}.json").write_text(json.dumps(results))
    finally:
        dist.destroy_process_group()
