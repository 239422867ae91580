"""`--address` is checked before a sweep joins a cluster: one TCP connection to where Ray would connect, on
127.0.0.1 only (Ray's cluster mode off, so a loopback address stays loopback), and a refusal or timeout is one
line with exit code 2 before anything is written."""

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


@pytest.fixture
def closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as server:
        return server.getsockname()[1]


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
    reach.check_reachable(f"ray://127.0.0.1:{listening}")
    reach.check_reachable("auto")  # not probed


def test_an_address_nobody_listens_at_is_one_line_of_bad_input(loopback_only, closed_port: int) -> None:
    with pytest.raises(ClownCarError) as err:
        reach.check_reachable(f"ray://127.0.0.1:{closed_port}")
    assert str(err.value) == (f"cannot reach the Ray cluster at ray://127.0.0.1:{closed_port}: Connection refused; "
                              "is its head running (`ray status` there prints its address)? Without --address the "
                              "sweep runs on this machine")
    assert err.value.exit_code == EXIT_BAD_INPUT
    with pytest.raises(ClownCarError, match=rf"^cannot reach the Ray cluster at localhost:{closed_port} "
                                            rf"\(127\.0\.0\.1:{closed_port}\): Connection refused;"):
        reach.check_reachable(f"localhost:{closed_port}")  # where Ray would connect, when it differs
    with pytest.raises(ClownCarError) as err:  # a password in the address is never shown
        reach.check_reachable(f"ray://u:SECRETPW@127.0.0.1:{closed_port}")
    assert str(err.value).startswith(f"cannot reach the Ray cluster at ray://u:***@127.0.0.1:{closed_port} "
                                     f"(127.0.0.1:{closed_port}): Connection refused;")


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
    with pytest.raises(ClownCarError, match=r"^cannot reach the Ray cluster at ray://h:1: timed out;"):
        reach.check_reachable("ray://h:1")
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
    reach.check_reachable("ray://h:1", timeout=1.5)
    assert waited == [1.5]
