"""One trial, start to end, without Ray: train (Muon + AdamW, wallclock schedule, cadence, data parallel),
evaluate (exact BPB, non-overlapping and sliding), export (part 2), and report (events.jsonl, result.json).

Entry points: `python -m clowncar.worker CONFIG --out DIR` (also under torchrun) and `clowncar trial run`."""
