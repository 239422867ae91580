"""`clowncar store ls | show | export` as a user runs them."""

from __future__ import annotations

import pandas as pd

from clowncar.store import open_store


def _seed(url: str) -> None:
    with open_store(url) as st:
        st.create_or_get_sweep("demo", {"space": {}})
        for n in range(2):
            st.start_trial("demo", f"demo-{n}", n, 0, {"model": {"model_dim": "auto" if n else 512}}, n, "node-1")
            st.add_steps(f"demo-{n}", 0, [{"step": i, "kind": "CN"[i % 2], "train_loss": 3.0 / i} for i in range(1, 6)])
            st.add_evals(f"demo-{n}", 0, [{"step": 5, "val_loss": 2.0, "val_bpb": 1.3 + n}])
            st.finish_trial(f"demo-{n}", 0, "ok", None, {"status": "ok", "val_bpb": 1.3 + n,
                                                         "quant_schemes": {"flat": "int8"}})
        st.add_artifact("demo-0", 0, "runs/demo-0/model.ptz", 1234, 56, "ef" * 32)


def test_ls_show_and_export_read_what_the_store_holds(run_cli, cli, tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    _seed(url)
    ls = run_cli("store", "ls", env={"CLOWNCAR_STORE": url})  # once as a separate process, as a user would
    assert ls.returncode == 0, ls.stderr
    assert "demo" in ls.stdout and "1.3" in ls.stdout and "run" in ls.stdout
    code, out, _ = cli("store", "ls", "demo", "--store", url)
    assert code == 0 and "demo-1" in out and "2.3" in out
    code, out, err = cli("store", "show", "demo-0", "--store", url)
    assert code == 0, err
    assert "model.model_dim = 512" in out and "5 steps, 1 evals" in out
    assert "artifact model: runs/demo-0/model.ptz (1234 bytes" in out
    for fmt in ("parquet", "csv"):
        out = tmp_path / fmt
        code, _, err = cli("store", "export", "--sweep", "demo", "--format", fmt, "--out", str(out), "--store", url)
        assert code == 0, err
        read = pd.read_parquet if fmt == "parquet" else pd.read_csv
        trials_back = read(out / f"demo_trials.{fmt}")
        assert list(trials_back["val_bpb"]) == [1.3, 2.3]
        assert [str(v) for v in trials_back["model.model_dim"]] == ["512", "auto"]
        assert len(read(out / f"demo_steps.{fmt}")) == 10 and len(read(out / f"demo_evals.{fmt}")) == 2
        assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_store_commands_refuse_bad_input_with_one_line(run_cli, cli, tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    missing = run_cli("store", "ls", "--store", f"sqlite:///{tmp_path / 'none.db'}")
    assert missing.returncode == 2 and "no store at" in missing.stderr
    assert not (tmp_path / "none.db").exists()  # a read command creates nothing
    _seed(url)
    for args, needle in ((["show", "nope"], "no trial 'nope'"), (["ls", "nope"], "no sweep named 'nope'"),
                         (["export", "--sweep", "demo", "--format", "xlsx", "--out", str(tmp_path / "x")],
                          "--format must be parquet or csv"),
                         (["export", "--sweep", "nope", "--out", str(tmp_path / "x")], "no sweep named 'nope'")):
        code, _, err = cli("store", *args, "--store", url)
        assert code == 2 and needle in err and err.strip().count("\n") == 0, err


def test_a_sqlite_url_with_an_unknown_query_argument_is_refused_in_one_line(run_cli, tmp_path):
    db = tmp_path / "cli.db"
    _seed(f"sqlite:///{db}")
    r = run_cli("store", "ls", "--store", f"sqlite:///{db}?foo=1")
    assert r.returncode == 2 and r.stdout == "", r.stdout
    assert r.stderr == (f"clowncar: error: cannot use store URL sqlite:///{db}?foo=1: query argument(s) 'foo' are "
                        "not accepted by the pysqlite driver (SQLite URI arguments need uri=true in the URL)\n")
