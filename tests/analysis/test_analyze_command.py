"""`clowncar analyze` in this process: what it refuses before reading anything, the sweeps it reads, the report
files it writes and the summary it prints. (The analysis on the legacy runs, and the command as a user runs it,
are in test_legacy.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer

from clowncar.analysis import commands
from clowncar.analysis.commands import AnalysisError, analyze, load_and_analyse
from clowncar.errors import ClownCarError
from clowncar.store import open_store
from clowncar.store.importers import import_paths


@pytest.fixture(scope="module")
def store_url(legacy_runs: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('analyze') / 'store.db'}"
    with open_store(url) as st:
        import_paths(st, [legacy_runs / "cadence_tsv" / "clean_cadence2.tsv",
                          legacy_runs / "cadence_tsv" / "clean_always_fractal.tsv"])
    return url


def test_an_unknown_correction_is_refused_before_the_store_is_read(tmp_path: Path) -> None:
    with pytest.raises(AnalysisError) as err:
        analyze(["s"], tmp_path / "out", store=f"sqlite:///{tmp_path / 'none.db'}", correction="sidak")
    assert str(err.value) == "unknown correction 'sidak' (choose from holm, fdr_bh, bonferroni)"
    assert isinstance(err.value, ClownCarError) and err.value.exit_code == 2
    assert not (tmp_path / "none.db").exists() and not (tmp_path / "out").exists()


def test_an_output_path_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    with pytest.raises(AnalysisError) as err:
        analyze(["s"], tmp_path / "f", store=f"sqlite:///{tmp_path / 'none.db'}")
    assert str(err.value) == f"--out {tmp_path / 'f'} exists and is not a directory"


def test_an_output_path_under_a_file_is_refused_before_the_analysis_runs(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "afile").write_text("x")
    ran: list[str] = []
    monkeypatch.setattr(commands, "load_and_analyse", lambda *a, **kw: ran.append("analysis"))
    with pytest.raises(ClownCarError) as err:
        analyze(["s"], tmp_path / "afile" / "sub", store=f"sqlite:///{tmp_path / 'none.db'}")
    assert str(err.value) == (f"cannot create the report directory {tmp_path / 'afile' / 'sub'}: "
                              f"{tmp_path / 'afile'} is a regular file, not a directory")
    assert err.value.exit_code == 2 and ran == [] and sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_an_analysis_that_fails_takes_back_the_report_folders_it_made(tmp_path: Path) -> None:
    with pytest.raises(ClownCarError, match="no store at"):
        analyze(["s"], tmp_path / "new" / "out", store=f"sqlite:///{tmp_path / 'none.db'}")
    assert list(tmp_path.iterdir()) == []


def test_a_large_store_names_the_sweeps_nearest_to_an_unknown_one(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'many.db'}"
    with open_store(url) as st:
        for i in range(12):
            st.create_or_get_sweep(f"frugendorff_{i:02d}", {"imported": True}, source="import")
    with pytest.raises(AnalysisError) as err:
        load_and_analyse(["frugendorff_1"], url)
    assert str(err.value) == ("unknown sweep(s): frugendorff_1 (did you mean frugendorff_11, frugendorff_10, "
                              f"frugendorff_01? 12 sweeps in the store: `clowncar sweep ls --store {url}` lists them)")
    with pytest.raises(AnalysisError) as err:
        load_and_analyse(["zzz"], url)
    assert str(err.value) == f"unknown sweep(s): zzz (12 sweeps in the store: `clowncar sweep ls --store {url}` lists them)"
    with pytest.raises(AnalysisError) as err:  # two unknown names: the names near each, each once
        load_and_analyse(["frugendorff_1", "frugendorff_2"], url)
    assert "(did you mean frugendorff_11, frugendorff_10, frugendorff_01, frugendorff_02? 12 sweeps" in str(err.value)


def test_a_store_of_eight_sweeps_is_listed_whole_and_of_nine_is_not(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'eight.db'}"
    with open_store(url) as st:
        for i in range(8):
            st.create_or_get_sweep(f"s{i}", {"imported": True}, source="import")
    with pytest.raises(AnalysisError, match=r"\(in the store: s0, s1, s2, s3, s4, s5, s6, s7\)$"):
        load_and_analyse(["zzz"], url)
    with open_store(url) as st:
        st.create_or_get_sweep("s8", {"imported": True}, source="import")
    with pytest.raises(AnalysisError, match=r"\(9 sweeps in the store: `clowncar sweep ls --store \S+eight.db` "
                                            r"lists them\)$"):
        load_and_analyse(["zzz"], url)
    nine = [f"s{i}" for i in range(9)]
    assert commands._known_hint(["zzz"], nine) == "9 sweeps in the store: `clowncar sweep ls` lists them"  # default
    assert commands._known_hint(["zzz"], nine, "postgresql://u:pw@db/runs") == (
        "9 sweeps in the store: `clowncar sweep ls --store postgresql://u:***@db/runs` lists them")


def test_unknown_sweeps_are_named_with_the_ones_the_store_has(store_url: str, tmp_path: Path) -> None:
    with pytest.raises(AnalysisError) as err:
        load_and_analyse(["clean_cadence2", "zeta", "alpha"], store_url)
    assert str(err.value) == ("unknown sweep(s): zeta, alpha (in the store: clean_always_fractal, clean_cadence2)")
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    open_store(empty).close()
    with pytest.raises(AnalysisError, match=r"\(in the store: none\)$"):
        load_and_analyse(["x"], empty)


def test_only_the_named_sweeps_are_analysed_with_the_chosen_correction(store_url: str) -> None:
    a = load_and_analyse(["clean_cadence2"], store_url, "fdr_bh")
    assert a["sweeps"] == ["clean_cadence2"] and len(a["runs"]) == 1 and a["correction_method"] == "fdr_bh"
    assert set(a["frames"]["trials"]["sweep"]) == {"clean_cadence2"}
    assert set(a["optuna"]) == {"clean_cadence2"}
    both = load_and_analyse(["clean_cadence2", "clean_always_fractal"], store_url)
    assert len(both["runs"]) == 2 and both["correction_method"] == "holm"
    for frame in ("steps", "evals", "probes"):
        assert set(both["frames"][frame].columns) >= {"trial_uid"}
    assert len(both["frames"]["steps"]) > len(a["frames"]["steps"]) > 0


def test_only_the_named_sweeps_rows_are_read(store_url: str) -> None:
    with open_store(store_url) as st:
        other = st.trials_frame("clean_always_fractal")["trial_uid"].iloc[0]
        st.add_probes(other, 0, [{"step": 5, "mode": "C", "probe_loss": 3.0}])
    a = load_and_analyse(["clean_cadence2"], store_url)
    mine = set(a["frames"]["trials"]["trial_uid"])
    for frame in ("steps", "evals", "probes"):
        assert set(a["frames"][frame]["trial_uid"]) <= mine, frame
    both = load_and_analyse(["clean_cadence2", "clean_always_fractal"], store_url)
    assert other in set(both["frames"]["probes"]["trial_uid"])


def test_the_analysis_reads_the_optuna_studies_of_the_same_store(store_url: str, monkeypatch) -> None:
    import clowncar.analysis.report as report

    seen: list[dict] = []
    monkeypatch.setattr(report, "analyse", lambda *args, **kw: seen.append(kw) or {})
    load_and_analyse(["clean_cadence2"], store_url, "bonferroni")
    assert seen == [{"storage_url": store_url, "method": "bonferroni"}]


def test_a_missing_store_is_not_created_by_analysing(tmp_path: Path) -> None:
    from clowncar.errors import StoreError

    with pytest.raises(StoreError):
        load_and_analyse(["x"], f"sqlite:///{tmp_path / 'none.db'}")
    assert not (tmp_path / "none.db").exists()


def test_the_store_defaults_to_the_configured_one(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOWNCAR_STORE", store_url)
    assert len(load_and_analyse(["clean_cadence2"], None)["runs"]) == 1


def test_analyze_writes_three_reports_and_prints_the_summary(store_url: str, tmp_path: Path, capsys) -> None:
    out = tmp_path / "rep"
    analyze(["clean_cadence2"], out, store=store_url, correction="bonferroni")
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("sweeps: clean_cadence2 | runs: 1 | ") and printed[0].endswith(
        "| correction: bonferroni")
    assert printed[-1] == f"report: {out / 'report.md'}, {out / 'report.html'}, {out / 'report.json'}"
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.json", "report.md"]
    assert json.loads((out / "report.json").read_text())["correction_method"] == "bonferroni"


def test_same_stream_pairs_the_imported_traces_only_when_asked(store_url: str, tmp_path: Path, capsys) -> None:
    """The two imported traces record no stream: only `--same-stream` makes the always-fractal one the cadence-2
    trace's reference, and the report says it was declared."""
    analyze(["clean_cadence2", "clean_always_fractal"], tmp_path / "plain", store=store_url)
    analyze(["clean_cadence2", "clean_always_fractal"], tmp_path / "declared", store=store_url, same_stream=True)
    printed = capsys.readouterr().out
    assert printed.count("caution: 2 run(s) record no token stream, or only part of it, and are declared") == 1
    plain, declared = (json.loads((tmp_path / d / "report.json").read_text()) for d in ("plain", "declared"))
    assert plain["cautions"] == [] and len(declared["cautions"]) == 1
    assert not plain["tests"][0]["extra"]["reference_corrected"] and plain["tests"][0]["tables"]["reference_runs"] == []
    assert declared["tests"][0]["extra"]["reference_corrected"]
    assert len(declared["tests"][0]["tables"]["reference_runs"]) == 1
    assert load_and_analyse(["clean_cadence2", "clean_always_fractal"], store_url, "holm", True)["cautions"] == (
        declared["cautions"])
    assert load_and_analyse(["clean_cadence2", "clean_always_fractal"], store_url)["cautions"] == []


def test_a_report_that_cannot_be_written_is_one_line(store_url: str, tmp_path: Path, monkeypatch) -> None:
    import clowncar.analysis.report as report

    def denied(out, analysis):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(report, "write", denied)
    with pytest.raises(AnalysisError) as err:
        analyze(["clean_cadence2"], tmp_path / "rep", store=store_url)
    assert str(err.value) == f"cannot write the report to {tmp_path / 'rep'}: Permission denied"
    def blocked(out, analysis):
        raise IsADirectoryError(21, "is a directory, not a file", str(out / "report.json"))

    monkeypatch.setattr(report, "write", blocked)
    with pytest.raises(AnalysisError) as err:  # the error names the path that stopped it
        analyze(["clean_cadence2"], tmp_path / "rep", store=store_url)
    assert str(err.value) == f"cannot write the report to {tmp_path / 'rep' / 'report.json'}: is a directory, not a file"
    monkeypatch.setattr(report, "write", lambda out, analysis: (_ for _ in ()).throw(OSError("odd")))
    with pytest.raises(AnalysisError, match=r": odd$"):
        analyze(["clean_cadence2"], tmp_path / "rep", store=store_url)


def test_analyze_is_a_top_level_command() -> None:
    app = typer.Typer()
    commands.register(app)
    (command,) = app.registered_commands
    assert command.name == "analyze" and command.callback is analyze
    (own,) = commands.app.registered_commands
    assert own.name == "analyze" and own.callback is analyze


def test_a_sweep_without_finished_runs_is_one_line_exit_2_and_no_report(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'failed.db'}"
    with open_store(url) as st:
        st.create_or_get_sweep("b", {"name": "b"})
        st.create_or_get_sweep("x", {"name": "x"})
        for number, status in enumerate(["error", "rejected", "error"]):
            st.start_trial("b", f"t{number}", number, 0, {}, seed=None, node="n")
            st.finish_trial(f"t{number}", 0, status, "boom", None)
        st.start_trial("b", "t3", 3, 0, {}, seed=None, node="n")  # still running
    out = tmp_path / "rep"
    with pytest.raises(AnalysisError) as err:
        analyze(["b"], out, store=url)
    assert str(err.value) == ("sweep b has no finished runs (4 trials: error 2, rejected 1, running 1); nothing to "
                              "analyse (`clowncar sweep status b` says why)")
    assert err.value.exit_code == 2 and not out.exists()
    with pytest.raises(AnalysisError) as err:
        analyze(["b", "x"], out, store=url)
    assert str(err.value) == ("sweeps b, x have no finished runs (b: 4 trials: error 2, rejected 1, running 1; "
                              "x: 0 trials); nothing to analyse")
    assert not out.exists()


def test_a_sweep_named_twice_is_analysed_once(store_url: str, tmp_path: Path, capsys) -> None:
    once = load_and_analyse(["clean_cadence2"], store_url)
    twice = load_and_analyse(["clean_cadence2", "clean_cadence2"], store_url)
    assert len(twice["runs"]) == len(once["runs"]) == 1
    analyze(["clean_cadence2", "clean_cadence2"], tmp_path / "rep", store=store_url)
    assert capsys.readouterr().out.startswith("sweeps: clean_cadence2 | runs: 1 | ")


def test_a_report_of_the_same_sweeps_is_replaced_and_said_so(store_url: str, tmp_path: Path, capsys) -> None:
    out = tmp_path / "rep"
    analyze(["clean_cadence2"], out, store=store_url)
    first = json.loads((out / "report.json").read_text())["provenance"]["generated_at"]
    capsys.readouterr()
    analyze(["clean_cadence2"], out, store=store_url, correction="bonferroni")
    printed = capsys.readouterr().out.splitlines()
    assert printed[-1] == f"replaced the earlier report of clean_cadence2 in {out} (generated {first})"
    assert json.loads((out / "report.json").read_text())["correction_method"] == "bonferroni"


def test_another_sweeps_report_or_a_users_file_is_replaced_only_with_overwrite(store_url: str,
                                                                             tmp_path: Path) -> None:
    """A report is what a reviewer cites: analysing other sweeps into its folder, or into a folder that holds the
    user's own report.md, is refused (one line, exit 2, nothing read or written) unless --overwrite says so."""
    out = tmp_path / "rep"
    analyze(["clean_cadence2"], out, store=store_url)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(AnalysisError) as err:
        analyze(["clean_always_fractal"], out, store=store_url)
    assert str(err.value).startswith(f"--out {out} holds the report of clean_cadence2 (generated ")
    assert str(err.value).endswith("choose another folder, or pass --overwrite to replace it")
    assert err.value.exit_code == 2 and {p.name: p.read_bytes() for p in out.iterdir()} == before
    analyze(["clean_always_fractal"], out, store=store_url, overwrite=True)
    assert json.loads((out / "report.json").read_text())["sweeps"] == ["clean_always_fractal"]

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "report.md").write_text("my notes\n")
    with pytest.raises(AnalysisError) as err:
        analyze(["clean_cadence2"], mine, store=store_url)
    assert str(err.value) == (f"--out {mine} holds report.md, which no clowncar report wrote: choose another "
                              "folder, or pass --overwrite to replace it")
    assert [p.name for p in mine.iterdir()] == ["report.md"] and (mine / "report.md").read_text() == "my notes\n"
    (mine / "report.json").write_text('{"sweeps": ["clean_cadence2"]}')  # JSON, but not a report's
    with pytest.raises(AnalysisError):
        analyze(["clean_cadence2"], mine, store=store_url)
