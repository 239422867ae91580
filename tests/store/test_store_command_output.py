"""`clowncar store ls / show / export` in this process, on a SQLite store filled here: the exact lines a user reads,
the files export writes (and never half-writes), and one-line refusals. (The commands run as a user runs them in
test_commands.py.)"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clowncar.errors import ClownCarError, StoreError
from clowncar.store import open_store
from clowncar.store.commands import (
    _csv_ready,
    _fmt,
    _parquet_ready,
    config_text,
    export,
    ls,
    searched_keys,
    show,
    text_table,
)
from clowncar.store.importers import import_paths

LOG = ("step:1/4 train_loss:5.0000 train_time:10ms step_avg:10.00ms\n"
       "step:2/4 train_loss:4.5000 train_time:20ms step_avg:10.00ms\n"
       "step:2/4 val_loss:4.4 val_bpb:2.6\n"
       "final_int8_zlib_roundtrip_exact val_loss:2.0 val_bpb:1.2345\n")


@pytest.fixture
def filled(tmp_path: Path) -> tuple[str, str, Path]:
    """A store with one imported sweep `a` (one trial, with an artifact row); returns (url, trial uid, log)."""
    log = tmp_path / "a.log"
    log.write_text(LOG)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with open_store(url) as st:
        (rep,) = import_paths(st, [log])
        st.add_artifact(rep.uids[0], 0, "/runs/a/model.ptz", 9_100_000, code_bytes=250_008, sha256="ab12")
    return url, rep.uids[0], log


def import_sweep_b(url: str, tmp_path: Path) -> str:
    """A second imported sweep `b` beside `a`; returns its trial's uid."""
    other = tmp_path / "b.log"
    other.write_text(LOG.replace("5.0000", "6.0000"))
    with open_store(url) as st:
        (rep,) = import_paths(st, [other])
    return rep.uids[0]


def test_values_are_shown_short_or_exact_and_missing_as_a_dash() -> None:
    assert _fmt(None) == "-" and _fmt(float("nan")) == "-" and _fmt(float("nan"), exact=True) == "-"
    assert _fmt(1.18130001234) == "1.1813" and _fmt(1.18130001234, exact=True) == "1.18130001234"
    assert _fmt(1.2243657 - 1.2172, exact=True) == "0.0071657"  # 0.0071656999999998305: no float noise
    assert _fmt(123456789.0) == "1.2345679e+08"
    assert _fmt(dt.datetime(2026, 3, 5, 7, 9, 59)) == "2026-03-05 07:09"
    assert _fmt(3) == "3" and _fmt("x") == "x" and _fmt(True) == "True"


def test_tables_pad_every_column_to_its_widest_cell() -> None:
    assert text_table([["a", 1.5], ["long-name", None]], ["name", "bpb"]).splitlines() == [
        "name       bpb", "a          1.5", "long-name  -"]
    assert text_table([], ["x", "y"]) == "x  y"


def test_a_specs_searched_keys_are_its_space_points_queue_and_seeds_in_order_once_each() -> None:
    spec = {"space": {"model.crawler_loops": {"grid": [1, 2]}, "_note": "x"},
            "points": {"wide": {"model.model_dim": 96}, "broken": "not a mapping"},
            "enqueue": [{"train.matrix_lr": 0.02, "model.crawler_loops": 2}], "seeds": [1, 2]}
    keys = ["model.crawler_loops", "model.model_dim", "train.matrix_lr", "train.seed"]
    assert searched_keys(spec) == keys
    assert searched_keys(json.dumps(spec)) == keys  # as the store holds it
    assert searched_keys("") == searched_keys(None) == searched_keys("[]") == []  # an imported sweep's


def test_a_trials_config_text_names_its_present_values_by_their_last_name_or_is_a_dash() -> None:
    row = {"model.crawler_loops": 2, "train.seed": float("nan"), "train.matrix_lr": 0.02}
    assert config_text(row, ["model.crawler_loops", "train.seed", "train.matrix_lr", "model.model_dim"]) == (
        "crawler_loops=2, matrix_lr=0.02")
    assert config_text(row, ["train.seed", "model.model_dim"]) == "-"
    assert config_text({"a.b.c": 1, "point": "wide"}, ["a.b.c", "point"]) == "c=1, point=wide"  # any depth


def test_ls_lists_sweeps_with_counts_and_best_bpb(filled, capsys) -> None:
    url, _, _ = filled
    ls(None, store=url)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"store: {url}"
    assert lines[1].split() == ["source", "status", "trials", "ok", "running", "failed", "pruned", "stopped",
                                "best_bpb", "best_metric", "created_at", "name"]
    row = lines[2].split()
    assert row[:10] == ["import", "imported", "1", "1", "0", "0", "0", "0", "1.2345", "q_val_bpb"] and row[-1] == "a"


def test_ls_counts_stopped_and_pruned_trials_so_the_counts_add_up_to_trials(tmp_path: Path, capsys) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with open_store(url) as st:
        st.create_or_get_sweep("s", {})
        for n, status in enumerate(["stopped", "stopped", "pruned", "ok"]):
            st.start_trial("s", f"t{n}", n, 0, {}, 1337, "node-a")
            st.finish_trial(f"t{n}", 0, status, None, {})
        st.set_sweep_status("s", "stopped")
    ls(None, store=url)
    header, row = (line.split() for line in capsys.readouterr().out.splitlines()[1:3])
    counts = dict(zip(header[2:8], map(int, row[2:8]), strict=True))
    assert counts == {"trials": 4, "ok": 1, "running": 0, "failed": 0, "pruned": 1, "stopped": 2}


def test_ls_names_the_metric_of_the_best_and_lists_every_bpb_the_trials_measured(tmp_path: Path, capsys) -> None:
    """The best of a run sweep is its post-quantization sliding score: the listing says so, and shows that column
    beside the raw one, so the best can be found among the trials."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with open_store(url) as st:
        st.create_or_get_sweep("s", {})
        for n, (raw, best) in enumerate([(2.31, 2.30), (2.29, 2.33)]):
            st.start_trial("s", f"t{n}", n, 0, {}, 1337, "node-a")
            st.finish_trial(f"t{n}", 0, "ok", None, {"val_bpb": raw, "q_sliding_val_bpb": best})
    ls(None, store=url)
    lines = capsys.readouterr().out.splitlines()
    assert lines[2].split()[8:10] == ["2.3", "q_sliding_val_bpb"]
    ls("s", store=url)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["number", "trial_uid", "attempt", "status", "val_bpb", "q_sliding_val_bpb", "node",
                                "reason"]
    assert lines[1].split()[4:6] == ["2.31", "2.3"]


def test_ls_of_a_run_sweep_names_each_trials_searched_values_and_its_artifact_bytes(tmp_path: Path, capsys) -> None:
    # walk 5, F6: ten trials told apart by number only; which was 1 crawler layer x 3 loops took `store show`
    url = f"sqlite:///{tmp_path / 'store.db'}"
    spec = {"space": {"model.crawler_loops": {"grid": [1, 3]}}, "points": {"wide": {"model.model_dim": 96}},
            "seeds": [1337, 42], "enqueue": [{"train.matrix_lr": 0.02}]}
    with open_store(url) as st:
        st.create_or_get_sweep("s", spec)
        configs = [{"model": {"crawler_loops": 3, "model_dim": 96}, "train": {"seed": 42, "matrix_lr": 0.02}},
                   {"model": {"crawler_loops": 1}, "train": {"seed": 1337}}]
        for n, config in enumerate(configs):
            st.start_trial("s", f"t{n}", n, 0, config, config["train"]["seed"], "node-a")
        st.finish_trial("t0", 0, "ok", None, {"val_bpb": 2.5, "artifact_bytes": 472_862})
        st.finish_trial("t1", 0, "diverged", "train loss 9.1 at step 2", {})
    ls("s", store=url)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["number", "trial_uid", "attempt", "status", "config", "val_bpb", "artifact_bytes",
                                "node", "reason"]
    assert "crawler_loops=3, model_dim=96, matrix_lr=0.02, seed=42" in lines[1] and "472862" in lines[1]
    assert "crawler_loops=1, seed=1337" in lines[2]  # a key the trial's config lacks is left out


def test_ls_of_a_sweep_whose_trials_never_measured_their_artifact_leaves_the_column_out(tmp_path: Path,
                                                                                       capsys) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with open_store(url) as st:
        st.create_or_get_sweep("s", {})
        st.start_trial("s", "t0", 0, 0, {"train": {"seed": 1}}, 1, "node-a")
        st.finish_trial("t0", 0, "ok", None, {"val_bpb": 2.5, "artifact_bytes": None})  # quantization skipped
    ls("s", store=url)
    assert capsys.readouterr().out.splitlines()[0].split() == ["number", "trial_uid", "attempt", "status", "val_bpb",
                                                               "node", "reason"]


def test_ls_of_a_store_with_a_rerun_says_its_best_is_a_single_run(filled, capsys) -> None:
    url, _, _ = filled
    with open_store(url) as st:
        st.create_or_get_sweep("a-rerun", {}, parent="a", source="import")
    ls(None, store=url)
    assert capsys.readouterr().out.splitlines()[-1] == (
        "note: a rerun's best_bpb (a sweep with a parent) is its best single run, not a mean over seeds: "
        "`clowncar sweep status NAME` gives each config's mean")


def test_ls_keeps_the_counts_in_place_however_long_a_sweep_name(filled, capsys) -> None:
    url, _, _ = filled
    long_name = "track_10min_16mb/2026-03-20_" + "x" * 80
    with open_store(url) as st:
        st.create_or_get_sweep(long_name, {})
    ls(None, store=url)
    lines = capsys.readouterr().out.splitlines()[1:]
    name_at = lines[0].index("name")  # where the names start: after the counts, whatever their length
    assert lines[0].index("best_bpb") < 70 and sorted(line[name_at:] for line in lines[1:]) == sorted(["a", long_name])


def test_ls_of_a_sweep_lists_its_trials(filled, capsys) -> None:
    url, uid, log = filled
    ls("a", store=url)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["number", "trial_uid", "attempt", "status", "val_bpb", "q_val_bpb", "steps", "node",
                                "reason"]
    assert lines[1].split() == ["0", uid, "0", "ok", "2.6", "1.2345", "2", "-", "imported", "from", str(log)]


def test_an_empty_store_says_so_and_an_unknown_sweep_is_refused(tmp_path: Path, capsys) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    open_store(url).close()
    ls(None, store=url)
    assert capsys.readouterr().out.splitlines() == [f"store: {url}", "no sweeps"]
    with pytest.raises(StoreError) as err:
        ls("nope", store=url)
    assert str(err.value) == f"no sweep named 'nope' in {url}"
    with open_store(url) as st:
        st.create_or_get_sweep("frugendorff_v2", {})
    with pytest.raises(StoreError) as err:
        ls("frugendorff-v2", store=url)
    assert str(err.value) == f"no sweep named 'frugendorff-v2' in {url} (did you mean frugendorff_v2?)"


def test_a_missing_store_is_not_created_by_looking(tmp_path: Path) -> None:
    with pytest.raises(StoreError):
        ls(None, store=f"sqlite:///{tmp_path / 'none.db'}")
    assert not (tmp_path / "none.db").exists()


def test_show_prints_config_attempts_results_evals_and_artifacts(filled, capsys) -> None:
    url, uid, log = filled
    show(uid, store=url)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"trial {uid}  sweep a  number 0  seed None  config 44136fa355b3678a"
    assert lines[1] == "config:"
    attempt = lines[2]
    assert attempt.startswith("attempt 0: ok  node -  ") and attempt.endswith(f"reason: imported from {log}")
    assert lines[3] == "  rows: 2 steps, 2 evals, 0 probes"
    assert "  quant_gap = -1.3655" in lines  # to 12 digits: the difference's float noise left out
    assert "  train_seconds = -" in lines and "  headline_name = final_int8_zlib_roundtrip_exact" in lines
    assert not any(line.startswith(("  status =", "  reason =", "  provenance =")) for line in lines)
    assert "  provenance.format = training-log" in lines and f"  provenance.imported_from = {log}" in lines
    assert "  eval line 4: final_int8_zlib_roundtrip_exact val_bpb 1.2345 (standard, quantized, int8)" in lines
    assert lines[-1] == "  artifact model: /runs/a/model.ptz (9100000 bytes, code 250008, sha256 ab12)"


def test_show_prints_a_result_to_twelve_significant_digits_not_the_listings_eight(tmp_path: Path, capsys) -> None:
    log = tmp_path / "long.log"
    log.write_text(LOG.replace("val_bpb:1.2345", "val_bpb:1.234567891234"))
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with open_store(url) as st:
        (rep,) = import_paths(st, [log])
    show(rep.uids[0], store=url)
    lines = capsys.readouterr().out.splitlines()
    assert "  q_val_bpb = 1.23456789123" in lines  # 1.2345679 at the listings' 8 digits


def test_show_prints_the_config_flattened_and_a_repeated_eval(tmp_path: Path, capsys) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    with open_store(url) as st:
        st.create_or_get_sweep("s", {})
        st.start_trial("s", "t1", 3, 0, {"model": {"crawler_loops": 4}, "train": {"seed": 7}}, 7, "node-1",
                       started_at=1_700_000_000.0)
        st.add_named_evals("t1", 0, [{"seq": 0, "name": "final_x", "mode": "sliding", "weights": "raw",
                                      "quant": None, "step": 5, "val_loss": 2.0, "val_bpb": 1.18131234567,
                                      "eval_ms": None, "line": 9, "repeats": "final_y"}])
        st.finish_trial("t1", 0, "diverged", "loss was nan", {"val_bpb": None, "steps": 40, "c_steps": 40,
                                                              "n_steps": 0, "provenance": {"config": {"x": 1},
                                                                                           "host": "h"}},
                        ended_at=1_700_000_360.0)
    show("t1", store=url)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("sweep s  number 3  seed 7  config " + lines[0].split()[-1])
    assert lines[1:4] == ["config:", "  model.crawler_loops = 4", "  train.seed = 7"]
    assert lines[4] == "attempt 0: diverged  node node-1  2023-11-14 22:13 -> 2023-11-14 22:19  reason: loss was nan"
    assert "  val_bpb = -" in lines and "  provenance.host = h" in lines
    # the C-step (crawl) and N-step counts are named so, not read as a count of steps beside `steps`
    assert {"  steps = 40", "  C-steps = 40", "  N-steps = 0"} <= set(lines)
    assert not any(line.startswith(("  c_steps", "  n_steps")) for line in lines)
    assert not any("provenance.config" in line for line in lines)  # the config is shown once, above
    assert "  eval line 9: final_x val_bpb 1.18131234567 (sliding, raw, repeats final_y)" in lines  # exact


def test_show_json_is_the_stored_trial(filled, capsys) -> None:
    url, uid, _ = filled
    show(uid, store=url, as_json=True)
    data = json.loads(capsys.readouterr().out)
    assert data["trial_uid"] == uid and data["attempts"][0]["result"]["q_val_bpb"] == 1.2345
    assert isinstance(data["created_at"], str)  # times as text


def test_looking_into_a_missing_store_never_creates_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'none.db'}"
    for call in (lambda: show("t", store=url), lambda: export(["a"], tmp_path / "o", fmt="csv", store=url)):
        with pytest.raises(StoreError):
            call()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_show_refuses_an_unknown_trial(filled) -> None:
    url, _, _ = filled
    with pytest.raises(StoreError) as err:
        show("nope", store=url)
    assert str(err.value) == f"no trial 'nope' in {url}"


def test_export_writes_one_csv_a_table_and_says_how_many_rows(filled, tmp_path: Path, capsys) -> None:
    url, uid, _ = filled
    out = tmp_path / "out" / "deeper"
    export(["a"], out, fmt="csv", store=url)
    names = ["trials", "steps", "evals", "named_evals", "probes", "artifacts"]
    rows = {"trials": 1, "steps": 2, "evals": 2, "named_evals": 1, "probes": 0, "artifacts": 1}
    assert capsys.readouterr().out.splitlines() == [f"wrote {out / f'a_{n}.csv'} ({rows[n]} rows)" for n in names]
    assert sorted(os.listdir(out)) == sorted(f"a_{n}.csv" for n in names)  # no temp file left
    trials = pd.read_csv(out / "a_trials.csv")
    assert trials.loc[0, "trial_uid"] == uid and trials.loc[0, "bpb"] == 1.2345
    cols = list(trials.columns)
    lead = cols[cols.index("source") + 1:cols.index("source") + 8]
    assert lead == ["bpb", "bpb_metric", "eval_mode", "width", "params", "quant_gap", "quant_gap_mode"]
    assert pd.read_csv(out / "a_steps.csv")["train_loss"].tolist() == [5.0, 4.5]


def test_csv_writes_whole_number_columns_without_a_decimal_point() -> None:
    frame = pd.DataFrame({"width": [64.0, None], "params": [164749.0, 62925.0], "bpb": [2.0, 2.25],
                          "label": ["a", "b"]})
    assert _csv_ready(frame).to_csv(index=False).splitlines() == [
        "width,params,bpb,label", "64,164749,2.0,a", ",62925,2.25,b"]
    assert frame["width"].dtype == float  # the caller's frame is left as it was


def test_export_writes_only_the_named_sweeps_rows_into_an_existing_folder(filled, tmp_path: Path) -> None:
    url, uid, _ = filled
    b = import_sweep_b(url, tmp_path)
    with open_store(url) as st:
        st.add_artifact(b, 0, "/runs/b/model.ptz", 1, code_bytes=1, sha256="cd")
        st.add_probes(b, 0, [{"step": 1, "mode": "C", "probe_loss": 3.0}])
        st.add_probes(uid, 0, [{"step": 1, "mode": "C", "probe_loss": 2.0}])
    out = tmp_path / "o"
    out.mkdir()
    export(["a"], out, fmt="csv", store=url)
    export(["a"], out, fmt="csv", store=url)  # again, into the folder it made: replaced, not refused
    for table in ("trials", "steps", "evals", "named_evals", "probes", "artifacts"):
        frame = pd.read_csv(out / f"a_{table}.csv")
        assert "Unnamed: 0" not in frame.columns, table  # no index column
        assert set(frame["trial_uid"]) == {uid}, table


def test_parquet_tables_carry_no_index_column(filled, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    url, _, _ = filled
    export(["a"], tmp_path / "p", fmt="parquet", store=url)
    for path in (tmp_path / "p").iterdir():
        assert not any(name.startswith("__index_level") for name in pq.read_schema(path).names), path.name


def test_ls_of_a_sweep_lists_only_its_trials(filled, tmp_path: Path, capsys) -> None:
    url, uid, _ = filled
    import_sweep_b(url, tmp_path)
    ls("a", store=url)
    rows = capsys.readouterr().out.splitlines()[1:]
    assert [r.split()[1] for r in rows] == [uid]


def test_export_of_several_sweeps_is_named_export_and_parquet_by_default(filled, tmp_path: Path, capsys) -> None:
    url, _, _ = filled
    import_sweep_b(url, tmp_path)
    export(["a", "b"], tmp_path / "x", store=url)
    assert sorted(os.listdir(tmp_path / "x"))[0] == "export_artifacts.parquet"
    trials = pd.read_parquet(tmp_path / "x" / "export_trials.parquet")
    assert sorted(trials["sweep"]) == ["a", "b"]
    assert capsys.readouterr().out.count("wrote ") == 6


def test_an_export_of_one_sweep_named_twice_is_named_after_that_sweep(filled, tmp_path: Path, capsys) -> None:
    url, uid, _ = filled
    export(["a", "a"], tmp_path / "x", fmt="csv", store=url)
    names = ["trials", "steps", "evals", "named_evals", "probes", "artifacts"]
    assert sorted(os.listdir(tmp_path / "x")) == sorted(f"a_{n}.csv" for n in names)
    assert pd.read_csv(tmp_path / "x" / "a_trials.csv")["trial_uid"].tolist() == [uid]
    assert capsys.readouterr().out.count("wrote ") == 6


@pytest.mark.parametrize(("name", "stem"), [("x/y", "x_y"), ("../up", "up"), ("a b:c", "a_b_c"), ("//", "export"),
                                           ("run.v2-final", "run.v2-final"), ("Xy/Run.V2", "Xy_Run.V2")])
def test_an_export_file_is_named_after_its_sweep_with_only_safe_characters(tmp_path: Path, name: str,
                                                                          stem: str) -> None:
    """A sweep name is free text (`clowncar import --sweep x/y`): the file stays in --out, whatever the name."""
    log = tmp_path / "a.log"
    log.write_text(LOG)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with open_store(url) as st:
        import_paths(st, [log], sweep=name)
    export([name], tmp_path / "out", fmt="csv", store=url)
    assert sorted(os.listdir(tmp_path / "out")) == sorted(
        f"{stem}_{t}.csv" for t in ("trials", "steps", "evals", "named_evals", "probes", "artifacts"))


def test_export_refuses_a_bad_format_and_an_unknown_sweep_before_writing(filled, tmp_path: Path) -> None:
    url, _, _ = filled
    with pytest.raises(StoreError) as err:
        export(["a"], tmp_path / "o", fmt="xlsx", store=url)
    assert str(err.value) == "--format must be parquet or csv, not 'xlsx'"
    with pytest.raises(StoreError) as err:
        export(["a", "zzz"], tmp_path / "o", fmt="csv", store=url)
    assert str(err.value) == f"no sweep named 'zzz' in {url}"
    with pytest.raises(StoreError) as err:  # a near name is offered
        export(["a_"], tmp_path / "o", fmt="csv", store=url)
    assert str(err.value) == f"no sweep named 'a_' in {url} (did you mean a?)"
    assert not (tmp_path / "o").exists()


def test_export_into_a_file_is_a_one_line_error(filled, tmp_path: Path) -> None:
    url, _, _ = filled
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ClownCarError) as err:
        export(["a"], blocker / "out", fmt="csv", store=url)
    assert str(err.value) == (f"cannot create the export directory {blocker / 'out'}: {blocker} is a regular file, "
                              "not a directory")
    with pytest.raises(StoreError) as err:
        export(["a"], blocker, fmt="csv", store=url)
    assert str(err.value) == f"--out {blocker} exists and is not a directory"


def test_export_refuses_an_unusable_out_before_reading_the_store(tmp_path: Path, monkeypatch) -> None:
    """The store is not opened (here: it does not exist, which would be its own error) for an --out under a file."""
    from clowncar.store import commands as store_commands

    (tmp_path / "afile").write_text("x")
    opened: list[str] = []
    monkeypatch.setattr("clowncar.store.open_store", lambda *a, **kw: opened.append("store"))
    with pytest.raises(ClownCarError, match=r"^cannot create the export directory .*afile/sub: .*afile is a regular "
                                            r"file, not a directory$"):
        store_commands.export(["a"], tmp_path / "afile" / "sub", fmt="csv",
                              store=f"sqlite:///{tmp_path / 'none.db'}")
    assert opened == [] and sorted(os.listdir(tmp_path)) == ["afile"]


def test_an_export_that_fails_after_making_its_out_takes_the_new_folders_back(tmp_path: Path) -> None:
    with pytest.raises(ClownCarError, match="no store at"):
        export(["a"], tmp_path / "new" / "out", fmt="csv", store=f"sqlite:///{tmp_path / 'none.db'}")
    assert os.listdir(tmp_path) == []


def test_a_failed_write_leaves_no_partial_file(filled, tmp_path: Path, monkeypatch) -> None:
    url, _, _ = filled
    out = tmp_path / "o"

    def full_disk(self, path, **kwargs) -> None:
        Path(path).write_text("half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", full_disk)
    with pytest.raises(StoreError) as err:
        export(["a"], out, fmt="csv", store=url)
    assert str(err.value) == f"cannot write {out / 'a_trials.csv'}: No space left on device"
    assert not out.exists()  # no partial file, and the folder the export made for it taken back


def test_a_write_error_without_a_message_still_names_the_file(filled, tmp_path: Path, monkeypatch) -> None:
    url, _, _ = filled
    monkeypatch.setattr(pd.DataFrame, "to_csv", lambda self, path, **kw: (_ for _ in ()).throw(OSError("odd")))
    with pytest.raises(StoreError, match=r"a_trials\.csv: odd$"):
        export(["a"], tmp_path / "o", fmt="csv", store=url)


def test_the_temp_file_is_hidden_beside_the_final_one(filled, tmp_path: Path, monkeypatch) -> None:
    url, _, _ = filled
    seen: list[Path] = []
    real = pd.DataFrame.to_csv

    def spy(self, path, **kwargs):
        seen.append(Path(path))
        return real(self, path, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_csv", spy)
    export(["a"], tmp_path / "o", fmt="csv", store=url)
    assert seen[0] == tmp_path / "o" / f".a_trials.csv.tmp-{os.getpid()}"


def test_mixed_columns_become_text_for_parquet_and_clean_ones_stay() -> None:
    frame = pd.DataFrame({
        "dim": [512, "auto", None],
        "spec": [{"a": 1}, None, float("nan")],
        "names": ["x", "y", None],
        "n": [1, 2, 3],
        "lists": [[1, 2], [3], None],
    })
    out = _parquet_ready(frame)
    def text(col: str) -> list[str | None]:
        return [None if pd.isna(v) else v for v in out[col]]

    assert text("dim") == ["512", "auto", None]
    assert text("spec") == ['{"a": 1}', None, None]
    assert text("lists") == ["[1, 2]", "[3]", None]
    assert out["names"].equals(frame["names"]) and out["n"].dtype == np.int64
    assert frame["dim"].tolist() == [512, "auto", None]  # the caller's frame is left as it was


def test_an_object_column_of_one_type_and_missing_values_is_left_as_it_is() -> None:
    frame = pd.DataFrame({"ints": pd.Series([1, 2, None], dtype=object),
                          "floats": pd.Series([1.5, float("nan"), 2.5], dtype=object)})
    out = _parquet_ready(frame)
    assert out["ints"].tolist() == [1, 2, None] and out["floats"].tolist()[0] == 1.5
    assert isinstance(out["floats"].tolist()[2], float)
