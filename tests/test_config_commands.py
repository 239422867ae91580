"""`clowncar config show / presets` in this process: the resolved config a user reads back is the one a trial
runs, with its hash; every preset is listed with the first line of what it is."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from clowncar.config_commands import app, presets, show
from clowncar.config_load import load_config
from clowncar.presets import PRESETS


def test_show_prints_the_resolved_config_as_yaml_in_its_own_order_and_its_hash(capsys) -> None:
    show(None, preset="tiny-cpu", set_=["model.crawler_loops=3"], as_json=False)
    out = capsys.readouterr().out
    cfg = load_config(preset="tiny-cpu", overrides=["model.crawler_loops=3"])
    body, last = out.rstrip("\n").rsplit("\n", 1)
    assert last == f"# config_hash: {cfg.content_hash()}"
    assert yaml.safe_load(body) == cfg.to_dict()
    assert list(yaml.safe_load(body)) == list(cfg.to_dict())  # sections in the config's order, not sorted
    assert not body.endswith("\n")


def test_show_prints_yaml_unless_asked_for_json(capsys) -> None:
    show(None, preset="tiny-cpu")
    assert capsys.readouterr().out.rstrip().splitlines()[-1].startswith("# config_hash: ")


def test_show_json_holds_the_config_and_its_hash(capsys, tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  crawler_loops: 2\n")
    show(path, preset=None, set_=None, as_json=True)
    data = json.loads(capsys.readouterr().out)
    cfg = load_config(path)
    assert data == {"config": cfg.to_dict(), "config_hash": cfg.content_hash()}


def test_presets_lists_each_with_the_first_paragraph_of_its_description_on_one_line(capsys) -> None:
    presets()
    lines = capsys.readouterr().out.splitlines()
    width = max(map(len, PRESETS))
    assert [line[:width].rstrip() for line in lines] == list(PRESETS)
    for line, (name, builder) in zip(lines, PRESETS.items(), strict=True):
        first = " ".join((builder.__doc__ or "").strip().split("\n\n")[0].split())
        assert line == f"{name.ljust(width)}  {first}" and first.endswith(".")
    assert lines[list(PRESETS).index("frugendorff-v2")].endswith(  # a sentence that wraps in its docstring
        "5 shared blocks looped twice, no flat blocks, one full C-step in 4, 500 AdamW steps; width auto-sized (544).")


def test_the_group_has_show_and_presets() -> None:
    assert {c.name for c in app.registered_commands} == {"show", "presets"}
