"""`clowncar artifact eval`'s parts that need no artifact: the device choice, the shape of an evaluation result, and
which CUDA-only kernels are swapped for the PyTorch reference on the CPU."""

from __future__ import annotations

import collections
import dataclasses

import pytest

from clowncar.errors import ClownCarError, ConfigError
from clowncar.worker.artifact_commands import _as_dict, _device, reference_kernels


def test_device_choice_follows_the_trials_rule() -> None:
    assert _device("auto", True) == "cuda" and _device("auto", False) == "cpu"
    assert _device("cpu", True) == "cpu" and _device("cuda", True) == "cuda"
    with pytest.raises(ConfigError) as err:
        _device("cuda", False)
    assert str(err.value) == "--device is cuda but no CUDA device is available"
    with pytest.raises(ConfigError) as err:
        _device("gpu", True)
    assert str(err.value) == "--device must be cpu, cuda or auto, not 'gpu'"


def test_any_evaluation_result_shape_becomes_a_dict() -> None:
    assert _as_dict({"val_bpb": 1.5}) == {"val_bpb": 1.5}
    assert _as_dict(collections.namedtuple("R", "val_bpb tokens")(1.5, 10)) == {"val_bpb": 1.5, "tokens": 10}

    @dataclasses.dataclass
    class R:
        val_bpb: float

    assert _as_dict(R(1.25)) == {"val_bpb": 1.25}
    with pytest.raises(ClownCarError) as err:
        _as_dict(1.5)
    assert str(err.value) == "unexpected evaluation result float"


def test_both_cuda_only_kernels_are_named_when_both_are_swapped_and_none_on_a_gpu() -> None:
    meta = {"config": {"model": {"attn_backend": "flash", "deltanet_backend": "fla", "model_dim": 8}}, "x": 1}
    built, said = reference_kernels(meta, "cpu")
    assert said == ("PyTorch reference on the CPU (the artifact's attn_backend=flash, deltanet_backend=fla needs "
                    "CUDA)")
    assert built == {"config": {"model": {"attn_backend": "auto", "deltanet_backend": "auto", "model_dim": 8}},
                     "x": 1}
    assert meta["config"]["model"]["attn_backend"] == "flash"  # the artifact's own meta is left as it was
    assert reference_kernels(meta, "cuda") == (meta, "")
