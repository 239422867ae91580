"""`python -m clowncar.worker CONFIG --out DIR [--preset P] [--set k=v ...]`, alone or under torchrun.

CONFIG is a YAML/JSON trial config or a trial.json from the orchestrator. Exit codes: 0 ok, 1 error,
2 unusable config, arguments or data (found before the first step), 3 diverged, 4 out of memory,
130 interrupted (Ctrl-C or SIGTERM; what the trial wrote so far is kept)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from clowncar.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED, ClownCarError
from clowncar.events import RESULT_FILE, read_result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clowncar.worker", description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path,
                        help="YAML/JSON trial config, an orchestrator trial.json or a trial's result.json")
    parser.add_argument("--out", type=Path, required=True, help="trial directory for result.json, events, log")
    parser.add_argument("--preset", default=None, help="base preset under the config")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="dotted override, e.g. train.iterations=100 (repeatable)")
    args = parser.parse_args(argv)
    from clowncar.interrupts import interrupt_on_signals

    try:
        with interrupt_on_signals():  # SIGTERM (torchrun stopping its ranks, `kill`) ends as Ctrl-C does
            return _run(args)
    except KeyboardInterrupt:  # the trial directory is kept: its train.log says how far the run came
        print("clowncar.worker: error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _run(args: argparse.Namespace) -> int:
    from clowncar.config_load import load_config
    from clowncar.worker.run import run_trial

    try:
        cfg = load_config(args.config, args.preset, args.overrides)
        code = run_trial(cfg, args.out)
    except ClownCarError as err:  # bad input found before the trial starts: one line, exit 2
        print(f"clowncar.worker: error: {err}", file=sys.stderr)
        return err.exit_code
    if code == EXIT_BAD_INPUT:  # rejected before its first step: result.json holds why
        reason = (read_result(args.out / RESULT_FILE) or {}).get("reason")
        print(f"clowncar.worker: error: trial rejected: {reason}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
