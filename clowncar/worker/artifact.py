"""The size-capped artifact: quantize a model, serialize it without pickle, compress, and load it back.

File layout (nothing in it can execute code on load):

    b"CCARTIF1" | compressor (1 byte: b"Z" zstd, b"X" lzma) | meta length (u32 LE) | meta (JSON, UTF-8)
    | CRC-32 of meta + payload (u32 LE) | payload length (u64 LE) | compressed payload

    payload = index length (u64 LE) | index (JSON) | tensor bytes (little-endian, C order)

The meta, stored plainly, holds the trial config (so a fresh model can be built from the file alone), its hash,
the scheme of every group and the stored bytes per group; keeping it outside the compressed part makes the file
size independent of the config's digits (so the cap flag can be tested at the exact byte). The index holds, for
every stored part, its dtype, shape, offset and length, plus tied-weight aliases and the calibrated weights.
Quantized tensors are int8 codes (int6/int5 values live in int8 containers; zstd/lzma squeeze out the unused
bits) plus fp16 row scales; codes are laid out first, then scales, then passthrough tensors.

Artifact bytes = bytes of the compressed file on disk + code bytes, counted by the rule `quant.code_bytes`
(see `code_bytes.py`; recorded in the meta as `code_rule`, in result.json as `artifact_code_rule`).

Calibration tokens (`calib_tokens`, LongTensor [n_seqs, seq_len]) must be drawn by the caller from the
TRAINING stream; the model passed in must be the one whose weights are evaluated (the EMA copy when EMA is on).
"""

from __future__ import annotations

import json
import lzma
import os
import struct
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
import zstandard
from torch import Tensor, nn

from clowncar.errors import DataError
from clowncar.worker.code_bytes import code_bytes, code_files  # noqa: F401  (re-exported: callers import them here)
from clowncar.worker.quant import GROUPS, QTensor, QuantResult, quantize_model

MAGIC = b"CCARTIF1"
FORMAT = "clowncar-artifact/1"
_PREFIX = struct.Struct("<8scI")
_CHECK = struct.Struct("<IQ")
_COMPRESSORS = {"zstd": b"Z", "lzma": b"X"}
_DTYPES = {"float16": torch.float16, "float32": torch.float32, "float64": torch.float64,
           "bfloat16": torch.bfloat16, "int8": torch.int8, "uint8": torch.uint8, "int16": torch.int16,
           "int32": torch.int32, "int64": torch.int64, "bool": torch.bool}
_NUMPY = {"float16": np.float16, "float32": np.float32, "float64": np.float64, "int8": np.int8,
          "uint8": np.uint8, "int16": np.int16, "int32": np.int32, "int64": np.int64, "bool": np.bool_}
_PART_ORDER = {"q": 0, "scale": 1, "data": 2}


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


# -- serialize ---------------------------------------------------------------------------------------------------

def _tensor_bytes(t: Tensor) -> bytes:
    if t.dtype == torch.bfloat16:  # numpy has no bf16: store its 16-bit pattern
        t = t.view(torch.int16)
    return t.detach().cpu().contiguous().numpy().tobytes()


def serialize(result: QuantResult) -> bytes:
    """The uncompressed payload: index length, JSON index, tensor bytes."""
    parts = []
    for name, qt in result.tensors.items():
        for kind in ("q", "scale", "data"):
            t = getattr(qt, kind)
            if t is not None:
                parts.append((_PART_ORDER[kind], name, kind, t))
    parts.sort(key=lambda p: (p[0], p[1]))
    entries: dict[str, dict[str, Any]] = {
        name: {"group": qt.group, "scheme": qt.scheme, "shape": list(qt.shape), "dtype": _dtype_name(qt.dtype),
               "parts": {}} for name, qt in result.tensors.items()}
    blobs, offset = [], 0
    for _, name, kind, t in parts:
        raw = _tensor_bytes(t)
        entries[name]["parts"][kind] = {"dtype": _dtype_name(t.dtype), "shape": list(t.shape),
                                        "offset": offset, "nbytes": len(raw)}
        blobs.append(raw)
        offset += len(raw)
    index = {"aliases": result.aliases, "calibrated": result.calibrated, "tensors": entries}
    head = json.dumps(index, separators=(",", ":")).encode()
    return struct.pack("<Q", len(head)) + head + b"".join(blobs)


def pack(meta: dict[str, Any], payload: bytes, compressor: str, zstd_level: int = 22) -> bytes:
    """The file's bytes: prefix, plain meta, checksum, compressed payload."""
    if compressor == "zstd":
        body = zstandard.ZstdCompressor(level=zstd_level).compress(payload)
    elif compressor == "lzma":
        body = lzma.compress(payload, preset=9 | lzma.PRESET_EXTREME)
    else:
        raise ValueError(f"unknown compressor {compressor!r}")
    head = json.dumps({"format": FORMAT, **meta}, separators=(",", ":")).encode()
    crc = zlib.crc32(payload, zlib.crc32(head))
    return _PREFIX.pack(MAGIC, _COMPRESSORS[compressor], len(head)) + head + _CHECK.pack(crc, len(payload)) + body


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def group_bytes(result: QuantResult) -> dict[str, int]:
    """Uncompressed stored bytes per group."""
    out = dict.fromkeys(GROUPS, 0)
    for qt in result.tensors.values():
        out[qt.group] += sum(t.numel() * t.element_size() for t in (qt.q, qt.scale, qt.data) if t is not None)
    return out


def write_artifact(result: QuantResult, cfg: Any, path: str | Path) -> dict[str, Any]:
    """Serialize + compress `result` to `path` (temp name, then rename). Returns the size fields."""
    q = cfg.quant
    meta = {"config": cfg.to_dict(), "config_hash": cfg.content_hash(), "quant_schemes": result.schemes,
            "calib_tokens": result.calib_tokens, "group_bytes": group_bytes(result), "torch": torch.__version__,
            "code_rule": q.code_bytes}
    blob = pack(meta, serialize(result), q.compressor, q.zstd_level)
    path = Path(path)
    write_atomic(path, blob)
    file_bytes = path.stat().st_size
    code = code_bytes(q.code_bytes)
    total = file_bytes + code
    return {"artifact_bytes": total, "artifact_file_bytes": file_bytes, "artifact_code_bytes": code,
            "artifact_code_rule": q.code_bytes, "over_cap": total > q.size_cap_bytes}


def calib_batch(tokens: Any, seq_len: int) -> Tensor | None:
    """Calibration tokens as LongTensor [n_seqs, seq_len]: a 2-D tensor is used as is; a 1-D stream (tensor or
    numpy array, e.g. `TokenStream.take(n)`) is cut into whole sequences of `seq_len`."""
    if tokens is None:
        return None
    t = torch.as_tensor(np.asarray(tokens) if not isinstance(tokens, Tensor) else tokens).long()
    if t.ndim == 2:
        return t
    n = t.numel() // seq_len
    if n == 0:
        raise ValueError(f"need at least {seq_len} calibration tokens, got {t.numel()}")
    return t[: n * seq_len].view(n, seq_len)


def export_artifact(model: nn.Module, cfg: Any, calib_tokens: Any, path: str | Path) -> dict[str, Any]:
    """Quantize `model` (GPTQ Hessians from `calib_tokens`: TRAINING tokens, LongTensor [n_seqs, seq_len] or a
    1-D stream cut into `quant.gptq_calib_seq_len` sequences), write the artifact to `path`, and return the
    result.json quant fields. Pass the model whose weights are evaluated (the EMA copy when EMA is on)."""
    t0 = time.perf_counter()
    calib = calib_batch(calib_tokens, cfg.quant.gptq_calib_seq_len)
    result = quantize_model(model, cfg.quant, calib)
    fields = write_artifact(result, cfg, path)
    return {**fields, "quant_schemes": result.schemes, "quant_seconds": time.perf_counter() - t0}


# -- load --------------------------------------------------------------------------------------------------------

def unpack(raw: bytes) -> tuple[dict[str, Any], bytes]:
    """(meta, decompressed payload), checked against the stored CRC-32 and length."""
    if len(raw) < _PREFIX.size:
        raise ValueError("file is shorter than the artifact prefix")
    magic, comp, meta_len = _PREFIX.unpack_from(raw)
    if magic != MAGIC:
        raise ValueError("not a clowncar artifact (bad magic)")
    head = raw[_PREFIX.size:_PREFIX.size + meta_len]
    crc, length = _CHECK.unpack_from(raw, _PREFIX.size + meta_len)
    body = raw[_PREFIX.size + meta_len + _CHECK.size:]
    if comp == b"Z":
        payload = zstandard.ZstdDecompressor().decompress(body, max_output_size=length)
    elif comp == b"X":
        payload = lzma.decompress(body)
    else:
        raise ValueError(f"unknown compressor tag {comp!r}")
    if len(payload) != length or zlib.crc32(payload, zlib.crc32(head)) != crc:
        raise ValueError("checksum mismatch (file corrupt or truncated)")
    meta = json.loads(head.decode())
    if meta.get("format") != FORMAT:
        raise ValueError(f"unknown format {meta.get('format')!r}")
    return meta, payload


def _part(blob: memoryview, spec: dict[str, Any]) -> Tensor:
    name, shape, off, nbytes = spec["dtype"], [int(s) for s in spec["shape"]], int(spec["offset"]), int(spec["nbytes"])
    dtype = _DTYPES[name]
    itemsize = torch.empty((), dtype=dtype).element_size()
    if off < 0 or off + nbytes > len(blob) or nbytes != itemsize * int(np.prod(shape, dtype=np.int64)):
        raise ValueError("tensor bytes out of range")
    view = np.frombuffer(blob[off:off + nbytes], dtype=np.int16 if name == "bfloat16" else _NUMPY[name])
    t = torch.from_numpy(view.copy()).reshape(shape)
    return t.view(torch.bfloat16) if name == "bfloat16" else t


def read_artifact(path: str | Path) -> tuple[QuantResult, dict[str, Any]]:
    """The stored tensors (still quantized) and the meta. Any damage is a one-line DataError."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(f"cannot read artifact {path}: {err.strerror or err}") from None
    try:
        meta, payload = unpack(raw)
        (index_len,) = struct.unpack_from("<Q", payload)
        index = json.loads(payload[8:8 + index_len].decode())
        blob = memoryview(payload)[8 + index_len:]
        tensors = {}
        for name, e in index["tensors"].items():
            parts = {kind: _part(blob, spec) for kind, spec in e["parts"].items()}
            tensors[name] = QTensor(name, e["group"], e["scheme"], tuple(e["shape"]), _DTYPES[e["dtype"]],
                                    q=parts.get("q"), scale=parts.get("scale"), data=parts.get("data"))
            tensors[name].dequantize()  # shapes must agree now, not later inside the model
        result = QuantResult(tensors=tensors, aliases=dict(index.get("aliases", {})),
                             calibrated=list(index.get("calibrated", [])),
                             calib_tokens=int(meta.get("calib_tokens", 0)),
                             schemes=dict(meta.get("quant_schemes", {})))
    except (ValueError, KeyError, TypeError, IndexError, AttributeError, RuntimeError, struct.error,
            zstandard.ZstdError, lzma.LZMAError, EOFError, UnicodeDecodeError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(f"{path} is not a valid clowncar artifact: {reason}") from None
    return result, {**meta, "calibrated": result.calibrated}


def load_artifact(path: str | Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """(state dict of dequantized tensors, meta: config, config_hash, quant_schemes, calibrated, ...)."""
    result, meta = read_artifact(path)
    return result.dequantized(), meta


def load_model_from_artifact(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, Any]:
    """A fresh model built from the config stored in the artifact, with the dequantized weights loaded.
    Returns (model in eval mode, TrialConfig)."""
    from clowncar.config import from_dict
    from clowncar.model import build_model

    state, meta = load_artifact(path)
    cfg = from_dict(meta["config"])
    model = build_model(cfg)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        raise DataError(f"{path}: the artifact does not fit the model its config builds ({first})") from None
    return model.to(device).eval(), cfg
