"""Seed-exact switches (docs/fidelity.md) that cannot act on a given model: a DeltaNet switch on a model without a
DeltaNet layer, the flow-instruction switch on one without flow instructions, the GPTQ feedback rule where nothing
is GPTQ-quantized. Each switch reaches the trial through one code path only (the DeltaNet constructor and
`model.build.untrained`, the `loop_inst_` parameters, `quant.classify` and `gptq_quantize`), and the condition
below is exactly when that path is never taken.

`config_canonical.canonical` resets such a switch (a sweep then counts one trial, not two), and `load_config`
refuses one that a file or `--set` names with a non-default value (issue 19: a switch combination that cannot
work is a one-line error), except `quant.delta_net_scheme`, which the `clowncar-seed` preset sets on its
DeltaNet-free model as a part of the seed's quantizer, so that adding DeltaNet heads to it gets the seed's int8.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Config = dict[str, dict[str, Any]]
"""A config as `TrialConfig.to_dict()` gives it."""


def _has_delta_net(cfg: Config) -> bool:
    return bool(cfg["model"]["delta_net_heads"])  # the crawler builds the layer whenever this is > 0


def _has_flow_instructions(cfg: Config) -> bool:
    """The `loop_inst_*` tensors exist (clowncar.model.crawler builds them only so)."""
    m = cfg["model"]
    return (m["arch"] == "crawler" and m["num_crawler_layers"] > 0 and m["crawler_loops"] > 1 and m["inst_dim"] > 0
            and m["loop_offsets"] == "fixed")


def _quantizes_with_gptq(cfg: Config) -> bool:
    """Only quant.flat_scheme can name a GPTQ scheme (the crawler and DeltaNet schemes inherit it or are int8/fp16;
    the embedding is int8 or fp16)."""
    q = cfg["quant"]
    return bool(q["enabled"]) and str(q["flat_scheme"]).startswith("gptq_")


DELTA_NET = "model.delta_net_heads > 0 (a model without DeltaNet heads has no DeltaNet layer)"
FLOW = ("flow instructions (model.arch crawler with a crawler layer, model.crawler_loops >= 2 and "
        "model.inst_dim > 0)")
GPTQ = "a GPTQ scheme (quant.flat_scheme gptq_int6 or gptq_int5, quant.enabled true)"

DELTA_NET_KEYS = frozenset({"model.delta_net_heads"})
FLOW_KEYS = frozenset({"model.arch", "model.num_crawler_layers", "model.crawler_loops", "model.inst_dim",
                       "model.loop_offsets"})
GPTQ_KEYS = frozenset({"quant.enabled", "quant.flat_scheme"})

SWITCHES: dict[str, tuple[Callable[[Config], bool], str]] = {
    "model.delta_net_conv_silu": (_has_delta_net, DELTA_NET),
    "model.delta_net_head_norm": (_has_delta_net, DELTA_NET),
    "model.delta_net_out_norm": (_has_delta_net, DELTA_NET),
    "model.delta_net_o_init": (_has_delta_net, DELTA_NET),
    "train.train_delta_net": (_has_delta_net, DELTA_NET),
    "quant.delta_net_scheme": (_has_delta_net, DELTA_NET),
    "train.train_flow_instructions": (_has_flow_instructions, FLOW),
    "quant.gptq_feedback": (_quantizes_with_gptq, GPTQ),
}
"""Switch -> (whether it can act on the config, what it needs)."""
READS = {key: {DELTA_NET: DELTA_NET_KEYS, FLOW: FLOW_KEYS, GPTQ: GPTQ_KEYS}[needs]
         for key, (_, needs) in SWITCHES.items()}
"""Switch -> the config keys its condition reads: a sweep that searches none of them cannot make it act."""
NOT_REFUSED = ("quant.delta_net_scheme",)
"""Set inertly by a preset (`clowncar-seed`): only the canonical form resets it (see the module docstring)."""


def inert_switches(cfg: Config, defaults: Config) -> list[str]:
    """The switches of `cfg` (dotted keys) that hold a non-default value and cannot act on its model."""
    inert = []
    for key, (acts, _) in SWITCHES.items():
        section, name = key.split(".")
        if cfg[section][name] != defaults[section][name] and not acts(cfg):
            inert.append(key)
    return inert


def named_inert_switch(cfg: Config, defaults: Config, named: set[str]) -> str | None:
    """The error line for the first switch in `named` (dotted keys a file or `--set` gave) that cannot act on
    `cfg`, or None."""
    for key in inert_switches(cfg, defaults):
        if key in named and key not in NOT_REFUSED:
            section, name = key.split(".")
            value = cfg[section][name]
            # every switch holds a bool or a lower-case name: `true`, as a file or --set writes it
            return f"{key} = {str(value).lower()} cannot act on this model: it needs {SWITCHES[key][1]}"
    return None
