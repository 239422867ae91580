"""The crawler's forward is one torch.compile graph per step kind, every loop inside it: what lets the CUDA-graph
compile modes (`train.compile_mode: reduce-overhead`) replay a whole C-step or N-step forward, and its backward,
as one CUDA graph each (the seed's ClownCar_III plan). A graph break would split the loops across graphs with
eager Python between them. DeltaNet is the known exception: its kernels run outside the graph on purpose."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from clowncar.model import build_model

LAYOUTS = {
    "clowncar": {"bigram_vocab_size": 37, "bigram_dim": 16, "smear_gate": True, "xsa": "crawler",
                 "ln_scale": True, "rope_dims": 4, "rope_ntk_above": 8},
    "clowncar-seed-bf16": {"param_dtype": "bf16", "softcap_dtype": "activation", "rope_table_dtype": "bf16",
                           "unused_value_embed_dim": 8},
    "micro-crawler": {"crawler_position": "end", "num_flat_layers": 3, "inst_dim": 0,
                      "loop_offsets": "learned_n_row", "trigram_vocab_size": 37, "trigram_dim": 16,
                      "resid_mix": False, "q_gain": False},
    "deliberate": {"crawler_mode": "deliberate", "crawler_loops": 2, "inst_dim": 0, "loop_offsets": "learned",
                   "num_crawler_layers": 2, "value_embed_dim": 8},
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_each_step_kind_is_one_graph_with_every_loop_in_it(tiny_cfg: Any, layout: str) -> None:
    cfg = tiny_cfg(**LAYOUTS[layout])
    model = build_model(cfg)
    tokens = torch.randint(0, cfg.vocab_size, (2, 17))
    for crawl in (True, False):
        torch._dynamo.reset()
        explained = torch._dynamo.explain(model)(tokens[:, :-1], tokens[:, 1:], crawl=crawl)
        assert explained.graph_break_count == 0, [str(b.reason) for b in explained.break_reasons]
        assert explained.graph_count == 1


def test_deltanet_is_the_known_graph_break(tiny_cfg: Any) -> None:
    """The check above can see a break: DeltaNet's kernel is kept out of the graph (torch.compiler.disable)."""
    cfg = tiny_cfg(delta_net_heads=2, delta_net_chunk=8)
    tokens = torch.randint(0, cfg.vocab_size, (2, 17))
    torch._dynamo.reset()
    explained = torch._dynamo.explain(build_model(cfg))(tokens[:, :-1], tokens[:, 1:], crawl=True)
    assert explained.graph_break_count > 0
