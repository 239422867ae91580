"""The artifact file: exact round trip, honest sizes, the cap flag, and one-line errors for damaged files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from clowncar.config import TrialConfig
from clowncar.errors import DataError
from clowncar.worker.artifact import (
    code_bytes,
    code_files,
    export_artifact,
    load_artifact,
    read_artifact,
    write_artifact,
)
from clowncar.worker.quant import quantize_model

VOCAB, DIM = 64, 48


class Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.tok_emb = nn.Embedding(VOCAB, DIM)
        self.crawler_blocks = nn.ModuleList([nn.Linear(DIM, DIM)])
        self.fc = nn.Linear(DIM, 4 * DIM)
        self.proj = nn.Linear(4 * DIM, DIM)
        self.resid_mix = nn.Parameter(torch.ones(2, DIM))
        self.register_buffer("counter", torch.arange(5))
        self.register_buffer("table", torch.randn(4, 8).to(torch.bfloat16))  # the original dtype must come back

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.tok_emb(ids) * self.resid_mix[0]
        for _ in range(2):
            x = x + torch.relu(self.crawler_blocks[0](x))
        return x + self.proj(torch.relu(self.fc(x)))


def cfg(**quant: object) -> TrialConfig:
    return TrialConfig.model_validate({"quant": {"passthrough_max_numel": 512, "flat_scheme": "gptq_int6",
                                                 "crawler_scheme": "int8", "zstd_level": 3, **quant}})


@pytest.fixture(scope="module")
def model() -> Toy:
    torch.manual_seed(0)
    return Toy()


@pytest.fixture(scope="module")
def calib() -> torch.Tensor:
    return torch.randint(VOCAB, (8, 24), generator=torch.Generator().manual_seed(5))


@pytest.mark.parametrize("compressor", ["zstd", "lzma", "zlib"])
def test_dequantized_tensors_from_the_file_equal_the_in_process_ones_bit_for_bit(
        model: Toy, calib: torch.Tensor, tmp_path: Path, compressor: str) -> None:
    c = cfg(compressor=compressor)
    in_process = quantize_model(model, c.quant, calib).dequantized()
    fields = export_artifact(model, c, calib, tmp_path / "model.ptz")
    loaded, meta = load_artifact(tmp_path / "model.ptz")
    assert set(loaded) == set(model.state_dict()) == set(in_process)
    for name, t in in_process.items():
        assert loaded[name].dtype == t.dtype == model.state_dict()[name].dtype, name
        assert torch.equal(loaded[name], t), name
    assert meta["config_hash"] == c.content_hash() and meta["config"] == c.to_dict()
    assert fields["quant_schemes"] == {"flat": "gptq_int6", "crawler": "int8", "embed": "int8",
                                       "passthrough": "fp16+fp32+raw"} == meta["quant_schemes"]
    assert meta["calibrated"] == ["fc.weight", "proj.weight"]
    assert fields["quant_seconds"] > 0


def test_reported_bytes_are_the_file_plus_the_counted_code(model: Toy, calib: torch.Tensor, tmp_path: Path) -> None:
    path = tmp_path / "a.ptz"
    fields = export_artifact(model, cfg(), calib, path)
    assert fields["artifact_file_bytes"] == path.stat().st_size
    assert fields["artifact_code_bytes"] == code_bytes() > 0
    assert fields["artifact_bytes"] == path.stat().st_size + code_bytes()
    # what the store's artifacts table records: the file itself and a digest of exactly its bytes
    assert fields["artifact_path"] == str(path.resolve())
    assert fields["artifact_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    files = {str(p) for p in code_files()}
    assert {"clowncar/config.py", "clowncar/worker/quant.py", "clowncar/worker/artifact.py"} <= files
    root = Path(__file__).resolve().parents[2]
    assert code_bytes() == sum((root / p).stat().st_size for p in code_files())
    assert not list(tmp_path.glob(".*tmp*")), "the temporary file must be renamed away"


def test_over_cap_flips_exactly_at_the_cap(model: Toy, calib: torch.Tensor, tmp_path: Path) -> None:
    result = quantize_model(model, cfg().quant, calib)
    total = write_artifact(result, cfg(size_cap_bytes=10**6), tmp_path / "a.ptz")["artifact_bytes"]
    # The cap is part of the stored config, so a new cap can change the file by a byte: find the fixed point.
    for _ in range(5):
        at_cap = write_artifact(result, cfg(size_cap_bytes=total), tmp_path / "a.ptz")
        if at_cap["artifact_bytes"] == total:
            break
        total = at_cap["artifact_bytes"]
    assert at_cap["artifact_bytes"] == total and at_cap["over_cap"] is False
    below = write_artifact(result, cfg(size_cap_bytes=total - 1), tmp_path / "a.ptz")
    assert below["artifact_bytes"] > total - 1 and below["over_cap"] is True


def test_schemes_and_codes_survive_the_file(model: Toy, calib: torch.Tensor, tmp_path: Path) -> None:
    c = cfg(flat_scheme="gptq_int5", embed_scheme="fp16")
    result = quantize_model(model, c.quant, calib)
    write_artifact(result, c, tmp_path / "a.ptz")
    back, meta = read_artifact(tmp_path / "a.ptz")
    for name, qt in result.tensors.items():
        got = back.tensors[name]
        assert (got.group, got.scheme, got.shape) == (qt.group, qt.scheme, qt.shape), name
    assert back.tensors["fc.weight"].q.abs().max() <= 15
    assert back.tensors["tok_emb.weight"].scheme == "fp16"
    assert meta["group_bytes"]["flat"] > 0


def test_a_one_dimensional_token_stream_is_cut_into_calibration_sequences(model: Toy, tmp_path: Path) -> None:
    stream = np.arange(8 * 24 + 1) % VOCAB  # what TokenStream.take(n) returns
    c = cfg(gptq_calib_seq_len=24)
    export_artifact(model, c, stream, tmp_path / "a.ptz")
    loaded, _ = load_artifact(tmp_path / "a.ptz")
    as_batch = torch.from_numpy(stream[: 8 * 24]).long().view(8, 24)
    expected = quantize_model(model, c.quant, as_batch).dequantized()
    assert all(torch.equal(loaded[n], t) for n, t in expected.items())


def _damaged(path: Path, how: str) -> None:
    raw = bytearray(path.read_bytes())
    if how == "truncated":
        path.write_bytes(bytes(raw[: len(raw) // 2]))
    elif how == "flipped":
        raw[len(raw) // 2] ^= 0xFF
        path.write_bytes(bytes(raw))
    elif how == "magic":
        path.write_bytes(b"PK\x03\x04" + bytes(raw[4:]))
    elif how == "empty":
        path.write_bytes(b"")


def test_a_missing_file_is_one_line_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot read artifact"):
        load_artifact(tmp_path / "nope.ptz")


@pytest.mark.parametrize("how", ["truncated", "flipped", "magic", "empty"])
def test_a_damaged_file_is_one_line_data_error(model: Toy, calib: torch.Tensor, tmp_path: Path,
                                               how: str) -> None:
    path = tmp_path / "a.ptz"
    export_artifact(model, cfg(), calib, path)
    _damaged(path, how)
    with pytest.raises(DataError) as info:
        load_artifact(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


@pytest.mark.slow  # two CLI processes, each importing torch
def test_cli_inspect_prints_contents_and_damage_is_exit_2(model: Toy, calib: torch.Tensor, tmp_path: Path,
                                                           run_cli) -> None:
    path = tmp_path / "a.ptz"
    fields = export_artifact(model, cfg(), calib, path)
    ok = run_cli("artifact", "inspect", str(path))
    assert ok.returncode == 0, ok.stderr
    assert cfg().content_hash() in ok.stdout and "fc.weight" in ok.stdout and "gptq_int6" in ok.stdout
    assert str(fields["artifact_bytes"]) in ok.stdout.replace(",", "")
    _damaged(path, "truncated")
    bad = run_cli("artifact", "inspect", str(path))
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and "not a valid clowncar artifact" in bad.stderr
    assert "Traceback" not in bad.stderr
