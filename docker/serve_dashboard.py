"""Serve optuna-dashboard on the results store named by CLOWNCAR_STORE.

Why not `optuna-dashboard "$CLOWNCAR_STORE"`: a command line is world-readable (`ps` on the host shows every
container's arguments to every local user), and the store URL carries the database password. This launcher
reads the URL from the environment (readable only by the process owner) and prints it with the password masked.

    CLOWNCAR_STORE=postgresql+psycopg://... python docker/serve_dashboard.py --host 127.0.0.1 --port 8080
"""

from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)

    from clowncar.dashboard import serve
    from clowncar.errors import ClownCarError

    url = os.environ.get("CLOWNCAR_STORE", "")
    if not url:
        print("serve_dashboard: error: CLOWNCAR_STORE is not set (the results store URL)", file=sys.stderr)
        return 2
    try:
        serve(url, args.host, args.port)
    except ClownCarError as exc:  # the store cannot be opened, or the port is taken
        print(f"serve_dashboard: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
