"""`--address` is checked before a sweep joins a cluster: one TCP connection to where Ray would connect, on
127.0.0.1 only (Ray's cluster mode off, so a loopback address stays loopback), and a refusal or timeout is one
line with exit code 2 before anything is written. `auto` is looked up as Ray looks it up, in an empty Ray temp
dir (RAY_TMPDIR) where a test needs no cluster, and found nothing there is the same line of bad input."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from clowncar.errors import EXIT_BAD_INPUT, ClownCarError
from clowncar.orchestrator import commands as cmd
from clowncar.orchestrator import reach
from clowncar.orchestrator.spec import spec_from_dict


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from ray._private import ray_constants

    monkeypatch.setattr(ray_constants, "ENABLE_RAY_CLUSTER", False)


@pytest.fixture
def listening() -> Iterator[int]:
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[1]


@pytest.mark.parametrize(("url", "parsed"), [
    ("ray://head:6379", ("head", 6379)), ("ray://[::1]:6379", ("::1", 6379)),
    ("ray://10.0.0.2:10001/", ("10.0.0.2", 10001)), ("ray://u:pw@head:10001", ("head", 10001)),
    ("ray://head", None), ("ray://head:port", None), ("ray://:6379", None), ("ray://", None),
    ("ray://head:70000", None),
])
def test_an_address_splits_into_host_and_port_or_nothing(url: str, parsed: tuple[str, int] | None) -> None:
    assert reach.host_port(url) == parsed


def test_ray_resolves_auto_and_local_itself_and_a_malformed_address_is_left_to_it(loopback_only) -> None:
    assert reach.endpoint("auto") is None and reach.endpoint("local") is None
    assert reach.endpoint("no-port-here") is None  # ray.init says what is wrong with it


def test_the_endpoint_is_where_ray_connects(loopback_only) -> None:
    assert reach.endpoint("127.0.0.1:6379") == ("127.0.0.1", 6379)
    assert reach.endpoint("localhost:6379") == ("127.0.0.1", 6379)  # Ray's own resolution, loopback kept
    assert reach.endpoint("ray://127.0.0.1:10001") == ("127.0.0.1", 10001)  # Ray Client: as written


def test_an_address_that_answers_passes(loopback_only, listening: int) -> None:
    reach.check_reachable(f"127.0.0.1:{listening}")
    reach.check_reachable(f"localhost:{listening}")


def test_an_address_nobody_listens_at_is_one_line_of_bad_input(loopback_only, closed_port: int) -> None:
    with pytest.raises(ClownCarError) as err:
        reach.check_reachable(f"127.0.0.1:{closed_port}")
    assert str(err.value) == (f"cannot reach the Ray cluster at 127.0.0.1:{closed_port} (from --address): "
                              "Connection refused; is its head running (`ray status` there prints its address)? Or, "
                              "to run the sweep on this machine (embedded Ray) instead, leave out --address")
    assert err.value.exit_code == EXIT_BAD_INPUT


def test_a_loopback_host_is_explained_as_the_machine_address_ray_dials(loopback_only, closed_port: int) -> None:
    with pytest.raises(ClownCarError, match=rf"^cannot reach the Ray cluster at localhost:{closed_port} \(from "
                                            rf"--address; Ray dials it as this machine's address, 127\.0\.0\.1:"
                                            rf"{closed_port}\): Connection refused;"):
        reach.check_reachable(f"localhost:{closed_port}")
    assert reach.dialled("127.0.0.1:6379", ("192.0.2.2", 6379)) == (
        "Ray dials it as this machine's address, 192.0.2.2:6379")  # what Ray does with its cluster mode on
    assert reach.dialled("ray://u:pw@127.0.0.1:1", ("127.0.0.1", 1)) is None  # as written: nothing to explain
    assert reach.dialled("ray://127.0.0.1:10001", ("192.0.2.2", 10001)) == (  # a client address, scheme and all
        "Ray dials it as this machine's address, 192.0.2.2:10001")


def test_an_address_from_the_variable_says_so_and_how_to_unset_it(loopback_only, closed_port: int) -> None:
    with pytest.raises(ClownCarError) as err:
        reach.check_reachable(f"127.0.0.1:{closed_port}", origin=reach.ENV)
    assert str(err.value) == (f"cannot reach the Ray cluster at 127.0.0.1:{closed_port} (from CLOWNCAR_RAY_ADDRESS): "
                              "Connection refused; is its head running (`ray status` there prints its address)? Or, "
                              "to run the sweep on this machine (embedded Ray) instead, unset CLOWNCAR_RAY_ADDRESS")


def test_an_error_without_a_message_is_named_by_its_type(monkeypatch: pytest.MonkeyPatch) -> None:
    def bare(target: tuple[str, int], timeout: float) -> socket.socket:
        raise OSError()

    monkeypatch.setattr(socket, "create_connection", bare)
    assert reach.refusal(("h", 1)) == "OSError"


def test_a_silent_address_times_out_after_the_probe_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    waited: list[float] = []

    def silent(target: tuple[str, int], timeout: float) -> socket.socket:
        waited.append(timeout)
        raise TimeoutError("timed out")

    monkeypatch.setattr(socket, "create_connection", silent)
    with pytest.raises(ClownCarError, match=r"^cannot reach the Ray cluster at h:1 \(from --address\): "
                                            r"timed out;"):
        reach.check_reachable("h:1")
    assert waited == [reach.PROBE_SECONDS] == [5.0]


def test_a_sweep_for_an_unreachable_cluster_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           loopback_only, closed_port: int) -> None:
    import clowncar.orchestrator.tune as tune

    monkeypatch.setenv("CLOWNCAR_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setattr(tune, "run_sweep", lambda spec, opts: pytest.fail("joined"))
    spec = spec_from_dict({"name": "s", "preset": "tiny-cpu", "sampler": "grid",
                           "space": {"model.crawler_loops": {"grid": [1, 2]}}})
    with pytest.raises(ClownCarError, match=r"^cannot reach the Ray cluster"):
        cmd.run_spec(spec, f"sqlite:///{tmp_path / 'store.db'}", f"127.0.0.1:{closed_port}", None, None, True,
                     resume=False)
    assert list(tmp_path.iterdir()) == []


def test_auto_and_local_never_ask_ray_and_an_address_ray_drops_is_not_probed(monkeypatch: pytest.MonkeyPatch) -> None:
    from ray._private import services

    asked: list[str] = []
    monkeypatch.setattr(services, "canonicalize_bootstrap_address", lambda a: asked.append(a) or None)
    assert reach.endpoint("auto") is None and reach.endpoint("local") is None and asked == []
    assert reach.endpoint("head:1") is None and asked == ["head:1"]  # Ray would start locally: nothing to probe


def test_the_probe_waits_as_long_as_it_is_told(monkeypatch: pytest.MonkeyPatch) -> None:
    waited: list[float] = []
    monkeypatch.setattr(socket, "create_connection", lambda target, timeout: waited.append(timeout) or socket.socket())
    reach.check_reachable("h:1", timeout=1.5)
    assert waited == [1.5]


@pytest.fixture
def no_cluster_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Ray's `auto` lookup pointed at an empty temp dir (RAY_TMPDIR), with no RAY_ADDRESS and no raylet seen on
    this machine (its process scan would otherwise find any other test's cluster): the Ray dir `ray start`
    would record a cluster in, not created."""
    from ray._private import services

    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path / "raytmp"))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv("CLOWNCAR_RAY_ADDRESS", raising=False)
    monkeypatch.setattr(services, "find_gcs_addresses", frozenset)
    return tmp_path / "raytmp" / "ray"


def recorded(ray_dir: Path, address: str) -> None:
    """What `ray start --head` leaves for `auto` to find."""
    ray_dir.mkdir(parents=True)
    (ray_dir / "ray_current_cluster").write_text(address + "\n")


def test_auto_with_no_cluster_on_this_machine_is_one_line_of_bad_input(no_cluster_here: Path) -> None:
    assert reach.auto_cluster() is None
    with pytest.raises(ClownCarError) as err:
        reach.check_reachable("auto")
    assert str(err.value) == ("--address auto: no running Ray cluster was found on this machine; start one with "
                              "`ray start --head` or, to run the sweep on this machine (embedded Ray) instead, "
                              "leave out --address")
    assert err.value.exit_code == EXIT_BAD_INPUT
    with pytest.raises(ClownCarError, match=r"^CLOWNCAR_RAY_ADDRESS=auto: no running Ray cluster was found on this "
                                            r"machine; .* unset CLOWNCAR_RAY_ADDRESS$"):
        reach.check_reachable("auto", origin=reach.ENV)


def test_auto_finds_the_cluster_ray_start_recorded_and_probes_it(no_cluster_here: Path, loopback_only,
                                                                  listening: int) -> None:
    recorded(no_cluster_here, f"127.0.0.1:{listening}")
    assert reach.auto_cluster() == f"127.0.0.1:{listening}"
    reach.check_reachable("auto")


def test_auto_with_a_stale_record_names_what_it_found(no_cluster_here: Path, loopback_only, closed_port: int) -> None:
    recorded(no_cluster_here, f"127.0.0.1:{closed_port}")  # a head that died without `ray stop`
    with pytest.raises(ClownCarError, match=rf"^cannot reach the Ray cluster at auto \(from --address; found "
                                            rf"127\.0\.0\.1:{closed_port}\): Connection refused;"):
        reach.check_reachable("auto")


def test_auto_takes_ray_address_first_as_ray_init_does(no_cluster_here: Path, monkeypatch: pytest.MonkeyPatch,
                                                       loopback_only, closed_port: int) -> None:
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{closed_port}")
    assert reach.auto_cluster() == f"127.0.0.1:{closed_port}"
    with pytest.raises(ClownCarError, match=rf"^cannot reach the Ray cluster at auto \(from --address; found "
                                            rf"127\.0\.0\.1:{closed_port}\)"):
        reach.check_reachable("auto")
    monkeypatch.setenv("RAY_ADDRESS", f"ray://127.0.0.1:{closed_port}")  # a Ray Client one: ray.init takes it too
    assert reach.auto_cluster() == f"ray://127.0.0.1:{closed_port}"
    with pytest.raises(ClownCarError, match=rf"^--address auto \(found RAY_ADDRESS=ray://127\.0\.0\.1:{closed_port}\): "
                                            r"Ray Client \(ray://\) cannot drive a sweep"):
        reach.check_reachable("auto")


def test_an_unreadable_record_is_left_to_ray(no_cluster_here: Path) -> None:
    recorded(no_cluster_here, "not an address")
    assert reach.auto_cluster() == "auto"
    reach.check_reachable("auto")  # ray.init says what is wrong with it


SPEC = "name: s\npreset: tiny-cpu\nsampler: random\nbudget: {max_trials: 1}\n"


def cli_refusal(tmp_path: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """`clowncar sweep run s.yaml ARGV` in this process, which must end with exit code 2 and one line (returned),
    leaving nothing beside the spec and Ray's temp dir: no store, no runs dir."""
    import clowncar.cli as cli

    (tmp_path / "s.yaml").write_text(SPEC)
    with pytest.raises(SystemExit) as ended:
        cli.main(["sweep", "run", str(tmp_path / "s.yaml"), "--store", f"sqlite:///{tmp_path / 'auto.db'}",
                  "--quiet", *argv])
    err = capsys.readouterr().err.strip()
    assert ended.value.code == EXIT_BAD_INPUT, err
    assert len(err.splitlines()) == 1 and err.startswith("clowncar: error: ")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "raytmp") == ["s.yaml"]
    return err.removeprefix("clowncar: error: ")


def test_sweep_run_with_auto_and_no_cluster_exits_2_and_records_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_cluster_here: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CLOWNCAR_RUNS_DIR", str(tmp_path / "runs"))
    err = cli_refusal(tmp_path, capsys, "--address", "auto")
    assert err.startswith("--address auto: no running Ray cluster was found on this machine; start one with "
                          "`ray start --head`")


def test_sweep_run_with_the_variable_names_it_and_records_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, loopback_only, closed_port: int,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CLOWNCAR_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("CLOWNCAR_RAY_ADDRESS", f"127.0.0.1:{closed_port}")
    err = cli_refusal(tmp_path, capsys)
    assert err.startswith(f"cannot reach the Ray cluster at 127.0.0.1:{closed_port} (from CLOWNCAR_RAY_ADDRESS): ")
    assert err.endswith("unset CLOWNCAR_RAY_ADDRESS") and "--address" not in err


def test_sweep_submit_with_auto_and_no_cluster_says_so_in_one_line(
        tmp_path: Path, no_cluster_here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import clowncar.cli as cli

    (tmp_path / "s.yaml").write_text(SPEC)
    with pytest.raises(SystemExit) as ended:
        cli.main(["sweep", "submit", str(tmp_path / "s.yaml"), "--address", "auto"])
    assert ended.value.code == EXIT_BAD_INPUT
    assert capsys.readouterr().err.strip() == (
        "clowncar: error: --address auto: no running Ray cluster was found on this machine; start one with "
        "`ray start --head`, or give the head's dashboard, --address http://HEAD:8265")


def test_a_ray_client_address_is_refused_saying_why_and_what_to_run_instead(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    for address in ("", "auto", "local", "head:6379", "10.0.0.2:6379"):  # joined directly: left to the probe
        reach.refuse_client(address)
    with pytest.raises(ClownCarError) as err:
        reach.refuse_client("ray://u:SECRETPW@head:10001")
    assert str(err.value) == (
        "--address ray://u:***@head:10001: Ray Client (ray://) cannot drive a sweep, since Ray Tune would run the "
        "sweep's search and its store writes on the cluster, away from this machine's store; submit it as a Ray job, "
        "whose driver runs on the cluster, with `clowncar sweep submit SPEC --address http://HEAD:8265`, or run "
        "`clowncar sweep run SPEC --address auto` on the head node; or, to run the sweep on this machine (embedded "
        "Ray) instead, leave out --address")
    assert err.value.exit_code == EXIT_BAD_INPUT
    with pytest.raises(ClownCarError) as err:  # a sweep already recorded cannot be submitted: the head node only
        reach.refuse_client("ray://head:10001", reach.ENV, "sweep resume s1")
    assert str(err.value) == (
        "CLOWNCAR_RAY_ADDRESS=ray://head:10001: Ray Client (ray://) cannot drive a sweep, since Ray Tune would run "
        "the sweep's search and its store writes on the cluster, away from this machine's store; run `clowncar sweep "
        "resume s1 --address auto` on the head node; or, to run the sweep on this machine (embedded Ray) instead, "
        "unset CLOWNCAR_RAY_ADDRESS")


CLIENT_COMMANDS = {"run": ["sweep", "run", "s.yaml"], "resume": ["sweep", "resume", "s"],
                   "rerun": ["sweep", "rerun", "s", "--top", "1"]}


@pytest.mark.parametrize("origin", [reach.FLAG, reach.ENV])
@pytest.mark.parametrize("command", sorted(CLIENT_COMMANDS))
def test_a_sweep_command_refuses_ray_client_before_it_reads_or_writes_anything(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], closed_port: int,
        command: str, origin: str) -> None:
    """One line, exit code 2, no store or runs dir made, nothing printed before it, and the password of the store
    given never shown. The Ray Client port is closed, so a command that went on to join it fails otherwise."""
    import clowncar.cli as cli

    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.yaml").write_text(SPEC)
    monkeypatch.setenv("CLOWNCAR_RUNS_DIR", str(tmp_path / "runs"))  # its SQLite is the store without --store
    monkeypatch.delenv("CLOWNCAR_STORE", raising=False)
    monkeypatch.delenv("CLOWNCAR_STORE_FILE", raising=False)
    address = f"ray://127.0.0.1:{closed_port}"
    argv = [*CLIENT_COMMANDS[command], "--store", "postgresql+psycopg://u:SECRETPW@127.0.0.1:1/clowncar"]
    if origin == reach.FLAG:
        argv += ["--address", address]
    else:
        monkeypatch.setenv(reach.ENV, address)
        argv = argv[:-2]  # the default store: the runs dir's SQLite, which must not be created
    with pytest.raises(SystemExit) as ended:
        cli.main(argv)
    out, err = capsys.readouterr()
    assert ended.value.code == EXIT_BAD_INPUT, err
    assert out == "" and len(err.splitlines()) == 1 and "SECRETPW" not in err
    named = f"--address {address}" if origin == reach.FLAG else f"CLOWNCAR_RAY_ADDRESS={address}"
    assert err.startswith(f"clowncar: error: {named}: Ray Client (ray://) cannot drive a sweep, since ")
    assert f"`clowncar sweep {command} " in err and "--address auto` on the head node" in err
    assert ("clowncar sweep submit SPEC --address http://HEAD:8265" in err) == (command == "run")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"]


def test_a_rerun_dry_run_joins_no_cluster_so_a_ray_client_address_is_no_reason_to_refuse_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    class PastTheAddress(Exception):
        pass

    def reads_the_parent(name: str, url: str) -> None:
        raise PastTheAddress

    monkeypatch.setattr(cmd, "refuse_while_driven", reads_the_parent)  # what a rerun does first with the store
    with pytest.raises(PastTheAddress):
        cmd.rerun_cmd("s", dry_run=True, store="sqlite://", address="ray://head:10001")
    with pytest.raises(ClownCarError, match=r"^--address ray://head:10001: Ray Client \(ray://\) cannot drive"):
        cmd.rerun_cmd("s", dry_run=False, store="sqlite://", address="ray://head:10001")
