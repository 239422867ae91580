"""A pytest plugin that scripts/mutation.sh loads into mutmut's runs: every selected test runs against every
mutant of the module.

mutmut 3 runs, for each mutant, only the tests during which the mutated function was called. It credits a
call to the test in whose setup or body it happened, so a function called once to build a module- or
session-scoped fixture is credited to the first test that used the fixture, and the later tests that check
what the fixture built never see its mutants. The selection per module is small and fast, so running it whole
for each mutant is affordable and leaves no blind spot of that kind."""

from __future__ import annotations

import os

import pytest


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    if os.environ.get("MUTANT_UNDER_TEST") != "stats":
        return
    from mutmut.state import state

    ids = {item.nodeid.removeprefix("mutants/") for item in session.items}
    covered = state().tests_by_mangled_function_name
    for function in list(covered):
        covered[function] |= ids
