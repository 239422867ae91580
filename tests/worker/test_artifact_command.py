"""`clowncar artifact inspect` and `clowncar artifact eval` in this process, on an artifact of a tiny crawler:
bytes counted tensor by tensor as stored (int8 codes plus fp16 row scales, passthrough at its stored width), the
size against the cap the artifact's own config names, a config edited after export flagged, and the eval's
windows, token budget and device. (Both commands as a user runs them, and the eval reproducing a trial's
round-trip BPB, are in test_artifact.py and test_artifact_trial.py.)"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from clowncar.config import dict_hash
from clowncar.data.shards import list_shards, shards_digest
from clowncar.errors import ConfigError, DataError
from clowncar.model import build_model
from clowncar.worker.artifact import export_artifact, pack, unpack
from clowncar.worker.artifact_commands import (
    _code_text,
    _hash_text,
    _size_cap,
    _summary,
    evaluate,
    inspect,
)
from clowncar.worker.artifact_model import load_model_from_artifact
from clowncar.worker.code_bytes import code_bytes

QUANT = ["quant.enabled=true", "quant.flat_scheme=gptq_int6", "quant.crawler_scheme=int8",
         "quant.passthrough_max_numel=256", "quant.gptq_calib_seqs=4", "quant.gptq_calib_seq_len=32",
         "quant.zstd_level=3"]


@pytest.fixture
def exported(tiny_cfg: Callable[..., Any], tmp_path: Path) -> tuple[Path, Any, torch.nn.Module]:
    cfg = tiny_cfg(*QUANT)
    torch.manual_seed(0)
    model = build_model(cfg)
    calib = torch.randint(cfg.model.vocab_size, (4, 32), generator=torch.Generator().manual_seed(1))
    path = tmp_path / "model.ptz"
    export_artifact(model, cfg, calib, path)
    return path, cfg, model


def rewrite(path: Path, edit: Callable[[dict[str, Any]], None], rehash: bool = True) -> None:
    """Change the stored meta (and so the file's size), keeping the payload: what a hand-edited file looks like."""
    meta, payload = unpack(path.read_bytes())
    edit(meta)
    if rehash:
        meta["config_hash"] = dict_hash(meta["config"])
    path.write_bytes(pack(meta, payload, meta["config"]["quant"]["compressor"], 3))


def test_each_tensor_is_counted_as_stored_and_groups_add_up(exported) -> None:
    path, _, model = exported
    s = _summary(path)
    tensors = {t["name"]: t for t in s["tensors"]}
    q = tensors["crawler_blocks.0.attn.c_q.weight"]
    assert (q["group"], q["scheme"], q["shape"], q["dtype"]) == ("crawler", "int8", [32, 32], "float32")
    assert q["stored_bytes"] == 32 * 32 + 32 * 2  # one byte a code, an fp16 scale a row
    fc = tensors["flat_blocks.0.mlp.fc.weight"]
    assert (fc["scheme"], fc["stored_bytes"]) == ("gptq_int6", 64 * 32 + 64 * 2)  # int6 codes still take a byte
    assert tensors["bigram.scale"]["shape"] == [] and tensors["bigram.scale"]["stored_bytes"] == 2  # fp16 scalar
    assert tensors["smear.gate"]["stored_bytes"] == 32 * 4  # fp32 control tensor
    state = model.state_dict()
    assert set(tensors) == set(state)
    for name, t in tensors.items():
        assert t["shape"] == list(state[name].shape), name
    meta, _ = unpack(path.read_bytes())
    for group, g in s["groups"].items():
        members = [t for t in s["tensors"] if t["group"] == group]
        assert g["tensors"] == len(members)
        assert g["params"] == sum(state[t["name"]].numel() for t in members)
        assert g["stored_bytes"] == sum(t["stored_bytes"] for t in members) == meta["group_bytes"][group]
        assert g["schemes"] == sorted({t["scheme"] for t in members})
    assert s["groups"]["passthrough"]["schemes"] == ["fp16", "fp32"]


def test_the_size_is_file_plus_code_under_the_recorded_rule(exported) -> None:
    path, cfg, _ = exported
    s = _summary(path)
    assert s["artifact_file_bytes"] == path.stat().st_size
    assert s["artifact_code_rule"] == "challenge" and s["artifact_code_bytes"] == code_bytes("challenge")
    assert s["artifact_bytes"] == path.stat().st_size + code_bytes("challenge")
    assert (s["size_cap_bytes"], s["over_cap"]) == (16_000_000, False)
    assert s["config_hash"] == s["config_hash_written"] == cfg.content_hash() and s["config_hash_matches"]
    assert s["format"] == "clowncar-artifact/1" and s["file"] == str(path)
    assert s["calib_tokens"] == 4 * 32 and "flat_blocks.0.mlp.fc.weight" in s["calibrated"]
    assert s["quant_schemes"]["crawler"] == "int8" and s["aliases"] == {}

    rewrite(path, lambda m: (m.update(code_rule="eval_path"), m.pop("code_bytes")))  # an older file's meta
    s = _summary(path)
    assert s["artifact_code_rule"] == "eval_path"
    assert s["artifact_bytes"] == path.stat().st_size + code_bytes("eval_path") < path.stat().st_size + code_bytes()
    rewrite(path, lambda m: m.pop("code_rule"))
    assert _summary(path)["artifact_code_rule"] == "eval_path"  # written before the rule was recorded
    rewrite(path, lambda m: m.pop("calib_tokens"))
    assert _summary(path)["calib_tokens"] == 0  # an artifact written before calibration was counted

def test_the_code_bytes_are_those_counted_when_the_artifact_was_written(exported, capsys) -> None:
    """A later checkout (a pull, an edit) may count other bytes under the same rule: the artifact's size is the
    count its file kept, and inspect says so when today's count differs."""
    path, _, _ = exported
    kept = code_bytes("challenge")
    assert unpack(path.read_bytes())[0]["code_bytes"] == kept
    rewrite(path, lambda m: m.update(code_bytes=kept - 1000))
    s = _summary(path)
    assert (s["artifact_code_bytes"], s["artifact_code_bytes_now"], s["artifact_code_counted"]) == (
        kept - 1000, kept, "written")
    assert s["artifact_bytes"] == path.stat().st_size + kept - 1000
    assert _code_text(s) == f"challenge rule, as written; this checkout's code counts {kept:,}"
    inspect(path, as_json=False)
    assert capsys.readouterr().out.splitlines()[1] == (
        f"artifact bytes {s['artifact_bytes']:,} = file {s['artifact_file_bytes']:,} + code {kept - 1000:,} "
        f"(challenge rule, as written; this checkout's code counts {kept:,}); cap 16,000,000 (under the cap)")

    rewrite(path, lambda m: m.pop("code_bytes"))  # written before the count was kept: counted now, and said so
    s = _summary(path)
    assert (s["artifact_code_bytes"], s["artifact_code_counted"]) == (kept, "now")
    assert _code_text(s) == "challenge rule, counted in this checkout: the file kept no count"
    for bad in (-1, 1.5, True, "250008", None):
        rewrite(path, lambda m, bad=bad: m.update(code_bytes=bad))
        with pytest.raises(DataError) as err:
            _summary(path)
        assert str(err.value) == f"{path} is not a valid clowncar artifact: code_bytes {bad!r} is no byte count"
    rewrite(path, lambda m: m.update(code_bytes=0))
    assert _summary(path)["artifact_code_bytes"] == 0


def test_a_total_equal_to_the_cap_fits_and_one_byte_more_does_not(exported) -> None:
    path, _, _ = exported

    def set_cap(cap: int) -> dict[str, Any]:
        rewrite(path, lambda m: m["config"]["quant"].update(size_cap_bytes=cap))
        return _summary(path)

    cap = 1_000_000
    for _ in range(5):  # the cap is written in the file, so the file's size moves with its digits
        cap = set_cap(cap)["artifact_bytes"]
    s = set_cap(cap)
    assert s["artifact_bytes"] == s["size_cap_bytes"] == cap and s["over_cap"] is False
    s = set_cap(cap - 1)
    assert s["artifact_bytes"] == cap and s["over_cap"] is True


def test_an_unknown_code_rule_or_a_missing_cap_is_a_damaged_artifact(exported, tmp_path: Path) -> None:
    path, _, _ = exported
    rewrite(path, lambda m: m.update(code_rule="whole_repo"))
    with pytest.raises(DataError) as err:
        _summary(path)
    assert str(err.value) == f"{path} is not a valid clowncar artifact: unknown code-byte rule 'whole_repo'"
    for config in ({}, {"quant": 3}, {"quant": {}}, {"quant": {"size_cap_bytes": 0}},
                   {"quant": {"size_cap_bytes": True}}, {"quant": {"size_cap_bytes": "16MB"}},
                   {"quant": {"size_cap_bytes": 1.5e7}}):
        with pytest.raises(DataError) as err:
            _size_cap(path, config)
        assert str(err.value) == f"{path}: its stored config has no valid quant.size_cap_bytes"
    assert _size_cap(path, {"quant": {"size_cap_bytes": 1}}) == 1
    rewrite(path, lambda m: (m.update(code_rule="challenge"), m["config"]["quant"].pop("size_cap_bytes")))
    with pytest.raises(DataError) as err:
        _summary(path)
    assert str(err.value) == f"{path}: its stored config has no valid quant.size_cap_bytes"


def test_a_config_edited_after_export_is_flagged_not_trusted(exported, capsys) -> None:
    path, cfg, _ = exported
    rewrite(path, lambda m: m["config"]["train"].update(seed=999), rehash=False)
    s = _summary(path)
    assert s["config_hash_written"] == cfg.content_hash() and s["config_hash"] != cfg.content_hash()
    assert s["config_hash_matches"] is False
    assert _hash_text(s) == (f"config_hash {s['config_hash']}; the file claims {cfg.content_hash()}, which does "
                             "NOT match its stored config")
    inspect(path, as_json=False)
    assert "does NOT match" in capsys.readouterr().out.splitlines()[0]


def test_inspect_prints_sizes_schemes_groups_and_tensors(exported, capsys) -> None:
    path, cfg, _ = exported
    s = _summary(path)
    inspect(path, as_json=False)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{path}  (clowncar-artifact/1, config_hash {cfg.content_hash()})"
    assert lines[1] == (f"artifact bytes {s['artifact_bytes']:,} = file {s['artifact_file_bytes']:,} + code "
                        f"{s['artifact_code_bytes']:,} (challenge rule); cap 16,000,000 (under the cap)")
    assert lines[2] == "schemes: " + ", ".join(f"{g}={v}" for g, v in s["quant_schemes"].items())
    assert lines[3] == f"GPTQ-calibrated weights: {len(s['calibrated'])} on 128 calibration tokens"
    assert lines[5].split() == ["group", "tensors", "params", "stored", "bytes", "schemes"]
    crawler = next(line for line in lines if line.startswith("crawler "))
    g = s["groups"]["crawler"]
    assert crawler.split() == ["crawler", str(g["tensors"]), f"{g['params']:,}", f"{g['stored_bytes']:,}", "int8"]
    assert next(line for line in lines if line.startswith("passthrough ")).endswith("  fp16, fp32")
    row = next(line for line in lines if line.startswith("crawler_blocks.0.attn.c_q.weight "))
    assert row.split() == ["crawler_blocks.0.attn.c_q.weight", "crawler", "int8", "float32", "32x32"]
    assert next(line for line in lines if line.startswith("bigram.scale ")).endswith(" scalar")


def test_inspect_prints_the_tensor_header_and_tied_weights(exported, capsys, monkeypatch) -> None:
    import clowncar.worker.artifact_commands as commands

    path, _, _ = exported
    summary = _summary(path)
    summary["aliases"] = {"lm_head.weight": "tok_emb.weight"}
    monkeypatch.setattr(commands, "_summary", lambda file: summary)
    inspect(path)  # tables unless --json
    lines = capsys.readouterr().out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("tensor "))
    # an int8 tensor's float32 is what it was before quantization: the column says so, beside the scheme
    assert lines[header - 1] == "" and lines[header].split() == ["tensor", "group", "scheme", "orig", "dtype",
                                                                 "shape"]
    assert lines[header] == f"{'tensor':44s} {'group':11s} {'scheme':10s} {'orig dtype':10s} shape"
    assert lines[-1] == f"{'lm_head.weight':44s} tied to tok_emb.weight"


def test_inspect_json_is_the_summary(exported, capsys) -> None:
    path, _, _ = exported
    inspect(path, as_json=True)
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(_summary(path)))


def test_an_artifact_over_the_cap_says_so(exported, capsys) -> None:
    path, _, _ = exported
    rewrite(path, lambda m: m["config"]["quant"].update(size_cap_bytes=1000))
    inspect(path, as_json=False)
    assert capsys.readouterr().out.splitlines()[1].endswith("; cap 1,000 (OVER the cap)")


def run_eval(path: Path, data: Path, capsys, **options: Any) -> dict[str, Any]:
    evaluate(path, data=data, tokenizer=options.pop("tokenizer", None), max_tokens=options.pop("max_tokens", None),
             stride=options.pop("stride", None), device=options.pop("device", "cpu"))
    return json.loads(capsys.readouterr().out)


def test_eval_scores_the_artifact_alone_with_the_configs_windows(exported, tiny_data: Path, capsys) -> None:
    from clowncar.data.bpb import build_byte_luts
    from clowncar.data.stream import load_validation_tokens
    from clowncar.data.tokenizer import load_tokenizer
    from clowncar.worker.evaluate import evaluate_bpb

    path, cfg, _ = exported
    out = run_eval(path, tiny_data, capsys)
    sizes = {k: v for k, v in _summary(path).items() if k.startswith("artifact_") or k in ("size_cap_bytes",
                                                                                           "over_cap")}
    assert set(out) == {"file", "config_hash", "config_hash_written", "config_hash_matches", "weights", "data",
                        "val_shards", "tokenizer", "tokenizer_sha256", "tokenizer_checked", "standard", "sliding",
                        *sizes}
    assert {k: out[k] for k in sizes} == sizes and out["artifact_bytes"] > out["artifact_file_bytes"] > 0
    assert out["file"] == str(path)
    tokenizer = tiny_data / "tokenizer.model"  # the config's: what the eval used, and that it was not checked
    assert (out["data"], out["tokenizer"], out["tokenizer_checked"]) == (str(tiny_data), str(tokenizer), False)
    assert out["tokenizer_sha256"] == hashlib.sha256(tokenizer.read_bytes()).hexdigest()
    assert out["val_shards"] == shards_digest(list_shards(tiny_data, cfg.data.val_glob))
    assert out["weights"] == "quantized" and out["config_hash"] == cfg.content_hash()
    assert out["standard"]["tokens_scored"] == cfg.eval.max_tokens  # the config's budget: 2048 tokens
    model, _ = load_model_from_artifact(path)
    tokens = torch.from_numpy(load_validation_tokens(list_shards(tiny_data, cfg.data.val_glob), 32, 2048)
                              .astype("int64"))
    luts = build_byte_luts(load_tokenizer(tiny_data / "tokenizer.model"), cfg.model.vocab_size)
    assert out["standard"] == evaluate_bpb(model, tokens, luts, 32, 0, cfg.eval.batch_tokens)
    assert out["sliding"] == evaluate_bpb(model, tokens, luts, 32, 8, cfg.eval.batch_tokens)


def test_eval_options_override_the_budget_and_the_stride(exported, tiny_data: Path, capsys) -> None:
    path, _, _ = exported
    out = run_eval(path, tiny_data, capsys, max_tokens=512, stride=0,
                   tokenizer=tiny_data / "tokenizer.model")
    assert "sliding" not in out and out["standard"]["tokens_scored"] == 512
    out = run_eval(path, tiny_data, capsys, max_tokens=256, stride=16)
    assert out["sliding"]["tokens_scored"] == out["standard"]["tokens_scored"] == 256


def test_eval_leaves_out_the_sliding_result_when_the_stride_is_the_whole_window(exported, tiny_data: Path,
                                                                               capsys) -> None:
    # as a trial does (0 < stride < eval length): a stride of the whole window slides nothing
    path, _, _ = exported
    out = run_eval(path, tiny_data, capsys, max_tokens=256, stride=32)
    assert "sliding" not in out and out["standard"]["tokens_scored"] == 256
    rewrite(path, lambda m: m["config"]["eval"].update(stride=32))  # the config's own stride
    out = run_eval(path, tiny_data, capsys, max_tokens=256)
    assert "sliding" not in out and out["config_hash_matches"] and out["standard"]["tokens_scored"] == 256


def test_eval_refuses_a_damaged_size_meta_as_inspect_does_before_it_scores(exported, tiny_data: Path,
                                                                          monkeypatch) -> None:
    import clowncar.worker.artifact_commands as commands

    path, _, _ = exported
    monkeypatch.setattr(commands, "reference_kernels", lambda *a: pytest.fail("built a model for a damaged file"))
    for edit, line in ((lambda m: m.update(code_bytes="250008"),
                        f"{path} is not a valid clowncar artifact: code_bytes '250008' is no byte count"),
                       (lambda m: m.update(code_rule="whole_repo"),
                        f"{path} is not a valid clowncar artifact: unknown code-byte rule 'whole_repo'"),
                       (lambda m: m["config"]["quant"].update(size_cap_bytes=0),
                        f"{path}: its stored config has no valid quant.size_cap_bytes")):
        rewrite(path, edit)
        with pytest.raises(DataError) as err:
            evaluate(path, data=tiny_data, tokenizer=None, max_tokens=64, stride=0, device="cpu")
        assert str(err.value) == line
        with pytest.raises(DataError) as err:
            _summary(path)
        assert str(err.value) == line
        rewrite(path, lambda m: (m.update(code_bytes=0, code_rule="challenge"),
                                 m["config"]["quant"].update(size_cap_bytes=16_000_000)))


def test_eval_picks_the_device_itself_by_default(exported, tiny_data: Path, capsys) -> None:
    path, _, _ = exported
    evaluate(path, data=tiny_data, tokenizer=None, max_tokens=64, stride=0)  # auto: the CPU here
    assert json.loads(capsys.readouterr().out)["standard"]["tokens_scored"] == 64


def test_an_artifact_whose_config_cannot_build_a_model_names_the_file(exported, tiny_data: Path) -> None:
    path, _, _ = exported
    rewrite(path, lambda m: m["config"]["model"].update(num_heads=3))  # 32 is not a multiple of 3
    with pytest.raises(DataError) as err:
        evaluate(path, data=tiny_data, tokenizer=None, max_tokens=None, stride=None, device="cpu")
    assert str(err.value).startswith(f"{path}: ")


def test_eval_refuses_a_stride_past_the_window_and_a_folder_without_shards(exported, tmp_path: Path) -> None:
    path, _, _ = exported
    with pytest.raises(ConfigError) as err:
        evaluate(path, data=tmp_path, tokenizer=None, max_tokens=None, stride=33, device="cpu")
    assert str(err.value) == "--stride 33 must not exceed the eval sequence length (32)"
    with pytest.raises(DataError) as err:
        evaluate(path, data=tmp_path, tokenizer=None, max_tokens=None, stride=32, device="cpu")
    assert str(err.value) == f"no validation shards matching fineweb_val_*.bin in {tmp_path}"


def test_eval_refuses_a_max_tokens_below_one_sequence_naming_the_flag(exported, tiny_data: Path, capsys) -> None:
    """--max-tokens N reads N + 1 tokens (the last target): below one window of 32 nothing is scored, which is the
    flag's fault, not the data's (it was `validation: 2 tokens in 1 shard(s) are too few`)."""
    path, _, _ = exported
    for short in (1, 30, 31):  # 31 tokens hold 30 targets: one short of a window of 32
        with pytest.raises(ConfigError) as err:
            evaluate(path, data=tiny_data, tokenizer=None, max_tokens=short, stride=0, device="cpu")
        assert str(err.value) == (f"--max-tokens {short} is less than one eval sequence of 32 tokens: no validation "
                                  "token would be scored")
    assert run_eval(path, tiny_data, capsys, max_tokens=32, stride=0)["standard"]["tokens_scored"] == 32


def test_eval_refuses_shards_encoded_with_another_tokenizer(exported, tiny_data: Path, other_tokenizer: Path,
                                                           tmp_path: Path) -> None:
    """A `data build` folder keeps the tokenizer its shards were encoded with: scoring them with another one would
    read every id as another piece and count the wrong bytes, silently."""
    path, _, _ = exported
    other = tmp_path / "other"
    shutil.copytree(tiny_data, other)
    shutil.copy(other_tokenizer, other / "tokenizer.model")  # same vocabulary size, other pieces
    with pytest.raises(DataError) as err:
        evaluate(path, data=other, tokenizer=None, max_tokens=64, stride=0, device="cpu")
    assert str(err.value) == (f"the shards in {other} were encoded with {other / 'tokenizer.model'}, not with "
                              f"{tiny_data / 'tokenizer.model'}: their ids would be read as other pieces and BPB "
                              "would count the wrong bytes (use the tokenizer the shards were built with)")
    with pytest.raises(DataError, match="were encoded with"):  # naming the other tokenizer is no way round it
        evaluate(path, data=tiny_data, tokenizer=other_tokenizer, max_tokens=64, stride=0, device="cpu")
    (other / "build.json").unlink()  # a folder that records nothing (fetched shards) is not checked
    evaluate(path, data=other, tokenizer=None, max_tokens=64, stride=0, device="cpu")


def test_eval_refuses_token_ids_beyond_the_models_vocabulary(exported, tiny_data: Path, tmp_path: Path,
                                                             capsys) -> None:
    from clowncar.data.shards import write_shard

    path, cfg, _ = exported
    data = tmp_path / "wide"
    data.mkdir()
    write_shard(data / "fineweb_val_000000.bin", [1, 5, 7, cfg.model.vocab_size, 9] * 20)
    with pytest.raises(DataError) as err:
        evaluate(path, data=data, tokenizer=tiny_data / "tokenizer.model", max_tokens=64, stride=0, device="cpu")
    assert str(err.value) == (f"{data}: token id {cfg.model.vocab_size} is beyond the model's vocabulary "
                              f"({cfg.model.vocab_size}): these are not the data this model was trained on")
    write_shard(data / "fineweb_val_000000.bin", [1, 5, 7, cfg.model.vocab_size - 1, 9] * 20)
    assert run_eval(path, data, capsys, tokenizer=tiny_data / "tokenizer.model", max_tokens=64,
                    stride=0)["standard"]["tokens_scored"] == 64


def test_eval_refuses_a_tokenizer_with_more_ids_than_the_model(exported, tiny_data: Path, tmp_path: Path) -> None:
    from clowncar.data.tokenizer import train_tokenizer

    path, cfg, _ = exported
    words = [f"verse {i} of another book, chapter {i % 7}, line {i * 13}" for i in range(2000)]
    wide = train_tokenizer(iter(words), cfg.model.vocab_size + 1, tmp_path / "wide", 1.0)
    assert wide.vocab_size() == cfg.model.vocab_size + 1
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(sorted(tiny_data.glob("fineweb_val_*.bin"))[0], data)  # no build.json: only the vocabulary decides
    with pytest.raises(DataError) as err:
        evaluate(path, data=data, tokenizer=tmp_path / "wide.model", max_tokens=64, stride=0, device="cpu")
    assert str(err.value) == (f"{tmp_path / 'wide.model'} has {cfg.model.vocab_size + 1} ids, more than the model's "
                              f"vocabulary ({cfg.model.vocab_size}): it is not the tokenizer this model was trained "
                              "with")


def _recording_its_tokenizer(exported: Any, tokenizer: Path) -> Path:
    """The fixture's model exported as a trial exports it: with the sha256 of the tokenizer it was trained with."""
    path, cfg, model = exported
    calib = torch.randint(cfg.model.vocab_size, (4, 32), generator=torch.Generator().manual_seed(1))
    export_artifact(model, cfg, calib, path, hashlib.sha256(tokenizer.read_bytes()).hexdigest())
    return path


def test_eval_refuses_a_tokenizer_other_than_the_one_the_artifact_records(
        exported, tiny_data: Path, other_tokenizer: Path, tmp_path: Path, capsys) -> None:
    """walk 4, F1: another tokenizer of the same size scored the model on pieces it never saw, exit 0; on shards
    that record no tokenizer (fetched FineWeb's layout) the BPB even came out lower than the true one."""
    path = _recording_its_tokenizer(exported, tiny_data / "tokenizer.model")
    bare = tmp_path / "bare"  # val shards alone: nothing beside them says how they were encoded
    bare.mkdir()
    for shard in tiny_data.glob("fineweb_val_*.bin"):
        shutil.copy(shard, bare)
    with pytest.raises(DataError) as err:
        evaluate(path, data=bare, tokenizer=other_tokenizer, max_tokens=64, stride=0, device="cpu")
    own = hashlib.sha256((tiny_data / "tokenizer.model").read_bytes()).hexdigest()
    given = hashlib.sha256(other_tokenizer.read_bytes()).hexdigest()
    assert str(err.value) == (f"{other_tokenizer} is not the tokenizer {path} was trained with (sha256 "
                              f"{given[:12]}..., the artifact records {own[:12]}...; its config names "
                              f"{tiny_data / 'tokenizer.model'}): the model would read its ids as other pieces and "
                              "BPB would count the wrong bytes")
    assert err.value.exit_code == 2
    capsys.readouterr()
    out = run_eval(path, bare, capsys, tokenizer=tiny_data / "tokenizer.model", max_tokens=64, stride=0)
    assert (out["tokenizer_checked"], out["tokenizer_sha256"], out["data"]) == (True, own, str(bare))
    assert capsys.readouterr().err == ""


def test_an_artifact_without_a_tokenizer_digest_is_evaluated_with_a_warning(exported, tiny_data: Path,
                                                                            other_tokenizer: Path, capsys) -> None:
    path, _, _ = exported  # written without one, as artifacts were before it was recorded
    evaluate(path, data=tiny_data, tokenizer=None, max_tokens=64, stride=0, device="cpu")
    captured = capsys.readouterr()
    assert captured.err == (f"warning: {path} records no tokenizer digest (written before artifacts kept one): "
                            f"cannot check that {tiny_data / 'tokenizer.model'} is the tokenizer its model was "
                            "trained with\n")
    assert json.loads(captured.out)["tokenizer_checked"] is False


def test_a_tokenizer_digest_that_is_no_sha256_makes_a_damaged_artifact(exported, tiny_data: Path) -> None:
    path, _, _ = exported
    rewrite(path, lambda m: m.update(tokenizer_sha256="not-a-digest"))
    with pytest.raises(DataError, match="meta field tokenizer_sha256 is not a sha256 hex digest"):
        evaluate(path, data=tiny_data, tokenizer=None, max_tokens=64, stride=0, device="cpu")


def test_eval_reads_the_dataset_the_artifact_names_or_a_dataset_name(exported, tiny_data: Path, tmp_path: Path,
                                                                      capsys, monkeypatch) -> None:
    """walk 4, F13: `--data demo_sp1024` said "shard directory not found" where `data inspect` takes a name."""
    path, cfg, _ = exported
    assert run_eval(path, None, capsys, max_tokens=64, stride=0)["data"] == cfg.data.dataset == str(tiny_data)
    root = tmp_path / "root"
    (root / "datasets").mkdir(parents=True)
    shutil.copytree(tiny_data, root / "datasets" / "kjv-named")
    monkeypatch.setenv("CLOWNCAR_DATA_DIR", str(root))
    monkeypatch.chdir(tmp_path)
    out = run_eval(path, Path("kjv-named"), capsys, max_tokens=64, stride=0)
    assert out["data"] == str(root / "datasets" / "kjv-named") and out["standard"]["tokens_scored"] == 64
    rewrite(path, lambda m: m["config"]["data"].update(dataset="gone"))
    with pytest.raises(DataError) as err:
        evaluate(path, data=None, tokenizer=tiny_data / "tokenizer.model", max_tokens=64, stride=0, device="cpu")
    assert str(err.value) == (f"dataset 'gone' not found at {root / 'datasets' / 'gone'} (`clowncar data demo`, "
                              "`data fetch-fineweb` or `data build` makes one; CLOWNCAR_DATA_DIR says where "
                              "datasets are looked for); or pass --data")


def test_an_artifact_trained_with_cuda_kernels_is_scored_on_the_cpu_by_the_reference_paths(
        exported, tiny_data: Path, capsys) -> None:
    """flash attention needs CUDA: on the CPU the eval rebuilds the model with `auto` (the PyTorch reference the
    kernels are tested against) and says so, and scores what the sdpa-built artifact scores, to the bit."""
    path, _, _ = exported
    plain = run_eval(path, tiny_data, capsys, max_tokens=256, stride=0)
    assert "kernels" not in plain

    def flash(meta: dict[str, Any]) -> None:
        meta["config"]["model"]["attn_backend"] = "flash"

    rewrite(path, flash)
    out = run_eval(path, tiny_data, capsys, max_tokens=256, stride=0)
    assert out["kernels"] == "PyTorch reference on the CPU (the artifact's attn_backend=flash needs CUDA)"
    assert out["standard"] == plain["standard"] and out["config_hash_matches"] is True


def test_a_stride_of_one_token_still_slides(exported, tiny_data: Path, capsys) -> None:
    path, _, _ = exported
    out = run_eval(path, tiny_data, capsys, max_tokens=64, stride=1)
    assert out["sliding"]["tokens_scored"] == out["standard"]["tokens_scored"] == 64
