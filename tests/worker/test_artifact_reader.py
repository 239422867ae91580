"""The artifact reader on hand-made files: which damage it names with which words (the whole line, so that a
message cannot lose or gain text unnoticed), which fields it lets be missing, and the memory an lzma body may ask
for. Each file is written here byte by byte (struct, json, zlib, zstandard), as artifact.py's docstring lays it out."""

from __future__ import annotations

import copy
import json
import lzma
import os
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
import torch
import zstandard

from clowncar.errors import DataError
from clowncar.worker.artifact import MAX_FILE_BYTES, _decompress, read_artifact

META: dict[str, Any] = {"format": "clowncar-artifact/1", "config": {}, "config_hash": "h"}
INDEX: dict[str, Any] = {"tensors": {"w": {"group": "flat", "scheme": "int8", "shape": [1, 2], "dtype": "float32",
                                           "parts": {"q": {"dtype": "int8", "shape": [1, 2], "offset": 0, "nbytes": 2},
                                                     "scale": {"dtype": "float16", "shape": [1], "offset": 2,
                                                               "nbytes": 2}}}}}
BLOB = bytes([3, 0xFD]) + struct.pack("<e", 0.5)  # codes 3, -3 at scale 0.5


def payload_of(index: dict[str, Any] | bytes, blob: bytes = BLOB) -> bytes:
    raw = index if isinstance(index, bytes) else json.dumps(index).encode()
    return struct.pack("<Q", len(raw)) + raw + blob


def file_of(meta: dict[str, Any] | bytes = META, payload: bytes | None = None, declared: int | None = None,
            body: bytes | None = None) -> bytes:
    head = meta if isinstance(meta, bytes) else json.dumps(meta).encode()
    payload = payload_of(INDEX) if payload is None else payload
    body = zstandard.ZstdCompressor(level=3).compress(payload) if body is None else body
    length = len(payload) if declared is None else declared
    return (b"CCARTIF1Z" + struct.pack("<I", len(head)) + head + struct.pack("<IQ", zlib.crc32(head + payload), length)
            + body)


def edited(**changes: Any) -> dict[str, Any]:
    """INDEX with fields of tensor w's entry changed (q_part, scale_part: fields of one of its parts)."""
    index = copy.deepcopy(INDEX)
    entry = index["tensors"]["w"]
    for key, value in changes.items():
        if key in ("q_part", "scale_part"):
            entry["parts"][key.removesuffix("_part")].update(value)
        else:
            entry[key] = value
    return index


def reason(tmp_path: Path, raw: bytes) -> str:
    path = tmp_path / "a.ptz"
    path.write_bytes(raw)
    with pytest.raises(DataError) as info:
        read_artifact(path)
    prefix = f"{path} is not a valid clowncar artifact: "
    assert str(info.value).startswith(prefix), str(info.value)
    return str(info.value).removeprefix(prefix)


DAMAGE: dict[str, tuple[Any, str]] = {
    "short": (lambda: b"CCARTIF1Z", "file is shorter than the artifact prefix"),
    "magic": (lambda: b"CCARTIF2" + file_of()[8:], "not a clowncar artifact (bad magic)"),
    "meta length": (lambda: file_of()[:9] + struct.pack("<I", 10_000) + file_of()[13:],
                    "meta length 10000 runs past the end of the file (truncated?)"),
    "bomb": (lambda: file_of(declared=(64 << 20) + 1, body=b"0123456789"),
             "declares a 67,108,865-byte payload, more than the 67,108,864 bytes allowed for 10 compressed bytes "
             "(a decompression bomb?)"),
    "checksum": (lambda: file_of(declared=len(payload_of(INDEX)) - 1), "checksum mismatch (file corrupt or truncated)"),
    "meta list": (lambda: file_of(b"[1]"), "meta is a list, not an object"),
    "format": (lambda: file_of({**META, "format": "x/2"}), "unknown format 'x/2'"),
    "no format": (lambda: file_of({"config": {}, "config_hash": "h"}), "unknown format None"),
    "config": (lambda: file_of({**META, "config": [1]}), "meta lacks the config or its hash"),
    "hash": (lambda: file_of({**META, "config_hash": 1}), "meta lacks the config or its hash"),
    "schemes": (lambda: file_of({**META, "quant_schemes": {"flat": 6}}),
                "meta field quant_schemes is not a map of group to scheme"),
    "schemes list": (lambda: file_of({**META, "quant_schemes": ["int8"]}),
                     "meta field quant_schemes is not a map of group to scheme"),
    "calib bool": (lambda: file_of({**META, "calib_tokens": True}),
                   "meta field calib_tokens is not a non-negative integer"),
    "calib negative": (lambda: file_of({**META, "calib_tokens": -1}),
                       "meta field calib_tokens is not a non-negative integer"),
    "payload short": (lambda: file_of(payload=b"1234567"), "payload is shorter than its index length"),
    "index length": (lambda: file_of(payload=struct.pack("<Q", 99) + b"{}"), "index length 99 runs past the payload"),
    "index empty": (lambda: file_of(payload=payload_of(b"", blob=b"")),  # 8 bytes: long enough, but no JSON
                    "Expecting value: line 1 column 1 (char 0)"),
    "no tensors": (lambda: file_of(payload=payload_of({"tensors": []})), "index lacks its tensors"),
    "index list": (lambda: file_of(payload=payload_of(b"[]")), "index lacks its tensors"),
    "aliases": (lambda: file_of(payload=payload_of({**INDEX, "aliases": {"v": "nope"}})),
                "index aliases name tensors that are not stored"),
    "aliases list": (lambda: file_of(payload=payload_of({**INDEX, "aliases": ["w"]})),
                     "index aliases name tensors that are not stored"),
    "calibrated": (lambda: file_of(payload=payload_of({**INDEX, "calibrated": [1]})),
                   "index field calibrated is not a list of names"),
    "calibrated text": (lambda: file_of(payload=payload_of({**INDEX, "calibrated": "w"})),
                        "index field calibrated is not a list of names"),
    "entry": (lambda: file_of(payload=payload_of({"tensors": {"w": [1]}})), "tensor entry 'w' is not an object with parts"),
    "group": (lambda: file_of(payload=payload_of(edited(group="other"))), "tensor w: bad group, scheme or dtype"),
    "scheme": (lambda: file_of(payload=payload_of(edited(scheme=8))), "tensor w: bad group, scheme or dtype"),
    "dtype": (lambda: file_of(payload=payload_of(edited(dtype="complex64"))), "tensor w: bad group, scheme or dtype"),
    "shape": (lambda: file_of(payload=payload_of(edited(shape=[1] * 9))),
              "w: shape [1, 1, 1, 1, 1, 1, 1, 1, 1] is not a list of at most 8 non-negative integers"),
    "shape negative": (lambda: file_of(payload=payload_of(edited(shape=[2, -1]))),
                       "w: shape [2, -1] is not a list of at most 8 non-negative integers"),
    "parts": (lambda: file_of(payload=payload_of(edited(parts={"q": INDEX["tensors"]["w"]["parts"]["q"]}))),
              "tensor w: parts ['q'] (expected data, or q and scale)"),
    "part dtype": (lambda: file_of(payload=payload_of(edited(scale_part={"dtype": "half"}))),
                   "w.scale: unknown dtype 'half'"),
    "part range": (lambda: file_of(payload=payload_of(edited(scale_part={"offset": 3}))),
                   "w.scale: bytes [3, +2) out of range (payload holds 4)"),
    "part size": (lambda: file_of(payload=payload_of(edited(scale_part={"nbytes": 1}))),
                  "w.scale: 1 bytes do not hold a float16 tensor of shape [1]"),
    "values": (lambda: file_of(payload=payload_of(edited(shape=[3]))), "tensor w: 2 stored values for shape [3]"),
    "scales": (lambda: file_of(payload=payload_of(edited(scale_part={"shape": [1, 1]}))),
               "tensor w: scales [1, 1] do not match codes [1, 2]"),
    "codes 3-d": (lambda: file_of(payload=payload_of(edited(q_part={"shape": [1, 1, 2]}))),
                  "tensor w: scales [1] do not match codes [1, 1, 2]"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_each_kind_of_damage_is_named_in_one_exact_line(damage: str, tmp_path: Path) -> None:
    make, expected = DAMAGE[damage]
    assert reason(tmp_path, make()) == expected


def test_the_hand_made_file_itself_is_valid_and_its_optional_fields_may_be_missing(tmp_path: Path) -> None:
    """No quant_schemes or calib_tokens in the meta, no aliases or calibrated in the index: all default empty."""
    path = tmp_path / "a.ptz"
    path.write_bytes(file_of())
    result, meta = read_artifact(path)
    assert result.tensors["w"].dequantize().tolist() == [[1.5, -1.5]] and result.tensors["w"].name == "w"
    assert result.schemes == {} and result.calib_tokens == 0 and result.aliases == {} and result.calibrated == []
    assert meta["calibrated"] == [] and meta["config_hash_ok"] is False  # "h" is not the hash of {}


def test_an_artifact_may_store_no_tensor_at_all(tmp_path: Path) -> None:
    """The index then fills the payload to its last byte."""
    path = tmp_path / "a.ptz"
    path.write_bytes(file_of(payload=payload_of({"tensors": {}}, b"")))
    result, _ = read_artifact(path)
    assert result.tensors == {}


def test_a_tensor_may_have_eight_dimensions(tmp_path: Path) -> None:
    path = tmp_path / "a.ptz"
    path.write_bytes(file_of(payload=payload_of(edited(shape=[1, 1, 1, 1, 1, 1, 1, 2]))))
    result, _ = read_artifact(path)
    assert result.tensors["w"].dequantize().shape == (1, 1, 1, 1, 1, 1, 1, 2)


def test_an_error_without_a_message_is_named_by_its_type(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import clowncar.worker.artifact as artifact

    def fails(raw: bytes) -> None:
        raise EOFError

    monkeypatch.setattr(artifact, "unpack", fails)
    assert reason(tmp_path, file_of()) == "EOFError"


def test_a_model_from_a_file_whose_config_does_not_fit_names_the_file(tmp_path: Path) -> None:
    from clowncar.worker.artifact_model import load_model_from_artifact

    path = tmp_path / "a.ptz"
    path.write_bytes(file_of())  # the default config of {} builds more layers than the one tensor stored
    with pytest.raises(DataError) as info:
        load_model_from_artifact(path)
    assert str(info.value).startswith(f"{path}: the stored config asks for ")
    assert str(info.value).endswith(" layers, the file stores 1 tensors")


def test_a_missing_file_is_named_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        read_artifact(tmp_path / "nope.ptz")
    assert str(info.value) == f"cannot read artifact {tmp_path / 'nope.ptz'}: No such file or directory"


def test_an_lzma_body_that_asks_for_a_1_gib_dictionary_is_refused_before_it_is_decoded() -> None:
    """The .lzma header (which the decoder also reads) declares the dictionary size: 1 GiB is past the 256 MiB
    the reader allows, whatever the body really holds."""
    data = b"hello artifact " * 10
    body = bytearray(lzma.compress(data, format=lzma.FORMAT_ALONE, preset=0))
    assert _decompress(b"X", bytes(body), len(data)) == data  # as written: an 8 MiB dictionary, decoded
    body[1:5] = struct.pack("<I", 1 << 30)
    with pytest.raises(lzma.LZMAError, match="Memory usage limit"):
        _decompress(b"X", bytes(body), len(data))


def test_codes_come_back_as_int8_and_scales_as_fp16(tmp_path: Path) -> None:
    path = tmp_path / "a.ptz"
    path.write_bytes(file_of())
    result, _ = read_artifact(path)
    w = result.tensors["w"]
    assert w.q.dtype == torch.int8 and w.q.tolist() == [[3, -3]] and w.scale.dtype == torch.float16


@pytest.mark.parametrize("make, kind", [
    (lambda tmp: Path("/dev/zero"), "a character device"),
    (lambda tmp: (os.mkfifo(tmp / "a.ptz"), tmp / "a.ptz")[1], "a FIFO (named pipe)"),
    (lambda tmp: (os.mkdir(tmp / "d.ptz"), tmp / "d.ptz")[1], "a directory"),
])
def test_what_is_not_a_regular_file_is_refused_before_any_read(make: Any, kind: str, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """/dev/zero never ends and a FIFO blocks until someone writes: a read must not even start."""
    path = make(tmp_path)
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail(f"{self} was read"))
    with pytest.raises(DataError) as info:
        read_artifact(path)
    assert str(info.value) == f"cannot read artifact {path}: it is {kind}, not a regular file"


def test_a_file_over_the_size_limit_is_refused_before_any_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A sparse file costs no disk: its size alone must stop the loader, which reads a file whole."""
    path = tmp_path / "big.ptz"
    with path.open("wb") as fh:
        fh.write(file_of())
        fh.truncate(MAX_FILE_BYTES + 1)
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail(f"{self} was read"))
    with pytest.raises(DataError) as info:
        read_artifact(path)
    assert str(info.value) == (f"{path} is not a clowncar artifact: 2,147,483,649 bytes, over the 2,147,483,648-byte "
                               "limit of what is read whole")


def test_a_file_at_the_size_limit_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "a.ptz"
    path.write_bytes(file_of())
    monkeypatch.setattr("clowncar.worker.artifact.MAX_FILE_BYTES", path.stat().st_size)
    result, _ = read_artifact(path)
    assert set(result.tensors) == {"w"}
