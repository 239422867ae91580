"""What the report's top-configs and Pareto tables say about the configs they show (walk 5, F11, F14), and its
data-and-environment table (F16): in-process, from trials frames shaped as the store's."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from clowncar.analysis import report

TOKENIZER_SHA = "98dec6d4d71a72ac896bab31fc337b0519f4c577367368278d2d36cc0db76bc3"


def _trial(uid: str, bpb: float, *, seed: int = 1337, iterations: int = 30, cap: int = 16_000_000,
           artifact: float = 467_220.0, over_cap: bool = False, **extra: object) -> dict[str, object]:
    """One finished trial of walk 5's faults sweep: a 2f+1cx2 d64 crawler, as the store's trials frame has it."""
    return {"sweep": "faults", "trial_uid": uid, "status": "ok", "seed": seed, "config_hash": f"h-{uid}",
            "q_sliding_val_bpb": bpb, "artifact_bytes": artifact, "over_cap": over_cap, "model_dim": 64,
            "params": 164_237, "steps": iterations, "tokens_scored": 16_384,
            "provenance.device": "cpu:x86_64", "provenance.torch": "2.13.0+cpu",
            "provenance.data.tokenizer.sha256": TOKENIZER_SHA, "provenance.data.val.tokens": 78_150,
            "model.arch": "crawler", "model.model_dim": 64, "model.num_flat_layers": 2,
            "model.num_crawler_layers": 1, "model.crawler_loops": 2, "model.mlp_mult": 2, "train.cadence": 1,
            "train.seed": seed, "train.iterations": iterations, "quant.size_cap_bytes": cap,
            "data.dataset": "demo_sp1024", "data.tokenizer": "demo_1024_bpe.model", "eval.max_tokens": 16_384,
            **extra}


def _faults() -> pd.DataFrame:
    """Walk 5's faults sweep: a 400-step point, a 30-step point whose artifact is over its 20,000-byte cap, and the
    plain 30-step point (the same BPB as the capped one), plus a 3-layer config that already has its own label."""
    return pd.DataFrame([_trial("faults/0", 1.6962, iterations=400, artifact=458_481.0),
                         _trial("faults/1", 2.5012, cap=20_000, over_cap=True),
                         _trial("faults/3", 2.5012, artifact=467_223.0),
                         _trial("faults/4", 2.6, artifact=300_000.0, **{"model.num_flat_layers": 3})])


def test_configs_of_one_layout_label_are_told_apart_by_the_settings_in_which_they_differ() -> None:
    a = report.analyse(["faults"], _faults())
    labels = {row["config_hash"][0]: row["config"] for row in a["top_configs"]}
    assert labels == {"h-faults/0": "2f+1cx2 cad1 mlp2 d64 iters 400 cap 16000000",
                      "h-faults/1": "2f+1cx2 cad1 mlp2 d64 iters 30 cap 20000",
                      "h-faults/3": "2f+1cx2 cad1 mlp2 d64 iters 30 cap 16000000",
                      "h-faults/4": "3f+1cx2 cad1 mlp2 d64"}  # a label no other config shares stays as it was
    best = report.printed_summary(a).splitlines()[-1]
    assert best.startswith("  best configs (mean BPB over seeds): 2f+1cx2 cad1 mlp2 d64 iters 400 cap 16000000 ")


def test_the_seed_variance_table_tells_apart_configs_of_one_layout_label() -> None:
    trials = pd.DataFrame([_trial(f"s/{i}{seed}", 2.5 + i / 10 + seed / 1e5, seed=seed, iterations=30 + 10 * i)
                           for i in range(2) for seed in (1, 2)])
    a = report.analyse(["s"], trials)
    table = next(r.tables["per_config"] for r in a["results"] if r.key == "6_seed_variance")
    assert sorted(row["config"] for row in table) == ["2f+1cx2 cad1 mlp2 d64 iters 30", "2f+1cx2 cad1 mlp2 d64 iters 40"]


def test_a_run_over_its_size_cap_is_marked_in_the_ranking_the_console_and_the_pareto_front() -> None:
    trials = _faults()
    # the same sweep's point without the small cap, smaller and better: the capped run joins the front
    trials.loc[1, ["artifact_bytes", "q_sliding_val_bpb"]] = [200_000.0, 2.4]
    a = report.analyse(["faults"], trials)
    capped = next(row for row in a["top_configs"] if row["config_hash"] == ["h-faults/1"])
    assert capped["over_cap_runs"] == 1
    assert capped["caveat"].endswith("over its size cap (200000 bytes > the cap of 20000): cannot be submitted")
    assert all("cap" not in (row["caveat"] or "") for row in a["top_configs"] if row is not capped)
    assert "2.4000 (n=1, a single run; OVER its size cap, not submittable)" in report.printed_summary(a)
    front = {row["run_id"]: row["over_cap"] for row in a["pareto_front"]}
    assert front == {"faults/1": True, "faults/0": False}
    md = report.document(a).markdown()
    assert "| faults/1 | 2f+1cx2 cad1 mlp2 d64 iters 30 cap 20000 | 2.4000 | 200000 |" in md
    assert "over its size cap (200000 bytes > the cap of 20000): cannot be submitted" in md.split("## Pareto")[1]


def test_an_imported_run_over_the_challenge_cap_is_marked_when_it_records_no_cap_of_its_own() -> None:
    trials = _faults().drop(columns=["over_cap", "quant.size_cap_bytes"])
    trials.loc[3, "artifact_bytes"] = 16_638_468.0  # DGAttention's total (walk 5, F1)
    a = report.analyse(["faults"], trials)
    marked = {row["config_hash"][0]: row.get("over_cap_runs", 0) for row in a["top_configs"]}
    assert marked == {"h-faults/0": 0, "h-faults/1": 0, "h-faults/4": 1}  # 1 and 3 are one config without a cap


def test_a_run_over_its_sweeps_stricter_constraint_is_marked_with_that_cap() -> None:
    # the worker knew only its own 16,000,000; the sweep held it to its spec's 300,000 (trainable.stored_result)
    trials = _faults()
    trials.loc[3, ["artifact_bytes", "over_cap", "size_cap_applied"]] = [450_000.0, True, 300_000]
    a = report.analyse(["faults"], trials)
    held = next(row for row in a["top_configs"] if row["config_hash"] == ["h-faults/4"])
    assert held["caveat"].endswith("over its size cap (450000 bytes > the cap of 300000): cannot be submitted")


def test_a_pareto_point_of_a_config_run_at_several_seeds_stands_beside_its_mean_over_seeds() -> None:
    # walk 5, F14: the rerun's seed-42 draw of the winner is on the front; the config's mean is 2.4656
    seeds = {1337: 2.4734, 42: 2.4588, 2025: 2.4647}
    trials = pd.DataFrame([_trial(f"rr/{i}", bpb, seed=seed, artifact=494_481.0)
                           for i, (seed, bpb) in enumerate(seeds.items())]
                          + [_trial("p/8", 2.4978, artifact=492_190.0, **{"model.crawler_loops": 1})])
    a = report.analyse(["rr"], trials)
    point = next(row for row in a["pareto_front"] if row["run_id"] == "rr/1")
    assert point["bpb"] == 2.4588 and point["config_seeds"] == 3
    assert point["config_mean_bpb"] == pytest.approx(sum(seeds.values()) / 3)
    single = next(row for row in a["pareto_front"] if row["run_id"] == "p/8")
    assert (single["config_seeds"], single["config_mean_bpb"]) == (1, 2.4978)
    pareto = report.document(a).markdown().split("## Pareto")[1]
    assert "1 point(s) come from a config run at several seeds" in pareto and "winner's curse" in pareto


def test_the_report_names_the_data_the_tokenizer_the_tokens_scored_and_the_environment(tmp_path: Path) -> None:
    trials = _faults()
    trials.loc[0, ["tokens_scored", "eval.max_tokens"]] = [78_080, 0]  # the 400-step run scored the whole split
    trials.loc[3, "provenance.device"] = "cuda:NVIDIA H100 80GB HBM3"
    a = report.analyse(["faults"], trials)
    rows = {row["item"]: row for row in a["environment"]}
    assert rows["dataset"]["value"] == "demo_sp1024" and rows["dataset"]["runs"] == "4 of 4"
    assert rows["tokenizer"]["value"] == f"demo_1024_bpe.model (sha256 {TOKENIZER_SHA})"
    scored = rows["validation tokens scored per run"]
    assert scored["values"] == {"16384": 3, "78080": 1}
    assert scored["value"].startswith("16384 (3 runs); 78080 (1 run) (differs between runs")
    assert scored["value"].endswith("eval.max_tokens 16384 cut the validation split: 3 of 4 runs scored only its "
                                    "first 16384 tokens of a 78150-token split")
    assert rows["device"]["value"] == "cpu:x86_64 (3 runs); cuda:NVIDIA H100 80GB HBM3 (1 run)"
    assert rows["torch"]["value"] == "2.13.0+cpu"
    paths = report.write(tmp_path, a)
    md = paths["report.md"].read_text()
    assert "## Data and environment" in md and f"| tokenizer | demo_1024_bpe.model (sha256 {TOKENIZER_SHA}) |" in md
    assert "<h2>Data and environment</h2>" in paths["report.html"].read_text()
    saved = json.loads(paths["report.json"].read_text())["environment"]
    assert [row["item"] for row in saved] == ["dataset", "tokenizer", "validation tokens scored per run",
                                              "validation split (tokens)", "device", "torch"]


def test_what_the_runs_do_not_record_is_said_to_be_unrecorded() -> None:
    bare = _faults()[["sweep", "trial_uid", "status", "seed", "config_hash", "q_sliding_val_bpb", "model.arch",
                      "model.crawler_loops", "train.seed"]]
    rows = {row["item"]: (row["value"], row["runs"]) for row in report.analyse(["faults"], bare)["environment"]}
    assert rows["dataset"] == ("not recorded", "0 of 4") and rows["torch"] == ("not recorded", "0 of 4")
