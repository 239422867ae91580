"""An address a sweep cannot join (the job server's http://, a typo) is one line of bad input, exit code 2,
before a sweep command reads or writes anything: `ray.init` used to refuse it after the sweep was recorded, leaving
a `failed` sweep and a message Ray cut off ("To fix this, either:"). No Ray starts in these tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from clowncar.errors import EXIT_BAD_INPUT, ClownCarError
from clowncar.orchestrator import reach

SPEC = "name: s\npreset: tiny-cpu\nsampler: random\nbudget: {max_trials: 1}\n"
COMMANDS = {"run": ["sweep", "run", "s.yaml"], "resume": ["sweep", "resume", "s"],
            "rerun": ["sweep", "rerun", "s", "--top", "1"]}


@pytest.mark.parametrize("address", ["http://127.0.0.1:8265", "HTTPS://head:8265/", "garbage", "head", "head:port",
                                     "head:70000", "gcs://head:6379"])
def test_an_address_that_is_no_host_and_port_is_refused(address: str) -> None:
    with pytest.raises(ClownCarError) as err:
        reach.refuse_unusable(address)
    assert err.value.exit_code == EXIT_BAD_INPUT
    assert str(err.value).startswith(f"--address {address} is ")
    assert str(err.value).endswith("to run the sweep on this machine (embedded Ray) instead, leave out --address")


def test_auto_local_and_a_host_and_port_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    for address in ("auto", "local", "head:6379", "10.0.0.2:6379"):
        reach.refuse_unusable(address)


def test_the_job_server_address_is_named_and_sweep_submit_offered_for_a_new_sweep() -> None:
    with pytest.raises(ClownCarError) as err:
        reach.refuse_unusable("http://u:SECRETPW@127.0.0.1:8265")
    assert str(err.value) == (
        "--address http://u:***@127.0.0.1:8265 is the address of a Ray job server (the dashboard), which takes "
        "submitted jobs, not a sweep's driver: `clowncar sweep submit SPEC --address http://u:***@127.0.0.1:8265` "
        "runs a new sweep there as a Ray job; `clowncar sweep run SPEC --address HEAD:6379` (the head's GCS port) "
        "or `--address auto` on a node joins the cluster; or, to run the sweep on this machine (embedded Ray) "
        "instead, leave out --address")
    with pytest.raises(ClownCarError) as err:  # a recorded sweep cannot be submitted: no `sweep submit` offered
        reach.refuse_unusable("http://head:8265", reach.ENV, "sweep resume s1")
    assert "sweep submit" not in str(err.value)
    assert str(err.value).startswith("CLOWNCAR_RAY_ADDRESS=http://head:8265 is the address of a Ray job server")
    assert "`clowncar sweep resume s1 --address HEAD:6379`" in str(err.value)
    assert str(err.value).endswith("unset CLOWNCAR_RAY_ADDRESS")


def test_auto_that_takes_an_unusable_ray_address_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_ADDRESS", "http://127.0.0.1:8265")
    with pytest.raises(ClownCarError, match=r"^--address auto: it takes RAY_ADDRESS=http://127\.0\.0\.1:8265, which "
                                            r"is not a Ray cluster address; unset RAY_ADDRESS"):
        reach.check_reachable("auto")


@pytest.mark.parametrize("origin", [reach.FLAG, reach.ENV])
@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("address", ["http://127.0.0.1:8265", "garbage"])
def test_a_sweep_command_refuses_an_unusable_address_before_it_reads_or_writes_anything(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], command: str,
        origin: str, address: str) -> None:
    """One line, exit code 2, nothing printed before it (not even the plan), no store and no runs dir made."""
    import clowncar.cli as cli

    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.yaml").write_text(SPEC)
    monkeypatch.setenv("CLOWNCAR_RUNS_DIR", str(tmp_path / "runs"))  # its SQLite is the default store
    for name in ("CLOWNCAR_STORE", "CLOWNCAR_STORE_FILE", "RAY_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    argv = COMMANDS[command]
    if origin == reach.FLAG:
        argv = [*argv, "--address", address]
    else:
        monkeypatch.setenv(reach.ENV, address)
    with pytest.raises(SystemExit) as ended:
        cli.main(argv)
    out, err = capsys.readouterr()
    assert ended.value.code == EXIT_BAD_INPUT, err
    assert out == "" and len(err.splitlines()) == 1
    named = f"--address {address}" if origin == reach.FLAG else f"CLOWNCAR_RAY_ADDRESS={address}"
    assert err.startswith(f"clowncar: error: {named} is ")
    assert f"`clowncar sweep {command} " in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"]
