"""`clowncar sweep rerun --base SPEC [--keys ...]`: the best configs of a sweep imported from files (which has no
spec) or of a clowncar sweep, run over seeds from a spec the user gives; in this process, the sweep runner
replaced. The Frugendorff v2 CSV of ../shared/legacy-runs is the real case: its best rows rerun from
sweeps/frugendorff_v2.yaml must be the very configs the seed's driver ran."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from clowncar.errors import ClownCarError
from clowncar.orchestrator import commands as cmd
from clowncar.orchestrator.rerun import best_configs, imported_configs, parse_keys
from clowncar.orchestrator.search import NUMBER
from clowncar.orchestrator.spec import load_spec, spec_from_dict
from clowncar.orchestrator.tune import open_study
from clowncar.store import open_store
from clowncar.store.importers import import_paths

optuna.logging.set_verbosity(optuna.logging.WARNING)
REPO = Path(__file__).resolve().parents[2]
LOOPS, CADENCE, SEED = "model.crawler_loops", "train.cadence", "train.seed"
CSV_HEAD = ("timestamp,run_id,val_bpb,cadence,cadence_offset,num_unique_layers,num_loops,lr,grad_clip,mlp_mult,"
            "model_dim,steps,f_steps,n_steps,avg_ms,time_s,params,reasoning,notes\n")



@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    calls: list[Any] = []
    monkeypatch.setattr(cmd, "run_spec", lambda spec, *args, **kw: calls.append(spec))
    return calls


def base_spec(tmp_path: Path, **fields: Any) -> Path:
    path = tmp_path / "base.yaml"
    path.write_text(yaml.safe_dump({"name": "base", "preset": "tiny-cpu", "sampler": "random",
                                    "budget": {"max_trials": 2}, "space": {CADENCE: {"choice": [1, 2]}},
                                    "seeds": [5], **fields}))
    return path


def import_csv(url: str, tmp_path: Path, rows: list[str], sweep: str = "frug") -> None:
    csv = tmp_path / "frug.csv"
    csv.write_text(CSV_HEAD + "".join(r + "\n" for r in rows))
    with open_store(url) as st:
        import_paths(st, [csv], sweep=sweep)


ROWS = ["2026-03-23T00:00:00,a,2.30,2,0,2,3,0.002,5.0,3,64,,,,,,,,",
        "2026-03-23T00:01:00,b,2.10,3,0,2,2,0.002,5.0,4,64,,,,,,,,",
        "2026-03-23T00:02:00,c,2.20,3,0,2,2,0.002,5.0,4,64,,,,,,,,",  # b's config again: once
        "2026-03-23T00:03:00,d,2.25,1,0,1,4,0.002,5.0,2,64,,,,,,,,"]


def test_an_imported_sweep_reruns_its_best_configs_from_the_base_spec(url: str, tmp_path: Path, runs: list,
                                                                     capsys: pytest.CaptureFixture) -> None:
    import_csv(url, tmp_path, ROWS)
    cmd.rerun_cmd("frug", top=2, seeds="7,8", base=base_spec(tmp_path), store=url)
    assert capsys.readouterr().out.splitlines() == [
        "the 2 best distinct configs of imported sweep frug, by val_bpb",
        "  read as clowncar keys: model.mlp_mult -> model.crawler_mlp_mult",
        "  not carried (no clowncar config key): legacy.lr",
        "child sweep frug-rerun-top2: 4 trials (2 configs x 2 seeds: 7, 8)",
        "  1. train.cadence=3, train.cadence_offset=0, train.grad_clip_norm=5.0, model.num_crawler_layers=2, "
        "model.crawler_loops=2, model.crawler_mlp_mult=4.0, model.model_dim=64 (val_bpb mean 2.1500 sd 0.0707, n=2)",
        "  2. train.cadence=1, train.cadence_offset=0, train.grad_clip_norm=5.0, model.num_crawler_layers=1, "
        "model.crawler_loops=4, model.crawler_mlp_mult=2.0, model.model_dim=64 (val_bpb 2.2500, n=1)",
        "  estimated: 4.4 trial-minutes on CPU (4 trials x 66 s on average, no GPU)",
        "  per trial: train.max_wallclock_seconds + 10 % (the training cap: evaluation, quantization and compilation "
        "come on top); the driver uses the measured trial times once trials finish"]
    (spec,) = runs
    b = {"train.cadence": 3, "train.cadence_offset": 0, "train.grad_clip_norm": 5.0, "model.num_crawler_layers": 2,
         LOOPS: 2, "model.crawler_mlp_mult": 4.0, "model.model_dim": 64}
    d = {**b, "train.cadence": 1, "model.num_crawler_layers": 1, LOOPS: 4, "model.crawler_mlp_mult": 2.0}
    assert spec.enqueue == [{**b, SEED: 7}, {**b, SEED: 8}, {**d, SEED: 7}, {**d, SEED: 8}]
    assert (spec.name, spec.parent, spec.preset, spec.space, spec.seeds) == (
        "frug-rerun-top2", "frug", "tiny-cpu", {}, [])
    assert spec.trial_config(spec.enqueue[2]).model.crawler_mlp_mult == 2.0


def test_an_imported_sweep_whose_name_is_no_sweep_name_gets_a_child_name_that_is(url: str, tmp_path: Path,
                                                                                   runs: list, capsys) -> None:
    # an import names a sweep after its files, blanks and all (walk 5, F15)
    import_csv(url, tmp_path, ROWS, sweep="2026-03-19_int6_STE QAT_ MLP_bigram _U_Net.train")
    cmd.rerun_cmd("2026-03-19_int6_STE QAT_ MLP_bigram _U_Net.train", top=1, seeds="7", base=base_spec(tmp_path),
                  store=url)
    out = capsys.readouterr().out.splitlines()
    assert out[3:5] == [
        "child sweep name 2026-03-19_int6_STE_QAT__MLP_bigram__U_Net.train-rerun-top1: '2026-03-19_int6_STE QAT_ "
        "MLP_bigram _U_Net.train-rerun-top1' is no sweep name (1-64 letters, digits, '_', '-', '.'); --name sets "
        "another",
        "child sweep 2026-03-19_int6_STE_QAT__MLP_bigram__U_Net.train-rerun-top1: 1 trial (1 config x 1 seed: 7)"]
    assert [s.name for s in runs] == ["2026-03-19_int6_STE_QAT__MLP_bigram__U_Net.train-rerun-top1"]


def test_a_dry_run_prints_the_configs_and_the_plan_and_runs_nothing(url: str, tmp_path: Path, runs: list,
                                                                     capsys: pytest.CaptureFixture) -> None:
    parent_study(url)
    cmd.rerun_cmd("par", top=2, seeds="1,2", keys=CADENCE, dry_run=True, store=url)
    out = capsys.readouterr().out.splitlines()
    # the plan's last line says whether this machine holds the data (sweep plan's line; it differs by machine)
    assert out[-1].startswith("  data: ") and "demo_sp1024" in out[-1]
    assert out[:-1] == [
        # each config with what the parent measured for it: none, as the child runs each on the base's
        # crawler_mlp_mult 2.0 and loops 2, which no trial of the parent (points 'narrow' 1.0, 'wide' 3.0) ran
        "child sweep par-rerun-top2: 4 trials (2 configs x 2 seeds: 1, 2)",
        "  1. the base config (the parent never ran this config: its keys came from its top trials)",
        "  2. train.cadence=3 (the parent never ran this config: its keys came from its top trials)",
        "  estimated: 4.4 trial-minutes on CPU (4 trials x 66 s on average, no GPU)",
        "  per trial: train.max_wallclock_seconds + 10 % (the training cap: evaluation, quantization and compilation "
        "come on top); the driver uses the measured trial times once trials finish"]
    assert runs == []
    with open_store(url) as st:
        assert st.sweep_names() == ["par"]  # nothing written


def test_keys_carry_only_those_keys_and_count_distinct_configs_over_them(url: str, tmp_path: Path, runs: list,
                                                                         capsys: pytest.CaptureFixture) -> None:
    import_csv(url, tmp_path, ROWS)
    cmd.rerun_cmd("frug", top=5, seeds="1", base=base_spec(tmp_path), keys=f"{LOOPS}, model.crawler_mlp_mult",
                  child="kid", store=url)
    assert "child sweep kid: 3 trials (3 configs x 1 seed: 1)" in capsys.readouterr().out.splitlines()
    assert runs[0].enqueue == [{LOOPS: 2, "model.crawler_mlp_mult": 4.0, SEED: 1},
                               {LOOPS: 4, "model.crawler_mlp_mult": 2.0, SEED: 1},
                               {LOOPS: 3, "model.crawler_mlp_mult": 3.0, SEED: 1}]
    with pytest.raises(ClownCarError) as err:
        imported_configs(url, "frug", 2, ["model.num_flat_layers"])
    assert str(err.value) == "the best trials of sweep 'frug' set none of the keys to carry (model.num_flat_layers)"


def test_keys_naming_a_key_the_import_renames_say_which_key_to_ask_for(url: str, tmp_path: Path, runs: list) -> None:
    """The CSV's model.mlp_mult is carried as model.crawler_mlp_mult (RERUN_AS): asking for the stored name
    finds nothing, and the one line names the key to pass instead, the other keys kept."""
    import_csv(url, tmp_path, ROWS)
    with pytest.raises(ClownCarError) as err:
        cmd.rerun_cmd("frug", base=base_spec(tmp_path), keys="model.mlp_mult", dry_run=True, store=url)
    assert str(err.value) == (
        "the best trials of sweep 'frug' set none of the keys to carry (model.mlp_mult is carried as "
        "model.crawler_mlp_mult for this import: --keys model.crawler_mlp_mult)")
    with pytest.raises(ClownCarError) as err:
        imported_configs(url, "frug", 2, ["model.num_flat_layers", "model.mlp_mult"])
    assert str(err.value) == (
        "the best trials of sweep 'frug' set none of the keys to carry (model.mlp_mult is carried as "
        "model.crawler_mlp_mult for this import: --keys model.num_flat_layers,model.crawler_mlp_mult)")
    assert runs == []


def test_keys_naming_a_renamed_key_beside_a_carried_one_are_refused_not_dropped(url: str, tmp_path: Path,
                                                                                 runs: list) -> None:
    """With crawler_loops carried, the stored name model.mlp_mult would have been left out of every config
    without a word: it is refused, naming the key to ask for, and nothing runs."""
    import_csv(url, tmp_path, ROWS)
    with pytest.raises(ClownCarError) as err:
        cmd.rerun_cmd("frug", base=base_spec(tmp_path), keys=f"{LOOPS},model.mlp_mult", dry_run=True, store=url)
    assert str(err.value) == (
        "--keys: sweep 'frug' was imported, and model.mlp_mult is carried as model.crawler_mlp_mult: "
        f"--keys {LOOPS},model.crawler_mlp_mult")
    assert runs == []
    assert imported_configs(url, "frug", 1, [LOOPS, "model.crawler_mlp_mult"]).configs == [
        {LOOPS: 2, "model.crawler_mlp_mult": 4.0}]


def test_every_renamed_key_is_named_with_the_keys_to_pass_instead() -> None:
    from clowncar.orchestrator.rerun import _renamed_key

    err = _renamed_key("frug", ["model.mlp_mult", LOOPS, "legacy.lr"],
                       {"model.mlp_mult": "model.crawler_mlp_mult", "legacy.lr": "train.matrix_lr"})
    assert str(err) == ("--keys: sweep 'frug' was imported, and model.mlp_mult is carried as model.crawler_mlp_mult, "
                        f"legacy.lr is carried as train.matrix_lr: --keys model.crawler_mlp_mult,{LOOPS},"
                        "train.matrix_lr")


def test_keys_that_name_no_config_field_are_one_line_with_the_nearest() -> None:
    with pytest.raises(ClownCarError) as err:
        parse_keys("model.crawler_loops,model.loops")
    assert str(err.value) == "--keys: 'model.loops' is no config key (did you mean model.crawler_loops?)"
    with pytest.raises(ClownCarError) as err:
        parse_keys("modle.crawler_loops")
    assert str(err.value) == ("--keys: 'modle.crawler_loops' is no config key (did you mean model.crawler_loops, "
                              "model.crawler_mode, model.crawler_position?)")
    with pytest.raises(ClownCarError) as err:
        parse_keys(" , ")
    assert str(err.value) == "--keys needs at least one config key (model.crawler_loops, ...)"
    assert parse_keys(None) is None and parse_keys("train.seed,model.xsa") == ["train.seed", "model.xsa"]


def test_an_imported_sweep_without_a_measured_bpb_is_one_line(url: str) -> None:
    with open_store(url) as st:
        st.create_or_get_sweep("old", {"imported": True}, source="import")
        st.start_trial("old", "t1", 0, 0, {"model": {"crawler_loops": 2}}, None, None)
        st.finish_trial("t1", 0, "ok", None, {"val_loss": 3.2})
    with pytest.raises(ClownCarError) as err:
        imported_configs(url, "old", 3, None)
    assert str(err.value) == "sweep 'old' has no ok trial with a measured BPB to rerun"


def test_each_trial_is_read_by_the_rules_of_its_own_format(url: str) -> None:
    """A sweep may hold files of several formats (`clowncar import --sweep`): the CSV's rename and its dropped
    rate are reported even when a trial of another format, read as it is, ranks last."""
    with open_store(url) as st:
        st.create_or_get_sweep("mixed", {"imported": True}, source="import")
        for uid, fmt, config, bpb in (
                ("csv", "frugendorff-csv", {"model": {"mlp_mult": 3.0}, "legacy": {"lr": 0.002}}, 2.1),
                ("log", "training-log", {"model": {"mlp_mult": 2.0, "num_layers": 9}}, 2.4)):
            st.start_trial("mixed", uid, 0, 0, config, None, None)
            st.finish_trial(uid, 0, "ok", None, {"val_bpb": bpb, "provenance": {"format": fmt}})
    picked = imported_configs(url, "mixed", 5, None)
    assert picked.configs == [{"model.crawler_mlp_mult": 3.0}, {"model.mlp_mult": 2.0, "model.num_layers": 9}]
    assert (picked.metric, picked.dropped, picked.renamed) == (
        "val_bpb", ["legacy.lr"], ["model.mlp_mult -> model.crawler_mlp_mult"])


def test_every_key_read_as_another_or_left_out_is_named(url: str, tmp_path: Path, runs: list,
                                                       capsys: pytest.CaptureFixture,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from clowncar.store import importers

    monkeypatch.setitem(importers.RERUN_AS, "training-log", {"model.a": LOOPS, "model.b": CADENCE})
    with open_store(url) as st:
        st.create_or_get_sweep("log", {"imported": True}, source="import")
        st.start_trial("log", "t", 0, 0, {"model": {"a": 2, "b": 3}, "legacy": {"lr": 0.1, "wd": 0.0}}, None, None)
        st.finish_trial("t", 0, "ok", None, {"val_bpb": 2.0, "provenance": {"format": "training-log"}})
    cmd.rerun_cmd("log", seeds="1", base=base_spec(tmp_path), store=url)
    assert capsys.readouterr().out.splitlines()[1:3] == [
        "  read as clowncar keys: model.a -> model.crawler_loops, model.b -> train.cadence",
        "  not carried (no clowncar config key): legacy.lr, legacy.wd"]
    assert runs[0].enqueue == [{LOOPS: 2, CADENCE: 3, SEED: 1}]


def test_an_imported_sweep_in_a_missing_store_is_one_line_and_creates_no_store(tmp_path: Path) -> None:
    with pytest.raises(ClownCarError, match="no store at"):
        imported_configs(f"sqlite:///{tmp_path / 'none.db'}", "frug", 1, None)
    assert list(tmp_path.iterdir()) == []


def test_a_missing_base_spec_is_one_line_before_the_store_is_touched(tmp_path: Path, runs: list) -> None:
    url = f"sqlite:///{tmp_path / 'none.db'}"
    with pytest.raises(ClownCarError) as err:
        cmd.rerun_cmd("frug", base=tmp_path / "nope.yaml", store=url)
    assert str(err.value) == f"sweep spec {tmp_path / 'nope.yaml'} not found"
    assert list(tmp_path.iterdir()) == [] and runs == []


def test_a_base_spec_that_is_a_directory_says_so_before_the_store_is_touched(tmp_path: Path, runs: list) -> None:
    url = f"sqlite:///{tmp_path / 'none.db'}"
    (tmp_path / "specs").mkdir()
    with pytest.raises(ClownCarError) as err:
        cmd.rerun_cmd("frug", base=tmp_path / "specs", store=url)
    assert str(err.value) == f"{tmp_path / 'specs'} is a directory, not a sweep spec file (YAML)"
    assert [p.name for p in tmp_path.iterdir()] == ["specs"] and runs == []


PARENT = {"name": "par", "preset": "tiny-cpu", "sampler": "random", "budget": {"max_trials": 8},
          "points": {"wide": {"model.crawler_mlp_mult": 3.0, CADENCE: 3}, "narrow": {"model.crawler_mlp_mult": 1.0}},
          "space": {LOOPS: {"choice": [1, 2, 3]}}}


def parent_study(url: str) -> None:
    with open_store(url) as st:
        st.create_or_get_sweep("par", PARENT)
    study = optuna.create_study(study_name="par", storage=open_study(url))
    dists = {LOOPS: CategoricalDistribution([1, 2, 3]), "point": CategoricalDistribution(["wide", "narrow"])}
    for number, (loops, point, value) in enumerate([(1, "wide", 1.3), (2, "narrow", 1.1), (3, "wide", 1.2)]):
        study.add_trial(create_trial(params={LOOPS: loops, "point": point}, distributions=dists, values=[value],
                                     state=TrialState.COMPLETE, user_attrs={NUMBER: number},
                                     constraints={"artifact_bytes_over_cap": -1.0}))


def test_a_clowncar_sweeps_best_configs_run_from_another_spec_with_named_points_spelled_out(
        url: str, tmp_path: Path, runs: list) -> None:
    parent_study(url)
    cmd.rerun_cmd("par", top=2, seeds="9", base=base_spec(tmp_path, overrides={"train.iterations": 7}), store=url)
    (spec,) = runs
    assert spec.enqueue == [{"model.crawler_mlp_mult": 1.0, LOOPS: 2, SEED: 9},
                            {"model.crawler_mlp_mult": 3.0, CADENCE: 3, LOOPS: 3, SEED: 9}]
    assert spec.points == {} and spec.overrides == {"train.iterations": 7} and spec.parent == "par"
    assert spec.trial_config(spec.enqueue[1]).train.cadence == 3


def test_keys_none_of_the_best_configs_set_are_one_line(url: str, tmp_path: Path, runs: list) -> None:
    parent_study(url)
    with pytest.raises(ClownCarError) as err:
        cmd.rerun_cmd("par", keys="model.xsa,train.iterations", store=url)
    assert str(err.value) == ("the best trials of sweep 'par' set none of the keys to carry (model.xsa, "
                              "train.iterations)")
    with open_store(url) as st:  # an import whose files record no config (a cadence TSV's)
        st.create_or_get_sweep("tsv", {"imported": True}, source="import")
        st.start_trial("tsv", "t1", 0, 0, {}, None, None)
        st.finish_trial("t1", 0, "ok", None, {"val_bpb": 1.5, "provenance": {"format": "cadence-tsv"}})
    with pytest.raises(ClownCarError) as err:
        cmd.rerun_cmd("tsv", base=base_spec(tmp_path), store=url)
    assert str(err.value) == ("the best trials of sweep 'tsv' set none of the keys to carry (no clowncar config "
                              "key in what was imported)")
    assert runs == []


def test_without_a_base_a_rerun_keeps_the_parents_points_by_name(url: str, runs: list) -> None:
    parent_study(url)
    cmd.rerun_cmd("par", top=1, seeds="9", store=url)
    assert runs[0].enqueue == [{LOOPS: 2, "point": "narrow", SEED: 9}]
    assert runs[0].points == PARENT["points"]
    assert best_configs(spec_from_dict(PARENT), url, 1) == [{LOOPS: 2, "point": "narrow"}]  # unexpanded by default


def test_keys_spell_out_the_parents_points_and_keep_only_what_they_name(url: str, runs: list) -> None:
    parent_study(url)
    cmd.rerun_cmd("par", top=3, seeds="9", keys="model.crawler_mlp_mult", store=url)
    assert runs[0].enqueue == [{"model.crawler_mlp_mult": 1.0, SEED: 9}, {"model.crawler_mlp_mult": 3.0, SEED: 9}]
    assert runs[0].points == {}  # the parent's spec is the base, but no queued config names a point


def test_a_base_with_points_of_its_own_queues_the_configs_without_them(url: str, tmp_path: Path,
                                                                       runs: list) -> None:
    parent_study(url)
    base = base_spec(tmp_path, points={"mine": {CADENCE: 4}}, space={})
    cmd.rerun_cmd("par", top=1, seeds="9", base=base, store=url)
    assert runs[0].points == {} and runs[0].enqueue == [{"model.crawler_mlp_mult": 1.0, LOOPS: 2, SEED: 9}]


def test_a_parent_without_points_expands_to_the_same_configs(url: str) -> None:
    parent = {**PARENT, "points": {}}
    with open_store(url) as st:
        st.create_or_get_sweep("par", parent)
    study = optuna.create_study(study_name="par", storage=open_study(url))
    study.add_trial(create_trial(params={LOOPS: 2}, distributions={LOOPS: CategoricalDistribution([1, 2, 3])},
                                 values=[1.0], state=TrialState.COMPLETE, constraints={"artifact_bytes_over_cap": -1}))
    assert best_configs(spec_from_dict(parent), url, 1, expand=True) == [{LOOPS: 2}]


def test_the_csvs_best_rows_rerun_from_the_frugendorff_v2_spec_are_what_the_seed_ran(
        url: str, legacy_runs: Path, runs: list) -> None:
    from tests.orchestrator.test_seed_sweeps import frug2_rows, seed_frug2_config, spec_hashes

    with open_store(url) as st:
        import_paths(st, [legacy_runs / "sweep_csv" / "autoresearch_frug2_results.csv"], sweep="frug2")
    cmd.rerun_cmd("frug2", top=5, seeds="1337", base=REPO / "sweeps" / "frugendorff_v2.yaml", store=url)
    (spec,) = runs
    rows = sorted(frug2_rows(legacy_runs), key=lambda r: r.result["val_bpb"])
    by_config: dict[str, list[float]] = {}
    for r in rows:  # each config as the seed's driver ran it (seed 1337 was every row's), its rows best first
        by_config.setdefault(seed_frug2_config(r).content_hash(), []).append(r.result["val_bpb"])
    assert max(len(v) for v in by_config.values()) > 1  # some configs ran more than once: their mean ranks them
    best = sorted(by_config, key=lambda h: sum(by_config[h]) / len(by_config[h]))  # ties: the best row first
    assert [spec.trial_config(p).content_hash() for p in spec.enqueue] == best[:5]
    assert set(best[:5]) <= set(spec_hashes(load_spec(REPO / "sweeps" / "frugendorff_v2.yaml")))


def test_the_rerun_of_a_trigram_run_carries_the_trigram_setting(url: str, legacy_runs: Path, runs: list) -> None:
    """The micro-crawler log's best configs from the smoke spec: each runs with the trigram and cadence it ran
    with in the seed (sweeps/micro_crawler.yaml's point), not the base's (no trigram, cadence 1); walk 3, F4."""
    with open_store(url) as st:
        import_paths(st, [legacy_runs / "micro_crawler" / "sweep_micro_crawler.log"], sweep="micro")
    cmd.rerun_cmd("micro", top=3, seeds="1337", base=REPO / "sweeps" / "smoke.yaml", store=url)
    (spec,) = runs
    seed_spec = load_spec(REPO / "sweeps" / "micro_crawler.yaml")
    # the 3 best by val_bpb: 3f+1cx2 tri 2.157078, 3f+1cx3 tri 2.173487, 4f+1cx2 no trigram 2.181247
    for point, queued in zip(["mc_3f1cx2_tri", "mc_3f1cx3_tri", "mc_4f1cx2_notri"], spec.enqueue, strict=True):
        rerun, seed = spec.trial_config(queued), seed_spec.trial_config({"point": point, SEED: 1337})
        assert (rerun.model.trigram_vocab_size, rerun.model.trigram_zero_init, rerun.train.cadence) == (
            seed.model.trigram_vocab_size, seed.model.trigram_zero_init, seed.train.cadence), point
    assert spec.trial_config(spec.enqueue[0]).model.trigram_vocab_size == 8192


def test_every_imported_micro_crawler_config_reruns_including_the_flat_control(url: str, legacy_runs: Path,
                                                                               runs: list) -> None:
    """The log's 6-flat control is '0 crawler layers x 0 loops'; clowncar's config wants loops >= 1, so `--top 8`
    failed on it. Its rerun keeps no crawler block and builds."""
    with open_store(url) as st:
        import_paths(st, [legacy_runs / "micro_crawler" / "sweep_micro_crawler.log"], sweep="micro")
    cmd.rerun_cmd("micro", top=8, seeds="1337", base=REPO / "sweeps" / "smoke.yaml", store=url)
    (spec,) = runs
    configs = [spec.trial_config(q) for q in spec.enqueue]
    assert len(configs) == 8
    flat = [c for c in configs if c.model.num_crawler_layers == 0]
    assert len(flat) == 1 and flat[0].model.num_flat_layers == 6


def test_only_the_loops_of_a_flat_control_are_left_to_the_default(url: str) -> None:
    """'0 crawler layers x 0 loops' is a flat control: its loops go. A crawler with 0 loops, or loops beside 0
    crawler layers, keeps what it recorded (the spec then says what does not build, instead of a default loop
    count silently standing in for the recorded one)."""
    recorded = [{"num_flat_layers": 6, "num_crawler_layers": 0, "crawler_loops": 0},
                {"num_flat_layers": 2, "num_crawler_layers": 2, "crawler_loops": 0},
                {"num_flat_layers": 5, "num_crawler_layers": 0, "crawler_loops": 3}]
    with open_store(url) as st:
        st.create_or_get_sweep("flat", {"imported": True}, source="import")
        for i, model in enumerate(recorded):
            st.start_trial("flat", f"t{i}", 0, 0, {"model": model}, None, None)
            st.finish_trial(f"t{i}", 0, "ok", None, {"val_bpb": 2.0 + i})
    assert imported_configs(url, "flat", 3, None).configs == [
        {"model.num_flat_layers": 6, "model.num_crawler_layers": 0},
        {"model.num_flat_layers": 2, "model.num_crawler_layers": 2, LOOPS: 0},
        {"model.num_flat_layers": 5, "model.num_crawler_layers": 0, LOOPS: 3}]


def test_with_keys_each_config_shows_the_parents_value_of_the_trials_whose_spelled_out_point_it_is(
        url: str, runs: list, capsys: pytest.CaptureFixture) -> None:
    """--keys spells the parent's named points out: a trial of point 'narrow' at loops 2 is the config
    (crawler_mlp_mult 1.0, loops 2), matched by its point's keys and its own searched ones together. Point 'wide'
    also sets cadence 3, which is not carried: the child runs (crawler_mlp_mult 3.0, loops 3) at the base's
    cadence, which the parent never ran."""
    parent_study(url)
    cmd.rerun_cmd("par", top=2, seeds="9", keys=f"model.crawler_mlp_mult,{LOOPS}", store=url)
    listed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("  ")]
    assert listed[:2] == ["  1. model.crawler_mlp_mult=1.0, model.crawler_loops=2 (parent 1.1000, n=1)",
                          "  2. model.crawler_mlp_mult=3.0, model.crawler_loops=3 (the parent never ran this "
                          "config: its keys came from its top trials)"]
