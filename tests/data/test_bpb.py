"""The BPB byte accounting against SentencePiece's own decoding.

Convention (the Parameter Golf reference): a piece's leading "▁" counts one byte, except right after a
boundary token (BOS, EOS, PAD, UNK). SentencePiece's `decode` drops the leading space of the first piece
it is given, so for a document encoded as `[BOS] + ids`, the bytes counted over the targets `ids` (each
with the token before it) equal `len(sp.decode(ids).encode("utf-8"))`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clowncar.data.bpb import build_byte_luts, count_stream_bytes, count_target_bytes
from clowncar.data.tokenizer import BOS_ID, EOS_ID

SPACE = "\u2581"


def _doc_bytes(sp: Any, ids: list[int], luts: Any) -> int:
    prev = torch.tensor([BOS_ID, *ids[:-1]], dtype=torch.long)
    return int(count_target_bytes(prev, torch.tensor(ids, dtype=torch.long), luts).sum())


@pytest.fixture(scope="module")
def sp_luts(tiny_tokenizer: tuple[Path, Any]) -> tuple[Any, Any]:
    _, sp = tiny_tokenizer
    return sp, build_byte_luts(sp, sp.vocab_size())


def test_tables_follow_the_reference_rules(sp_luts: tuple[Any, Any]) -> None:
    sp, luts = sp_luts
    for special in range(4):  # pad, bos, eos, unk
        assert luts.is_boundary[special] and luts.base_bytes[special] == 0
    byte_ids = [i for i in range(sp.vocab_size()) if sp.is_byte(i)]
    assert len(byte_ids) == 256 and all(luts.base_bytes[i] == 1 for i in byte_ids)
    the = sp.piece_to_id(f"{SPACE}the")
    assert the != sp.unk_id()
    assert luts.has_leading_space[the] and luts.base_bytes[the] == 3 and not luts.is_boundary[the]
    lone = sp.piece_to_id(SPACE)
    assert luts.has_leading_space[lone] and luts.base_bytes[lone] == 0


def test_ids_beyond_the_tokenizer_are_zero_byte_boundaries(sp_luts: tuple[Any, Any]) -> None:
    sp, _ = sp_luts
    wide = build_byte_luts(sp, sp.vocab_size() + 64)
    assert wide.size == sp.vocab_size() + 64
    assert wide.is_boundary[sp.vocab_size():].all() and not wide.base_bytes[sp.vocab_size():].any()


def test_leading_space_is_not_counted_after_bos_exactly_as_decode_drops_it(sp_luts: tuple[Any, Any]) -> None:
    sp, luts = sp_luts
    the = sp.piece_to_id(f"{SPACE}the")
    # After BOS: 3 bytes, and sentencepiece decodes the lone first piece without its space.
    assert int(count_target_bytes(torch.tensor([BOS_ID]), torch.tensor([the]), luts)) == 3
    assert sp.decode([the]) == "the"
    # After EOS (another boundary) the same; after an ordinary piece the space costs one byte.
    assert int(count_target_bytes(torch.tensor([EOS_ID]), torch.tensor([the]), luts)) == 3
    a = sp.piece_to_id("a")
    assert int(count_target_bytes(torch.tensor([a]), torch.tensor([the]), luts)) == 4
    assert sp.decode([a, the]) == "a the"
    # The space is one byte, never the three UTF-8 bytes of "▁".
    assert _doc_bytes(sp, [the, the], luts) == len(sp.decode([the, the]).encode()) == 7


def test_torch_and_numpy_counts_agree_over_concatenated_documents(sp_luts: tuple[Any, Any],
                                                                   kjv_verses: list[str]) -> None:
    sp, luts = sp_luts
    docs = [*kjv_verses[:50], "  leading and trailing  ", "emoji 😀 and 漢字 in 2024"]
    stream = np.concatenate([np.array([BOS_ID, *sp.encode(d)], dtype=np.int64) for d in docs])
    expected = sum(len(sp.decode(sp.encode(d)).encode()) for d in docs)
    per_token = count_target_bytes(torch.from_numpy(stream[:-1]), torch.from_numpy(stream[1:]), luts)
    assert per_token.dtype == torch.int64 and int(per_token.sum()) == expected
    assert count_stream_bytes(stream, luts) == expected


_ALPHABET = [*list("abcdefghijklmnopqrstuvwxyz ABCDEFGHIJ 0123456789 .,;:!?'\"-()\n\t"), "é", "ß", "Æ", "ñ", "😀", "🎉", "漢", "字", "中", "ﬁ", "\u3000", "\xa0", "Ω", "€", "\u200b", "\x00"]
_documents = st.builds(
    lambda lead, body, trail: lead + body + trail,
    st.sampled_from(["", " ", "  ", "\t "]),
    st.one_of(st.text(alphabet=st.sampled_from(_ALPHABET), max_size=80),
              st.text(max_size=40)),  # any code points (hypothesis leaves out surrogates)
    st.sampled_from(["", " ", "\n "]),
)


@settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=_documents)
def test_counted_bytes_equal_the_utf8_length_of_the_decoded_document(sp_luts: tuple[Any, Any], doc: str) -> None:
    sp, luts = sp_luts
    ids = sp.encode(doc)
    assert all(i != sp.unk_id() for i in ids)  # byte fallback: nothing is ever unknown
    assert _doc_bytes(sp, ids, luts) == len(sp.decode(ids).encode("utf-8"))
