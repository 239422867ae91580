"""Run under torchrun by test_evaluate.py: score one seeded model with every rank and write rank 0's results.

Usage: torchrun --nproc-per-node N dist_eval_check.py CONFIG.json OUT.json"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from clowncar.config_load import from_dict
from clowncar.data.bpb import build_byte_luts
from clowncar.data.stream import load_validation_tokens
from clowncar.data.tokenizer import load_tokenizer
from clowncar.model import build_model
from clowncar.worker.dist import init_distributed, shutdown_distributed
from clowncar.worker.evaluate import evaluate_bpb


def main(config_path: str, out_path: str) -> None:
    cfg = from_dict(json.loads(Path(config_path).read_text()))
    info = init_distributed("cpu")
    data = Path(cfg.data.dataset)
    sp = load_tokenizer(cfg.data.tokenizer)
    luts = build_byte_luts(sp, cfg.model.vocab_size)
    tokens = load_validation_tokens(sorted(data.glob(cfg.data.val_glob)), cfg.eval_seq_len, cfg.eval.max_tokens)
    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg)
    results = {}
    for stride in (0, 3, cfg.eval.stride):
        results[str(stride)] = evaluate_bpb(model, tokens, luts, cfg.eval_seq_len, stride, cfg.eval.batch_tokens,
                                            info.rank, info.world_size)
    # Two windows over three ranks: rank 0 (the one that writes) has none and still takes part in the sums.
    short = tokens[:2 * cfg.eval_seq_len + 1]
    results["short"] = evaluate_bpb(model, short, luts, cfg.eval_seq_len, 0, cfg.eval.batch_tokens, info.rank,
                                    info.world_size)
    if info.is_main:
        Path(out_path).write_text(json.dumps(results))
    shutdown_distributed()


if __name__ == "__main__":
    main(*sys.argv[1:3])
