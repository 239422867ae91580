"""The search benchmark's replay (benchmarks/search_replay.py) decides like the live sweep: its ASHA bracket
makes Tune's decisions on any sequence of results, and its rungs are the ones FinishingASHA can stop at."""

from __future__ import annotations

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from search_replay import Asha, Bracket


def test_replayed_asha_decides_like_tunes_bracket() -> None:
    from ray.tune.experiment import Trial
    from ray.tune.schedulers import ASHAScheduler, TrialScheduler

    rng = random.Random(0)
    for case in range(30):
        grace, rf, top = rng.choice([(4, 2, 48), (12, 2, 48), (6, 3, 54), (8, 2, 40)])
        tune = ASHAScheduler(time_attr="t", metric="m", mode="min", max_t=top, grace_period=grace,
                             reduction_factor=rf, stop_last_trials=False)
        ours = Bracket(Asha("m", grace, rf).rungs(top + 1), rf)  # every Tune rung (all below top + 1)
        trials = [Trial("t", stub=True) for _ in range(12)]
        for t in trials:
            tune.on_trial_add(None, t)
        reports = [(i, step) for i in range(12) for step in sorted(rng.sample(range(1, top + 1), 6))]
        rng.shuffle(reports)
        reports.sort(key=lambda r: (r[1] + rng.random() * 10))  # roughly in time, trials interleaved
        stopped: set[int] = set()
        for i, step in reports:
            if i in stopped:
                continue
            value = rng.random()
            theirs = tune.on_trial_result(None, trials[i], {"t": step, "m": value}) == TrialScheduler.STOP
            assert ours.stop(i, step, value) == theirs, (case, i, step)
            if theirs:
                stopped.add(i)


def test_replay_rungs_stop_below_the_last_step() -> None:
    assert Asha("probe_loss", 12, 2).rungs(48) == [12, 24]  # 48 is the last step: FinishingASHA never stops there
    assert Asha("probe_loss", 8, 3).rungs(48) == [8, 24]
