"""Final / eval lines of a training log: what each one measured, and which one is the run's headline.

Every line with a numeric `val_bpb` and no step counter is a named eval (`final_int8_zlib_roundtrip_exact`,
`final_int6_sliding_window_exact`, `quantized_ttt_phased`, `legal_ttt_exact`, `pre-quantization post-ema`, ...).
Its name says how it was measured:

| mode | words in the name |
| --- | --- |
| `ngram` | `ngram`, `n-gram`, `2gram` ... (an n-gram mixture at eval time) |
| `ttt` | `ttt` (test-time training: `legal_ttt`, `ttt_lora`, `quantized_ttt_phased`, `ttt_sliding:done`) |
| `sliding` | `sliding` (sliding-window eval: `final_sliding_window`, `quantized_sliding_window`, ...) |
| `temp` | `temped`, `temp`, `temperature` (a temperature-calibrated eval) |
| `standard` | anything else, unless the log declared `final_eval_mode:<mode>` before the line |

Weights are `raw` when the name says `pre`(-quantization), `raw`, `ema`, `post_ema`, `unquantized`, `fp32` or
`bf16` (and neither `quantized` nor a scheme), else
`quantized` (the challenge scores the round-tripped artifact: `final_*`, `quantized*`, `legal_ttt*`). The quant
scheme is the name's `int8`, `int6`, `ternary`, `binary`, `xnor`, ... word, when it has one.

A line whose val_loss and val_bpb repeat an earlier named eval of the run is that measurement printed
again under another name (several scripts print the sliding-window result a second time as
`final_int8_zlib_roundtrip_exact`, and some end with a `val_bpb: X` summary): it keeps the earlier line's
mode, weights and scheme (its own scheme where the earlier line names none), and `repeats` names it. The two
numbers repeat when they are equal, or equal at the precision of the shorter writing when both writings have 4
or more decimals (`ttt_sliding:done val_loss=3.074214 val_bpb=1.336032`, then `final_int6_ttt
val_loss:3.07421378 val_bpb:1.33603200 eval_time:405410ms`: one evaluation, timed once in `eval_seconds`). A
line with val_bpb alone repeats one when its value, written to 6 or more decimals, is equal.

The headline is the last named eval of the run. Result keys, one per kind (the last line of that kind wins):
`q_val_*` (quantized, standard), `q_sliding_val_*`, `q_ttt_val_*`, `q_ngram_val_*`, `q_temp_val_*`;
raw weights give `val_*` (standard), `sliding_val_*`, ...; and `headline_bpb`, `headline_loss`, `headline_name`,
`headline_mode`, `headline_weights`, `headline_quant`, `headline_line`, `headline_repeats`.
"""

from __future__ import annotations

import re
from typing import Any

from clowncar.store.importers.lines import Line

MODES = ("standard", "sliding", "ttt", "ngram", "temp")
# fp32 is the trained weights' own precision, never a quantization scheme (fp8 and fp16 are export formats)
_QUANT = re.compile(r"^(int\d+|uint\d+|fp(?!32$)\d+|nf4|ternary|binary|xnor|gptq|mixed)$")
_SPLIT = re.compile(r"[\s_:\-.+/]+")


def mode_of(text: str) -> str | None:
    """The eval mode a name or setting value states, or None when it states none."""
    low = text.lower()
    words = set(_SPLIT.split(low))
    if re.search(r"n-?gram|\d+gram", low):
        return "ngram"
    if "ttt" in words:
        return "ttt"
    if "sliding" in words:
        return "sliding"
    if words & {"temped", "temp", "temperature"}:
        return "temp"
    if words & {"standard", "nonoverlapping"}:
        return "standard"
    return None


def classify(name: str, words: list[str], default_mode: str) -> tuple[str, str, str | None]:
    """(mode, weights, quant scheme) of a named eval line."""
    text = " ".join([name, *words])
    mode = mode_of(text) or default_mode
    tokens = set(_SPLIT.split(text.lower()))
    quant = next((t for t in _SPLIT.split(text.lower()) if _QUANT.match(t)), None)
    raw = bool(tokens & {"pre", "prequant", "raw", "ema", "unquantized", "fp32", "bf16"})
    weights = "raw" if raw and "quantized" not in tokens and quant is None else "quantized"
    return mode, weights, quant


def named_eval(ln: Line, seq: int, default_mode: str, earlier: list[dict[str, Any]],
               earlier_lines: list[Line]) -> dict[str, Any]:
    """The row of one eval line (see the module docstring); `earlier` are the run's named evals before it, read
    from `earlier_lines` (which say to how many decimals each number was written). Its step is left for the
    caller: the eval lines of a run measure the weights of its last step."""
    loss, bpb = ln.num("val_loss", "loss"), ln.num("val_bpb")
    mode, weights, quant = classify(ln.name, ln.words, default_mode)
    row: dict[str, Any] = {"seq": seq, "name": (ln.name or "val_bpb")[:200], "mode": mode, "weights": weights,
                           "quant": quant, "step": None, "val_loss": loss, "val_bpb": bpb,
                           "eval_ms": ln.ms("eval_time", "time", "elapsed"), "line": ln.number, "repeats": None}
    # a repeat matches both numbers; a line with val_bpb alone (a summary) matches when it is written to 6+
    # decimals, where two different measurements agreeing by chance is out of the question
    if loss is not None or (ln.decimals("val_bpb") or 0) >= 6:
        same = next((e for e, e_line in zip(earlier, earlier_lines, strict=True)
                     if (e["val_bpb"] == bpb and (loss is None or e["val_loss"] == loss))
                     or _rounded_repeat(ln, e_line)), None)
        if same is not None:  # a scheme the earlier line does not name is kept (`final_int6_ttt`)
            row.update(mode=same["mode"], weights=same["weights"], quant=same["quant"] or quant,
                       repeats=same["repeats"] or same["name"])
    return row


def _written(ln: Line, metric: str) -> tuple[float | None, int]:
    """A metric of an eval line (`loss`: its val_loss, else its loss) and the decimals it was written with."""
    key = "val_loss" if metric == "loss" and "val_loss" in ln.fields else metric
    return ln.num(key), ln.decimals(key) or 0


def _rounded_repeat(ln: Line, earlier: Line) -> bool:
    """The line prints the earlier eval line again at another precision: val_loss and val_bpb are each written
    to 4+ decimals by both, and the longer rounds to the shorter (`ttt_sliding:done val_loss=3.074214
    val_bpb=1.336032` then `final_int6_ttt val_loss:3.07421378 val_bpb:1.33603200`; `final_int6_roundtrip_exact`
    after `final_int6_roundtrip`, written to 4 decimals)."""
    for metric in ("loss", "val_bpb"):
        (value, decimals), (first, first_decimals) = _written(ln, metric), _written(earlier, metric)
        shorter = min(decimals, first_decimals)
        if value is None or first is None or shorter < 4 or round(value, shorter) != round(first, shorter):
            return False
    return True


def result_keys(named: list[dict[str, Any]]) -> dict[str, Any]:
    """The result fields the named evals of one run give (see the module docstring)."""
    out: dict[str, Any] = {}
    for e in named:
        prefix = ("q_" if e["weights"] == "quantized" else "") + ("" if e["mode"] == "standard" else f"{e['mode']}_")
        out[f"{prefix}val_loss"], out[f"{prefix}val_bpb"] = e["val_loss"], e["val_bpb"]
    if named:
        h = named[-1]
        out.update(headline_bpb=h["val_bpb"], headline_loss=h["val_loss"], headline_name=h["name"],
                   headline_mode=h["mode"], headline_weights=h["weights"], headline_quant=h["quant"],
                   headline_line=h["line"], headline_repeats=h["repeats"])
        out["evaluated_weights"] = h["weights"]
    return out
