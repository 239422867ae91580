"""What `sweep run` prints when a sweep ends and what `sweep status` prints of one: the summary, the best trial
and Pareto front by the Optuna study, and why trials failed, grouped by reason."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import typer

from clowncar.errors import ClownCarError
from clowncar.words import counted


def print_summary(summary: dict[str, Any]) -> None:
    best = summary.get("best")
    states = ", ".join(f"{k.lower()} {v}{STATE_NOTES.get(k, '')}" for k, v in sorted(summary["optuna_states"].items()))
    typer.echo(f"sweep {summary['sweep']}: optuna trials {states}")
    if line := resume_line(summary.get("reconciled") or {}):
        typer.echo(line)
    if summary.get("fit_seconds") and summary.get("asked_this_run"):
        n = summary["asked_this_run"]
        typer.echo(f"ran {counted(n, 'trial')} in {summary['fit_seconds']:.1f}s "
                   f"({summary['fit_seconds'] / n:.3f} s/trial)")
    if best:
        name = objective_name(summary.get("metric") or "auto")
        typer.echo(f"best trial {best['number']}: {name} {best['objective']:.6f} ({params_text(best['params'])})")
    else:
        typer.echo("best trial: none feasible" + ("" if summary.get("ended") else " yet"))
    print_pareto(summary.get("pareto") or [], "")
    if summary.get("ended"):
        typer.echo(f"ended: {summary['ended']}")


STATE_NOTES = {"DUPLICATE": " (repeated suggestions, told at once and never run)",
               "UNASKED": " (asks cut short by the driver's end, never run)",
               "REPLACED": " (earlier attempts of trials that ran again: cut off by a driver's end or a stop, or "
                           "retried by --retry-failed)"}
"""What a count of the summary's first line means where Optuna's state name does not say it."""


RESUME_WORDS = {
    "told_from_store": "{} found finished in the store",
    "recorded_from_disk": "{} found finished in their trial folders and recorded",
    "closed_and_requeued": "{} left running in the store by the driver's end: closed as crashed and queued to run "
                           "again",
    "closed_for_rerun": "{} cut off by the driver's end, queued to run again",
    "dropped_unasked": "{} never asked in full, dropped",
    "store_attempts_closed": "{} left running in the store, closed as crashed",
    "old_rejections_kept": "{} refused before their first step (stored as error or crashed by an older clowncar) not retried",
}
"""What `resume.reconcile` did after a driver ended, in a user's words (its keys name the code's steps)."""


def resume_line(reconciled: dict[str, int]) -> str | None:
    """The non-zero parts of what resume reconciled, one line; None when it had nothing to do. A trial both cut
    off in the study and closed in the store (`closed_and_requeued`) is said once, before those cut off only."""
    both = reconciled.get("closed_and_requeued", 0)
    counts: dict[str, int] = {}
    for key, n in reconciled.items():
        if key == "closed_and_requeued":
            continue
        if key == "closed_for_rerun":
            counts["closed_and_requeued"] = both
        counts[key] = n - both if key in ("closed_for_rerun", "store_attempts_closed") else n
    parts = [RESUME_WORDS[key].format(counted(n, "trial")) if key in RESUME_WORDS else f"{key.replace('_', ' ')} {n}"
             for key, n in counts.items() if n]
    return "resume: " + "; ".join(parts) if parts else None


def print_pareto(front: list[dict[str, Any]], indent: str) -> None:
    if front:
        typer.echo(f"{indent}pareto front (objective, artifact bytes), feasible trials only:")
    for row in front:
        params = ", ".join(f"{k}={v}" for k, v in row["params"].items())
        typer.echo(f"{indent}  trial {row['number']}: {row['values'][0]:.6f}, {row['values'][1]:.0f} B ({params})")


def shown(value: Any) -> str:
    """A parameter value on a console line: a float to 5 significant digits (0.04838716781236088 -> 0.048387);
    the store and the study keep every digit."""
    return f"{value:.5g}" if isinstance(value, float) else str(value)


def params_text(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={shown(v)}" for k, v in params.items())


def objective_name(metric: str) -> str:
    """What the sweep's objective is, for a line that gives its value."""
    return "quantized BPB" if metric == "auto" else metric  # auto: q_sliding_val_bpb, else q_val_bpb


REASONS_SHOWN = 5
REASON_CHARS = 200


def failure_lines(name: str, failures: Iterable[tuple[str, str | None]]) -> list[str]:
    """Why trials failed, grouped by status and reason (up to its numbers), the most common first: a sweep whose
    trials all fail the same way says so at a glance instead of behind `store ls`."""
    groups = _grouped(failures)
    lines = [f"  {status} x{len(texts)}: {_example(texts)}" for (status, _), texts in groups[:REASONS_SHOWN]]
    if len(groups) > REASONS_SHOWN:
        lines.append(f"  and {len(groups) - REASONS_SHOWN} other failure reasons: `clowncar store ls {name}` "
                     "lists every trial")
    return lines


def failures_line(url: str, name: str) -> str | None:
    """The end of `sweep run`: how many of the sweep's trials failed and the most common reason, in one line
    (None when none failed). A sweep whose every trial was rejected otherwise ends on "best trial: none feasible
    yet" and exit 0, with no word of why."""
    from clowncar.store import open_store
    from clowncar.store.frames import FAILED

    try:
        with open_store(url, create=False) as st:
            failed = st.trials_frame(name, status=FAILED)
    except ClownCarError:  # the sweep ran and is recorded; a store gone since only costs this line
        return None
    if failed.empty:
        return None
    (status, _), texts = _grouped(failed[["status", "reason"]].itertuples(index=False, name=None))[0]
    return (f"failed: {counted(len(failed), 'trial')}; most common ({len(texts)}x): {status}: {_example(texts)} "
            f"(`clowncar sweep status {name}` lists the reasons)")


NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def _grouped(failures: Iterable[tuple[str, str | None]]) -> list[tuple[tuple[str, str], list[str]]]:
    """Failures by status and reason up to its numbers (two divergences at different losses and steps are one
    way to fail), the most common first (ties: the first met), each with its reasons as met."""
    groups: dict[tuple[str, str], list[str]] = {}
    for status, reason in failures:
        text = _short(reason)
        groups.setdefault((status, NUMBER.sub("#", text)), []).append(text)
    return sorted(groups.items(), key=lambda item: -len(item[1]))


def _example(texts: list[str]) -> str:
    """The group's first reason, and a word when the others say it with other numbers."""
    return texts[0] + (" (one of them: the numbers vary)" if len(set(texts)) > 1 else "")


def _short(reason: str | None) -> str:
    text = " ".join(str(reason).split()) if reason is not None and reason == reason else ""
    if not text:
        return "no reason recorded"
    return text if len(text) <= REASON_CHARS else text[:REASON_CHARS - 3] + "..."


def print_study(name: str, url: str, status: str, stored_best: dict[str, Any] | None = None) -> None:
    """The best trial as Optuna sees it, constraints respected, the Pareto front of a multi-objective sweep, and
    why a finished sweep ended. Without a study (an imported sweep), the store's best: the lowest BPB."""
    import optuna

    from clowncar.orchestrator.search import END_REASON, gpu_seconds_used
    from clowncar.orchestrator.stored_sweep import stored_spec
    from clowncar.orchestrator.study_results import best_trial, pareto_front
    from clowncar.orchestrator.tune import open_study

    try:
        study = optuna.load_study(study_name=name, storage=open_study(url))
        spec = stored_spec(name, url)
    except (KeyError, ClownCarError):
        if stored_best is None:
            typer.echo("  best: none (no Optuna study, and no trial in the store records a BPB)")
        else:
            typer.echo(f"  best (no Optuna study; the lowest {stored_best['metric']} in the store): trial "
                       f"{stored_best['number']} ({stored_best['trial_uid']}): {stored_best['score']:.6f}")
        return
    best = best_trial(spec, study)
    text = "none yet"
    if best:
        params = ", ".join(f"{k}={v}" for k, v in best["params"].items())
        text = f"trial {best['number']}: objective {best['objective']:.6f} ({params})"
    typer.echo(f"  best (feasible, by the sweep's objective): {text}")
    print_pareto(pareto_front(spec, study), "  ")
    if spec.resources.gpus:
        cap = spec.budget.max_gpu_hours
        typer.echo(f"  GPU-hours used: {gpu_seconds_used(study, spec.resources.gpus) / 3600:.4f}"
                   + (f" of {cap:g}" if cap else ""))
    if status == "done" and study.user_attrs.get(END_REASON):
        typer.echo(f"  ended: {study.user_attrs[END_REASON]}")
