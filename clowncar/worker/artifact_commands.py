"""`clowncar artifact`: look inside a model artifact, or evaluate one on its own."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from clowncar.errors import ClownCarError, DataError

app = typer.Typer(help="Inspect and evaluate quantized model artifacts (model.ptz).", no_args_is_help=True)

FileArg = Annotated[Path, typer.Argument(help="Artifact file written by a trial (DIR/model.ptz).")]


def _summary(path: Path) -> dict[str, Any]:
    from clowncar.worker.artifact import read_artifact
    from clowncar.worker.code_bytes import CODE_RULES, code_bytes

    result, meta = read_artifact(path)
    groups: dict[str, dict[str, Any]] = {}
    tensors = []
    for name, qt in result.tensors.items():
        stored = sum(t.numel() * t.element_size() for t in (qt.q, qt.scale, qt.data) if t is not None)
        numel = 1
        for dim in qt.shape:
            numel *= dim
        g = groups.setdefault(qt.group, {"tensors": 0, "params": 0, "stored_bytes": 0, "schemes": set()})
        g["tensors"] += 1
        g["params"] += numel
        g["stored_bytes"] += stored
        g["schemes"].add(qt.scheme)
        tensors.append({"name": name, "group": qt.group, "scheme": qt.scheme, "shape": list(qt.shape),
                        "dtype": str(qt.dtype).removeprefix("torch."), "stored_bytes": stored})
    for g in groups.values():
        g["schemes"] = sorted(g["schemes"])
    file_bytes = path.stat().st_size
    rule = meta.get("code_rule", "eval_path")  # artifacts written before the rule was recorded used eval_path
    if rule not in CODE_RULES:
        raise DataError(f"{path} is not a valid clowncar artifact: unknown code-byte rule {rule!r}")
    code = code_bytes(rule)
    cap = int(meta["config"]["quant"]["size_cap_bytes"])
    return {"file": str(path), "format": meta["format"], "config_hash": meta["config_hash"],
            "artifact_file_bytes": file_bytes, "artifact_code_bytes": code, "artifact_code_rule": rule,
            "artifact_bytes": file_bytes + code,
            "size_cap_bytes": cap, "over_cap": file_bytes + code > cap, "quant_schemes": meta["quant_schemes"],
            "calibrated": meta.get("calibrated", []), "calib_tokens": meta.get("calib_tokens", 0),
            "aliases": result.aliases, "groups": groups, "tensors": tensors}


@app.command("inspect")
def inspect(file: FileArg,
            as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False) -> None:
    """Tensors, schemes, bytes per group and the config hash of an artifact."""
    s = _summary(file)
    if as_json:
        typer.echo(json.dumps(s, indent=2))
        return
    state = "OVER the cap" if s["over_cap"] else "under the cap"
    typer.echo(f"{s['file']}  ({s['format']}, config_hash {s['config_hash']})")
    typer.echo(f"artifact bytes {s['artifact_bytes']:,} = file {s['artifact_file_bytes']:,} + code "
               f"{s['artifact_code_bytes']:,} ({s['artifact_code_rule']} rule); cap {s['size_cap_bytes']:,} "
               f"({state})")
    typer.echo("schemes: " + ", ".join(f"{g}={v}" for g, v in s["quant_schemes"].items()))
    typer.echo(f"GPTQ-calibrated weights: {len(s['calibrated'])} on {s['calib_tokens']:,} calibration tokens")
    typer.echo(f"\n{'group':12s} {'tensors':>7s} {'params':>12s} {'stored bytes':>13s}  schemes")
    for name, g in s["groups"].items():
        typer.echo(f"{name:12s} {g['tensors']:7d} {g['params']:12,d} {g['stored_bytes']:13,d}  "
                   f"{', '.join(g['schemes'])}")
    typer.echo(f"\n{'tensor':44s} {'group':11s} {'scheme':10s} {'dtype':9s} shape")
    for t in s["tensors"]:
        typer.echo(f"{t['name']:44s} {t['group']:11s} {t['scheme']:10s} {t['dtype']:9s} "
                   f"{'x'.join(map(str, t['shape'])) or 'scalar'}")
    for alias, target in s["aliases"].items():
        typer.echo(f"{alias:44s} tied to {target}")


@app.command("eval")
def evaluate(file: FileArg,
             data: Annotated[Path, typer.Option("--data", help="Directory holding the validation shards.")],
             tokenizer: Annotated[Path | None, typer.Option(
                 "--tokenizer", help="SentencePiece model (default: the one named in the stored config).")] = None,
             max_tokens: Annotated[int | None, typer.Option(
                 "--max-tokens", help="Score only the first N validation tokens (default: the config's).")] = None,
             stride: Annotated[int | None, typer.Option(
                 "--stride", help="Sliding-window stride; 0 skips the sliding eval (default: the config's).")] = None,
             device: Annotated[str, typer.Option("--device", help="cpu, cuda or auto.")] = "auto",
             ) -> None:
    """Rebuild the model from the artifact alone and measure its validation BPB."""
    import torch

    from clowncar.data.bpb import build_byte_luts
    from clowncar.data.shards import list_shards
    from clowncar.data.stream import load_validation_tokens
    from clowncar.data.tokenizer import load_tokenizer
    from clowncar.settings import load_settings
    from clowncar.worker.artifact import load_model_from_artifact
    from clowncar.worker.evaluate import evaluate_bpb

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model, cfg = load_model_from_artifact(file, device)
    seq_len = cfg.eval_seq_len
    files = list_shards(data, cfg.data.val_glob)
    if not files:
        raise DataError(f"no validation shards matching {cfg.data.val_glob} in {data}")
    limit = cfg.eval.max_tokens if max_tokens is None else max_tokens
    val = torch.from_numpy(load_validation_tokens(files, seq_len, limit).astype("int64"))
    sp = load_tokenizer(tokenizer or load_settings().tokenizer_path(cfg.data.tokenizer))
    luts = build_byte_luts(sp, cfg.model.vocab_size)
    out: dict[str, Any] = {"file": str(file), "config_hash": cfg.content_hash(), "weights": "quantized"}
    windows = {"standard": 0, "sliding": cfg.eval.stride if stride is None else stride}
    for mode, st in windows.items():
        if mode == "sliding" and not st:
            continue
        res = evaluate_bpb(model, val, luts, seq_len, st, cfg.eval.batch_tokens, device=device)
        out[mode] = _as_dict(res)
    typer.echo(json.dumps(out, indent=2))


def _as_dict(res: Any) -> dict[str, Any]:
    if isinstance(res, dict):
        return res
    if hasattr(res, "_asdict"):
        return res._asdict()
    if hasattr(res, "__dataclass_fields__"):
        import dataclasses

        return dataclasses.asdict(res)
    raise ClownCarError(f"unexpected evaluation result {type(res).__name__}")
