"""Legacy importers: every file of the Frugendorff line in ../shared/legacy-runs imports with the source's values;
a second import adds nothing; unknown, truncated or unreachable input is a one-line error (exit 2) that leaves
nothing behind. (The challenge's record logs have their own tests: test_records_import.py.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from clowncar.store import open_store
from clowncar.store.importers import LegacyFormatError, import_paths, parse_file

FOLDERS = ("train_logs", "sweep_csv", "cadence_tsv", "micro_crawler")


def _url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'imp.db'}"


def _by_key(trials, key: str):
    """The row of the trial whose id is `<key>-<digest>` (a CSV row's or RESULTS block's id)."""
    rows = trials[trials["trial_uid"].astype(str).str.startswith(f"{key}-")]
    assert len(rows) == 1, list(rows["trial_uid"])
    return rows.iloc[0]


def _one_line_error(proc, *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr + proc.stdout
    err = proc.stderr.strip()
    assert "\n" not in err and err.startswith("clowncar: error: ") and "Traceback" not in err, err
    for n in needles:
        assert n in err, err


def test_every_legacy_file_imports_with_the_source_values(run_cli, legacy_runs, tmp_path):
    proc = run_cli("import", *(str(legacy_runs / f) for f in FOLDERS), "--store", _url(tmp_path), "-v")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "-> sweep autoresearch_frug2_results: 174 trials (174 new)" in out
    assert "-> sweep sweep_micro_crawler: 8 trials (8 new)" in out
    assert "ortho_cadence2_long.tsv (cadence-tsv) -> sweep ortho_cadence2_long: 1 trial (1 new), 3929 step rows" \
        ", 78 eval rows and 0 named evals written; note: no final val_bpb: the trace stops at step 3929, 29 steps " \
        "after its last EVAL (step 3900, val_bpb 1.660927, kept as an eval row)\n" in out
    assert "clean_cadence2: 1 trial (1 new), 300 step rows, 6 eval rows and 0 named evals written\n" in out
    assert "naive_baseline_train.log (training-log)" in out
    assert "naive_baseline_train.log:1-45: torchrun/NCCL noise (29 lines): W0318" in out  # 29 lines, blanks between
    # the exact line prints the 4-decimal `final_int8_zlib_roundtrip` measurement again
    assert ("headline final_int8_zlib_roundtrip_exact val_bpb 1.2243657 (standard, quantized, int8, repeats "
            "final_int8_zlib_roundtrip; line 448)") in out
    assert "7 files: 7 imported (187 new trials), 0 already present, 0 refused, 0 skipped" in out
    with open_store(_url(tmp_path)) as st:
        sweeps = st.sweeps_frame().set_index("name")
        assert set(sweeps["source"]) == {"import"} and len(sweeps) == 7
        micro = st.trials_frame("sweep_micro_crawler")
        best = _by_key(micro, "mc_3f1cx2_tri")
        assert (best["val_bpb"], best["model_dim"], best["model.model_dim"]) == (2.157078, 608, 608)
        assert (best["c_steps"], best["n_steps"], best["effective_depth"], best["step_avg_ms"]) == (250, 250, 5, 332.7)
        assert (best["flat_params"], best["crawler_params"], best["params"]) == (12202560, 4067520, 18020897)
        assert (best["model.num_flat_layers"], best["model.crawler_loops"]) == (3, 2)
        ctrl = _by_key(micro, "mc_6flat_ctrl")
        assert (ctrl["c_steps"], ctrl["n_steps"], ctrl["model.num_crawler_layers"]) == (0, 500, 0)
        frug = st.trials_frame("autoresearch_frug2_results")
        f100 = _by_key(frug, "frug2_100")
        assert (f100["val_bpb"], f100["train.cadence"], f100["model.crawler_loops"], f100["model.mlp_mult"]) == \
            (2.184926, 4, 2, 4.0)
        assert f100["model.num_crawler_layers"] == 5 and f100["model.model_dim"] == "auto"
        assert frug["val_bpb"].max() == _by_key(frug, "frug2_032")["val_bpb"] == 2.841888
        assert "steps" not in frug.columns and "params" not in frug.columns  # empty in the source: not invented
        steps = st.steps_frame("clean_cadence2")
        assert steps["kind"].value_counts().to_dict() == {"C": 150, "N": 150}
        assert list(steps["kind"][:2]) == ["C", "N"] and steps["train_loss"].iloc[0] == 6.989217
        assert st.trials_frame("clean_always_fractal")["val_bpb"].iloc[0] == 2.536580
        assert "val_bpb" not in st.trials_frame("ortho_cadence2_long").columns  # no EVAL closes that trace
        evals = st.evals_frame("clean_cadence2")
        assert evals[["step", "val_bpb"]].values.tolist()[:2] == [[50, 3.470533], [100, 2.905867]]
        naive = st.trials_frame("naive_baseline_train").iloc[0]
        assert (naive["q_val_bpb"], naive["q_val_loss"], naive["steps"], naive["params"]) == \
            (1.22436570, 2.07269931, 13780, 17059912)
        assert (naive["headline_bpb"], naive["headline_name"], naive["headline_line"]) == \
            (1.22436570, "final_int8_zlib_roundtrip_exact", 448)
        assert (naive["artifact_bytes"], naive["train.train_batch_tokens"], naive["seed"]) == (15863489, 524288, 1337)
        nsteps = st.steps_frame("naive_baseline_train")
        assert nsteps["step"].iloc[-1] == 13750 and nsteps["elapsed_ms"].iloc[-1] == 598726.0
        sliding = st.trials_frame("sliding_window_eval_train").iloc[0]
        assert sliding["q_sliding_val_bpb"] == 1.19250007 and sliding["eval.stride"] == 64
        assert "q_val_bpb" not in sliding or sliding["q_val_bpb"] != sliding["q_val_bpb"]  # never as standard
        assert sliding["headline_mode"] == "sliding"  # the log declared final_eval_mode:sliding_window
        last = st.evals_frame("sliding_window_eval_train").query("weights == 'quantized'")
        assert last[["step", "mode", "val_bpb"]].values.tolist() == [[13450, "sliding", 1.19250007]]


def test_importing_the_same_files_again_adds_nothing(run_cli, cli, legacy_runs, tmp_path):
    files = [str(legacy_runs / "micro_crawler" / "sweep_micro_crawler.log"),
             str(legacy_runs / "cadence_tsv" / "clean_cadence2.tsv")]
    first = run_cli("import", *files, "--sweep", "legacy", "--store", _url(tmp_path))
    code, again, err = cli("import", *files, "--sweep", "legacy", "--store", _url(tmp_path))
    assert first.returncode == code == 0, err
    assert "skipped lines of" in first.stdout and "sweep_micro_crawler.log: " in first.stdout  # one line per file
    assert "sweep_micro_crawler.log (micro-crawler-log): 8 trials already stored in sweep legacy" in again
    assert "clean_cadence2.tsv (cadence-tsv): 1 trial already stored in sweep legacy" in again
    assert "2 files: 0 imported (0 new trials), 2 already present, 0 refused" in again
    with open_store(_url(tmp_path)) as st:
        trials = st.trials_frame("legacy")
        assert len(trials) == 9 and sorted(trials["number"]) == list(range(9))
        assert len(st.steps_frame("legacy")) == 300 and len(st.evals_frame("legacy")) == 6
    # the same content under another name and into another sweep is still the same trial
    copy = tmp_path / "renamed.tsv"
    copy.write_bytes(Path(files[1]).read_bytes())
    code, out, err = cli("import", str(copy), "--sweep", "elsewhere", "--store", _url(tmp_path))
    assert code == 0 and "1 trial already stored in sweep legacy" in out, out + err
    with open_store(_url(tmp_path)) as st:
        assert "elsewhere" not in set(st.sweeps_frame()["name"]) and len(st.trials_frame()) == 9


TRUNCATIONS = {
    "sweep_csv/autoresearch_frug2_results.csv": lambda t: t[: t.index("frug2_050") + 20],
    "micro_crawler/sweep_micro_crawler.log": lambda t: t[: t.index("effective_depth:", t.index("CONFIG 6"))],
    "cadence_tsv/clean_cadence2.tsv": lambda t: t[: t.rindex("\t", 0, len(t) - 2)],
    "train_logs/naive_baseline_train.log": lambda t: t[: t.index("step:9000/20000 val_loss")],
    "train_logs/sliding_window_eval_train.log": lambda t: t.rstrip("\n")[:-4],
}


@pytest.mark.parametrize("rel", sorted(TRUNCATIONS))
def test_a_truncated_file_is_refused_whole(rel, legacy_copy):
    path = legacy_copy(rel)
    path.write_text(TRUNCATIONS[rel](path.read_text()))
    with pytest.raises(LegacyFormatError, match=re.escape(str(path))) as err:  # the full path
        parse_file(path)
    assert "\n" not in str(err.value) and "truncated" in str(err.value)


def test_a_truncated_file_among_good_ones_imports_nothing(run_cli, legacy_copy, tmp_path):
    good = legacy_copy("cadence_tsv/clean_always_fractal.tsv")
    path = legacy_copy("micro_crawler/sweep_micro_crawler.log")
    path.write_text(TRUNCATIONS["micro_crawler/sweep_micro_crawler.log"](path.read_text()))
    proc = run_cli("import", str(good), str(path), "--store", _url(tmp_path))
    _one_line_error(proc, "sweep_micro_crawler.log: RESULTS block", "truncated file?")
    assert not (tmp_path / "imp.db").exists()  # parsed before anything was written: no store, no sweep


def test_a_failed_write_leaves_no_sweep_behind(legacy_copy, tmp_path, monkeypatch):
    path = legacy_copy("micro_crawler/sweep_micro_crawler.log")
    with open_store(_url(tmp_path)) as st:
        def broken(*args, **kwargs):
            raise RuntimeError("server went away")

        monkeypatch.setattr(st, "add_evals", broken)
        with pytest.raises(RuntimeError):
            import_paths(st, [path])
        assert st.sweeps_frame().empty and st.trials_frame().empty


def test_unknown_format_and_missing_files_are_one_line_errors(run_cli, cli, tmp_path):
    odd = tmp_path / "notes.txt"
    odd.write_text("just some notes\nnothing to import\n")
    _one_line_error(run_cli("import", str(odd), "--store", _url(tmp_path)),
                    f"{odd}: not a training log: no step or eval lines (expected one of: frugendorff-csv")
    blob = tmp_path / "blob.bin"
    blob.write_bytes(bytes(range(256)))
    for path, needle in ((blob, f"{blob}: not a training log: not UTF-8 text (byte 128 is 0x80)"),
                         (tmp_path / "nope.csv", "no such file")):
        code, _, err = cli("import", str(path), "--store", _url(tmp_path))
        assert code == 2 and needle in err and err.strip().count("\n") == 0, err
    assert not (tmp_path / "imp.db").exists()


def test_an_unreachable_database_is_one_line_without_the_password(run_cli, cli, legacy_runs, monkeypatch):
    tsv = str(legacy_runs / "cadence_tsv" / "clean_cadence2.tsv")
    proc = run_cli("import", tsv, "--store", "postgresql+psycopg://clown:s3cr3t-pw@127.0.0.1:1/runs")
    _one_line_error(proc, "cannot open store postgresql+psycopg://clown:***@127.0.0.1:1/runs")
    assert "s3cr3t-pw" not in proc.stderr + proc.stdout
    monkeypatch.setenv("CLOWNCAR_STORE", "not a url")
    code, _, err = cli("import", tsv)
    assert code == 2 and "not a database URL" in err
    code, _, err = cli("store", "ls", "--store", "nosuchdialect://u:pw@x/y")
    assert code == 2 and "nosuchdialect://u:***@x/y" in err and err.strip().count("\n") == 0, err


def test_import_help_documents_the_log_formats_and_the_flags(cli):
    code, out, _ = cli("import", "--help")
    flat = " ".join(out.split())
    assert code == 0
    for needle in ("step:N/M train_loss:X", "tok/s", "unix or ISO time stamp", "legal_ttt_exact",
                   "quantized_ttt_phased", "*_ngram*_exact", "headline", "--keep-going", "never from the file name"):
        assert needle in flat, needle
