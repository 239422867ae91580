from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from clowncar.data.shards import shard_name, write_shard
from clowncar.data.stream import TokenStream, load_validation_tokens
from clowncar.errors import DataError


def _shards(tmp_path: Path, sizes: list[int], split: str = "train") -> tuple[list[Path], np.ndarray]:
    files, start = [], 0
    for i, n in enumerate(sizes):
        files.append(write_shard(tmp_path / shard_name(split, i), np.arange(start, start + n) % 65536))
        start += n
    return files, np.arange(start) % 65536


def test_stream_reads_sorted_shards_in_order_across_boundaries(tmp_path: Path) -> None:
    files, all_toks = _shards(tmp_path, [5, 3, 7])
    stream = TokenStream(list(reversed(files)))  # given in any order, read in name order
    got = np.concatenate([stream.take(4), stream.take(4), stream.take(7)])
    assert got.tolist() == all_toks.tolist()


def test_stream_wraps_around_to_the_first_shard(tmp_path: Path) -> None:
    files, all_toks = _shards(tmp_path, [5, 3])
    stream = TokenStream(files)
    got = stream.take(8 * 2 + 3)
    assert got.tolist() == np.concatenate([all_toks, all_toks, all_toks[:3]]).tolist()


def test_two_streams_over_the_same_files_agree_and_reset_restarts(tmp_path: Path) -> None:
    files, _ = _shards(tmp_path, [11, 0, 4])  # an empty shard in the middle is skipped over
    a, b = TokenStream(files), TokenStream(files)
    seq_a = [a.take(n).tolist() for n in (3, 9, 1, 20)]
    seq_b = [b.take(n).tolist() for n in (3, 9, 1, 20)]
    assert seq_a == seq_b
    a.reset()
    assert a.take(3).tolist() == seq_a[0]


def test_stream_refuses_no_files_or_no_tokens(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no shard files"):
        TokenStream([])
    files, _ = _shards(tmp_path, [0, 0])
    with pytest.raises(DataError, match="hold no tokens"):
        TokenStream(files)


@pytest.mark.parametrize(("sizes", "seq_len"), [([100], 10), ([50, 51], 10), ([33, 40], 8), ([9], 8)])
def test_validation_is_truncated_to_whole_sequences_plus_one(tmp_path: Path, sizes: list[int],
                                                              seq_len: int) -> None:
    files, all_toks = _shards(tmp_path, sizes, split="val")
    val = load_validation_tokens(files, seq_len)
    n = len(all_toks)
    assert len(val) == ((n - 1) // seq_len) * seq_len + 1
    assert (len(val) - 1) % seq_len == 0
    assert val.tolist() == all_toks[:len(val)].tolist()


def test_validation_max_tokens_caps_the_scored_targets(tmp_path: Path) -> None:
    files, all_toks = _shards(tmp_path, [30, 30], split="val")
    val = load_validation_tokens(files, seq_len=8, max_tokens=40)
    assert len(val) == 41 and val.tolist() == all_toks[:41].tolist()
    assert len(load_validation_tokens(files, seq_len=8, max_tokens=43)) == 41


def test_validation_too_short_for_one_sequence_is_an_error(tmp_path: Path) -> None:
    files, _ = _shards(tmp_path, [8], split="val")
    with pytest.raises(DataError, match="too few for one sequence of 8"):
        load_validation_tokens(files, seq_len=8)
    with pytest.raises(DataError, match="no validation shards"):
        load_validation_tokens([], seq_len=8)


def test_take_hands_out_fresh_uint16_arrays_and_refuses_a_negative_count(tmp_path: Path) -> None:
    files, all_toks = _shards(tmp_path, [5, 3])
    stream = TokenStream(files)
    assert stream.take(0).tolist() == [] and stream.take(0).dtype == np.uint16
    got = stream.take(6)
    assert got.dtype == np.uint16 and got.tolist() == all_toks[:6].tolist()
    with pytest.raises(ValueError, match="n must be >= 0, got -1"):
        stream.take(-1)
    with pytest.raises(DataError, match=r"^token stream: no shard files given$"):
        TokenStream([])


def test_validation_reads_exactly_max_tokens_plus_one_across_shards(tmp_path: Path) -> None:
    """With seq_len 1 every token read is kept, so the count shows the budget exactly, also where it spans
    several shards."""
    files, all_toks = _shards(tmp_path, [5, 5, 5], split="val")
    for max_tokens in (1, 2, 4, 7, 12):
        val = load_validation_tokens(files, seq_len=1, max_tokens=max_tokens)
        assert val.dtype == np.uint16 and val.tolist() == all_toks[:max_tokens + 1].tolist()
    assert len(load_validation_tokens(files, seq_len=1)) == 15  # no cap: everything


def test_validation_accepts_seq_len_one_and_two_tokens_but_not_fewer(tmp_path: Path) -> None:
    files, _ = _shards(tmp_path, [2], split="val")
    assert load_validation_tokens(files, seq_len=1).tolist() == [0, 1]
    with pytest.raises(DataError, match=r"^validation: seq_len must be >= 1, got 0$"):
        load_validation_tokens(files, seq_len=0)
    with pytest.raises(DataError, match=r"^validation: no validation shards found$"):
        load_validation_tokens([], seq_len=1)
    (tmp_path / "e").mkdir()
    empty, _ = _shards(tmp_path / "e", [0], split="val")
    with pytest.raises(DataError, match="0 tokens in 1 shard"):
        load_validation_tokens(empty, seq_len=1)


def test_one_validation_shard_is_a_view_of_its_memory_map_not_a_copy(tmp_path: Path) -> None:
    """Trials on a node share the split's page-cache pages, and start-up copies nothing."""
    files, all_toks = _shards(tmp_path, [101], split="val")
    val = load_validation_tokens(files, seq_len=10)
    assert isinstance(val, np.memmap) and not val.flags.writeable
    assert val.tolist() == all_toks[:101].tolist()
    capped = load_validation_tokens(files, seq_len=10, max_tokens=30)
    assert isinstance(capped, np.memmap) and len(capped) == 31
    two, _ = _shards(tmp_path / "two", [50, 51], split="val")  # several shards: concatenated once
    assert not isinstance(load_validation_tokens(two, seq_len=10), np.memmap)
