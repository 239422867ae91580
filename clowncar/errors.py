"""Errors a user can cause, and the exit codes of every clowncar command. The CLI prints an error as one line
(`clowncar: error: ...`) and exits with its code; a traceback only with CLOWNCAR_DEBUG=1."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3
EXIT_OOM = 4
EXIT_INTERRUPTED = 130
EXIT_READER_GONE = 141

EXIT_CODES: dict[int, str] = {
    EXIT_OK: "ok (a trial over the size cap too: `over_cap: true` in result.json; `--help` and a bare command "
             "group, which print help)",
    EXIT_FAILED: "a run failed: the trial errored, a worker or the driver failed (a submitted sweep's job too), "
                 "the store failed while a sweep ran, the cluster's job server failed, or an internal error (a bug)",
    EXIT_BAD_INPUT: "bad input, found before anything runs: usage, config, sweep spec, data, artifact, store URL "
                    "or a store that cannot be used, a cluster address nobody answers at",
    EXIT_DIVERGED: "the trial diverged (NaN/inf train loss or train loss > 3 ln V, or a NaN/inf final eval, raw "
                   "or quantized)",
    EXIT_OOM: "the trial ran out of memory (GPU or host)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C or SIGTERM); a sweep can be resumed",
    EXIT_READER_GONE: "the output's reader closed the pipe first (a command piped into `head`), as 128 + SIGPIPE; "
                      "nothing is printed",
}
"""What each exit code means; README.md's table says the same (tests/test_exit_codes.py checks it)."""


class ClownCarError(Exception):
    """Bad input or an unusable environment: shown to the user as one line, never as a traceback."""

    exit_code = EXIT_BAD_INPUT


class ConfigError(ClownCarError):
    """A trial config or sweep spec that cannot be used (unknown key, impossible shape, bad value)."""


class DataError(ClownCarError):
    """Missing, corrupt or unusable data: shards, tokenizer, corpus."""


class StoreError(ClownCarError):
    """The results store cannot be reached or refuses the operation."""


class RunFailed(ClownCarError):
    """Something ran and did not succeed (a trial errored, diverged or ran out of memory): its exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def error_line(err: BaseException, whole: bool = False) -> str:
    """`Type: message` in one line: the message's first line, or all of it joined (`whole`). A message that
    carries a whole traceback (Ray Tune wraps a trial's failure that way) gives its last line, the exception that
    ended it, instead of the 'Traceback ...' header or a screenful of frames."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    if not lines:
        return type(err).__name__
    if lines[0].startswith("Traceback (most recent call last)"):
        lines = lines[-1:]
    return f"{type(err).__name__}: {' '.join(lines) if whole else lines[0]}"
