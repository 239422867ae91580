"""Does the search pay? TPE + ASHA against the full grid, replayed on a logged grid.

1. `grid`: run the full grid once on CPU (36 configs of the tiny-cpu family x 2 seeds, every trial's step
   losses, probe losses and evals logged to the store). Resumable: the sweep lives in KEEP/store.db and a second
   call resumes it (`clowncar sweep resume`) or does nothing once it is done.
2. `replay`: replay searches on the logged grid without training again (benchmarks/search_replay.py): TPE +
   ASHA, random + ASHA, TPE alone, random alone, each REPS times with different sampler seeds and arrival orders,
   using the orchestrator's own sampler, start-up rule, duplicate handling and ASHA rule. Cost = trial-seconds
   (each trial's own recorded training, eval and quantization seconds; a pruned trial's training seconds up to
   its rung) plus a top-3 rerun at the other seed.
3. `live`: real TPE + ASHA sweeps on the same space (and their top-3 reruns), to check the replay against them.

Reproduce (about an hour on 2 busy cores for the grid, seconds for the replay):
  PYTHONPATH=$PWD python benchmarks/bench_search.py all --keep bench-search
  PYTHONPATH=$PWD python benchmarks/bench_search.py replay --keep bench-search --reps 20
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from search_replay import METRICS, Asha, Grid, Method, load_grid, replay, search_spec, summarize  # noqa: E402

GRID_NAME = "search-grid"
SEEDS = [1337, 42]
ITERATIONS = 48
SPACE = {
    "train.matrix_lr": {"grid": [0.01, 0.02, 0.04, 0.08]},
    "model.crawler_loops": {"grid": [1, 2, 3]},
    "model.model_dim": {"grid": [32, 48, 64]},
}
GRID_SPEC: dict[str, Any] = {
    "name": GRID_NAME,
    "description": "bench_search: the full grid, every trial logged (36 configs x 2 seeds)",
    "preset": "tiny-cpu",
    "overrides": {
        # Step-bounded, with the LR annealing linearly from the first step to zero at the last one: ASHA may
        # compare trials at any step (orchestrator/rungs.py), and a rung's loss is measured on the same kind of
        # schedule as the final one (no un-annealed plateau). Probes every 4 steps on a fixed held-out batch and
        # a few evals give the rung candidates whose rank correlation with the final BPB the replay prints.
        "train.iterations": ITERATIONS, "train.warmdown_iters": ITERATIONS, "train.max_wallclock_seconds": 0,
        "train.probe_every": 4, "train.probe_seqs": 16, "train.val_every": 16, "eval.stride": 0,
    },
    "space": SPACE,
    "seeds": SEEDS,
    "sampler": "grid",
    "objective": {"metric": "q_val_bpb", "mode": "min"},
    "resources": {"gpus": 0, "cpus": 1},
    "max_concurrent": 2,
    "max_failures": 1,
}


def env_for(keep: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "CLOWNCAR_RUNS_DIR": str(keep / "runs"),
            "CLOWNCAR_STORE": store_url(keep)}


def store_url(keep: Path) -> str:
    return f"sqlite:///{(keep / 'store.db').resolve()}"


def sweep_status(keep: Path, name: str) -> str | None:
    from clowncar.store import open_store

    if not (keep / "store.db").exists():
        return None
    with open_store(store_url(keep), create=False) as st:
        sweep = st.get_sweep(name)
    return None if sweep is None else str(sweep["status"])


def run_or_resume(keep: Path, spec: dict[str, Any], quiet: bool = True) -> None:
    """Run sweep `spec` into KEEP's store, resume it if an earlier call was cut short, skip it once done."""
    status = sweep_status(keep, spec["name"])
    if status == "done":
        print(f"{spec['name']}: done earlier, reused")
        return
    keep.mkdir(parents=True, exist_ok=True)
    path = keep / f"{spec['name']}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    cmd = ["sweep", "run", str(path)] if status is None else ["sweep", "resume", spec["name"]]
    cmd = [sys.executable, "-m", "clowncar", *cmd, "--num-cpus", "2", *(["--quiet"] if quiet else [])]
    print("$ " + " ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, env=env_for(keep), check=True)


def grid(args: argparse.Namespace) -> None:
    run_or_resume(args.keep, GRID_SPEC, quiet=args.quiet)


DESIGN = Asha(metric="probe_loss", grace=12, rf=2.0)
"""The ASHA design the methods use (chosen from the rank correlations printed by `replay`; see the README)."""


def methods(design: Asha) -> list[Method]:
    return [Method("TPE + ASHA", "tpe", design), Method("random + ASHA", "random", design),
            Method("TPE", "tpe"), Method("random", "random")]


def ablations(design: Asha) -> list[Method]:
    """What each orchestrator rule buys: TPE + ASHA with Optuna's defaults put back one at a time."""
    return [Method("TPE + ASHA, Optuna defaults (10 start-up, repeats run)", "tpe", design, startup=10,
                   distinct=False),
            Method("TPE + ASHA, repeats run", "tpe", design, distinct=False),
            Method("TPE + ASHA, 10 start-up trials", "tpe", design, startup=10)]


def print_grid(grid: Grid) -> None:
    sd, df = grid.pooled_sd()
    best, value = grid.best
    near = grid.near_best(sd)
    print(f"grid: {len(grid.configs)} configs x {len(grid.seeds)} seeds = {len(grid.runs)} trials, "
          f"{grid.total_cost():.0f} trial-seconds (training + eval + quantization; {grid.total_wall():.0f} s of "
          "trial wall-clock with start-up, probes and intermediate evals)")
    print(f"grid's best (2-seed mean): {value:.4f} at {dict(zip(grid.params, best, strict=True))}")
    print(f"pooled seed sd: {sd:.4f} BPB (df {df}); configs within one sd of the best: {len(near)} of "
          f"{len(grid.configs)} (chance of a random pick: {len(near) / len(grid.configs):.0%})")


def print_rank_correlation(grid: Grid) -> None:
    print("rank correlation (Spearman, all grid trials) of the value at a step with the final score:")
    for metric in METRICS:
        steps = grid.steps_logged(metric)
        if metric == "train_loss":
            steps = [s for s in steps if s % 4 == 0]
        cells = [f"{s}: {rho:+.2f}" for s in steps if s < ITERATIONS and (rho := grid.rank_correlation(metric, s))
                 is not None]
        print(f"  {metric:10s} " + ", ".join(cells))


def replay_table(grid: Grid, rows: list[Method], budgets: list[int], reps: int) -> list[dict[str, Any]]:
    out = []
    for budget in budgets:
        for m in rows:
            outcomes = [replay(grid, GRID_SPEC, m, budget, rep) for rep in range(reps)]
            out.append({"method": m.name, "budget": budget, **summarize(grid, outcomes)})
    return out


def print_table(rows: list[dict[str, Any]]) -> None:
    print("| method | trials budget | within 1 sd of best | median cost (share of grid's trial-seconds) | max cost | "
          "median wall-clock share | trials run | pruned | repeats |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['method']} | {r['budget']} | {r['success']:.0%} ({r['runs']} runs) | {r['median_cost']:.1%} | "
              f"{r['max_cost']:.1%} | {r['median_wall']:.1%} | {r['trials']:.1f} | {r['pruned']:.1f} | "
              f"{r['repeats']:.1f} |")


def replay_cmd(args: argparse.Namespace) -> None:
    grid = load_grid(store_url(args.keep), GRID_NAME, list(SPACE), GRID_SPEC["objective"]["metric"])
    if not grid.complete():
        raise SystemExit(f"the grid is not complete ({len(grid.runs)} trials): run `grid` first")
    design = Asha(args.metric, args.grace, args.rf) if args.metric else DESIGN
    print_grid(grid)
    print_rank_correlation(grid)
    print(f"replays: {args.reps} per row (sampler seeds 0..{args.reps - 1}, seeded arrival orders), "
          f"{design.label()}, 2 trials at a time, top-3 rerun at the other seed")
    print_table(replay_table(grid, methods(design), args.budgets, args.reps))
    if args.ablations:
        print_table(replay_table(grid, ablations(design), args.budgets, args.reps))


BUDGET = 12
"""Trials per search in the headline row (and in the live runs)."""


def live_spec(k: int, design: Asha, budget: int) -> dict[str, Any]:
    """The k-th live TPE + ASHA run: the grid's trials at the first seed, sampler seed k."""
    spec = search_spec(GRID_SPEC, Method("TPE + ASHA", "tpe", design), budget, k, SEEDS[0]).to_dict()
    spec.update(name=f"search-live-{k}", description=f"bench_search: live TPE + ASHA run {k}")
    return spec


def run_rerun(keep: Path, parent: str, quiet: bool) -> str:
    """`clowncar sweep rerun PARENT --top 3 --seeds <the other seed>` (resumed or skipped like the sweeps)."""
    child = f"{parent}-rerun-top3"
    status = sweep_status(keep, child)
    if status == "done":
        return child
    args = (["sweep", "resume", child] if status is not None else
            ["sweep", "rerun", parent, "--top", "3", "--seeds", str(SEEDS[1]), "--name", child])
    cmd = [sys.executable, "-m", "clowncar", *args, "--num-cpus", "2", *(["--quiet"] if quiet else [])]
    print("$ " + " ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, env=env_for(keep), check=True)
    return child


def live_outcome(keep: Path, grid: Grid, name: str, child: str) -> dict[str, Any]:
    """A live run read back from the store: its trials' own seconds, its pick, and whether every trial's
    score equals the grid's for the same config and seed (the replay's premise)."""
    from clowncar.store import open_store

    with open_store(store_url(keep), create=False) as st:
        trials = st.trials_frame(sweeps=[name, child])
        steps = st.steps_frame(sweeps=[name])
    objective = GRID_SPEC["objective"]["metric"]
    trained = steps.groupby("trial_uid")["elapsed_ms"].max() / 1000.0
    last = steps.groupby("trial_uid")["step"].max()
    cost, priced, finals, mismatches, stops = 0.0, 0.0, {}, 0, []
    for _, t in trials.iterrows():
        config = tuple(t[p] for p in grid.params)
        seed = int(t["train.seed"])
        if t["status"] == "ok":
            cost += float(t["train_seconds"]) + float(t["eval_seconds"]) + float(t["quant_seconds"])
            priced += grid.runs[config, seed].cost
            finals[config, seed] = float(t[objective])
            mismatches += abs(finals[config, seed] - grid.runs[config, seed].final) > 1e-9
        else:  # pruned: its training up to where ASHA stopped it (the stop lands a few steps after the rung)
            cost += float(trained.get(t["trial_uid"], 0.0))
            stop = int(last.get(t["trial_uid"], 0))
            priced += grid.runs[config, seed].train_at.get(stop, 0.0)
            stops.append(stop)
    reran = [c for (c, s) in finals if s == SEEDS[1]]
    pick = min(reran, key=lambda c: finals[c, SEEDS[0]] + finals[c, SEEDS[1]])
    gap = grid.mean(pick) - grid.best[1]
    search = trials[trials["sweep"] == name]
    return {"trials": len(search), "pruned": int((search["status"] == "pruned").sum()), "cost": cost,
            "share": cost / grid.total_cost(), "priced": priced / grid.total_cost(), "stops": sorted(stops),
            "pick": pick, "gap": gap, "success": gap <= grid.pooled_sd()[0], "mismatches": mismatches,
            "scored": len(finals)}


def live_cmd(args: argparse.Namespace, grid: Grid) -> None:
    print(f"live TPE + ASHA runs ({DESIGN.label()}, {BUDGET} trials at seed {SEEDS[0]}, top-3 rerun at seed "
          f"{SEEDS[1]}), against the replay of the same sampler seed and search seed:")
    for k in range(args.live_runs):
        spec = live_spec(k, DESIGN, BUDGET)
        run_or_resume(args.keep, spec, quiet=args.quiet)
        child = run_rerun(args.keep, spec["name"], quiet=args.quiet)
        live = live_outcome(args.keep, grid, spec["name"], child)
        rep = replay(grid, GRID_SPEC, Method("TPE + ASHA", "tpe", DESIGN), BUDGET, k, seed=SEEDS[0])
        print(f"  run {k}: live {live['trials']} trials ({live['pruned']} pruned, last steps {live['stops']}), "
              f"cost {live['share']:.1%} of the grid ({live['priced']:.1%} at the grid's recorded seconds), pick "
              f"{dict(zip(grid.params, live['pick'], strict=True))} {live['gap']:+.4f} from the best "
              f"({'within' if live['success'] else 'outside'} 1 sd); {live['scored']} scores, "
              f"{live['mismatches']} differ from the grid's | replay: {rep.trials} trials ({rep.pruned} pruned), "
              f"cost {rep.cost / grid.total_cost():.1%}, pick {rep.gap:+.4f} "
              f"({'within' if rep.success else 'outside'} 1 sd)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["grid", "replay", "live", "all"])
    ap.add_argument("--keep", type=Path, default=Path("bench-search"), help="folder of the store and trial dirs")
    ap.add_argument("--reps", type=int, default=20, help="replays per method and budget")
    ap.add_argument("--live-runs", type=int, default=2)
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--budgets", type=int, nargs="+", default=[8, 12, 16, 20], help="trials per search")
    ap.add_argument("--metric", choices=METRICS, help="ASHA metric (default: the chosen design)")
    ap.add_argument("--grace", type=int, default=DESIGN.grace)
    ap.add_argument("--rf", type=float, default=DESIGN.rf)
    ap.add_argument("--ablations", action="store_true", help="also TPE + ASHA without each orchestrator rule")
    args = ap.parse_args()
    args.keep = args.keep.resolve()
    if args.what in ("grid", "all"):
        grid(args)
    if args.what in ("replay", "all"):
        replay_cmd(args)
    if args.what in ("live", "all"):
        live_cmd(args, load_grid(store_url(args.keep), GRID_NAME, list(SPACE), GRID_SPEC["objective"]["metric"]))


if __name__ == "__main__":
    main()
