from __future__ import annotations

import os
import stat
import tempfile
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from clowncar.data.shards import (
    HEADER_BYTES,
    MAGIC,
    ShardHeader,
    list_shards,
    read_header,
    read_shard,
    require_shards,
    shard_name,
    shards_digest,
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


def test_list_shards_given_a_file_says_it_is_no_directory_and_for_a_shard_names_its_folder(tmp_path: Path) -> None:
    shard = write_shard(tmp_path / shard_name("val", 0), [1, 2, 3])
    with pytest.raises(DataError) as err:
        list_shards(shard, "*.bin")
    assert str(err.value) == f"{shard}: is a shard file, not a shard directory: pass its folder ({tmp_path})"
    text = tmp_path / "notes.txt"
    text.write_text("not shards\n")
    with pytest.raises(DataError) as err:
        list_shards(text, "*.bin")
    assert str(err.value) == (f"{text}: is a regular file, not a shard directory: pass the directory that holds "
                              "the shards (fineweb_val_*.bin, fineweb_train_*.bin)")
    with pytest.raises(DataError) as err:
        list_shards(Path("/dev/null"), "*.bin")
    assert str(err.value) == "/dev/null: is a character device, not a shard directory"


def test_a_header_reads_as_its_fields(tmp_path: Path) -> None:
    p = write_shard(tmp_path / "s.bin", np.arange(100))
    h = read_header(p)
    assert h == ShardHeader(path=p, magic=MAGIC, version=1, num_tokens=100) and h.file_bytes == HEADER_BYTES + 200


def test_reading_a_header_reads_only_the_header(tmp_path: Path) -> None:
    """A 200 MB shard (sparse on disk): validating it must not pull its tokens into memory."""
    p = write_shard(tmp_path / "big.bin", [])
    n = 100_000_000
    with p.open("r+b") as f:
        f.seek(8)
        f.write(np.array([n], dtype="<i4").tobytes())
        f.truncate(HEADER_BYTES + 2 * n)
    tracemalloc.start()
    try:
        assert read_header(p).num_tokens == n
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000


def test_a_shard_is_mapped_read_only_whatever_its_length(tmp_path: Path) -> None:
    for toks in ([7], [1, 2, 3]):
        back = read_shard(write_shard(tmp_path / "s.bin", toks))
        assert back.tolist() == toks and back.dtype == np.uint16 and not back.flags.writeable
    empty = read_shard(write_shard(tmp_path / "e.bin", []))
    assert empty.dtype == np.uint16 and empty.shape == (0,)


def test_uint16_and_other_integer_tokens_are_written_as_the_same_bytes(tmp_path: Path) -> None:
    toks = np.arange(0, 65536, 257)
    a = write_shard(tmp_path / "a.bin", toks.astype(np.uint16)).read_bytes()
    b = write_shard(tmp_path / "b.bin", toks.astype(np.int32)).read_bytes()
    assert a == b and len(a) == HEADER_BYTES + 2 * toks.size


def test_the_writer_says_what_is_wrong_with_its_tokens(tmp_path: Path) -> None:
    p = tmp_path / "s.bin"
    cases = [(np.zeros((2, 2), dtype=np.int64), f"{p}: tokens must be a 1-D sequence, got shape (2, 2)"),
             ([1.5, 2.0], f"{p}: tokens must be integers, got float64"),
             ([70000, -1], f"{p}: token id 70000 does not fit uint16 (vocab must be <= 65536)"),
             ([65536, 3], f"{p}: token id 65536 does not fit uint16 (vocab must be <= 65536)"),
             ([-1, 3], f"{p}: token id -1 does not fit uint16 (vocab must be <= 65536)")]
    for tokens, message in cases:
        with pytest.raises(DataError) as err:
            write_shard(p, tokens)
        assert str(err.value) == message
    assert list(tmp_path.iterdir()) == []


def test_more_tokens_than_the_int32_header_holds_are_refused_before_anything_is_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_write(*args: object, **kwargs: object) -> None:
        raise AssertionError("nothing may be written")

    monkeypatch.setattr(tempfile, "mkstemp", no_write)
    p = tmp_path / "s.bin"
    with pytest.raises(DataError) as err:
        write_shard(p, np.broadcast_to(np.uint16(1), (2**31,)))  # a view: no memory behind it
    assert str(err.value) == f"{p}: 2147483648 tokens do not fit the int32 header"
    monkeypatch.undo()
    assert read_shard(write_shard(p, np.ones(100, dtype=np.uint16))).size == 100


def test_the_writer_makes_missing_folders_and_a_file_mode_from_the_umask(tmp_path: Path) -> None:
    for umask, mode in ((0o027, 0o640), (0o022, 0o644)):
        old = os.umask(umask)
        try:
            p = write_shard(tmp_path / "a" / "b" / f"{umask}.bin", [1, 2])
        finally:
            os.umask(old)
        assert stat.S_IMODE(p.stat().st_mode) == mode and read_shard(p).tolist() == [1, 2]


def test_a_shard_being_written_is_a_hidden_temp_file_beside_it_that_no_shard_glob_sees(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[Path, list[str]]] = []
    replace = os.replace

    def spy(src: str, dst: str) -> None:
        seen.append((Path(src), [q.name for q in list_shards(tmp_path, "fineweb_train_*.bin")]))
        replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    write_shard(tmp_path / shard_name("train", 0), [1, 2, 3])
    ((src, listed),) = seen
    assert src.parent == tmp_path and src.name.startswith(".fineweb_train_000000.bin.")
    assert src.name.endswith(".tmp") and listed == []


def test_a_failed_write_leaves_no_temp_file_and_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full_disk(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OSError, match="No space left on device"):
        write_shard(tmp_path / "s.bin", [1, 2, 3])
    assert list(tmp_path.iterdir()) == []


def test_a_folder_or_a_missing_file_is_named_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        read_header(tmp_path)
    assert str(err.value) == f"{tmp_path}: is a directory, not a shard"
    with pytest.raises(DataError) as err:
        read_header(tmp_path / "nope.bin")
    assert str(err.value) == f"{tmp_path / 'nope.bin'}: cannot read shard (No such file or directory)"


def test_a_shard_that_cannot_be_mapped_is_a_data_error_naming_it(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    p = write_shard(tmp_path / "s.bin", [1, 2, 3])

    def no_memory(*args: object, **kwargs: object) -> None:
        raise OSError(12, "Cannot allocate memory")

    monkeypatch.setattr(np, "memmap", no_memory)
    with pytest.raises(DataError) as err:
        read_shard(p)
    assert str(err.value) == f"{p}: cannot map shard ([Errno 12] Cannot allocate memory)"


def test_required_shards_are_listed_or_their_absence_named_by_split(tmp_path: Path) -> None:
    write_shard(tmp_path / "fineweb_val_000001.bin", [1, 2])
    write_shard(tmp_path / "fineweb_val_000000.bin", [1, 3])
    assert require_shards(tmp_path, "fineweb_val_*.bin", "validation") == [
        tmp_path / "fineweb_val_000000.bin", tmp_path / "fineweb_val_000001.bin"]
    with pytest.raises(DataError) as err:
        require_shards(tmp_path, "fineweb_train_*.bin", "train")
    assert str(err.value) == f"no train shards matching fineweb_train_*.bin in {tmp_path}"


@pytest.mark.parametrize("glob, problem", [
    ("", "is empty (it must match shard file names, e.g. fineweb_val_*.bin)"),
    ("  ", "is empty (it must match shard file names, e.g. fineweb_val_*.bin)"),
    ("/etc/passwd", "is an absolute path: shard globs are matched inside the shard directory"),
    (".", "names no file (it must match shard file names, e.g. fineweb_val_*.bin)"),
    ("v**.bin", "uses '**' inside a name: '**' can only be a whole path component"),
])
def test_a_glob_pathlib_would_raise_on_is_a_data_error_naming_it(tmp_path: Path, glob: str, problem: str) -> None:
    """What a trial, `artifact eval` and `data inspect` list shards with: never pathlib's bare ValueError or
    NotImplementedError."""
    with pytest.raises(DataError) as err:
        list_shards(tmp_path, glob)
    assert str(err.value) == f"shard glob {glob!r} {problem}"


def test_globs_down_the_tree_still_match(tmp_path: Path) -> None:
    write_shard(tmp_path / "a" / "b" / "fineweb_val_000000.bin", [1, 2])
    assert list_shards(tmp_path, "**/fineweb_val_*.bin") == [tmp_path / "a" / "b" / "fineweb_val_000000.bin"]
    assert list_shards(tmp_path, "a/*/fineweb_val_*.bin") == [tmp_path / "a" / "b" / "fineweb_val_000000.bin"]


def test_a_pattern_pathlib_refuses_in_a_way_not_foreseen_is_still_one_line(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    def refuses(self: Path, pattern: str) -> list[Path]:
        raise NotImplementedError("Non-relative patterns are unsupported")

    monkeypatch.setattr(Path, "glob", refuses)
    with pytest.raises(DataError) as err:
        list_shards(tmp_path, "x_*.bin")
    assert str(err.value) == "shard glob 'x_*.bin' is not a usable pattern (Non-relative patterns are unsupported)"
    monkeypatch.setattr(Path, "glob", lambda self, pattern: (_ for _ in ()).throw(IndexError()))
    with pytest.raises(DataError) as err:  # no message: the exception's type says what went wrong
        list_shards(tmp_path, "x_*.bin")
    assert str(err.value) == "shard glob 'x_*.bin' is not a usable pattern (IndexError)"


def test_a_path_kind_is_named_in_words_and_an_unknown_one_is_not_a_regular_file() -> None:
    from clowncar.data.paths import file_kind

    assert file_kind(stat.S_IFDIR) == "a directory" and file_kind(stat.S_IFIFO) == "a FIFO (named pipe)"
    assert file_kind(stat.S_IFCHR) == "a character device" and file_kind(stat.S_IFSOCK) == "a socket"
    assert file_kind(stat.S_IFBLK) == "a block device" and file_kind(0) == "not a regular file"


def test_a_splits_digest_counts_its_shards_and_tokens_and_changes_when_one_is_lost_or_rebuilt(tmp_path: Path) -> None:
    import hashlib

    a, b = write_shard(tmp_path / shard_name("train", 0), [1, 2, 3]), write_shard(tmp_path / shard_name("train", 1),
                                                                                   [4, 5])
    both = shards_digest([a, b])
    listing = f"{a.name} 3\n{b.name} 2"
    assert both == {"shards": 2, "tokens": 5, "digest": hashlib.sha256(listing.encode()).hexdigest()[:16]}
    assert shards_digest([a]) != both  # a shard lost
    copy = tmp_path / "copy"
    copy.mkdir()
    same = [write_shard(copy / a.name, [9, 9, 9]), write_shard(copy / b.name, [7, 7])]
    assert shards_digest(same) == both  # headers only: the same names and lengths read as the same split
    write_shard(b, [4, 5, 6])
    assert shards_digest([a, b])["digest"] != both["digest"]  # rebuilt to another length
    (tmp_path / "bad.bin").write_bytes(b"\0" * 10)
    with pytest.raises(DataError):
        shards_digest([tmp_path / "bad.bin"])
