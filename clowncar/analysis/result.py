"""The typed result every signal test returns, and the verdict wording they share.

A test never raises on thin data: it returns a `TestResult` whose status is `not enough data` and whose
verdict says why (and, where a power calculation is possible, the minimum detectable effect)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

ALPHA = 0.05
POWER = 0.8

SIGNAL = "signal"
NO_SIGNAL = "no effect larger than the margin"
UNDECIDED = "not enough data to decide"
DESCRIPTIVE = "descriptive"


def finite_or_none(x: Any) -> float | None:
    """A finite float or None (JSON has no NaN)."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


@dataclass
class TestResult:
    """One signal test's answer. `effect` is in `unit`; `p_adjusted` is filled by the family's correction,
    whose name (`holm`, `fdr_bh`, `bonferroni`) goes in `p_adjust_method`."""

    __test__ = False  # not a pytest class

    key: str
    title: str
    question: str
    method: str
    unit: str = "BPB"
    status: str = UNDECIDED
    verdict: str = ""
    effect: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    p_adjusted: float | None = None
    p_adjust_method: str | None = None
    mde: float | None = None
    margin: float | None = None
    n_runs: int = 0
    n_steps: int = 0
    runs: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    in_family: bool = True
    """Whether the p-value belongs to the confirmatory family that the multiple-comparison correction covers."""

    def __post_init__(self) -> None:
        for name in ("effect", "ci_low", "ci_high", "p_value", "p_adjusted", "mde", "margin"):
            setattr(self, name, finite_or_none(getattr(self, name)))

    def to_dict(self) -> dict[str, Any]:
        return jsonable(asdict(self))

    @property
    def decided(self) -> bool:
        return self.status in (SIGNAL, NO_SIGNAL)


def jsonable(obj: Any, counts: frozenset[str] = frozenset()) -> Any:
    """`obj` as JSON types; a whole float under a key in `counts` (bytes, steps, a seed: pandas makes a column with
    a gap float) as an int, so report.json says 464380, not 464380.0."""
    if isinstance(obj, dict):
        return {str(k): _whole(jsonable(v, counts)) if k in counts else jsonable(v, counts) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v, counts) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, str):  # numpy scalars
        try:
            obj = obj.item()
        except (TypeError, ValueError):
            return str(obj)
    if isinstance(obj, float):
        return finite_or_none(obj)
    if obj is None or isinstance(obj, bool | int | str):
        return obj
    return str(obj)


def _whole(v: Any) -> Any:
    return int(v) if isinstance(v, float) and v.is_integer() else v


def not_enough(key: str, title: str, question: str, method: str, reason: str, **kw: Any) -> TestResult:
    """The answer for a sweep that cannot support the test: a verdict, never an exception."""
    mde = finite_or_none(kw.get("mde"))
    text = f"{UNDECIDED}: {reason}"
    if mde is not None:
        text += f"; the smallest effect this data could detect with {POWER:.0%} power is {mde:.4g} {kw.get('unit', 'BPB')}"
    return TestResult(key=key, title=title, question=question, method=method, status=UNDECIDED, verdict=text,
                      p_value=None, **kw)


ADJUSTED_LABELS = {"holm": "Holm-adjusted p", "bonferroni": "Bonferroni-adjusted p",
                   "fdr_bh": "BH (FDR) adjusted p"}


def p_label(res: TestResult) -> str:
    """How the verdict names the p-value it used: raw, or adjusted by the named correction."""
    if res.p_adjusted is None:
        return "p"
    method = res.p_adjust_method or ""
    return ADJUSTED_LABELS.get(method, f"{method}-adjusted p" if method else "adjusted p")


def decide(res: TestResult, alpha: float = ALPHA) -> TestResult:
    """Word the verdict from the (adjusted, when present) p-value, the CI and the minimum detectable effect.

    Significant: a signal (said to be smaller than the margin when the whole CI is). Not significant and the
    whole CI inside +/- margin: no effect larger than the margin (an equivalence statement). Otherwise: not
    enough data to decide, with the minimum detectable effect."""
    p = res.p_adjusted if res.p_adjusted is not None else res.p_value
    unit = res.unit
    ci = (f" (95% CI {res.ci_low:+.4g} to {res.ci_high:+.4g} {unit})"
          if res.ci_low is not None and res.ci_high is not None else "")
    eff = f"{res.effect:+.4g} {unit}" if res.effect is not None else "n/a"
    which = p_label(res)
    if p is None:
        if res.status != DESCRIPTIVE:
            res.status = UNDECIDED
            # a degenerate fit (NaN statistic) must still say something: a report never shows an empty verdict
            res.verdict = res.verdict or f"{UNDECIDED}: the fit gave no p-value (effect {eff}{ci})"
        return res
    inside = (res.margin is not None and res.ci_low is not None and res.ci_high is not None
              and -res.margin < res.ci_low and res.ci_high < res.margin)
    if p < alpha:
        res.status = SIGNAL
        res.verdict = f"signal: effect {eff}{ci}, {which} = {p:.3g}"
        if inside:  # real but small: a reader must not take it for an effect worth a config change
            res.verdict += f"; smaller than the +/-{res.margin:.4g} {unit} that matters in practice (the whole CI)"
    elif inside:
        res.status = NO_SIGNAL
        res.verdict = (f"no effect larger than +/-{res.margin:.4g} {unit}: effect {eff}{ci} lies inside the margin, "
                       f"{which} = {p:.3g}")
    else:
        res.status = UNDECIDED
        mde = f"; minimum detectable effect at {POWER:.0%} power: {res.mde:.4g} {unit}" if res.mde is not None else ""
        res.verdict = f"{UNDECIDED}: effect {eff}{ci}, {which} = {p:.3g}{mde}"
    if res.extra.get("verdict_note"):
        res.verdict += "; " + res.extra["verdict_note"]
    return res
