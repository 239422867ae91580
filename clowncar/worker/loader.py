"""Training batches: the same tokens per step for a given config, whatever the number of processes.

Each step reads the next `train_batch_tokens + 1` tokens of the train stream (shards in sorted order, no
shuffling, as the reference does) and cuts them into `grad_accum` micro-batches; micro-batch m holds the
`x`/`y` (shift by one) pairs of tokens [m*t, (m+1)*t] with t = train_batch_tokens / grad_accum. Rank r takes
micro-batches r*k .. r*k+k-1 with k = grad_accum / world_size, so the global batch and its order do not depend
on the world size (the reference's per-rank `+1` tokens made them depend on it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from clowncar.config import TrainConfig
from clowncar.data.stream import TokenStream
from clowncar.errors import ConfigError, DataError


class TrainBatches:
    def __init__(self, files: list[Path], train: TrainConfig, rank: int, world_size: int,
                 device: torch.device, vocab_size: int | None = None) -> None:
        if train.grad_accum % world_size:  # bad input before step 1: a rejected trial, exit 2
            raise ConfigError(f"train.grad_accum ({train.grad_accum}) must be divisible by the number of "
                              f"processes ({world_size})")
        self.files, self.device, self.vocab_size = files, device, vocab_size
        self.seq_len = train.train_seq_len
        self.step_tokens = train.train_batch_tokens
        self.micro_tokens = train.train_batch_tokens // train.grad_accum
        self.local = train.grad_accum // world_size
        self.first = rank * self.local
        self.reset()

    def reset(self) -> None:
        """Back to the start of the stream (after the compile warm-up)."""
        self.stream = TokenStream(self.files)

    def next(self) -> list[tuple[Tensor, Tensor]]:
        """This rank's micro-batches of the next step, as (inputs, targets) of shape [B, seq_len]."""
        chunk = np.asarray(self.stream.take(self.step_tokens + 1))
        if self.vocab_size is not None and chunk.size and int(chunk.max()) >= self.vocab_size:
            # An id past the embedding would be an IndexError (CPU) or a device assert (CUDA) inside the model.
            raise DataError(f"train shards: token id {int(chunk.max())} does not fit model.vocab_size "
                            f"({self.vocab_size})")
        out = []
        for m in range(self.first, self.first + self.local):
            span = torch.from_numpy(chunk[m * self.micro_tokens:(m + 1) * self.micro_tokens + 1].astype(np.int64))
            if self.device.type == "cuda":
                span = span.pin_memory().to(self.device, non_blocking=True)
            out.append((span[:-1].view(-1, self.seq_len), span[1:].view(-1, self.seq_len)))
        return out
