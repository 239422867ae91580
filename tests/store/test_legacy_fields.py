"""The field readers every legacy importer shares: an empty field is missing (never zero), thousands separators
are dropped, and a config value lands under its section only when it is known."""

from __future__ import annotations

import dataclasses

import pytest

from clowncar.errors import ClownCarError
from clowncar.store.importers.base import (
    LegacyFormatError,
    LegacyTrial,
    NotATrainingLog,
    Parsed,
    fnum,
    inum,
    set_path,
)


@pytest.mark.parametrize(("text", "value"), [
    ("1.2345", 1.2345), ("  3 ", 3.0), ("1,234,567.5", 1234567.5), ("-0.5", -0.5), ("1e-3", 0.001),
    ("0", 0.0), ("nan", None),
])
def test_fnum_reads_a_number_and_drops_thousands_separators(text: str, value: float | None) -> None:
    got = fnum(text)
    if value is None:
        assert got != got  # NaN stays NaN: the importer decides what a "nan" means, not the reader
    else:
        assert got == value and isinstance(got, float)


@pytest.mark.parametrize("text", ["", "   ", "\t\n", ","])
def test_an_empty_field_is_missing_never_zero(text: str) -> None:
    assert fnum(text) is None
    assert inum(text) is None


def test_inum_truncates_a_float_field_to_an_int() -> None:
    assert inum("42") == 42 and isinstance(inum("42"), int)
    assert inum("1,000") == 1000
    assert inum(" 7.9 ") == 7
    assert inum("0") == 0 and inum("0") is not None


def test_a_field_that_is_not_a_number_is_an_error() -> None:
    with pytest.raises(ValueError):
        fnum("abc")


def test_set_path_puts_a_value_under_its_section_and_keeps_the_rest() -> None:
    config: dict = {}
    set_path(config, "model.crawler_loops", 4)
    set_path(config, "model.model_dim", 640)
    set_path(config, "train.seed", 0)  # zero is a value
    set_path(config, "eval.name.with.dots", "x")  # only the first dot splits
    assert config == {"model": {"crawler_loops": 4, "model_dim": 640}, "train": {"seed": 0},
                      "eval": {"name.with.dots": "x"}}


def test_set_path_leaves_an_unknown_value_out_entirely() -> None:
    config: dict = {"model": {"crawler_loops": 4}}
    set_path(config, "model.crawler_loops", None)
    set_path(config, "train.seed", None)
    assert config == {"model": {"crawler_loops": 4}}  # no empty section appears either


def test_a_legacy_trial_starts_ok_with_its_own_empty_lists() -> None:
    a = LegacyTrial(key="a", config={}, result={})
    b = LegacyTrial(key="b", config={}, result={})
    assert (a.seed, a.status, a.started_at) == (None, "ok", None)
    a.steps.append({"step": 1})
    a.evals.append({"step": 1})
    a.named_evals.append({"name": "final"})
    assert b.steps == [] and b.evals == [] and b.named_evals == []


def test_a_parse_starts_with_nothing_skipped_and_file_identity() -> None:
    one, two = Parsed(format="f", trials=[]), Parsed(format="f", trials=[])
    assert (one.skipped, one.blank_lines, one.blank_at, one.per_trial_identity, one.unstored_fields) == (
        [], 0, set(), False, {})
    one.skipped.append(None)  # type: ignore[arg-type]
    one.blank_at.add(3)
    one.unstored_fields["x"] = 1
    assert two.skipped == [] and two.blank_at == set() and two.unstored_fields == {}
    assert [f.name for f in dataclasses.fields(Parsed)][:2] == ["format", "trials"]


def test_a_file_that_is_not_a_training_log_is_a_format_error_and_a_clowncar_error() -> None:
    assert issubclass(NotATrainingLog, LegacyFormatError)
    assert issubclass(LegacyFormatError, ClownCarError)
