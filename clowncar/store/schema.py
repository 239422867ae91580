"""The `clowncar_` tables (schema version 3). Optuna's RDBStorage keeps its own tables in the same database;
every name here carries the `clowncar_` prefix so the two never collide.

Layout: a sweep has trials (one per `uid`), a trial has attempts (0, 1, ... for retries and resumes), and an
attempt has step, eval and probe rows, named evals (every final / eval line of an imported log, with its eval
mode), metric rows (every number of result.json, for SQL queries) and artifacts.
Step rows use the integer attempt id as the first key column so that millions of rows stay compact.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

schema_table = Table(
    "clowncar_schema", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

sweeps = Table(
    "clowncar_sweeps", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("spec", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # added in version 2
    Column("source", String(10), nullable=False, server_default="run"),
    Column("parent_id", Integer, ForeignKey("clowncar_sweeps.id"), nullable=True),
    # added in version 3: why the sweep is `failed` (a start that did not get to its first trial, a crash)
    Column("reason", Text, nullable=True),
)

trials = Table(
    "clowncar_trials", metadata,
    Column("id", Integer, primary_key=True),
    Column("uid", String(200), nullable=False, unique=True),
    Column("sweep_id", Integer, ForeignKey("clowncar_sweeps.id"), nullable=False, index=True),
    Column("number", Integer, nullable=False),
    Column("config", JSON, nullable=False),
    Column("config_hash", String(32), nullable=False),
    Column("seed", BigInteger, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

attempts = Table(
    "clowncar_attempts", metadata,
    Column("id", Integer, primary_key=True),
    Column("trial_id", Integer, ForeignKey("clowncar_trials.id"), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("reason", Text, nullable=True),
    Column("node", String(200), nullable=True),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("ended_at", DateTime(timezone=True), nullable=True),
    Column("result", JSON, nullable=True),
    UniqueConstraint("trial_id", "attempt", name="uq_clowncar_attempts_trial_attempt"),
)

steps = Table(
    "clowncar_steps", metadata,
    Column("attempt_id", Integer, ForeignKey("clowncar_attempts.id"), nullable=False),
    Column("step", Integer, nullable=False),
    Column("kind", String(1), nullable=True),
    Column("train_loss", Float, nullable=True),
    Column("lr_scale", Float, nullable=True),
    Column("phase", String(10), nullable=True),
    Column("elapsed_ms", Float, nullable=True),
    Column("tokens", BigInteger, nullable=True),
    PrimaryKeyConstraint("attempt_id", "step", name="pk_clowncar_steps"),
    sqlite_with_rowid=False,
)

evals = Table(
    "clowncar_evals", metadata,
    Column("attempt_id", Integer, ForeignKey("clowncar_attempts.id"), nullable=False),
    Column("step", Integer, nullable=False),
    Column("mode", String(10), nullable=False),
    Column("weights", String(10), nullable=False),
    Column("val_loss", Float, nullable=True),
    Column("val_bpb", Float, nullable=True),
    Column("tokens_scored", BigInteger, nullable=True),
    Column("bytes_scored", BigInteger, nullable=True),
    PrimaryKeyConstraint("attempt_id", "step", "mode", "weights", name="pk_clowncar_evals"),
)

artifacts = Table(
    "clowncar_artifacts", metadata,
    Column("attempt_id", Integer, ForeignKey("clowncar_attempts.id"), nullable=False),
    Column("path", String(1000), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("size_bytes", BigInteger, nullable=True),
    Column("code_bytes", BigInteger, nullable=True),
    Column("sha256", String(64), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("attempt_id", "path", name="pk_clowncar_artifacts"),
)

# -- added in version 2 -------------------------------------------------------------------------------------------
probes = Table(
    "clowncar_probes", metadata,
    Column("attempt_id", Integer, ForeignKey("clowncar_attempts.id"), nullable=False),
    Column("step", Integer, nullable=False),
    Column("mode", String(1), nullable=False),
    Column("probe_loss", Float, nullable=True),
    PrimaryKeyConstraint("attempt_id", "step", "mode", name="pk_clowncar_probes"),
)

metrics = Table(
    "clowncar_metrics", metadata,
    Column("attempt_id", Integer, ForeignKey("clowncar_attempts.id"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("value", Float, nullable=True),
    PrimaryKeyConstraint("attempt_id", "name", name="pk_clowncar_metrics"),
)
Index("ix_clowncar_metrics_name_value", metrics.c.name, metrics.c.value)

V2_TABLES = (probes, metrics)
"""Tables that version 2 added; the 1 -> 2 migration creates exactly these."""

# -- added in version 3 -------------------------------------------------------------------------------------------
named_evals = Table(
    "clowncar_named_evals", metadata,
    Column("attempt_id", Integer, ForeignKey("clowncar_attempts.id"), nullable=False),
    Column("seq", Integer, nullable=False),  # order in the run: the last one is the trial's headline
    Column("name", String(200), nullable=False),
    Column("mode", String(10), nullable=False),
    Column("weights", String(10), nullable=False),
    Column("quant", String(20), nullable=True),
    Column("step", Integer, nullable=False),
    Column("val_loss", Float, nullable=True),
    Column("val_bpb", Float, nullable=True),
    Column("eval_ms", Float, nullable=True),
    Column("line", Integer, nullable=True),  # line number in the imported file
    Column("repeats", String(200), nullable=True),  # the earlier eval whose numbers this line prints again
    PrimaryKeyConstraint("attempt_id", "seq", name="pk_clowncar_named_evals"),
)

V3_TABLES = (named_evals,)
"""Tables that version 3 added; the 2 -> 3 migration creates exactly these."""

# -- added in version 4 -------------------------------------------------------------------------------------------
leases = Table(
    "clowncar_leases", metadata,
    # A sweep's name, not its id: a driver takes the lease before it creates the sweep.
    Column("sweep", String(200), primary_key=True),
    Column("token", String(64), nullable=False),
    Column("holder", String(300), nullable=False),
    # Where `pid` names a process (boot id and PID namespace), so a driver on the same machine can tell that
    # the holder is dead without waiting for the lease to expire.
    Column("machine", String(200), nullable=True),
    Column("pid", Integer, nullable=True),
    Column("pid_started", BigInteger, nullable=True),
    Column("acquired_at", DateTime(timezone=True), nullable=False),
    Column("renewed_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

V4_TABLES = (leases,)
"""Tables that version 4 added; the 3 -> 4 migration creates exactly these (and sweeps' `reason` column)."""
