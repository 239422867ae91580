"""Cautions about what differs between pooled runs although their configs say nothing of it: the code they ran
(several git commits, or a checkout with uncommitted changes) and, among the seed reruns of one config, the step
at which the wall clock started the LR warm-down. Read from the run table (`clowncar.analysis.frames`:
git_commit, git_dirty, warmdown_step, warmdown_by, config_key, label)."""

from __future__ import annotations

import pandas as pd

from clowncar.words import counted

SHOWN = 4
"""How many commits or configs a caution names before it says how many more there are."""
SEED_SPREAD = "the seed spread (6_seed_variance, the top configs' sd and interval)"
"""What reads the runs of one config as seed noise."""


def _listed(items: list[str], shown: int = SHOWN) -> str:
    return ", ".join(items[:shown]) + (f" and {len(items) - shown} more" if len(items) > shown else "")


def dirty_flags(runs: pd.DataFrame) -> pd.Series:
    """Per run, whether its worker ran from a checkout with uncommitted changes (False where not recorded)."""
    if "git_dirty" not in runs:
        return pd.Series(False, index=runs.index)
    return runs["git_dirty"].astype(str).str.strip().str.lower().isin({"true", "1", "1.0"})


def code_versions(runs: pd.DataFrame) -> list[str]:
    """One caution when the runs span several git commits or any ran from a checkout with uncommitted changes:
    the tests compare their BPB as if only the config differed. Names the configs whose seed reruns ran on
    different commits."""
    if "git_commit" not in runs or runs.empty:
        return []
    commits = runs["git_commit"].map(lambda c: None if pd.isna(c) else str(c))
    counts = commits.dropna().value_counts()
    dirty = int(dirty_flags(runs).sum())
    if len(counts) < 2 and not dirty:
        return []
    parts = []
    if len(counts) > 1:
        each = [f"{commit[:8]} ({counted(n, 'run')})"
                for commit, n in sorted(counts.items(), key=lambda cn: (-cn[1], cn[0]))]
        parts.append(f"the runs span {len(counts)} git commits ({_listed(each)})")
    if dirty:
        parts.append(f"{dirty} of the {len(runs)} runs ran from a checkout with uncommitted changes (git_dirty), so the "
                     "commit they record does not name all of their code")
    line = " and ".join(parts) + ": every test across runs compares their BPB as if only the config differed"
    if "config_key" in runs and len(counts) > 1:
        spans = runs.assign(_commit=commits).dropna(subset=["_commit"]).groupby("config_key")
        mixed = [str(g["label"].iloc[0]) if "label" in g else str(key)
                 for key, g in spans if g["_commit"].nunique() > 1]
        if mixed:
            line += (f"; the seed reruns of {counted(len(mixed), 'config')} ran on different "
                     f"commits ({_listed(mixed)}), and {SEED_SPREAD} counts the code's change as seed noise")
    return [line]


def warmdown_starts(runs: pd.DataFrame) -> list[str]:
    """One caution when the seed reruns of a config began their LR warm-down at different steps: with a wall-clock
    cap the warm-down starts `warmdown_iters x mean step time` before it, so a busier machine starts it earlier
    and ends at another BPB, even when the runs trained the same number of steps."""
    if not {"warmdown_step", "config_key"} <= set(runs.columns):
        return []
    recorded = runs.dropna(subset=["warmdown_step"])
    seeded = [g for _, g in recorded.groupby("config_key") if len(g) > 1]
    differ = [g for g in seeded if g["warmdown_step"].nunique() > 1]
    if not differ:
        return []
    named = [f"{g['label'].iloc[0] if 'label' in g else g['config_key'].iloc[0]}: steps "
             f"{int(g['warmdown_step'].min())} to {int(g['warmdown_step'].max())} over {len(g)} runs" for g in differ]
    clock = int(pd.concat(differ)["warmdown_by"].eq("wallclock").sum()) if "warmdown_by" in runs else 0
    runs_in = sum(len(g) for g in differ)
    return [f"the LR warm-down of seed reruns of one config began at different steps ({len(differ)} of "
            f"{len(seeded)} configs run more than once: {_listed(named, 3)}); the wall clock timed it in {clock} of "
            f"those {runs_in} runs (train.max_wallclock_seconds: it starts warmdown_iters x the mean step time "
            f"before the cap), so their BPB depends on how busy the machine was even at equal step counts, and "
            f"{SEED_SPREAD} counts that as seed noise; time the warm-down by iterations "
            "(train.max_wallclock_seconds: 0) or read the runs' warmdown_step"]
