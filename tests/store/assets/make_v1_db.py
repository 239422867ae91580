"""Write `store_v1.db`: a small results store as schema version 1 wrote it (the migration test's input).

The DDL below is frozen: it is what clowncar's schema version 1 created on SQLite, kept here verbatim so that
the test keeps exercising the real upgrade path after the code's schema moves on. Run it from anywhere:

    python tests/store/assets/make_v1_db.py            # rewrites tests/store/assets/store_v1.db
"""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

V1_DDL = """
CREATE TABLE clowncar_schema (id INTEGER NOT NULL, version INTEGER NOT NULL, updated_at DATETIME NOT NULL,
    PRIMARY KEY (id));
CREATE TABLE clowncar_sweeps (id INTEGER NOT NULL, name VARCHAR(200) NOT NULL, spec JSON NOT NULL,
    status VARCHAR(16) NOT NULL, created_at DATETIME NOT NULL, updated_at DATETIME NOT NULL,
    PRIMARY KEY (id), UNIQUE (name));
CREATE TABLE clowncar_trials (id INTEGER NOT NULL, uid VARCHAR(200) NOT NULL, sweep_id INTEGER NOT NULL,
    number INTEGER NOT NULL, config JSON NOT NULL, config_hash VARCHAR(32) NOT NULL, seed BIGINT,
    created_at DATETIME NOT NULL, PRIMARY KEY (id), UNIQUE (uid), FOREIGN KEY(sweep_id) REFERENCES clowncar_sweeps (id));
CREATE INDEX ix_clowncar_trials_sweep_id ON clowncar_trials (sweep_id);
CREATE TABLE clowncar_attempts (id INTEGER NOT NULL, trial_id INTEGER NOT NULL, attempt INTEGER NOT NULL,
    status VARCHAR(16) NOT NULL, reason TEXT, node VARCHAR(200), started_at DATETIME NOT NULL, ended_at DATETIME,
    result JSON, PRIMARY KEY (id), CONSTRAINT uq_clowncar_attempts_trial_attempt UNIQUE (trial_id, attempt),
    FOREIGN KEY(trial_id) REFERENCES clowncar_trials (id));
CREATE TABLE clowncar_steps (attempt_id INTEGER NOT NULL, step INTEGER NOT NULL, kind VARCHAR(1),
    train_loss FLOAT, lr_scale FLOAT, phase VARCHAR(10), elapsed_ms FLOAT, tokens BIGINT,
    CONSTRAINT pk_clowncar_steps PRIMARY KEY (attempt_id, step),
    FOREIGN KEY(attempt_id) REFERENCES clowncar_attempts (id)) WITHOUT ROWID;
CREATE TABLE clowncar_evals (attempt_id INTEGER NOT NULL, step INTEGER NOT NULL, mode VARCHAR(10) NOT NULL,
    weights VARCHAR(10) NOT NULL, val_loss FLOAT, val_bpb FLOAT, tokens_scored BIGINT, bytes_scored BIGINT,
    CONSTRAINT pk_clowncar_evals PRIMARY KEY (attempt_id, step, mode, weights),
    FOREIGN KEY(attempt_id) REFERENCES clowncar_attempts (id));
CREATE TABLE clowncar_artifacts (attempt_id INTEGER NOT NULL, path VARCHAR(1000) NOT NULL, kind VARCHAR(20) NOT NULL,
    size_bytes BIGINT, code_bytes BIGINT, sha256 VARCHAR(64), created_at DATETIME NOT NULL,
    CONSTRAINT pk_clowncar_artifacts PRIMARY KEY (attempt_id, path),
    FOREIGN KEY(attempt_id) REFERENCES clowncar_attempts (id));
"""

T0 = "2026-03-23 21:11:40.000000"
RESULTS = [
    {"status": "ok", "reason": None, "val_loss": 3.5643, "val_bpb": 2.157078, "q_val_bpb": 2.171, "steps": 40,
     "c_steps": 20, "n_steps": 20, "over_cap": False, "provenance": {"git_commit": "0123abcd", "seed": 1337}},
    {"status": "diverged", "reason": "loss is nan at step 7", "val_bpb": None, "steps": 7},
]


def build(path: Path) -> None:
    path.unlink(missing_ok=True)
    db = sqlite3.connect(path)
    db.executescript(V1_DDL)
    db.execute("INSERT INTO clowncar_schema VALUES (1, 1, ?)", (T0,))
    db.execute("INSERT INTO clowncar_sweeps VALUES (1, 'v1-sweep', ?, 'done', ?, ?)",
               (json.dumps({"space": {"model.crawler_loops": [2, 3]}}), T0, T0))
    for n, result in enumerate(RESULTS):
        config = {"model": {"crawler_loops": 2 + n, "model_dim": 512}, "train": {"cadence": 2, "seed": 1337}}
        db.execute("INSERT INTO clowncar_trials VALUES (?, ?, 1, ?, ?, ?, 1337, ?)",
                   (n + 1, f"v1-sweep-{n:04d}", n, json.dumps(config), f"{n:016x}", T0))
        db.execute("INSERT INTO clowncar_attempts VALUES (?, ?, 0, ?, ?, 'node-0', ?, ?, ?)",
                   (n + 1, n + 1, result["status"], result["reason"], T0, T0, json.dumps(result)))
        steps = result["steps"]
        db.executemany("INSERT INTO clowncar_steps VALUES (?, ?, ?, ?, 1.0, 'main', ?, ?)",
                       [(n + 1, i, "C" if i % 2 else "N", 7.0 / i, i * 85.5, i * 32768) for i in range(1, steps + 1)])
    db.execute("INSERT INTO clowncar_evals VALUES (1, 40, 'standard', 'raw', 3.5643, 2.157078, 65536, 160000)")
    db.execute("INSERT INTO clowncar_artifacts VALUES (1, 'runs/v1-sweep-0000/model.ptz', 'model', 15000000, "
               "48000, ?, ?)", ("ab" * 32, T0))
    db.commit()
    db.close()


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("store_v1.db")
    build(out)
    print(f"wrote {out}")
