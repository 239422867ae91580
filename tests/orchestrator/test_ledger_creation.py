"""How the GPU ledger's actor is made (`ledger.ledger_handle`, `ledger.ledger_runtime_env`), in this process:
`ray.remote` is a stand-in that records the actor's options and constructor arguments. (The actor's body and a
driver's gate are in test_ledger_in_process.py; the actor on a test cluster in test_gpu_ledger.py.)"""

from __future__ import annotations

from typing import Any

import pytest
import ray

from clowncar.orchestrator import ledger as ledger_module
from clowncar.orchestrator.ledger import Ledger
from clowncar.settings import LEASE_TTL_ENV


class _Made:
    """`ray.remote(Ledger)` as ledger_handle uses it: records the actor options and constructor arguments."""

    def __init__(self) -> None:
        self.options_seen: dict[str, Any] = {}
        self.args: tuple[Any, ...] = ()

    def options(self, **kwargs: Any) -> _Made:
        self.options_seen = kwargs
        return self

    def remote(self, *args: Any) -> str:
        self.args = args
        return "handle"


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> _Made:
    made = _Made()
    monkeypatch.setattr(ray, "remote", lambda cls: made if cls is Ledger else None)
    monkeypatch.delenv(LEASE_TTL_ENV, raising=False)
    return made


def _job(runtime_env: dict[str, Any]) -> Any:
    class Context:
        pass

    ctx = Context()
    ctx.runtime_env = runtime_env  # type: ignore[attr-defined]
    return lambda: ctx


def test_the_ledger_is_one_detached_restartable_actor_on_the_head(made: _Made, monkeypatch) -> None:
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    assert ledger_module.ledger_handle() == "handle"
    assert made.options_seen == {
        "name": "clowncar-gpu-ledger", "namespace": "clowncar", "lifetime": "detached", "get_if_exists": True,
        "num_cpus": 0, "max_restarts": -1, "max_task_retries": -1, "resources": {"node:__internal_head__": 0.001}}
    assert made.args == (30.0, 60.0)  # CLOWNCAR_LEASE_TTL_S unset: 30 s; settle 60 s
    monkeypatch.setenv(LEASE_TTL_ENV, "7.5")
    ledger_module.ledger_handle(settle_s=5.0)
    assert made.args == (7.5, 5.0)
    ledger_module.ledger_handle(ttl_s=3.0)
    assert made.args == (3.0, 60.0)


def test_a_submitted_jobs_ledger_gets_the_code_package_as_its_working_dir(made: _Made, monkeypatch) -> None:
    monkeypatch.setattr(ray, "is_initialized", lambda: True)
    modules = ["gcs://_ray_pkg_code.zip", "/opt/local/module"]
    monkeypatch.setattr(ray, "get_runtime_context", _job({"working_dir": "gcs://_ray_pkg_job.zip",
                                                           "py_modules": modules}))
    ledger_module.ledger_handle()
    assert made.options_seen["runtime_env"] == {"working_dir": "gcs://_ray_pkg_code.zip", "py_modules": modules}


def test_an_attached_drivers_ledger_inherits_no_runtime_env(made: _Made, monkeypatch) -> None:
    monkeypatch.setattr(ray, "is_initialized", lambda: True)
    monkeypatch.setattr(ray, "get_runtime_context", _job({}))
    ledger_module.ledger_handle()
    assert "runtime_env" not in made.options_seen


@pytest.mark.parametrize(("job_env", "expected"), [
    ({}, None),
    ({"py_modules": ["gcs://code.zip"]}, None),  # no working_dir: nothing to replace
    ({"working_dir": "gcs://job.zip"}, None),  # no code package to use instead
    ({"working_dir": "gcs://job.zip", "py_modules": ["/local/dir", "gcs://a.whl"]}, None),
    ({"working_dir": "gcs://job.zip", "py_modules": ["/local/dir", "gcs://a.zip", "gcs://b.zip"]},
     {"working_dir": "gcs://a.zip", "py_modules": ["/local/dir", "gcs://a.zip", "gcs://b.zip"]}),
    ({"working_dir": "gcs://job.zip", "py_modules": ("gcs://a.zip",)},
     {"working_dir": "gcs://a.zip", "py_modules": ["gcs://a.zip"]}),
])
def test_the_ledgers_runtime_env_replaces_only_a_jobs_working_dir_by_its_first_zip_package(
        job_env: dict[str, Any], expected: dict[str, Any] | None) -> None:
    assert ledger_module.ledger_runtime_env(job_env) == expected
