"""Which reference run corrects a run in tests 1a/1b, and what the report says of it (clowncar/analysis/reference.py):
the model a run is (every model setting, the width it was built at), the keys a run does not record, and the
sentence naming runs corrected by another model."""

from __future__ import annotations

import numpy as np
import pandas as pd

from clowncar.analysis.reference import model_keys, pick_references, reference_note, reference_rows

STEPS = 30
MIXED = np.where(np.arange(STEPS) % 3 == 0, "C", "N")


def groups(*runs: tuple[str, bool]) -> dict[str, dict[str, np.ndarray]]:
    """Run id -> its step arrays as test 1a has them: an alternating run, or one of a single kind (a reference)."""
    step = np.arange(1, STEPS + 1)
    return {rid: {"step": step, "y": np.full(STEPS, 3.0), "c": (MIXED == "C") if mixed else np.zeros(STEPS, bool)}
            for rid, mixed in runs}


def trial(uid: str, seed: float = 1.0, loops: int = 2, width: float = 64, **extra: object) -> dict[str, object]:
    return {"trial_uid": uid, "data.dataset": "demo", "data.train_glob": "fineweb_train_*.bin",
            "train.train_batch_tokens": 8192, "train.train_seq_len": 128, "train.seed": seed,
            "model.crawler_loops": loops, "model.model_dim": width, "model.mlp_mult": 2.0, **extra}


def test_the_width_a_run_was_built_at_tells_two_runs_of_one_auto_config_apart() -> None:
    # "a" has the target's config and another measured width; "b" another MLP and the target's width: the width
    # the runs were built at makes neither the same model, and the closer width then picks "b"
    auto = {"model.model_dim": "auto"}
    trials = pd.DataFrame([trial("t", **auto, model_dim=64), trial("a", **auto, model_dim=72),
                           trial("b", **{**auto, "model.mlp_mult": 3.0}, model_dim=64)])
    assert pick_references(groups(("t", True), ("a", False), ("b", False)), trials) == {"t": "b"}


def test_without_a_measured_width_the_configured_one_counts() -> None:
    # "a" (id first) is 72 wide by its config; "b" 64 like the target: measured widths of 0 or none fall back
    trials = pd.DataFrame([trial("t", model_dim=0, **{"model.mlp_mult": 4.0}), trial("a", width=72, model_dim=None),
                           trial("b", model_dim=float("nan"), **{"model.mlp_mult": 3.0})])
    assert pick_references(groups(("t", True), ("a", False), ("b", False)), trials) == {"t": "b"}
    no_column = trials.drop(columns=["model_dim"])
    assert pick_references(groups(("t", True), ("a", False), ("b", False)), no_column) == {"t": "b"}


def test_a_seed_no_run_records_is_no_agreement() -> None:
    # "a" records no seed, as the target does not: that is not the same seed; "b" agrees on the loops
    nan = float("nan")
    trials = pd.DataFrame([trial("t", seed=nan), trial("a", seed=nan, loops=3), trial("b", seed=7.0)])
    assert pick_references(groups(("t", True), ("a", False), ("b", False)), trials) == {"t": "b"}


def test_a_frame_that_names_the_sweep_sweep_name_still_prefers_the_runs_own_sweep() -> None:
    trials = pd.DataFrame([trial("s/1", sweep_name="s"), trial("s-rerun/0", sweep_name="s-rerun"),
                           trial("s/3", sweep_name="s")])
    assert pick_references(groups(("s/1", True), ("s-rerun/0", False), ("s/3", False)), trials) == {"s/1": "s/3"}


def test_a_run_that_records_no_model_setting_has_no_model_to_compare() -> None:
    nan = float("nan")
    bare = {"model.crawler_loops": nan, "model.model_dim": nan, "model.mlp_mult": nan}
    trials = pd.DataFrame([trial("t", **bare), trial("r", **bare), trial("m")])
    assert model_keys(trials)["t"] is None and model_keys(trials)["m"] is not None
    rows = reference_rows({"t": (0.3, 0.1), "m": (0.2, 0.1)}, {"t": "r", "m": "t"}, trials)
    assert [row["same_model"] for row in rows] == [None, None]  # one side unknown: not a yes, not a no
    assert model_keys(trials.drop(columns=["trial_uid"])) == {} and model_keys(None) == {}


def test_the_note_keeps_the_uncorrected_mean_and_names_at_most_five_runs_of_another_model() -> None:
    def rows(n: int) -> list[dict[str, object]]:
        return [{"run": f"r{i}", "same_model": False, "uncorrected_c_minus_n": 0.04, "reference_c_minus_n": 0.03}
                for i in range(n)] + [{"run": "own", "same_model": True, "uncorrected_c_minus_n": 0.04,
                                       "reference_c_minus_n": 0.03}]

    start = " Uncorrected, the mean C-N would be +0.04 nats, of which the reference runs alone"
    assert reference_note(rows(5)) == (
        f"{start} (one kind throughout, on the same steps) show +0.03. 5 of the 6 runs have no reference of their "
        "own model at their seed and are corrected by the closest other one (r0, r1, r2, r3, r4; the same_model "
        "column of the reference table).")
    assert reference_note(rows(6)).endswith("(r0, r1, r2, r3, r4 and more; the same_model column of the reference "
                                            "table).")
    assert reference_note(rows(0)).startswith(start) and "own model" not in reference_note(rows(0))
    assert reference_note([]) == ""
