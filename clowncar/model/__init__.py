"""Models: the GPT baseline and CrawlerGPT, their layers, and DeltaNet (see docs/internals.md, "model")."""

from clowncar.model.build import (
    build_model,
    count_params,
    param_groups,
    params_at_width,
    resolve_model_dim,
    untrained,
)
from clowncar.model.crawler import CrawlerGPT
from clowncar.model.gpt import GPT

__all__ = ["GPT", "CrawlerGPT", "build_model", "count_params", "param_groups", "params_at_width",
           "resolve_model_dim", "untrained"]
