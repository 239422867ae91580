"""The report's Optuna importances read the study from the store's own database, on SQLite and on the
PostgreSQL server a cluster uses, and a store without a study is left as it was."""

from __future__ import annotations

import sqlalchemy as sa

from clowncar.analysis.explore import optuna_importances
from clowncar.store import open_store


def test_importances_come_from_the_study_in_the_store_database(store_url: str) -> None:
    import optuna

    open_store(store_url).close()
    engine = sa.create_engine(store_url)
    before = set(sa.inspect(engine).get_table_names())
    assert optuna_importances(store_url, "sw")["reason"] == "the database holds no Optuna study tables"
    assert set(sa.inspect(engine).get_table_names()) == before  # nothing created by the report
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="sw", storage=store_url, sampler=optuna.samplers.RandomSampler(seed=1))
    study.optimize(lambda t: t.suggest_float("lr", 0, 1) + 0.001 * t.suggest_int("loops", 1, 4), n_trials=12)
    imp = optuna_importances(store_url, "sw")
    assert imp["status"] == "ok" and imp["trials"] == 12 and set(imp["importances"]) == {"lr", "loops"}
    assert imp["importances"]["lr"] > imp["importances"]["loops"]
    engine.dispose()
