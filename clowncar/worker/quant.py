"""Post-training quantization of a trained model: which tensor gets which scheme, and the schemes themselves.

Tensor groups (one scheme per group, chosen in `QuantConfig`, never by code edits):

| group | tensors | scheme field |
| --- | --- | --- |
| passthrough | non-float tensors (raw), names matching a control pattern (fp32), anything with at most `passthrough_max_numel` elements (fp16) | fixed |
| embed | `tok_emb.weight`, `bigram.embed.weight` and every other `nn.Embedding` weight | `embed_scheme` (int8, fp16) |
| crawler | the shared blocks, `crawler_blocks.*` | `crawler_scheme` (`same` = the flat scheme, int8, fp16) |
| flat | every other float tensor | `flat_scheme` (int8, gptq_int6, gptq_int5, int6, int5, fp16) |

Schemes (scales and plain rounding live in `qscale.py`, with the seed's variants of each):
- `int8`: the Parameter Golf baseline. Per row, clip at the 99.99984th percentile of |w|, scale = clip/127 stored
  in fp16, q in [-127, 127]. Deviation, on purpose: the seed floors the scale at 1/127 (1/31 for int6)
  (`quant.scale_floor`, docs/fidelity.md).
- `int6` / `int5`: plain per-row rounding to q in [-31, 31] / [-15, 15] (stored as int8), with the per-row
  scale chosen from the clip percentiles {0.999, 0.9995, 0.9999, 0.99999, 1.0} by minimum squared error.
- `gptq_int6` / `gptq_int5`: the same scales, fixed before GPTQ, then GPTQ with error feedback: H = XᵀX / n
  from forward pre-hooks on exactly the `nn.Linear` modules whose weights are quantized, damping
  `gptq_damp`·mean(diag H), columns in `gptq_col_order` of diag H (the seed: ascending), blocks of
  `gptq_block_size`, Cholesky of H⁻¹ (more damping, then a diagonal H⁻¹ = plain rounding, if it fails).
  `gptq_feedback: full_inverse` is the seed's variant: the error fed back through H⁻¹ itself, which agrees
  with GPTQ on the first column and departs from it on every later one.
  A module called several times per forward (a crawler block in every loop) adds every call's inputs.
  `gptq_loop_aware` calibrates the loop-shared modules after the others are quantized (see `quantize_model`).
  A GPTQ-group tensor that is not a Linear weight has no Hessian and gets plain rounding at the same bits
  (its per-tensor scheme says so).
- `fp16` / `fp32` / `raw`: stored as is (fp32 for the control tensors, raw for integer buffers). The seed
  looked at the size before the control patterns (`quant.passthrough_order: size_first`), so every small
  tensor, control or not, went to fp16.
- `quant.delta_net_scheme` overrides the scheme of the DeltaNet projections (the seed: int8).

The Hessians come from the model object passed in, so the weights calibrated are the weights quantized: pass the
model you evaluate (the EMA copy when EMA is on). Calibration tokens come from the TRAINING stream (the caller
draws them), never from validation.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from clowncar.worker.qscale import (
    OURS,
    QMAX,
    Rounding,
    as_rows,
    quantize_int8_baseline,
    quantize_rtn,
    search_row_scales,
)
from clowncar.worker.qscale import row_quantile as row_quantile  # re-exported: callers import it from here

# Small learned gains and mixes: their exact values matter more than their bytes, so they stay fp32.
CONTROL_PATTERNS = ("attn_scale", "mlp_scale", "resid_mix", "q_gain", "skip_weight", "smear", "ln_scale",
                    "loop_scale", "gate")
EMBED_NAMES = ("tok_emb.weight", "bigram.embed.weight")
CRAWLER_PREFIX = "crawler_blocks."
DELTA_NET_PREFIX = "delta_net."
LOOP_SHARED = ("crawler_blocks.", "delta_net.", "loop_inst")
GROUPS = ("flat", "crawler", "embed", "passthrough")


@dataclass
class QTensor:
    """One tensor as stored: int8 codes + fp16 row scales, or a passthrough payload."""

    name: str
    group: str
    scheme: str
    shape: tuple[int, ...]
    dtype: torch.dtype
    q: Tensor | None = None
    scale: Tensor | None = None
    data: Tensor | None = None

    def dequantize(self) -> Tensor:
        if self.data is not None:
            return self.data.to(self.dtype).reshape(self.shape)
        assert self.q is not None and self.scale is not None
        w = self.q.float() * self.scale.float()[:, None]
        return w.reshape(self.shape).to(self.dtype)


@dataclass
class QuantResult:
    tensors: dict[str, QTensor]
    aliases: dict[str, str] = field(default_factory=dict)
    """Names that share storage with an earlier tensor (tied weights): stored once."""
    calibrated: list[str] = field(default_factory=list)
    """Weights whose GPTQ Hessian was collected (module name + `.weight`)."""
    calib_tokens: int = 0
    cholesky_fallbacks: int = 0
    schemes: dict[str, str] = field(default_factory=dict)
    """Per group, the schemes actually applied (`+`-joined); groups with no tensors are absent."""

    def dequantized(self) -> dict[str, Tensor]:
        out = {name: qt.dequantize() for name, qt in self.tensors.items()}
        for alias, target in self.aliases.items():
            out[alias] = out[target]
        return out


# -- GPTQ -------------------------------------------------------------------------------------------------------

def _upper_inverse_factor(h: Tensor, damp: float) -> tuple[Tensor, bool]:
    """Upper Cholesky factor of (H + damp·mean(diag H)·I)⁻¹; retries with more damping, then gives a diagonal."""
    n = h.shape[0]
    eye = torch.eye(n, dtype=h.dtype, device=h.device)
    mean_diag = h.diagonal().mean().clamp_min(1e-12)
    for factor in (1.0, 10.0, 100.0):
        try:
            lower = torch.linalg.cholesky(h + eye * (damp * factor * mean_diag))
            return torch.linalg.cholesky(torch.cholesky_inverse(lower), upper=True), factor > 1.0
        except torch.linalg.LinAlgError:
            continue
    return torch.diag(1.0 / torch.sqrt(h.diagonal().clamp_min(1e-12))), True


def _full_inverse(h: Tensor, damp: float) -> tuple[Tensor, bool]:
    """The seed's factor: (H + damp·mean(diag H)·I)⁻¹ itself; 1/diag if Cholesky fails."""
    h = h.clone()
    h.diagonal().add_(damp * h.diagonal().mean())
    try:
        return torch.cholesky_inverse(torch.linalg.cholesky(h)), False
    except torch.linalg.LinAlgError:
        return torch.diag(1.0 / h.diagonal().clamp_min(1e-6)), True


def gptq_columns(work: Tensor, scale: Tensor, factor: Tensor, qmax: int, block_size: int) -> Tensor:
    """GPTQ's column loop over `work` [rows, cols] (modified in place): round column j against `scale`, then
    subtract err_j · factor[j, j+1:] from the columns after it, with err_j = (w_j - q_j·s) / factor[j, j]
    (lazily, a block of columns at a time). With the upper Cholesky factor U of H⁻¹ this is GPTQ; with H⁻¹
    itself (the seed) the first column's update is the same and every later one differs. Returns the codes."""
    rows, cols = work.shape
    s = scale.float()
    q = torch.zeros(rows, cols, dtype=torch.int8, device=work.device)
    for i1 in range(0, cols, block_size):
        i2 = min(i1 + block_size, cols)
        blk = work[:, i1:i2].clone()
        errs = torch.zeros_like(blk)
        f_blk = factor[i1:i2, i1:i2]
        for j in range(i2 - i1):
            col = blk[:, j]
            qj = torch.clamp(torch.round(col / s), -qmax, qmax)
            q[:, i1 + j] = qj.to(torch.int8)
            err = (col - qj * s) / f_blk[j, j]  # > 0: a diagonal of (a factor of) a damped PD inverse
            blk[:, j:] -= err[:, None] * f_blk[j, j:][None, :]
            errs[:, j] = err
        work[:, i2:] -= errs @ factor[i1:i2, i2:]
    return q


def gptq_quantize(w: Tensor, hessian: Tensor, bits: str, block_size: int = 64, damp: float = 0.002,
                  col_order: str = "ascending", feedback: str = "cholesky",
                  rnd: Rounding = OURS) -> tuple[Tensor, Tensor, bool]:
    """GPTQ of a [rows, cols] weight against H [cols, cols]. Returns (q int8, fp16 row scales, fell_back).
    `feedback`: `cholesky` (GPTQ) or `full_inverse` (the seed, which also kept dead inputs as they were).

    The codes depend on H only up to a positive factor (the damping is relative to mean(diag H)), and, with
    `cholesky`, an input that never fired changes nothing for the others: its diagonal is set to the mean of the
    live ones, where GPTQ's usual 1.0 would move the damping of every other column by an amount that depends on
    the activations' scale (tests/worker/test_gptq.py)."""
    if col_order not in ("ascending", "descending", "natural"):
        raise ValueError(f"GPTQ column order must be ascending, descending or natural, not {col_order!r}")
    qmax = QMAX[bits]
    w = as_rows(w)
    cols = w.shape[1]
    h = hessian.to(w.device, torch.float32).clone()
    stored, used = search_row_scales(w, qmax, rnd)  # fixed before the error feedback, as in the seed
    work = w.clone()
    if feedback == "cholesky":
        dead = h.diagonal() == 0  # inputs that never fired: their weights cannot matter
        live = h.diagonal()[~dead]
        h[dead, dead] = live.mean() if live.numel() else 1.0
        work[:, dead] = 0.0
    diag = h.diagonal()
    if col_order == "natural":
        perm = torch.arange(cols, device=w.device)
    else:
        perm = torch.argsort(diag, descending=col_order == "descending", stable=True)
    h = h[perm][:, perm]
    if feedback == "cholesky":
        factor, fell_back = _upper_inverse_factor(h, damp)
        q = gptq_columns(work[:, perm], used, factor, qmax, block_size)
    else:
        factor, fell_back = _full_inverse(h, damp)
        q = gptq_columns(work[:, perm], used, factor, qmax, block_size)
    return q[:, torch.argsort(perm)].contiguous(), stored, fell_back


# -- calibration --------------------------------------------------------------------------------------------------

@torch.no_grad()
def collect_hessians(model: nn.Module, modules: dict[str, nn.Module], calib_tokens: Tensor,
                     batch_seqs: int = 8) -> tuple[dict[str, Tensor], int]:
    """H = XᵀX / n for the inputs of each given module, over forward passes of `model` on `calib_tokens`
    ([n_seqs, seq_len] TRAINING tokens). Returns (Hessians keyed like `modules`, tokens run)."""
    sums: dict[str, Tensor] = {}
    rows: dict[str, int] = {}

    def hook_for(name: str) -> Callable[[nn.Module, tuple[Any, ...]], None]:
        def hook(_mod: nn.Module, args: tuple[Any, ...]) -> None:
            x = args[0].detach().float().reshape(-1, args[0].shape[-1])
            if name not in sums:
                sums[name] = torch.zeros(x.shape[1], x.shape[1], dtype=torch.float32, device=x.device)
                rows[name] = 0
            sums[name].addmm_(x.T, x)
            rows[name] += x.shape[0]
        return hook

    handles = [mod.register_forward_pre_hook(hook_for(name)) for name, mod in modules.items()]
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    # Calibrate in the precision the model is evaluated in (the worker's eval runs bf16 autocast on CUDA).
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    try:
        for i in range(0, calib_tokens.shape[0], batch_seqs):
            with amp:
                model(calib_tokens[i:i + batch_seqs].to(device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return {n: sums[n] / max(rows[n], 1) for n in sums}, int(calib_tokens.numel())


# -- the plan: which tensor gets which scheme ----------------------------------------------------------------------

def group_schemes(qcfg: Any) -> dict[str, str]:
    """The scheme of each group under a QuantConfig."""
    crawler = qcfg.flat_scheme if qcfg.crawler_scheme == "same" else qcfg.crawler_scheme
    return {"flat": qcfg.flat_scheme, "crawler": crawler, "embed": qcfg.embed_scheme,
            "passthrough": "fp16/fp32"}


def classify(name: str, t: Tensor, qcfg: Any, embed_names: Iterable[str] = ()) -> tuple[str, str]:
    """(group, scheme) for one state-dict entry."""
    if not t.is_floating_point():
        return "passthrough", "raw"
    small = t.numel() <= qcfg.passthrough_max_numel
    if small and qcfg.passthrough_order == "size_first":  # the seed: size before the control patterns
        return "passthrough", "fp16"
    if any(p in name for p in CONTROL_PATTERNS):
        return "passthrough", "fp32"
    if small:
        return "passthrough", "fp16"
    schemes = group_schemes(qcfg)
    if name in EMBED_NAMES or name in set(embed_names):
        return "embed", schemes["embed"]
    if name.startswith(CRAWLER_PREFIX):
        return "crawler", schemes["crawler"]
    if name.startswith(DELTA_NET_PREFIX) and qcfg.delta_net_scheme != "same":
        return "flat", qcfg.delta_net_scheme
    return "flat", schemes["flat"]


def _unique_state(model: nn.Module) -> tuple[dict[str, Tensor], dict[str, str]]:
    """State dict without tied duplicates: {name: tensor}, {alias: first name}."""
    seen: dict[tuple[int, tuple[int, ...], tuple[int, ...]], str] = {}
    unique: dict[str, Tensor] = {}
    aliases: dict[str, str] = {}
    for name, t in model.state_dict(keep_vars=False).items():
        key = (t.data_ptr(), tuple(t.shape), tuple(t.stride()))
        if t.numel() and key in seen:
            aliases[name] = seen[key]
            continue
        seen[key] = name
        unique[name] = t
    return unique, aliases


def quantize_tensor(name: str, t: Tensor, group: str, scheme: str, qcfg: Any,
                    hessian: Tensor | None) -> tuple[QTensor, bool]:
    """Quantize one tensor; returns (QTensor, whether GPTQ fell back from a plain Cholesky)."""
    shape, dtype = tuple(t.shape), t.dtype
    if scheme in ("raw", "fp32", "fp16", "fp16/fp32"):
        store = {"raw": t.dtype, "fp32": torch.float32}.get(scheme, torch.float16)
        return QTensor(name, group, scheme, shape, dtype, data=t.detach().to("cpu", store).contiguous()), False
    fell_back = False
    rnd = Rounding.of(qcfg)
    if scheme == "int8":
        q, s = quantize_int8_baseline(t, rnd)
    elif scheme.startswith("gptq_") and hessian is not None:
        q, s, fell_back = gptq_quantize(t, hessian, scheme[5:], qcfg.gptq_block_size, qcfg.gptq_damp,
                                        qcfg.gptq_col_order, qcfg.gptq_feedback, rnd)
    else:
        scheme = scheme.removeprefix("gptq_")  # no Hessian: say honestly that it was plain rounding
        q, s = quantize_rtn(t, scheme, rnd)
    return QTensor(name, group, scheme, shape, dtype, q=q.cpu().contiguous(), scale=s.cpu().contiguous()), fell_back


def quantize_model(model: nn.Module, qcfg: Any, calib_tokens: Tensor | None,
                   calib_batch_seqs: int = 8) -> QuantResult:
    """Quantize every tensor of `model` under `qcfg`. GPTQ Hessians are collected on this very model.

    With `gptq_loop_aware`, the loop-shared GPTQ targets (`crawler_blocks.`, `delta_net.`, `loop_inst`) are
    calibrated in a second pass, with every other tensor temporarily replaced by its quantized value, so their
    Hessians see the inputs the quantized model will feed them (the seed's LOOP_AWARE_GPTQ); the model's own
    weights are restored afterwards."""
    state, aliases = _unique_state(model)
    embed_names = {f"{n}.weight" for n, m in model.named_modules() if isinstance(m, nn.Embedding)}
    plan = {name: classify(name, t, qcfg, embed_names) for name, t in state.items()}
    linears = {f"{n}.weight": m for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    targets = {name: linears[name] for name, (_, scheme) in plan.items()
               if scheme.startswith("gptq_") and name in linears}
    if targets and (calib_tokens is None or calib_tokens.numel() == 0):
        raise ValueError("GPTQ needs calibration tokens from the training stream")
    late = {n: m for n, m in targets.items() if n.startswith(LOOP_SHARED)} if qcfg.gptq_loop_aware else {}
    early = {n: m for n, m in targets.items() if n not in late}
    result = QuantResult(tensors={}, aliases=aliases)
    hessians: dict[str, Tensor] = {}
    if early:
        hessians, result.calib_tokens = collect_hessians(model, early, calib_tokens, calib_batch_seqs)
    first = [n for n in state if n not in late]
    _quantize_into(result, {n: state[n] for n in first}, plan, qcfg, hessians)
    if late:
        with _swapped_in(model, {n: result.tensors[n].dequantize() for n in first}):
            late_h, result.calib_tokens = collect_hessians(model, late, calib_tokens, calib_batch_seqs)
        _quantize_into(result, {n: state[n] for n in late}, plan, qcfg, late_h)
        hessians.update(late_h)
    result.tensors = {n: result.tensors[n] for n in state}  # state-dict order
    result.calibrated = sorted(hessians)
    result.schemes = applied_schemes(result.tensors.values())
    return result


def _quantize_into(result: QuantResult, tensors: dict[str, Tensor], plan: dict[str, tuple[str, str]],
                   qcfg: Any, hessians: dict[str, Tensor]) -> None:
    for name, t in tensors.items():
        group, scheme = plan[name]
        qt, fell_back = quantize_tensor(name, t, group, scheme, qcfg, hessians.get(name))
        result.tensors[name] = qt
        result.cholesky_fallbacks += int(fell_back)


@contextlib.contextmanager
def _swapped_in(model: nn.Module, values: dict[str, Tensor]) -> Iterator[None]:
    """Temporarily copy `values` into the model's parameters and buffers of the same names."""
    live = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    saved = {n: live[n].detach().clone() for n in values if n in live}
    try:
        with torch.no_grad():
            for n in saved:
                live[n].copy_(values[n])
        yield
    finally:
        with torch.no_grad():
            for n, v in saved.items():
                live[n].copy_(v)


def applied_schemes(tensors: Iterable[QTensor]) -> dict[str, str]:
    """What each group really got: a gptq group whose tensors were all small reads as passthrough only."""
    seen: dict[str, set[str]] = {}
    for qt in tensors:
        seen.setdefault(qt.group, set()).add(qt.scheme)
    return {g: "+".join(sorted(seen[g])) for g in GROUPS if g in seen}
