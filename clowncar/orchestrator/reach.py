"""Before a sweep joins a Ray cluster (`--address`): does anything listen where Ray is about to connect?

`ray.init` against an address nobody listens on does not fail: it retries its GCS connection 20 times, about 36 s
each, logging two warnings a try (Ray 2.60; measured: `sweep run --address 127.0.0.1:9` still waiting after
150 s), so a mistyped port would hold the command about 12 minutes behind a screen of logs. The driver opens one TCP
connection first, to the address Ray will use (Ray replaces a loopback host with this machine's address unless
its cluster mode is off), and a refusal or a timeout is one line, exit code 2, before anything is written.
`auto` is first looked up as `ray.init` looks it up (`auto_cluster`): with no cluster on this machine Ray fails at
once, but only after the sweep was recorded, so that too is one line of bad input here. `local` is left to Ray.
Every message names where the address came from (`--address` or CLOWNCAR_RAY_ADDRESS), since the way back to
embedded Ray differs.

A Ray Client address (`ray://HOST:PORT`, or `auto` while RAY_ADDRESS holds one) is refused before anything else
(`refuse_client`): through Ray Client, Tune runs its Tuner as an actor on the cluster, so the sweep's searcher and
store callback are pickled there without what they leave out of a pickle (the store, the study's storage, the stop
event), and the sweep could not reach a store on this machine anyway. Measured with Ray 2.60, a Ray Client server
on 127.0.0.1 and a PostgreSQL store: `sweep run --address ray://...` recorded the sweep, then failed at Tune's first
suggestion on the head (`internal error: RayTaskError(AttributeError) ... 'NoneType' object has no attribute
'is_set'`, exit 1) and left it `failed` with no trial (the store's password was in no file the run left, Tune's
`tuner.pkl` included). A Ray job
(`sweep submit`) or `--address auto` on the head runs the driver where the cluster is.

Any other address that is neither `auto`, `local` nor a HOST:PORT Ray can dial is refused the same way
(`refuse_unusable`), before anything is read or written: `ray.init` would refuse it only after the sweep was
recorded (a `failed` sweep left behind, exit 1) with a message Ray spreads over lines. The job server's
`http://HEAD:8265`, which `sweep submit` and `sweep stop` take, is the address users try most: its line says so.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

from clowncar.errors import ClownCarError
from clowncar.redact import redact_text

PROBE_SECONDS = 5.0
CLIENT_SCHEME = "ray://"
JOB_SERVER_SCHEMES = ("http://", "https://")
AUTO = "auto"
FLAG = "--address"
ENV = "CLOWNCAR_RAY_ADDRESS"
"""Where a sweep's address comes from: the command line, else this variable (`clowncar.settings`)."""
NO_CLUSTER = "no running Ray cluster was found on this machine"


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


def client_address(address: str) -> str | None:
    """The Ray Client address `ray.init(address)` would connect through: `address` itself when it is one, the
    RAY_ADDRESS that `auto` takes first when that is one (`auto_cluster`); None for any other address."""
    if address == AUTO:
        address = os.environ.get("RAY_ADDRESS") or AUTO
    return address if address.startswith(CLIENT_SCHEME) else None


def refuse_client(address: str, origin: str = FLAG, again: str = "sweep run SPEC") -> None:
    """One line and exit code 2 when `address` (from `origin`) would join the cluster through Ray Client, which
    cannot drive a sweep (module docstring). `again` is the command to run on the head node instead; a new sweep
    (`sweep run`) can also be submitted as a Ray job from here."""
    client = client_address(address)
    if client is None:
        return
    found = "" if client == address else f" (found RAY_ADDRESS={redact_text(client)})"
    submit = ("submit it as a Ray job, whose driver runs on the cluster, with `clowncar sweep submit SPEC --address "
              "http://HEAD:8265`, or " if again.startswith("sweep run ") else "")
    raise ClownCarError(f"{named(address, origin)}{found}: Ray Client (ray://) cannot drive a sweep, since Ray Tune "
                        f"would run the sweep's search and its store writes on the cluster, away from this "
                        f"machine's store; {submit}run `clowncar {again} --address auto` on the head node; or, "
                        f"{embedded_instead(origin)}")


def refuse_unusable(address: str, origin: str = FLAG, again: str = "sweep run SPEC") -> None:
    """One line and exit code 2 when a sweep cannot join a cluster at `address` (from `origin`): a Ray Client
    address (`refuse_client`), a job server's http(s):// address, or anything else that is not `auto`, `local` or
    a HOST:PORT. `again` is the command as it would be run on a node of the cluster."""
    refuse_client(address, origin, again)
    if address in (AUTO, "local") or endpoint(address) is not None:
        return
    join = f"`clowncar {again} --address HEAD:6379` (the head's GCS port) or `--address auto` on a node joins the cluster"
    if address.lower().startswith(JOB_SERVER_SCHEMES):
        submit = (f"`clowncar sweep submit SPEC --address {redact_text(address)}` runs a new sweep there as a Ray "
                  f"job; " if again.startswith("sweep run ") else "")
        raise ClownCarError(f"{named(address, origin)} is the address of a Ray job server (the dashboard), which "
                            f"takes submitted jobs, not a sweep's driver: {submit}{join}; or, "
                            f"{embedded_instead(origin)}")
    raise ClownCarError(f"{named(address, origin)} is not a Ray cluster address: {join}; or, "
                        f"{embedded_instead(origin)}")


def auto_cluster() -> str | None:
    """The address `ray.init(address="auto")` joins, in its order: RAY_ADDRESS when set; else the cluster that
    `ray start` last recorded in Ray's temp dir (`ray_current_cluster` under $RAY_TMPDIR/ray, else $TMPDIR/ray
    or /tmp/ray); else a raylet running on this machine. None when there is none, where Ray raises."""
    env = os.environ.get("RAY_ADDRESS")
    if env:  # ray.init takes it before any lookup (a ray:// one is a Ray Client address, not looked up)
        return env
    from ray._private.services import canonicalize_bootstrap_address

    try:
        return canonicalize_bootstrap_address(AUTO)
    except ConnectionError:  # nothing recorded and no raylet here
        return None
    except ValueError:  # a recorded address Ray cannot read: left to ray.init, which says so
        return AUTO


def named(address: str, origin: str) -> str:
    """`--address X` or `CLOWNCAR_RAY_ADDRESS=X`, the password of X hidden: what the user set, and where."""
    shown = redact_text(address)
    return f"{ENV}={shown}" if origin == ENV else f"{origin} {shown}"


def embedded_instead(origin: str) -> str:
    """How to run the sweep on this machine's embedded Ray instead of the address from `origin`."""
    undo = f"unset {ENV}" if origin == ENV else f"leave out {FLAG}"
    return f"to run the sweep on this machine (embedded Ray) instead, {undo}"


def dialled(address: str, target: tuple[str, int]) -> str | None:
    """Why Ray connects to `target`, when its host is not the one written: Ray dials a loopback host (127.0.0.1,
    localhost) as this machine's own address, so that the cluster's other nodes can reach it too."""
    written = host_port(CLIENT_SCHEME + address.removeprefix(CLIENT_SCHEME))
    if written is None or written[0] == target[0]:
        return None
    return f"Ray dials it as this machine's address, {target[0]}:{target[1]}"


def check_reachable(address: str, timeout: float = PROBE_SECONDS, origin: str = FLAG) -> None:
    """One line and exit code 2 when nothing accepts a connection where Ray would connect for `address` (from
    `origin`, FLAG or ENV), or when `auto` finds no cluster at all; first, when it is a Ray Client address
    (`refuse_client`) or not an address at all (`refuse_unusable`)."""
    refuse_unusable(address, origin)
    written, notes = address, [f"from {origin}"]
    if address == AUTO:
        found = auto_cluster()
        if found is None:
            raise ClownCarError(f"{named(address, origin)}: {NO_CLUSTER}; start one with `ray start --head` or, "
                                f"{embedded_instead(origin)}")
        if found != AUTO and endpoint(found) is None:  # RAY_ADDRESS holds no address that ray.init can join
            raise ClownCarError(f"{named(address, origin)}: it takes RAY_ADDRESS={redact_text(found)}, which is not a "
                                f"Ray cluster address; unset RAY_ADDRESS or set it to the head's HOST:6379")
        notes.append(f"found {redact_text(found)}")
        address = found
    target = endpoint(address)
    if target is None:
        return
    why = refusal(target, timeout)
    if why is None:
        return
    notes += [note for note in [dialled(address, target)] if note]
    raise ClownCarError(f"cannot reach the Ray cluster at {redact_text(written)} ({'; '.join(notes)}): {why}; is its "
                        f"head running (`ray status` there prints its address)? Or, {embedded_instead(origin)}")
