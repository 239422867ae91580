"""The artifact file format byte by byte, as artifact.py's docstring states it, read here with struct, json, zlib,
zstandard and lzma alone: the layout, the order of the parts, the checksum, the compressors and their settings,
the size fields and the reader's bounds."""

from __future__ import annotations

import json
import lzma
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
import zstandard

from clowncar.config import TrialConfig
from clowncar.worker.artifact import (
    _decompress,
    calib_batch,
    export_artifact,
    group_bytes,
    pack,
    payload_limit,
    read_artifact,
    serialize,
    unpack,
    write_artifact,
    write_atomic,
)
from clowncar.worker.code_bytes import code_bytes
from clowncar.worker.quant import QTensor, QuantResult

I8, F16 = torch.int8, torch.float16


def tiny_result() -> QuantResult:
    """Two int6 matrices (named out of order), one fp32 vector, one tie: 6 + 4 + 2 + 2 + 4 + 8 bytes of parts."""
    b = QTensor("b", "flat", "int6", (2, 3), torch.float32, q=torch.tensor([[1, -2, 3], [4, 5, -6]], dtype=I8),
                scale=torch.tensor([0.5, 0.25], dtype=F16))
    a = QTensor("a", "crawler", "int8", (1, 2), torch.bfloat16, q=torch.tensor([[7, -8]], dtype=I8),
                scale=torch.tensor([2.0], dtype=F16))
    v = QTensor("v", "passthrough", "fp32", (2,), torch.float32, data=torch.tensor([1.5, -2.0]))
    return QuantResult(tensors={"b": b, "a": a, "v": v}, aliases={"w": "b"}, calibrated=["b"], calib_tokens=96,
                       schemes={"flat": "int6", "crawler": "int8", "passthrough": "fp32"})


def test_the_payload_is_index_length_index_then_codes_scales_and_data_each_sorted_by_name() -> None:
    payload = serialize(tiny_result())
    (index_len,) = struct.unpack_from("<Q", payload)
    index_text = payload[8:8 + index_len].decode()
    assert " " not in index_text  # compact JSON
    index = json.loads(index_text)
    assert index["aliases"] == {"w": "b"} and index["calibrated"] == ["b"]
    assert list(index["tensors"]) == ["b", "a", "v"]  # the result's order
    assert index["tensors"]["a"] == {"group": "crawler", "scheme": "int8", "shape": [1, 2], "dtype": "bfloat16",
                                     "parts": {"q": {"dtype": "int8", "shape": [1, 2], "offset": 0, "nbytes": 2},
                                               "scale": {"dtype": "float16", "shape": [1], "offset": 8,
                                                         "nbytes": 2}}}
    assert index["tensors"]["b"]["parts"] == {"q": {"dtype": "int8", "shape": [2, 3], "offset": 2, "nbytes": 6},
                                              "scale": {"dtype": "float16", "shape": [2], "offset": 10,
                                                        "nbytes": 4}}
    assert index["tensors"]["v"] == {"group": "passthrough", "scheme": "fp32", "shape": [2], "dtype": "float32",
                                     "parts": {"data": {"dtype": "float32", "shape": [2], "offset": 14,
                                                        "nbytes": 8}}}
    blob = payload[8 + index_len:]
    expected = (bytes([7, 0xF8]) + bytes([1, 0xFE, 3, 4, 5, 0xFA]) + struct.pack("<e", 2.0)
                + struct.pack("<ee", 0.5, 0.25) + struct.pack("<ff", 1.5, -2.0))
    assert blob == expected


@pytest.mark.parametrize("compressor, tag", [("zstd", b"Z"), ("lzma", b"X"), ("zlib", b"G")])
def test_the_file_is_prefix_plain_meta_checksum_length_and_compressed_payload(compressor: str, tag: bytes) -> None:
    payload = serialize(tiny_result())
    raw = pack({"k": [1, 2]}, payload, compressor, zstd_level=5)
    head = b'{"format":"clowncar-artifact/1","k":[1,2]}'
    assert raw[:8] == b"CCARTIF1" and raw[8:9] == tag
    assert struct.unpack_from("<I", raw, 9) == (len(head),) and raw[13:13 + len(head)] == head
    crc, length = struct.unpack_from("<IQ", raw, 13 + len(head))
    assert crc == zlib.crc32(head + payload) and length == len(payload)
    body = raw[13 + len(head) + 12:]
    if compressor == "zstd":
        assert body == zstandard.ZstdCompressor(level=5).compress(payload)
    elif compressor == "lzma":
        assert body == lzma.compress(payload, preset=9 | lzma.PRESET_EXTREME)
    else:  # the reference baseline's export
        assert body == zlib.compress(payload, level=9)
    assert _decompress(tag, body, length) == payload


def test_a_bfloat16_part_is_stored_as_its_16_bit_patterns(tmp_path: Path) -> None:
    """numpy has no bfloat16: the bits go as int16 (1.0 = 0x3F80, -2.0 = 0xC000, little-endian)."""
    t = QTensor("t", "passthrough", "raw", (2,), torch.bfloat16, data=torch.tensor([1.0, -2.0],
                                                                                  dtype=torch.bfloat16))
    payload = serialize(QuantResult(tensors={"t": t}))
    (index_len,) = struct.unpack_from("<Q", payload)
    assert json.loads(payload[8:8 + index_len])["tensors"]["t"]["parts"]["data"]["dtype"] == "bfloat16"
    assert payload[8 + index_len:] == b"\x80\x3f\x00\xc0"
    write_artifact(QuantResult(tensors={"t": t}), TrialConfig.model_validate({"quant": {"zstd_level": 3}}),
                   tmp_path / "a.ptz")
    back, _ = read_artifact(tmp_path / "a.ptz")
    assert back.tensors["t"].data.dtype == torch.bfloat16 and back.tensors["t"].data.tolist() == [1.0, -2.0]


def test_zstd_level_22_is_the_default_and_other_compressors_are_refused() -> None:
    payload = serialize(tiny_result())
    raw = pack({}, payload, "zstd")
    (meta_len,) = struct.unpack_from("<I", raw, 9)
    assert raw[13 + meta_len + 12:] == zstandard.ZstdCompressor(level=22).compress(payload)
    with pytest.raises(ValueError, match=r"^unknown compressor 'gzip'$"):
        pack({}, payload, "gzip")


def test_group_bytes_count_every_stored_part_of_every_tensor_of_every_group() -> None:
    result = tiny_result()
    assert group_bytes(result) == {"flat": 6 + 4, "crawler": 2 + 2, "embed": 0, "passthrough": 8}
    result.tensors["c"] = QTensor("c", "flat", "int6", (1, 4), torch.float32, q=torch.zeros(1, 4, dtype=I8),
                                  scale=torch.ones(1, dtype=F16))
    assert group_bytes(result)["flat"] == 10 + 4 + 2


def test_write_atomic_makes_the_folders_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "x.ptz"
    write_atomic(path, b"first")
    write_atomic(path, b"second")
    assert path.read_bytes() == b"second" and sorted(p.name for p in path.parent.iterdir()) == ["x.ptz"]


def test_written_size_fields_and_meta(tmp_path: Path) -> None:
    cfg = TrialConfig.model_validate({"quant": {"zstd_level": 3, "code_bytes": "eval_path"}})
    fields = write_artifact(tiny_result(), cfg, tmp_path / "a.ptz")
    raw = (tmp_path / "a.ptz").read_bytes()
    (meta_len,) = struct.unpack_from("<I", raw, 9)
    meta = json.loads(raw[13:13 + meta_len])
    assert raw[13 + meta_len + 12:] == zstandard.ZstdCompressor(level=3).compress(serialize(tiny_result()))
    assert meta == {"format": "clowncar-artifact/1", "config": cfg.to_dict(), "config_hash": cfg.content_hash(),
                    "quant_schemes": tiny_result().schemes, "calib_tokens": 96,
                    "group_bytes": {"flat": 10, "crawler": 4, "embed": 0, "passthrough": 8},
                    "torch": torch.__version__, "code_rule": "eval_path", "code_bytes": code_bytes("eval_path")}
    assert fields["artifact_file_bytes"] == len(raw) and fields["artifact_code_bytes"] == code_bytes("eval_path")
    assert fields["artifact_bytes"] == len(raw) + code_bytes("eval_path")
    assert fields["artifact_code_rule"] == "eval_path" and fields["over_cap"] is False
    back, meta = read_artifact(tmp_path / "a.ptz")
    assert meta["config_hash_ok"] is True and meta["calibrated"] == ["b"] and back.calib_tokens == 96
    assert back.aliases == {"w": "b"} and back.schemes == tiny_result().schemes
    for name, qt in tiny_result().tensors.items():
        assert torch.equal(back.tensors[name].dequantize(), qt.dequantize()), name
        assert back.tensors[name].dequantize().dtype == qt.dtype


def test_calibration_tokens_are_cut_into_whole_sequences() -> None:
    assert calib_batch(None, 8) is None
    batch = torch.arange(12).view(3, 4)
    assert calib_batch(batch, 8) is batch  # a batch is used as it is, whatever seq_len says
    two_d = torch.arange(12, dtype=torch.int32).view(3, 4)
    got = calib_batch(two_d, 8)
    assert got.dtype == torch.int64 and got.tolist() == two_d.tolist()
    got = calib_batch(np.arange(50, dtype=np.uint16), 8)
    assert got.dtype == torch.int64 and got.shape == (6, 8) and got[5].tolist() == list(range(40, 48))
    assert calib_batch(list(range(16)), 8).tolist() == [list(range(8)), list(range(8, 16))]
    sequences = [torch.arange(8), torch.arange(8, 16)]  # a list of token tensors: one sequence each
    assert calib_batch(sequences, 8).tolist() == [list(range(8)), list(range(8, 16))]
    with pytest.raises(ValueError, match=r"^need at least 8 calibration tokens, got 7$"):
        calib_batch(np.arange(7), 8)


def test_a_file_that_ends_right_after_its_checksum_has_an_empty_body() -> None:
    """Prefix, meta and checksum fill the file exactly: the empty payload is read and checked, and the reader
    goes on to the meta, rather than saying the meta runs past the end."""
    head = b'{"format":"clowncar-artifact/1"}'
    raw = b"CCARTIF1Z" + struct.pack("<I", len(head)) + head + struct.pack("<IQ", zlib.crc32(head), 0)
    with pytest.raises(ValueError, match="meta lacks the config"):  # got as far as the meta
        unpack(raw)
    with pytest.raises(ValueError, match="runs past the end of the file"):
        unpack(raw[:-1])


def test_export_times_the_quantization_and_writes_at_the_configured_level(tmp_path: Path) -> None:
    cfg = TrialConfig.model_validate({"quant": {"zstd_level": 3, "passthrough_max_numel": 8}})
    torch.manual_seed(0)
    start = time.perf_counter()
    fields = export_artifact(torch.nn.Linear(16, 16), cfg, None, tmp_path / "a.ptz")
    elapsed = time.perf_counter() - start
    assert 0 < fields["quant_seconds"] <= elapsed
    assert fields["quant_schemes"] == {"flat": "int8"}  # the weight and the 16-value bias


# -- reading: the bounds ------------------------------------------------------------------------------------------

def test_the_payload_may_be_64_mib_or_64_times_the_compressed_bytes() -> None:
    assert payload_limit(0) == payload_limit(1 << 20) == 64 << 20
    assert payload_limit((1 << 20) + 1) == 64 * ((1 << 20) + 1)
    assert payload_limit(3 << 20) == 192 << 20


@pytest.mark.parametrize("tag", [b"Z", b"X"])
def test_decompression_stops_one_byte_past_the_declared_length(tag: bytes) -> None:
    data = bytes(range(256)) * 40  # 10,240 bytes
    body = zstandard.ZstdCompressor(level=3).compress(data) if tag == b"Z" else lzma.compress(data)
    assert _decompress(tag, body, 1000) == data[:1001]
    assert _decompress(tag, body, len(data)) == data
    assert _decompress(tag, body, 5_000_000) == data
    with pytest.raises(ValueError, match=r"^unknown compressor tag b'Q'$"):
        _decompress(b"Q", body, 10)


def test_a_payload_longer_than_one_read_comes_back_whole_or_cut_one_past_the_length() -> None:
    data = np.random.default_rng(0).integers(0, 4, 3 << 20, dtype=np.uint8).tobytes()
    body = zstandard.ZstdCompressor(level=1).compress(data)
    assert _decompress(b"Z", body, len(data)) == data
    assert _decompress(b"Z", body, (1 << 20) + 5) == data[:(1 << 20) + 6]
    assert _decompress(b"Z", body, 2 << 20) == data[:(2 << 20) + 1]  # a length that is a whole number of reads
