"""An embedded sweep whose trials ask for more GPUs than embedded Ray offers is refused before it starts: one line,
exit 2, nothing written. It used to print its plan and then wait in silence, forever, for a GPU no node had
(walk finding 2). `sweep plan` says the same. Embedded Ray offers `--num-gpus`, else the GPUs this machine shows,
and is started with the count checked. On a cluster such a sweep is not refused (a node may yet join) but warned
about, from the cluster's node list. In this process, no Ray."""

from __future__ import annotations

from pathlib import Path

import pytest

from clowncar.doctor import gpu_names
from clowncar.errors import EXIT_BAD_INPUT, ConfigError
from clowncar.orchestrator import preflight
from clowncar.orchestrator.spec import spec_from_dict

HERE = len(gpu_names()[1])
"""GPUs this machine shows: a spec asks for one more, so that it is refused on any machine."""


def ranks(gpus: int) -> dict[str, int]:
    """A batch that `gpus` torchrun ranks split evenly (one sequence of 128 per rank): the world size must divide
    train.grad_accum (spec_checks), and tiny-cpu's 2 would refuse 4 or 8 GPUs before any GPU is counted."""
    return {"train.grad_accum": max(gpus, 1), "train.train_batch_tokens": 128 * max(gpus, 1)}


def spec_text(gpus: int) -> str:
    return (f"name: g\npreset: tiny-cpu\nsampler: grid\nspace: {{model.crawler_loops: {{grid: [1, 2]}}}}\n"
            f"resources: {{gpus: {gpus}}}\noverrides: {ranks(gpus)}\n")


def spec(gpus: int) -> object:
    return spec_from_dict({"name": "g", "preset": "tiny-cpu", "sampler": "grid", "resources": {"gpus": gpus},
                           "space": {"model.crawler_loops": {"grid": [1, 2]}}, "overrides": ranks(gpus)})


def test_embedded_ray_offers_num_gpus_when_given_else_what_the_machine_shows() -> None:
    assert preflight.offered_gpus(3) == 3 and preflight.offered_gpus(0) == 0
    assert preflight.offered_gpus(None) == HERE


def test_a_gpu_sweep_starts_embedded_ray_with_the_gpus_it_checked() -> None:
    assert preflight.check_embedded_gpus(spec(1), 1) == 1
    if HERE:  # a GPU machine: Ray is given what it shows, not Ray's default of none
        assert preflight.check_embedded_gpus(spec(HERE), None) == HERE
    assert preflight.check_embedded_gpus(spec(0), None) is None  # a CPU sweep: as given, no GPU looked for


def test_more_gpus_per_trial_than_offered_is_refused_naming_both_counts() -> None:
    with pytest.raises(ConfigError) as err:
        preflight.check_embedded_gpus(spec(2), 1)
    assert str(err.value) == ("sweep g: trials need 2 GPUs per trial; embedded Ray is given 1 (--num-gpus 1), so no "
                              "trial could start; run it where its GPUs are (a machine that has them, or a cluster "
                              "with --address), or ask for fewer (resources.gpus)")
    assert err.value.exit_code == EXIT_BAD_INPUT
    with pytest.raises(ConfigError, match=rf"^sweep g: trials need {HERE + 1} GPUs? per trial; this machine has "
                                          rf"{HERE}, so no trial could start;"):
        preflight.check_embedded_gpus(spec(HERE + 1), None)


def test_sweep_plan_says_what_sweep_run_would_refuse() -> None:
    assert preflight.gpu_line(spec(0)) is None
    assert preflight.gpu_line(spec(HERE + 1)) == (
        f"  GPUs: trials need {HERE + 1} GPU{'s' if HERE else ''} per trial; this machine has {HERE}: an embedded "
        "`sweep run` refuses the sweep (--num-gpus sets what it offers); a cluster (--address) needs a node with "
        "that many")
    if HERE:
        assert preflight.gpu_line(spec(HERE)) == f"  GPUs: {HERE} per trial; this machine has {HERE}"


@pytest.mark.parametrize("flags", [[], ["--num-gpus", "0"]])
def test_sweep_run_refuses_before_anything_is_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str], flags: list[str]) -> None:
    import clowncar.cli as cli
    import clowncar.orchestrator.tune as tune

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CLOWNCAR_RUNS_DIR", str(tmp_path / "runs"))
    for name in ("CLOWNCAR_STORE", "CLOWNCAR_STORE_FILE", "CLOWNCAR_RAY_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(tune, "run_sweep", lambda spec, opts: pytest.fail("the sweep started"))
    gpus = HERE + 1 if not flags else 1
    (tmp_path / "g.yaml").write_text(spec_text(gpus))
    with pytest.raises(SystemExit) as ended:
        cli.main(["sweep", "run", "g.yaml", "--quiet", *flags])
    err = capsys.readouterr().err
    assert ended.value.code == EXIT_BAD_INPUT and len(err.splitlines()) == 1
    have = "embedded Ray is given 0 (--num-gpus 0)" if flags else f"this machine has {HERE}"
    assert err.startswith(f"clowncar: error: sweep g: trials need {gpus} GPU{'s' if gpus > 1 else ''} per trial; "
                          f"{have}, so no trial could start; ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.yaml"]  # no store, no runs dir


def test_sweep_plan_prints_the_refusal_and_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import clowncar.cli as cli

    (tmp_path / "g.yaml").write_text(spec_text(HERE + 1))
    cli.main(["sweep", "plan", str(tmp_path / "g.yaml")])
    assert f"  GPUs: trials need {HERE + 1} GPU" in capsys.readouterr().out


def node(gpus: float, alive: bool = True, node_id: str = "") -> dict[str, object]:
    """One entry of `ray.nodes()`, as much of it as is read."""
    return {"NodeID": node_id or f"n{gpus}-{alive}", "Alive": alive, "Resources": {"CPU": 8.0, "GPU": gpus}}


def test_a_cluster_without_a_node_of_a_trials_gpus_is_warned_about_naming_the_most_on_one_node() -> None:
    # Two alive nodes of 4 make 8 GPUs in all, but a trial's GPUs are on one node; the dead node of 8 is no help.
    nodes = [node(0, node_id="head"), node(4, node_id="a"), node(4, node_id="b"), node(8, alive=False)]
    assert preflight.missing_gpu_node(spec(8), nodes) == (
        "clowncar: warning: sweep g: no node of the cluster offers 8 GPUs (the most on one node: 4); its trials "
        "wait until such a node joins")
    assert preflight.missing_gpu_node(spec(1), [node(0), {"NodeID": "x", "Alive": True}]) == (
        "clowncar: warning: sweep g: no node of the cluster offers 1 GPU (the most on one node: 0); its trials "
        "wait until such a node joins")
    assert preflight.node_gpus(nodes) == {"head": 0, "a": 4, "b": 4}


def test_a_cluster_with_a_node_of_a_trials_gpus_or_a_cpu_sweep_is_not_warned_about() -> None:
    assert preflight.missing_gpu_node(spec(4), [node(2), node(4)]) is None
    assert preflight.missing_gpu_node(spec(0), []) is None


def test_a_gpu_sweep_on_a_machine_of_two_gpus_starts_embedded_ray_with_both(monkeypatch: pytest.MonkeyPatch) -> None:
    # this machine may have none: its GPUs are what doctor.gpu_names reports, as on a machine of two
    monkeypatch.setattr("clowncar.doctor.gpu_names", lambda: ("12.4", ["NVIDIA H100", "NVIDIA H100"]))
    assert preflight.check_embedded_gpus(spec(1), None) == 2
    assert preflight.check_embedded_gpus(spec(0), None) is None


def test_a_cluster_with_no_alive_node_is_warned_about_for_a_gpu_sweep() -> None:
    line = ("clowncar: warning: sweep g: no node of the cluster offers 1 GPU (the most on one node: 0); its trials "
            "wait until such a node joins")
    assert preflight.missing_gpu_node(spec(1), []) == line
    assert preflight.missing_gpu_node(spec(1), [node(4, alive=False)]) == line


def test_the_driver_warns_on_stderr_of_the_cluster_it_joined_and_is_silent_when_it_cannot_list_it(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import ray

    monkeypatch.setattr(ray, "nodes", lambda: [node(0, node_id="head"), node(4, node_id="a")])
    preflight.warn_of_missing_gpu_node(spec(8))
    assert capsys.readouterr() == ("", "clowncar: warning: sweep g: no node of the cluster offers 8 GPUs (the most "
                                       "on one node: 4); its trials wait until such a node joins\n")
    preflight.warn_of_missing_gpu_node(spec(4))
    assert capsys.readouterr() == ("", "")

    def unreachable() -> list[dict[str, object]]:
        raise ConnectionError("GCS unreachable")

    monkeypatch.setattr(ray, "nodes", unreachable)
    preflight.warn_of_missing_gpu_node(spec(8))
    assert capsys.readouterr() == ("", "")
