"""`clowncar sweep ...`: run, resume, rerun, submit, stop, status, ls. Heavy imports live inside the commands."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from clowncar.errors import ClownCarError
from clowncar.orchestrator.status_lines import failure_lines, failures_line, print_study, print_summary
from clowncar.orchestrator.stored_sweep import refuse_while_driven, spec_of, stored_spec, stored_sweep
from clowncar.settings import STORE_DEFAULT, STORE_HELP
from clowncar.words import counted

app = typer.Typer(help="Sweeps: Optuna-driven trials on Ray Tune, recorded in the results store.",
                  no_args_is_help=True)

StoreOpt = Annotated[str | None, typer.Option("--store", help=STORE_HELP)]
SubmitStoreOpt = Annotated[str | None, typer.Option(
    "--store", help="SQLAlchemy URL of the results store the job's driver on the head writes to, sent to it in a "
    f"private file (default: the head's own store, its {STORE_DEFAULT}; this machine's CLOWNCAR_STORE and "
    "CLOWNCAR_STORE_FILE are not sent).")]
AddressOpt = Annotated[str | None, typer.Option(
    "--address", help="Ray cluster to join: 'auto' on one of its nodes, or the head's HOST:6379 (not the job server's "
    "http://HEAD:8265 nor Ray Client's ray://: `sweep submit` runs one from elsewhere); default: embedded Ray on "
    "127.0.0.1")]
CpusOpt = Annotated[int | None, typer.Option("--num-cpus", min=1,
                                             help="Embedded Ray: CPUs to offer (default: all)")]
GpusOpt = Annotated[int | None, typer.Option("--num-gpus", min=0,
                                             help="Embedded Ray: GPUs to offer (default: detected)")]
QuietOpt = Annotated[bool, typer.Option("--quiet", help="No live progress")]
NameOpt = Annotated[str | None, typer.Option(
    "--name", help="Sweep name instead of the spec's `name` (1-64 letters, digits, '_', '-', '.'): a second run "
    "of one spec needs a name of its own")]


class SweepInterrupted(ClownCarError):
    """Ctrl-C or SIGTERM stopped the sweep; it can be resumed."""

    exit_code = 130


def _settings(store: str | None, address: str | None) -> tuple[str, Path, str]:
    from clowncar.settings import load_settings

    s = load_settings()
    return store or s.store_url, s.runs_dir, (address if address is not None else s.ray_address)


def _refuse_unusable_address(address: str | None, again: str) -> None:
    """A Ray Client address (from --address or CLOWNCAR_RAY_ADDRESS), through which Tune would drive the sweep
    from the cluster, or one that is no cluster address at all (a job server's http://, a typo) is one line of bad
    input before the command reads or writes anything (orchestrator/reach.py)."""
    from clowncar.orchestrator.reach import ENV, FLAG, refuse_unusable

    _, _, addr = _settings(None, address)
    if addr:  # empty: embedded Ray
        refuse_unusable(addr, FLAG if address else ENV, again)


def run_spec(spec: Any, store: str | None, address: str | None, num_cpus: int | None, num_gpus: int | None,
             quiet: bool, resume: bool, retry_failed: bool = False) -> dict[str, Any]:
    from clowncar.interrupts import interrupt_on_signals
    from clowncar.orchestrator.start import interrupted_line
    from clowncar.orchestrator.tune import RunOptions, run_sweep
    from clowncar.settings import check_runs_dir, lease_ttl_seconds, load_settings

    url, runs_dir, addr = _settings(store, address)  # runs_dir is created by what first writes there, so a
    # sweep refused before it starts (store unreachable, name taken) leaves no folder behind
    check_runs_dir(runs_dir)  # a file there would fail Ray's start only after the sweep was recorded
    if addr:  # a cluster: an address nobody answers at is bad input now, not 12 minutes of Ray's retries
        from clowncar.orchestrator.reach import ENV, FLAG, check_reachable

        check_reachable(addr, origin=FLAG if address else ENV)
    else:  # embedded Ray: the trials use this machine's GPUs and data, so too few GPUs or a missing dataset is
        from clowncar.orchestrator.preflight import check_embedded_gpus, check_local_data

        num_gpus = check_embedded_gpus(spec, num_gpus)  # bad input now; Ray starts with the GPUs counted here
        check_local_data(spec)
    opts = RunOptions(store_url=url, runs_dir=runs_dir, address=addr, num_cpus=num_cpus, num_gpus=num_gpus,
                      show=not quiet, resume=resume, retry_failed=retry_failed,
                      store_retry_s=load_settings().store_retry_seconds)  # a bad value: exit 2 before the sweep
    if spec.resources.gpus > 0 and spec.resources.placement == "ledger":
        lease_ttl_seconds()  # read by the ledger's start, where a bad value only turned the ledger off
    try:
        with interrupt_on_signals() as came:  # SIGTERM while it starts (no Ray yet, or Ray's start) as Ctrl-C
            opts.signalled = came  # a signal whose KeyboardInterrupt is lost in Ray's start stops it before a trial
            summary = run_sweep(spec, opts)
            if summary.get("interrupted") or came.is_set():  # the signal stopped the sweep, but its
                raise KeyboardInterrupt  # KeyboardInterrupt was lost on the way ("Exception ignored"): not exit 0
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (`ray job stop`), which the sweep turns into one
        # Said here, not left to `clowncar.cli`: typer turns a KeyboardInterrupt into a *returned* 130 under
        # standalone_mode=False, and the CLI then exited 0, silently (measured).
        try:
            line = interrupted_line(url, spec.name)
        except KeyboardInterrupt:  # one more Ctrl-C while the store is read for the line (a third one, that cut
            # the clean-up's end short): the line without what the store holds, not the bare `interrupted`
            line = f"sweep {spec.name} interrupted; continue it with `clowncar sweep resume {spec.name}`"
        raise SweepInterrupted(line) from None
    finally:
        ray_shut_down()
    from clowncar.interrupts import signals_ignored

    with signals_ignored():  # the sweep is over: a signal now would only cut its summary short (SIGTERM: -15)
        print_summary(summary)
        if (line := failures_line(url, spec.name)) is not None:
            typer.echo(line)
    return summary


def ray_shut_down() -> None:
    """Shut Ray down now, deaf to Ctrl-C and SIGTERM, instead of in Ray's exit hook: a signal there (the user
    pressing Ctrl-C as the summary appears) printed a traceback, ended the command 0, 1 or -15, and in 3 of 10
    tries (measured) left Ray's dashboard and runtime-env agents running and listening. The sweep is over by
    then: a signal has nothing left to stop."""
    from clowncar.orchestrator import head_watch, native_stderr

    head_watch.stop_watching(embedded_only=True)  # embedded Ray's shutdown stops its GCS: no head lost
    if "ray" in sys.modules:
        import ray

        from clowncar.interrupts import signals_ignored

        if ray.is_initialized():
            with signals_ignored():
                ray.shutdown()
    head_watch.stop_watching()
    native_stderr.restore()  # after the shutdown, whose C++ lines go to the log as well


def load_named_spec(path: Path, name: str | None) -> Any:
    """The spec in `path`, named `name` when one is given (`--name`), which must be a name a spec may have."""
    from clowncar.orchestrator.spec import NAME_RE, load_spec, spec_from_dict

    if name is not None and not NAME_RE.match(name):
        raise ClownCarError(f"--name '{name}' must be 1-64 letters, digits, '_', '-', '.'")
    parsed = load_spec(path)
    return parsed if name is None else spec_from_dict({**parsed.to_dict(), "name": name})


def run_cmd(spec: Annotated[Path, typer.Argument(help="Sweep spec (YAML)")], store: StoreOpt = None,
            address: AddressOpt = None, num_cpus: CpusOpt = None, num_gpus: GpusOpt = None,
            quiet: QuietOpt = False, name: NameOpt = None) -> None:
    """Run a sweep to the end of its budget (its plan is printed first, as `sweep plan` prints it)."""
    from clowncar.orchestrator.sweep_plan import plan_lines

    _refuse_unusable_address(address, "sweep run SPEC")
    parsed = load_named_spec(spec, name)
    for line in plan_lines(parsed):
        typer.echo(line)
    run_spec(parsed, store, address, num_cpus, num_gpus, quiet, resume=False)


def plan_cmd(spec: Annotated[Path, typer.Argument(help="Sweep spec (YAML)")], name: NameOpt = None) -> None:
    """What a spec would run, without running it: distinct trials, merged points, estimated GPU-hours, and
    whether the GPUs a trial asks for and the data it reads are on this machine."""
    from clowncar.orchestrator.sweep_plan import plan_lines

    parsed = load_named_spec(spec, name)
    for line in [*plan_lines(parsed), *machine_lines(parsed)]:
        typer.echo(line)


def machine_lines(spec: Any) -> list[str]:
    """What a plan (`sweep plan`, `sweep rerun --dry-run`) says of this machine: whether it has the GPUs a trial
    asks for and the data it reads (preflight.py)."""
    from clowncar.orchestrator.preflight import data_line, gpu_line

    return [line for line in (gpu_line(spec), data_line(spec)) if line]


def resume_cmd(name: Annotated[str, typer.Argument(help="Sweep name")], store: StoreOpt = None,
               address: AddressOpt = None, num_cpus: CpusOpt = None, num_gpus: GpusOpt = None,
               quiet: QuietOpt = False,
               retry_failed: Annotated[bool, typer.Option(
                   "--retry-failed", help="Also run again the trials that crashed or errored (a full disk, a killed "
                   "worker, data that was broken then): each gets a new attempt, and the failed one stops counting "
                   "against the budget")] = False) -> None:
    """Continue a sweep whose head died or that was stopped: finished trials never run again."""
    _refuse_unusable_address(address, f"sweep resume {name}")
    from clowncar.orchestrator.rerun_lines import child_seed_lines

    url, _, _ = _settings(store, address)
    spec = stored_spec(name, url)
    run_spec(spec, url, address, num_cpus, num_gpus, quiet, resume=True, retry_failed=retry_failed)
    for line in child_seed_lines(url, spec):  # a rerun's answer, as `sweep rerun` ends with it (walk 5, F17)
        typer.echo(line)


def rerun_cmd(name: Annotated[str, typer.Argument(help="Parent sweep")],
              top: Annotated[int, typer.Option("--top", min=1, help="How many best configs")] = 3,
              seeds: Annotated[str | None, typer.Option(
                  "--seeds", help="Comma-separated seeds (default: three at which the parent ran none of the "
                  "configs, from 1337,42,2025,314,999,7 in that order)")] = None,
              child: Annotated[str | None, typer.Option(
                  "--name", help="Child sweep name (default: NAME-rerun-topK, K the number of configs it reruns)")
              ] = None,
              base: Annotated[Path | None, typer.Option(
                  "--base", help="Run them from this sweep spec (its preset, overrides, data, budget) instead of "
                  "the parent's: needed for a sweep imported from files")] = None,
              keys: Annotated[str | None, typer.Option(
                  "--keys", help="Comma-separated config keys to carry from each config (default: all)")] = None,
              dry_run: Annotated[bool, typer.Option(
                  "--dry-run", help="Print the configs and the child sweep's plan; run nothing")] = False,
              store: StoreOpt = None, address: AddressOpt = None, num_cpus: CpusOpt = None,
              num_gpus: GpusOpt = None, quiet: QuietOpt = False) -> None:
    """Rerun the K best feasible configs of a sweep over seeds, as a child sweep (lineage kept)."""
    from clowncar.orchestrator import rerun_lines as say
    from clowncar.orchestrator.rerun import ParentMatch, child_spec, parent_seeds, parse_keys, plan_seeds
    from clowncar.orchestrator.spec import NAME_RE, load_spec

    if child is not None and not NAME_RE.match(child):
        raise ClownCarError(f"--name '{child}' must be 1-64 letters, digits, '_', '-', '.'")
    if child == name:  # the real run would find the parent there and advise resuming it
        raise ClownCarError(f"--name {child} is the parent sweep's own name: a rerun is a new sweep, so give it a "
                            f"name of its own, or leave --name out for {name}-rerun-topK")
    if not dry_run:  # a dry run joins no cluster
        _refuse_unusable_address(address, f"sweep rerun {name} ...")
    url, _, _ = _settings(store, address)
    seed_list = say.seed_list(seeds)
    carried = parse_keys(keys)
    base_spec = load_spec(base) if base is not None else None
    refuse_while_driven(name, url)  # its best configs are not final while it runs
    runs_on, configs, notes = _child(name, url, top, carried, base_spec)
    # the parent's trials match the configs only on its own base (an imported parent has no study); there alone a
    # seed the parent ran a config at repeats its trial
    matched = None
    if base_spec is None:
        parent_spec = spec_of(stored_sweep(name, url))
        matched = ParentMatch(name, carried, parent_spec.points if carried else None, parent_spec)
    plan = plan_seeds(parent_seeds(url, matched, configs), seed_list)
    measured = say.parent_seconds(url, matched, configs)  # the parent's trial times, where they apply (F6)
    spec = say.with_measured_seconds(child_spec(runs_on, name, configs, plan.seeds, len(configs), child), measured)
    say.refuse_taken(url, spec.name)  # a dry run says it as the run would (walk 5, F10)
    if len(configs) < top:
        # what is counted: configs of its feasible trials (finished, under the cap), told apart by the carried keys
        over = f" of {', '.join(carried)}" if carried else ""
        typer.echo(f"--top {top}: sweep {name} has only {counted(len(configs), 'feasible distinct config')}{over} "
                   "to rerun")
    if child is None and spec.name != f"{name}-rerun-top{len(configs)}":
        typer.echo(f"child sweep name {spec.name}: '{name}-rerun-top{len(configs)}' is no sweep name (1-64 letters, "
                   "digits, '_', '-', '.'); --name sets another")
    typer.echo(f"child sweep {spec.name}: {counted(len(spec.enqueue), 'trial')} ({counted(len(configs), 'config')} x "
               f"{counted(len(plan.seeds), 'seed')}: {', '.join(map(str, plan.seeds))})")
    for i, (config, note) in enumerate(zip(configs, notes or say.parent_notes(url, matched, configs), strict=True),
                                       start=1):
        typer.echo(f"  {i}. " + (", ".join(f"{k}={v}" for k, v in config.items()) or "the base config") + note)
    if (line := say.seed_note(plan, len(configs))) is not None:
        typer.echo(line)
    for line in say.estimate_lines(spec, measured):  # points that make one trial, and the estimated cost
        typer.echo(line)
    if dry_run:  # the rest of `sweep plan`'s lines (walk 6, F10); a run checks them itself (run_spec's preflight)
        for line in machine_lines(spec):
            typer.echo(line)
    else:
        run_spec(spec, url, address, num_cpus, num_gpus, quiet, resume=False)
        for line in say.seed_lines(url, spec, configs, matched):
            typer.echo(line)


def _child(name: str, url: str, top: int, carried: list[str] | None, base: Any
           ) -> tuple[Any, list[dict[str, Any]], list[str] | None]:
    """The spec the child runs on, its configs, and for an imported parent what each config's rank rests on: an
    imported parent's from the store (what was read as another key and what was left out printed), a clowncar
    parent's from its Optuna study."""
    from clowncar.orchestrator.rerun import best_configs, imported_configs

    sweep = stored_sweep(name, url)
    if sweep["source"] == "import" and base is not None:
        picked = imported_configs(url, name, top, carried)
        typer.echo(f"the {len(picked.configs)} best distinct configs of imported sweep {name}, by {picked.metric}")
        if picked.renamed:
            typer.echo(f"  read as clowncar keys: {', '.join(picked.renamed)}")
        if picked.dropped:
            typer.echo(f"  not carried (no clowncar config key): {', '.join(picked.dropped)}")
        from clowncar.orchestrator.rerun_lines import imported_notes

        return base, picked.configs, imported_notes(picked.metric, picked.values)
    parent = spec_of(sweep)
    return base or parent, best_configs(parent, url, top, carried, expand=base is not None), None


def status_cmd(name: Annotated[str, typer.Argument(help="Sweep name")], store: StoreOpt = None) -> None:
    """Counts by status, the best trial, the driver and what is running."""
    from clowncar.orchestrator.driver_state import driver_line, driver_lives, shown_status, trial_label
    from clowncar.store import open_store
    from clowncar.store.frames import FAILED

    url, _, _ = _settings(store, None)
    with open_store(url, create=False) as st:
        summary = st.sweep_summary(name)
        lease = st.get_lease(name)
        failed = st.trials_frame(name, status=FAILED)
    stored, live = summary["status"], driver_lives(lease)
    why = f" ({summary['reason']})" if summary.get("reason") else ""
    lineage = f", rerun of {summary['parent']}" if summary.get("parent") else ""
    typer.echo(f"sweep {summary['name']}: {shown_status(stored, live)}{why}, {counted(summary['trials'], 'trial')}"
               f"{lineage}")
    if (driver := driver_line(name, stored, lease)) is not None:
        typer.echo(driver)
    label = trial_label(live)  # a trial the store marks running runs only while a driver lives
    if summary["by_status"]:  # a sweep with no trial yet has nothing to count
        counts = {(label if k == "running" else k): v for k, v in summary["by_status"].items()}
        typer.echo("  " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    for line in failure_lines(name, failed[["status", "reason"]].itertuples(index=False, name=None)):
        typer.echo(line)
    print_study(name, url, stored, summary["best"])
    for r in summary["running"]:
        typer.echo(f"  {label}: trial {r['number']} attempt {r['attempt']} on {r['node']} step {r['last_step']}")
    if summary.get("parent") and summary["source"] != "import":  # a rerun is for its configs' means over seeds
        from clowncar.orchestrator.rerun_lines import child_seed_lines

        for line in child_seed_lines(url, stored_spec(name, url)):
            typer.echo(line)


def ls_cmd(store: StoreOpt = None) -> None:
    """Every sweep in the store, as the sweep commands see it: a sweep marked running whose driver is gone shows
    as `stalled`.

    `clowncar store ls` lists the same sweeps with their stored status and when each was made, and one sweep's
    trials."""
    from clowncar.orchestrator.driver_state import status_of
    from clowncar.orchestrator.rerun_lines import child_best_note
    from clowncar.store import open_store
    from clowncar.store.commands import sweep_list_notes, text_table

    url, _, _ = _settings(store, None)
    with open_store(url, create=False) as st:
        frame = st.sweeps_frame()
        typer.echo(f"store: {st.url}")  # its password masked; as `store ls` starts (walk 6, F20)
        if frame.empty:
            typer.echo("no sweeps")
            return
        # `stalled`, not `running`, for a sweep whose driver is gone (orchestrator/driver_state.py)
        frame["status"] = [status_of(st, n, s) for n, s in zip(frame["name"], frame["status"], strict=True)]
    # The names go last: an imported record's name runs to 100 characters, and padded first it would push the
    # counts off an 80-column screen. '-' where unset, as `store ls` prints it.
    cols = [c for c in ("status", "source", "trials", "ok", "running", "failed", "pruned", "stopped", "best_bpb",
                        "best_metric", "parent", "name") if c in frame.columns]
    typer.echo(text_table(frame[cols].values.tolist(), cols))
    if (note := child_best_note(frame["parent"].tolist())) is not None:
        typer.echo(note)
    for line in sweep_list_notes(frame):
        typer.echo(line)


def submit_cmd(spec: Annotated[Path, typer.Argument(help="Sweep spec (YAML)")],
               address: Annotated[str, typer.Option("--address", help="Ray dashboard, http://HEAD:8265")],
               store: SubmitStoreOpt = None,
               python: Annotated[str, typer.Option("--python", help="Python on the head")] = "python",
               name: NameOpt = None) -> None:
    """Submit the sweep as a Ray job: the driver runs on the cluster and outlives this command (which waits,
    a minute at most, until the driver holds the sweep)."""
    from clowncar.orchestrator.submit import submit, wait_started
    from clowncar.redact import redact_url

    parsed = load_named_spec(spec, name)
    job_id = submit(parsed, spec, address, store, python)
    # Without --store the sweep is in the head's store, which this machine's settings may not name (walk 6, F1)
    where = (f" --store {redact_url(store)}" if store else
             " (where the head's store is reachable, with --store or CLOWNCAR_STORE naming it: the job uses the "
             "head's store, not this machine's)")
    typer.echo(f"submitted sweep {parsed.name} as Ray job {job_id}")
    typer.echo(f"  {wait_started(job_id, parsed.name, address, store)}")  # a job that died at once: one line, exit 1
    typer.echo(f"watch: ray job logs --address {address} --follow {job_id}   |   "
               f"clowncar sweep status {parsed.name}{where}")


def stop_cmd(name: Annotated[str, typer.Argument(help="Sweep name")],
             address: Annotated[str | None, typer.Option(
                 "--address", help="Ray dashboard, http://HEAD:8265, for a submitted sweep; without it, the sweep's "
                 "driver on this machine gets Ctrl-C (SIGINT)")] = None,
             store: StoreOpt = None) -> None:
    """Stop a sweep: its driver on this machine gets Ctrl-C, or (--address) its Ray job ends; its running trials
    are marked stopped, and `sweep resume` continues it."""
    from clowncar.orchestrator.submit import stop

    url, _, _ = _settings(store, None)
    if address is None:  # a sweep driven here: through its lease (orchestrator/local_stop.py)
        from clowncar.orchestrator.local_stop import stop_local

        typer.echo(stop_local(name, url))
        return
    stopped, closed = stop(name, address, url)
    typer.echo(f"stopped {stopped} job(s) of sweep {name}; {closed} trial(s) marked stopped")


# Registered here rather than decorated: mutation testing (mutmut) leaves decorated functions alone.
app.command("run")(run_cmd)
app.command("plan")(plan_cmd)
app.command("resume")(resume_cmd)
app.command("rerun")(rerun_cmd)
app.command("status")(status_cmd)
app.command("ls")(ls_cmd)
app.command("submit")(submit_cmd)
app.command("stop")(stop_cmd)
