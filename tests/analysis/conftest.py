"""Simulated sweeps with planted effects of known size, in the store's frame shapes.

Each simulator returns frames exactly as `Store.trials_frame` / `steps_frame` / `evals_frame` / `probes_frame`
shape them (dotted config columns, trial_uid, kind C/N, ...), so the tests exercise the same code path as a
real sweep. Effects are planted in BPB (or nats for step losses); noise is seed-level plus autocorrelated
within-run drift, the structure analysis_methods.md section 5 warns about."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from clowncar.analysis.document import Doc
from clowncar.analysis.result import TestResult


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
                   phi: float = 0.995, drift_sd: float = 0.01, noise_sd: float = 0.05, shared_sd: float = 0.0
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-step train losses: decaying curve + run drift (AR(1), phi) + batch noise + `cn_effect` on C-steps
    + `update_effect` on the step after a C-step (transient) and, for probes, a lasting `update_effect` per
    C-step update on the held-out loss."""
    t = np.arange(1, steps + 1, dtype=float)
    is_c = ((t - 1) % cadence == 0) if cadence else np.zeros_like(t, dtype=bool)
    prev_c = np.r_[False, is_c[:-1]]
    curve = 3.0 + 4.0 * np.exp(-t / (steps / 4))
    if shared_sd:  # what the batch of step t does to every run alike: they all read the same stream
        curve = curve + rng.normal(0, shared_sd, steps)
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


def simulate_siblings(rng: np.random.Generator, *, sibling_share: float = 0.8, sd: float = 0.01,
                      boost_sd: float = 0.01, cell_sd: float = 0.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The signal sweep's design (sweeps/signals.yaml) with no effect of width, loops or sharing: 2 seeds x 2
    widths x loops 1, 2, 3, each loop count above 1 at cadences 1, 2 and 4 (28 runs, 12 starts). Runs of one
    seed and one model start from the same weights and see the same batches: a `sibling_share` of each run's
    offset and early-boost variance is their start's, the rest the run's own (0.8: the BPB correlation of
    cadence siblings in the signal demo). `cell_sd`: an offset shared by every run of one seed and width (their
    embedding's initial weights). Eval curves every 12 of 48 steps."""
    steps = np.arange(12, 49, 12, dtype=float)
    own, sib = math.sqrt(1 - sibling_share), math.sqrt(sibling_share)
    trials, evals = [], []
    for seed in (1337, 42):
        for width in (32, 64):
            cell_offset = rng.normal(0, cell_sd) if cell_sd else 0.0
            for loops in (1, 2, 3):
                start_offset, start_boost = rng.normal(0, sd), rng.normal(0, boost_sd)
                for cadence in ((1,) if loops == 1 else (1, 2, 4)):
                    uid = f"s{seed}w{width}l{loops}c{cadence}"
                    offset = cell_offset + sib * start_offset + own * rng.normal(0, sd)
                    boost = sib * start_boost + own * rng.normal(0, boost_sd)
                    bpb = (2.5 + 2.0 * np.exp(-steps / 20) + offset + boost * np.exp(-steps / 12)
                           + rng.normal(0, sd / 5, steps.size))
                    trials.append(_trial_row(uid, seed, width, 1, 1, loops, cadence, float(bpb[-1]), 0.001,
                                             params=width * width * 30.0))
                    evals.append(pd.DataFrame({"sweep": "sim", "trial_uid": uid, "attempt": 0,
                                               "step": steps.astype(int), "mode": "standard", "weights": "raw",
                                               "val_bpb": bpb}))
    return pd.DataFrame(trials), pd.concat(evals, ignore_index=True)


def hand_shares(x: np.ndarray, y: np.ndarray, col: int) -> np.ndarray:
    """Each row's share of OLS coefficient `col`: row `col` of (X'X)^-1 X' times the row's residual."""
    weights = np.linalg.solve(x.T @ x, x.T)
    return weights[col] * (y - x @ (weights @ y))


def two_way_t(units: list[tuple[float, dict[int, float]]], block: int) -> dict[str, float]:
    """The two-way t test written out: per unit its estimate and {step: share}; the spread of the estimates over
    the units, plus, over ordered pairs u != v, the products of their share sums in each block of `block`
    consecutive positions on the union of the steps, divided by U(U - 1) (0 if negative); t on U - 1 df."""
    from scipy import stats

    est = np.array([e for e, _ in units])
    n = est.size
    pos = {s: i for i, s in enumerate(sorted({s for _, sh in units for s in sh}))}
    sums: list[dict[int, float]] = []
    for _, shares in units:
        per_block: dict[int, float] = {}
        for s, share in shares.items():
            per_block[pos[s] // block] = per_block.get(pos[s] // block, 0.0) + share
        sums.append(per_block)
    cross = sum(a * sums[v].get(k, 0.0) for u in range(n) for v in range(n) if u != v for k, a in sums[u].items())
    se_units = est.std(ddof=1) / math.sqrt(n)
    se = math.sqrt(se_units**2 + max(0.0, cross / (n * (n - 1))))
    half = stats.t.isf(0.025, n - 1) * se
    return {"estimate": est.mean(), "ci_low": est.mean() - half, "ci_high": est.mean() + half, "se": se,
            "p": 2 * stats.t.sf(abs(est.mean()) / se, n - 1), "se_units": se_units, "df": n - 1}


@pytest.fixture
def two_way() -> SimpleNamespace:
    return SimpleNamespace(shares=hand_shares, t=two_way_t)


@pytest.fixture
def sims() -> dict[str, Callable]:
    return {"grid": simulate_grid, "steps": simulate_steps, "curves": simulate_curves,
            "sharing": simulate_sharing, "seeds": simulate_seed_reruns, "siblings": simulate_siblings}


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


# -- snapshots of whole results: every text, table and number a report prints --------------------------------------

SNAPSHOTS = Path(__file__).parent / "assets"


def _rounded(obj: object) -> object:
    """Floats to 9 significant digits (what a fit reproduces across BLAS builds); everything else as is."""
    if isinstance(obj, float):
        return float(f"{obj:.9g}")
    if isinstance(obj, dict):
        return {str(k): _rounded(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_rounded(v) for v in obj]
    return obj


def _assert_same(got: object, want: object, where: str) -> None:
    if isinstance(want, float) and isinstance(got, float):
        assert got == pytest.approx(want, rel=1e-7, abs=1e-300), where
    elif isinstance(want, dict) and isinstance(got, dict):
        assert sorted(got) == sorted(want), f"{where}: keys {sorted(got)} != {sorted(want)}"
        for k in want:
            _assert_same(got[k], want[k], f"{where}.{k}")
    elif isinstance(want, list) and isinstance(got, list):
        assert len(got) == len(want), f"{where}: {len(got)} items != {len(want)}"
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            _assert_same(g, w, f"{where}[{i}]")
    else:
        assert got == want, where


@pytest.fixture
def snapshot() -> Callable[[str, dict], None]:
    """Compare named results (TestResult.to_dict() of each, or plain dicts) with tests/analysis/assets/<name>.json.

    The snapshot pins what the exact-number tests do not: the wording of every question, method, verdict and
    reason, and every table. It changes when a test's output changes on purpose; regenerate it then with
    `CLOWNCAR_REGEN_GOLDEN=1 PYTHONPATH=$PWD python -m pytest -q -p no:xdist tests/analysis -k snapshot` and
    commit the new file with the change that explains it."""
    import json
    import os

    def check(name: str, cases: dict) -> None:
        got = _rounded({case: [r if isinstance(r, dict) else r.to_dict() for r in results]
                        for case, results in cases.items()})
        path = SNAPSHOTS / f"{name}.json"
        if os.environ.get("CLOWNCAR_REGEN_GOLDEN"):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
        _assert_same(json.loads(json.dumps(got)), json.loads(path.read_text()), name)

    return check


# -- headless Chromium over the DevTools protocol on a pipe (no network port) -------------------------------------

CHROMIUM = "/usr/bin/chromium"
WINDOW_WIDTH = 1200  # px: a laptop browser window


class _Pipe:
    """DevTools messages over --remote-debugging-pipe: JSON objects terminated by NUL, fd 3 in, fd 4 out."""

    def __init__(self, proc, write_fd: int, read_fd: int) -> None:
        self.proc, self.wfd, self.rfd = proc, write_fd, read_fd
        self.buf, self.events, self.next_id = b"", [], 0

    def send(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float = 30.0) -> dict:
        import json
        import os

        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.wfd, json.dumps(msg).encode() + b"\0")
        return self.wait(lambda m: m.get("id") == self.next_id, timeout)

    def wait(self, pred, timeout: float) -> dict:
        import json
        import os
        import select
        import time

        end = time.monotonic() + timeout
        while True:
            while b"\0" in self.buf:
                raw, self.buf = self.buf.split(b"\0", 1)
                m = json.loads(raw)
                if "id" not in m:
                    self.events.append(m)
                if pred(m):
                    if "error" in m:
                        raise RuntimeError(f"DevTools error: {m['error']}")
                    return m
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer from chromium")
            ready, _, _ = select.select([self.rfd], [], [], left)
            if ready:
                chunk = os.read(self.rfd, 1 << 20)
                if not chunk:
                    raise RuntimeError("chromium closed the DevTools pipe")
                self.buf += chunk


def open_in_chromium(html_path: Path, profile: Path) -> dict:
    """Load a file:// page in headless Chromium in a WINDOW_WIDTH-px window; return every image's (complete,
    naturalWidth), the console errors and uncaught exceptions seen while loading, and the page's scroll width."""
    import os
    import subprocess

    to_chrome_r, to_chrome_w = os.pipe()
    from_chrome_r, from_chrome_w = os.pipe()

    def child_fds() -> None:
        # copy both ends away first: a pipe may itself sit on fd 3 or 4, and dup2 onto the same fd would
        # neither move it nor clear close-on-exec
        src_in, src_out = os.dup(to_chrome_r), os.dup(from_chrome_w)
        os.dup2(src_in, 3)
        os.dup2(src_out, 4)

    args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}", "--remote-debugging-pipe", "about:blank"]
    proc = subprocess.Popen(args, preexec_fn=child_fds, close_fds=False, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    os.close(to_chrome_r)
    os.close(from_chrome_w)
    pipe = _Pipe(proc, to_chrome_w, from_chrome_r)
    try:
        target = pipe.send("Target.createTarget", {"url": "about:blank"})["result"]["targetId"]
        session = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})["result"]["sessionId"]
        for method in ("Runtime.enable", "Log.enable", "Page.enable"):
            pipe.send(method, session=session)
        pipe.send("Emulation.setDeviceMetricsOverride", {"width": WINDOW_WIDTH, "height": 1600,
                                                         "deviceScaleFactor": 1, "mobile": False}, session=session)
        pipe.send("Page.navigate", {"url": html_path.resolve().as_uri()}, session=session)
        pipe.wait(lambda m: m.get("method") == "Page.loadEventFired", 60)
        expr = "JSON.stringify(Array.from(document.images).map(i => [i.complete, i.naturalWidth]))"
        value = pipe.send("Runtime.evaluate", {"expression": expr, "returnByValue": True},
                          session=session)["result"]["result"]["value"]
        width = pipe.send("Runtime.evaluate", {"expression": "document.documentElement.scrollWidth",
                                               "returnByValue": True}, session=session)["result"]["result"]["value"]
        errors = [m for m in pipe.events
                  if (m.get("method") == "Runtime.consoleAPICalled" and m["params"].get("type") == "error")
                  or m.get("method") == "Runtime.exceptionThrown"
                  or (m.get("method") == "Log.entryAdded" and m["params"]["entry"].get("level") == "error")]
        with contextlib.suppress(RuntimeError, TimeoutError):
            pipe.send("Browser.close", timeout=10)
        import json

        return {"images": json.loads(value), "errors": errors, "page_width": width}
    finally:
        os.close(to_chrome_w)
        os.close(from_chrome_r)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def chromium() -> Callable[[Path, Path], dict]:
    import os

    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing in CI")
        pytest.skip(f"{CHROMIUM} not installed")
    return open_in_chromium


# -- hand-written inputs of the report's functions (test_report_rendering.py, test_report_contents.py) ---------------


def report_result(**kw: object) -> TestResult:
    """A result of test 2 with its words set and nothing measured; `kw` sets the rest."""
    base = {"key": "2_quant_gap", "title": "Quant gap vs loops", "question": "Does the gap grow?",
            "method": "OLS with HC2", "unit": "BPB/loop"}
    return TestResult(**{**base, **kw})


def report_doc() -> Doc:
    """One document with a block of each kind, text that needs escaping, an empty list and table, a cut table."""
    d = Doc()
    d.h(1, "Title <1>")
    d.h(3, "Sub")
    d.p("plain & simple")
    d.p("bold", "verdict")
    d.items([])
    d.items(["one", "two <b>"])
    d.table([])
    d.table([{"a": 1.0, "b": "x|y"}, {"c": None, "a": float("nan")}])
    d.table([{"n": i} for i in range(5)], ["n"], limit=3)
    d.image(None, "loss")
    d.image(b"\x89PNG", "eval <curves>")
    return d


def report_runs() -> pd.DataFrame:
    """Three runs of sweep s, one of them without a commit, with the metric in the frame's attrs."""
    runs = pd.DataFrame({"run_id": ["s/0", "s/1", "s/2"], "sweep": "s", "label": "L", "seed": [1, 2, 3],
                         "config_hash": ["h2", "h1", "h2"], "config_key": "k", "git_commit": ["b", None, "a"],
                         "bpb": [2.0, 2.1, 2.2], "width": 64, "params": 10, "quant_gap": 0.01, "loops": 3})
    runs.attrs.update(metric="q_val_bpb", metric_mode="quantized weights, standard eval", gap_mode="standard")
    return runs


def report_analysis(runs: pd.DataFrame, top: list[dict]) -> dict:
    """What `report.analyse` returns for sweeps s and t: two results, the given top configs, nothing else."""
    return {"sweeps": ["s", "t"], "runs": runs, "metric": runs.attrs.get("metric"),
            "metric_mode": runs.attrs.get("metric_mode"), "correction_method": "fdr_bh",
            "results": [report_result(verdict="signal", status="signal"),
                        report_result(key="6_seed_variance", verdict="descriptive", status="descriptive")],
            "top_configs": top, "correction": [], "pareto_front": [], "optuna": {}, "provenance": {}}


def report_full_analysis() -> dict:
    """An analysis with every part of the report filled in: measured results, a correction, a top config with its
    seeds, both Optuna outcomes and provenance."""
    runs = report_runs().drop(columns=["loops"])
    top = [{"config": "L", "config_key": "k", "seeds": 2, "runs": 2, "mean_bpb": 2.05, "sd": 0.0707, "caveat": "",
            "width": 64.0, "params": 10.0, "quant_gap": 0.01, "eval_mode": "q", "config_hash": ["h1"],
            "per_seed": [{"seed": 1, "bpb": 2.0, "run_ids": ["s/0"], "values": [2.0]},
                         {"seed": 2, "bpb": 2.1, "run_ids": ["s/1"], "values": [2.1]}]},
           {"config": "M", "config_key": "m", "seeds": 2, "runs": 3, "mean_bpb": 2.15, "sd": 0.0707,
            "caveat": "seed 1 ran 2 times, averaged into one value", "seed_repeats": [{"seed": 1, "runs": 2}], "config_hash": ["h2"],
            "per_seed": [{"seed": 1, "bpb": 2.1, "run_ids": ["s/2", "t/0"], "values": [2.1, 2.1]},
                         {"seed": 2, "bpb": 2.2, "run_ids": ["t/1"], "values": [2.2]}]}]
    return {**report_analysis(runs, top),
            "results": [report_result(effect=0.02, p_value=0.04, p_adjusted=0.08, n_runs=3, verdict="signal",
                                      status="signal"),
                        report_result(key="6_seed_variance", title="Seed variance", in_family=False, n_runs=3,
                                      verdict="descriptive")],
            "correction": [{"test": "2_quant_gap", "p": 0.04, "p_adjusted": 0.08}],
            "frames": {"steps": None, "evals": None},
            "optuna": {"s": {"status": "skipped", "reason": "no storage URL"},
                       "t": {"status": "ok", "trials": 5, "note": "exploratory", "importances": {"lr": 0.75}}},
            "provenance": {"runs": [{"run_id": "s/0", "bpb": 2.0}], "git_commits": ["a", "b"],
                           "config_hashes": ["h1", "h2"], "analysis_git_commit": None,
                           "generated_at": "2026-12-04T00:00:00+00:00"}}


@pytest.fixture
def report_inputs() -> SimpleNamespace:
    """The report's hand-written inputs above: .result(**kw), .doc(), .runs(), .analysis(runs, top) and
    .full_analysis()."""
    return SimpleNamespace(result=report_result, doc=report_doc, runs=report_runs, analysis=report_analysis,
                           full_analysis=report_full_analysis)
