"""`clowncar analyze` takes shell-style patterns of sweep names (walk 6, F14): docs/signals.md analyses "the sweeps
named 2026-0[34]*", 110 of them, which a shell glob cannot find (they are names in the store, not files)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clowncar.analysis.commands import AnalysisError, analyze, expand_patterns
from clowncar.store import open_store
from clowncar.store.importers import import_paths


@pytest.fixture(scope="module")
def store_url(legacy_runs: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('patterns') / 'store.db'}"
    with open_store(url) as st:
        import_paths(st, [legacy_runs / "cadence_tsv" / f"{name}.tsv"
                          for name in ("clean_cadence2", "clean_always_fractal", "ortho_cadence2_long")])
    return url


def _names(tmp_path: Path, *names: str) -> str:
    url = f"sqlite:///{tmp_path / 'names.db'}"
    with open_store(url) as st:
        for name in names:
            st.create_or_get_sweep(name, {"imported": True}, source="import")
    return url


def test_a_pattern_analyses_every_sweep_it_matches_and_the_report_says_which(store_url: str, tmp_path: Path,
                                                                             capsys) -> None:
    out = tmp_path / "rep"
    analyze(["clean_*"], out, store=store_url)
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("sweeps: clean_always_fractal, clean_cadence2 | runs: 2 | ")
    assert printed[1] == "  Sweeps by pattern: clean_* matched 2 sweeps."
    data = json.loads((out / "report.json").read_text())
    assert data["sweeps"] == ["clean_always_fractal", "clean_cadence2"] and data["n_runs"] == 2
    assert data["patterns"] == {"clean_*": ["clean_always_fractal", "clean_cadence2"]}
    md = (out / "report.md").read_text()
    assert md.startswith("# clowncar signal report: clean_always_fractal, clean_cadence2\n\nSweeps by pattern: "
                         "clean_* matched 2 sweeps (clean_always_fractal, clean_cadence2).\n")
    # the same sweeps named one by one are the same report: replaced, not refused as another sweep's
    analyze(["clean_cadence2", "clean_always_fractal"], out, store=store_url)
    assert capsys.readouterr().out.splitlines()[-1].startswith(f"replaced the earlier report of clean_always_fractal, "
                                                               f"clean_cadence2 in {out}")
    assert json.loads((out / "report.json").read_text())["patterns"] == {}


def test_star_question_mark_and_brackets_match_names_in_the_store_and_a_name_is_taken_once(tmp_path: Path) -> None:
    url = _names(tmp_path, "2026-03-a", "2026-04-b", "2026-05-c", "2026-0x", "smoke")
    assert expand_patterns(["2026-0[34]*"], url) == (["2026-03-a", "2026-04-b"],
                                                     {"2026-0[34]*": ["2026-03-a", "2026-04-b"]})
    assert expand_patterns(["2026-0?"], url)[0] == ["2026-0x"]
    assert expand_patterns(["smoke", "2026-05-*", "*"], url)[0] == ["smoke", "2026-05-c", "2026-03-a", "2026-04-b",
                                                                   "2026-0x"]
    with pytest.raises(AnalysisError, match=r"^no sweep matches SMOKE\* "):  # names are case-sensitive
        expand_patterns(["SMOKE*"], url)


def test_a_sweep_whose_name_holds_a_wildcard_is_that_sweep(tmp_path: Path) -> None:
    url = _names(tmp_path, "rec[1]", "rec1")
    assert expand_patterns(["rec[1]"], url) == (["rec[1]"], {})  # not rec1, which the pattern would match


def test_a_pattern_that_matches_nothing_is_one_line_naming_it(tmp_path: Path) -> None:
    url = _names(tmp_path, "2026-03-a", "smoke")
    with pytest.raises(AnalysisError) as err:
        analyze(["smoke", "2026-0[56]*"], tmp_path / "out", store=url)
    assert str(err.value) == "no sweep matches 2026-0[56]* (in the store: 2026-03-a, smoke)"
    assert err.value.exit_code == 2 and not (tmp_path / "out").exists()


def test_plain_names_do_not_open_the_store_to_expand(tmp_path: Path) -> None:
    missing = f"sqlite:///{tmp_path / 'none.db'}"
    assert expand_patterns(["a", "b"], missing) == (["a", "b"], {})
    assert not (tmp_path / "none.db").exists()
