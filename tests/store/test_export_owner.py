"""`clowncar store export` into a folder that already holds an export (walk 6, F13): the files of an export of the
same sweeps are replaced as before, the files of an export of other sweeps (or files under the export's names
that no export wrote) only with --overwrite; and `--help` names the files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from clowncar.store import open_store

TABLES = ("trials", "steps", "evals", "named_evals", "probes", "artifacts")


@pytest.fixture
def url(tmp_path: Path) -> str:
    """A store with sweeps a, b, c, d and x/y, x_y (names that make the same file name), one finished trial each."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with open_store(url) as st:
        for n, sweep in enumerate(["a", "b", "c", "d", "x/y", "x_y"]):
            st.create_or_get_sweep(sweep, {"space": {}})
            st.start_trial(sweep, f"t{n}", 0, 0, {}, 1337, "node-1")
            st.finish_trial(f"t{n}", 0, "ok", None, {"status": "ok", "val_bpb": 1.0 + n})
    return url


def _export(cli, url: str, out: Path, *sweeps: str, extra: tuple[str, ...] = ()) -> tuple[int, str, str]:
    args = [arg for s in sweeps for arg in ("--sweep", s)]
    return cli("store", "export", *args, "--format", "csv", "--out", str(out), "--store", url, *extra)


def _held(path: Path) -> list[str]:
    return sorted(pd.read_csv(path)["sweep"])


def test_an_export_of_other_sweeps_is_refused_in_one_line_unless_overwrite(cli, url: str, tmp_path: Path) -> None:
    out = tmp_path / "exports"
    assert _export(cli, url, out, "a", "b")[0] == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    code, _, err = _export(cli, url, out, "c", "d")
    assert code == 2 and err.strip().count("\n") == 0, err
    assert (f"--out {out} holds the export of a, b (export_trials.csv and the rest): choose another folder, or pass "
            "--overwrite to replace it") in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing written
    code, stdout, err = _export(cli, url, out, "c", "d", extra=("--overwrite",))
    assert code == 0, err
    assert stdout.splitlines()[-1] == f"replaced the export of a, b (export_trials.csv and the rest) in {out} (--overwrite)"
    assert _held(out / "export_trials.csv") == ["c", "d"]


def test_the_same_sweeps_or_more_of_them_replace_their_own_export_without_asking(cli, url: str, tmp_path: Path
                                                                                 ) -> None:
    out = tmp_path / "exports"
    assert _export(cli, url, out, "a", "b")[0] == 0
    code, stdout, err = _export(cli, url, out, "b", "a")  # again, in another order
    assert code == 0 and "replaced" not in stdout, err
    code, stdout, err = _export(cli, url, out, "a", "b", "c")  # its files hold every row the earlier ones held
    assert code == 0 and "replaced" not in stdout, err
    assert _held(out / "export_trials.csv") == ["a", "b", "c"]


def test_a_sweep_whose_file_name_is_another_sweeps_is_refused(cli, url: str, tmp_path: Path) -> None:
    out = tmp_path / "exports"
    assert _export(cli, url, out, "x/y")[0] == 0
    code, _, err = _export(cli, url, out, "x_y")
    assert code == 2 and "holds the export of x/y (x_y_trials.csv and the rest)" in err, err
    assert _held(out / "x_y_trials.csv") == ["x/y"]


def test_files_under_the_export_names_that_no_export_wrote_are_refused_unless_overwrite(cli, url: str,
                                                                                         tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "a_trials.csv").write_text("config,bpb\nmine,1.0\n")  # a reviewer's own table, no sweep column
    code, _, err = _export(cli, url, out, "a")
    assert code == 2 and f"--out {out} holds a_trials.csv, which no clowncar export wrote: choose another" in err
    assert (out / "a_trials.csv").read_text() == "config,bpb\nmine,1.0\n"
    (out / "a_trials.csv").unlink()
    (out / "a_steps.csv").write_text("step\n1\n")
    code, _, err = _export(cli, url, out, "a")
    assert code == 2 and "holds a_steps.csv, an export without its a_trials.csv (no telling whose)" in err
    code, stdout, err = _export(cli, url, out, "a", extra=("--overwrite",))
    assert code == 0 and stdout.splitlines()[-1].startswith("replaced a_steps.csv, an export without"), err
    assert sorted(p.name for p in out.iterdir()) == sorted(f"a_{t}.csv" for t in TABLES)


def test_a_parquet_file_of_the_export_name_that_is_no_table_is_refused(cli, url: str, tmp_path: Path) -> None:
    out = tmp_path / "p"
    out.mkdir()
    (out / "export_trials.parquet").write_text("not parquet")
    code, _, err = cli("store", "export", "--sweep", "a", "--sweep", "b", "--out", str(out), "--store", url)
    assert code == 2 and "holds export_trials.parquet, which no clowncar export wrote" in err, err
    assert cli("store", "export", "--sweep", "a", "--sweep", "b", "--out", str(out), "--store", url)[0] == 2
    assert cli("store", "export", "--sweep", "c", "--out", str(out), "--store", url)[0] == 0  # c_*: another name


def test_help_names_the_files_an_export_writes(cli) -> None:
    code, out, _ = cli("store", "export", "--help")
    text = " ".join(out.replace("│", " ").split())
    assert code == 0
    assert "SWEEP_trials.parquet, SWEEP_steps.parquet, SWEEP_evals.parquet" in text
    assert "export_trials.parquet ... export_artifacts.parquet for several" in text and "--overwrite" in text
