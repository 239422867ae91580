"""`python -m clowncar.worker --help` names every CONFIG the worker takes, as `clowncar trial run --help` does."""

from __future__ import annotations

import pytest

from clowncar.worker.__main__ import main


def test_the_workers_help_names_a_trials_result_json_among_the_configs_it_takes(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit) as end:
        main(["--help"])
    assert end.value.code == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.strip().startswith("config "))
    assert "YAML/JSON trial config, an orchestrator trial.json or a trial's result.json" in line
