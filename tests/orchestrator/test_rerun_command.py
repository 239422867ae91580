"""`clowncar sweep rerun`: the child sweep of a parent's best configs over seeds, its options, and what it
refuses (a parent being driven, an imported parent, bad seeds); in this process, the sweep runner replaced."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from clowncar.errors import ClownCarError
from clowncar.orchestrator import commands as cmd
from clowncar.orchestrator.search import NUMBER
from clowncar.orchestrator.stored_sweep import stored_spec
from clowncar.orchestrator.tune import open_study
from clowncar.store import open_store

optuna.logging.set_verbosity(optuna.logging.WARNING)
LOOPS = "model.crawler_loops"



def study_with(url: str, values: list[tuple[int, float]], name: str) -> None:
    study = optuna.create_study(study_name=name, storage=open_study(url))
    for number, value in values:
        study.add_trial(create_trial(params={LOOPS: number % 3 + 1}, distributions={LOOPS: CategoricalDistribution(
            [1, 2, 3])}, values=[value], state=TrialState.COMPLETE, user_attrs={NUMBER: number},
            constraints={"artifact_bytes_over_cap": -1.0}))


def test_rerun_refuses_seeds_that_are_not_integers(url: str) -> None:
    with pytest.raises(ClownCarError) as err:
        cmd.rerun_cmd("s", seeds="1, two", store=url)
    assert str(err.value) == "--seeds must be comma-separated integers, not '1, two'"
    with pytest.raises(ClownCarError) as err:
        cmd.rerun_cmd("s", seeds="1,2,1,3,2", store=url)
    assert str(err.value) == "--seeds repeats 1, 2"


@pytest.mark.parametrize(("seeds", "bad"), [("-5", "-5"), ("1,99999999999999999999", "99999999999999999999"),
                                           ("9223372036854775808", "9223372036854775808")])
def test_rerun_blames_a_seed_out_of_the_configs_range_on_seeds_not_on_the_carried_config(
        url: str, seeds: str, bad: str) -> None:
    """train.seed takes 0..2^63-1: a seed outside it was refused only as a config carried from the parent that
    'does not build on this base', which pointed at --keys."""
    with pytest.raises(ClownCarError) as err:
        cmd.rerun_cmd("s", top=1, seeds=seeds, dry_run=True, store=url)
    assert (str(err.value), err.value.exit_code) == (f"--seeds: {bad} is not a seed (0 to 2^63-1)", 2)
    # the bounds themselves are the config's: 0 and 2^63-1 are seeds
    from clowncar.orchestrator.rerun_lines import seed_list

    assert seed_list(f"0,{2**63 - 1}") == [0, 2**63 - 1]


def test_an_imported_sweep_has_no_spec_to_resume_or_rerun(url: str) -> None:
    with open_store(url) as st:
        st.create_or_get_sweep("legacy", {"imported": True, "format": "frugendorff-csv"}, source="import")
    with pytest.raises(ClownCarError) as err:
        stored_spec("legacy", url)
    assert str(err.value) == ("sweep 'legacy' was imported from files, so it has no sweep spec to resume or rerun "
                              "from: `clowncar sweep rerun legacy --base SPEC` reruns its best configs from a spec "
                              "of yours (`clowncar store ls legacy` lists its trials)")



PARENT = {"name": "par", "preset": "tiny-cpu", "sampler": "random", "budget": {"max_trials": 8},
          "space": {LOOPS: {"choice": [1, 2, 3]}}}


@pytest.fixture
def parent(url: str) -> str:
    with open_store(url) as st:
        st.create_or_get_sweep("par", PARENT)
    study_with(url, [(0, 1.30), (1, 1.10), (2, 1.20)], name="par")
    return url


LEFT_OUT = ("seeds 42, 2025, 314: left out 1337 (the parent ran every config at it), as a config's value at its "
            "parent's seed is the one it was picked by (biased by the picking), and rerunning it would repeat that "
            "trial; --seeds sets the seeds")


def test_rerun_runs_the_best_configs_over_the_default_seeds(parent: str, monkeypatch, capsys) -> None:
    calls: list[tuple] = []
    monkeypatch.setattr(cmd, "run_spec", lambda *args, **kw: calls.append((args, kw)))
    cmd.rerun_cmd("par", store=parent)
    # the parent ran every config at the preset's seed 1337: the default seeds are three others (walk 5, F4)
    assert capsys.readouterr().out.splitlines() == [
        "child sweep par-rerun-top3: 9 trials (3 configs x 3 seeds: 42, 2025, 314)", f"  1. {LOOPS}=2 (parent 1.1000, n=1)",
        f"  2. {LOOPS}=3 (parent 1.2000, n=1)", f"  3. {LOOPS}=1 (parent 1.3000, n=1)", LEFT_OUT,
        "  estimated: 9.9 trial-minutes on CPU (9 trials x 66 s on average, no GPU)",
        "  per trial: train.max_wallclock_seconds + 10 % (the training cap: evaluation, quantization and compilation "
        "come on top); the driver uses the measured trial times once trials finish"]
    ((spec, store, address, cpus, gpus, quiet), kw) = calls[0]
    assert (store, address, cpus, gpus, quiet, kw) == (parent, None, None, None, False, {"resume": False})
    assert spec.name == "par-rerun-top3" and spec.parent == "par"
    assert [p["train.seed"] for p in spec.enqueue[:3]] == [42, 2025, 314]
    assert {p["train.seed"] for p in spec.enqueue} == {42, 2025, 314}  # one list for all: paired by seed
    assert [p[LOOPS] for p in spec.enqueue[::3]] == [2, 3, 1]  # best first


def test_a_dry_run_says_which_seed_it_left_out_and_which_given_seed_repeats_the_parents(parent: str, monkeypatch,
                                                                                       capsys) -> None:
    monkeypatch.setattr(cmd, "run_spec", lambda *args, **kw: pytest.fail("a dry run ran"))
    cmd.rerun_cmd("par", top=2, dry_run=True, store=parent)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "child sweep par-rerun-top2: 6 trials (2 configs x 3 seeds: 42, 2025, 314)" and out[3] == LEFT_OUT
    cmd.rerun_cmd("par", top=2, seeds="1337,42", dry_run=True, store=parent)  # given: kept, and said
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "child sweep par-rerun-top2: 4 trials (2 configs x 2 seeds: 1337, 42)"
    assert out[3] == ("seed 1337 repeats the parent's trial of every config: the value a config was picked by "
                      "(biased by the picking), so the summary gives the mean over the other seeds beside the "
                      "parent's value")
    cmd.rerun_cmd("par", top=2, seeds="7,8", dry_run=True, store=parent)  # nothing repeated: nothing to say
    assert capsys.readouterr().out.splitlines()[3].startswith("  estimated: ")


def test_a_dry_run_ends_with_the_plans_lines_on_this_machines_gpus_and_data(url: str, tmp_path: Path, monkeypatch,
                                                                            capsys) -> None:
    """As `sweep plan` says them: a trial's GPUs this machine lacks, and the data it lacks (walk 6, F10)."""
    monkeypatch.setenv("CLOWNCAR_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr("clowncar.doctor.gpu_names", lambda: (None, []))  # this machine: no GPU
    monkeypatch.setattr(cmd, "run_spec", lambda *args, **kw: pytest.fail("a dry run ran"))
    with open_store(url) as st:
        st.create_or_get_sweep("par", {**PARENT, "resources": {"gpus": 1}})
    study_with(url, [(0, 1.30), (1, 1.10)], name="par")
    cmd.rerun_cmd("par", top=1, seeds="7", dry_run=True, store=url)
    assert capsys.readouterr().out.splitlines()[-2:] == [
        "  GPUs: trials need 1 GPU per trial; this machine has 0: an embedded `sweep run` refuses the sweep "
        "(--num-gpus sets what it offers); a cluster (--address) needs a node with that many",
        f"  data: missing on this machine: dataset 'demo_sp1024' not found at {tmp_path / 'data/datasets/demo_sp1024'}"
        " (`clowncar data demo`, `data fetch-fineweb` or `data build` makes one; CLOWNCAR_DATA_DIR says where "
        "datasets are looked for); an embedded `sweep run` refuses the sweep, and on a cluster every worker needs "
        "the data"]


def test_a_top_beyond_the_distinct_configs_says_so_and_names_the_child_by_what_runs(parent: str, monkeypatch,
                                                                                   capsys) -> None:
    monkeypatch.setattr(cmd, "run_spec", lambda *args, **kw: None)
    cmd.rerun_cmd("par", top=99, seeds="7", dry_run=True, store=parent)
    assert capsys.readouterr().out.splitlines()[:2] == [
        "--top 99: sweep par has only 3 feasible distinct configs to rerun", "child sweep par-rerun-top3: 3 trials (3 configs "
        "x 1 seed: 7)"]
    cmd.rerun_cmd("par", top=3, seeds="7", dry_run=True, store=parent)  # exactly as many: nothing to say
    assert capsys.readouterr().out.splitlines()[0] == "child sweep par-rerun-top3: 3 trials (3 configs x 1 seed: 7)"


def test_the_name_option_gives_the_child_name_a_rerun_picks_without_it(parent: str, monkeypatch, capsys) -> None:
    import typer.main

    rerun = typer.main.get_command(cmd.app).commands["rerun"]  # type: ignore[attr-defined]
    assert next(p.help for p in rerun.params if "--name" in p.opts) == (
        "Child sweep name (default: NAME-rerun-topK, K the number of configs it reruns)")
    monkeypatch.setattr(cmd, "run_spec", lambda *args, **kw: None)
    cmd.rerun_cmd("par", top=5, seeds="7", dry_run=True, store=parent)  # 3 configs to rerun: K is 3, not --top
    assert "child sweep par-rerun-top3: 3 trials (3 configs x 1 seed: 7)" in capsys.readouterr().out.splitlines()


def test_rerun_takes_its_options(parent: str, monkeypatch, capsys) -> None:
    calls: list[tuple] = []
    monkeypatch.setattr(cmd, "run_spec", lambda *args, **kw: calls.append((args, kw)))
    cmd.rerun_cmd("par", top=1, seeds="7, 8,", child="kid", store=parent, address="auto", num_cpus=2, num_gpus=1,
                  quiet=True)
    assert capsys.readouterr().out.splitlines()[0] == "child sweep kid: 2 trials (1 config x 2 seeds: 7, 8)"
    ((spec, store, address, cpus, gpus, quiet), _), = calls
    assert store == parent
    assert (spec.name, address, cpus, gpus, quiet) == ("kid", "auto", 2, 1, True)
    assert spec.enqueue == [{LOOPS: 2, "train.seed": 7}, {LOOPS: 2, "train.seed": 8}]


def test_rerun_refuses_while_a_driver_runs_the_parent(parent: str, monkeypatch) -> None:
    from clowncar.orchestrator.lease import DriverLease
    from clowncar.store.lease import LeaseHeld

    monkeypatch.setattr(cmd, "run_spec", lambda *args, **kw: pytest.fail("ran while driven"))
    with open_store(parent) as st, DriverLease(st, "par"), pytest.raises(LeaseHeld) as err:
        cmd.rerun_cmd("par", store=parent)
    assert "par" in str(err.value)


def test_rerun_of_a_sweep_in_a_missing_store_creates_nothing(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(cmd, "run_spec", lambda *args, **kw: pytest.fail("ran"))
    with pytest.raises(ClownCarError):
        cmd.rerun_cmd("par", store=f"sqlite:///{tmp_path / 'none.db'}")
    assert list(tmp_path.iterdir()) == []


def test_rerun_of_an_imported_sweep_says_why_it_cannot(url: str, monkeypatch) -> None:
    monkeypatch.setattr(cmd, "run_spec", lambda *args, **kw: pytest.fail("ran"))
    with open_store(url) as st:
        st.create_or_get_sweep("legacy", {"imported": True, "format": "frugendorff-csv"}, source="import")
    with pytest.raises(ClownCarError, match=r"^sweep 'legacy' was imported from files, so it has no sweep spec"):
        cmd.rerun_cmd("legacy", store=url)


@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "run"])
def test_a_rerun_named_after_its_parent_is_refused_with_advice_for_a_rerun(parent: str, dry_run: bool,
                                                                           monkeypatch, capsys) -> None:
    ran: list[object] = []
    monkeypatch.setattr(cmd, "run_spec", lambda *args, **kw: ran.append(args))
    with pytest.raises(ClownCarError) as err:
        cmd.rerun_cmd("par", child="par", dry_run=dry_run, store=parent)
    assert str(err.value) == ("--name par is the parent sweep's own name: a rerun is a new sweep, so give it a name "
                              "of its own, or leave --name out for par-rerun-topK")
    assert err.value.exit_code == 2 and ran == [] and capsys.readouterr().out == ""


LR = "train.matrix_lr"
LR_PARENT = {"name": "lrp", "preset": "tiny-cpu", "sampler": "random", "budget": {"max_trials": 8},
             "space": {LOOPS: {"choice": [1, 2, 3]}, LR: {"choice": [0.02, 0.05]}}}  # tiny-cpu: loops 2, lr 0.02


def lr_parent(url: str) -> None:
    """Parent `lrp`, every trial at the preset's seed 1337: loops 2 only at lr 0.05 (its best), loops 3 at the base's
    lr 0.02 and at 0.05."""
    with open_store(url) as st:
        st.create_or_get_sweep("lrp", LR_PARENT)
    study = optuna.create_study(study_name="lrp", storage=open_study(url))
    dists = {LOOPS: CategoricalDistribution([1, 2, 3]), LR: CategoricalDistribution([0.02, 0.05])}
    for number, (loops, lr, value) in enumerate([(2, 0.05, 1.10), (3, 0.02, 1.20), (3, 0.05, 1.25)]):
        study.add_trial(create_trial(params={LOOPS: loops, LR: lr}, distributions=dists, values=[value],
                                     state=TrialState.COMPLETE, user_attrs={NUMBER: number},
                                     constraints={"artifact_bytes_over_cap": -1.0}))


def test_with_keys_a_config_the_parent_never_ran_gets_no_parent_value_and_no_seed_left_out(url: str, monkeypatch,
                                                                                         capsys) -> None:
    """--keys loops runs loops 2 at the base's lr 0.02, which the parent never ran: its trial at lr 0.05 is another
    config, so neither its value nor its seed is this config's. Loops 3 at lr 0.02 the parent ran once; its trial
    at lr 0.05 is another config, not a second seed."""
    lr_parent(url)
    monkeypatch.setattr(cmd, "run_spec", lambda *args, **kw: pytest.fail("a dry run ran"))
    cmd.rerun_cmd("lrp", top=2, keys=LOOPS, dry_run=True, store=url)
    assert capsys.readouterr().out.splitlines()[:4] == [
        "child sweep lrp-rerun-top2: 6 trials (2 configs x 3 seeds: 42, 2025, 314)",
        f"  1. {LOOPS}=2 (the parent never ran this config: its keys came from its top trials)",
        f"  2. {LOOPS}=3 (parent 1.2000, n=1)",
        "seeds 42, 2025, 314: left out 1337 (the parent ran config 2 at it), as a config's value at its parent's seed "
        "is the one it was picked by (biased by the picking), and rerunning it would repeat that trial; --seeds sets "
        "the seeds"]
    cmd.rerun_cmd("lrp", top=1, keys=LOOPS, dry_run=True, store=url)  # loops 2 alone: no seed of it to leave out
    assert capsys.readouterr().out.splitlines()[0] == "child sweep lrp-rerun-top1: 3 trials (1 config x 3 seeds: " \
        "1337, 42, 2025)"
    cmd.rerun_cmd("lrp", top=2, keys=f"{LOOPS},{LR}", dry_run=True, store=url)  # every key that differs: as before
    assert capsys.readouterr().out.splitlines()[1:3] == [f"  1. {LOOPS}=2, {LR}=0.05 (parent 1.1000, n=1)",
                                                         f"  2. {LOOPS}=3, {LR}=0.02 (parent 1.2000, n=1)"]


def test_a_top_beyond_the_configs_counts_the_feasible_distinct_configs_over_the_carried_keys(url: str, monkeypatch,
                                                                                           capsys) -> None:
    """lrp has 3 distinct configs and a 4th over the size cap: only the feasible ones can be rerun, and with --keys
    they are told apart by the carried keys alone."""
    lr_parent(url)
    study = optuna.load_study(study_name="lrp", storage=open_study(url))
    study.add_trial(create_trial(params={LOOPS: 1, LR: 0.02}, distributions={
        LOOPS: CategoricalDistribution([1, 2, 3]), LR: CategoricalDistribution([0.02, 0.05])}, values=[1.0],
        state=TrialState.COMPLETE, user_attrs={NUMBER: 3}, constraints={"artifact_bytes_over_cap": 1.0}))
    monkeypatch.setattr(cmd, "run_spec", lambda *args, **kw: None)
    cmd.rerun_cmd("lrp", top=9, seeds="7", dry_run=True, store=url)
    assert capsys.readouterr().out.splitlines()[0] == "--top 9: sweep lrp has only 3 feasible distinct configs to rerun"
    cmd.rerun_cmd("lrp", top=9, seeds="7", keys=LOOPS, dry_run=True, store=url)
    assert capsys.readouterr().out.splitlines()[0] == (
        f"--top 9: sweep lrp has only 2 feasible distinct configs of {LOOPS} to rerun")
