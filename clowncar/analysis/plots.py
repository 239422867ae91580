"""The report's figures as PNG bytes (matplotlib, Agg backend: no display needed). Each returns None when the
data for it is missing, and the report says so instead of showing an empty frame."""

from __future__ import annotations

import io
import warnings
from typing import Any

import numpy as np
import pandas as pd

from clowncar.analysis.frames import complete_rows
from clowncar.store.frames import CHALLENGE_CAP_BYTES

MAX_CURVES = 12
LINE_STYLES = ("-", "--", ":", "-.")  # a line beyond the 10 colours of the cycle gets the next style
LONG_RUN_FACTOR = 20  # a curve this many times longer than the median one puts the step axis on a log scale


def curve_selection(runs: pd.DataFrame, labels: pd.Series) -> tuple[list[str], str]:
    """The configs a curve figure draws, the MAX_CURVES with the lowest mean BPB (configs without a BPB last),
    and the caption line that names the ones left out ('' when all fit). Both curve figures pick the same way,
    so a config left out of one is left out of the other."""
    present = pd.Series(pd.unique(labels.astype(str)))
    named = runs["label"].where(runs["label"].notna(), runs["run_id"]).astype(str)  # as the figures name runs
    by_label = runs.assign(label=named).groupby("label")["bpb"].mean() if "bpb" in runs else None
    mean = present.map(by_label) if by_label is not None else pd.Series(np.nan, index=present.index)
    order = pd.DataFrame({"label": present, "mean": mean}).sort_values(["mean", "label"], na_position="last")
    shown = order["label"].tolist()[:MAX_CURVES]
    left = order["label"].tolist()[MAX_CURVES:]
    if not left:
        return shown, ""
    return shown, (f"Showing the {len(shown)} of {len(present)} configs with the lowest mean BPB; left out: "
                   f"{', '.join(left)}.")


def _line_style(i: int) -> dict[str, Any]:
    """The i-th curve's colour from matplotlib's 10 `tab10` colours (not "C{i}", which reads the user's
    matplotlibrc cycle: a 6-colour cycle drew curve 6 as curve 0), then the next line style."""
    import matplotlib

    colours = matplotlib.colormaps["tab10"].colors
    return {"color": colours[i % len(colours)], "linestyle": LINE_STYLES[(i // len(colours)) % len(LINE_STYLES)]}


def _step_axis(ax: Any, last_steps: list[float]) -> None:
    """A log step axis when one run is far longer than the others (a 330k-step record beside 5k-step ones would
    squeeze them into the first 2% of a linear axis)."""
    if last_steps and min(last_steps) > 0 and max(last_steps) > LONG_RUN_FACTOR * float(np.median(last_steps)):
        ax.set_xscale("log")
        ax.set_xlabel(f"step (log scale: run lengths differ by over {LONG_RUN_FACTOR}x)")
    else:
        ax.set_xlabel("step")


def _figure(w: float = 6.4, h: float = 4.0) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(w, h), dpi=100)
    return fig, ax


def _png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    with warnings.catch_warnings():  # tight_layout warns on crowded figures; the figure is still usable
        warnings.simplefilter("ignore")
        fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def loss_curves(steps: pd.DataFrame, runs: pd.DataFrame) -> tuple[bytes | None, str]:
    """Training loss per config: mean over its runs at each step, smoothed (rolling mean over 2% of steps); the
    figure and the caption line naming the configs left out (`curve_selection`)."""
    if steps is None or steps.empty or not {"trial_uid", "step", "train_loss"} <= set(steps.columns):
        return None, ""
    s = steps[["trial_uid", "step", "train_loss"]].copy()
    s["trial_uid"] = s["trial_uid"].astype(str)
    s = s.merge(runs[["run_id", "label"]], left_on="trial_uid", right_on="run_id", how="left")
    s["label"] = s["label"].fillna(s["trial_uid"])
    s["train_loss"] = pd.to_numeric(s["train_loss"], errors="coerce")
    if s["train_loss"].isna().all():
        return None, ""
    fig, ax = _figure()
    labels, caption = curve_selection(runs, s["label"])
    for i, lab in enumerate(labels):
        curve = s[s["label"] == lab].groupby("step")["train_loss"].mean().sort_index()
        win = max(1, len(curve) // 50)
        n = s[s["label"] == lab]["trial_uid"].nunique()
        ax.plot(curve.index, curve.rolling(win, min_periods=1).mean(), lw=1.2, label=f"{lab} (n={n})",
                **_line_style(i))
    _step_axis(ax, [float(s[s["label"] == lab]["step"].max()) for lab in labels])
    ax.set_ylabel("train loss (nats), rolling mean")
    ax.set_title("Training loss per config (mean over runs)")
    ax.legend(fontsize=7)
    return _png(fig), caption


def eval_curves(evals: pd.DataFrame, runs: pd.DataFrame) -> tuple[bytes | None, str]:
    from clowncar.analysis.curves import eval_curves as consistent

    e = consistent(evals)
    if e.empty or e.groupby("trial_uid").size().max() < 2:
        return None, ""
    e = e.merge(runs[["run_id", "label"]], left_on="trial_uid", right_on="run_id", how="left")
    e["label"] = e["label"].fillna(e["trial_uid"])
    fig, ax = _figure()
    labels, caption = curve_selection(runs, e["label"])
    for i, lab in enumerate(labels):
        curve = e[e["label"] == lab].groupby("step")["val_bpb"].mean().sort_index()
        ax.plot(curve.index, curve.values, marker=".", lw=1.2, label=lab, **_line_style(i))
    _step_axis(ax, [float(e[e["label"] == lab]["step"].max()) for lab in labels])
    ax.set_ylabel("eval BPB")
    ax.set_title("Eval BPB per config (mean over runs, no band)")
    ax.legend(fontsize=7)
    return _png(fig), caption


def quant_gap_vs_loops(runs: pd.DataFrame) -> bytes | None:
    r = complete_rows(runs, ["quant_gap", "loops"])
    if r.empty:
        return None
    fig, ax = _figure()
    jitter = np.random.default_rng(0).uniform(-0.08, 0.08, len(r))
    sc = ax.scatter(r["loops"] + jitter, r["quant_gap"], c=r["crawl_frac"].fillna(0), cmap="viridis", s=28)
    fig.colorbar(sc, ax=ax, label="C-step fraction (1/cadence)")
    means = r.groupby("loops")["quant_gap"].mean()
    ax.plot(means.index, means.values, "k_", ms=18, mew=2, label="mean per loop count")
    ax.set_xlabel("crawler loops (jittered)")
    ax.set_ylabel("quant gap (post - pre BPB)")
    ax.set_title("Quantization gap vs loops, one dot per run")
    ax.legend(fontsize=7)
    return _png(fig)


def pareto(runs: pd.DataFrame, front: list[dict[str, Any]]) -> bytes | None:
    r = complete_rows(runs, ["bpb", "artifact_bytes"])
    if r.empty:
        return None
    fig, ax = _figure()
    ax.scatter(r["artifact_bytes"] / 1e6, r["bpb"], s=18, alpha=0.6, label="runs")
    if front:
        f = pd.DataFrame(front)
        ax.step(f["artifact_bytes"] / 1e6, f["bpb"], where="post", color="C3", lw=1.5, label="Pareto front")
    if r["artifact_bytes"].max() >= CHALLENGE_CAP_BYTES / 2:  # drawn where it would not squash tiny demo runs
        ax.axvline(CHALLENGE_CAP_BYTES / 1e6, color="k", ls="--", lw=1, label="16,000,000-byte cap")
    ax.set_xlabel("artifact size (MB)")
    ax.set_ylabel("BPB")
    ax.set_title("BPB against artifact bytes")
    ax.legend(fontsize=7)
    return _png(fig)


def bpb_vs_width(runs: pd.DataFrame) -> bytes | None:
    r = complete_rows(runs, ["bpb", "width"])
    if r.empty or r["width"].nunique() < 2:
        return None
    fig, ax = _figure()
    sc = ax.scatter(r["width"], r["bpb"], c=r["unique_layers"].fillna(0), cmap="plasma", s=30)
    fig.colorbar(sc, ax=ax, label="unique layers")
    ax.set_xscale("log")
    ax.set_xlabel("model width (log scale)")
    ax.set_ylabel("BPB")
    ax.set_title("BPB vs width, one dot per run")
    return _png(fig)


def top_config_seeds(top: list[dict[str, Any]]) -> bytes | None:
    if not top:
        return None
    fig, ax = _figure(6.4, max(2.5, 1.2 + 0.35 * len(top)))
    for i, row in enumerate(top):
        vals = [p["bpb"] for p in row["per_seed"]]
        ax.scatter(vals, [i] * len(vals), s=22, color="C0")
        ax.plot([row["mean_bpb"]], [i], "k|", ms=12, mew=2)
        if row.get("ci_low") is not None:
            ax.hlines(i, row["ci_low"], row["ci_high"], color="k", lw=1)
    ax.set_yticks(range(len(top)), [r["config"] for r in top], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("BPB (dots: seeds; bar: mean with t 95% CI)")
    ax.set_title("Top configs with every seed rerun")
    return _png(fig)
