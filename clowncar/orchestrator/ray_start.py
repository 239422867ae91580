"""How a sweep's driver starts Ray: it joins a cluster as given, or starts embedded Ray on this machine, listening on
127.0.0.1 only, with token authentication said explicitly and its token file private, the store's secrets kept out
of the environment Ray's processes copy, and a dead driver's leftover Ray processes reaped first (embedded.py)."""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clowncar.interrupts import held_from_ray_connect, sigterm_handler_kept, without_ray_failure_handler
from clowncar.orchestrator.head_watch import ray_patience_raised
from clowncar.redact import write_private

if TYPE_CHECKING:
    from clowncar.orchestrator.tune import RunOptions


def init_ray(opts: RunOptions) -> None:
    import ray

    if ray.is_initialized():
        return
    if opts.address:
        with (sigterm_handler_kept(), entrypoint_unpadded(), without_ray_failure_handler(), ray_patience_raised(),
              held_from_ray_connect()):
            ray.init(address=opts.address, log_to_driver=False, logging_level=logging.WARNING)
        return
    from clowncar.orchestrator import embedded

    loopback_only()
    _token_auth_explicit()
    _private_auth_token()
    embedded.reap_dead_drivers(opts.runs_dir)
    # innermost, the hold: a signal held while Ray connects is raised where the clean-up of the two above sees it
    # without Ray's failure-signal handler: ray.shutdown would set SIGTERM to the default action under our SIG_IGN
    with (sigterm_handler_kept(), embedded.killed_unless_started(), embedded.recorded_while_starting(opts.runs_dir),
          _secrets_kept_from_ray(), entrypoint_unpadded(), without_ray_failure_handler(), ray_patience_raised(), held_from_ray_connect()):
        ray.init(address="local", num_cpus=opts.num_cpus or os.cpu_count() or 1, num_gpus=opts.num_gpus or 0,
                 include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    mine = embedded.record(opts.runs_dir)
    if mine is not None:
        atexit.register(mine.unlink, missing_ok=True)


def loopback_only() -> None:
    """Every listener of a Ray started in this process on 127.0.0.1 (reference/ray_tune_optuna_facts.md section
    6). Ray reads RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER once, when its constants are first imported, and then picks the
    machine's network address for the node it starts, whose GCS and raylet then listen on every interface. The
    variable alone is too late in a process that imported Ray before (a test session, a notebook, a caller of
    this function): the constant it set is set too. Ray's child processes read the variable."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    constants = sys.modules.get("ray._private.ray_constants")
    if constants is not None:
        constants.ENABLE_RAY_CLUSTER = False


def _token_auth_explicit() -> None:
    """Embedded Ray keeps Ray 2.60's default, token authentication, but says so: with RAY_AUTH_MODE unset,
    `ray.init` turns it on itself and logs a warning on every run that asks the user to act on nothing. Setting the
    mode to what Ray would choose, and refreshing Ray's cached config as Ray's own `_enable_token_auth` does, is the
    same protection without the warning. A mode the user set (disabled, token) is respected."""
    if "RAY_AUTH_MODE" in os.environ:
        return
    os.environ["RAY_AUTH_MODE"] = "token"
    with contextlib.suppress(ImportError, AttributeError):
        from ray._raylet import Config

        Config.initialize("")


@contextlib.contextmanager
def entrypoint_unpadded() -> Any:
    """Around `ray.init`: the driver's entrypoint in Ray's job table (the dashboard, `ray list jobs`) without the
    empty arguments a rewritten process title leaves. Ray reads it from /proc/PID/cmdline, and after
    `redact.hide_secrets_in_title` that is the masked line followed by the NULs that fill the rest of the original
    arguments' memory: Ray listed each as `""` (30 of them after a `--store URL`)."""
    try:
        import ray._private.utils as ray_utils

        read = ray_utils.get_entrypoint_name
    except (ImportError, AttributeError):  # another Ray: its own entrypoint, padded or not
        yield
        return
    ray_utils.get_entrypoint_name = functools.wraps(read)(lambda: _unpadded(read()))
    try:
        yield
    finally:
        ray_utils.get_entrypoint_name = read


def _unpadded(entrypoint: str) -> str:
    """`entrypoint` (a command line as `subprocess.list2cmdline` writes it) without its trailing empty arguments."""
    while entrypoint.endswith(' ""'):
        entrypoint = entrypoint[:-3]
    return entrypoint


SECRET_ENV = ("CLOWNCAR_STORE", "CLOWNCAR_STORE_FILE", "PGPASSWORD")
"""Variables only the driver needs: the store's URL (or where it is kept) and a libpq password."""


@contextlib.contextmanager
def _secrets_kept_from_ray() -> Any:
    """Embedded Ray's processes (GCS, raylet, and through it every actor, trial and worker) take a copy of this
    process's environment when they start: the store's URL stays in the driver (workers report through Ray and
    never open the store)."""
    saved = {k: os.environ.pop(k) for k in SECRET_ENV if k in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def _private_auth_token() -> None:
    """Token authentication with Ray's default token file (~/.ray/auth_token): create it readable by its owner
    only (Ray's own first start writes it 0644), and close one that an earlier start left readable by others."""
    if os.environ.get("RAY_AUTH_MODE", "").lower() != "token" or os.environ.get("RAY_AUTH_TOKEN") \
            or os.environ.get("RAY_AUTH_TOKEN_PATH"):
        return
    path = Path.home() / ".ray" / "auth_token"
    with contextlib.suppress(OSError, ImportError):
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not path.exists():
            from ray._private.authentication.authentication_token_generator import (
                generate_new_authentication_token,
            )

            with contextlib.suppress(FileExistsError):  # another driver made it first
                write_private(path, generate_new_authentication_token(), exclusive=True)
        if path.stat().st_uid == os.getuid() and path.stat().st_mode & 0o077:
            path.chmod(0o600)
