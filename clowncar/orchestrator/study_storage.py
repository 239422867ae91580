"""The Optuna study's storage, riding out a short store outage like the store's own writes (`store/retry.py`).

Optuna's RDBStorage does not retry a lost connection. After a PostgreSQL restart its pool holds dead connections
(`pool_pre_ping`, set by `open_study`, replaces them at checkout), and during the restart every call raises
(`StorageInternalError` over SQLAlchemy's OperationalError). The driver calls the storage while a sweep runs:
asks (`_create_new_trial`, `_set_trial_param`, attrs), tells (`set_trial_state_values`), and reads. With
`retry_seconds` > 0 each of those calls is retried as a whole (each is one transaction of Optuna's), and only
calls that are safe to repeat after a COMMIT whose reply was lost:

- reads, and the attribute and parameter writes (upserts, or an insert that ignores its own duplicate);
- `_create_new_trial` is not: a repeat would add a second trial. Before it runs, the study's last trial id is
  read; a retry first looks for a trial created after it (only this driver creates trials in its study: it holds
  the sweep's lease) and returns that one instead of creating another;
- `set_trial_state_values` is not: a repeat of a tell that landed finds the trial finished and raises, and a
  repeat of WAITING -> RUNNING returns False (Optuna would leave the trial RUNNING and take another). A retry
  that finds the trial already in the wanted state reports success.

Where the window runs out the sweep fails (a StoreError, exit 1) and `sweep resume` reconciles study and store.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import optuna
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState

from clowncar.errors import StoreError
from clowncar.store.retry import retry_transient

_REPEATABLE = (
    "get_study_id_from_name", "get_study_name_from_id", "get_study_directions", "get_study_user_attrs",
    "get_study_system_attrs", "get_all_studies", "get_trial_user_attrs", "get_trial_system_attrs",
    "get_trial_param", "get_trial_id_from_study_id_trial_number", "get_trial", "get_all_trials", "_get_trials",
    "get_best_trial", "_get_best_trial_id",
    "set_study_user_attr", "set_study_system_attr", "set_trial_user_attr", "set_trial_system_attr",
    "set_trial_intermediate_value", "_set_trial_param",
)
"""Calls that a repeat leaves as one call would: reads; upserts of attributes and intermediate values; a
parameter write, whose repeat hits the (trial, name) unique key and is ignored by Optuna itself."""


class RetryingRDBStorage(RDBStorage):
    """RDBStorage whose calls survive a short outage once `retry_seconds` is set (0, the default: as Optuna)."""

    retry_seconds: float = 0.0

    def _retry(self, call: Callable[[bool], Any]) -> Any:
        """`call(again)` through `retry_transient`; `again` is False on the first try, True on the later ones."""
        tries = [0]

        def once() -> Any:
            tries[0] += 1
            return call(tries[0] > 1)

        return retry_transient(once, self.retry_seconds, self._gave_up)

    def _gave_up(self, err: BaseException, window_s: float) -> StoreError:
        from sqlalchemy.engine import make_url

        from clowncar.store.engine import store_error

        cause = err.__cause__ if isinstance(err, optuna.exceptions.StorageInternalError) and err.__cause__ else err
        line = store_error(cause, make_url(self.url), "optuna storage failed at")  # password hidden
        return StoreError(f"{line} (still failing after {window_s:g} s of retries)")

    def _last_trial_id(self, study_id: int) -> int:
        """The study's highest trial id (-1 for none), read as RDBStorage reads: its models, its session."""
        from optuna.storages._rdb import models
        from optuna.storages._rdb.storage import _create_scoped_session
        from sqlalchemy import func

        with _create_scoped_session(self.scoped_session) as session:
            last = session.query(func.max(models.TrialModel.trial_id)).filter(
                models.TrialModel.study_id == study_id).scalar()
        return -1 if last is None else int(last)

    def _create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> FrozenTrial:
        if self.retry_seconds <= 0:
            return super()._create_new_trial(study_id, template_trial)
        before = self._retry(lambda again: self._last_trial_id(study_id))

        def create(again: bool) -> FrozenTrial:
            if again:  # the lost try may have committed: its trial is the one after `before`
                landed = RDBStorage._get_trials(self, study_id, None, set(), before)  # unretried: one window
                if landed:
                    return landed[-1]
            return super(RetryingRDBStorage, self)._create_new_trial(study_id, template_trial)

        return self._retry(create)

    def set_trial_state_values(self, trial_id: int, state: TrialState,
                               values: Sequence[float] | None = None) -> bool:
        def tell(again: bool) -> bool:
            # the state and its values land in one transaction: the wanted state means the lost try committed
            if again and RDBStorage.get_trial(self, trial_id).state == state:
                return True
            return super(RetryingRDBStorage, self).set_trial_state_values(trial_id, state, values)

        return self._retry(tell)


def _repeatable(name: str) -> Callable[..., Any]:
    @functools.wraps(getattr(RDBStorage, name))
    def method(self: RetryingRDBStorage, *args: Any, **kwargs: Any) -> Any:
        base = getattr(RDBStorage, name)  # looked up at each call, as a method of Optuna's own class would be
        return self._retry(lambda again: base(self, *args, **kwargs))

    return method


for _name in _REPEATABLE:
    setattr(RetryingRDBStorage, _name, _repeatable(_name))
