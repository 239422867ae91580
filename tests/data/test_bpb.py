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


def test_tables_have_the_documented_types(sp_luts: tuple[Any, Any]) -> None:
    _, luts = sp_luts
    assert luts.base_bytes.dtype == np.int16
    assert luts.has_leading_space.dtype == np.bool_ and luts.is_boundary.dtype == np.bool_


def test_a_hand_made_sequence_counts_the_bytes_of_its_decoded_text_on_both_paths(sp_luts: tuple[Any, Any]) -> None:
    """Three documents, each after a boundary token, with pieces that start with a space mid-document and right
    after the boundary: both counters give the UTF-8 bytes of each document's decoded text, and no more."""
    sp, luts = sp_luts
    the, a, lone = sp.piece_to_id(f"{SPACE}the"), sp.piece_to_id("a"), sp.piece_to_id(SPACE)
    docs = [[the, a, the], [a, the, lone, the], [the]]
    stream = np.array([t for d in docs for t in (BOS_ID, *d)] + [EOS_ID, the], dtype=np.uint16)
    expected = sum(len(sp.decode(d).encode()) for d in docs) + len(sp.decode([the]).encode())
    assert expected == 3 + 1 + 4 + (1 + 4 + 1 + 4) + 3 + 3  # "the" after a boundary has no space
    per_token = count_target_bytes(torch.from_numpy(stream[:-1].astype(np.int64)),
                                   torch.from_numpy(stream[1:].astype(np.int64)), luts)
    assert int(per_token.sum()) == expected
    assert count_stream_bytes(stream, luts) == expected  # the first token, BOS, counts 0


def test_numpy_counter_takes_the_token_before_the_first_from_prev(sp_luts: tuple[Any, Any]) -> None:
    sp, luts = sp_luts
    the, a = sp.piece_to_id(f"{SPACE}the"), sp.piece_to_id("a")
    assert count_stream_bytes(np.array([the]), luts) == 3  # no prev: after a boundary
    assert count_stream_bytes(np.array([the]), luts, prev=BOS_ID) == 3
    assert count_stream_bytes(np.array([the]), luts, prev=a) == 4
    assert count_stream_bytes(np.array([the, the]), luts, prev=a) == 8
    assert count_stream_bytes(np.array([], dtype=np.uint16), luts) == 0


def test_numpy_counter_refuses_ids_beyond_the_tables(sp_luts: tuple[Any, Any]) -> None:
    _, luts = sp_luts
    with pytest.raises(ValueError, match=f"token id {luts.size} beyond the byte tables"):
        count_stream_bytes(np.array([1, luts.size]), luts)
    assert count_stream_bytes(np.array([luts.size - 1]), luts) >= 0  # the last id is inside


def test_torch_tables_are_built_on_the_device_of_the_tokens(sp_luts: tuple[Any, Any]) -> None:
    """The meta device stands in for a GPU: the tables and the counts follow the tokens' device."""
    sp, luts = sp_luts
    assert all(t.device.type == "cpu" for t in luts.torch_tables("cpu"))
    assert all(t.device.type == "meta" for t in luts.torch_tables(torch.device("meta")))
    assert all(t.device.type == "cpu" for t in luts.torch_tables("cpu"))
    ids = torch.tensor([BOS_ID, sp.piece_to_id(f"{SPACE}the")], device="meta")
    out = count_target_bytes(ids[:1], ids[1:], luts)
    assert out.device.type == "meta" and out.dtype == torch.int64
