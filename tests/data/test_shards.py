from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from clowncar.data.shards import (
    HEADER_BYTES,
    MAGIC,
    list_shards,
    read_header,
    read_shard,
    shard_name,
    write_shard,
)
from clowncar.errors import DataError


def test_round_trip_keeps_every_token_and_the_official_layout(tmp_path: Path) -> None:
    toks = np.array([1, 0, 65535, 2, 1023, 1], dtype=np.int64)
    p = write_shard(tmp_path / "fineweb_train_000000.bin", toks)
    raw = p.read_bytes()
    assert len(raw) == HEADER_BYTES + 2 * len(toks)
    header = np.frombuffer(raw[:HEADER_BYTES], dtype="<i4")
    assert list(header[:3]) == [MAGIC, 1, len(toks)] and not header[3:].any()
    assert np.frombuffer(raw[HEADER_BYTES:], dtype="<u2").tolist() == toks.tolist()
    back = read_shard(p)
    assert back.dtype == np.uint16 and isinstance(back, np.memmap)
    assert back.tolist() == toks.tolist()
    assert read_header(p).num_tokens == len(toks)


def test_reader_accepts_a_shard_from_the_challenges_writer(
        tmp_path: Path, official_writer: Callable[[Path, np.ndarray], None]) -> None:
    rng = np.random.default_rng(0)
    toks = rng.integers(0, 1024, size=5000)
    official_writer(tmp_path / "fineweb_val_000000.bin", toks)
    assert read_shard(tmp_path / "fineweb_val_000000.bin").tolist() == toks.tolist()


def test_empty_shard_is_valid_and_reads_as_no_tokens(tmp_path: Path) -> None:
    p = write_shard(tmp_path / "s.bin", [])
    assert p.stat().st_size == HEADER_BYTES and read_shard(p).size == 0


def _corrupt(path: Path, how: str) -> None:
    raw = bytearray(path.read_bytes())
    if how == "magic":
        raw[0:4] = np.array([20240521], dtype="<i4").tobytes()
    elif how == "version":
        raw[4:8] = np.array([2], dtype="<i4").tobytes()
    elif how == "negative count":
        raw[8:12] = np.array([-5], dtype="<i4").tobytes()
    elif how == "truncated body":
        raw = raw[:-3]
    elif how == "truncated header":
        raw = raw[:100]
    elif how == "over-long":
        raw += b"\x00\x00"
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize(("how", "message"), [
    ("magic", "bad magic 20240521"),
    ("version", "unsupported shard version 2"),
    ("negative count", "negative token count"),
    ("truncated body", "truncated shard: header says 10 tokens"),
    ("truncated header", "shorter than the 1024-byte header"),
    ("over-long", "over-long shard"),
])
def test_every_corruption_is_a_data_error_naming_the_file(tmp_path: Path, how: str, message: str) -> None:
    p = write_shard(tmp_path / "fineweb_train_000007.bin", np.arange(10))
    _corrupt(p, how)
    for reader in (read_header, read_shard):
        with pytest.raises(DataError, match=message) as err:
            reader(p)
        assert str(p) in str(err.value)


def test_missing_file_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot read shard"):
        read_header(tmp_path / "nope.bin")


@pytest.mark.parametrize("bad", [[1, 2, 65536], [-1, 3]])
def test_writer_refuses_ids_outside_uint16_and_leaves_nothing(tmp_path: Path, bad: list[int]) -> None:
    with pytest.raises(DataError, match="does not fit uint16"):
        write_shard(tmp_path / "s.bin", bad)
    assert list(tmp_path.iterdir()) == []


def test_writer_replaces_atomically_without_temp_files(tmp_path: Path) -> None:
    p = tmp_path / "s.bin"
    write_shard(p, [1, 2, 3])
    write_shard(p, [4, 5])
    assert read_shard(p).tolist() == [4, 5]
    assert [q.name for q in tmp_path.iterdir()] == ["s.bin"]


def test_list_shards_sorts_by_name_and_filters_by_glob(tmp_path: Path) -> None:
    for split, i in [("train", 2), ("train", 0), ("val", 0), ("train", 1)]:
        write_shard(tmp_path / shard_name(split, i), [1])
    assert [p.name for p in list_shards(tmp_path, "fineweb_train_*.bin")] == [
        "fineweb_train_000000.bin", "fineweb_train_000001.bin", "fineweb_train_000002.bin"]
    with pytest.raises(DataError, match="shard directory not found"):
        list_shards(tmp_path / "missing", "*.bin")
