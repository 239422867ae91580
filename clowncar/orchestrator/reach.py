"""Before a sweep joins a Ray cluster (`--address`): does anything listen where Ray is about to connect?

`ray.init` against an address nobody listens on does not fail: it retries its GCS connection 20 times, about 36 s
each, logging two warnings a try (Ray 2.60; measured: `sweep run --address 127.0.0.1:9` still waiting after
150 s), so a mistyped port would hold the command about 12 minutes behind a screen of logs. The driver opens one TCP
connection first, to the address Ray will use (Ray replaces a loopback host with this machine's address unless
its cluster mode is off), and a refusal or a timeout is one line, exit code 2, before anything is written.
`auto` (the cluster this machine runs) and `local` are left to Ray, which fails at once when there is none.
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

from clowncar.errors import ClownCarError
from clowncar.redact import redact_text

PROBE_SECONDS = 5.0
CLIENT_SCHEME = "ray://"


def endpoint(address: str) -> tuple[str, int] | None:
    """(host, port) that Ray will connect to for `address`, or None when Ray resolves it itself or it is not
    a host:port (Ray then says what is wrong with it)."""
    if address.startswith(CLIENT_SCHEME):  # Ray Client: the client server at exactly this host and port
        return host_port(address)
    if address in ("auto", "local"):
        return None
    try:
        from ray._private.services import canonicalize_bootstrap_address

        canonical = canonicalize_bootstrap_address(address)
    except Exception:  # a malformed address: ray.init's own error says so
        return None
    return host_port(CLIENT_SCHEME + canonical) if canonical else None


def host_port(url: str) -> tuple[str, int] | None:
    """(host, port) of `scheme://[user[:password]@]host:port[/...]`, an IPv6 host without its brackets."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # a port that is no number, or out of range
        return None
    return (parts.hostname, port) if parts.hostname and port is not None else None


def refusal(target: tuple[str, int], timeout: float = PROBE_SECONDS) -> str | None:
    """Why nothing accepted a TCP connection at `target` within `timeout` seconds; None when something did."""
    try:
        socket.create_connection(target, timeout=timeout).close()
    except OSError as err:
        return err.strerror or str(err) or type(err).__name__
    return None


def check_reachable(address: str, timeout: float = PROBE_SECONDS) -> None:
    """One line and exit code 2 when nothing accepts a connection where Ray would connect for `address`."""
    target = endpoint(address)
    if target is None:
        return
    why = refusal(target, timeout)
    if why is None:
        return
    where = f"{target[0]}:{target[1]}"
    shown = redact_text(address)
    if address.removeprefix(CLIENT_SCHEME) != where:
        shown += f" ({where})"
    raise ClownCarError(f"cannot reach the Ray cluster at {shown}: {why}; is its head running (`ray status` there "
                        "prints its address)? Without --address the sweep runs on this machine")
