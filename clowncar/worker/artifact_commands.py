"""`clowncar artifact`: look inside a model artifact, or evaluate one on its own."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from clowncar.errors import ClownCarError, ConfigError, DataError

app = typer.Typer(help="Inspect and evaluate quantized model artifacts (model.ptz).", no_args_is_help=True)

FileArg = Annotated[Path, typer.Argument(help="Artifact file written by a trial (DIR/model.ptz).")]


def _summary(path: Path) -> dict[str, Any]:
    from clowncar.worker.artifact import read_artifact

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
    return {"file": str(path), "format": meta["format"], **_hash_fields(meta), **_size_fields(path, meta),
            "quant_schemes": meta["quant_schemes"],
            "calibrated": meta.get("calibrated", []), "calib_tokens": meta.get("calib_tokens", 0),
            "aliases": result.aliases, "groups": groups, "tensors": tensors}


def _size_fields(path: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """The artifact's bytes (file + code, by the rule and count its meta kept) against its config's cap: what
    inspect shows and eval prints beside the BPB, so that both read (and refuse) the same meta."""
    from clowncar.worker.code_bytes import CODE_RULES, code_bytes

    file_bytes = path.stat().st_size
    rule = meta.get("code_rule", "eval_path")  # artifacts written before the rule was recorded used eval_path
    if rule not in CODE_RULES:
        raise DataError(f"{path} is not a valid clowncar artifact: unknown code-byte rule {rule!r}")
    code_now = code_bytes(rule)
    code = meta.get("code_bytes", code_now)  # artifacts written before the count was recorded: today's count
    if not isinstance(code, int) or isinstance(code, bool) or code < 0:
        raise DataError(f"{path} is not a valid clowncar artifact: code_bytes {code!r} is no byte count")
    cap = _size_cap(path, meta["config"])
    return {"artifact_file_bytes": file_bytes, "artifact_code_bytes": code, "artifact_code_rule": rule,
            "artifact_code_counted": "written" if "code_bytes" in meta else "now",
            "artifact_code_bytes_now": code_now, "artifact_bytes": file_bytes + code,
            "size_cap_bytes": cap, "over_cap": file_bytes + code > cap}


def _size_cap(path: Path, config: dict[str, Any]) -> int:
    quant = config.get("quant")
    cap = quant.get("size_cap_bytes") if isinstance(quant, dict) else None
    if not isinstance(cap, int) or isinstance(cap, bool) or cap < 1:
        raise DataError(f"{path}: its stored config has no valid quant.size_cap_bytes")
    return cap


def _hash_fields(meta: dict[str, Any]) -> dict[str, Any]:
    """The hash of the config actually stored, and whether the hash written beside it agrees: a file whose
    config was edited keeps its old hash, which must not be shown as if it were true."""
    from clowncar.config import dict_hash

    return {"config_hash": dict_hash(meta["config"]), "config_hash_written": meta["config_hash"],
            "config_hash_matches": bool(meta["config_hash_ok"])}


def _hash_text(s: dict[str, Any]) -> str:
    if s["config_hash_matches"]:
        return f"config_hash {s['config_hash']}"
    return (f"config_hash {s['config_hash']}; the file claims {s['config_hash_written']}, which does NOT match "
            "its stored config")


def _code_text(s: dict[str, Any]) -> str:
    """The rule, and where the count comes from when that matters: a count made now for a file that kept none,
    or this checkout's count when it differs from the one the file kept."""
    rule = f"{s['artifact_code_rule']} rule"
    if s["artifact_code_counted"] == "now":
        return f"{rule}, counted in this checkout: the file kept no count"
    if s["artifact_code_bytes_now"] != s["artifact_code_bytes"]:
        return f"{rule}, as written; this checkout's code counts {s['artifact_code_bytes_now']:,}"
    return rule


def inspect(file: FileArg,
            as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False) -> None:
    """Tensors, schemes, bytes per group and the config hash of an artifact."""
    s = _summary(file)
    if as_json:
        typer.echo(json.dumps(s, indent=2))
        return
    state = "OVER the cap" if s["over_cap"] else "under the cap"
    typer.echo(f"{s['file']}  ({s['format']}, {_hash_text(s)})")
    typer.echo(f"artifact bytes {s['artifact_bytes']:,} = file {s['artifact_file_bytes']:,} + code "
               f"{s['artifact_code_bytes']:,} ({_code_text(s)}); cap {s['size_cap_bytes']:,} ({state})")
    typer.echo("schemes: " + ", ".join(f"{g}={v}" for g, v in s["quant_schemes"].items()))
    typer.echo(f"GPTQ-calibrated weights: {len(s['calibrated'])} on {s['calib_tokens']:,} calibration tokens")
    typer.echo(f"\n{'group':12s} {'tensors':>7s} {'params':>12s} {'stored bytes':>13s}  schemes")
    for name, g in s["groups"].items():
        typer.echo(f"{name:12s} {g['tensors']:7d} {g['params']:12,d} {g['stored_bytes']:13,d}  "
                   f"{', '.join(g['schemes'])}")
    # the dtype is the tensor's before quantization (what dequantization restores); `scheme` is how it is stored
    typer.echo(f"\n{'tensor':44s} {'group':11s} {'scheme':10s} {'orig dtype':10s} shape")
    for t in s["tensors"]:
        typer.echo(f"{t['name']:44s} {t['group']:11s} {t['scheme']:10s} {t['dtype']:10s} "
                   f"{'x'.join(map(str, t['shape'])) or 'scalar'}")
    for alias, target in s["aliases"].items():
        typer.echo(f"{alias:44s} tied to {target}")


def evaluate(file: FileArg,
             data: Annotated[Path | None, typer.Option(
                 "--data", help="Directory holding the validation shards, or a dataset name under the data root "
                 "(default: the dataset named in the stored config).")] = None,
             tokenizer: Annotated[Path | None, typer.Option(
                 "--tokenizer", help="SentencePiece model (default: the one named in the stored config); it must be "
                 "the one the model was trained with.")] = None,
             max_tokens: Annotated[int | None, typer.Option(
                 "--max-tokens", min=0,
                 help="Score only the first N validation tokens; 0 scores them all (default: the config's).")] = None,
             stride: Annotated[int | None, typer.Option(
                 "--stride", min=0,
                 help="Sliding-window stride; 0 or the eval sequence length skips the sliding eval (default: the "
                      "config's).")] = None,
             device: Annotated[str, typer.Option("--device", help="cpu, cuda or auto.")] = "auto",
             ) -> None:
    """Rebuild the model from the artifact alone and measure its validation BPB, with the tokenizer it was trained
    with (refused, exit 2, when the artifact records another one), beside its bytes as `inspect` counts them."""
    import torch

    from clowncar.data.bpb import build_byte_luts
    from clowncar.data.commands import directory_or_dataset
    from clowncar.data.paths import dataset_not_found
    from clowncar.data.record import check_encoded_with
    from clowncar.data.shards import list_shards, shards_digest
    from clowncar.data.stream import load_validation_tokens, tokens_kept
    from clowncar.data.tokenizer import load_tokenizer
    from clowncar.settings import load_settings
    from clowncar.worker.artifact import load_artifact
    from clowncar.worker.artifact_model import model_from_state
    from clowncar.worker.evaluate import evaluate_bpb

    device = _device(device, torch.cuda.is_available())
    state, meta = load_artifact(file)
    sizes = _size_fields(file, meta)  # before the long part: a damaged meta is refused as inspect refuses it
    built, kernels = reference_kernels(meta, device)
    model, cfg = model_from_state(file, state, built, device)
    seq_len = cfg.eval_seq_len
    if stride is not None and stride > seq_len:
        raise ConfigError(f"--stride {stride} must not exceed the eval sequence length ({seq_len})")
    if max_tokens and not tokens_kept(max_tokens + 1, seq_len):  # the flag, not the data, is what is short
        raise ConfigError(f"--max-tokens {max_tokens:,} is less than one eval sequence of {seq_len:,} tokens: no "
                          "validation token would be scored")
    if data is None:  # the dataset the model was trained on, as its config names it
        data = load_settings().dataset_dir(cfg.data.dataset)
        if not data.exists():
            raise DataError(f"{dataset_not_found(cfg.data.dataset, data)}; or pass --data")
    data = directory_or_dataset(data)
    files = list_shards(data, cfg.data.val_glob)
    if not files:
        raise DataError(f"no validation shards matching {cfg.data.val_glob} in {data}")
    tokenizer = tokenizer or load_settings().tokenizer_path(cfg.data.tokenizer)
    sp = load_tokenizer(tokenizer)
    digest = _trained_with(file, meta, tokenizer, cfg.data.tokenizer)
    check_encoded_with(data, tokenizer)
    limit = cfg.eval.max_tokens if max_tokens is None else max_tokens
    val = torch.from_numpy(load_validation_tokens(files, seq_len, limit).astype("int64"))
    vocab = cfg.model.vocab_size  # every id must index the embedding, as training checks before step 1
    if sp.vocab_size() > vocab:
        raise DataError(f"{tokenizer} has {sp.vocab_size()} ids, more than the model's vocabulary ({vocab}): it is "
                        "not the tokenizer this model was trained with")
    top = int(val.max())  # never empty: load_validation_tokens refuses fewer tokens than one sequence
    if top >= vocab:
        raise DataError(f"{data}: token id {top} is beyond the model's vocabulary ({vocab}): these are not the "
                        "data this model was trained on")
    luts = build_byte_luts(sp, cfg.model.vocab_size)
    out: dict[str, Any] = {"file": str(file), **_hash_fields(meta), "weights": "quantized", "data": str(data),
                           "val_shards": shards_digest(files), "tokenizer": str(tokenizer),
                           "tokenizer_sha256": digest, "tokenizer_checked": "tokenizer_sha256" in meta,
                           **({"kernels": kernels} if kernels else {}), **sizes}
    windows = {"standard": 0, "sliding": cfg.eval.stride if stride is None else stride}
    for mode, st in windows.items():
        if mode == "sliding" and not 0 < st < seq_len:  # a trial's rule: a whole-window stride slides nothing
            continue
        res = evaluate_bpb(model, val, luts, seq_len, st, cfg.eval.batch_tokens, device=device)
        out[mode] = _as_dict(res)
    if not out["tokenizer_checked"]:  # said once a result stands, so that a refusal stays one line
        typer.echo(f"warning: {file} records no tokenizer digest (written before artifacts kept one): cannot check "
                   f"that {tokenizer} is the tokenizer its model was trained with", err=True)
    typer.echo(json.dumps(out, indent=2))


CUDA_ONLY_KERNELS = {"attn_backend": "flash", "deltanet_backend": "fla"}
"""Model settings that name a CUDA-only kernel; `auto` takes it on a GPU and the PyTorch reference elsewhere."""


def reference_kernels(meta: dict[str, Any], device: str) -> tuple[dict[str, Any], str]:
    """The meta to build the model from on `device`, and what was swapped: on the CPU, an artifact trained with
    a CUDA-only kernel (flash attention, FLA's DeltaNet) is rebuilt with `auto`, which runs the PyTorch reference
    path the kernels are tested against (tests/model), instead of failing half-way through the eval."""
    model = meta.get("config", {}).get("model", {})
    fast = {k: v for k, v in CUDA_ONLY_KERNELS.items() if isinstance(model, dict) and model.get(k) == v}
    if device != "cpu" or not fast:
        return meta, ""
    config = {**meta["config"], "model": {**model, **dict.fromkeys(fast, "auto")}}
    names = ", ".join(f"{k}={v}" for k, v in fast.items())
    return {**meta, "config": config}, f"PyTorch reference on the CPU (the artifact's {names} needs CUDA)"


def _trained_with(file: Path, meta: dict[str, Any], tokenizer: Path, named: str) -> str:
    """The sha256 of `tokenizer`; DataError when the artifact records another one (the model would read every
    id as another piece, and BPB would count the wrong bytes). An artifact written before the digest was kept
    cannot be checked (`evaluate` says so beside its result)."""
    from clowncar.data.tokenizer import tokenizer_sha256

    digest = tokenizer_sha256(tokenizer)
    recorded = meta.get("tokenizer_sha256")
    if recorded is not None and digest != recorded:
        raise DataError(f"{tokenizer} is not the tokenizer {file} was trained with (sha256 {digest[:12]}..., the "
                        f"artifact records {recorded[:12]}...; its config names {named}): the model would read its "
                        "ids as other pieces and BPB would count the wrong bytes")
    return digest


def _device(wanted: str, have_cuda: bool) -> str:
    """cpu or cuda, as for a trial (`train.device`): auto takes the GPU when there is one."""
    if wanted not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"--device must be cpu, cuda or auto, not {wanted!r}")
    if wanted == "cuda" and not have_cuda:
        raise ConfigError("--device is cuda but no CUDA device is available")
    return ("cuda" if have_cuda else "cpu") if wanted == "auto" else wanted


def _as_dict(res: Any) -> dict[str, Any]:
    if isinstance(res, dict):
        return res
    if hasattr(res, "_asdict"):
        return res._asdict()
    if hasattr(res, "__dataclass_fields__"):
        import dataclasses

        return dataclasses.asdict(res)
    raise ClownCarError(f"unexpected evaluation result {type(res).__name__}")


def _stopped_by_signals(command: Callable[..., None]) -> Callable[..., None]:
    """`command` with SIGTERM ending it as Ctrl-C does (one line, exit 130; the exit codes' table says so), where a
    `kill` of a long `artifact eval` ended it with 143 and no line."""
    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> None:
        from clowncar.interrupts import interrupt_on_signals

        with interrupt_on_signals():
            command(*args, **kwargs)

    return run


# Registered here rather than decorated: mutation testing (mutmut) leaves decorated functions alone.
app.command("inspect")(inspect)
app.command("eval")(_stopped_by_signals(evaluate))
