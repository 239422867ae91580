"""Token streams over shards: the training stream (sequential, wraps around) and the validation tokens."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from clowncar.data.shards import read_header, read_shard
from clowncar.errors import DataError


class TokenStream:
    """Reads shards in sorted order and wraps around forever, as the challenge's loader does.

    There is no shuffling: two streams over the same files hand out the same tokens, which is what makes a
    trial reproducible from its config. `take(n)` returns the next `n` tokens as a fresh uint16 array.
    """

    def __init__(self, files: Sequence[str | os.PathLike[str]]) -> None:
        self.files = sorted(Path(f) for f in files)
        if not self.files:
            raise DataError("token stream: no shard files given")
        sizes = [read_header(f).num_tokens for f in self.files]  # validates every header up front
        if sum(sizes) == 0:
            raise DataError(f"token stream: the {len(self.files)} shard(s) hold no tokens")
        self.reset()

    def reset(self) -> None:
        """Back to the first token of the first shard."""
        self._file_idx = 0
        self._tokens = read_shard(self.files[0])
        self._pos = 0

    def _advance(self) -> None:
        self._file_idx = (self._file_idx + 1) % len(self.files)
        self._tokens = read_shard(self.files[self._file_idx])
        self._pos = 0

    def take(self, n: int) -> np.ndarray:
        if n < 0:
            raise ValueError(f"take: n must be >= 0, got {n}")
        out = np.empty(n, dtype=np.uint16)
        filled = 0
        while filled < n:
            avail = len(self._tokens) - self._pos
            if avail <= 0:
                self._advance()
                continue
            k = min(n - filled, avail)
            out[filled:filled + k] = self._tokens[self._pos:self._pos + k]
            filled += k
            self._pos += k
        return out


def load_validation_tokens(files: Sequence[str | os.PathLike[str]], seq_len: int,
                           max_tokens: int = 0) -> np.ndarray:
    """All validation shards concatenated in sorted order, truncated to `((N-1)//seq_len)*seq_len + 1`.

    That length gives whole input/target sequences of `seq_len` (targets are the tokens shifted by one).
    `max_tokens > 0` scores only the first `max_tokens` targets: at most `max_tokens + 1` tokens are read
    before the truncation. When the tokens come from one shard (the challenge's validation split is one) the
    result is a read-only view of its memory map, not a copy: every trial on a node then reads the same pages
    of the page cache, and start-up skips copying the split (about 0.5-2 s for its 62M tokens).
    """
    if seq_len < 1:
        raise DataError(f"validation: seq_len must be >= 1, got {seq_len}")
    paths = sorted(Path(f) for f in files)
    if not paths:
        raise DataError("validation: no validation shards found")
    budget = max_tokens + 1 if max_tokens > 0 else None
    parts: list[np.ndarray] = []
    have = 0
    for p in paths:
        toks = read_shard(p)
        if budget is not None:
            toks = toks[:budget - have]
        parts.append(toks)
        have += len(toks)
        if budget is not None and have >= budget:
            break
    # one shard: a read-only view of its memory map, no copy (the trials of a node share its page-cache pages)
    tokens = parts[0] if len(parts) == 1 else np.concatenate(parts)  # `paths` is not empty, so neither is `parts`
    kept = tokens_kept(len(tokens), seq_len)
    if not kept:
        raise DataError(f"validation: {len(tokens)} tokens in {len(paths)} shard(s) are too few for one "
                        f"sequence of {seq_len}")
    return tokens[:kept]


def tokens_kept(n_tokens: int, seq_len: int) -> int:
    """How many of `n_tokens` validation tokens make whole input/target sequences of `seq_len` (the targets are
    the inputs shifted by one, so one token more than the sequences); 0 when not even one sequence fits."""
    usable = ((n_tokens - 1) // seq_len) * seq_len  # negative for no tokens at all
    return usable + 1 if usable > 0 else 0
