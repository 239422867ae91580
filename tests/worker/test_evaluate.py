"""Evaluation: every validation target scored exactly once, sliding == non-overlapping at stride = seq_len,
and BPB = sum(nll) / (ln 2 x bytes) recomputed independently of clowncar's byte tables and eval loop."""

from __future__ import annotations

import contextlib
import importlib
import json
import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from clowncar.data.bpb import build_byte_luts
from clowncar.data.stream import load_validation_tokens
from clowncar.data.tokenizer import load_tokenizer
from clowncar.model import build_model
from clowncar.worker.evaluate import autocast, evaluate_bpb, plan_windows

from .scoring_models import Bigram, synthetic_split

HERE = Path(__file__).resolve().parent


@pytest.mark.parametrize("world_size", [1, 2, 3, 5])
@pytest.mark.parametrize("seq_len", [1, 4, 32])
@pytest.mark.parametrize("num_targets", [1, 3, 31, 32, 33, 100, 1000])
def test_windows_score_every_target_exactly_once(num_targets: int, seq_len: int, world_size: int) -> None:
    for stride in sorted({0, 1, 3, 8, seq_len}):
        counts = np.zeros(num_targets, dtype=np.int64)
        plan = plan_windows(num_targets, seq_len, stride)
        for rank in range(world_size):
            part = plan.part(rank, world_size)
            for s, f, e in zip(part.starts, part.score_from, part.ends, strict=True):
                assert 0 <= s <= f < e <= num_targets and e - s <= seq_len
                counts[f:e] += 1
        assert (counts == 1).all(), (num_targets, seq_len, stride, world_size)


def test_sliding_windows_give_each_target_at_least_seq_len_minus_stride_context() -> None:
    plan = plan_windows(1000, 64, 16)
    assert (plan.ends - plan.starts == 64).all()  # the tail window is pulled back, not shortened
    later = plan.score_from[1:] - plan.starts[1:]
    assert (later >= 64 - 16).all()
    assert plan.ends[-1] == 1000 and len(plan) == 1 + math.ceil((1000 - 64) / 16)



def _val(tiny_data: Path, seq_len: int, max_tokens: int = 0) -> np.ndarray:
    return load_validation_tokens(sorted(tiny_data.glob("fineweb_val_*.bin")), seq_len, max_tokens)


def _independent_bytes(sp: Any, tokens: np.ndarray) -> int:
    """Parameter Golf's byte rule written out from the tokenizer's pieces (no clowncar byte tables)."""
    total = 0
    for prev, tok in zip(tokens[:-1].tolist(), tokens[1:].tolist(), strict=True):
        if sp.is_control(tok) or sp.is_unknown(tok) or sp.is_unused(tok):
            continue
        if sp.is_byte(tok):
            total += 1
            continue
        piece = sp.id_to_piece(tok)
        space = piece.startswith("\u2581")
        total += len(piece.removeprefix("\u2581").encode("utf-8"))
        prev_boundary = sp.is_control(prev) or sp.is_unknown(prev) or sp.is_unused(prev)
        total += int(space and not prev_boundary)
    return total


@pytest.mark.parametrize("stride", [0, 4, 16, 32])
def test_bpb_is_total_nll_over_ln2_times_bytes(tiny_data: Path, stride: int) -> None:
    sp = load_tokenizer(tiny_data / "tokenizer.model")
    vocab = int(sp.vocab_size())
    tokens = _val(tiny_data, 32, max_tokens=1500)
    model = Bigram(vocab)
    res = evaluate_bpb(model, tokens, build_byte_luts(sp, vocab), seq_len=32, stride=stride, batch_tokens=256)

    t = torch.from_numpy(tokens.astype(np.int64))
    logp = torch.log_softmax(model.table.detach().double(), dim=-1)
    nll = -logp[t[:-1], t[1:]].sum().item()
    n_bytes = _independent_bytes(sp, tokens)
    assert res["tokens_scored"] == len(tokens) - 1
    assert res["bytes_scored"] == n_bytes
    assert res["val_loss"] == pytest.approx(nll / (len(tokens) - 1), rel=1e-6)
    assert res["val_bpb"] == pytest.approx(nll / (math.log(2) * n_bytes), rel=1e-6)


def test_sliding_with_stride_equal_to_seq_len_equals_non_overlapping(tiny_data: Path,
                                                                     tiny_cfg: Callable[..., Any]) -> None:
    cfg = tiny_cfg()
    sp = load_tokenizer(tiny_data / "tokenizer.model")
    luts = build_byte_luts(sp, cfg.model.vocab_size)
    torch.manual_seed(0)
    model = build_model(cfg)
    tokens = _val(tiny_data, 32, max_tokens=1024)
    plain = evaluate_bpb(model, tokens, luts, seq_len=32, stride=0, batch_tokens=256)
    same = evaluate_bpb(model, tokens, luts, seq_len=32, stride=32, batch_tokens=256)
    sliding = evaluate_bpb(model, tokens, luts, seq_len=32, stride=8, batch_tokens=256)
    assert same == plain
    assert sliding["tokens_scored"] == plain["tokens_scored"] == len(tokens) - 1
    assert sliding["bytes_scored"] == plain["bytes_scored"]
    assert sliding["val_loss"] != plain["val_loss"]  # more context per target: a different number


def test_world_size_without_a_process_group_is_refused(tiny_data: Path) -> None:
    sp = load_tokenizer(tiny_data / "tokenizer.model")
    for world_size in (2, 3):  # refused up front, not by torch.distributed halfway through
        with pytest.raises(ValueError, match=r"^evaluate_bpb with world_size > 1 needs an initialized process group$"):
            evaluate_bpb(Bigram(int(sp.vocab_size())), _val(tiny_data, 32, 256), build_byte_luts(sp, 320),
                         seq_len=32, stride=0, batch_tokens=256, rank=0, world_size=world_size)


@pytest.mark.slow
def test_eval_split_over_gloo_ranks_matches_one_process(tiny_data: Path, tiny_cfg: Callable[..., Any],
                                                        tmp_path: Path, worker_env: dict[str, str]) -> None:
    """The same model scored by 3 real processes: same targets, bytes and loss as one process. (Three ranks
    split the windows unevenly, and a split of two windows leaves rank 0 without any; the 2-process trial in
    test_ddp.py checks its eval against one process too.)"""
    world_size = 3
    cfg = tiny_cfg("eval.max_tokens=600")
    (tmp_path / "config.json").write_text(json.dumps(cfg.to_dict()))
    out = tmp_path / "dist.json"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", f"--nproc-per-node={world_size}",
           "--rdzv-backend=c10d", "--rdzv-endpoint=127.0.0.1:0", str(HERE / "dist_eval_check.py"),
           str(tmp_path / "config.json"), str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=worker_env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    multi = json.loads(out.read_text())

    sp = load_tokenizer(tiny_data / "tokenizer.model")
    luts = build_byte_luts(sp, cfg.model.vocab_size)
    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg)
    tokens = _val(tiny_data, cfg.eval_seq_len, cfg.eval.max_tokens)
    short = tokens[:2 * cfg.eval_seq_len + 1]  # two windows: the writing rank has none of them
    assert len(plan_windows(len(short) - 1, cfg.eval_seq_len, 0).part(0, world_size)) == 0
    for key, got in multi.items():
        split, stride = (short, 0) if key == "short" else (tokens, int(key))
        one = evaluate_bpb(model, split, luts, cfg.eval_seq_len, stride, cfg.eval.batch_tokens)
        assert got["tokens_scored"] == one["tokens_scored"] == len(split) - 1
        assert got["bytes_scored"] == one["bytes_scored"]
        assert got["val_loss"] == pytest.approx(one["val_loss"], rel=1e-6)
        assert got["val_bpb"] == pytest.approx(one["val_bpb"], rel=1e-6)


def test_batching_chunking_and_token_type_never_change_the_numbers(tiny_data: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Windows of unequal length (the last non-overlapping one is short here) are never batched together, any
    batch size gives the same sums, bytes are counted the same in chunks, and tokens may come as numpy or torch."""
    import clowncar.worker.evaluate as evaluate

    sp = load_tokenizer(tiny_data / "tokenizer.model")
    luts = build_byte_luts(sp, int(sp.vocab_size()))
    tokens = _val(tiny_data, 32, max_tokens=1000)[:-7]  # 985 targets: 30 windows of 32, then one of 25
    assert (len(tokens) - 1) % 32 == 25
    model = Bigram(int(sp.vocab_size()))
    ref = evaluate_bpb(model, tokens, luts, seq_len=32, stride=0, batch_tokens=4096)
    assert ref["tokens_scored"] == len(tokens) - 1
    for batch_tokens in (1, 32, 96, 1000):
        got = evaluate_bpb(model, tokens, luts, seq_len=32, stride=0, batch_tokens=batch_tokens)
        assert got["tokens_scored"] == ref["tokens_scored"] and got["bytes_scored"] == ref["bytes_scored"]
        assert got["val_loss"] == pytest.approx(ref["val_loss"], rel=1e-9)
    sliding = evaluate_bpb(model, torch.from_numpy(tokens.astype(np.int32)), luts, seq_len=32, stride=8,
                           batch_tokens=64, device="cpu")
    assert sliding["bytes_scored"] == ref["bytes_scored"] and sliding["tokens_scored"] == ref["tokens_scored"]
    monkeypatch.setattr(evaluate, "BYTE_CHUNK", 7)
    chunked = evaluate_bpb(model, tokens, luts, seq_len=32, stride=8, batch_tokens=64)
    assert chunked == sliding


def test_evaluation_leaves_the_model_in_the_mode_it_found(tiny_data: Path) -> None:
    sp = load_tokenizer(tiny_data / "tokenizer.model")
    luts = build_byte_luts(sp, int(sp.vocab_size()))
    tokens = _val(tiny_data, 32, max_tokens=256)
    seen: list[bool] = []
    grads: list[bool] = []

    class Watch(Bigram):
        def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
            seen.append(self.training)
            grads.append(torch.is_grad_enabled())
            return super().forward(input_ids)

    model = Watch(int(sp.vocab_size()))
    for mode in (True, False):
        model.train(mode)
        seen.clear()
        evaluate_bpb(model, tokens, luts, seq_len=32, stride=0, batch_tokens=256)
        assert seen and not any(seen)  # scored in eval mode
        assert model.training is mode  # and handed back as it was
    assert grads and not any(grads)  # no autograd graph is built while scoring


@pytest.mark.parametrize(("targets", "seq_len"), [(0, 4), (5, 0), (-1, 4)])
def test_a_plan_needs_targets_and_a_positive_length(targets: int, seq_len: int) -> None:
    with pytest.raises(ValueError, match=f"got {targets}, {seq_len}"):
        plan_windows(targets, seq_len, 0)


def test_stride_one_slides_one_target_at_a_time_and_stride_seq_len_is_non_overlapping() -> None:
    one = plan_windows(100, 8, 1)
    assert len(one) == 1 + (100 - 8)  # the first window, then one per target
    assert (one.ends - one.starts == 8).all() and (one.ends[1:] - one.score_from[1:] == 1).all()
    plain = plan_windows(100, 32, 0)  # 32, 32, 32 and a last window of 4
    for stride in (32, 33, 1000):
        same = plan_windows(100, 32, stride)
        assert [a.tolist() for a in (same.starts, same.ends, same.score_from)] == \
            [a.tolist() for a in (plain.starts, plain.ends, plain.score_from)]
    assert plain.ends.tolist() == [32, 64, 96, 100] and plain.starts[-1] == 96


def test_sums_stay_exact_at_the_size_of_a_real_validation_split() -> None:
    """FineWeb's validation split has ~62M targets and ~151M bytes: past 2^24, where float32 stops counting
    integers exactly. 1.2M targets of 29-31 bytes each (36M bytes, an odd total) must give the exact byte count
    and a loss equal to fsum of the per-target nll to 1e-12: float32 sums anywhere on the way are caught."""
    from clowncar.data.bpb import ByteLUTs

    vocab = 8
    rng = np.random.default_rng(5)
    tokens = rng.integers(0, vocab, size=1_200_001)
    base = np.array([29, 30, 31, 29, 30, 31, 29, 30], dtype=np.int16)
    lead = np.array([0, 1, 0, 1, 0, 0, 1, 0], dtype=bool)
    boundary = np.array([1, 0, 0, 0, 0, 0, 0, 0], dtype=bool)
    luts = ByteLUTs(base, lead, boundary)
    model = Bigram(vocab)
    res = evaluate_bpb(model, tokens, luts, seq_len=1024, stride=0, batch_tokens=1 << 17)

    t = torch.from_numpy(tokens)
    per_target = torch.nn.functional.cross_entropy(model.table.detach()[t[:-1]], t[1:], reduction="none")
    nll = math.fsum(per_target.double().tolist())
    n_bytes = int(base[tokens[1:]].astype(np.int64).sum() + (lead[tokens[1:]] & ~boundary[tokens[:-1]]).sum())
    assert n_bytes > 1 << 25 and n_bytes % 2 == 1  # not a float32 integer
    assert res["bytes_scored"] == n_bytes and res["tokens_scored"] == len(tokens) - 1
    assert res["val_loss"] == pytest.approx(nll / (len(tokens) - 1), rel=1e-12)
    assert res["val_bpb"] == pytest.approx(nll / (math.log(2) * n_bytes), rel=1e-12)


def test_autocast_is_bf16_on_cuda_and_nothing_on_cpu() -> None:
    """The GPU eval runs in bf16 autocast (the seed's eval did); CPU eval is plain fp32. Checked on the objects
    themselves, so this holds on a machine without CUDA (autocast only warns there and stays disabled)."""
    with pytest.warns(UserWarning, match="CUDA is not available"):
        gpu = autocast(torch.device("cuda"))
    assert isinstance(gpu, torch.autocast)
    assert (gpu.device, gpu.fast_dtype) == ("cuda", torch.bfloat16)
    assert isinstance(autocast(torch.device("cpu")), contextlib.nullcontext)



def test_every_tensor_of_the_eval_is_made_on_the_device_it_was_given() -> None:
    """Under a default device of "meta" (where a tensor has no values), an eval on the CPU gives the same numbers:
    no index, mask or sum is left to the default device, which on a GPU would put them on the wrong one."""
    tokens, luts = synthetic_split()
    model = Bigram(8)
    ref = evaluate_bpb(model, tokens, luts, seq_len=32, stride=8, batch_tokens=128, device="cpu")
    with torch.device("meta"):
        got = evaluate_bpb(model, tokens, luts, seq_len=32, stride=8, batch_tokens=128, device="cpu")
    assert got == ref and ref["tokens_scored"] == 300



def test_two_processes_give_one_processs_numbers_even_where_a_rank_has_no_window(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two gloo ranks (over loopback) sum their NLL, targets and bytes: each reports what one process computes.
    The one-window split leaves rank 0 without a window: it adds nothing, not a byte, and does not fail."""
    import torch.multiprocessing as mp

    monkeypatch.setenv("GLOO_SOCKET_IFNAME", "lo")
    assert len(plan_windows(32, 32, 0).part(0, 2)) == 0
    monkeypatch.syspath_prepend(str(HERE))  # the ranks import the helper by its file name, not as tests.*
    ranks = importlib.import_module("scoring_models")
    mp.spawn(ranks.score_as_rank, args=(2, str(tmp_path / "rendezvous"), str(tmp_path)), nprocs=2)
    tokens, luts = synthetic_split()
    model = Bigram(8)
    alone = {"one_window": evaluate_bpb(model, tokens[:33], luts, 32, 0, 128),
             "sliding": evaluate_bpb(model, tokens, luts, 32, 8, 128)}
    for rank in range(2):
        got = json.loads((tmp_path / f"rank{rank}.json").read_text())
        for split, one in alone.items():
            assert got[split]["tokens_scored"] == one["tokens_scored"], (rank, split)
            assert got[split]["bytes_scored"] == one["bytes_scored"], (rank, split)
            assert got[split]["val_loss"] == pytest.approx(one["val_loss"], rel=1e-12), (rank, split)
            assert got[split]["val_bpb"] == pytest.approx(one["val_bpb"], rel=1e-12), (rank, split)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_an_eval_on_cuda_scores_what_the_cpu_scores_needs_cuda() -> None:
    """Tokens, windows and masks all move to the GPU (a CPU machine has one device: only here can a missed
    move show); the Bigram's logits are a lookup, which bf16 autocast leaves in fp32: the same numbers."""
    tokens, luts = synthetic_split()
    cpu = evaluate_bpb(Bigram(8), tokens, luts, seq_len=32, stride=8, batch_tokens=128)
    gpu = evaluate_bpb(Bigram(8).cuda(), tokens, luts, seq_len=32, stride=8, batch_tokens=128, device="cuda")
    assert (gpu["tokens_scored"], gpu["bytes_scored"]) == (cpu["tokens_scored"], cpu["bytes_scored"])
    assert gpu["val_loss"] == pytest.approx(cpu["val_loss"], rel=1e-6)
