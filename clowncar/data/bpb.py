"""Byte accounting for bits per byte, exactly as the Parameter Golf reference counts bytes.

Every token id gets three facts:
- `base_bytes`: UTF-8 length of its piece without a leading "▁" (U+2581); 1 for a byte-fallback piece
  `<0xNN>`; 0 for control, unknown and unused ids (BOS, EOS, PAD) and for ids beyond the tokenizer's vocab;
- `has_leading_space`: the piece starts with "▁";
- `is_boundary`: control/unknown/unused ids and ids beyond the tokenizer's vocab.

A target token `t` that follows `prev` counts `base_bytes[t] + (has_leading_space[t] and not is_boundary[prev])`
bytes. The space costs one byte (not the three bytes of "▁") and is not counted right after a boundary
token such as BOS. That matches SentencePiece's own decoding: `decode` drops the leading space of the first
piece it is given, so the bytes counted over a document's target tokens (the ids after its BOS) equal the
UTF-8 length of `sp.decode(those ids)`. `tests/data/test_bpb.py` proves this property.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import sentencepiece as spm
    import torch

SPACE_MARK = "\u2581"


@dataclass(frozen=True)
class ByteLUTs:
    base_bytes: np.ndarray  # int16 [V]
    has_leading_space: np.ndarray  # bool [V]
    is_boundary: np.ndarray  # bool [V]
    _torch_cache: dict[Any, tuple[Any, Any, Any]] = field(default_factory=dict, compare=False, repr=False)

    @property
    def size(self) -> int:
        return len(self.base_bytes)

    def torch_tables(self, device: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The three tables as torch tensors on `device` (int64, bool, bool), built once per device."""
        import torch

        key = str(device)
        if key not in self._torch_cache:
            self._torch_cache[key] = (
                torch.as_tensor(self.base_bytes.astype(np.int64), device=device),
                torch.as_tensor(self.has_leading_space, device=device),
                torch.as_tensor(self.is_boundary, device=device),
            )
        return self._torch_cache[key]


def build_byte_luts(sp: spm.SentencePieceProcessor, vocab_size: int) -> ByteLUTs:
    """Tables of size `max(sp.vocab_size(), vocab_size)`; ids the tokenizer lacks are boundaries of 0 bytes."""
    sp_vocab = int(sp.vocab_size())
    size = max(sp_vocab, int(vocab_size))
    base_bytes = np.zeros(size, dtype=np.int16)
    has_leading_space = np.zeros(size, dtype=bool)
    is_boundary = np.ones(size, dtype=bool)
    for i in range(sp_vocab):
        if sp.is_control(i) or sp.is_unknown(i) or sp.is_unused(i):
            continue
        is_boundary[i] = False
        if sp.is_byte(i):
            base_bytes[i] = 1
            continue
        piece = sp.id_to_piece(i)
        if piece.startswith(SPACE_MARK):
            has_leading_space[i] = True
            piece = piece[1:]
        base_bytes[i] = len(piece.encode("utf-8"))
    return ByteLUTs(base_bytes, has_leading_space, is_boundary)


def count_target_bytes(prev_ids: torch.Tensor, target_ids: torch.Tensor, luts: ByteLUTs) -> torch.Tensor:
    """Bytes of each target token given the token before it (same shape as the inputs, int64)."""
    import torch

    base, lead, boundary = luts.torch_tables(target_ids.device)
    t = target_ids.long()
    p = prev_ids.long()
    return base[t] + (lead[t] & ~boundary[p]).to(torch.int64)


def count_stream_bytes(tokens: np.ndarray, luts: ByteLUTs, prev: int | None = None) -> int:
    """Bytes of every token of `tokens` as a target (numpy; for summaries over shards).

    `prev` is the token before `tokens[0]`; None treats the first token as following a boundary. Shards
    start every document with BOS, whose own count is 0, so the total over a shard is its BPB byte count.
    """
    t = np.asarray(tokens, dtype=np.int64)
    if t.size == 0:
        return 0
    if int(t.max()) >= luts.size:
        raise ValueError(f"token id {int(t.max())} beyond the byte tables ({luts.size} ids)")
    prev_boundary = np.empty(t.size, dtype=bool)
    prev_boundary[0] = True if prev is None else bool(luts.is_boundary[prev])
    prev_boundary[1:] = luts.is_boundary[t[:-1]]
    lead = luts.has_leading_space[t] & ~prev_boundary
    return int(luts.base_bytes[t].sum(dtype=np.int64) + lead.sum(dtype=np.int64))
