"""`clowncar trial run`: train and evaluate one trial on this machine, without Ray."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; two runs into one folder are the user's to avoid
    fcntl = None  # type: ignore[assignment]

import typer

app = typer.Typer(help="Run a single trial on this machine (no Ray).", no_args_is_help=True)


def run(
    config: Annotated[Path | None, typer.Argument(
        help="YAML/JSON trial config, an orchestrator trial.json or a trial's result.json (the config it ran; "
        "optional with --preset).")] = None,
    out: Annotated[Path, typer.Option(
        "--out", help="Trial directory: result.json, events.jsonl and train.log as it runs, the quantized "
        "model model.ptz at the end.")] = ...,
    preset: Annotated[str | None, typer.Option("--preset", help="Base preset under the config.")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", metavar="KEY=VALUE", help="Dotted override, e.g. train.iterations=100; repeatable.")] = None,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace an earlier trial in --out (its result, log, events and model.ptz are removed "
        "before this one starts).")] = False,
) -> None:
    """Train, evaluate and quantize one trial. Exit code: 0 ok (also over the size cap), 1 error, 2 bad input,
    3 diverged, 4 OOM, 130 interrupted (Ctrl-C or SIGTERM; the run's files are removed).

    For several processes use `torchrun --nproc-per-node N -m clowncar.worker CONFIG --out DIR`."""
    from clowncar.interrupts import interrupt_on_signals

    with interrupt_on_signals():  # from the start: a SIGTERM while torch imports is an interrupt too, not 143
        _run(config, out, preset, set_ or [], overwrite)


def _run(config: Path | None, out: Path, preset: str | None, overrides: list[str], overwrite: bool = False) -> None:
    from clowncar.buildable import check_buildable
    from clowncar.config_load import load_config
    from clowncar.data.paths import missing_dirs
    from clowncar.errors import EXIT_BAD_INPUT, ConfigError, RunFailed
    from clowncar.events import RESULT_FILE, read_result
    from clowncar.interrupts import Interrupted, signals_ignored
    from clowncar.worker.run import run_trial

    if config is None and preset is None:  # the bare defaults are a full-size model: never run one by accident
        raise ConfigError("give a trial config file or --preset NAME (`clowncar config presets` lists them)")
    try:
        cfg = load_config(config, preset, overrides)
    except ConfigError as err:
        from clowncar.orchestrator.spec import with_spec_hint

        raise with_spec_hint(err, config) from None
    check_buildable(cfg)  # before --out is made: a config that cannot build leaves nothing behind
    created = missing_dirs(out)  # what this run makes: taken back when it keeps nothing
    with running_in(out, created):
        earlier_trial(out, overwrite)
        since = time.time() - 1.0  # a margin for file systems that keep coarse modification times
        try:
            code = run_trial(cfg, out)
        except KeyboardInterrupt:
            with signals_ignored():  # a second Ctrl-C must not leave the clean-up half done
                _discard(out, created, since)
            raise Interrupted("interrupted") from None
    if not code:
        return
    result = read_result(out / RESULT_FILE) or {}
    reason = str(result.get("reason") or "no reason recorded")
    if code == EXIT_BAD_INPUT:  # rejected before its first step: nothing worth keeping, so no folder is left
        if created:
            _discard(out, created, since)
        raise RunFailed(f"trial rejected: {reason.split(': ', 1)[-1]}", code)
    raise RunFailed(f"trial {result.get('status', 'error')}: {reason} (log: {out / 'train.log'})", code)


@contextmanager
def running_in(out: Path, created: list[Path]) -> Iterator[None]:
    """Make `out` and hold an exclusive lock on it while the body runs: a second `trial run` into the folder of
    one still running is refused, where its --overwrite removed the running trial's files and the two wrote one
    folder (train.log of the one, result.json and model.ptz of the other). A refusal, or a run refused before it
    wrote anything, leaves no folder it made (`created`) behind."""
    from clowncar.data.paths import make_output_dir, remove_created
    from clowncar.errors import ClownCarError, ConfigError

    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} exists and is not a directory")
    make_output_dir(out, "the trial directory")
    try:
        fd = os.open(out, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise ClownCarError(f"{out} is the folder of a trial running now (another `clowncar trial "
                                        "run`): wait for it to end, or choose another --out") from None
            yield
        finally:
            os.close(fd)
    except BaseException:
        remove_created(created)  # each only while empty: a failed trial's files stay
        raise


def _trial_files() -> tuple[str, ...]:
    """What a trial writes into its folder: the run's files as it goes, model.ptz at the end."""
    from clowncar.worker.artifact import ARTIFACT_FILE
    from clowncar.worker.run import RUN_FILES

    return (*RUN_FILES, ARTIFACT_FILE)


def earlier_trial(out: Path, overwrite: bool) -> None:
    """Refuse an `out` that holds another trial's files (a rerun into it would replace that trial, and a rerun
    cut short would leave only its model.ptz); with `overwrite`, remove them before this trial starts, so that
    what an interrupt leaves is never half of each."""
    from clowncar.errors import ClownCarError
    from clowncar.events import RESULT_FILE, read_result

    found = [name for name in _trial_files() if (out / name).is_file()]
    if not found:
        return
    if not overwrite:
        result = read_result(out / RESULT_FILE) or {}
        what = f" (status {result['status']})" if isinstance(result.get("status"), str) else ""
        raise ClownCarError(f"{out} holds an earlier trial{what}: {', '.join(found)}; pass --overwrite to replace "
                          "it, or choose another --out")
    for name in found:
        (out / name).unlink()
    typer.echo(f"removed the earlier trial's {', '.join(found)} from {out} (--overwrite)")


def _discard(out: Path, created: list[Path], since: float) -> None:
    """Leave no half-written trial: a folder this run made goes whole, with the parents it made; in a folder
    that was there before, only what this run wrote (modified since it began) goes, so an interrupt that comes
    before the run clears the folder leaves the previous trial's files as they were."""
    from clowncar.data.paths import remove_created

    if created:
        shutil.rmtree(out, ignore_errors=True)
        remove_created(created[1:])  # created[0] is `out` itself
        return
    for name in _trial_files():
        # the hidden names: an atomic write cut off between its write and its rename
        for path in [out / name, *out.glob(f".{name}.tmp*")]:
            if _modified_since(path, since):
                path.unlink(missing_ok=True)


def _modified_since(path: Path, since: float) -> bool:
    try:
        return path.stat().st_mtime >= since
    except OSError:  # not there
        return False


# Registered here rather than decorated: mutation testing (mutmut) leaves decorated functions alone.
app.command("run")(run)
