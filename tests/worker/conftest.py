"""Fixtures of the worker tests: a small real dataset (KJV verses through clowncar.data: a SentencePiece BPE
tokenizer and shards) and a trial config shrunk from the `tiny-cpu` preset so that a trial takes seconds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
VERSES = 1500  # ~45k tokens: a few train shards and a validation split of a few thousand tokens
VAL_DOCS = 150
VOCAB = 320

# tiny-cpu, shrunk: the model and batch are small enough for a step in a few milliseconds on one core.
TINY_OVERRIDES = [
    f"model.vocab_size={VOCAB}", "model.model_dim=32", "model.num_heads=2", "model.num_kv_heads=1",
    "model.bigram_vocab_size=64", "model.bigram_dim=16", "model.inst_dim=4",
    "train.train_seq_len=32", "train.train_batch_tokens=256", "train.grad_accum=2", "train.iterations=12",
    "train.warmdown_iters=4", "train.probe_every=4", "train.probe_seqs=2", "train.max_wallclock_seconds=0",
    "train.matrix_lr=0.04", "train.scalar_lr=0.04", "train.tied_embed_lr=0.05",
    "eval.seq_len=32", "eval.stride=8", "eval.batch_tokens=1024", "eval.max_tokens=2048",
    "quant.enabled=false",
]


@pytest.fixture(scope="session", autouse=True)
def one_thread() -> Iterator[None]:
    """One torch thread in this process and in the trials it runs: results are reproducible, and tiny models
    on a shared CPU are many times faster single-threaded than fighting over cores."""
    import torch

    before = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OMP_NUM_THREADS", "1")
        torch.set_num_threads(1)
        yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dataset directory (shards + tokenizer.model) built with clowncar.data from the first KJV verses."""
    from clowncar.data.build import build_dataset
    from clowncar.data.demo import locate_kjv

    root = tmp_path_factory.mktemp("worker-data")
    lines = locate_kjv().read_text(encoding="utf-8").splitlines()[:VERSES]
    text = root / "verses.jsonl"
    text.write_text("\n".join(json.dumps({"text": json.loads(line)["text"]}) for line in lines) + "\n")
    out = root / "kjv"
    build_dataset([text], out, vocab_size=VOCAB, val_docs=VAL_DOCS, shard_tokens=16384, progress=False,
                  log=lambda *_: None)
    return out


@pytest.fixture(scope="session")
def other_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tokenizer with the fixture data's vocabulary size but other pieces: not the one its shards were encoded
    with."""
    from clowncar.data.tokenizer import train_tokenizer

    prefix = tmp_path_factory.mktemp("other-tokenizer") / "other"
    train_tokenizer((f"verse {i} of another book, chapter {i % 7}" for i in range(400)), VOCAB, prefix, 1.0)
    return prefix.with_suffix(".model")


@pytest.fixture
def tiny_overrides(tiny_data: Path) -> list[str]:
    """Overrides on top of `--preset tiny-cpu` that point it at the fixture's data and shrink it."""
    return [f"data.dataset={tiny_data}", f"data.tokenizer={tiny_data / 'tokenizer.model'}", *TINY_OVERRIDES]


@pytest.fixture
def tiny_cfg(tiny_overrides: list[str]) -> Callable[..., Any]:
    def make(*extra: str) -> Any:
        from clowncar.config_load import load_config

        return load_config(preset="tiny-cpu", overrides=[*tiny_overrides, *extra])

    return make


def _worker_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["OMP_NUM_THREADS"] = "1"  # the same thread count everywhere: traces are bitwise reproducible
    env["GLOO_SOCKET_IFNAME"] = "lo"  # process groups talk over loopback only
    return env


@pytest.fixture
def worker_env() -> dict[str, str]:
    """Environment for worker processes: this checkout's code, one thread each, loopback networking."""
    return _worker_env()


@pytest.fixture
def run_worker(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the worker as a user would: `python -m clowncar.worker` or, with nproc > 1, under torchrun."""

    def run(args: list[str], nproc: int = 1, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        if nproc > 1:
            cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", f"--nproc-per-node={nproc}",
                   "--rdzv-backend=c10d", "--rdzv-endpoint=127.0.0.1:0", "-m", "clowncar.worker", *args]
        else:
            cmd = [sys.executable, "-m", "clowncar.worker", *args]
        return subprocess.run(cmd, capture_output=True, text=True, env=_worker_env(), timeout=timeout,
                              cwd=tmp_path)

    return run


@pytest.fixture
def read_trial() -> Callable[[Path], tuple[dict[str, Any], list[dict[str, Any]]]]:
    def read(out: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        result = json.loads((out / "result.json").read_text())
        events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
        return result, events

    return read
