"""The size-capped artifact: quantize a model, serialize it without pickle, compress, and load it back (the
model rebuilt from it: `artifact_model.py`).

File layout (nothing in it can execute code on load):

    b"CCARTIF1" | compressor (1 byte: b"Z" zstd, b"X" lzma, b"G" zlib) | meta length (u32 LE) | meta (JSON, UTF-8)
    | CRC-32 of meta + payload (u32 LE) | payload length (u64 LE) | compressed payload

    payload = index length (u64 LE) | index (JSON) | tensor bytes (little-endian, C order)

The meta, stored plainly, holds the trial config (so a fresh model can be built from the file alone), its hash,
the scheme of every group and the stored bytes per group; keeping it outside the compressed part makes the file
size independent of the config's digits (so the cap flag can be tested at the exact byte). The index holds, for
every stored part, its dtype, shape, offset and length, plus tied-weight aliases and the calibrated weights.
Quantized tensors are int8 codes (int6/int5 values live in int8 containers; zstd/lzma squeeze out the unused
bits) plus fp16 row scales; codes are laid out first, then scales, then passthrough tensors.

Artifact bytes = bytes of the compressed file on disk + code bytes, counted by the rule `quant.code_bytes`
(see `code_bytes.py`; recorded in the meta as `code_rule` with the count as `code_bytes`, in result.json as
`artifact_code_rule` and `artifact_code_bytes`). A trial's artifact also keeps the sha256 of the tokenizer the
model was trained with (`tokenizer_sha256`; files written before it have none).

Calibration tokens (`calib_tokens`, LongTensor [n_seqs, seq_len]) must be drawn by the caller from the
TRAINING stream; the model passed in must be the one whose weights are evaluated (the EMA copy when EMA is on).
"""

from __future__ import annotations

import hashlib
import json
import lzma
import math
import os
import re
import struct
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
import zstandard
from torch import Tensor, nn

from clowncar.data.paths import require_regular_file
from clowncar.errors import DataError
from clowncar.worker.code_bytes import code_bytes, code_files  # noqa: F401  (re-exported: callers import them here)
from clowncar.worker.quant import GROUPS, QTensor, QuantResult, quantize_model

ARTIFACT_FILE = "model.ptz"
"""The artifact's name in a trial's folder."""
MAGIC = b"CCARTIF1"
FORMAT = "clowncar-artifact/1"
_PREFIX = struct.Struct("<8scI")
_CHECK = struct.Struct("<IQ")
_COMPRESSORS = {"zstd": b"Z", "lzma": b"X", "zlib": b"G"}
ZLIB_LEVEL = 9  # the reference train_gpt.py's export: zlib.compress(payload, level=9)
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
    elif compressor == "zlib":
        body = zlib.compress(payload, level=ZLIB_LEVEL)
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


def write_artifact(result: QuantResult, cfg: Any, path: str | Path, tokenizer_sha256: str | None = None
                   ) -> dict[str, Any]:
    """Serialize + compress `result` to `path` (temp name, then rename). Returns the size fields. With
    `tokenizer_sha256` (the digest of the tokenizer the model was trained with) the file keeps it, so that
    `artifact eval` can refuse another tokenizer: its ids would be read as other pieces."""
    q = cfg.quant
    code = code_bytes(q.code_bytes)  # the code as it is now, beside the model it made: kept in the file, since
    # the checkout that reads the file later (after a pull, an edit) may count other bytes under the same rule
    meta = {"config": cfg.to_dict(), "config_hash": cfg.content_hash(), "quant_schemes": result.schemes,
            "calib_tokens": result.calib_tokens, "group_bytes": group_bytes(result), "torch": torch.__version__,
            "code_rule": q.code_bytes, "code_bytes": code}
    if tokenizer_sha256 is not None:
        meta["tokenizer_sha256"] = tokenizer_sha256
    blob = pack(meta, serialize(result), q.compressor, q.zstd_level)
    path = Path(path)
    write_atomic(path, blob)
    file_bytes = path.stat().st_size
    total = file_bytes + code
    # where the file is and what it holds, for the store's artifacts table (the bytes just written, not re-read)
    return {"artifact_bytes": total, "artifact_file_bytes": file_bytes, "artifact_code_bytes": code,
            "artifact_code_rule": q.code_bytes, "over_cap": total > q.size_cap_bytes,
            "artifact_path": str(path.resolve()), "artifact_sha256": hashlib.sha256(blob).hexdigest()}


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


def export_artifact(model: nn.Module, cfg: Any, calib_tokens: Any, path: str | Path,
                    tokenizer_sha256: str | None = None) -> dict[str, Any]:
    """Quantize `model` (GPTQ Hessians from `calib_tokens`: TRAINING tokens, LongTensor [n_seqs, seq_len] or a
    1-D stream cut into `quant.gptq_calib_seq_len` sequences), write the artifact to `path`, and return the
    result.json quant fields. Pass the model whose weights are evaluated (the EMA copy when EMA is on)."""
    t0 = time.perf_counter()
    calib = calib_batch(calib_tokens, cfg.quant.gptq_calib_seq_len)
    result = quantize_model(model, cfg.quant, calib)
    fields = write_artifact(result, cfg, path, tokenizer_sha256)
    return {**fields, "quant_schemes": result.schemes, "quant_seconds": time.perf_counter() - t0}


# -- load --------------------------------------------------------------------------------------------------------
# An artifact may come from anyone, so every field is checked before it is used and nothing is allocated from a
# size the file declares until that size is bounded: the payload by the compressed size, the tensors by the
# payload, the model by the stored tensors.

MAX_FILE_BYTES = 2 << 30
"""A file is read whole, so its size is bounded first: 2 GiB is 134x the challenge's 16 MB cap and more than an
fp16 export of any model a trial here trains; a larger file is no artifact of ours (a disk image, a checkpoint)."""
MIN_PAYLOAD_LIMIT = 64 << 20
PAYLOAD_RATIO_LIMIT = 64
"""The decompressed payload may be at most max(64 MiB, 64 x the compressed bytes). Real artifacts compress about
1.2x (int6/int8 codes are nearly incompressible); a forged 236 KB file used to inflate to 3.4 GB."""
LZMA_MEMLIMIT = 256 << 20
"""The lzma decoder's own memory (its dictionary): `pack` writes preset 9e, which needs about 65 MiB."""
_PART_KINDS = ("q", "scale", "data")


def payload_limit(compressed_bytes: int) -> int:
    return max(MIN_PAYLOAD_LIMIT, PAYLOAD_RATIO_LIMIT * compressed_bytes)


def _decompress(comp: bytes, body: bytes, length: int) -> bytes:
    """At most `length` + 1 bytes of the payload, streamed: a body that inflates past its declared length stops
    there instead of filling memory."""
    if comp == b"Z":
        out = bytearray()
        with zstandard.ZstdDecompressor().stream_reader(body) as reader:
            while len(out) <= length:
                chunk = reader.read(min(1 << 20, length + 1 - len(out)))
                if not chunk:
                    break
                out += chunk
        return bytes(out)
    if comp == b"X":
        return lzma.LZMADecompressor(memlimit=LZMA_MEMLIMIT).decompress(body, max_length=length + 1)
    if comp == b"G":
        return zlib.decompressobj().decompress(body, length + 1)
    raise ValueError(f"unknown compressor tag {comp!r}")


def unpack(raw: bytes) -> tuple[dict[str, Any], bytes]:
    """(meta, decompressed payload), checked against the stored CRC-32 and length."""
    if len(raw) < _PREFIX.size:
        raise ValueError("file is shorter than the artifact prefix")
    magic, comp, meta_len = _PREFIX.unpack_from(raw)
    if magic != MAGIC:
        raise ValueError("not a clowncar artifact (bad magic)")
    if _PREFIX.size + meta_len + _CHECK.size > len(raw):
        raise ValueError(f"meta length {meta_len} runs past the end of the file (truncated?)")
    head = raw[_PREFIX.size:_PREFIX.size + meta_len]
    crc, length = _CHECK.unpack_from(raw, _PREFIX.size + meta_len)
    body = raw[_PREFIX.size + meta_len + _CHECK.size:]
    if length > payload_limit(len(body)):
        raise ValueError(f"declares a {length:,}-byte payload, more than the {payload_limit(len(body)):,} bytes "
                         f"allowed for {len(body):,} compressed bytes (a decompression bomb?)")
    payload = _decompress(comp, body, length)
    if len(payload) != length or zlib.crc32(payload, zlib.crc32(head)) != crc:
        raise ValueError("checksum mismatch (file corrupt or truncated)")
    meta = json.loads(head.decode())
    _check_meta(meta)
    return meta, payload


def _check_meta(meta: Any) -> None:
    if not isinstance(meta, dict):
        raise ValueError(f"meta is a {type(meta).__name__}, not an object")
    if meta.get("format") != FORMAT:
        raise ValueError(f"unknown format {meta.get('format')!r}")
    if not isinstance(meta.get("config"), dict) or not isinstance(meta.get("config_hash"), str):
        raise ValueError("meta lacks the config or its hash")
    schemes = meta.get("quant_schemes", {})
    if not isinstance(schemes, dict) or not all(isinstance(v, str) for v in schemes.values()):
        raise ValueError("meta field quant_schemes is not a map of group to scheme")
    if not _is_count(meta.get("calib_tokens", 0)):
        raise ValueError("meta field calib_tokens is not a non-negative integer")
    digest = meta.get("tokenizer_sha256", "0" * 64)  # absent in files written before it was recorded
    if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise ValueError("meta field tokenizer_sha256 is not a sha256 hex digest")


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _shape(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, list) or len(value) > 8 or not all(_is_count(d) for d in value):
        raise ValueError(f"{what}: shape {value!r} is not a list of at most 8 non-negative integers")
    return tuple(value)


def _part(blob: memoryview, spec: Any, what: str) -> Tensor:
    if not isinstance(spec, dict) or spec.get("dtype") not in _DTYPES:
        raise ValueError(f"{what}: unknown dtype {spec.get('dtype') if isinstance(spec, dict) else spec!r}")
    name, shape = spec["dtype"], _shape(spec.get("shape"), what)
    off, nbytes = spec.get("offset"), spec.get("nbytes")
    if not (_is_count(off) and _is_count(nbytes)) or off + nbytes > len(blob):
        raise ValueError(f"{what}: bytes [{off}, +{nbytes}) out of range (payload holds {len(blob)})")
    if nbytes != _DTYPES[name].itemsize * math.prod(shape):
        raise ValueError(f"{what}: {nbytes} bytes do not hold a {name} tensor of shape {list(shape)}")
    view = np.frombuffer(blob[off:off + nbytes], dtype=np.int16 if name == "bfloat16" else _NUMPY[name])
    t = torch.from_numpy(view.copy()).reshape(shape)
    return t.view(torch.bfloat16) if name == "bfloat16" else t


def _qtensor(blob: memoryview, name: Any, e: Any) -> QTensor:
    if not isinstance(name, str) or not isinstance(e, dict) or not isinstance(e.get("parts"), dict):
        raise ValueError(f"tensor entry {name!r} is not an object with parts")
    if e.get("group") not in GROUPS or not isinstance(e.get("scheme"), str) or e.get("dtype") not in _DTYPES:
        raise ValueError(f"tensor {name}: bad group, scheme or dtype")
    shape = _shape(e.get("shape"), name)
    kinds = set(e["parts"])
    if kinds not in ({"data"}, {"q", "scale"}):
        raise ValueError(f"tensor {name}: parts {sorted(kinds)} (expected data, or q and scale)")
    parts = {kind: _part(blob, e["parts"][kind], f"{name}.{kind}") for kind in _PART_KINDS if kind in kinds}
    stored = parts.get("data", parts.get("q"))
    if stored.numel() != math.prod(shape):
        raise ValueError(f"tensor {name}: {stored.numel()} stored values for shape {list(shape)}")
    if "q" in parts and (parts["q"].ndim != 2 or parts["scale"].shape != parts["q"].shape[:1]):
        raise ValueError(f"tensor {name}: scales {list(parts['scale'].shape)} do not match codes "
                         f"{list(parts['q'].shape)}")
    return QTensor(name, e["group"], e["scheme"], shape, _DTYPES[e["dtype"]], q=parts.get("q"),
                   scale=parts.get("scale"), data=parts.get("data"))


def _index(payload: bytes) -> tuple[dict[str, Any], memoryview]:
    if len(payload) < 8:
        raise ValueError("payload is shorter than its index length")
    (index_len,) = struct.unpack_from("<Q", payload)
    if 8 + index_len > len(payload):
        raise ValueError(f"index length {index_len} runs past the payload")
    index = json.loads(payload[8:8 + index_len].decode())
    if not isinstance(index, dict) or not isinstance(index.get("tensors"), dict):
        raise ValueError("index lacks its tensors")
    aliases, calibrated = index.get("aliases", {}), index.get("calibrated", [])
    if not isinstance(aliases, dict) or any(not isinstance(a, str) or t not in index["tensors"]
                                            for a, t in aliases.items()):
        raise ValueError("index aliases name tensors that are not stored")
    if not isinstance(calibrated, list) or not all(isinstance(c, str) for c in calibrated):
        raise ValueError("index field calibrated is not a list of names")
    return index, memoryview(payload)[8 + index_len:]


def read_artifact(path: str | Path) -> tuple[QuantResult, dict[str, Any]]:
    """The stored tensors (still quantized) and the meta. Any damage is a one-line DataError. The meta gains
    `config_hash_ok`: whether its config_hash is the hash of the config stored beside it."""
    from clowncar.config import dict_hash

    path = Path(path)
    require_regular_file(path, "artifact")  # /dev/zero or a FIFO would be read forever
    try:
        if (size := path.stat().st_size) > MAX_FILE_BYTES:
            raise DataError(f"{path} is not a clowncar artifact: {size:,} bytes, over the {MAX_FILE_BYTES:,}-byte "
                            f"limit of what is read whole")
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(f"cannot read artifact {path}: {err.strerror or err}") from None
    try:
        meta, payload = unpack(raw)
        index, blob = _index(payload)
        tensors = {name: _qtensor(blob, name, e) for name, e in index["tensors"].items()}
        for qt in tensors.values():
            qt.dequantize()  # shapes must agree now, not later inside the model
        result = QuantResult(tensors=tensors, aliases=dict(index.get("aliases", {})),
                             calibrated=list(index.get("calibrated", [])),
                             calib_tokens=int(meta.get("calib_tokens", 0)),
                             schemes=dict(meta.get("quant_schemes", {})))
    except (ValueError, KeyError, TypeError, IndexError, AttributeError, RuntimeError, RecursionError,
            struct.error, zstandard.ZstdError, lzma.LZMAError, zlib.error, EOFError, MemoryError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(f"{path} is not a valid clowncar artifact: {reason}") from None
    ok = dict_hash(meta["config"]) == meta["config_hash"]
    return result, {**meta, "calibrated": result.calibrated, "config_hash_ok": ok}


def load_artifact(path: str | Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """(state dict of dequantized tensors, meta: config, config_hash, quant_schemes, calibrated, ...)."""
    result, meta = read_artifact(path)
    return result.dequantized(), meta
