"""Simulated sweeps with planted effects of known size, in the store's frame shapes.

Each simulator returns frames exactly as `Store.trials_frame` / `steps_frame` / `evals_frame` / `probes_frame`
shape them (dotted config columns, trial_uid, kind C/N, ...), so the tests exercise the same code path as a
real sweep. Effects are planted in BPB (or nats for step losses); noise is seed-level plus autocorrelated
within-run drift, the structure analysis_methods.md section 5 warns about."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest


def _trial_row(uid: str, seed: int, width: int, flat: int, crawl: int, loops: int, cadence: int,
               bpb: float, gap: float, params: float) -> dict:
    return {
        "sweep": "sim", "trial_uid": uid, "status": "ok", "seed": seed, "config_hash": f"h{uid}",
        "val_bpb": bpb - gap, "q_val_bpb": bpb, "quant_gap": gap, "params": params,
        "artifact_bytes": params * 0.8, "model_dim": width, "steps": 500,
        "c_steps": 0 if cadence == 0 else 500 // cadence, "provenance.git_commit": "abc1234",
        "model.arch": "crawler", "model.model_dim": width, "model.num_flat_layers": flat,
        "model.num_crawler_layers": crawl, "model.crawler_loops": loops, "train.cadence": cadence,
        "train.seed": seed,
    }


def simulate_grid(rng: np.random.Generator, *, width_effect: float = 0.0, layer_effect: float = 0.0,
                  loop_effect: float = 0.0, gap_per_loop: float = 0.0, gap_per_cfrac: float = 0.0,
                  seeds: int = 2, sd: float = 0.01, gap_sd: float = 0.002) -> pd.DataFrame:
    """A width x unique-layers x loops x cadence grid (independent factors), `seeds` runs per config.

    `width_effect` is the BPB change from the narrowest (384) to the widest (576) width."""
    widths, flats, loops_, cads = (384, 480, 576), (2, 4), (1, 2, 3), (1, 2, 4)
    span = math.log(576 / 384)
    rows = []
    for w in widths:
        for f in flats:
            for lp in loops_:
                cad = cads[(w // 96 + f + lp) % 3]  # varies cadence without a full factorial
                for s in range(seeds):
                    mu = 2.0 + width_effect * math.log(w / 384) / span + layer_effect * f + loop_effect * lp
                    cfrac = 1 / cad
                    gap = 0.01 + gap_per_loop * lp + gap_per_cfrac * cfrac + rng.normal(0, gap_sd)
                    uid = f"w{w}f{f}l{lp}s{s}"
                    rows.append(_trial_row(uid, 100 + s, w, f, 1, lp, cad, mu + rng.normal(0, sd), gap,
                                           params=w * w * (f + 1) * 12.0))
    return pd.DataFrame(rows)


def simulate_steps(rng: np.random.Generator, *, runs: int = 6, steps: int = 240, cadence: int = 3,
                   cn_effect: float = 0.0, update_effect: float = 0.0, probe_every: int = 0,
                   phi: float = 0.995, drift_sd: float = 0.01, noise_sd: float = 0.05
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-step train losses: decaying curve + run drift (AR(1), phi) + batch noise + `cn_effect` on C-steps
    + `update_effect` on the step after a C-step (transient) and, for probes, a lasting `update_effect` per
    C-step update on the held-out loss."""
    t = np.arange(1, steps + 1, dtype=float)
    is_c = ((t - 1) % cadence == 0) if cadence else np.zeros_like(t, dtype=bool)
    prev_c = np.r_[False, is_c[:-1]]
    curve = 3.0 + 4.0 * np.exp(-t / (steps / 4))
    step_rows, probe_rows = [], []
    for r in range(runs):
        e = rng.normal(0, drift_sd * math.sqrt(1 - phi**2), steps)
        drift = np.empty(steps)
        drift[0] = rng.normal(0, drift_sd)
        for i in range(1, steps):
            drift[i] = phi * drift[i - 1] + e[i]
        loss = curve + drift + rng.normal(0, noise_sd, steps) + cn_effect * is_c + update_effect * prev_c
        uid = f"run{r}"
        step_rows.append(pd.DataFrame({"sweep": "sim", "trial_uid": uid, "attempt": 0, "step": t.astype(int),
                                       "kind": np.where(is_c, "C", "N"), "train_loss": loss,
                                       "lr_scale": 1.0, "phase": "main", "elapsed_ms": t * 10, "tokens": t * 1024}))
        if probe_every:
            held = curve + drift * 0.5 + update_effect * np.cumsum(is_c) + rng.normal(0, noise_sd / 5, steps)
            at = np.arange(probe_every, steps + 1, probe_every) - 1
            probe_rows.append(pd.DataFrame({"sweep": "sim", "trial_uid": uid, "attempt": 0, "step": at + 1,
                                            "mode": "N", "probe_loss": held[at]}))
    probes = pd.concat(probe_rows, ignore_index=True) if probe_rows else pd.DataFrame()
    return pd.concat(step_rows, ignore_index=True), probes


def simulate_curves(rng: np.random.Generator, *, boost_per_loop: float = 0.0, runs_per_loop: int = 4,
                    loops: tuple[int, ...] = (1, 2, 3), sd_run: float = 0.02, sd_eval: float = 0.005
                    ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Eval curves every 50 of 500 steps; more loops lower BPB by `boost_per_loop` per loop early, fading to
    zero by the end (exp decay), plus a constant loops effect that must not be mistaken for the interaction."""
    steps = np.arange(50, 501, 50, dtype=float)
    trials, evals = [], []
    for lp in loops:
        for s in range(runs_per_loop):
            uid = f"l{lp}s{s}"
            offset = rng.normal(0, sd_run) - 0.01 * lp
            curve = 2.0 + 2.0 * np.exp(-steps / 120) + offset - boost_per_loop * lp * np.exp(-steps / 100)
            bpb = curve + rng.normal(0, sd_eval, steps.size)
            trials.append(_trial_row(uid, s, 512, 3, 1, lp, 2, float(bpb[-1]), 0.01, 1e6))
            evals.append(pd.DataFrame({"sweep": "sim", "trial_uid": uid, "attempt": 0, "step": steps.astype(int),
                                       "mode": "standard", "weights": "raw", "val_bpb": bpb}))
    return pd.DataFrame(trials), pd.concat(evals, ignore_index=True)


def simulate_sharing(rng: np.random.Generator, *, effect: float = 0.0, runs_per_arm: int = 6,
                     sd: float = 0.01) -> pd.DataFrame:
    """Shared (1 crawler block x 3 loops) vs unshared (loops 1) runs at matched parameter counts (+-3%)."""
    rows = []
    for arm, lp in (("sh", 3), ("un", 1)):
        for s in range(runs_per_arm):
            bpb = 2.0 + (effect if lp > 1 else 0.0) + rng.normal(0, sd)
            params = 1.0e7 * (1 + rng.uniform(-0.03, 0.03))
            rows.append(_trial_row(f"{arm}{s}", s, 512, 4, 1, lp, 1, bpb, 0.01, params))
    return pd.DataFrame(rows)


def simulate_seed_reruns(rng: np.random.Generator, *, configs: int = 4, seeds: int = 3,
                         sd: float = 0.0015) -> pd.DataFrame:
    rows = []
    for c in range(configs):
        for s in range(seeds):
            rows.append(_trial_row(f"c{c}s{s}", s, 512, 2 + c, 1, 2, 2, 2.0 + 0.01 * c + rng.normal(0, sd), 0.01,
                                   1e6))
    return pd.DataFrame(rows)


@pytest.fixture
def sims() -> dict[str, Callable]:
    return {"grid": simulate_grid, "steps": simulate_steps, "curves": simulate_curves,
            "sharing": simulate_sharing, "seeds": simulate_seed_reruns}


def detection_rate(fn: Callable[[np.random.Generator], float | None], n: int, seed: int,
                   alpha: float = 0.05) -> float:
    """Share of `n` simulations whose p-value is below alpha (None counts as not detected)."""
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(n):
        p = fn(rng)
        hits += p is not None and p < alpha
    return hits / n


@pytest.fixture
def rate() -> Callable:
    return detection_rate
