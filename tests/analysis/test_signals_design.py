"""sweeps/signals.yaml (`clowncar demo --signals`) is designed so that every signal test gets a result.

Checked on the spec's own plan, without training: its distinct trials (with their loops, cadence, width, seed)
and what the worker would log for them (a step row per step with the C/N kind of the worker's own cadence rule
and LR phase, a probe every `probe_every` steps, an eval every `val_every` steps, a quantized final score), filled
with made-up values of realistic size. What this proves is the design: which tests the sweep feeds and with how
many runs. The real sweep's report is in docs/signals.md (measured with `clowncar demo --signals`)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from clowncar.analysis.family import run_all
from clowncar.orchestrator.spec import load_spec
from clowncar.worker.schedule import is_crawl_step, lr_scale

SPEC = Path(__file__).resolve().parents[2] / "sweeps" / "signals.yaml"
MIN_RUNS = {"1a_cn_loss": 16, "1b_next_step": 16, "2a_gap_loops": 24, "2b_gap_cadence": 24, "3a_width": 24,
            "3b_sharing_beyond_width": 24, "4_early_boost": 24, "5_sharing_matched_params": 24,
            "6_seed_variance": 24}


def planned_frames(rng: np.random.Generator) -> dict[str, pd.DataFrame]:
    spec = load_spec(SPEC)
    trials, steps, probes, evals = [], [], [], []
    for i, point in enumerate(spec.distinct_grid().points):
        cfg = spec.trial_config(point)
        m, t = cfg.model, cfg.train
        uid = f"signals/{i}"
        seed_shift = rng.normal(0, 0.01)
        final = 2.5 - 0.1 * math.log(m.model_dim / 32) - 0.01 * m.crawler_loops + seed_shift
        gap = 0.0002 * m.crawler_loops + rng.normal(0, 0.0001)
        trials.append({"sweep": "signals", "trial_uid": uid, "status": "ok", "seed": t.seed, "config_hash": f"h{i}",
                       "val_bpb": final - gap, "q_val_bpb": final, "quant_gap": gap, "model_dim": m.model_dim,
                       "params": 1000.0 * m.model_dim, "steps": t.iterations,
                       "c_steps": sum(is_crawl_step(s, t.cadence) for s in range(1, t.iterations + 1)),
                       **{f"data.{k}": v for k, v in cfg.data.model_dump().items()},
                       **{f"model.{k}": v for k, v in m.model_dump().items() if not isinstance(v, dict | list)},
                       **{f"train.{k}": v for k, v in t.model_dump().items() if not isinstance(v, dict | list)}})
        drift = 0.0
        for s in range(1, t.iterations + 1):
            crawl = is_crawl_step(s, t.cadence, t.cadence_offset)
            drift = 0.9 * drift + rng.normal(0, 0.01)
            loss = 7.0 * (s + 5) ** -0.15 + 0.03 * crawl + drift + rng.normal(0, 0.02) + seed_shift
            if s % t.log_every == 0 or s == 1:
                steps.append({"trial_uid": uid, "step": s, "kind": "C" if crawl else "N", "train_loss": loss,
                              "phase": lr_scale(t, s, 0.0).phase})
            if t.probe_every and s % t.probe_every == 0:
                probes.append({"trial_uid": uid, "step": s, "probe_loss": loss - 0.05 * crawl})
            if t.val_every and s % t.val_every == 0:
                evals.append({"trial_uid": uid, "step": s, "mode": "standard", "weights": "raw",
                              "val_bpb": final + 0.5 * (1 - s / t.iterations) - 0.01 * m.crawler_loops
                              + rng.normal(0, 0.002)})  # noise-free curves leave the cluster check undefined
        evals.append({"trial_uid": uid, "step": t.iterations, "mode": "standard", "weights": "raw",
                      "val_bpb": final - gap})
    return {"trials": pd.DataFrame(trials), "steps": pd.DataFrame(steps), "probes": pd.DataFrame(probes),
            "evals": pd.DataFrame(evals)}


def test_every_signal_test_gets_an_estimate_from_the_signal_sweeps_design() -> None:
    frames = planned_frames(np.random.default_rng(0))
    assert len(frames["trials"]) == 28
    out: dict[str, Any] = run_all(frames["trials"], frames["steps"], frames["evals"], frames["probes"])
    results = {r.key: r for r in out["results"]}
    assert set(results) == set(MIN_RUNS)
    for key, r in results.items():
        assert r.effect is not None, f"{key}: {r.verdict}"  # an estimate, not "not enough data" for want of runs
        assert r.n_runs >= MIN_RUNS[key], (key, r.n_runs)
        if key != "6_seed_variance":  # descriptive: no p-value
            assert r.p_value is not None and r.p_adjusted is not None, key
    assert results["4_early_boost"].extra["interaction_check"]["status"] == "ok"
    assert results["1b_next_step"].extra["source"] == "probe"  # probes every 3 steps: C-steps per interval vary
    # every run with both step kinds has a cadence-1 twin (same seed, loops, width) on the same token stream
    assert results["1a_cn_loss"].extra["reference_corrected"]
    assert results["1b_next_step"].extra["scope"].startswith("Reference correction")
    trials = frames["trials"].set_index("trial_uid")
    for row in results["1a_cn_loss"].tables["reference_runs"]:
        run, ref = trials.loc[row["run"]], trials.loc[row["reference"]]
        assert ref["train.cadence"] == 1 and run["train.cadence"] in (2, 4)
        assert [run[k] for k in ("train.seed", "model.crawler_loops", "model.model_dim")] == [
            ref[k] for k in ("train.seed", "model.crawler_loops", "model.model_dim")]
    assert len(results["1a_cn_loss"].tables["reference_runs"]) == 16


def test_demo_takes_signals_or_a_spec_not_both(run_cli, tmp_path: Path) -> None:
    r = run_cli("demo", "--signals", "--spec", str(SPEC))
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "--signals or --spec" in r.stderr, r.stderr


def test_the_reports_pointer_to_the_signal_demo_counts_the_trials_of_the_spec_the_demo_runs() -> None:
    from clowncar.analysis.report import SIGNALS_DEMO
    from clowncar.demo import SIGNALS

    spec = load_spec(SPEC)
    assert SIGNALS == SPEC and spec.resources.gpus == 0
    assert f"runs sweeps/signals.yaml, a sweep built to give every test an estimate ({spec.max_trials()} CPU trials" in SIGNALS_DEMO
