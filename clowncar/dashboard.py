"""`clowncar dashboard`: optuna-dashboard on the results store, on 127.0.0.1 by default.

The store URL comes from `--store` or the settings (CLOWNCAR_STORE), never from a command line we build: a
command line is world-readable (`ps`), and the URL carries the database password. What is printed shows the
URL with the password masked. `docker/serve_dashboard.py` (the image's dashboard service) calls `serve` too.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from clowncar.errors import ClownCarError, StoreError
from clowncar.settings import STORE_HELP


def serve(url: str, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Open the Optuna storage in `url` and serve the dashboard until interrupted (StoreError if it cannot)."""
    import optuna

    from clowncar.redact import redact_url

    try:
        import optuna_dashboard
    except ImportError:
        raise StoreError("optuna-dashboard is not installed (pip install -e '.[dashboard]')") from None
    from clowncar.store import resolve_url
    from clowncar.store.engine import make_engine, parse_url, store_error

    url = resolve_url(url)  # the database every other command opens for the same string, with the same driver
    # Opened first as every other command opens the store, so a malformed URL, a missing driver, a server nobody
    # answers at or a missing SQLite file (which Optuna would create: a typo would serve a new, empty store) is
    # the same one line as theirs, its password hidden.
    parsed = parse_url(url)
    make_engine(parsed, create=False).dispose()
    try:
        storage = optuna.storages.RDBStorage(url)
    except Exception as exc:  # what fails after the connection (Optuna's tables): in the same words
        raise store_error(exc.__cause__ or exc, parsed, "cannot open store") from None
    _can_listen(host, port)  # before the server prints its banner: a taken port is then one line, not five
    studies = len(storage.get_all_studies())
    print(f"optuna-dashboard: http://{host}:{port}/ on {redact_url(url)} (Ctrl-C stops it)", flush=True)
    if not studies:  # an empty page would say nothing of why
        print("no Optuna study in this store yet: a sweep's study appears when the sweep starts, and imported "
              "sweeps have none (`clowncar store ls` lists them)", flush=True)
    try:
        run_quietly(optuna_dashboard.wsgi(storage), host, port)
    except OSError as exc:  # taken between the check and the start
        raise _cannot_listen(host, port, exc) from None


def run_quietly(app: Any, host: str, port: int) -> None:
    """Serve the WSGI `app` until interrupted, as `optuna_dashboard.run_server` does (bottle's wsgiref server),
    but quiet: no bottle banner and no access-log line per request on stdout, where our one line says where it
    serves."""
    import bottle

    bottle.run(app, host=host, port=port, quiet=True)


def is_loopback(host: str) -> bool:
    """Whether `host` is reachable from this machine only (127.0.0.0/8, ::1, localhost)."""
    import ipaddress

    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it resolves to an address other machines may reach
        return False


def _can_listen(host: str, port: int) -> None:
    """ClownCarError unless a server could listen on host:port now (the port free, the host this machine's)."""
    import socket

    try:
        with socket.create_server((host, port)):
            pass
    except (OSError, OverflowError) as exc:  # OverflowError: a port past 65535 (the CLI refuses it earlier)
        raise _cannot_listen(host, port, exc) from None


def _cannot_listen(host: str, port: int, exc: Exception) -> ClownCarError:
    why = str(getattr(exc, "strerror", None) or exc).split(" (while attempting")[0]  # the socket module's suffix
    return ClownCarError(f"cannot listen on {host}:{port}: {why}")


def dashboard(
    store: Annotated[str | None, typer.Option("--store", help=STORE_HELP)] = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on (default: loopback only)")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on", min=1, max=65535)] = 8080,
) -> None:
    """Serve optuna-dashboard on the results store: every sweep's study, live while it runs. Ctrl-C or SIGTERM
    stop it (exit code 130)."""
    from clowncar.interrupts import Interrupted, interrupt_on_signals
    from clowncar.settings import load_settings

    if not is_loopback(host):  # the README's security defaults keep every port on 127.0.0.1
        print(f"clowncar: warning: the dashboard has no authentication, and --host {host} lets other machines "
              "reach it, and delete studies; 127.0.0.1 with an SSH tunnel keeps it yours", file=sys.stderr)
    with interrupt_on_signals() as came:
        serve(store or load_settings().store_url, host, port)
    if came.is_set():  # bottle's server swallows the KeyboardInterrupt and returns as if it had simply ended
        raise Interrupted("interrupted")


def register(app: typer.Typer) -> None:
    app.command("dashboard")(dashboard)
