"""How a signal test's numbers become its verdict: significance on the adjusted p when there is one, equivalence
only when the whole CI lies inside the margin, otherwise "not enough data" with the minimum detectable effect;
and every number in the JSON is finite or null."""

from __future__ import annotations

import math

import numpy as np
import pytest

from clowncar.analysis.result import (
    DESCRIPTIVE,
    NO_SIGNAL,
    SIGNAL,
    UNDECIDED,
    TestResult,
    decide,
    finite_or_none,
    jsonable,
    not_enough,
    p_label,
)


def _res(**kw: object) -> TestResult:
    base: dict[str, object] = {"key": "k", "title": "t", "question": "q", "method": "m", "effect": 0.001,
                               "ci_low": -0.0002, "ci_high": 0.0003}
    return TestResult(**{**base, **kw})  # type: ignore[arg-type]


def test_a_significant_p_is_a_signal_with_effect_ci_and_p_in_the_verdict() -> None:
    r = decide(_res(effect=0.0012, ci_low=0.0004, ci_high=0.002, p_value=0.01))
    assert r.status == SIGNAL
    assert r.verdict == "signal: effect +0.0012 BPB (95% CI +0.0004 to +0.002 BPB), p = 0.01"


@pytest.mark.parametrize(("ci", "small"), [((0.0001, 0.0004), True), ((0.0001, 0.0005), False),
                                           ((-0.0005, -0.0001), False), ((0.0004, 0.002), False)])
def test_a_signal_whose_whole_ci_is_inside_the_margin_is_called_small(ci: tuple[float, float], small: bool) -> None:
    r = decide(_res(effect=sum(ci) / 2, ci_low=ci[0], ci_high=ci[1], p_value=0.001, margin=0.0005))
    assert r.status == SIGNAL
    note = "; smaller than the +/-0.0005 BPB that matters in practice (the whole CI)"
    assert r.verdict.endswith(note) == small and r.verdict.count("smaller than") == small
    assert r.verdict.startswith(f"signal: effect {r.effect:+.4g} BPB (95% CI {ci[0]:+.4g} to {ci[1]:+.4g} BPB), p = ")


def test_the_adjusted_p_decides_when_there_is_one() -> None:
    r = decide(_res(p_value=0.01, p_adjusted=0.2, p_adjust_method="holm"))
    assert r.status == UNDECIDED and "Holm-adjusted p = 0.2" in r.verdict
    r = decide(_res(p_value=0.2, p_adjusted=0.04, p_adjust_method="holm"))
    assert r.status == SIGNAL


def test_alpha_is_a_strict_threshold() -> None:
    assert decide(_res(p_value=0.05)).status != SIGNAL
    assert decide(_res(p_value=0.0499)).status == SIGNAL
    assert decide(_res(p_value=0.05), alpha=0.06).status == SIGNAL


@pytest.mark.parametrize(("ci", "status"), [
    ((-0.0004, 0.0004), NO_SIGNAL),
    ((-0.0005, 0.0004), UNDECIDED),  # touching the margin is not inside it
    ((-0.0004, 0.0005), UNDECIDED),
    ((-0.0006, 0.0001), UNDECIDED),
])
def test_no_effect_needs_the_whole_ci_strictly_inside_the_margin(ci: tuple[float, float], status: str) -> None:
    r = decide(_res(effect=0.0, ci_low=ci[0], ci_high=ci[1], p_value=0.5, margin=0.0005, mde=0.0009))
    assert r.status == status
    if status == NO_SIGNAL:
        assert r.verdict.startswith("no effect larger than +/-0.0005 BPB: effect +0 BPB (95% CI -0.0004 to ")
        assert r.verdict.endswith("lies inside the margin, p = 0.5")
    else:
        assert r.verdict.startswith(f"{UNDECIDED}: effect +0 BPB")
        assert r.verdict.endswith("p = 0.5; minimum detectable effect at 80% power: 0.0009 BPB")


def test_no_margin_or_no_ci_is_never_an_equivalence() -> None:
    assert decide(_res(p_value=0.5, margin=None)).status == UNDECIDED
    assert decide(_res(p_value=0.5, margin=1.0, ci_low=None)).status == UNDECIDED
    assert decide(_res(p_value=0.5, margin=1.0, ci_high=None)).status == UNDECIDED
    r = decide(_res(p_value=0.5, ci_low=None, ci_high=None, effect=None))
    assert r.verdict == f"{UNDECIDED}: effect n/a, p = 0.5"


def test_without_a_p_value_the_status_stays_descriptive_or_becomes_undecided() -> None:
    d = decide(_res(status=DESCRIPTIVE, verdict="pooled sd 0.0002"))
    assert d.status == DESCRIPTIVE and d.verdict == "pooled sd 0.0002"
    u = decide(_res(status=SIGNAL))
    assert u.status == UNDECIDED


def test_a_verdict_note_is_appended_and_units_are_the_tests_own() -> None:
    r = decide(_res(unit="nats", effect=0.5, ci_low=0.1, ci_high=0.9, p_value=0.001,
                    extra={"verdict_note": "probes used"}))
    assert r.verdict == "signal: effect +0.5 nats (95% CI +0.1 to +0.9 nats), p = 0.001; probes used"


def test_not_enough_data_gives_the_reason_and_the_mde_in_the_tests_unit() -> None:
    r = not_enough("k", "t", "q", "m", "two runs", mde=0.0031, unit="nats")
    assert r.status == UNDECIDED and r.p_value is None and r.mde == 0.0031 and r.unit == "nats"
    assert r.verdict == (f"{UNDECIDED}: two runs; the smallest effect this data could detect with 80% power is "
                         "0.0031 nats")
    assert not_enough("k", "t", "q", "m", "no runs").verdict == f"{UNDECIDED}: no runs"
    bpb = not_enough("key", "title", "question", "method", "one run", mde=0.002)
    assert bpb.verdict.endswith("detect with 80% power is 0.002 BPB") and bpb.unit == "BPB"
    assert (bpb.key, bpb.title, bpb.question, bpb.method) == ("key", "title", "question", "method")
    assert not_enough("k", "t", "q", "m", "x", mde=math.nan).verdict == f"{UNDECIDED}: x"


def test_labels_name_the_correction() -> None:
    assert p_label(_res(p_value=0.1)) == "p"
    assert p_label(_res(p_adjusted=0.1, p_adjust_method="bonferroni")) == "Bonferroni-adjusted p"
    assert p_label(_res(p_adjusted=0.1, p_adjust_method="fdr_bh")) == "BH (FDR) adjusted p"
    assert p_label(_res(p_adjusted=0.1, p_adjust_method="sidak")) == "sidak-adjusted p"
    assert p_label(_res(p_adjusted=0.1)) == "adjusted p"


def test_numbers_are_finite_or_none_everywhere() -> None:
    assert [finite_or_none(x) for x in (1, "2.5", np.float32(0.5), math.nan, math.inf, "x", None, [1])] == \
        [1.0, 2.5, 0.5, None, None, None, None, None]
    r = _res(effect=math.nan, p_value=np.float64(0.01), mde=math.inf)
    assert r.effect is None and r.p_value == 0.01 and isinstance(r.p_value, float) and r.mde is None
    out = jsonable({1: np.int64(3), "a": (np.float64(math.nan), [np.bool_(True), "s", None]), "o": object,
                    "f": 2.5, "i": -math.inf})
    assert out == {"1": 3, "a": [None, [True, "s", None]], "o": str(object), "f": 2.5, "i": None}
    assert type(out["1"]) is int and type(out["a"][1][0]) is bool
    assert jsonable(np.array([1, 2])) == str(np.array([1, 2]))  # arrays are not scalars: kept readable
    d = _res(p_value=0.2, tables={"per_run": [{"x": np.float64(1.5)}]}).to_dict()
    assert d["tables"] == {"per_run": [{"x": 1.5}]} and d["p_value"] == 0.2 and d["key"] == "k"


def test_decided_means_signal_or_no_signal() -> None:
    assert _res(status=SIGNAL).decided and _res(status=NO_SIGNAL).decided
    assert not _res(status=UNDECIDED).decided and not _res(status=DESCRIPTIVE).decided


def test_a_test_without_a_p_value_is_undecided_and_says_so() -> None:
    r = decide(_res(p_value=float("nan"), effect=float("nan"), ci_low=None))
    assert (r.status, r.verdict) == (UNDECIDED, "not enough data to decide: the fit gave no p-value (effect n/a)")
    r = decide(_res(p_value=None, effect=0.5, ci_low=0.1, ci_high=0.9, verdict="its own words"))
    assert (r.status, r.verdict) == (UNDECIDED, "its own words")
    r = decide(_res(p_value=None, effect=0.5, ci_low=0.1, ci_high=0.9))
    assert r.verdict == "not enough data to decide: the fit gave no p-value (effect +0.5 BPB (95% CI +0.1 to +0.9 BPB))"
    d = decide(_res(p_value=None, status=DESCRIPTIVE, verdict="descriptive: sd 0.01"))
    assert (d.status, d.verdict) == (DESCRIPTIVE, "descriptive: sd 0.01")
