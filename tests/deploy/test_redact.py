"""The redaction helper hides database passwords and Ray tokens in every form they travel in."""

from __future__ import annotations

import os
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import make_url

from clowncar.redact import MASK, redact_text, redact_url

PW = "Zq9-s3cret"

URL_FORMS = [
    f"postgresql+psycopg://clowncar:{PW}@db.internal:5432/runs",
    f"postgresql://clowncar:{PW}@db/runs",
    f"postgres://clowncar:{PW}@db/runs?sslmode=require",
    f"postgresql+psycopg://:{PW}@db/runs",
    f"postgresql+psycopg://clowncar@db/runs?password={PW}",
    f"postgresql+psycopg://clowncar@db/runs?sslmode=require&password={PW}&application_name=x",
    f"postgresql+psycopg://clowncar:{PW}@[::1]:5432/runs",
    f"postgresql+psycopg://clowncar:{PW}@/runs?host=/var/run/postgresql",
    f"mysql+pymysql://root:{PW}@127.0.0.1/optuna",
    f"postgresql+psycopg://clowncar:{quote(PW + '@:/?#%')}@db/runs",
]


@pytest.mark.parametrize("url", URL_FORMS)
def test_redact_url_hides_the_password_and_keeps_the_rest(url: str) -> None:
    out = redact_url(url)
    assert PW not in out
    assert MASK in out
    before, after = make_url(url), make_url(out)
    assert (after.drivername, after.username, after.host, after.port, after.database) == (
        before.drivername, before.username, before.host, before.port, before.database)
    assert {k: v for k, v in after.query.items() if k != "password"} == {
        k: v for k, v in before.query.items() if k != "password"}


@pytest.mark.parametrize("url", URL_FORMS)
def test_redact_text_hides_the_password_inside_a_sentence(url: str) -> None:
    line = f"sweep smoke: cannot open store '{url}': connection refused (url={url})"
    out = redact_text(line)
    assert PW not in out and quote(PW) not in out
    assert out.startswith("sweep smoke: cannot open store")


def test_redact_url_leaves_urls_without_secrets_unchanged() -> None:
    for url in ["sqlite:///clowncar-runs/clowncar.db", "postgresql+psycopg://clowncar@db:5432/runs",
                "http://127.0.0.1:8265"]:
        assert redact_url(url) == url


def test_a_password_with_an_unescaped_at_sign_is_hidden() -> None:
    out = redact_url("postgresql://u:p@ss@db/x")
    assert "p@ss" not in out and "ss@db" not in out
    assert out == "postgresql://u:***@db/x"


def test_a_password_with_a_raw_space_is_hidden_whole() -> None:
    # The text rules stop a userinfo password at whitespace; the URL parser reads it to the '@'.
    url = "postgresql://clowncar:two words@db/runs"
    assert redact_url(url) == "postgresql://clowncar:***@db/runs"
    assert redact_url(url + "?sslmode=require&PASSWORD=x%20y") == (  # SQLAlchemy renders keys sorted
        "postgresql://clowncar:***@db/runs?PASSWORD=***&sslmode=require")


def test_unparseable_input_is_scrubbed_not_raised() -> None:
    assert redact_url(f"host=db password={PW} dbname=runs") == "host=db password=*** dbname=runs"
    assert PW not in redact_url(f"::not a url:: password='{PW} x'")


@pytest.mark.parametrize("text", [
    f"host=db port=5432 password={PW} dbname=runs",
    f"host=db password='{PW} with space' dbname=runs",
    f"POSTGRES_PASSWORD={PW}",
    f"RAY_AUTH_TOKEN={PW} ray start --head",
    f"Authorization: Bearer {PW}",
    f'{{"user": "clowncar", "password": "{PW}"}}',
    f"password: {PW}",
    f"{{'token': '{PW}'}}",
    f"Server=db;Uid=clowncar;Pwd={PW};",
])
def test_redact_text_hides_keyword_env_header_and_mapping_secrets(text: str) -> None:
    out = redact_text(text)
    assert PW not in out
    assert MASK in out


@pytest.mark.parametrize("text", ["/etc/passwd: not a SentencePiece model", "data/my-token: no such file",
                                  "model.secret: unknown key"])
def test_a_path_or_dotted_key_ending_in_a_secret_word_is_not_a_mapping(text: str) -> None:
    assert redact_text(text) == text


@pytest.mark.parametrize("url", [
    f"postgresql+psycopg://clowncar@db/runs?options=-c%20password%3D{quote(PW + '!')}&sslmode=require",
    f"postgresql+psycopg://clowncar@db/runs?options=-c+PASSWORD%3D{PW}",
    f"postgresql+psycopg://clowncar@db/runs?options=password%3D{PW}",
])
def test_a_password_inside_an_encoded_options_value_is_hidden(url: str) -> None:
    for out in (redact_url(url), redact_text(f"cannot open {url}: refused")):
        assert PW not in out and "%3D***" in out
    assert "sslmode=require" in redact_url(url) or "sslmode" not in url


def test_an_encoded_option_that_is_no_secret_is_kept() -> None:
    url = "postgresql+psycopg://clowncar@db/runs?options=-c%20search_path%3Dpublic"
    assert redact_text(url) == url


def test_redaction_is_idempotent() -> None:
    once = redact_text(" ".join(URL_FORMS))
    assert redact_text(once) == once


_pw_chars = st.characters(blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc"))


@settings(max_examples=150, deadline=None)
@given(tail=st.text(alphabet=_pw_chars, min_size=0, max_size=24))
def test_no_generated_password_survives_in_any_url_form(tail: str) -> None:
    pw = "Zq9" + tail  # a prefix that appears nowhere else in the URL
    encoded = quote(pw, safe="")
    for url in (f"postgresql+psycopg://clowncar:{encoded}@db:5432/runs",
                f"postgresql+psycopg://clowncar@db:5432/runs?password={quote_plus(pw)}"):
        for out in (redact_url(url), redact_text(f"store={url} failed")):
            assert pw not in out and encoded not in out and quote_plus(pw) not in out
    raw = f"postgresql://clowncar:{pw}@db/runs"  # as a careless log line would print it, unescaped
    assert pw not in redact_text(f"connecting to {raw} ...")


@pytest.mark.parametrize("url", URL_FORMS)
def test_the_store_shows_urls_through_the_same_rule(url: str) -> None:
    from clowncar.store.engine import safe_text, safe_url

    for shown in (safe_url(url), safe_url(make_url(url)), safe_text(f"cannot open {url}")):
        assert PW not in shown and quote(PW) not in shown and MASK in shown


@pytest.mark.parametrize("url", [f"postgresql+psycopg://clowncar@db:notaport/runs?password={PW}",
                                 f"postgresql+psycopg://clowncar:{PW}@db:notaport/runs"])
def test_an_error_line_about_a_bad_store_url_shows_no_password(run_cli, url: str) -> None:
    r = run_cli("store", "ls", "--store", url)
    assert r.returncode == 2 and r.stderr.startswith("clowncar: error: not a database URL"), r.stderr
    assert PW not in r.stderr + r.stdout and r.stderr.count("\n") == 1


def test_a_private_file_is_owner_only_from_its_first_byte(tmp_path) -> None:
    from clowncar.redact import write_private

    path = tmp_path / "secret"
    path.write_text("old")
    path.chmod(0o644)
    write_private(path, PW)  # an existing file loses its old mode too
    assert path.read_text() == PW and path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(FileExistsError):
        write_private(path, "other", exclusive=True)
    fresh = tmp_path / "fresh"
    write_private(fresh, PW, exclusive=True)
    assert fresh.stat().st_mode & 0o777 == 0o600


def test_a_private_file_is_created_owner_only_before_its_mode_is_set(tmp_path, monkeypatch) -> None:
    from clowncar.redact import write_private

    modes: list[int] = []  # the mode the file had at creation, before write_private's own fchmod
    monkeypatch.setattr(os, "fchmod", lambda fd, _mode: modes.append(os.fstat(fd).st_mode & 0o777))
    old_umask = os.umask(0)  # a permissive umask must not open the window
    try:
        write_private(tmp_path / "secret", PW)
    finally:
        os.umask(old_umask)
    assert modes == [0o600]


@pytest.mark.parametrize("url", [f"postgresql+psycopg://clowncar:{PW}@127.0.0.1:1/runs",
                                 f"postgresql+psycopg://clowncar@127.0.0.1:1/runs?password={PW}"])
def test_the_study_open_error_shows_no_password(url: str) -> None:
    from clowncar.errors import StoreError
    from clowncar.orchestrator.tune import open_study

    with pytest.raises(StoreError) as err:  # nothing listens on port 1: Optuna's storage cannot connect
        open_study(url)
    assert str(err.value).startswith("optuna storage at postgresql+psycopg://clowncar")
    assert PW not in str(err.value) and MASK in str(err.value) and "\n" not in str(err.value)


def test_a_private_file_is_written_as_utf8_whatever_the_locale(tmp_path, ascii_locale_child) -> None:
    """Where the locale's encoding is ASCII a non-ASCII secret is still written, as UTF-8."""
    ascii_locale_child("import sys; from pathlib import Path; from clowncar.redact import write_private; "
                       "write_private(Path(sys.argv[1]), 'p\\u00e4ss\\u00a7')", str(tmp_path / "pgpass"))
    assert (tmp_path / "pgpass").read_bytes() == "p\u00e4ss\u00a7".encode()


def test_a_url_without_a_secret_is_shown_as_typed() -> None:
    for url in ("sqlite:///:memory:", "sqlite:////data/runs:2026/c.db", "sqlite:///runs%20x/c.db",
                "postgresql+psycopg://clown@db.lan:5432/runs"):
        assert redact_url(url) == url
    assert redact_url("postgresql://u:pw@h/db?sslmode=require") == "postgresql://u:***@h/db?sslmode=require"
    assert redact_url("postgresql://u@h/db?password=pw") == "postgresql://u@h/db?password=***"


@pytest.mark.parametrize(("arg", "shown"), [
    (f"postgresql+psycopg://clowncar:{PW}@db/runs", "postgresql+psycopg://clowncar:***@db/runs"),
    (f"--store=postgresql+psycopg://clowncar:{PW}@db/runs", "--store=postgresql+psycopg://clowncar:***@db/runs"),
    (f"--store=postgresql://u:{PW} x@db/runs", "--store=postgresql://u:***@db/runs"),  # a raw space, whole
    (f"RAY_AUTH_TOKEN={PW}", "RAY_AUTH_TOKEN=***"),
    ("--num-cpus=2", "--num-cpus=2"),
    ("sweeps/a=b.yaml", "sweeps/a=b.yaml"),
    (f"--store=postgresql://u@db/runs?password={PW}", "--store=postgresql://u@db/runs?password=***"),  # 2 '='
])
def test_a_command_line_argument_is_shown_with_its_secret_masked(arg: str, shown: str) -> None:
    from clowncar.redact import redact_arg

    assert redact_arg(arg) == shown


def test_a_command_line_without_a_secret_keeps_its_title() -> None:
    import setproctitle

    from clowncar.redact import hide_secrets_in_title

    before = setproctitle.getproctitle()
    assert not hide_secrets_in_title(["clowncar", "sweep", "status", "s", "--store", "sqlite:///runs/c.db"])
    assert setproctitle.getproctitle() == before


def test_a_command_line_with_a_secret_retitles_this_process_masked() -> None:
    import setproctitle

    from clowncar.redact import hide_secrets_in_title

    before = setproctitle.getproctitle()
    try:
        assert hide_secrets_in_title(["clowncar", "sweep", "ls", "--store", f"postgresql://u:{PW}@h/db"])
        assert setproctitle.getproctitle() == "clowncar sweep ls --store 'postgresql://u:***@h/db'"
    finally:
        setproctitle.setproctitle(before)


def test_a_password_given_on_the_command_line_is_masked_in_the_process_title(tmp_path) -> None:
    """What `ps` shows and what Ray records as a driver's entrypoint (its job table) is /proc/PID/cmdline. The
    command waits on a server that accepts connections and never answers (the store's 10 s connect timeout)."""
    import shlex
    import socket
    import subprocess
    import sys
    import time
    from pathlib import Path

    import clowncar

    env = {**os.environ, "PYTHONPATH": str(Path(clowncar.__file__).parents[1]), "CLOWNCAR_RUNS_DIR": str(tmp_path)}
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"postgresql+psycopg://clowncar:{PW}@127.0.0.1:{silent.getsockname()[1]}/runs"
        proc = subprocess.Popen([sys.executable, "-m", "clowncar", "sweep", "status", "s", f"--store={url}"],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        cmdline = b""
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and proc.poll() is None and b"***" not in cmdline:
                time.sleep(0.05)
                cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
        finally:
            proc.kill()
            out, err = proc.communicate()
    shown = cmdline.rstrip(b"\0").decode()
    assert shlex.split(shown) == ["clowncar", "sweep", "status", "s", f"--store={url.replace(PW, MASK)}"], (out, err)
    assert PW not in out + err


@pytest.mark.parametrize("key", ["password", "sslpassword", "PASSWORD"])
def test_a_masked_query_password_keeps_the_separator_after_its_url(key: str) -> None:
    # a store error reads 'cannot open store URL: why'; masking it again (the CLI scrubs every error line) ate
    # the ':' with the value, as a second pass over `?password=***:` took the ':' for part of the password
    line = f"cannot open store postgresql+psycopg://bob@127.0.0.1:1/db?{key}={PW}: connection failed: refused"
    shown = f"cannot open store postgresql+psycopg://bob@127.0.0.1:1/db?{key}=***: connection failed: refused"
    assert redact_text(line) == shown and redact_text(shown) == shown
    options = f"db?options=-c%20{key}%3D{PW}: refused"  # the same inside an encoded options value
    assert redact_text(options) == f"db?options=-c%20{key}%3D***: refused" == redact_text(redact_text(options))
    # a ':' inside the value (not one before a space or the end) is still the password's
    assert redact_text(f"db?{key}=a:{PW} x") == f"db?{key}=*** x"


def test_the_store_error_for_a_query_password_keeps_its_colon(run_cli) -> None:
    r = run_cli("store", "ls", "--store", f"postgresql+psycopg://bob@127.0.0.1:1/db?password={PW}")
    assert r.returncode == 2 and PW not in r.stderr + r.stdout, r.stderr
    assert r.stderr.startswith("clowncar: error: cannot open store postgresql+psycopg://bob@127.0.0.1:1/db?"
                               "password=***: "), r.stderr
