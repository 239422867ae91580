"""Test 1: does firing the crawler loops (a C-step) change the training loss, and is the step after a C-step
better or worse than the step after an N-step?

The run is the unit. Within each run the C-N difference is estimated against a smooth trend in the step
(B-spline) with HAC (Newey-West) standard errors: descriptive only, because a run's own drift makes step-level
inference overconfident. The inferential answer collapses each run to one number (its trend-adjusted C-N
coefficient, and its mean residual difference per training phase) and tests their mean across runs with a t
test, which stays calibrated however autocorrelated each run's steps are; its standard error also counts what the
runs share step by step, since they all read the same batch at step t (clowncar.analysis.shared_steps)."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pandas as pd

from clowncar.analysis.frames import phase_bins, step_kind_table
from clowncar.analysis.reference import (
    corrected,
    lacking_references,
    pick_references,
    reference_note,
    reference_rows,
)
from clowncar.analysis.result import TestResult, decide, not_enough
from clowncar.analysis.run_names import name_runs
from clowncar.analysis.shared_steps import (
    Shares,
    across_units,
    mean_difference_shares,
    sentence,
    shares,
    unit_members,
)
from clowncar.analysis.stats import mde_from_se

MIN_STEPS = 20  # per run, to fit a trend plus a C/N term
MIN_EACH = 3  # C-steps and N-steps per run
MIN_RUNS = 3  # a t test across runs needs df >= 2
MIN_BLOCKS = 8  # blocks of steps behind the shared part of the standard error (each unit's shares sum to 0)
LOSS_MARGIN = 0.01  # nats: smaller C-N differences are practically irrelevant at the seed's loss scale

Q_LOSS = ("Does a C-step (crawler loops fired) have a different training loss than an N-step at matched "
          "training phase?")
Q_NEXT = "Is the step after a C-step better or worse than the step after an N-step?"


_TREND_CACHE: dict[tuple[int, bytes], np.ndarray] = {}


def _trend(step: np.ndarray, df: int | None = None) -> np.ndarray:
    """A smooth trend basis (intercept + B-spline in the step) with few enough knots not to follow C/N
    alternation. Cached by the step vector: runs of one sweep share it."""
    import patsy

    df = int(min(5, max(3, step.size // 40))) if df is None else df
    key = (df, step.tobytes())
    if key not in _TREND_CACHE:
        if len(_TREND_CACHE) > 256:
            _TREND_CACHE.clear()
        _TREND_CACHE[key] = np.asarray(patsy.dmatrix(f"bs(x, df={df})", {"x": step}))
    return _TREND_CACHE[key]


def _hac_lags(n: int, period: int) -> int:
    """Newey-West's rule of thumb, at least two cadence periods so the C/N pattern sits inside the window."""
    return int(max(2 * max(period, 1), math.floor(4 * (n / 100) ** (2 / 9))))


def _period(is_c: np.ndarray) -> int:
    idx = np.flatnonzero(is_c > 0)
    return int(np.median(np.diff(idx))) if idx.size > 1 else 1


def _split_runs(s: pd.DataFrame) -> dict[str, dict[str, np.ndarray]]:
    """Per run, numpy arrays of step, train_loss, is_c and phase (the frame is sorted by run and step)."""
    uid = s["trial_uid"].astype(str).to_numpy()
    cols = {"step": s["step"].to_numpy(float), "y": s["train_loss"].to_numpy(float),
            "c": s["is_c"].to_numpy(float), "phase": phase_bins(s).to_numpy()}
    bounds = [*sorted(np.unique(uid, return_index=True)[1]), uid.size]
    out = {}
    for a, b in itertools.pairwise(bounds):
        out[str(uid[a])] = {k: v[a:b] for k, v in cols.items()}
    return out


def _fittable(g: dict[str, np.ndarray]) -> bool:
    c = g["c"]
    return bool(c.size >= MIN_STEPS and c.sum() >= MIN_EACH and (1 - c).sum() >= MIN_EACH)


def _fit_run(g: dict[str, np.ndarray]) -> dict[str, Any] | None:
    """Trend-adjusted C-N coefficient with a HAC CI, residuals of the trend-only fit, per-phase differences."""
    import statsmodels.api as sm

    y, c = g["y"], g["c"]
    if not _fittable(g):
        return None
    basis = _trend(g["step"])
    period = _period(c)
    lags = _hac_lags(y.size, period)
    design = np.column_stack([basis, c])
    fit = sm.OLS(y, design).fit(cov_type="HAC", cov_kwds={"maxlags": lags}, use_t=True)
    ci = fit.conf_int()[-1]
    resid = sm.OLS(y, basis).fit().resid
    by_phase, phase_shares, phase_starts = {}, {}, {}
    ph_arr = g["phase"]
    for ph in np.unique(ph_arr):
        rows = ph_arr == ph
        rc, rn = resid[rows & (c > 0)], resid[rows & (c == 0)]
        if rc.size >= MIN_EACH and rn.size >= MIN_EACH:
            by_phase[str(ph)] = float(rc.mean() - rn.mean())
            phase_shares[str(ph)] = mean_difference_shares(g["step"][rows], resid[rows], c[rows] > 0)
            # where training reaches the phase, as a fraction of the run's steps (phase_bins' own scale)
            phase_starts[str(ph)] = float(g["step"][rows].min() / g["step"].max())
    contrast = np.zeros(design.shape[1])
    contrast[-1] = 1.0
    out = {"coef": float(fit.params[-1]), "ci_low": float(ci[0]), "ci_high": float(ci[1]),
           "p_hac": float(fit.pvalues[-1]), "hac_lags": lags, "period": period, "n": int(y.size), "resid": resid,
           "by_phase": by_phase, "shares": (g["step"], shares(design, y, contrast)), "phase_shares": phase_shares,
           "phase_starts": phase_starts}
    if "y_raw" in g:  # a corrected run: what the same fit says of its loss before the reference is subtracted
        out["raw_coef"] = float(sm.OLS(g["y_raw"], design).fit().params[-1])
    return out


def cn_loss_test(steps: pd.DataFrame, trials: pd.DataFrame | None = None
                 ) -> tuple[TestResult, dict[str, dict[str, Any]]]:
    """Test 1a on a steps frame (or an already prepared `step_kind_table`). Returns the result and the
    per-run fits (reused by the next-step test). With the trials frame, runs are corrected by a reference run
    on the same token stream (clowncar.analysis.reference) when every run with both kinds has one."""
    key, title = "1a_cn_loss", "C-step vs N-step training loss"
    s = steps if "is_c" in steps.columns else step_kind_table(steps)
    groups, refs, note = _with_references(_split_runs(s) if not s.empty else {}, trials)
    loss = "(train_loss - the reference run's train_loss at the step)" if refs else "train_loss"
    method = (f"per run: OLS {loss} ~ is_C + B-spline(step), HAC SEs (descriptive); across runs: one-sample "
              f"t test of the per-run C-N coefficients{SHARED if refs else ''}; per phase: mean residual C-N per "
              f"run, t across {'the same units' if refs else 'runs'}")
    if s.empty:
        return not_enough(key, title, Q_LOSS, method, "no step rows with C/N kinds and training losses",
                          unit="nats"), {}
    fits: dict[str, dict[str, Any]] = {}
    for rid, g in sorted(groups.items()):
        f = _fit_run(g)
        if f is not None:
            f["arrays"], f["reference"] = g, refs.get(rid)
            fits[rid] = f
    within = [{"run": r, "coef": f["coef"], "ci_low": f["ci_low"], "ci_high": f["ci_high"], "p_hac": f["p_hac"],
               "hac_maxlags": f["hac_lags"], "steps": f["n"]} for r, f in fits.items()]
    n_steps = int(sum(f["n"] for f in fits.values()))
    ref_rows = reference_rows({r: (f["raw_coef"], f["coef"]) for r, f in fits.items() if r in refs}, refs, trials)
    note += reference_note(ref_rows)
    kw = {"unit": "nats", "n_runs": len(fits), "n_steps": n_steps, "runs": list(fits),
          "extra": {"scope": note, "reference_corrected": bool(refs)},
          "tables": {"within_run_hac": within, "reference_runs": ref_rows}}
    n_units = len(unit_members(list(fits), refs))
    if n_units < MIN_RUNS:
        res = not_enough(key, title, Q_LOSS, method,
                         f"{len(fits)} run(s) with both C- and N-steps{_groups(n_units, refs)} (at least "
                         f"{MIN_RUNS} needed for a t test across runs; within-run HAC estimates are descriptive "
                         "only)", **kw)
        return res, fits
    t = across_units({r: f["coef"] for r, f in fits.items()}, {r: f["shares"] for r, f in fits.items()}, refs,
                     _block(fits))
    res = _tested(TestResult(key=key, title=title, question=Q_LOSS, method=method + TWO_WAY, **kw), t)
    res.tables["by_phase_across_runs"] = _phase_table(fits)
    return decide(res), fits


TWO_WAY = ("; standard error: the spread across units plus the covariance that different units share step by step "
           "(summed over blocks of steps), t on units - 1 df")


def _block(fits: dict[str, dict[str, Any]]) -> int:
    """Steps per block of the shared covariance: a whole number of every run's cadence period (their least
    common multiple; the longest period alone where that is over 4 times as long, as cadences 3, 4, 5 and 7
    would make it 420), and at least the widest of the runs' HAC windows."""
    periods = [f["period"] for f in fits.values()]
    period = math.lcm(*periods) if math.lcm(*periods) <= 4 * max(periods) else max(periods)
    widest = max(f["hac_lags"] for f in fits.values())
    return period * -(-widest // period)


def _tested(res: TestResult, t: dict[str, Any]) -> TestResult:
    """`res` with the estimate, interval, p and MDE of `across_units`, and a sentence on the shared part."""
    res.effect, res.ci_low, res.ci_high, res.p_value = t["estimate"], t["ci_low"], t["ci_high"], t["p"]
    res.margin, res.mde = LOSS_MARGIN, mde_from_se(t["se"], t["n"] - 1)
    res.extra.update(units=t["n"], se_units=t["se_units"], se_shared_steps=t["se_shared"])
    per = "probe intervals" if res.extra.get("source") == "probe" else "steps"
    res.extra["scope"] = (res.extra.get("scope", "") + sentence(t, per)).strip()
    if t["blocks"] < MIN_BLOCKS:
        res.warnings.append(f"what the units share step by step rests on {t['blocks']} blocks of {t['block']} {per} "
                            f"(at least {MIN_BLOCKS} make it firm): its part of the standard error is rough, and "
                            "low rather than high; longer runs firm it up, more seeds do not")
    return res


SHARED = (", each averaged first over the runs that share a reference run (they share its own noise, so together "
          "they are one unit of the test)")


def _refs_of(fits: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {r: f["reference"] for r, f in fits.items() if f.get("reference") is not None}


def _groups(units: int, refs: dict[str, str]) -> str:
    return f", sharing {units} reference run(s)" if refs else ""


def _with_references(groups: dict[str, dict[str, np.ndarray]], trials: pd.DataFrame | None
                     ) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, str], str]:
    """The runs with enough steps of both kinds to fit, corrected by their reference runs when every one of them
    has one (a mix of corrected and raw runs would estimate two things at once; a run too short to fit has no
    say), and a sentence saying which was done."""
    mixed = {rid: g for rid, g in groups.items() if _fittable(g)}
    refs = pick_references(groups, trials)
    if mixed and set(mixed) <= set(refs):
        return ({rid: corrected(g, groups[refs[rid]]) for rid, g in mixed.items()}, refs,
                f"Reference correction: each of the {len(mixed)} runs with both step kinds minus a run on the same "
                "token stream (same shards, batch tokens and sequence length) that never alternates, step by "
                "step: a hard or easy batch that every run sees at the same C-step cancels.")
    why = lacking_references(sorted(set(mixed) - set(refs)), len(mixed), "reference run", trials)
    return mixed, {}, (f"No reference correction: {why}. A reference is a run on the same shards, batch tokens and "
                       "sequence length with one step kind throughout (cadence 0 or 1); without one, batches hard or "
                       "easy for every run at the same C-step stay in the estimate.") if mixed else ""


def _phase_table(fits: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per phase, in training order: by where the runs reach the phase (the mean over runs of its first
    step as a fraction of the run's steps), so thirds read early, middle, late and logged LR phases come in the
    order training passes through them; the name breaks a tie."""
    rows = []
    starts: dict[str, list[float]] = {}
    for f in fits.values():
        for ph, at in f["phase_starts"].items():
            starts.setdefault(ph, []).append(at)
    phases = sorted(starts, key=lambda ph: (float(np.mean(starts[ph])), ph))
    for ph in phases:
        per_run = {r: f["by_phase"][ph] for r, f in fits.items() if ph in f["by_phase"]}
        t = across_units(per_run, {r: fits[r]["phase_shares"][ph] for r in per_run}, _refs_of(fits), _block(fits))
        row: dict[str, Any] = {"phase": ph, "runs": len(per_run), "units": t["n"], "mean_c_minus_n": t["estimate"]}
        if t["n"] >= MIN_RUNS and t["spread"] > 0:
            row.update(ci_low=t["ci_low"], ci_high=t["ci_high"], p=t["p"])
        rows.append(row)
    return rows


def next_step_test(fits: dict[str, dict[str, Any]], probes: pd.DataFrame | None,
                   steps: pd.DataFrame | None, trials: pd.DataFrame | None = None) -> TestResult:
    """Test 1b: update effect. Probe-loss deltas when probes exist, else trend residuals of N-steps by the kind
    of the step before them (the forward mode is held fixed so only the previous update differs)."""
    key, title = "1b_next_step", "Step after a C-step vs after an N-step"
    via_probe = _probe_deltas(probes, steps, trials)
    if via_probe is not None:
        per_run, per_run_shares, method, n_steps, note, refs = via_probe
        source = "probe"
    else:
        per_run, per_run_shares, n_steps = _residual_after(fits)
        refs = {r: ref for r, ref in _refs_of(fits).items() if r in per_run}
        method = ("no probe losses: per run, trend residual of N-steps preceded by a C-step minus those preceded "
                  "by an N-step (same forward mode, so only the previous update differs; on test 1a's series, "
                  f"reference-corrected when it is); t across runs{SHARED if refs else ''}")
        source, note = "residuals", ""
    n_units = len(unit_members(list(per_run), refs))
    kw = {"unit": "nats", "n_runs": len(per_run), "n_steps": n_steps, "runs": list(per_run),
          "extra": {"source": source, **({"scope": note} if note else {})},
          "tables": {"per_run": [{"run": r, "after_c_minus_after_n": v} for r, v in per_run.items()]}}
    if source == "residuals" and not fits:  # nothing to read: the cadence is not the reason
        return not_enough(key, title, Q_NEXT, method, _why_no_fit(steps), **kw)
    if n_units < MIN_RUNS:
        why = (f"{len(per_run)} run(s) where the update effect is identifiable{_groups(n_units, refs)} (at least "
               f"{MIN_RUNS} needed)")
        if source == "residuals":
            why += ("; without probe losses it needs cadence >= 3 (at cadence 1-2 every step after a C-step has "
                    "the other forward mode, so the update effect is confounded with the forward-mode effect)")
        else:
            why += ("; the probe interval must not be a multiple of the cadence (else C-steps per interval never "
                    "vary) and every step's kind must be logged (train.log_every = 1)")
        return not_enough(key, title, Q_NEXT, method, why, **kw)
    # probe intervals have no cadence period: blocks as wide as the widest run's Newey-West window
    block = (max(_hac_lags(at.size, 1) for at, _ in per_run_shares.values()) if source == "probe" else
             _block(fits))
    t = across_units(per_run, per_run_shares, refs, block)
    return decide(_tested(TestResult(key=key, title=title, question=Q_NEXT, method=method + TWO_WAY, **kw), t))


def _why_no_fit(steps: pd.DataFrame | None) -> str:
    """Why test 1a fitted no run, for test 1b to say when it has nothing else to read."""
    s = step_kind_table(steps)  # a kind table again, or a raw frame (or None) made one
    if s.empty:
        return "no step rows with C/N kinds and training losses, and no probe losses"
    kinds = s.groupby("trial_uid")["is_c"].nunique()
    if not (kinds > 1).any():
        return (f"none of the {kinds.size} run(s) has both C- and N-steps (each keeps one step kind throughout: "
                "cadence 0 or 1, or a single loop), so no update can be set beside one of the other kind")
    return (f"no run with both C- and N-steps has enough of them to fit (at least {MIN_STEPS} logged steps, "
            f"{MIN_EACH} of each kind)")


def _residual_after(fits: dict[str, dict[str, Any]]) -> tuple[dict[str, float], dict[str, Shares], int]:
    """Per run: the trend residual of N-steps after a C-step minus after an N-step, each step's share of it, and
    how many steps were used in all."""
    out: dict[str, float] = {}
    per_step: dict[str, Shares] = {}
    used = 0
    for rid, f in fits.items():
        step, c = f["arrays"]["step"], f["arrays"]["c"]
        contiguous = np.r_[False, np.diff(step) == 1]
        prev_c = np.r_[np.nan, c[:-1]]
        sel = contiguous & (c == 0)
        after_c, after_n = f["resid"][sel & (prev_c == 1)], f["resid"][sel & (prev_c == 0)]
        if after_c.size >= MIN_EACH and after_n.size >= MIN_EACH:
            out[rid] = float(after_c.mean() - after_n.mean())
            rows = sel & np.isin(prev_c, (0, 1))
            per_step[rid] = mean_difference_shares(step[rows], f["resid"][rows], prev_c[rows] == 1)
            used += int(after_c.size + after_n.size)
    return out, per_step, used


def _probe_series(probes: pd.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Run id -> (probe steps, probe losses), sorted by step."""
    p_all = probes.dropna(subset=["step", "probe_loss"])
    p_uid = p_all["trial_uid"].astype(str).to_numpy()
    p_step = pd.to_numeric(p_all["step"]).to_numpy(float)
    p_loss = pd.to_numeric(p_all["probe_loss"]).to_numpy(float)
    out = {}
    for rid in np.unique(p_uid):
        sel = p_uid == rid
        order = np.argsort(p_step[sel])
        out[str(rid)] = (p_step[sel][order], p_loss[sel][order])
    return out


def _probe_deltas(probes: pd.DataFrame | None, steps: pd.DataFrame | None, trials: pd.DataFrame | None = None
                  ) -> tuple[dict[str, float], dict[str, Shares], str, int, str, dict[str, str]] | None:
    """Per run: regress the change in probe loss between consecutive probes on the number of C-steps in the
    interval (with the interval length and a trend); the coefficient is the extra change per C-step update.
    An update's effect on the probe depends on the batch it learnt from, which every run on the stream shares:
    when every run has a reference run with probes, the reference's probe loss is subtracted first."""
    import statsmodels.api as sm

    if probes is None or probes.empty or not {"trial_uid", "step", "probe_loss"} <= set(probes.columns):
        return None
    s = pd.DataFrame() if steps is None else steps if "is_c" in steps.columns else step_kind_table(steps)
    if s.empty:
        return None
    out: dict[str, float] = {}
    per_step: dict[str, Shares] = {}
    uncorrected: list[float] = []
    used = 0
    kinds = _split_runs(s)
    series = _probe_series(probes)
    refs = pick_references(kinds, trials)
    targets = [r for r in series if r in kinds and 0 < kinds[r]["c"].sum() < kinds[r]["c"].size]
    use_ref = bool(targets) and all(refs.get(r) in series for r in targets)
    for rid in targets:
        g = kinds[rid]
        pst, pl = series[rid]
        own = pl
        if use_ref:
            ref_step, ref_loss = series[refs[rid]]
            pst, mine, theirs = np.intersect1d(pst, ref_step, return_indices=True)
            own, pl = pl[mine], pl[mine] - ref_loss[theirs]
        if pst.size < 8:
            continue
        # counting C-steps per probe interval needs every step's kind: skip runs logged every k > 1 steps
        covered = g["step"][g["step"] <= pst.max()]
        if covered.size == 0 or covered[0] > pst.min() or np.any(np.diff(covered) != 1):
            continue
        # C-steps done by each probe (the check above puts the first logged step at or before the first probe)
        at = np.cumsum(g["c"])[np.searchsorted(g["step"], pst, side="right") - 1]
        delta, n_c, k = np.diff(pl), np.diff(at), np.diff(pst)
        # a B-spline trend, not a line: the loss curve is convex, and a linear detrend would leave a residual
        # that lines up with any alternation of n_c
        cols = [n_c, _trend(pst[1:], df=int(min(5, max(3, delta.size // 8))))]
        if k.std() > 0:
            cols.append(k)
        x = np.column_stack(cols)
        # rank: C-steps per interval that never vary (an interval that is a multiple of the cadence) are the
        # trend's intercept over again; size: two residual df at least
        if np.linalg.matrix_rank(x) < x.shape[1] or delta.size < x.shape[1] + 2:
            continue
        out[rid] = float(sm.OLS(delta, x).fit().params[0])
        per_step[rid] = (pst[1:], shares(x, delta, np.eye(x.shape[1])[0]))
        uncorrected.append(float(sm.OLS(np.diff(own), x).fit().params[0]))
        used += int(delta.size)
    if not out:
        return None
    loss = "(probe loss - the reference run's probe loss at the probe step)" if use_ref else "probe loss"
    method = (f"{loss} (fixed held-out batch, same forward mode): per run, OLS of the change between consecutive "
              "probes on the number of C-step updates in the interval (+ interval length, trend); the coefficient "
              f"is the extra change per C-step update; t across runs{SHARED if use_ref else ''}")
    lacking = [r for r in targets if refs.get(r) not in series]
    note = ("Reference correction: each run's probe loss minus its reference run's (the 1a reference, on the same "
            "token stream), probe by probe: an update's effect that comes from the batch, not the step kind, "
            f"cancels. Uncorrected, the mean would be {np.mean(uncorrected):+.4g} nats." if use_ref else
            f"No reference correction: "
            f"{lacking_references(lacking, len(targets), 'reference run with probe losses', trials)}; "
            "what the batches' updates do to every run at the same C-steps stays in the estimate.")
    return out, per_step, method, used, note, {r: refs[r] for r in out} if use_ref else {}


def cn_tests(steps: pd.DataFrame, probes: pd.DataFrame | None = None,
             trials: pd.DataFrame | None = None) -> list[TestResult]:
    """Tests 1a and 1b on the steps (and probes) frames; the trials frame finds the reference runs (and names)."""
    s = step_kind_table(steps)
    loss, fits = cn_loss_test(s, trials)
    return name_runs([loss, next_step_test(fits, probes, s, trials)], trials)
