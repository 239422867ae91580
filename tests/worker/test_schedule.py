"""LR multiplier, Muon momentum warm-up and cadence: pure functions pinned exactly."""

from __future__ import annotations

import pytest

from clowncar.config import TrainConfig
from clowncar.worker.schedule import (
    LRPoint,
    cadence_for,
    is_crawl_step,
    lr_scale,
    muon_momentum,
    wallclock_cap_ms,
)


def test_wallclock_warmdown_is_linear_and_reaches_zero_at_the_cap() -> None:
    train = TrainConfig(max_wallclock_seconds=100.0, warmdown_iters=50, iterations=10**6)
    step_ms = 200.0  # mean step time -> warm-down lasts 50 x 200 ms = 10 s, from 90 s to 100 s
    points = {}
    for elapsed_s in (10.0, 89.9, 90.0, 95.0, 99.0, 100.0, 101.0):
        step = int(elapsed_s * 1000 / step_ms) + 1
        points[elapsed_s] = lr_scale(train, step, elapsed_s * 1000)
    assert points[10.0].scale == 1.0 and points[10.0].phase == "main"
    assert points[89.9].scale == 1.0
    assert points[95.0].scale == pytest.approx(0.5) and points[95.0].phase == "warmdown"
    assert points[99.0].scale == pytest.approx(0.1)
    assert points[100.0].scale == 0.0
    assert points[101.0].scale == 0.0


def test_reserve_seconds_moves_the_cap_earlier() -> None:
    train = TrainConfig(max_wallclock_seconds=100.0, reserve_seconds=30.0, warmdown_iters=10)
    assert wallclock_cap_ms(train) == 70_000.0
    assert lr_scale(train, 701, 70_000.0).scale == 0.0
    assert wallclock_cap_ms(TrainConfig(max_wallclock_seconds=0)) == 0.0


def test_iteration_limit_gets_its_own_warmdown_when_it_comes_first() -> None:
    train = TrainConfig(iterations=100, warmdown_iters=10, max_wallclock_seconds=0)
    assert lr_scale(train, 90, 0.0).scale == 1.0
    assert lr_scale(train, 91, 0.0).scale == pytest.approx(1.0)
    assert lr_scale(train, 96, 0.0).scale == pytest.approx(0.5)
    assert lr_scale(train, 100, 0.0).scale == pytest.approx(0.1)
    # with a far-away cap the iteration limit still wins
    capped = TrainConfig(iterations=100, warmdown_iters=10, max_wallclock_seconds=3600)
    assert lr_scale(capped, 96, 95 * 10.0).scale == pytest.approx(0.5)


def test_a_warmdown_step_names_the_limit_that_set_its_multiplier() -> None:
    """The walk's runs: one config, 40 iterations, a 25 s cap. On a loaded machine (0.8 s a step) the clock's
    warm-down comes first and sets the multiplier; on a quiet one (0.38 s a step) the iteration limit's does."""
    train = TrainConfig(iterations=40, warmdown_iters=20, max_wallclock_seconds=25.0)
    loaded, quiet = lr_scale(train, 25, 24 * 800.0), lr_scale(train, 25, 24 * 380.0)
    assert loaded == LRPoint(pytest.approx((25_000 - 19_200) / (20 * 800.0)), "warmdown", "wallclock")
    assert quiet == LRPoint(pytest.approx(16 / 20), "warmdown", "iterations")
    assert lr_scale(train, 3, 2 * 380.0) == LRPoint(1.0, "main")  # no warm-down yet: no limit named
    cosine = TrainConfig(lr_schedule="cosine", iterations=10, lr_warmup_steps=2, max_wallclock_seconds=1.0)
    assert lr_scale(cosine, 2, 900.0).set_by is None and lr_scale(cosine, 3, 900.0).set_by == "iterations"


def test_lr_warmup_then_main() -> None:
    train = TrainConfig(lr_warmup_steps=4, warmdown_iters=0)
    assert [lr_scale(train, s, 0.0).scale for s in range(1, 6)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    assert lr_scale(train, 2, 0.0).phase == "warmup"
    assert lr_scale(train, 5, 0.0).phase == "main"


def test_no_warmdown_before_the_mean_step_time_is_known() -> None:
    train = TrainConfig(max_wallclock_seconds=1.0, warmdown_iters=10**6, iterations=10**9)
    assert lr_scale(train, 1, 0.0).scale == 1.0


def test_muon_momentum_warms_up_linearly() -> None:
    train = TrainConfig(muon_momentum=0.95, muon_momentum_warmup_start=0.85, muon_momentum_warmup_steps=10)
    assert muon_momentum(train, 1) == pytest.approx(0.85)
    assert muon_momentum(train, 6) == pytest.approx(0.90)
    assert muon_momentum(train, 11) == pytest.approx(0.95)
    assert muon_momentum(train, 500) == pytest.approx(0.95)


@pytest.mark.parametrize(("cadence", "offset", "expected"), [
    (0, 0, "NNNNNNNN"),
    (1, 0, "CCCCCCCC"),
    (2, 0, "CNCNCNCN"),
    (3, 0, "CNNCNNCN"),
    (3, 1, "NCNNCNNC"),
    (4, 0, "CNNNCNNN"),
])
def test_cadence_pattern(cadence: int, offset: int, expected: str) -> None:
    kinds = "".join("C" if is_crawl_step(s, cadence, offset) else "N" for s in range(1, 9))
    assert kinds == expected


def test_phased_cadence_follows_the_lr_multiplier() -> None:
    train = TrainConfig(cadence_phased=True, cadence_early=2, cadence_main=4, cadence_late=6, cadence=1)
    lr = lambda s: lr_scale(TrainConfig(iterations=10, warmdown_iters=10, max_wallclock_seconds=0), s, 0.0)  # noqa: E731
    assert [cadence_for(train, lr(s)) for s in (1, 5, 6, 8, 9, 10)] == [2, 2, 4, 4, 6, 6]
    assert cadence_for(TrainConfig(cadence=3), lr(10)) == 3


def test_a_cap_under_a_second_is_still_a_cap() -> None:
    assert wallclock_cap_ms(TrainConfig(max_wallclock_seconds=0.5)) == 500.0
    assert wallclock_cap_ms(TrainConfig(max_wallclock_seconds=1.0)) == 1000.0
    assert wallclock_cap_ms(TrainConfig(max_wallclock_seconds=2.0, reserve_seconds=0.5)) == 1500.0


def test_warmdown_law_holds_for_the_shortest_cap_and_warmdown() -> None:
    """remaining / (warmdown_iters x mean step time) exactly, even for a 1 ms cap and a one-step warm-down."""
    train = TrainConfig(max_wallclock_seconds=0.001, warmdown_iters=1, iterations=10**6)
    assert lr_scale(train, 2, 0.75).scale == pytest.approx(0.25 / 0.75)
    assert lr_scale(train, 2, 0.75).phase == "warmdown"
    long = TrainConfig(max_wallclock_seconds=10.0, warmdown_iters=1, iterations=10**6)
    assert lr_scale(long, 10, 9_500.0).scale == pytest.approx(500.0 / (9_500.0 / 9))


def test_warmdown_starts_from_the_second_step_once_one_step_time_is_known() -> None:
    train = TrainConfig(max_wallclock_seconds=10.0, warmdown_iters=10, iterations=10**6)
    # one step took 9.5 s: the warm-down would last 95 s, and 0.5 s are left
    assert lr_scale(train, 2, 9_500.0).scale == pytest.approx(500.0 / 95_000.0)


def test_phase_boundaries_belong_to_the_phase_they_end() -> None:
    warm = TrainConfig(lr_warmup_steps=4, warmdown_iters=0)
    assert lr_scale(warm, 4, 0.0) == LRPoint(1.0, "warmup")  # the last warm-up step reaches 1
    limit = TrainConfig(iterations=100, warmdown_iters=10, max_wallclock_seconds=0)
    assert lr_scale(limit, 91, 0.0) == LRPoint(1.0, "main")  # scale exactly 1: not yet warming down
    assert lr_scale(limit, 92, 0.0).phase == "warmdown"


def test_muon_momentum_without_or_with_a_one_step_warmup() -> None:
    none = TrainConfig(muon_momentum=0.95, muon_momentum_warmup_start=0.85, muon_momentum_warmup_steps=0)
    assert muon_momentum(none, 1) == 0.95
    one = TrainConfig(muon_momentum=0.95, muon_momentum_warmup_start=0.85, muon_momentum_warmup_steps=1)
    assert muon_momentum(one, 1) == pytest.approx(0.85) and muon_momentum(one, 2) == pytest.approx(0.95)


def test_crawl_steps_start_at_the_first_step_by_default() -> None:
    assert [is_crawl_step(s, 3) for s in range(1, 5)] == [True, False, False, True]
