"""A trial's resource bundle: plain, or pinned to the node the GPU ledger granted for its first placement only.
Ray's node table and placement-group calls are stand-ins (the pinning on a real cluster: test_gpu_ledger.py)."""

from __future__ import annotations

import importlib

import ray

from clowncar.orchestrator.ledger import NODE_LABEL, PinnedBundle, trial_resources


def test_a_trial_without_a_granted_node_gets_a_plain_bundle() -> None:
    for config in ({}, {"_cc": None}, {"_cc": {"node": ""}}):
        pgf = trial_resources(4.0, 2, config)
        assert not isinstance(pgf, PinnedBundle)
        assert pgf.bundles == [{"CPU": 4.0, "GPU": 2}]


def test_a_granted_trial_is_pinned_to_its_node_in_one_packed_bundle() -> None:
    pgf = trial_resources(2.0, 1, {"_cc": {"node": "n7"}})
    assert isinstance(pgf, PinnedBundle)
    assert pgf.bundles == [{"CPU": 2.0, "GPU": 1}] and pgf.strategy == "STRICT_PACK"
    assert pgf._bound.kwargs["bundle_label_selector"] == [{NODE_LABEL: "n7"}]
    assert NODE_LABEL == "ray.io/node-id"


def test_a_pinned_bundle_is_pinned_only_on_its_first_placement_on_a_live_node(monkeypatch) -> None:
    pgmod = importlib.import_module("ray.util.placement_group")  # the module, not the function of that name
    from ray.tune import PlacementGroupFactory

    made: list[tuple] = []
    monkeypatch.setattr(PlacementGroupFactory, "to_placement_group", lambda self: made.append(("pinned",)) or "P")
    monkeypatch.setattr(pgmod, "placement_group", lambda bundles, strategy: made.append((bundles, strategy)) or "A")
    alive = [{"NodeID": "n7", "Alive": True}]
    monkeypatch.setattr(ray, "nodes", lambda: alive)
    pgf = trial_resources(2.0, 1, {"_cc": {"node": "n7"}})
    assert pgf.to_placement_group() == "P"
    assert pgf.to_placement_group() == "A"  # a restart goes wherever Ray finds room
    assert made == [("pinned",), ([{"CPU": 2.0, "GPU": 1}], "PACK")]
    alive[0]["Alive"] = False
    fresh = trial_resources(2.0, 1, {"_cc": {"node": "n7"}})
    assert fresh.to_placement_group() == "A"  # its node is dead: not pinned even the first time
