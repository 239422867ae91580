"""`clowncar config`: resolve and check trial configs without running anything."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
import yaml

from clowncar.buildable import check_buildable
from clowncar.config_load import load_config
from clowncar.presets import PRESETS

app = typer.Typer(help="Resolve, validate and inspect trial configs.", no_args_is_help=True)

ConfigArg = Annotated[Path | None, typer.Argument(help="YAML or JSON trial config (optional).")]
PresetOpt = Annotated[str | None, typer.Option("--preset", help=f"Base preset: {', '.join(PRESETS)}.")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", metavar="KEY=VALUE",
                                                  help="Dotted override, e.g. model.crawler_loops=3; repeatable.")]


def show(config: ConfigArg = None, preset: PresetOpt = None, set_: SetOpt = None,
         as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of YAML.")] = False) -> None:
    """Print the fully resolved config and its content hash, once it passes every check that needs no data (a
    config the worker would reject before its first step is refused here, with the worker's line)."""
    from clowncar.errors import ConfigError
    from clowncar.orchestrator.spec import with_spec_hint

    try:
        cfg = load_config(config, preset=preset, overrides=set_ or [])
    except ConfigError as err:
        raise with_spec_hint(err, config) from None
    check_buildable(cfg)
    if as_json:
        typer.echo(json.dumps({"config": cfg.to_dict(), "config_hash": cfg.content_hash()}, indent=2))
    else:
        typer.echo(yaml.safe_dump(cfg.to_dict(), sort_keys=False).rstrip())
        typer.echo(f"# config_hash: {cfg.content_hash()}")


def presets() -> None:
    """List the named presets, one line each on what it is."""
    width = max(map(len, PRESETS))
    for name, builder in PRESETS.items():
        # the first sentence may wrap onto a second docstring line: the line is the whole first paragraph
        paragraph = (builder.__doc__ or "").strip().split("\n\n")[0]
        typer.echo(f"{name:{width}s}  {' '.join(paragraph.split())}")


# Registered here rather than decorated: mutation testing (mutmut) leaves decorated functions alone.
app.command("show")(show)
app.command("presets")(presets)
