"""`clowncar data fetch-fineweb` against a loopback server laid out like the Hugging Face hub.

HF_ENDPOINT points huggingface_hub at 127.0.0.1, so the real `hf_hub_download` code path runs (HEAD for
metadata, GET for bytes, its cache under HF_HOME); nothing leaves the machine.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from clowncar.data.shards import write_shard

REPO = "willdepueoai/parameter-golf"


def _publish(hub: Path, tokenizer: Path, train_shards: int = 3) -> Path:
    """An export like the challenge's: <repo>/datasets/{manifest.json, datasets/<name>/..., tokenizers/...}."""
    root = hub / REPO / "datasets"
    ds = root / "datasets" / "fineweb10B_sp1024"
    rng = np.random.default_rng(1)
    write_shard(ds / "fineweb_val_000000.bin", np.concatenate([[1], rng.integers(4, 512, 300)]))
    for i in range(train_shards):
        write_shard(ds / f"fineweb_train_{i:06d}.bin", np.concatenate([[1], rng.integers(4, 512, 200 + i)]))
    (root / "tokenizers").mkdir(parents=True)
    (root / "tokenizers" / "fineweb_1024_bpe.model").write_bytes(tokenizer.read_bytes())
    (root / "tokenizers" / "fineweb_1024_bpe.vocab").write_bytes(tokenizer.with_suffix(".vocab").read_bytes())
    manifest = {
        "version": "10B", "num_val_docs": 1,
        "tokenizers": [{"name": "sp_bpe_1024", "kind": "sentencepiece_bpe", "vocab_size": 512,
                        "model_path": "tokenizers/fineweb_1024_bpe.model",
                        "vocab_path": "tokenizers/fineweb_1024_bpe.vocab"}],
        "datasets": [{"name": "fineweb10B_sp1024", "tokenizer_name": "sp_bpe_1024", "vocab_size": 512,
                      "stats": {"files_train": train_shards, "files_val": 1}}],
    }
    (root / "manifest.json").write_text(json.dumps(manifest))
    return ds


@pytest.fixture
def fetch(run_cli: Callable[..., Any], hub_server: tuple[str, Path, list[str]], tmp_path: Path
          ) -> Callable[..., Any]:
    endpoint, _, _ = hub_server
    env = {"HF_ENDPOINT": endpoint, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "0",
           "HF_HUB_DISABLE_TELEMETRY": "1", "HF_TOKEN": "", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    return lambda *args: run_cli("data", "fetch-fineweb", *args, env=env)


def test_fetch_downloads_val_and_the_requested_train_prefix_through_the_hub_client(
        fetch: Callable[..., Any], hub_server: tuple[str, Path, list[str]], tmp_path: Path,
        run_cli: Callable[..., Any], tiny_tokenizer: tuple[Path, Any]) -> None:
    _, hub, requests = hub_server
    remote = _publish(hub, tiny_tokenizer[0])
    r = fetch("--variant", "sp1024", "--train-shards", "2")
    assert r.returncode == 0, r.stderr
    local = tmp_path / "data" / "datasets" / "fineweb10B_sp1024"
    assert sorted(p.name for p in local.iterdir()) == [
        "fineweb_train_000000.bin", "fineweb_train_000001.bin", "fineweb_val_000000.bin"]
    for p in local.iterdir():
        assert p.read_bytes() == (remote / p.name).read_bytes()
    tok = tmp_path / "data" / "tokenizers" / "fineweb_1024_bpe.model"
    assert tok.read_bytes() == tiny_tokenizer[0].read_bytes()
    assert (tmp_path / "data" / "manifest.json").is_file()
    assert f"GET /datasets/{REPO}/resolve/main/datasets/manifest.json" in requests
    assert any(q.startswith("HEAD ") and q.endswith("/fineweb_train_000001.bin") for q in requests)
    assert not any(q.endswith("fineweb_train_000002.bin") for q in requests)

    insp = run_cli("data", "inspect", str(local))  # finds the tokenizer through the data root's manifest
    assert insp.returncode == 0, insp.stderr
    assert f"tokenizer: {tok} (vocab" in insp.stdout

    again = fetch("--variant", "sp1024", "--train-shards", "2")
    assert again.returncode == 0 and "0 files downloaded" in again.stdout


def _assert_clean_failure(r: Any, message: str) -> None:
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in r.stderr, r.stderr


def test_fetch_refuses_more_train_shards_than_published_or_an_unknown_variant(
        fetch: Callable[..., Any], hub_server: tuple[str, Path, list[str]],
        tiny_tokenizer: tuple[Path, Any]) -> None:
    _publish(hub_server[1], tiny_tokenizer[0])
    _assert_clean_failure(fetch("--variant", "sp1024", "--train-shards", "4"),
                          "sp1024 has only 3 training shards, requested 4")
    _assert_clean_failure(fetch("--variant", "sp4096"), "dataset fineweb10B_sp4096 is not listed")
    _assert_clean_failure(fetch("--variant", "gpt2"), "unknown variant 'gpt2'")


def test_a_corrupt_or_missing_download_never_lands(fetch: Callable[..., Any], tmp_path: Path,
                                                   hub_server: tuple[str, Path, list[str]],
                                                   tiny_tokenizer: tuple[Path, Any]) -> None:
    remote = _publish(hub_server[1], tiny_tokenizer[0])
    last = remote / "fineweb_train_000002.bin"
    last.write_bytes(last.read_bytes()[:-6])  # a truncated file on the server
    _assert_clean_failure(fetch("--variant", "sp1024", "--train-shards", "3"),
                          "downloaded fineweb_train_000002.bin is corrupt: truncated shard")
    local = tmp_path / "data" / "datasets" / "fineweb10B_sp1024"
    assert sorted(p.name for p in local.iterdir()) == [
        "fineweb_train_000000.bin", "fineweb_train_000001.bin", "fineweb_val_000000.bin"]
    last.unlink()
    _assert_clean_failure(fetch("--variant", "sp1024", "--train-shards", "3"),
                          "fineweb_train_000002.bin: not found in dataset repo")
    assert len(list(local.iterdir())) == 3


def test_an_unreachable_hub_is_a_one_line_error(run_cli: Callable[..., Any], tmp_path: Path) -> None:
    r = run_cli("data", "fetch-fineweb", env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")})
    _assert_clean_failure(r, "cannot reach the hub")
    assert not (tmp_path / "data").exists()
