"""`train()` step for step against a training loop written in this file from the parts it composes (model,
optimizer groups, schedules, EMA, evaluation): every train loss, probe loss and eval it reports, and every count
in result.json, must be exactly what the plain loop computes. Eager on one CPU thread, so "exactly" is bit for
bit: a planted change to the order of the loop (clip after the step, EMA before it, a micro-batch dropped, the
LR scale or momentum of the wrong step, fake quantization switched on a step late) changes a number."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from clowncar.config import TrialConfig
from clowncar.data.bpb import build_byte_luts
from clowncar.data.shards import list_shards
from clowncar.data.stream import TokenStream, load_validation_tokens
from clowncar.data.tokenizer import load_tokenizer
from clowncar.model import build_model, param_groups, resolve_model_dim, untrained
from clowncar.model.layers import CastedLinear
from clowncar.worker import train as train_module
from clowncar.worker.evaluate import evaluate_bpb
from clowncar.worker.optim import EMA, build_optimizers, set_lr_scale, set_muon_momentum
from clowncar.worker.run import run_trial
from clowncar.worker.schedule import cadence_for, is_crawl_step, lr_scale, muon_momentum

CPU = torch.device("cpu")

# Every part of the loop at work in 9 steps: C-steps at 2, 5, 8 (cadence 3, offset 1); LR warm-up over 2 steps
# and an iteration-driven warm-down over the last 4 (scales 1, 0.75, 0.5, 0.25 at steps 6-9); Muon's momentum
# warm-up over 4; two micro-batches; a clip that bites; a probe every 3 steps and an eval every 4; late QAT once
# the scale falls below 0.6 (step 8); EMA from step 3; a log line every 2 steps.
LOOP = ("train.iterations=9", "train.cadence=3", "train.cadence_offset=1", "train.lr_warmup_steps=2",
        "train.warmdown_iters=4", "train.muon_momentum_warmup_steps=4", "train.grad_clip_norm=0.8",
        "train.probe_every=3", "train.val_every=4", "train.late_qat_threshold=0.6", "train.ema=true",
        "train.ema_decay=0.6", "train.ema_start_step=3", "train.log_every=2", "train.warmup_steps=0")


@pytest.fixture
def ticking_clock(monkeypatch: pytest.MonkeyPatch) -> float:
    """`clowncar.worker.train`'s perf_counter gains 2^-7 s at every call, so a training step (two calls) lasts
    exactly 7.8125 ms and every sum of step times is exact in binary. Returns the tick in ms."""
    now = [0.0]

    def perf_counter() -> float:
        now[0] += 2.0**-7
        return now[0]

    monkeypatch.setattr(train_module, "time", SimpleNamespace(perf_counter=perf_counter, time=time.time))
    return 1000 * 2.0**-7


def _data(cfg: TrialConfig) -> tuple[list[Path], Any, Any]:
    data_dir = Path(cfg.data.dataset)
    val = load_validation_tokens(list_shards(data_dir, cfg.data.val_glob), cfg.eval_seq_len, cfg.eval.max_tokens)
    luts = build_byte_luts(load_tokenizer(cfg.data.tokenizer), cfg.model.vocab_size)
    return list_shards(data_dir, cfg.data.train_glob), val, luts


def _reference_loop(cfg: TrialConfig) -> dict[str, Any]:
    """The loop as the module docstring of clowncar.worker.train describes it, written out plainly."""
    t = cfg.train
    train_files, val, luts = _data(cfg)
    probe = torch.from_numpy(np.asarray(val[-(t.probe_seqs * t.train_seq_len + 1):]).astype(np.int64))
    probe_x, probe_y = probe[:-1].view(t.probe_seqs, -1), probe[1:].view(t.probe_seqs, -1)
    torch.manual_seed(t.seed)
    model = build_model(cfg)
    opts = build_optimizers(param_groups(model, untrained(cfg)), t, CPU, 0, 1)
    ema = EMA(model, t.ema_decay, t.ema_start_step) if t.ema else None
    stream = TokenStream(train_files)
    micro = t.train_batch_tokens // t.grad_accum
    out: dict[str, Any] = {"steps": [], "kinds": [], "probes": [], "evals": [], "qat": None, "clipped": 0}

    def score(stride: int) -> dict[str, Any]:
        return evaluate_bpb(model, val, luts, cfg.eval_seq_len, stride, cfg.eval.batch_tokens)

    for step in range(1, t.iterations + 1):
        lr = lr_scale(t, step, 0.0)  # no wallclock cap: the time spent never enters the schedule
        if out["qat"] is None and lr.phase == "warmdown" and lr.scale < t.late_qat_threshold:
            out["qat"] = step
            for m in model.modules():
                if isinstance(m, CastedLinear):
                    m.fake_quant = True
        crawl = is_crawl_step(step, cadence_for(t, lr), t.cadence_offset)
        set_lr_scale(opts, lr.scale)
        set_muon_momentum(opts, muon_momentum(t, step))
        chunk = torch.from_numpy(np.asarray(stream.take(t.train_batch_tokens + 1)).astype(np.int64))
        losses = []
        for m in range(t.grad_accum):
            span = chunk[m * micro:(m + 1) * micro + 1]
            loss = model(span[:-1].view(-1, t.train_seq_len), span[1:].view(-1, t.train_seq_len), crawl=crawl)
            (loss / t.grad_accum).backward()
            losses.append(loss.detach())
        norm = nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip_norm)
        out["clipped"] += bool(norm > t.grad_clip_norm)
        for opt in opts:
            opt.step()
            opt.zero_grad(set_to_none=True)
        if ema is not None:
            ema.update(model, step)
        out["steps"].append((step, (losses[0] + losses[1]).item() / t.grad_accum, lr.scale, lr.phase))
        out["kinds"].append("C" if crawl else "N")
        if step % t.probe_every == 0:
            model.eval()
            with torch.no_grad():
                out["probes"].append((step, model(probe_x, probe_y, crawl=True).item()))
            model.train()
        if step % t.val_every == 0:
            out["evals"].append((step, score(0)))
    for m in model.modules():
        if isinstance(m, CastedLinear):
            m.fake_quant = False
    if ema is not None:
        ema.copy_to(model)
    out["final"], out["sliding"] = score(0), score(cfg.eval.stride)
    out["params"] = sum(p.numel() for p in model.parameters())
    return out


@pytest.fixture(params=[(), ("train.train_flow_instructions=false",)], ids=["ours", "seed-flow-instructions"])
def loop_cfg(tiny_cfg: Callable[..., Any], request: pytest.FixtureRequest) -> TrialConfig:
    """The loop's config, and the same with the seed's untrained flow instructions (kept out of every optimizer
    group: `untrained(cfg)`)."""
    cfg = tiny_cfg(*LOOP, *request.param)
    assert cfg.train.grad_accum == 2 and 0 < cfg.eval.stride < cfg.eval_seq_len
    return cfg


def test_every_number_train_reports_is_the_plain_loops(loop_cfg: TrialConfig, tmp_path: Path,
                                                      read_trial: Callable[..., Any]) -> None:
    ref = _reference_loop(loop_cfg)
    assert ref["qat"] == 8 and 0 < ref["clipped"] < 9  # the clip and late QAT both act, and not on every step
    assert run_trial(loop_cfg, tmp_path) == 0
    result, events = read_trial(tmp_path)

    steps = [e for e in events if e["event"] == "step"]
    assert [e["step"] for e in steps] == [1, 2, 4, 6, 8, 9]  # step 1, every log_every-th, and the last
    by_step = {s: (loss, scale, phase) for s, loss, scale, phase in ref["steps"]}
    for e in steps:
        assert (e["train_loss"], e["lr_scale"], e["phase"]) == by_step[e["step"]], e["step"]
        assert e["kind"] == ref["kinds"][e["step"] - 1] and e["tokens"] == e["step"] * 256
    assert [s for s, *_ in ref["steps"] if ref["kinds"][s - 1] == "C"] == [2, 5, 8]
    assert [(e["step"], e["probe_loss"]) for e in events if e["event"] == "probe"] == ref["probes"]
    assert {e["mode"] for e in events if e["event"] == "probe"} == {"C"}

    evals = [e for e in events if e["event"] == "eval"]
    assert [(e["step"], e["mode"], e["weights"]) for e in evals] == [
        (4, "standard", "raw"), (8, "standard", "raw"), (9, "standard", "ema"), (9, "sliding", "ema")]
    for e, (step, res) in zip(evals[:2], ref["evals"], strict=True):
        assert e["step"] == step and {k: e[k] for k in res} == res
    assert {k: evals[2][k] for k in ref["final"]} == ref["final"]
    assert {k: evals[3][k] for k in ref["sliding"]} == ref["sliding"]

    assert result["status"] == "ok" and result["steps"] == 9 and result["tokens_seen"] == 9 * 256
    assert (result["c_steps"], result["n_steps"]) == (3, 6) and result["late_qat_step"] == 8
    first_down = next(s for s, _, _, phase in ref["steps"] if phase == "warmdown")  # step 6 trains at 1.0: main
    assert (result["warmdown_start_step"], result["warmdown_set_by"]) == (first_down, "iterations") == (7, "iterations")
    assert result["evaluated_weights"] == "ema" and result["params"] == ref["params"]
    assert result["model_dim"] == resolve_model_dim(loop_cfg.model) == 32
    assert (result["val_loss"], result["val_bpb"]) == (ref["final"]["val_loss"], ref["final"]["val_bpb"])
    assert (result["tokens_scored"], result["bytes_scored"]) == (ref["final"]["tokens_scored"],
                                                                 ref["final"]["bytes_scored"])
    assert (result["sliding_val_loss"], result["sliding_val_bpb"]) == (ref["sliding"]["val_loss"],
                                                                       ref["sliding"]["val_bpb"])
    assert result["train_seconds"] * 1000 == pytest.approx(steps[-1]["elapsed_ms"])
    assert result["peak_mem_bytes"] > 0 and result["eval_seconds"] > 0


@pytest.mark.parametrize("stride, sliding", [(0, False), (1, True), (8, True), (31, True), (32, False)])
def test_sliding_eval_runs_only_for_a_stride_inside_the_eval_length(
        tiny_cfg: Callable[..., Any], tmp_path: Path, read_trial: Callable[..., Any], stride: int,
        sliding: bool) -> None:
    cfg = tiny_cfg("train.iterations=2", f"eval.stride={stride}")
    assert cfg.eval_seq_len == 32
    assert run_trial(cfg, tmp_path) == 0
    result, events = read_trial(tmp_path)
    modes = [e["mode"] for e in events if e["event"] == "eval"]
    assert modes == (["standard", "sliding"] if sliding else ["standard"])
    assert (result["sliding_val_bpb"] is not None) is sliding


def test_quantized_scores_are_those_of_the_artifact_and_the_gap_is_their_difference(
        tiny_cfg: Callable[..., Any], tmp_path: Path, read_trial: Callable[..., Any]) -> None:
    from clowncar.worker.artifact_model import load_model_from_artifact

    cfg = tiny_cfg("train.iterations=3", "quant.enabled=true", "quant.gptq_calib_seqs=2")
    assert run_trial(cfg, tmp_path) == 0
    result, events = read_trial(tmp_path)
    _, val, luts = _data(cfg)
    qmodel, _ = load_model_from_artifact(tmp_path / "model.ptz", CPU)
    plain = evaluate_bpb(qmodel, val, luts, cfg.eval_seq_len, 0, cfg.eval.batch_tokens)
    sliding = evaluate_bpb(qmodel, val, luts, cfg.eval_seq_len, cfg.eval.stride, cfg.eval.batch_tokens)
    assert (result["q_val_loss"], result["q_val_bpb"]) == (plain["val_loss"], plain["val_bpb"])
    assert (result["q_sliding_val_loss"], result["q_sliding_val_bpb"]) == (sliding["val_loss"],
                                                                           sliding["val_bpb"])
    assert result["quant_gap"] == result["q_val_bpb"] - result["val_bpb"] != 0
    quantized = [(e["mode"], e["step"]) for e in events if e["event"] == "eval" and e["weights"] == "quantized"]
    assert quantized == [("standard", 3), ("sliding", 3)]
    assert result["artifact_bytes"] > 0 and (tmp_path / "model.ptz").stat().st_size == result["artifact_file_bytes"]
    log = (tmp_path / "train.log").read_text().splitlines()
    assert (f"artifact: {result['artifact_bytes']} bytes (file {result['artifact_file_bytes']}, code "
            f"{result['artifact_code_bytes']}, rule challenge), over cap: False") in log
    assert next(line for line in log if line.startswith("model: ")).endswith(
        f", config_hash {result['provenance']['config_hash']}")


def test_eval_seconds_count_the_raw_and_the_quantized_evaluations(
        tiny_cfg: Callable[..., Any], tmp_path: Path, read_trial: Callable[..., Any], ticking_clock: float) -> None:
    """With the ticking clock, each of the two timed spans (the raw evaluations, the round trip's) lasts one tick."""
    cfg = tiny_cfg("train.iterations=2", "quant.enabled=true", "quant.gptq_calib_seqs=2")
    assert run_trial(cfg, tmp_path) == 0
    result = read_trial(tmp_path)[0]
    assert result["eval_seconds"] == 2 * ticking_clock / 1000 and "q_eval_seconds" not in result


def test_a_loss_past_three_times_uniform_guessing_is_divergence(
        tiny_cfg: Callable[..., Any], tmp_path: Path, read_trial: Callable[..., Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The limit is DIVERGED_LOSS_FACTOR x ln(vocab): set just under the first step's loss it stops the run at
    step 1, just over it the run goes on (the factor the check uses is the module's, and it scales ln V)."""
    cfg = tiny_cfg("train.iterations=2", "eval.stride=0")
    assert run_trial(cfg, tmp_path / "plain") == 0
    first = read_trial(tmp_path / "plain")[1]
    loss = next(e["train_loss"] for e in first if e["event"] == "step")
    ln_v = math.log(cfg.model.vocab_size)
    monkeypatch.setattr(train_module, "DIVERGED_LOSS_FACTOR", loss / ln_v * (1 + 1e-6))
    assert run_trial(cfg, tmp_path / "over") == 0
    factor = loss / ln_v  # nudged until factor x ln V is the loss exactly: a loss at the limit is not divergence
    while factor * ln_v != loss:
        factor = math.nextafter(factor, math.inf if factor * ln_v < loss else -math.inf)
    monkeypatch.setattr(train_module, "DIVERGED_LOSS_FACTOR", factor)
    assert run_trial(cfg, tmp_path / "at") == 0
    monkeypatch.setattr(train_module, "DIVERGED_LOSS_FACTOR", loss / ln_v * (1 - 1e-6))
    assert run_trial(cfg, tmp_path / "under") == 3
    result, events = read_trial(tmp_path / "under")
    assert result["status"] == "diverged" and result["steps"] == 1
    assert result["reason"] == f"train loss {loss:.4f} at step 1, above the limit {loss * (1 - 1e-6):.4f}"
    assert [e["step"] for e in events if e["event"] == "step"] == [1]


@pytest.mark.parametrize("settings, kinds", [
    (("train.cadence=1",), [True]), (("train.cadence=0",), [False]), (("train.cadence=2",), [True, False]),
    (("train.cadence=1", "train.cadence_phased=true"), [True, False])])
def test_the_compile_warmup_runs_each_forward_mode_the_run_will_use(
        tiny_cfg: Callable[..., Any], settings: tuple[str, ...], kinds: list[bool]) -> None:
    assert train_module._step_kinds(tiny_cfg(*settings)) == kinds


def test_an_lr_warmup_never_switches_late_qat_on(tiny_cfg: Callable[..., Any], tmp_path: Path,
                                                 read_trial: Callable[..., Any]) -> None:
    """Multipliers 0.25 and 0.5 of a 4-step LR warm-up are under the threshold, but late QAT is for the
    warm-down: it first turned on at step 1 here, and the whole run trained through fake quantization."""
    cfg = tiny_cfg("train.iterations=8", "train.lr_warmup_steps=4", "train.warmdown_iters=2",
                   "train.late_qat_threshold=0.6", "eval.stride=0")
    assert run_trial(cfg, tmp_path) == 0
    result, events = read_trial(tmp_path)
    scales = {e["step"]: e["lr_scale"] for e in events if e["event"] == "step"}
    assert scales[1] == 0.25 and scales[8] == 0.5
    assert result["late_qat_step"] == 8


def test_the_start_event_names_the_config_the_world_and_the_model(
        tiny_cfg: Callable[..., Any], tmp_path: Path, read_trial: Callable[..., Any]) -> None:
    cfg = tiny_cfg("train.iterations=1", "eval.stride=0")
    before = time.time()
    assert run_trial(cfg, tmp_path) == 0
    result, events = read_trial(tmp_path)
    start = events[0]
    assert start["event"] == "start" and before <= start.pop("time") <= time.time()
    assert start == {"event": "start", "config_hash": cfg.content_hash(), "world_size": 1,
                     "params": result["params"], "model_dim": 32}
    assert result["evaluated_weights"] == "raw"  # no EMA
    startup = result["startup"]  # an eager run: no compile mode, cache or graphs to report
    assert {k: startup[k] for k in ("compile_mode", "compiled_as", "cuda_graphs", "compile_cache",
                                    "compile_cache_hits", "compile_cache_misses")} == {
        "compile_mode": "eager", "compiled_as": "eager", "cuda_graphs": False, "compile_cache": None,
        "compile_cache_hits": None, "compile_cache_misses": None}
    phases = ", ".join(f"{k} {startup[k]:.2f}" for k in ("launch", "imports", "data", "model", "optimizer",
                                                         "compile", "first_step"))
    assert (f"start-up: {result['startup_seconds']:.2f}s to the end of step 1 ({phases}; cpu "
            f"{startup['cpu_seconds']:.2f}s)") in (tmp_path / "train.log").read_text().splitlines()


def test_a_trial_that_fails_in_its_first_step_reports_zero_steps(
        tiny_cfg: Callable[..., Any], tmp_path: Path, read_trial: Callable[..., Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Training had started: every count is 0 (not unknown), and it is a failed run (exit 1), not bad input."""
    from clowncar.errors import DataError
    from clowncar.worker.loader import TrainBatches

    def unreadable(self: Any) -> None:
        raise DataError("shard went away")

    monkeypatch.setattr(TrainBatches, "next", unreadable)
    assert run_trial(tiny_cfg("train.warmup_steps=0"), tmp_path) == 1
    result, _ = read_trial(tmp_path)
    assert result["reason"] == "DataError: shard went away"
    assert [result[k] for k in ("steps", "c_steps", "n_steps", "tokens_seen", "train_seconds")] == [0, 0, 0, 0, 0.0]


@pytest.mark.parametrize("probe_seqs, error", [(64, None), (65, "ConfigError: the probe needs 2,081 validation tokens "
                                                                  "(train.probe_seqs x train.train_seq_len + 1), and "
                                                                  "eval.max_tokens (2,048) keeps 2,049")])
def test_the_probe_fits_in_the_validation_split_to_the_last_token(
        tiny_cfg: Callable[..., Any], tmp_path: Path, read_trial: Callable[..., Any], probe_seqs: int,
        error: str | None) -> None:
    cfg = tiny_cfg("train.iterations=4", f"train.probe_seqs={probe_seqs}", "eval.stride=0")
    assert cfg.eval.max_tokens == 2048 and cfg.train.train_seq_len == 32  # 2,049 validation tokens
    code = run_trial(cfg, tmp_path)
    result, events = read_trial(tmp_path)
    if error is None:
        assert code == 0 and [e["step"] for e in events if e["event"] == "probe"] == [4]
    else:
        assert code == 2 and result["reason"] == error  # refused from the config, before any data is read


def test_the_wallclock_warmdown_and_stop_follow_the_training_clock_exactly(
        tiny_cfg: Callable[..., Any], tmp_path: Path, read_trial: Callable[..., Any],
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], ticking_clock: float) -> None:
    """A cap of 93.75 ms is 12 steps of 7.8125 ms: the run stops after step 12 (its clock reaches the cap
    exactly), and each step's LR multiplier is the schedule's for the time the steps before it took."""
    from clowncar.worker.progress import TrialLog

    shown: list[tuple[Any, ...]] = []
    monkeypatch.setattr(TrialLog, "progress", lambda self, *args: shown.append(args))
    monkeypatch.setattr(train_module, "peak_memory_bytes", lambda device: 12345)  # the training peak, kept
    cfg = tiny_cfg("train.iterations=1000", "train.max_wallclock_seconds=0.09375", "train.warmdown_iters=4",
                   "train.log_every=1", "train.probe_every=0", "eval.stride=0")
    assert run_trial(cfg, tmp_path) == 0
    result, events = read_trial(tmp_path)
    steps = [e for e in events if e["event"] == "step"]
    tick = ticking_clock
    assert shown == [(e["step"], e["kind"], e["train_loss"], e["tokens"] / (e["elapsed_ms"] / 1000),
                      e["elapsed_ms"] / 1000) for e in steps]
    assert result["peak_mem_bytes"] == 12345 and result["val_bpb"] is not None  # evaluated after the stop
    log = (tmp_path / "train.log").read_text()
    assert f"step:2/1000 kind:{steps[1]['kind']} train_loss:{steps[1]['train_loss']:.4f} lr_scale:1.0000 " \
           "train_time:16ms step_avg:7.81ms" in log.splitlines()
    assert "train_loss:" not in capsys.readouterr().err  # step lines go to train.log only
    assert [(e["step"], e["elapsed_ms"]) for e in steps] == [(k, k * tick) for k in range(1, 13)]
    expected = [lr_scale(cfg.train, k, (k - 1) * tick) for k in range(1, 13)]
    assert [(e["lr_scale"], e["phase"]) for e in steps] == [(p.scale, p.phase) for p in expected]
    assert expected[-1].phase == "warmdown" and expected[0].phase == "main"
    # the clock, not the 1000 iterations, started the warm-down: the run records where, and which limit did
    first_down = next(k for k, p in enumerate(expected, 1) if p.phase == "warmdown")
    assert (result["warmdown_start_step"], result["warmdown_set_by"]) == (first_down, "wallclock")
    assert 1 < first_down < 12 and expected[first_down - 2].phase == "main"
    assert f"LR warm-down from step {first_down}, timed by the wall clock (train.max_wallclock_seconds)" in log
    assert result["steps"] == 12 and result["train_seconds"] == 12 * tick / 1000
    assert "stopping at step 12: training time 0.1s reached the cap" in (tmp_path / "train.log").read_text()


def test_a_rank_without_an_event_writer_or_a_clock_trains_the_same(
        tiny_cfg: Callable[..., Any], tmp_path: Path, read_trial: Callable[..., Any]) -> None:
    """Ranks other than 0 call train() with no event writer and no log file; a caller may leave out the clock."""
    from clowncar.worker.dist import DistInfo
    from clowncar.worker.progress import TrialLog

    cfg = tiny_cfg("train.iterations=3", "eval.stride=0")
    assert run_trial(cfg, tmp_path / "main") == 0
    result: dict[str, Any] = {}
    train_module.train(cfg, tmp_path / "other", DistInfo(), CPU, None, TrialLog(None), result)
    main = read_trial(tmp_path / "main")[0]
    assert (result["val_bpb"], result["steps"]) == (main["val_bpb"], 3) and result["startup_seconds"] > 0


def test_late_qat_starts_strictly_below_its_threshold(tiny_cfg: Callable[..., Any], tmp_path: Path,
                                                      read_trial: Callable[..., Any]) -> None:
    """The seed's rule is `scale < threshold`: at a multiplier equal to it (step 7: 0.5) QAT is still off."""
    cfg = tiny_cfg("train.iterations=8", "train.warmdown_iters=4", "train.late_qat_threshold=0.5", "eval.stride=0")
    assert [lr_scale(cfg.train, s, 0.0).scale for s in (6, 7, 8)] == [0.75, 0.5, 0.25]
    assert run_trial(cfg, tmp_path) == 0
    assert read_trial(tmp_path)[0]["late_qat_step"] == 8


def test_a_cap_under_a_millisecond_stops_after_the_first_step(
        tiny_cfg: Callable[..., Any], tmp_path: Path, read_trial: Callable[..., Any], ticking_clock: float) -> None:
    cfg = tiny_cfg("train.iterations=50", f"train.max_wallclock_seconds={2.0**-11}", "eval.stride=0")
    assert 0 < train_module.wallclock_cap_ms(cfg.train) < 1
    assert run_trial(cfg, tmp_path) == 0
    assert read_trial(tmp_path)[0]["steps"] == 1


def test_a_phased_cadence_is_chosen_by_each_steps_lr_multiplier(
        tiny_cfg: Callable[..., Any], tmp_path: Path, read_trial: Callable[..., Any]) -> None:
    """Cadence 1 while the multiplier is above 0.5, 2 above 0.2, 3 below (a warm-down over the last 8 of 16)."""
    cfg = tiny_cfg("train.iterations=16", "train.warmdown_iters=8", "train.cadence_phased=true",
                   "train.cadence_early=1", "train.cadence_main=2", "train.cadence_late=3", "train.probe_every=0",
                   "eval.stride=0")
    assert run_trial(cfg, tmp_path) == 0
    kinds = "".join(e["kind"] for e in read_trial(tmp_path)[1] if e["event"] == "step")
    expected = "".join("C" if is_crawl_step(s, cadence_for(cfg.train, lr_scale(cfg.train, s, 0.0))) else "N"
                       for s in range(1, 17))
    assert kinds == expected == "CCCCCCCCCCCCCNCC"  # step 16: cadence 3 crawls, 2 would not


def test_a_loss_that_is_no_number_is_divergence_and_says_so_without_a_limit(
        tiny_cfg: Callable[..., Any], tmp_path: Path, read_trial: Callable[..., Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    import torch.nn.functional as F

    cfg = tiny_cfg("train.iterations=2", "eval.stride=0")
    monkeypatch.setattr(F, "cross_entropy", lambda *a, **k: torch.tensor(float("nan"), requires_grad=True))
    assert run_trial(cfg, tmp_path) == 3
    result = read_trial(tmp_path)[0]
    assert (result["status"], result["reason"]) == ("diverged", "train loss nan at step 1")


def _poisoned_quantized_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    """The artifact's round trip gives NaN weights (as a collapsed model's GPTQ scales can): a real evaluation of
    them scores NaN."""
    from clowncar.worker import artifact_model

    load = artifact_model.load_model_from_artifact

    def load_nan(*args: Any, **kwargs: Any) -> Any:
        model, meta = load(*args, **kwargs)
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(float("nan"))
        return model, meta

    monkeypatch.setattr(artifact_model, "load_model_from_artifact", load_nan)


def _infinite_first_eval(monkeypatch: pytest.MonkeyPatch) -> None:
    """The final eval of the trained (raw) weights scores inf; later evals are real."""
    real, calls = train_module.evaluate_bpb, []

    def evaluate(*args: Any, **kwargs: Any) -> dict[str, Any]:
        calls.append(1)
        res = real(*args, **kwargs)
        return {**res, "val_loss": math.inf, "val_bpb": math.inf} if len(calls) == 1 else res

    monkeypatch.setattr(train_module, "evaluate_bpb", evaluate)


@pytest.mark.parametrize("plant, reason, artifact_written", [
    (_infinite_first_eval, "final eval of the raw weights is not finite: val_loss inf, val_bpb inf", False),
    (_poisoned_quantized_weights, "final eval of the quantized weights is not finite: q_val_loss nan, q_val_bpb nan",
     True),
], ids=["raw", "quantized"])
def test_a_final_eval_that_is_no_number_is_divergence_and_names_the_eval(
        tiny_cfg: Callable[..., Any], tmp_path: Path, read_trial: Callable[..., Any],
        monkeypatch: pytest.MonkeyPatch, plant: Callable[[pytest.MonkeyPatch], None], reason: str,
        artifact_written: bool) -> None:
    """Walk 5, F8: a collapsed model trained with a finite loss, then scored NaN after quantization; the trial
    said `ok` (exit 0) with no BPB. A non-finite final eval is a numerical failure: exit 3, `diverged`, the eval
    named; what was measured (steps, the artifact) stays in result.json."""
    cfg = tiny_cfg("train.iterations=2", "eval.stride=0", "train.val_every=0", "quant.enabled=true",
                   "quant.gptq_calib_seqs=2")
    plant(monkeypatch)
    assert run_trial(cfg, tmp_path) == 3
    result = read_trial(tmp_path)[0]
    assert (result["status"], result["reason"]) == ("diverged", reason)
    assert result["steps"] == 2 and (result["artifact_bytes"] is not None) is artifact_written
    assert (tmp_path / "model.ptz").exists() is artifact_written
