"""Where things are, from the environment and nowhere else: each variable's default, `~` expanded, data names
resolved under the data root while paths are kept as given, the compile cache handed to workers unless they chose
their own, and the secret variables held out of every child's environment."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import pytest

from clowncar import settings as settings_mod
from clowncar.errors import ConfigError
from clowncar.settings import DEFAULT_COMPILE_CACHE, hold_secret_env, load_settings, read_secret_file


def test_every_variable_has_its_documented_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    s = load_settings({})
    assert s.runs_dir == Path("clowncar-runs") and s.data_dir == tmp_path / ".cache" / "clowncar" / "data"
    assert s.ray_address == "" and s.store_env == "" and s.store_file is None
    assert DEFAULT_COMPILE_CACHE == "~/.cache/clowncar/compile"
    assert s.compile_cache_dir == tmp_path / ".cache" / "clowncar" / "compile"
    assert s.store_url == "sqlite:///clowncar-runs/clowncar.db"
    empty = load_settings({"CLOWNCAR_RUNS_DIR": "", "CLOWNCAR_DATA_DIR": "", "CLOWNCAR_STORE": "",
                           "CLOWNCAR_STORE_FILE": "", "CLOWNCAR_COMPILE_CACHE": ""})
    assert empty == s  # set but empty is unset


def test_each_variable_is_read_and_home_expanded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    s = load_settings({"CLOWNCAR_RUNS_DIR": "~/runs", "CLOWNCAR_DATA_DIR": "~/data", "CLOWNCAR_RAY_ADDRESS": "auto",
                       "CLOWNCAR_COMPILE_CACHE": "cc", "CLOWNCAR_STORE_FILE": "~/url"})
    assert (s.runs_dir, s.data_dir, s.ray_address) == (tmp_path / "runs", tmp_path / "data", "auto")
    assert s.compile_cache_dir == tmp_path / "cc"  # made absolute: workers start in other folders
    assert s.store_file == tmp_path / "url"


def test_names_resolve_under_the_data_root_and_paths_stay_as_given(monkeypatch: pytest.MonkeyPatch,
                                                                    tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    s = load_settings({"CLOWNCAR_DATA_DIR": "/data"})
    assert s.dataset_dir("fineweb10B_sp1024") == Path("/data/datasets/fineweb10B_sp1024")
    assert s.tokenizer_path("fineweb_1024_bpe.model") == Path("/data/tokenizers/fineweb_1024_bpe.model")
    assert s.dataset_dir("/abs/ds") == Path("/abs/ds")
    assert s.dataset_dir("rel/ds") == Path("rel/ds")
    assert s.dataset_dir("./ds") == Path("ds") and s.tokenizer_path(".hidden.model") == Path(".hidden.model")
    assert s.tokenizer_path("~/t.model") == tmp_path / "t.model"


def test_the_compile_cache_goes_to_workers_that_chose_none() -> None:
    s = load_settings({"CLOWNCAR_COMPILE_CACHE": "/cache"})
    assert s.compile_cache_env({}) == {"TORCHINDUCTOR_CACHE_DIR": "/cache"}
    assert s.compile_cache_env({"TORCHINDUCTOR_CACHE_DIR": ""}) == {"TORCHINDUCTOR_CACHE_DIR": "/cache"}
    assert s.compile_cache_env({"TORCHINDUCTOR_CACHE_DIR": "/mine"}) == {}


def refused(path: Path) -> str:
    with pytest.raises(ConfigError) as err:
        read_secret_file(path, "WHAT")
    return str(err.value)


def test_a_secret_file_is_read_stripped_or_refused_in_one_line(tmp_path: Path) -> None:
    f = tmp_path / "secret"
    f.write_text("  url\n\n")
    f.chmod(0o640)
    assert read_secret_file(f, "WHAT") == "url"
    f.chmod(0o601)
    assert refused(f) == f"WHAT {f} is readable by other users (mode 0601): chmod 600 {f}"
    f.chmod(0o600)
    f.write_bytes(b"\xff\xfe")
    assert refused(f) == f"WHAT {f}: not UTF-8 text"
    assert refused(tmp_path) == f"WHAT {tmp_path}: Is a directory"


def test_held_secrets_leave_the_environment_but_not_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings_mod, "_held", {"CLOWNCAR_STORE": "stale"})
    monkeypatch.setenv("CLOWNCAR_STORE", "sqlite:///held.db")
    monkeypatch.setenv("CLOWNCAR_RAY_ADDRESS", "auto")
    hold_secret_env()
    assert "CLOWNCAR_STORE" not in os.environ and os.environ["CLOWNCAR_RAY_ADDRESS"] == "auto"
    assert load_settings().store_url == "sqlite:///held.db" and load_settings().ray_address == "auto"
    hold_secret_env()  # nothing in the environment now: what was held is forgotten
    assert load_settings().store_env == ""
    monkeypatch.setenv("CLOWNCAR_STORE", "sqlite:///env.db")
    assert load_settings().store_url == "sqlite:///env.db"


def test_a_secret_file_is_read_as_utf8_whatever_the_locale(tmp_path: Path, ascii_locale_child: Any) -> None:
    """Where the locale's encoding is ASCII a non-ASCII password still reads."""
    f = tmp_path / "url"
    f.write_text("postgresql://u:p\u00e4ss@h/db\n", encoding="utf-8")
    f.chmod(0o600)
    proc = ascii_locale_child("import sys; from pathlib import Path; from clowncar.settings import read_secret_file; "
                              "sys.stdout.write(ascii(read_secret_file(Path(sys.argv[1]), 'X')))", str(f))
    assert proc.stdout == ascii("postgresql://u:p\u00e4ss@h/db")


def test_the_store_retry_window_is_120_s_unless_set_and_a_bad_one_is_refused_in_one_line() -> None:
    assert load_settings({}).store_retry_seconds == 120.0
    assert load_settings({"CLOWNCAR_STORE_RETRY_SECONDS": ""}).store_retry_seconds == 120.0
    assert load_settings({"CLOWNCAR_STORE_RETRY_SECONDS": " 30.5 "}).store_retry_seconds == 30.5
    assert load_settings({"CLOWNCAR_STORE_RETRY_SECONDS": "0"}).store_retry_seconds == 0.0  # no retries
    for bad in ("-1", "nan", "inf", "2m"):
        settings = load_settings({"CLOWNCAR_STORE_RETRY_SECONDS": bad})  # read lazily: workers never ask
        with pytest.raises(ConfigError, match=f"CLOWNCAR_STORE_RETRY_SECONDS must be a number of seconds >= 0, "
                                              f"not '{bad}'"):
            _ = settings.store_retry_seconds


@pytest.mark.parametrize(("text", "seconds"), [("", 30.0), ("7.5", 7.5), (" 60 ", 60.0)])
def test_the_ledgers_lease_ttl_is_a_positive_number_of_seconds(text: str, seconds: float) -> None:
    assert settings_mod.lease_ttl_seconds({"CLOWNCAR_LEASE_TTL_S": text} if text else {}) == seconds


@pytest.mark.parametrize("text", ["abc", "0", "-5", "nan", "inf"])
def test_a_lease_ttl_that_is_no_positive_number_is_refused_in_one_line(text: str) -> None:
    with pytest.raises(ConfigError) as err:
        settings_mod.lease_ttl_seconds({"CLOWNCAR_LEASE_TTL_S": text})
    assert str(err.value) == f"CLOWNCAR_LEASE_TTL_S must be a number of seconds > 0, not {text!r}"


@pytest.mark.parametrize(("gpus", "placement", "refused"), [(1, "ledger", True), (1, "ray", False), (0, "ledger", False)])
def test_a_bad_lease_ttl_refuses_a_gpu_sweep_on_the_ledger_before_it_starts(
        gpus: int, placement: str, refused: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Read inside the ledger's start, CLOWNCAR_LEASE_TTL_S=abc printed 'GPU ledger unreachable (ValueError: could
    not convert string to float)' and the sweep went on with Ray placing its trials (seen with --num-gpus 1)."""
    import yaml

    import clowncar.cli as cli

    spec = tmp_path / "g.yaml"
    spec.write_text(yaml.safe_dump({"name": "g", "preset": "tiny-cpu", "sampler": "grid",
                                    "resources": {"gpus": gpus, "cpus": 1, "placement": placement}}))
    monkeypatch.setenv("CLOWNCAR_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("CLOWNCAR_LEASE_TTL_S", "abc")
    monkeypatch.setattr("clowncar.orchestrator.preflight.check_local_data", lambda spec: None)
    started: list[str] = []
    monkeypatch.setattr("clowncar.orchestrator.tune.run_sweep", lambda spec, opts: started.append(spec.name) or {})
    argv = ["sweep", "run", str(spec), "--num-gpus", "1", "--quiet"]
    if not refused:
        with contextlib.suppress(SystemExit):  # what follows the stand-in sweep is not this test's business
            cli.main(argv)
        assert started == ["g"]
        return
    with pytest.raises(SystemExit) as ended:
        cli.main(argv)
    assert ended.value.code == 2 and started == []
    assert capsys.readouterr().err == "clowncar: error: CLOWNCAR_LEASE_TTL_S must be a number of seconds > 0, not 'abc'\n"
