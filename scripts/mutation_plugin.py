"""A pytest plugin that scripts/mutation.sh loads into mutmut's runs: every selected test runs against every
mutant of the module.

mutmut 3 runs, for each mutant, only the tests during which the mutated function was called. It credits a
call to the test in whose setup or body it happened, so a function called once to build a module- or
session-scoped fixture is credited to the first test that used the fixture, and the later tests that check
what the fixture built never see its mutants. The selection per module is small and fast, so running it whole
for each mutant is affordable and leaves no blind spot of that kind.

During that stats run, a test that starts `python -m clowncar` (the run_cli fixture) would hand the child
MUTANT_UNDER_TEST=stats, and the child's mutmut, outside the scratch checkout, cannot find its config and
fails. The variable is hidden from children for the stats run only (this process keeps mutmut's own copy), so
they run the original code; in the runs of each mutant the children inherit the mutant's name and run it."""

from __future__ import annotations

import os

import pytest

_stats_run = False


def pytest_configure(config: pytest.Config) -> None:
    global _stats_run
    if os.environ.get("MUTANT_UNDER_TEST") == "stats":
        from mutmut.mutation.trampoline import get_mutant_under_test

        _stats_run = True
        del os.environ["MUTANT_UNDER_TEST"]
        assert get_mutant_under_test() == "stats"  # mutmut's process-local copy still says so


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    global _stats_run
    if not _stats_run:
        return
    _stats_run = False
    os.environ["MUTANT_UNDER_TEST"] = "stats"
    from mutmut.state import state

    ids = {item.nodeid.removeprefix("mutants/") for item in session.items}
    covered = state().tests_by_mangled_function_name
    for function in list(covered):
        covered[function] |= ids
