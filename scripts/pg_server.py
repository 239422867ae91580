"""Start a throwaway PostgreSQL server on 127.0.0.1, print its admin URL, and keep it until this process gets
SIGTERM or SIGINT (then stop it and remove its files). scripts/mutation.sh shares one such server between the
pytest sessions of a mutation run through CLOWNCAR_TEST_PG_ADMIN_URL, instead of one server per mutant."""

from __future__ import annotations

import signal
import sys
import threading

from clowncar.store.pgserver import throwaway_postgres


def main() -> None:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with throwaway_postgres() as url:
        print(url, flush=True)
        while not stop.wait(1.0):
            pass


if __name__ == "__main__":
    sys.exit(main())
