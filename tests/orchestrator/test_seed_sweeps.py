"""The seed's sweeps as our specs (sweeps/frugendorff_v2.yaml, micro_crawler.yaml, cadence_ablation.yaml), checked
against the seed's own data in ../shared/legacy-runs: every Frugendorff v2 CSV row and every micro-crawler config
maps to a point of the spec, no point lies outside the seed's space unless the spec's header says so, the fractal
trainer's F/N traces follow our cadence; then each spec, scaled down (tiny widths, a few steps), runs on CPU as a
real sweep."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from clowncar.config_canonical import canonical
from clowncar.config_load import load_config
from clowncar.model import build_model, count_params, resolve_model_dim
from clowncar.orchestrator.spec import load_spec
from clowncar.store.importers import cadence_tsv, micro_log, sweep_csv
from clowncar.worker.schedule import is_crawl_step

REPO = Path(__file__).resolve().parents[2]
SWEEPS = REPO / "sweeps"
SEED = 1337  # both seed sweeps passed --seed 1337 to every run (seed_facts 9.1)


def spec_hashes(spec: Any) -> dict[str, dict[str, Any]]:
    return {spec.trial_config(p).content_hash(): p for p in spec.distinct_grid().points}


# -- Frugendorff v2 ------------------------------------------------------------------------------------------------

def frug2_rows(legacy_runs: Path) -> list[Any]:
    path = legacy_runs / "sweep_csv" / "autoresearch_frug2_results.csv"
    return sweep_csv.parse(path.read_text(), path.name).trials


def seed_frug2_config(trial: Any) -> Any:
    """The config the seed's driver ran for one CSV row, from the row alone (on the trainer's preset)."""
    c = trial.config
    lr = c["legacy"]["lr"]
    assert c["model"]["model_dim"] == "auto"  # the CSV's model_dim 0: auto-sized
    return canonical(load_config(preset="frugendorff-v2", overrides={
        "model.num_crawler_layers": c["model"]["num_crawler_layers"], "model.crawler_loops": c["model"]["crawler_loops"],
        "model.crawler_mlp_mult": c["model"]["mlp_mult"],  # the fractal stack's blocks are all shared blocks
        "train.cadence": c["train"]["cadence"], "train.cadence_offset": c["train"]["cadence_offset"],
        "train.grad_clip_norm": c["train"]["grad_clip_norm"], "train.matrix_lr": lr, "train.scalar_lr": lr,
        "train.tied_embed_lr": lr, "train.seed": SEED}))


def test_every_frugendorff_v2_csv_row_is_a_point_of_the_spec(legacy_runs: Path) -> None:
    spec = load_spec(SWEEPS / "frugendorff_v2.yaml")
    points = spec_hashes(spec)
    rows = frug2_rows(legacy_runs)
    assert len(rows) == 174
    visited = {}
    for row in rows:
        key = seed_frug2_config(row).content_hash()
        assert key in points, f"{row.key} has no point in the spec"
        visited.setdefault(key, []).append(row.key)
    # The header says what the spec adds beyond the seed: 21 visited configs of 160, 139 never run.
    header = (SWEEPS / "frugendorff_v2.yaml").read_text()
    assert len(points) == 160 and len(visited) == 21
    assert "21 of this spec's 160 points" in header and f"the other {160 - len(visited)} points" in header
    assert max(len(v) for v in visited.values()) == 66 and "1 to 66 times" in header


def test_frugendorff_v2_space_holds_only_values_the_csv_shows(legacy_runs: Path) -> None:
    spec = load_spec(SWEEPS / "frugendorff_v2.yaml")
    rows = [r.config for r in frug2_rows(legacy_runs)]
    seen = {"model.num_crawler_layers": {r["model"]["num_crawler_layers"] for r in rows},
            "model.crawler_loops": {r["model"]["crawler_loops"] for r in rows},
            "train.cadence": {r["train"]["cadence"] for r in rows},
            "model.crawler_mlp_mult": {r["model"]["mlp_mult"] for r in rows}}
    assert {k: set(v) for k, v in spec.grid().items() if k != "train.seed"} == seen
    assert spec.grid()["train.seed"] == [SEED]
    base = spec.trial_config({})
    assert {r["legacy"]["lr"] for r in rows} == {base.train.matrix_lr} == {base.train.tied_embed_lr} == {0.002}
    assert {r["train"]["grad_clip_norm"] for r in rows} == {base.train.grad_clip_norm} == {5.0}
    assert {r["train"]["cadence_offset"] for r in rows} == {base.train.cadence_offset} == {0}


@pytest.mark.parametrize("tsv, cadence", [("clean_always_fractal.tsv", 1), ("clean_cadence2.tsv", 2),
                                          ("ortho_cadence2_long.tsv", 2)])
def test_fractal_trainer_traces_follow_our_cadence_step_for_step(legacy_runs: Path, tsv: str, cadence: int) -> None:
    path = legacy_runs / "cadence_tsv" / tsv
    steps = cadence_tsv.parse(path.read_text(), path.name, path.stem).trials[0].steps
    train = load_config(preset="frugendorff-v2", overrides=[f"train.cadence={cadence}"]).train
    ours = ["C" if is_crawl_step(s["step"], train.cadence, train.cadence_offset) else "N" for s in steps]
    assert ours == [s["kind"] for s in steps] and len(steps) >= 300


# -- micro-crawler -------------------------------------------------------------------------------------------------

def test_every_micro_crawler_config_is_a_named_point_with_the_seeds_width_and_size(legacy_runs: Path) -> None:
    path = legacy_runs / "micro_crawler" / "sweep_micro_crawler.log"
    trials = micro_log.parse(path.read_text(), path.name).trials
    spec = load_spec(SWEEPS / "micro_crawler.yaml")
    assert sorted(spec.points) == sorted(t.key for t in trials) and len(trials) == 8  # the 8 configs, nothing else
    for t in trials:
        cfg = spec.trial_config({"point": t.key, "train.seed": SEED})
        m, seed = cfg.model, t.config["model"]
        assert (m.num_flat_layers, m.num_crawler_layers, m.mlp_mult) == (
            seed["num_flat_layers"], seed["num_crawler_layers"], seed["mlp_mult"]), t.key
        if m.num_crawler_layers:
            assert (m.crawler_loops, m.crawler_mlp_mult) == (seed["crawler_loops"], seed["crawler_mlp_mult"]), t.key
        assert m.trigram_vocab_size == (0 if "NO trigram" in t.result["label"] else 8192), t.key
        assert resolve_model_dim(m) == t.result["model_dim"], t.key
        with torch.device("meta"):
            assert count_params(build_model(cfg)) == t.result["params"], t.key  # the printed count, trigram in
        kinds = [is_crawl_step(s, cfg.train.cadence, cfg.train.cadence_offset) for s in range(1, 501)]
        assert (sum(kinds), kinds.count(False)) == (t.result["c_steps"], t.result["n_steps"]), t.key


# -- production cadence ablations (seed_facts 9.4; the seed's logs are not public) ------------------------------------

def test_cadence_ablation_is_the_seeds_eight_arms_with_their_schedule() -> None:
    spec = load_spec(SWEEPS / "cadence_ablation.yaml")
    points = spec.distinct_grid().points
    arms = sorted((p["point"], p["train.cadence"]) for p in points)
    assert arms == sorted((lay, c) for lay in ("4f2cx2", "3f3cx2") for c in (1, 2, 3, 4))
    for p in points:
        cfg = spec.trial_config(p)
        m, t = cfg.model, cfg.train
        flat, crawl = {"4f2cx2": (4, 2), "3f3cx2": (3, 3)}[p["point"]]
        assert (m.num_flat_layers, m.num_crawler_layers, m.crawler_loops) == (flat, crawl, 2)
        assert (m.model_dim, m.num_heads, m.num_kv_heads, m.mlp_mult, m.crawler_mlp_mult) == (640, 10, 5, 4.0, 4.0)
        assert (m.crawler_mode, m.trigram_vocab_size, m.trigram_zero_init, m.value_embed_dim) == (
            "deliberate", 8192, False, 128)
        assert (t.max_wallclock_seconds, t.warmdown_iters, t.lr_hold_steps, t.late_qat_threshold) == (
            150, 625, 51, 0.15)
        assert (t.matrix_lr, t.scalar_lr, t.tied_embed_lr, t.grad_clip_norm, t.train_seq_len) == (
            0.025, 0.025, 0.035, 0.3, 2048)
        # The seed counted steps from 0 and fired a C-step iff (step - 1) % c == 0 (Python modulo).
        ours = [is_crawl_step(s, t.cadence, t.cadence_offset) for s in range(1, 41)]
        assert ours == [(s0 - 1) % p["train.cadence"] == 0 for s0 in range(40)]
        assert cfg.eval.stride == 64 and spec.objective.metric == "auto"  # int6 sliding-window BPB


# -- each spec, scaled down, as a real CPU sweep -------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_shards(kjv_dataset: Callable[..., Path]) -> Path:
    """Shards and a SentencePiece model (vocab 320) from the first KJV verses, built with clowncar.data."""
    return kjv_dataset(lines=1500, vocab_size=320, val_docs=150, shard_tokens=16384)


SCALE_DOWN = {
    "model.vocab_size": 320, "train.iterations": 6, "train.max_wallclock_seconds": 0, "train.train_seq_len": 32,
    "train.train_batch_tokens": 256, "train.grad_accum": 1, "train.warmup_steps": 0, "train.lr_warmup_steps": 2,
    "train.warmdown_iters": 3, "train.val_every": 3, "train.log_every": 1, "eval.seq_len": 32,
    "eval.batch_tokens": 1024, "eval.max_tokens": 2048,
}
SPEC_SCALE = {  # per spec: what keeps its layouts but makes them tiny
    "frugendorff_v2": {"model.num_heads": 2, "model.num_kv_heads": 1, "model.param_budget": 40000},
    "micro_crawler": {"model.num_heads": 2, "model.num_kv_heads": 1, "model.param_budget": 40000,
                      "model.trigram_vocab_size": 64, "model.trigram_dim": 8},
    "cadence_ablation": {"model.model_dim": 32, "model.num_heads": 2, "model.num_kv_heads": 1,
                         "model.trigram_vocab_size": 64, "model.trigram_dim": 8, "model.value_embed_dim": 8,
                         "train.lr_hold_steps": 2, "eval.stride": 16, "quant.gptq_calib_seqs": 4,
                         "quant.gptq_calib_seq_len": 32, "quant.passthrough_max_numel": 1024},
}


def scaled_down(name: str, data: Path, out: Path, max_trials: int | None = None) -> Path:
    spec = yaml.safe_load((SWEEPS / f"{name}.yaml").read_text())
    spec["overrides"] = {**spec.get("overrides", {}), **SCALE_DOWN, **SPEC_SCALE[name],
                         "data.dataset": str(data), "data.tokenizer": str(data / "tokenizer.model")}
    spec.update(name=f"{spec['name']}-cpu", resources={"gpus": 0, "cpus": 1}, max_concurrent=2,
                budget={"trial_seconds_estimate": 10, **({"max_trials": max_trials} if max_trials else {})})
    path = out / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@pytest.mark.slow  # embedded Ray and 4 real trials: 15-30 s each on 2 idle cores
@pytest.mark.parametrize("name", ["frugendorff_v2", "micro_crawler", "cadence_ablation"])
def test_seed_spec_scaled_down_runs_as_a_cpu_sweep(name: str, tiny_shards: Path, sweep_env: Any) -> None:
    # The first 4 trials of each plan (every layout's shape is checked against the seed's logs above, unrun).
    trials = 4
    path = scaled_down(name, tiny_shards, sweep_env.tmp, max_trials=trials)
    r = sweep_env.cli("sweep", "run", str(path), "--num-cpus", "2", "--quiet", timeout=400)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert re.match(r"sweep \S+-cpu \(grid\): \d+ grid points, \d+ distinct trials", r.stdout)  # the plan first
    spec_name = yaml.safe_load(path.read_text())["name"]
    frame = sweep_env.store().trials_frame(sweeps=spec_name)
    assert len(frame) == trials and set(frame["status"]) == {"ok"}, frame[["status", "reason"]]
    assert (frame["steps"] == 6).all() and frame["config_hash"].nunique() == trials
    if name == "micro_crawler":  # named layouts, each its own trial, the crawler at the end as the seed's
        assert frame["model.num_flat_layers"].nunique() > 1
        assert sorted(frame["model.crawler_position"].unique()) == ["end"]
    if name == "cadence_ablation":  # quantized and scored as the seed's tables were
        assert frame["q_sliding_val_bpb"].notna().all() and set(frame["model.crawler_mode"]) == {"deliberate"}
