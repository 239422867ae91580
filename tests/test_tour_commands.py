"""`clowncar demo` and `clowncar trial run` in this process, with the parts that would train or start Ray
replaced: what each hands on, what it prints, and what it refuses. (The real demo runs in scripts/demo.sh and
test_demo_command.py; a real trial in tests/worker/test_trial.py; `clowncar dashboard` in
test_dashboard_command.py.)"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
import typer

from clowncar import cli, dashboard, demo
from clowncar.errors import ClownCarError, RunFailed
from clowncar.orchestrator.spec import load_spec
from clowncar.store import open_store
from clowncar.worker import commands as trial_commands


@pytest.fixture
def tour(settings_env: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    """demo() with its data build, sweep and report replaced by recorders."""
    import clowncar.data.demo as data_demo
    import clowncar.orchestrator.commands as commands

    calls: dict[str, list[Any]] = {"data": [], "run": [], "report": []}
    monkeypatch.setattr(data_demo, "run_demo", lambda root, log: calls["data"].append(root) or (None, True))
    monkeypatch.setattr(commands, "run_spec", lambda spec, store, address, cpus, gpus, quiet, resume:
                        calls["run"].append((spec, store, address, cpus, gpus, quiet, resume)))
    monkeypatch.setattr(demo, "_write_report", lambda sweep, url, out: calls["report"].append((sweep, url, out)))
    return calls


def test_demo_builds_data_runs_the_smoke_sweep_and_writes_its_report(tour, settings_env: Path, capsys) -> None:
    demo.demo(spec_path=None, signals=False, name="tour-1", store=None, num_cpus=2, quiet=True)
    assert tour["data"] == [settings_env / "data"]
    ((spec, store, address, cpus, gpus, quiet, resume),) = tour["run"]
    smoke = load_spec(demo.SMOKE)
    assert spec.name == "tour-1" and spec.to_dict() == {**smoke.to_dict(), "name": "tour-1"}
    assert (store, address, cpus, gpus, quiet, resume) == (None, "", 2, None, True, False)  # embedded Ray
    url = f"sqlite:///{settings_env / 'runs' / 'clowncar.db'}"
    assert tour["report"] == [("tour-1", url, settings_env / "runs" / "reports" / "tour-1")]
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"demo data reused: {settings_env / 'data'} (") and out[0].endswith("s)")
    assert out[1] == f"sweep tour-1: {smoke.max_trials()} trials, store {url}"
    assert out[3] == f"report: {settings_env / 'runs' / 'reports' / 'tour-1' / 'report.html'} (also report.md, " \
                     "report.json)"
    assert out[4].endswith(" sweep status tour-1")
    assert out[5].startswith("live dashboard on the same store: ")


def test_demo_signals_runs_the_signal_sweep_under_a_timestamped_name(tour, monkeypatch, capsys) -> None:
    monkeypatch.setattr(demo.time, "strftime", lambda fmt: "20261205-060000" if fmt == "%Y%m%d-%H%M%S" else fmt)
    demo.demo(spec_path=None, signals=True, name=None, store="sqlite:///x.db", num_cpus=None, quiet=False)
    ((spec, store, *_),) = tour["run"]
    signals = load_spec(demo.SIGNALS)
    assert spec.name == f"{signals.name}-20261205-060000" and store == "sqlite:///x.db"
    assert spec.max_trials() == signals.max_trials()
    assert tour["report"][0][1] == "sqlite:///x.db"


def test_demo_runs_a_given_spec_and_masks_the_store_password(tour, tmp_path: Path, capsys) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(demo.SMOKE.read_text().replace("name: smoke", "name: mine"))
    demo.demo(spec_path=path, signals=False, name=None, store="postgresql+psycopg://u:s3cret@h/db", num_cpus=None,
              quiet=False)
    out = capsys.readouterr().out
    assert "s3cret" not in out and "store postgresql+psycopg://u:***@h/db" in out
    assert tour["run"][0][0].name.startswith("mine-")


def test_demo_defaults_run_the_smoke_sweep_with_live_progress(tour, capsys) -> None:
    demo.demo(name="d")
    ((spec, store, address, cpus, gpus, quiet, resume),) = tour["run"]
    assert spec.to_dict() == {**load_spec(demo.SMOKE).to_dict(), "name": "d"}
    assert (store, address, cpus, gpus, quiet, resume) == (None, "", None, None, False, False)


def test_demo_times_itself_and_passes_the_data_log_on(tour, monkeypatch, capsys) -> None:
    import clowncar.data.demo as data_demo

    ticks = iter([100.0, 103.25, 190.6])
    monkeypatch.setattr(demo.time, "time", lambda: next(ticks))

    def run_demo(root, log):
        log("training tokenizer: ...")
        return None, False

    monkeypatch.setattr(data_demo, "run_demo", run_demo)
    demo.demo(name="d", quiet=True)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "training tokenizer: ..."
    assert out[1].startswith("demo data built: ") and out[1].endswith(" (3.2s)")
    assert out[3] == "demo finished in 91s"


def test_an_interrupted_demo_says_how_to_finish_the_sweep_and_then_write_its_report(tour, settings_env: Path,
                                                                                     monkeypatch) -> None:
    import clowncar.orchestrator.commands as commands

    def interrupted(spec, *args: Any, **kwargs: Any) -> None:
        raise commands.SweepInterrupted(f"sweep {spec.name} interrupted: its running trials were stopped; "
                                        f"continue it with `clowncar sweep resume {spec.name}`")

    monkeypatch.setattr(commands, "run_spec", interrupted)
    monkeypatch.setattr(demo, "_command", lambda: "clowncar")
    with pytest.raises(commands.SweepInterrupted) as err:
        demo.demo(name="d", quiet=True)
    assert str(err.value) == ("sweep d interrupted: its running trials were stopped; continue it with `clowncar "
                              f"sweep resume d`, then `clowncar analyze d --out {settings_env / 'runs' / 'reports' / 'd'}` "
                              "writes the demo's report")
    assert err.value.exit_code == 130 and tour["report"] == []


def test_an_interrupted_demo_that_ran_nothing_is_told_to_start_again_without_a_report_line(tour, monkeypatch) -> None:
    import clowncar.orchestrator.commands as commands

    line = "sweep d interrupted before it started: nothing ran; start it again with the same command"

    def interrupted(spec, *args: Any, **kwargs: Any) -> None:
        raise commands.SweepInterrupted(line)

    monkeypatch.setattr(commands, "run_spec", interrupted)
    with pytest.raises(commands.SweepInterrupted) as err:
        demo.demo(name="d", quiet=True)
    assert str(err.value) == line


def test_a_demo_that_did_not_start_names_the_generated_name_to_start_it_again(tour, monkeypatch) -> None:
    """Run again as it was, a demo makes a new time-stamped sweep: its line names --name, which reaches this one."""
    import clowncar.orchestrator.commands as commands
    from clowncar.orchestrator.start import StartFailed

    def failed(spec, *args: Any, **kwargs: Any) -> None:
        raise StartFailed(f"sweep {spec.name} did not start: NameError: x; it is marked failed, and the same "
                          "command starts it again")

    monkeypatch.setattr(commands, "run_spec", failed)
    monkeypatch.setattr(demo.time, "strftime", lambda fmt: "20261206-225738")
    with pytest.raises(StartFailed) as err:
        demo.demo(name=None, quiet=True)
    assert str(err.value) == ("sweep smoke-20261206-225738 did not start: NameError: x; it is marked failed, and the "
                              "same command plus `--name smoke-20261206-225738` starts it again")
    assert err.value.exit_code == 1
    with pytest.raises(StartFailed) as err:
        demo.demo(name="d", quiet=True)  # named: the same command is already the one
    assert str(err.value).endswith("it is marked failed, and the same command starts it again")


def test_an_interrupted_demo_with_a_generated_name_that_ran_nothing_names_it_to_start_again(tour, monkeypatch) -> None:
    import clowncar.orchestrator.commands as commands

    def interrupted(spec, *args: Any, **kwargs: Any) -> None:
        raise commands.SweepInterrupted(f"sweep {spec.name} interrupted before it started: nothing ran; start it "
                                        "again with the same command")

    monkeypatch.setattr(commands, "run_spec", interrupted)
    monkeypatch.setattr(demo.time, "strftime", lambda fmt: "20261206-225738")
    with pytest.raises(commands.SweepInterrupted) as err:
        demo.demo(name=None, quiet=True)
    assert str(err.value) == ("sweep smoke-20261206-225738 interrupted before it started: nothing ran; start it again "
                              "with the same command plus `--name smoke-20261206-225738`")


def test_demo_without_the_data_package_says_so(tour, monkeypatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "clowncar.data.demo", None)
    with pytest.raises(ClownCarError) as err:
        demo.demo(name="d")
    assert str(err.value) == "the demo data builder (clowncar.data) is not installed in this checkout"


def test_the_demo_report_is_written_from_the_store(legacy_runs: Path, tmp_path: Path, capsys) -> None:
    from clowncar.store.importers import import_paths

    url = f"sqlite:///{tmp_path / 'store.db'}"
    with open_store(url) as st:
        import_paths(st, [legacy_runs / "cadence_tsv" / "clean_cadence2.tsv"])
    demo._write_report("clean_cadence2", url, tmp_path / "rep")
    assert sorted(p.name for p in (tmp_path / "rep").iterdir()) == ["report.html", "report.json", "report.md"]
    assert json.loads((tmp_path / "rep" / "report.json").read_text())["sweeps"] == ["clean_cadence2"]
    assert capsys.readouterr().out.startswith("sweeps: clean_cadence2 | runs: 1 | ")


def test_demo_refuses_signals_and_a_spec_together(tour, tmp_path: Path) -> None:
    with pytest.raises(ClownCarError) as err:
        demo.demo(spec_path=tmp_path / "x.yaml", signals=True, name=None, store=None, num_cpus=None, quiet=False)
    assert str(err.value) == "give --signals or --spec, not both"
    assert tour == {"data": [], "run": [], "report": []}


def test_demo_says_when_it_built_the_data(tour, monkeypatch, capsys) -> None:
    import clowncar.data.demo as data_demo

    monkeypatch.setattr(data_demo, "run_demo", lambda root, log: (None, False))
    demo.demo(spec_path=None, signals=False, name="n", store=None, num_cpus=None, quiet=True)
    assert capsys.readouterr().out.startswith("demo data built: ")


def test_the_smoke_and_signal_specs_ship_beside_the_package() -> None:
    assert demo.SMOKE.name == "smoke.yaml" and demo.SMOKE.is_file()
    assert demo.SMOKE.with_name("signals.yaml") == demo.SIGNALS and demo.SIGNALS.is_file()


def test_clowncar_is_called_by_name_when_it_is_on_the_path(monkeypatch, tmp_path: Path) -> None:
    import shutil

    bindir = tmp_path / "venv" / "bin"
    bindir.mkdir(parents=True)
    (bindir / "clowncar").write_text("")
    monkeypatch.setattr(sys, "executable", str(bindir / "python"))
    monkeypatch.setattr(shutil, "which", lambda name: str(bindir / "clowncar") if name == "clowncar" else None)
    assert demo._command() == "clowncar"
    monkeypatch.setattr(shutil, "which", lambda name: None)  # the venv is not activated
    monkeypatch.chdir(tmp_path)
    assert demo._command() == os.path.join("venv", "bin", "clowncar")  # relative to where the user stands
    monkeypatch.chdir(tmp_path / "venv" / "bin")
    assert demo._command() == "clowncar"  # ./clowncar relative is just its name here
    elsewhere = tmp_path / "other"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert demo._command() == str(bindir / "clowncar")
    monkeypatch.setattr(sys, "executable", str(tmp_path / "none" / "python"))
    assert demo._command() == "clowncar"  # no script beside the interpreter


def test_the_dashboard_command_never_carries_a_password(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(demo, "_command", lambda: "clowncar")
    monkeypatch.chdir(tmp_path)
    assert demo.dashboard_command("sqlite:///runs/c.db") == (
        f"clowncar dashboard --store sqlite:///{tmp_path / 'runs' / 'c.db'}, then open http://127.0.0.1:8080/")
    assert demo.dashboard_command("sqlite:////abs/c.db") == (
        "clowncar dashboard --store sqlite:////abs/c.db, then open http://127.0.0.1:8080/")
    assert demo.dashboard_command("postgresql+psycopg://u@h/db") == (
        "clowncar dashboard --store postgresql+psycopg://u@h/db, then open http://127.0.0.1:8080/")
    for secret in ("postgresql+psycopg://u:pw@h/db", "postgresql+psycopg://u@h/db?password=pw"):
        text = demo.dashboard_command(secret)
        assert "pw" not in text.replace("pwd", "")
        assert text.startswith("clowncar dashboard (with CLOWNCAR_STORE set to ") and text.endswith(
            "), then open http://127.0.0.1:8080/")


def test_demo_help_gives_the_default_name_and_cpus_as_the_demo_picks_them() -> None:
    import typer.main

    command = typer.main.get_command(cli.app).commands["demo"]  # type: ignore[attr-defined]
    helps = {p.opts[0]: p.help for p in command.params if p.opts}
    assert helps["--name"] == "Sweep name (default: the spec's name and the time, e.g. smoke-20261206-225911)"
    assert helps["--num-cpus"] == "CPUs for embedded Ray to offer (default: all)"


def test_demo_is_a_top_level_command() -> None:
    app = typer.Typer()
    demo.register(app)
    dashboard.register(app)
    assert [(c.name, c.callback) for c in app.registered_commands] == [("demo", demo.demo),
                                                                        ("dashboard", dashboard.dashboard)]


# --- clowncar trial run ------------------------------------------------------------------------------------------

@pytest.fixture
def trial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """`trial run` with the trial replaced: `outcome` sets the exit code and the result.json it leaves."""
    import clowncar.worker.run as run

    state: dict[str, Any] = {"code": 0, "result": None, "seen": [], "interrupt": False}

    def fake(cfg: Any, out: Path) -> int:
        state["seen"].append((cfg, out))
        out.mkdir(parents=True, exist_ok=True)
        if state["result"] is not None:
            (out / "result.json").write_text(json.dumps(state["result"]))
        if state["interrupt"]:  # Ctrl-C or SIGTERM half-way: the log and events are written, the artifact too
            for name in ("train.log", "events.jsonl", "model.ptz", ".result.json.tmp-1"):
                (out / name).write_text("half")
            raise KeyboardInterrupt
        return state["code"]

    monkeypatch.setattr(run, "run_trial", fake)
    config = tmp_path / "c.yaml"
    config.write_text("model:\n  crawler_loops: 3\n")
    state["config"] = config
    return state


def test_a_trial_that_finishes_returns_quietly(trial, tmp_path: Path) -> None:
    from clowncar.config_load import load_config

    trial_commands.run(trial["config"], tmp_path / "out", preset="tiny-cpu", set_=["train.seed=9"])
    ((cfg, out),) = trial["seen"]
    assert out == tmp_path / "out" and cfg.model.crawler_loops == 3 and cfg.train.seed == 9
    expected = load_config(trial["config"], preset="tiny-cpu", overrides=["train.seed=9"])
    assert cfg.content_hash() == expected.content_hash()  # the preset under the file, the overrides on top
    assert cfg.content_hash() != load_config(trial["config"], overrides=["train.seed=9"]).content_hash()


def test_a_preset_alone_is_a_trial_and_neither_file_nor_preset_is_refused(trial, tmp_path: Path) -> None:
    from clowncar.config_load import load_config
    from clowncar.errors import ConfigError

    trial_commands.run(None, tmp_path / "out", preset="tiny-cpu", set_=["train.iterations=7"])
    ((cfg, _),) = trial["seen"]
    assert cfg.content_hash() == load_config(None, "tiny-cpu", ["train.iterations=7"]).content_hash()
    with pytest.raises(ConfigError) as err:
        trial_commands.run(None, tmp_path / "out", preset=None, set_=["train.iterations=7"])
    assert str(err.value) == "give a trial config file or --preset NAME (`clowncar config presets` lists them)"
    with pytest.raises(SystemExit) as ended:  # --out is a required option: click refuses its absence
        cli.main(["trial", "run", str(trial["config"])])
    assert ended.value.code == 2
    assert len(trial["seen"]) == 1  # neither refusal reached the trial


@pytest.mark.parametrize(("code", "status"), [(1, "error"), (3, "diverged"), (4, "oom")])
def test_a_failed_trial_exits_with_its_code_and_names_its_log(trial, tmp_path: Path, code: int, status: str) -> None:
    trial["code"], trial["result"] = code, {"status": status, "reason": "loss was nan at step 12"}
    with pytest.raises(RunFailed) as err:
        trial_commands.run(trial["config"], tmp_path / "out", preset=None, set_=None)
    assert err.value.exit_code == code
    assert str(err.value) == f"trial {status}: loss was nan at step 12 (log: {tmp_path / 'out' / 'train.log'})"
    assert (tmp_path / "out").is_dir()  # a trial that ran keeps its folder


def test_a_failed_trial_without_a_result_still_says_so(trial, tmp_path: Path) -> None:
    trial["code"] = 1
    with pytest.raises(RunFailed, match=r"^trial error: no reason recorded \(log: "):
        trial_commands.run(trial["config"], tmp_path / "out", preset=None, set_=None)


@pytest.mark.parametrize(("reason", "shown"), [
    ("ConfigError: sweep spec key 'x': not a number", "sweep spec key 'x': not a number"),
    ("trial config cannot be used", "trial config cannot be used"),
])
def test_a_rejection_is_shown_without_its_error_class(trial, tmp_path: Path, reason: str, shown: str) -> None:
    trial["code"], trial["result"] = 2, {"status": "error", "reason": reason}
    with pytest.raises(RunFailed) as err:
        trial_commands.run(trial["config"], tmp_path / "out", preset=None, set_=None)
    assert str(err.value) == f"trial rejected: {shown}"


def test_a_folder_that_cannot_be_removed_still_ends_in_the_rejection(trial, tmp_path: Path, monkeypatch) -> None:
    trial["code"], trial["result"] = 2, {"status": "error", "reason": "ConfigError: bad"}
    real_unlink = os.unlink

    def stuck(path, *args, **kwargs):
        if str(path).endswith("result.json"):
            raise PermissionError(13, "Permission denied")
        return real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", stuck)
    with pytest.raises(RunFailed, match=r"^trial rejected: bad$"):
        trial_commands.run(trial["config"], tmp_path / "out", preset=None, set_=None)


def test_a_rejected_trial_leaves_no_new_folder_behind(trial, tmp_path: Path) -> None:
    trial["code"], trial["result"] = 2, {"status": "error", "reason": "ConfigError: model_dim 7 is not even"}
    with pytest.raises(RunFailed) as err:
        trial_commands.run(trial["config"], tmp_path / "out", preset=None, set_=None)
    assert str(err.value) == "trial rejected: model_dim 7 is not even" and err.value.exit_code == 2
    assert not (tmp_path / "out").exists()
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "notes.txt").write_text("mine")
    with pytest.raises(RunFailed):
        trial_commands.run(trial["config"], tmp_path / "kept", preset=None, set_=None)
    assert (tmp_path / "kept" / "notes.txt").read_text() == "mine"  # a folder the user made is never removed


def test_an_interrupted_trial_removes_the_folders_it_made_and_says_interrupted(trial, tmp_path: Path) -> None:
    from clowncar.interrupts import Interrupted

    trial["interrupt"] = True
    with pytest.raises(Interrupted) as err:
        trial_commands.run(trial["config"], tmp_path / "new" / "out", preset=None, set_=None)
    assert str(err.value) == "interrupted" and err.value.exit_code == 130
    assert not (tmp_path / "new").exists()


def test_an_interrupted_trial_in_a_folder_that_was_there_removes_only_what_it_wrote(trial, tmp_path: Path) -> None:
    from clowncar.interrupts import Interrupted

    out = tmp_path / "kept"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "summary.json").write_text("{}")  # the user's, not touched by this run (an old mtime)
    os.utime(out / "summary.json", (1_000_000_000, 1_000_000_000))
    trial["interrupt"] = True
    with pytest.raises(Interrupted):
        trial_commands.run(trial["config"], out, preset=None, set_=None)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "summary.json"]


def test_a_trial_into_a_folder_holding_an_earlier_trial_is_refused_and_overwrite_replaces_it(
        trial, tmp_path: Path) -> None:
    from clowncar.errors import ClownCarError

    out = tmp_path / "t"
    out.mkdir()
    (out / "result.json").write_text('{"status": "ok"}')
    with pytest.raises(ClownCarError, match=r"holds an earlier trial \(status ok\): result.json; pass --overwrite"):
        trial_commands.run(trial["config"], out, preset=None, set_=None)
    assert (out / "result.json").read_text() == '{"status": "ok"}'  # refused before anything ran
    trial["interrupt"] = True
    from clowncar.interrupts import Interrupted

    with pytest.raises(Interrupted):  # replaced, then cut short: neither trial is left half there
        trial_commands.run(trial["config"], out, preset=None, set_=None, overwrite=True)
    assert list(out.iterdir()) == []


def test_a_sweep_spec_given_to_trial_run_is_refused_with_a_pointer_to_sweep_run(trial, tmp_path: Path) -> None:
    from clowncar.errors import ConfigError

    spec = tmp_path / "s.yaml"
    spec.write_text("name: s\npreset: tiny-cpu\nspace: {train.matrix_lr: {low: 0.01, high: 0.1}}\n")
    with pytest.raises(ConfigError) as err:
        trial_commands.run(spec, tmp_path / "out", preset=None, set_=None)
    assert str(err.value) == (f"unknown config key 'name'; {spec} looks like a sweep spec: use `clowncar sweep run "
                              f"{spec}` (or `clowncar sweep plan`)")
    assert trial["seen"] == [] and not (tmp_path / "out").exists()


def test_an_interrupt_keeps_a_leftover_older_than_the_runs_start_by_more_than_its_one_second_margin(
        trial, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In a folder that was there, what counts as this run's is what changed since it began, less one second for
    file systems with coarse modification times: an atomic write an older run left 1.5 s before this one began is
    not this run's; one from 0.5 s before is taken for it."""
    import time
    from types import SimpleNamespace

    from clowncar.interrupts import Interrupted

    start = time.time()
    monkeypatch.setattr(trial_commands, "time", SimpleNamespace(time=lambda: start))
    out = tmp_path / "kept"
    out.mkdir()
    for name, age in ((".model.ptz.tmp-older", 1.5), (".model.ptz.tmp-within", 0.5)):
        (out / name).write_text("an atomic write cut off")
        os.utime(out / name, (start - age, start - age))
    trial["interrupt"] = True
    with pytest.raises(Interrupted):
        trial_commands.run(trial["config"], out, preset=None, set_=None)
    assert sorted(p.name for p in out.iterdir()) == [".model.ptz.tmp-older"]
