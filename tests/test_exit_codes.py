"""The exit codes are one table: the code's (`clowncar.errors.EXIT_CODES`), the README's, and what each part of
clowncar actually exits with."""

from __future__ import annotations

import re
from pathlib import Path

from clowncar.errors import EXIT_CODES, ClownCarError, RunFailed
from clowncar.orchestrator.commands import SweepInterrupted
from clowncar.orchestrator.start import StoreFailed
from clowncar.orchestrator.trainable import EXIT_STATUS
from clowncar.worker.run import EXIT_CODES as WORKER_EXIT_CODES

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_table() -> dict[int, str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Errors and exit codes", 1)[1].split("\n## ", 1)[0]
    return {int(code): meaning.strip() for code, meaning in re.findall(r"^\| (\d+) \| (.+) \|$", section, re.M)}


def test_readme_table_of_exit_codes_is_the_codes_table() -> None:
    assert readme_table() == EXIT_CODES


def test_every_exit_code_clowncar_uses_is_in_the_table() -> None:
    used = {ClownCarError.exit_code, RunFailed("x").exit_code, SweepInterrupted.exit_code, StoreFailed.exit_code,
            *WORKER_EXIT_CODES.values(), *EXIT_STATUS}
    assert used <= set(EXIT_CODES), used - set(EXIT_CODES)
    assert ClownCarError.exit_code == 2 and SweepInterrupted.exit_code == 130
    assert WORKER_EXIT_CODES == {"ok": 0, "error": 1, "diverged": 3, "oom": 4, "rejected": 2}
    assert {code: WORKER_EXIT_CODES[status] for code, status in EXIT_STATUS.items()} == {
        code: code for code in EXIT_STATUS}  # the orchestrator reads the worker's codes as the worker means them
