"""What the importers record of a run's config beyond the fields its file prints, so that runs of different
configs get different config hashes (walk 3, F4): the micro-crawler log's trigram (from its parameter counts)
and cadence (from its C:N split), and a cadence TSV's cadence (from its step kinds). Checked against the seed's
own settings as sweeps/micro_crawler.yaml records them (reference/seed_facts.md 9.3)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from clowncar.orchestrator.spec import load_spec
from clowncar.store import open_store
from clowncar.store.importers import import_paths, parse_file

REPO = Path(__file__).resolve().parents[2]
MICRO = "micro_crawler/sweep_micro_crawler.log"
TRIGRAM = {"model.trigram_vocab_size": 8192, "model.trigram_dim": 128, "model.trigram_zero_init": True}
TSV_HEAD = "step\ttype\ttrain_loss\tval_bpb\tstep_ms\tgravity\n"


def _imported(paths: list[Path], tmp_path: Path) -> Any:
    """The trials frame of a store the files were imported into, indexed by the trial's key or file stem."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with open_store(url) as st:
        import_paths(st, paths)
        frame = st.trials_frame()
    frame["key"] = [uid.rsplit("-", 1)[0] if uid.startswith("mc_") else sweep
                    for uid, sweep in zip(frame["trial_uid"], frame["sweep"], strict=True)]
    return frame.set_index("key")


def _flat(config: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {f"{section}.{k}": v for section, values in config.items() for k, v in values.items()}


def test_the_micro_crawler_logs_trigram_and_no_trigram_runs_get_different_config_hashes(legacy_runs, tmp_path):
    micro = _imported([legacy_runs / MICRO], tmp_path)
    tri, notri = micro.loc["mc_4f1cx2_tri"], micro.loc["mc_4f1cx2_notri"]
    assert (tri["params"], notri["params"]) == (17958817, 16840608)  # the same layout and width otherwise
    assert tri["config_hash"] != notri["config_hash"]
    assert micro["config_hash"].nunique() == 8  # eight configs, eight hashes
    assert {k: tri[k] for k in TRIGRAM} == TRIGRAM and notri["model.trigram_vocab_size"] == 0


def test_each_micro_crawler_config_records_the_trigram_and_cadence_the_seed_ran(legacy_runs):
    """The spec's points carry the seed's per-config arguments (sweep_micro_crawler.sh): trigram and cadence."""
    spec = load_spec(REPO / "sweeps" / "micro_crawler.yaml")
    for trial in parse_file(legacy_runs / MICRO).trials:
        stored = _flat(trial.config)
        ran = spec.trial_config({"point": trial.key, "train.seed": 1337})
        assert stored["train.cadence"] == ran.train.cadence, trial.key
        assert stored["model.trigram_vocab_size"] == ran.model.trigram_vocab_size, trial.key
        if ran.model.trigram_vocab_size:
            assert (stored["model.trigram_dim"], stored["model.trigram_zero_init"]) == (
                ran.model.trigram_dim, ran.model.trigram_zero_init), trial.key
    ctrl = next(t for t in parse_file(legacy_runs / MICRO).trials if t.key == "mc_6flat_ctrl")
    assert "trigram" not in ctrl.result["label"] and _flat(ctrl.config)["model.trigram_vocab_size"] == 8192


def test_a_micro_crawler_parameter_count_no_trigram_explains_records_no_trigram_and_says_so(legacy_copy):
    path = legacy_copy(MICRO)
    path.write_text(path.read_text().replace("17,958,817", "17,958,820"))  # config 1: 3 parameters too many
    first = parse_file(path).trials[0]
    assert first.key == "mc_4f1cx2_tri" and not any(k.startswith("model.trigram") for k in _flat(first.config))
    assert first.notes == ["the parameter count leaves 1,118,212 parameters that are neither no trigram nor the "
                           "trainer's 8192 x 128 one: the trigram setting is not recorded"]


def test_deriving_the_trigram_and_cadence_keeps_the_micro_crawler_trial_ids(legacy_runs):
    """The ids a store filled before these keys were derived holds: importing the log again adds nothing."""
    from clowncar.store.importers import uids_of

    assert uids_of(parse_file(legacy_runs / MICRO), "") == [
        "mc_4f1cx2_tri-394ca8bcf95d", "mc_5f1cx2_tri-dbafefab6054", "mc_3f1cx3_tri-ded08c62fce8",
        "mc_4f2cx2_tri-e23f6e784585", "mc_5f1cx2_35_tri-34dc550b2f65", "mc_3f1cx2_tri-548223d041b3",
        "mc_6flat_ctrl-14d854ddd7d8", "mc_4f1cx2_notri-017e50cb9de0"]


def test_the_cadence_tsvs_of_every_step_f_and_of_cadence_2_get_different_config_hashes(legacy_runs, tmp_path):
    tsvs = _imported([legacy_runs / "cadence_tsv"], tmp_path)
    always, every_other = tsvs.loc["clean_always_fractal"], tsvs.loc["clean_cadence2"]
    assert always["config_hash"] != every_other["config_hash"]
    assert (always["train.cadence"], every_other["train.cadence"], tsvs.loc["ortho_cadence2_long", "train.cadence"]
            ) == (1, 2, 2)
    assert (tsvs["train.cadence_offset"] == 0).all()


@pytest.mark.parametrize(("kinds", "config"), [
    ("FFFFFF", {"train": {"cadence": 1, "cadence_offset": 0}}),
    ("FNFNFN", {"train": {"cadence": 2, "cadence_offset": 0}}),
    ("NFNFNF", {"train": {"cadence": 2, "cadence_offset": 1}}),
    ("FNNFNNF", {"train": {"cadence": 3, "cadence_offset": 0}}),
    ("NNNNNN", {"train": {"cadence": 0}}),
    ("FNFNNF", {}),  # no one cadence gives these kinds
    ("NNFNNN", {}),  # one C-step: cadence 3, 4, ... all fit
])
def test_a_traces_step_kinds_are_its_cadence_when_one_cadence_gives_them_all(kinds: str, config, tmp_path):
    rows = "".join(f"{step}\t{kind}\t5.0\t\t10.0\t\n" for step, kind in enumerate(kinds, start=1))
    path = tmp_path / "trace.tsv"
    path.write_text(TSV_HEAD + rows + f"{len(kinds)}\tEVAL\t\t2.5\t\t\n")
    assert parse_file(path).trials[0].config == config
