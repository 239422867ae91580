"""One trial, top to bottom: data, model, optimizers, compile warm-up, the training loop, evaluation, export.

`train()` fills the `result` dict it is given as it goes (so a trial that fails half-way still reports how far
it got) and raises on failure; `clowncar.worker.run` turns the exception into a status and an exit code.
"""

from __future__ import annotations

import copy
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from clowncar.buildable import check_buildable, probe_tokens
from clowncar.config import TrialConfig
from clowncar.data.bpb import build_byte_luts
from clowncar.data.paths import dataset_not_found
from clowncar.data.record import check_encoded_with, check_shard_record
from clowncar.data.shards import read_shard, require_shards, shards_digest
from clowncar.data.stream import TokenStream, load_validation_tokens
from clowncar.data.tokenizer import load_tokenizer, tokenizer_sha256
from clowncar.errors import ConfigError, DataError
from clowncar.events import EventWriter
from clowncar.model import build_model, param_groups, resolve_model_dim, untrained
from clowncar.model.layers import CastedLinear
from clowncar.settings import load_settings
from clowncar.worker.compiled import CompilePlan, compile_plan, keep_grads_out_of_graph_pool
from clowncar.worker.dist import DistInfo, all_reduce_sum, average_gradients, broadcast_parameters
from clowncar.worker.evaluate import autocast, evaluate_bpb
from clowncar.worker.loader import TrainBatches
from clowncar.worker.optim import EMA, build_optimizers, set_lr_scale, set_muon_momentum
from clowncar.worker.progress import TrialLog
from clowncar.worker.provenance import peak_memory_bytes
from clowncar.worker.schedule import cadence_for, is_crawl_step, lr_scale, muon_momentum, wallclock_cap_ms
from clowncar.worker.startup import StartupClock

# A train loss this many times that of uniform guessing (ln V) means the run blew up. The logit softcap keeps
# such runs finite, so waiting for NaN alone could let a diverged trial burn its whole budget.
DIVERGED_LOSS_FACTOR = 3.0


class Diverged(RuntimeError):
    """The train loss became NaN/inf or exploded, or a final eval (raw or quantized weights) is NaN/inf."""


def train(cfg: TrialConfig, out_dir: Path, info: DistInfo, device: torch.device, events: EventWriter | None,
          log: TrialLog, result: dict[str, Any], clock: StartupClock | None = None) -> None:
    t = cfg.train
    clock = clock or StartupClock()
    emit = events.write if events is not None else (lambda *a, **k: None)
    amp = autocast(device)
    check_buildable(cfg)  # what the config alone rules out, refused before any data is read (as `config show` does)

    # -- data: train shards, validation tokens, byte tables for BPB ---------------------------------------------
    settings = load_settings()
    data_dir = settings.dataset_dir(cfg.data.dataset)
    if not data_dir.exists():  # not on this machine: say how to get it (a file there is list_shards' to name)
        raise DataError(dataset_not_found(cfg.data.dataset, data_dir))
    train_files = require_shards(data_dir, cfg.data.train_glob, "train")
    val_files = require_shards(data_dir, cfg.data.val_glob, "validation")
    check_shard_record(data_dir)  # the shards its build.json or fetch manifest lists, no more and no fewer
    # which shards, so that runs whose data changed under one dataset name can be told apart in the store
    result.setdefault("provenance", {})["data"] = {"train": shards_digest(train_files), "val": shards_digest(val_files)}
    sp = load_tokenizer(settings.tokenizer_path(cfg.data.tokenizer))
    check_encoded_with(data_dir, settings.tokenizer_path(cfg.data.tokenizer))
    # which tokenizer, byte for byte: the artifact keeps it too, so that it is never scored with another one
    tokenizer_digest = tokenizer_sha256(settings.tokenizer_path(cfg.data.tokenizer))
    result["provenance"]["data"]["tokenizer"] = {"sha256": tokenizer_digest}
    luts = build_byte_luts(sp, cfg.model.vocab_size)
    val_tokens = load_validation_tokens(val_files, cfg.eval_seq_len, cfg.eval.max_tokens)
    _check_vocab(cfg.model.vocab_size, int(sp.vocab_size()), val_tokens, train_files[0])
    # The probe batch is the last probe_seqs sequences of the validation tokens: never trained on, and fixed
    # for the whole run. (Eval scores those tokens too; the probe only tracks the loss curve between evals.)
    probe_x = probe_y = None
    if t.probe_every:
        probe_len = probe_tokens(t)
        if len(val_tokens) < probe_len:
            raise DataError(f"validation split has {len(val_tokens)} tokens, the probe needs {probe_len}")
        probe = torch.from_numpy(np.asarray(val_tokens[-probe_len:]).astype(np.int64)).to(device)
        probe_x = probe[:-1].view(t.probe_seqs, t.train_seq_len)
        probe_y = probe[1:].view(t.probe_seqs, t.train_seq_len)
    clock.mark("data")

    # -- model and optimizers -----------------------------------------------------------------------------------
    torch.manual_seed(t.seed)
    model = build_model(cfg).to(device)
    broadcast_parameters(model, info)
    clock.mark("model")
    optimizers = build_optimizers(param_groups(model, untrained(cfg)), t, device, info.rank, info.world_size)
    clock.mark("optimizer")
    plan = compile_plan(t, device)
    fwd = plan.compile(model)
    if plan.cuda_graphs:
        keep_grads_out_of_graph_pool(model)
    ema = EMA(model, t.ema_decay, t.ema_start_step) if t.ema else None
    result["params"] = sum(p.numel() for p in model.parameters())
    result["model_dim"] = resolve_model_dim(cfg.model)
    emit("start", config_hash=cfg.content_hash(), world_size=info.world_size, params=result["params"],
         model_dim=result["model_dim"], time=time.time())
    log.line(f"model: {result['params']:,} params, width {result['model_dim']}, device {device}, "
             f"world size {info.world_size}, {len(train_files)} train shards, {len(val_tokens):,} val "
             f"tokens, {plan.label}, config_hash {cfg.content_hash()}")  # a log alone names its config

    batches = TrainBatches(train_files, t, info.rank, info.world_size, device, cfg.model.vocab_size)
    max_loss = DIVERGED_LOSS_FACTOR * math.log(cfg.model.vocab_size)
    cap_ms = wallclock_cap_ms(t)

    def train_step(step: int, crawl: bool, scale: float) -> float:
        """One optimizer step over this rank's micro-batches; returns this rank's mean loss."""
        set_lr_scale(optimizers, scale)
        set_muon_momentum(optimizers, muon_momentum(t, step))
        micro = batches.next()
        loss_sum = torch.zeros((), device=device)
        for x, y in micro:
            plan.begin_step()
            with amp:
                loss = fwd(x, y, crawl=crawl)
            (loss / len(micro)).backward()  # gradients summed over micro-batches, averaged over ranks below
            loss_sum += loss.detach()
        average_gradients(model, info)
        if t.grad_clip_norm > 0:
            nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip_norm)
        for opt in optimizers:
            opt.step()
            opt.zero_grad(set_to_none=True)
        return loss_sum.item() / len(micro)  # .item() waits for the device: step timing below is honest

    def evaluate(net: nn.Module, stride: int) -> dict[str, Any]:
        return evaluate_bpb(net, val_tokens, luts, cfg.eval_seq_len, stride, cfg.eval.batch_tokens,
                            info.rank, info.world_size, device)

    # -- compile warm-up: real steps in both forward modes, then restore weights, optimizers and data ------------
    if t.warmup_steps:
        saved_model = copy.deepcopy(model.state_dict())
        saved_opts = [copy.deepcopy(opt.state_dict()) for opt in optimizers]
        kinds = _step_kinds(cfg)
        for i in range(t.warmup_steps):
            train_step(1, crawl=kinds[i % len(kinds)], scale=1.0)
        model.load_state_dict(saved_model)
        for opt, state in zip(optimizers, saved_opts, strict=True):
            opt.load_state_dict(state)
        batches.reset()
        log.line(f"compile warm-up: {t.warmup_steps} steps, state restored")
    clock.mark("compile")

    # -- training -----------------------------------------------------------------------------------------------
    elapsed_ms, tokens, step = 0.0, 0, 0
    result.update(steps=0, c_steps=0, n_steps=0, tokens_seen=0, train_seconds=0.0)
    while step < t.iterations:
        step += 1
        lr = lr_scale(t, step, elapsed_ms)
        # Late means in the warm-down: an LR warm-up's small multipliers must not switch it on at step 1.
        if (t.late_qat_threshold and lr.phase == "warmdown" and lr.scale < t.late_qat_threshold
                and not result.get("late_qat_step")):
            set_fake_quant(model, True)  # stays on to the end of training, as the seed's late QAT did
            result["late_qat_step"] = step
            log.line(f"late QAT on at step {step} (lr scale {lr.scale:.4f} < {t.late_qat_threshold})")
        if lr.phase == "warmdown" and result.get("warmdown_start_step") is None:
            _warmdown_started(result, step, lr.set_by, log)
        crawl = is_crawl_step(step, cadence_for(t, lr), t.cadence_offset)
        kind = "C" if crawl else "N"
        t0 = time.perf_counter()
        loss = train_step(step, crawl, lr.scale)
        if ema is not None:
            ema.update(model, step)
        elapsed_ms += (time.perf_counter() - t0) * 1000.0
        if not clock.done:
            _startup_done(clock, plan, result, emit, log)
        # One small all-reduce: the mean loss, and whether any rank's own clock is over the cap (they stop together).
        loss_sum, over = all_reduce_sum([loss, float(cap_ms > 0 and elapsed_ms >= cap_ms)], info, device)
        loss, stop = loss_sum / info.world_size, over > 0
        tokens += t.train_batch_tokens
        result.update(steps=step, tokens_seen=tokens, train_seconds=elapsed_ms / 1000.0,
                      c_steps=result["c_steps"] + crawl, n_steps=result["n_steps"] + (not crawl))
        diverged = not math.isfinite(loss) or loss > max_loss
        if step % t.log_every == 0 or step == 1 or stop or step == t.iterations or diverged:
            emit("step", step=step, kind=kind, train_loss=loss, lr_scale=lr.scale, phase=lr.phase,
                 elapsed_ms=elapsed_ms, tokens=tokens)
            log.line(f"step:{step}/{t.iterations} kind:{kind} train_loss:{loss:.4f} lr_scale:{lr.scale:.4f} "
                     f"train_time:{elapsed_ms:.0f}ms step_avg:{elapsed_ms / step:.2f}ms", echo=False)
        if diverged:
            raise Diverged(f"train loss {loss:.4f} at step {step}"
                           + (f", above the limit {max_loss:.4f}" if math.isfinite(loss) else ""))
        log.progress(step, kind, loss, tokens / max(elapsed_ms / 1000.0, 1e-9), elapsed_ms / 1000.0)
        if t.probe_every and step % t.probe_every == 0:  # not counted as training time
            with torch.no_grad(), amp:
                fwd.eval()
                probe_loss = fwd(probe_x, probe_y, crawl=True).item()
                fwd.train()
            emit("probe", step=step, probe_loss=probe_loss, mode="C")
        if t.val_every and step % t.val_every == 0 and not stop:
            res = evaluate(fwd, 0)
            emit("eval", step=step, mode="standard", weights="raw", **res)
            log.line(f"step:{step} val_loss:{res['val_loss']:.4f} val_bpb:{res['val_bpb']:.4f}")
        if stop:
            log.line(f"stopping at step {step}: training time {elapsed_ms / 1000:.1f}s reached the cap")
            break
    result["peak_mem_bytes"] = peak_memory_bytes(device)  # training peak (eval batches are sized separately)
    set_fake_quant(model, False)  # the float weights are evaluated and exported (the artifact quantizes them)

    # -- final evaluation of the weights that will be exported --------------------------------------------------
    if ema is not None:
        ema.copy_to(model)
    result["evaluated_weights"] = "ema" if ema is not None else "raw"
    t_eval = time.perf_counter()
    final = _evaluate_all(evaluate, fwd, cfg, step, result["evaluated_weights"], emit, log)
    result.update(val_loss=final["val_loss"], val_bpb=final["val_bpb"], tokens_scored=final["tokens_scored"],
                  bytes_scored=final["bytes_scored"], sliding_val_loss=final.get("sliding_val_loss"),
                  sliding_val_bpb=final.get("sliding_val_bpb"))
    result["eval_seconds"] = time.perf_counter() - t_eval
    _require_finite_eval(result, ("val_loss", "val_bpb", "sliding_val_loss", "sliding_val_bpb"),
                         f"{result['evaluated_weights']} weights")

    # -- quantize, compress, round trip (part 2) ----------------------------------------------------------------
    if cfg.quant.enabled:
        fields = _quantize_and_roundtrip(model, cfg, train_files, out_dir, info, device, evaluate, step, emit, log,
                                         tokenizer_digest)
        result["eval_seconds"] += fields.pop("q_eval_seconds", 0.0)
        result.update(fields)
        _require_finite_eval(result, ("q_val_loss", "q_val_bpb", "q_sliding_val_loss", "q_sliding_val_bpb"),
                             "quantized weights")
        if result.get("q_val_bpb") is not None:  # what quantization cost, on the non-overlapping eval
            result["quant_gap"] = result["q_val_bpb"] - result["val_bpb"]


def _require_finite_eval(result: dict[str, Any], keys: tuple[str, ...], weights: str) -> None:
    """A final eval that is NaN or inf is a numerical failure of the run, like a NaN train loss: a model can
    collapse (train loss at ln V, under the divergence limit) and still score no number, before or after
    quantization. Its measurements stay in the result; the run is `diverged` and names the eval."""
    bad = [f"{k} {result[k]}" for k in keys if isinstance(result.get(k), float) and not math.isfinite(result[k])]
    if bad:
        raise Diverged(f"final eval of the {weights} is not finite: {', '.join(bad)}")


def _evaluate_all(evaluate: Any, net: nn.Module, cfg: TrialConfig, step: int, weights: str, emit: Any,
                  log: TrialLog) -> dict[str, Any]:
    """Non-overlapping eval, then sliding-window eval when a stride below the eval length is configured."""
    res = evaluate(net, 0)
    emit("eval", step=step, mode="standard", weights=weights, **res)
    log.line(f"final {weights} val_loss:{res['val_loss']:.6f} val_bpb:{res['val_bpb']:.6f} "
             f"tokens:{res['tokens_scored']} bytes:{res['bytes_scored']}")
    out = dict(res)
    if 0 < cfg.eval.stride < cfg.eval_seq_len:
        sl = evaluate(net, cfg.eval.stride)
        emit("eval", step=step, mode="sliding", weights=weights, **sl)
        log.line(f"final {weights} sliding stride:{cfg.eval.stride} val_loss:{sl['val_loss']:.6f} "
                 f"val_bpb:{sl['val_bpb']:.6f}")
        out.update(sliding_val_loss=sl["val_loss"], sliding_val_bpb=sl["val_bpb"])
    return out


def _quantize_and_roundtrip(model: nn.Module, cfg: TrialConfig, train_files: list[Path], out_dir: Path,
                            info: DistInfo, device: torch.device, evaluate: Any, step: int, emit: Any,
                            log: TrialLog, tokenizer_digest: str | None = None) -> dict[str, Any]:
    """Rank 0 exports the evaluated weights with `clowncar.worker.artifact.export_artifact` (GPTQ calibrated on
    the start of the TRAINING stream), then every rank rebuilds a fresh model from the artifact file alone and
    scores it with the same evaluation."""
    from clowncar.worker import artifact, artifact_model

    q = cfg.quant
    path = out_dir / artifact.ARTIFACT_FILE
    fields: dict[str, Any] = {}
    if info.is_main:
        calib = TokenStream(train_files).take(q.gptq_calib_seqs * q.gptq_calib_seq_len)
        fields = artifact.export_artifact(model, cfg, calib, path, tokenizer_digest)
        log.line(f"artifact: {fields.get('artifact_bytes')} bytes (file {fields.get('artifact_file_bytes')}, "
                 f"code {fields.get('artifact_code_bytes')}, rule {fields.get('artifact_code_rule')}), over cap: "
                 f"{fields.get('over_cap')}")
    if info.enabled:
        torch.distributed.barrier()
    t0 = time.perf_counter()
    qmodel, _ = artifact_model.load_model_from_artifact(path, device)
    qfwd = compile_plan(cfg.train, device).for_evaluation().compile(qmodel)
    res = _evaluate_all(evaluate, qfwd, cfg, step, "quantized", emit, log)
    fields.update(q_val_loss=res["val_loss"], q_val_bpb=res["val_bpb"],
                  q_sliding_val_loss=res.get("sliding_val_loss"), q_sliding_val_bpb=res.get("sliding_val_bpb"),
                  q_eval_seconds=time.perf_counter() - t0)
    return fields


def _warmdown_started(result: dict[str, Any], step: int, set_by: str | None, log: TrialLog) -> None:
    """The first warm-down step, and the limit that timed it: with the wall clock, runs of one config and seed
    start it at different steps on a busier or quieter machine, and end at a different BPB."""
    result.update(warmdown_start_step=step, warmdown_set_by=set_by)
    why = "the wall clock (train.max_wallclock_seconds)" if set_by == "wallclock" else "the iteration count"
    log.line(f"LR warm-down from step {step}, timed by {why}")


def _startup_done(clock: StartupClock, plan: CompilePlan, result: dict[str, Any], emit: Any,
                  log: TrialLog) -> None:
    """The first step is done: start-up's phases into result.json, a `startup` event and the log."""
    clock.mark("first_step")
    # Inductor writes the cache dir it chose into the environment when it first compiles.
    cache = os.environ.get("TORCHINDUCTOR_CACHE_DIR") if plan.mode is not None else None
    fields = clock.fields(compile_mode=plan.asked, compiled_as=plan.mode or "eager",
                          cuda_graphs=plan.cuda_graphs, compile_cache=cache, **_compile_cache_counts(plan))
    result.update(fields)
    emit("startup", **fields)
    phases = ", ".join(f"{k} {fields['startup'][k]:.2f}" for k in clock.phases)
    log.line(f"start-up: {fields['startup_seconds']:.2f}s to the end of step 1 ({phases}; "
             f"cpu {fields['startup']['cpu_seconds']:.2f}s)")


def _compile_cache_counts(plan: CompilePlan) -> dict[str, int | None]:
    """Graphs compiled so far that inductor's on-disk caches (FX graph, AOTAutograd) had, and those they
    lacked."""
    if plan.mode is None:
        return {"compile_cache_hits": None, "compile_cache_misses": None}
    from torch._dynamo.utils import counters

    hits = counters["inductor"]["fxgraph_cache_hit"] + counters["aot_autograd"]["autograd_cache_hit"]
    misses = counters["inductor"]["fxgraph_cache_miss"] + counters["aot_autograd"]["autograd_cache_miss"]
    return {"compile_cache_hits": hits, "compile_cache_misses": misses}


def set_fake_quant(model: nn.Module, on: bool) -> None:
    """Late QAT: every `CastedLinear` multiplies by its int6-rounded weight (straight-through) while on."""
    for m in model.modules():
        if isinstance(m, CastedLinear):
            m.fake_quant = on


def _step_kinds(cfg: TrialConfig) -> list[bool]:
    """Forward modes the run will use (True = C-step), so the compile warm-up compiles each of them once."""
    t = cfg.train
    if not t.cadence_phased and t.cadence <= 1:
        return [t.cadence == 1]
    return [True, False]


def _check_vocab(vocab_size: int, tokenizer_vocab: int, val_tokens: np.ndarray, first_train_shard: Path) -> None:
    """Every token id must index the embedding: checked before the first step (the tokenizer, the validation
    tokens, the first train shard), so a vocabulary too small for the data is bad input, not an IndexError at
    step 1. The loader checks every later batch as it reads it."""
    if tokenizer_vocab > vocab_size:
        raise ConfigError(f"model.vocab_size ({vocab_size}) is smaller than the tokenizer's vocabulary "
                          f"({tokenizer_vocab} ids)")
    for where, tokens in (("validation", val_tokens), (str(first_train_shard), read_shard(first_train_shard))):
        top = int(tokens.max()) if len(tokens) else -1
        if top >= vocab_size:
            raise DataError(f"{where}: token id {top} does not fit model.vocab_size ({vocab_size})")


