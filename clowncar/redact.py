"""Keep secrets out of logs, stored records and reports.

A results store URL carries the database password (`postgresql+psycopg://user:PASSWORD@host/db`, or
`?password=` in its query, or `password=` in a libpq keyword string), and a Ray cluster's token travels as
`RAY_AUTH_TOKEN=...` or an `Authorization: Bearer ...` header. Whatever prints, stores or reports a URL, an
error message or a command line passes it through `redact_url` (one URL) or `redact_text` (free text) first.
A file that holds a secret is written with `write_private` (mode 0600 from its first byte).

    >>> redact_url("postgresql+psycopg://clowncar:s3cret@db:5432/runs")
    'postgresql+psycopg://clowncar:***@db:5432/runs'
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Sequence
from pathlib import Path

MASK = "***"

# Query or keyword parameters whose value is a secret (libpq, SQLAlchemy dialects, generic).
_SECRET_KEYS = r"(?:password|passwd|pwd|sslpassword|secret|token|access_token|api_key|apikey)"

# scheme://user:password@  (the password runs to the last '@' before the host; it may hold ':' or '/').
_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@'\"]*:)(?P<pw>\S*)(?P<at>@)")
# A ':' that ends a value: before a space or the end of the text it is the separator of a sentence ("cannot open
# store URL: why"), not the secret's (a ':' inside a value is the secret's). A query value is percent-encoded
# wherever clowncar renders a URL, so no password's own ':' stands there.
_NOT_SEPARATOR = r"(?!:(?:\s|$))"
# ?password=...&  or  ;password=...  (URL query strings, ODBC-style strings)
_QUERY_PARAM = re.compile(rf"(?P<head>[?&;]{_SECRET_KEYS}=)(?P<val>(?:{_NOT_SEPARATOR}[^&;\s'\"#])*)",
                          re.IGNORECASE)
# libpq keyword/value strings and environment assignments: password=... or password='...'
_KEYWORD = re.compile(rf"(?P<head>(?<![\w?&;]){_SECRET_KEYS}\s*=\s*)(?P<val>'(?:[^'\\]|\\.)*'|\"[^\"]*\"|\S+)",
                      re.IGNORECASE)
# Environment-style secrets: RAY_AUTH_TOKEN=..., POSTGRES_PASSWORD=..., CLOWNCAR_STORE is a URL (handled above).
_ENV_SECRET = re.compile(r"(?P<head>\b[A-Z][A-Z0-9_]*(?:PASSWORD|TOKEN|SECRET)[A-Z0-9_]*=)(?P<val>\S+)")
# JSON / YAML mappings: "password": "...", password: ... (a key starts a line or follows a space, '{', ',', '(' or
# '[': in "/etc/passwd: not a model" the word is a path's end, and what follows is no secret)
_MAPPING = re.compile(rf"(?P<head>(?<![^\s{{,(\[])[\"']?{_SECRET_KEYS}[\"']?\s*:\s*)(?P<val>\"(?:[^\"\\]|\\.)*\"|'[^']*'|[^\s,}}\]]+)",
                      re.IGNORECASE)
# The same inside an encoded query value: `?options=-c%20password%3D...` (libpq's options travel percent-encoded;
# a space before the key is '%20' or '+', so a word-boundary rule cannot see where the key starts)
_ENCODED_KEYWORD = re.compile(rf"(?P<head>(?:(?<=%20)|(?<=[\s+?&;=])){_SECRET_KEYS}%3D)"
                              rf"(?P<val>(?:%(?!20)[0-9A-Fa-f]{{2}}|{_NOT_SEPARATOR}[^&;\s'\"#+%])*)", re.IGNORECASE)
_BEARER = re.compile(r"(?P<head>\bBearer\s+)(?P<val>[A-Za-z0-9._~+/=\-]+)", re.IGNORECASE)


def redact_url(url: str) -> str:
    """The URL with its password (userinfo or query parameter) replaced by `***`; other parts unchanged.

    Parsed with SQLAlchemy's URL parser when it can be (which also understands passwords with '@', ':' or
    percent-escapes); anything it cannot parse is scrubbed as text, so this never raises and never returns the
    password.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError, TypeError):
        return redact_text(url)
    if parsed.password is None and not parsed.query:
        return redact_text(url)  # nothing the parser hides: keep the text as typed (sqlite:///:memory:, not %3A)
    # The parser finds the userinfo password even where the text rules cannot (a raw space in it); a secret in
    # the query is percent-encoded by the rendering, which leaves it one token for redact_text to mask.
    return redact_text(parsed.render_as_string(hide_password=True))


def redact_text(text: str) -> str:
    """Free text (a log line, an error message, a command line) with every password and token masked."""
    out = _USERINFO.sub(lambda m: f"{m['head']}{MASK}{m['at']}", text)
    out = _QUERY_PARAM.sub(lambda m: f"{m['head']}{MASK}", out)
    out = _KEYWORD.sub(lambda m: f"{m['head']}{MASK}", out)
    out = _ENCODED_KEYWORD.sub(lambda m: f"{m['head']}{MASK}", out)
    out = _MAPPING.sub(lambda m: f"{m['head']}{MASK}", out)
    out = _ENV_SECRET.sub(lambda m: f"{m['head']}{MASK}", out)
    return _BEARER.sub(lambda m: f"{m['head']}{MASK}", out)


def redact_arg(arg: str) -> str:
    """One command-line argument with its secret masked: a whole URL (`--store URL`) or `--option=URL` goes
    through `redact_url`, which also finds a password with a raw space in it; anything else through `redact_text`."""
    head, eq, value = arg.partition("=") if arg.startswith("--") else ("", "", arg)
    shown = redact_url(value) if "://" in value else redact_text(value)
    return f"{head}{eq}{shown}"


def hide_secrets_in_title(argv: Sequence[str]) -> bool:
    """When a command line holds a secret (`--store postgresql://user:PASSWORD@...`), replace this process's
    title, what `ps`, /proc/PID/cmdline and Ray read, with the same line masked; True when it did.

    Ray records a driver's command line (its job's entrypoint, from /proc) in the cluster's job table at
    `ray.init`, where the dashboard and `ray list jobs` show it to everyone on the cluster, long after the
    process ended. The real line is visible only for the moment between exec and this call; CLOWNCAR_STORE or
    CLOWNCAR_STORE_FILE keep a password off the command line altogether."""
    shown = [redact_arg(arg) for arg in argv]
    if shown == list(argv):
        return False
    import setproctitle

    setproctitle.setproctitle(shlex.join(shown))
    return True


def write_private(path: Path, text: str, exclusive: bool = False) -> None:
    """Write `text` to a file only its owner can read (0600 from creation on, so no reader catches it open).
    `exclusive`: fail with FileExistsError instead of replacing an existing file."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        os.fchmod(fh.fileno(), 0o600)  # an existing file keeps its old mode through O_CREAT
        fh.write(text)
