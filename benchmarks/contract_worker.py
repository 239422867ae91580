"""A worker that honours the output contract (clowncar/events.py) without training anything.

`python -m contract_worker trial.json --out DIR` (with this folder on PYTHONPATH). The orchestrator's overhead
benchmark and fault-tolerance tests use it where the cost or the failure must be controlled; everything else runs
the real `clowncar.worker`. Behaviour comes from the trial config, so a sweep spec can search over it:
- `data.dataset`: `ok` (default behaviour), `crash` (exit 1 without result.json), `diverge` (status diverged,
  exit 3), `overcap` (artifact twice the cap), `orphan` (also starts a grandchild `sleep` in its group), `hang`
  (silent after its first step, as a rank stuck in a collective is);
- `train.iterations`: steps to emit; `train.max_wallclock_seconds`: total seconds to spend (spread over steps);
- objective: q_sliding_val_bpb = 1 + 0.1 * |crawler_loops - 2| + 0.01 * (seed % 7), minus 0.05 when over the cap
  (a bigger model scores better but does not fit), deterministic;
- artifact bytes: cap * (1 + crawler_loops) / 8 (within the cap up to 7 loops), or twice the cap for `overcap`:
  loops 1 is smallest, loops 2 scores best, so a two-objective sweep has a real Pareto front.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    config_path, out = Path(argv[0]), Path(argv[argv.index("--out") + 1])
    cfg = json.loads(config_path.read_text())["config"]
    mode = cfg["data"]["dataset"]
    steps, total_s = int(cfg["train"]["iterations"]), float(cfg["train"]["max_wallclock_seconds"])
    out.mkdir(parents=True, exist_ok=True)
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun only rank 0 writes, as the real worker does
        return 0
    (out / "pid").write_text(str(os.getpid()))
    (out / "cwd").write_text(os.getcwd())  # where the trainable started it
    (out / "stdin").write_text(os.readlink("/proc/self/fd/0") if os.path.exists("/proc/self/fd/0") else "")
    if mode == "orphan":
        child = subprocess.Popen(["sleep", "600"])
        (out / "child_pid").write_text(str(child.pid))
    loss, loops, seed = 5.0, int(cfg["model"]["crawler_loops"]), int(cfg["train"]["seed"])
    with (out / "events.jsonl").open("a") as ev:
        ev.write(json.dumps({"event": "start", "config_hash": "", "world_size": 1, "time": time.time()}) + "\n")
        for step in range(1, steps + 1):
            time.sleep(total_s / max(1, steps))
            if mode == "crash" and step > steps // 2:
                print("contract worker: simulated crash", file=sys.stderr)
                return 1
            loss *= (0.97 + 0.02 * abs(loops - 2)) if mode != "diverge" else 1.5
            ev.write(json.dumps({"event": "step", "step": step, "kind": "C", "train_loss": loss, "lr_scale": 1.0,
                                 "phase": "main", "elapsed_ms": step * 1000 * total_s / steps,
                                 "tokens": step * 1024}) + "\n")
            ev.flush()
            if mode == "hang":
                time.sleep(600)
        bpb = 1.0 + 0.1 * abs(loops - 2) + 0.01 * (seed % 7) - (0.05 if mode == "overcap" else 0.0)
        cap = int(cfg["quant"]["size_cap_bytes"])
        art = cap * 2 if mode == "overcap" else cap * (1 + loops) // 8  # more loops, bigger (nsga2 trade-off)
        status = "diverged" if mode == "diverge" else "ok"
        result = {"status": status, "reason": "train_loss is not finite" if status == "diverged" else None,
                  "val_bpb": bpb, "q_val_bpb": bpb + 0.01, "q_sliding_val_bpb": bpb, "steps": steps,
                  "artifact_bytes": art, "over_cap": art > cap, "params": 1000}
        ev.write(json.dumps({"event": "eval", "step": steps, "val_loss": bpb, "val_bpb": bpb, "mode": "sliding",
                             "weights": "quantized"}) + "\n")
        ev.write(json.dumps({"event": "final", "result": result}) + "\n")
    tmp = out / ".result.json.tmp"
    tmp.write_text(json.dumps(result))
    tmp.replace(out / "result.json")
    return 3 if status == "diverged" else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
