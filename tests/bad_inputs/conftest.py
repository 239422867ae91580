"""Builders for the bad-input corpus (tests/bad_inputs/cases/*.yaml): the files a case names, written into its
own directory from a small description: plain text, bytes, nested brackets, Parameter Golf shards with chosen
header fields, and artifacts made from a real one (a tiny model quantized and written by clowncar) with one
field changed, re-packed with a correct checksum so that the field itself is what the reader must catch."""

from __future__ import annotations

import json
import random
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
LEGACY = REPO.parent / "shared" / "legacy-runs"
SHARD_MAGIC, SHARD_VERSION = 20240520, 1


@pytest.fixture(scope="session")
def tiny_dataset(kjv_dataset: Callable[..., Path]) -> Path:
    """Shards and a 320-id tokenizer built by clowncar.data from the first 600 KJV verses."""
    return kjv_dataset(lines=600, vocab_size=320, val_docs=60, shard_tokens=8192)


@pytest.fixture(scope="session")
def valid_artifact(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The bytes of a real artifact: a tiny crawler (vocab 320, width 32) quantized and written by clowncar."""
    import torch

    from clowncar.config_load import load_config
    from clowncar.model import build_model
    from clowncar.worker.artifact import export_artifact

    cfg = load_config(preset="tiny-cpu", overrides=[
        "model.vocab_size=320", "model.model_dim=32", "model.num_heads=2", "model.num_kv_heads=1",
        "model.bigram_vocab_size=64", "model.bigram_dim=16", "model.inst_dim=4", "quant.gptq_calib_seqs=2",
        "quant.gptq_calib_seq_len=32", "eval.seq_len=32", "eval.stride=8", "eval.batch_tokens=1024",
        "eval.max_tokens=512", "train.train_seq_len=32", "train.train_batch_tokens=256", "train.grad_accum=2"])
    torch.manual_seed(0)
    model = build_model(cfg)
    path = tmp_path_factory.mktemp("artifact") / "model.ptz"
    export_artifact(model, cfg, torch.randint(0, 320, (2, 32)), path)
    return path.read_bytes()


@pytest.fixture(scope="session")
def bombs() -> dict[str, bytes]:
    """Compressed zeros: 1 GiB through zstd (~32 KB), 96 MiB through lzma (~15 KB) and zlib (~100 KB), streamed
    (never held)."""
    import lzma

    import zstandard

    zeros = bytes(1 << 20)
    z = zstandard.ZstdCompressor(level=1).compressobj()
    x = lzma.LZMACompressor(preset=0)
    g = zlib.compressobj(1)
    return {"zstd": b"".join(z.compress(zeros) for _ in range(1024)) + z.flush(),
            "lzma": b"".join(x.compress(zeros) for _ in range(96)) + x.flush(),
            "zlib": b"".join(g.compress(zeros) for _ in range(96)) + g.flush(),
            "zstd_bytes": 1 << 30, "lzma_bytes": 96 << 20, "zlib_bytes": 96 << 20}  # type: ignore[dict-item]


def _merge(base: Any, top: Any) -> Any:
    """Deep merge for the artifact edits: a None value deletes the key."""
    if not isinstance(base, dict) or not isinstance(top, dict):
        return top
    out = dict(base)
    for key, value in top.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _merge(out.get(key), value)
    return out


def repack(meta: bytes, payload: bytes, tag: bytes = b"Z", body: bytes | None = None,
           declared: int | None = None) -> bytes:
    """An artifact file with a correct checksum for exactly these meta and payload bytes."""
    import lzma

    import zstandard

    from clowncar.worker.artifact import _CHECK, _PREFIX, MAGIC

    if body is None:
        body = zstandard.ZstdCompressor(level=3).compress(payload) if tag != b"X" else lzma.compress(payload)
    crc = zlib.crc32(payload, zlib.crc32(meta))
    length = len(payload) if declared is None else declared
    return _PREFIX.pack(MAGIC, tag, len(meta)) + meta + _CHECK.pack(crc, length) + body


def _raw(value: str | dict[str, Any]) -> bytes:
    """Raw bytes for the meta or the index: text, {hex: ...}, or {deep: N} (a JSON list nested N deep)."""
    if isinstance(value, str):
        return value.encode()
    if "hex" in value:
        return bytes.fromhex(value["hex"])
    return b"[" * value["deep"] + b"]" * value["deep"]


def artifact_bytes(valid: bytes, bombs: dict[str, bytes], edit: dict[str, Any]) -> bytes:
    """A valid artifact with the edits of one case applied (see cases/artifacts.yaml for the keys)."""
    from clowncar.worker.artifact import unpack

    meta, payload = unpack(valid)
    (index_len,) = struct.unpack_from("<Q", payload)
    index, blob = json.loads(payload[8:8 + index_len]), payload[8 + index_len:]
    if "bomb" in edit:
        kind = edit["bomb"]
        declared = edit.get("declared", bombs[f"{kind}_bytes"])
        tag = {"zstd": b"Z", "lzma": b"X", "zlib": b"G"}[kind]
        return repack(json.dumps(meta).encode(), b"", tag, bombs[kind], declared)
    meta = _merge(meta, edit.get("meta", {}))
    if "meta_config" in edit:
        meta["config"] = _merge(meta["config"], edit["meta_config"])
    index = _merge(index, edit.get("index", {}))
    if "tensor" in edit:  # edit one stored tensor's entry, or one of its parts (default: the first tensor)
        spec = edit["tensor"]
        name = spec.get("name", next(iter(index["tensors"])))
        entry = index["tensors"][name]
        if "part" in spec:
            entry["parts"][spec["part"]] = _merge(entry["parts"][spec["part"]], spec.get("set", {}))
        else:
            index["tensors"][name] = _merge(entry, spec.get("set", {}))
    head = _raw(edit["meta_raw"]) if "meta_raw" in edit else json.dumps(meta).encode()
    index_raw = _raw(edit["index_raw"]) if "index_raw" in edit else json.dumps(index).encode()
    payload = struct.pack("<Q", edit.get("index_len", len(index_raw))) + index_raw + blob
    raw = bytearray(repack(head, payload, edit.get("compressor", "Z").encode()))
    if "magic" in edit:
        raw[:8] = edit["magic"].encode()
    if "tag" in edit:  # the compressor byte alone, the body left as it was compressed
        raw[8:9] = edit["tag"].encode()
    if "meta_len" in edit:
        raw[9:13] = struct.pack("<I", edit["meta_len"])
    if "flip" in edit:
        raw[edit["flip"]] ^= 0xFF
    if "truncate" in edit:
        del raw[edit["truncate"]:]
    return bytes(raw)


def shard_bytes(spec: dict[str, Any]) -> bytes:
    """A shard with chosen header fields: magic, version, count (header), tokens (written), value, header_len."""
    header = np.zeros(256, dtype="<i4")
    header[:3] = (spec.get("magic", SHARD_MAGIC), spec.get("version", SHARD_VERSION), spec.get("count", 0))
    n = spec.get("tokens", spec.get("count", 0))
    tokens = np.full(n, spec["value"], dtype="<u2") if "value" in spec else (np.arange(n) % 300).astype("<u2")
    if n > 1 and "value" not in spec:
        tokens[0] = 1  # a document start (BOS)
    return header.tobytes()[:spec.get("header_len", 1024)] + tokens.tobytes() + bytes(spec.get("trailing", 0))


@pytest.fixture
def write_case_files(request: pytest.FixtureRequest) -> Callable[[Path, dict[str, Any], Callable[[str], str]], None]:
    """Write one case's files under its directory. A value is text (placeholders filled), or one of:
    {hex}, {random: N}, {nested: {open, close, depth, prefix, inner}}, {repeat: {text, times}}, {shard: ...},
    {artifact: ...}, {dir: true}."""

    def write(root: Path, files: dict[str, Any], fill: Callable[[str], str]) -> None:
        for name, spec in files.items():
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(spec, str):
                path.write_text(fill(spec), encoding="utf-8")
            elif "dir" in spec:
                path.mkdir(exist_ok=True)
            elif "hex" in spec:
                path.write_bytes(bytes.fromhex(spec["hex"]))
            elif "random" in spec:
                path.write_bytes(random.Random(name).randbytes(spec["random"]))
            elif "nested" in spec:
                n = spec["nested"]
                path.write_text(n.get("prefix", "") + n["open"] * n["depth"] + n.get("inner", "")
                                + n["close"] * n["depth"] + "\n")
            elif "repeat" in spec:
                path.write_text(spec["repeat"]["text"] * spec["repeat"]["times"])
            elif "shard" in spec:
                path.write_bytes(shard_bytes(spec["shard"]))
            elif "artifact" in spec:  # the real artifact (and the bombs) are made once, by the first case using them
                edit = spec["artifact"] or {}
                bombs = request.getfixturevalue("bombs") if "bomb" in edit else {}
                path.write_bytes(artifact_bytes(request.getfixturevalue("valid_artifact"), bombs, edit))
            else:
                raise ValueError(f"unknown file kind in {spec}")

    return write
