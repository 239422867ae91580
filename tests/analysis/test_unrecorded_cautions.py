"""Cautions about what the configs do not record: the code the runs ran (git commit, uncommitted changes) and the
step at which the wall clock started the LR warm-down of one config's seed reruns. From result.json as the
worker writes it, through a real store, to the report (walk 2, findings 3 and 3b)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from clowncar.analysis import report
from clowncar.analysis.commands import load_and_analyse
from clowncar.analysis.unrecorded import code_versions, warmdown_starts
from clowncar.store import open_store

ONE, TWO, THREE = "ae9f46f0" + "1" * 32, "219f32ff" + "2" * 32, "06b359c4" + "3" * 32


def _result(bpb: float, commit: str, dirty: bool, warmdown: int | None, by: str | None) -> dict[str, Any]:
    """A finished trial's result.json: the keys the worker writes that the report reads here."""
    return {"status": "ok", "reason": None, "val_bpb": bpb + 0.01, "q_val_bpb": bpb, "steps": 40,
            "warmdown_start_step": warmdown, "warmdown_set_by": by,
            "provenance": {"git_commit": commit, "git_dirty": dirty, "config_hash": "x"}}


def _config(seed: int, loops: int = 2) -> dict[str, Any]:
    return {"model": {"model_dim": 64, "num_flat_layers": 1, "num_crawler_layers": 1, "crawler_loops": loops},
            "train": {"seed": seed, "iterations": 40, "max_wallclock_seconds": 25.0, "warmdown_iters": 20}}


def test_a_report_over_runs_of_three_commits_and_two_warmdown_starts_opens_with_both_cautions(
        tmp_path: Path) -> None:
    """The walk: two sweeps minutes apart, three commits, every tree dirty; seed 1337 of one config twice, its
    warm-down started by the clock at step 21 on a loaded machine and by the iteration count at 21 + 5 on a quiet
    one (equal step counts: the wall-clock stop caution says nothing)."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    runs = {"walk-gpu": [(1337, 2, _result(2.3337, ONE, True, 21, "wallclock")),
                         (42, 2, _result(2.3301, TWO, True, 21, "wallclock")),
                         (42, 3, _result(2.3100, TWO, True, 21, "iterations"))],
            "walk-stop": [(1337, 2, _result(2.3173, THREE, True, 26, "iterations")),
                          (7, 3, _result(2.3050, TWO, True, 21, "iterations"))]}
    with open_store(url) as st:
        for sweep, trials in runs.items():
            st.create_or_get_sweep(sweep, {"name": sweep})
            for number, (seed, loops, result) in enumerate(trials):
                st.start_trial(sweep, f"{sweep}/{number}", number, 0, _config(seed, loops), seed=seed, node="n")
                st.finish_trial(f"{sweep}/{number}", 0, "ok", None, result)
    a = load_and_analyse(list(runs), url)
    code = ("the runs span 3 git commits (219f32ff (3 runs), 06b359c4 (1 run), ae9f46f0 (1 run)) and 5 of the 5 "
            "runs ran from a checkout with uncommitted changes (git_dirty), so the commit they record does not name "
            "all of their code: every test across runs compares their BPB as if only the config differed; the seed "
            "reruns of 1 config ran on different commits (1f+1cx2 d64), and the seed spread (6_seed_variance, the "
            "top configs' sd and interval) counts the code's change as seed noise")
    warmdown = ("the LR warm-down of seed reruns of one config began at different steps (1 of 2 configs run more "
                "than once: 1f+1cx2 d64: steps 21 to 26 over 3 runs); the wall clock timed it in 2 of those 3 runs "
                "(train.max_wallclock_seconds: it starts warmdown_iters x the mean step time before the cap), so "
                "their BPB depends on how busy the machine was even at equal step counts, and the seed spread "
                "(6_seed_variance, the top configs' sd and interval) counts that as seed noise; time the warm-down "
                "by iterations (train.max_wallclock_seconds: 0) or read the runs' warmdown_step")
    assert a["cautions"] == [code, warmdown]
    by_run = {r["run_id"]: r for r in a["provenance"]["runs"]}
    assert (by_run["walk-stop/0"]["git_commit"], by_run["walk-stop/0"]["git_dirty"]) == (THREE, True)
    assert [by_run[f"walk-gpu/{n}"]["warmdown_step"] for n in range(3)] == [21, 21, 21]
    assert a["provenance"]["runs_dirty"] == 5
    text = report.document(a).markdown()
    opening = text.split("## Signal tests")[0]
    assert f"- caution: {code}\n" in opening and f"- caution: {warmdown}\n" in opening
    assert "(5 run(s) from a checkout with uncommitted changes); 4 config hashes" in text
    table_head = next(line for line in text.splitlines() if line.startswith("| run_id"))
    assert "| git_commit | git_dirty | warmdown_step |" in table_head
    assert f"| {THREE} | yes | 26 | 2.3173 |" in text  # the walk-stop run: its own commit, dirty, its warm-down


def test_one_clean_commit_needs_no_code_caution_and_a_dirty_tree_alone_has_one() -> None:
    clean = pd.DataFrame({"run_id": ["a", "b"], "git_commit": [ONE, ONE], "git_dirty": [False, None],
                          "config_key": ["k", "k"], "label": ["L", "L"]})
    assert code_versions(clean) == []
    assert code_versions(clean.assign(git_commit=[ONE, None])) == []  # an unrecorded commit is no second one
    assert code_versions(clean.drop(columns="git_dirty")) == [] and code_versions(clean.iloc[:0]) == []
    dirty = clean.assign(git_dirty=[True, "false"])
    assert code_versions(dirty) == [
        "1 of the 2 runs ran from a checkout with uncommitted changes (git_dirty), so the commit they record does "
        "not name all of their code: every test across runs compares their BPB as if only the config differed"]
    apart = clean.assign(git_commit=[ONE, TWO], config_key=["k", "j"])  # two configs, one commit each
    assert code_versions(apart) == [
        "the runs span 2 git commits (219f32ff (1 run), ae9f46f0 (1 run)): every test across runs compares their BPB "
        "as if only the config differed"]


def test_many_commits_and_configs_are_counted_and_the_first_few_named() -> None:
    commits = [f"{c:08x}" + "0" * 32 for c in range(6)]
    # config i ran on commits i and i + 1: every config's two seeds ran different code
    runs = pd.DataFrame({"run_id": [f"r{i}" for i in range(12)], "git_commit": commits + commits[1:] + commits[:1],
                         "git_dirty": False, "config_key": [f"k{i}" for i in range(6)] * 2,
                         "label": [f"L{i}" for i in range(6)] * 2})
    line = code_versions(runs)[0]
    assert line.startswith("the runs span 6 git commits (00000000 (2 runs), 00000001 (2 runs), 00000002 (2 runs), "
                           "00000003 (2 runs) and 2 more):")
    assert line.endswith("; the seed reruns of 6 configs ran on different commits (L0, L1, L2, L3 and 2 more), "
                         "and the seed spread (6_seed_variance, the top configs' sd and interval) counts the code's "
                         "change as seed noise")


def test_seed_reruns_with_one_warmdown_start_or_none_recorded_need_no_caution() -> None:
    runs = pd.DataFrame({"run_id": ["a", "b", "c", "d"], "config_key": ["k", "k", "j", "i"],
                         "label": ["K", "K", "J", "I"], "warmdown_step": [21.0, 21.0, 30.0, None],
                         "warmdown_by": ["wallclock", "wallclock", "wallclock", None]})
    assert warmdown_starts(runs) == []  # k agrees; j and i differ from it but are other configs
    assert warmdown_starts(runs.assign(config_key=["k", "k", "k", "k"]))[0].startswith(
        "the LR warm-down of seed reruns of one config began at different steps (1 of 1 configs run more than "
        "once: K: steps 21 to 30 over 3 runs); the wall clock timed it in 3 of those 3 runs")  # d: not recorded
    one_each = runs.assign(config_key=["k", "j", "i", "h"])  # no config run twice: nothing pooled as seeds
    assert warmdown_starts(one_each) == []
    older = runs.drop(columns=["warmdown_step", "warmdown_by"])  # runs from before the worker recorded it
    assert warmdown_starts(older) == [] and warmdown_starts(runs.iloc[:0]) == []


def test_a_dirty_flag_counts_as_true_however_the_store_wrote_it() -> None:
    """True, 1, 1.0 (a nullable column read back as floats), "true" and " True " are dirty; False, 0, None, NaN,
    "false" are not; a run table without the column has no dirty run, one False per run."""
    from clowncar.analysis.unrecorded import dirty_flags

    written = [True, 1, 1.0, "true", " True ", "1", "1.0", False, 0, 0.0, None, float("nan"), "false"]
    flags = dirty_flags(pd.DataFrame({"git_dirty": written}))
    assert flags.tolist() == [True] * 7 + [False] * 6
    older = dirty_flags(pd.DataFrame({"run_id": ["a", "b"]}, index=[5, 7]))
    assert older.tolist() == [False, False] and older.index.tolist() == [5, 7] and older.dtype == bool


def test_four_commits_are_all_named_and_runs_without_a_commit_column_need_no_caution() -> None:
    commits = [f"{c:08x}" + "0" * 32 for c in range(4)]
    runs = pd.DataFrame({"run_id": ["a", "b", "c", "d"], "git_commit": commits, "git_dirty": False,
                         "config_key": ["k0", "k1", "k2", "k3"], "label": ["L0", "L1", "L2", "L3"]})
    assert code_versions(runs) == [
        "the runs span 4 git commits (00000000 (1 run), 00000001 (1 run), 00000002 (1 run), 00000003 (1 run)): every "
        "test across runs compares their BPB as if only the config differed"]
    assert code_versions(runs.drop(columns="git_commit")) == []  # runs that record no commit at all


def test_one_config_on_two_commits_is_named_by_its_first_runs_label_else_by_its_key() -> None:
    runs = pd.DataFrame({"run_id": ["a", "b", "c"], "git_commit": [ONE, TWO, TWO], "git_dirty": False,
                         "config_key": ["k", "k", "j"], "label": ["r1", "r2", "J"]})
    seed_part = ("; the seed reruns of 1 config ran on different commits ({}), and the seed spread "
                 "(6_seed_variance, the top configs' sd and interval) counts the code's change as seed noise")
    commits_part = "the runs span 2 git commits (219f32ff (2 runs), ae9f46f0 (1 run)): every test across runs"
    (line,) = code_versions(runs)  # labels that differ within a config (runs that record no model size)
    assert line.startswith(commits_part) and line.endswith(seed_part.format("r1"))
    (line,) = code_versions(runs.drop(columns="label"))
    assert line.endswith(seed_part.format("k"))
    (line,) = code_versions(runs.drop(columns="config_key"))  # no config to call seed reruns
    assert line.startswith(commits_part) and line.endswith("as if only the config differed")


def test_warmdown_starts_count_only_configs_run_more_than_once_and_name_three() -> None:
    keys = ["k", "k", "j", "j", "i", "i", "h", "h", "g"]
    runs = pd.DataFrame({"config_key": keys, "label": [k.upper() for k in keys],
                         "warmdown_step": [21, 30, 21, 22, 21, 23, 21, 24, 40],
                         "warmdown_by": ["wallclock", "iterations"] * 4 + ["wallclock"]})
    assert warmdown_starts(runs)[0].startswith(
        "the LR warm-down of seed reruns of one config began at different steps (4 of 4 configs run more than "
        "once: H: steps 21 to 24 over 2 runs, I: steps 21 to 23 over 2 runs, J: steps 21 to 22 over 2 runs and 1 "
        "more); the wall clock timed it in 4 of those 8 runs")  # g ran once: no seed rerun to differ from


def test_a_warmdown_caution_names_a_config_by_its_first_runs_label_else_by_its_key() -> None:
    runs = pd.DataFrame({"config_key": ["k", "k"], "warmdown_step": [21.0, 26.0]})  # no label, no warmdown_by
    assert warmdown_starts(runs)[0].startswith(
        "the LR warm-down of seed reruns of one config began at different steps (1 of 1 configs run more than "
        "once: k: steps 21 to 26 over 2 runs); the wall clock timed it in 0 of those 2 runs")
    labelled = runs.assign(label=["r1", "r2"])  # labels that differ within a config (no model size recorded)
    assert "more than once: r1: steps 21 to 26 over 2 runs)" in warmdown_starts(labelled)[0]
