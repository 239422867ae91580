"""The rules of a sweep's driver lease, one at a time, on both backends: when a lease binds, what its refusal
says, which lease a token can renew or give up, and that every time in it is UTC whatever the local zone."""

from __future__ import annotations

import datetime as dt

import pytest

from clowncar.errors import StoreError
from clowncar.store.lease import Claimant, LeaseHeld, _aware, is_live

A = Claimant("tok-a", "pid 11 on node-a", machine="m1", pid=11, pid_started=500)
B = Claimant("tok-b", "pid 22 on node-b")
T = dt.datetime(2026, 12, 4, 12, 0, 0, tzinfo=dt.UTC)


def test_a_naive_time_is_read_as_utc_and_an_aware_one_is_converted(eastern_clock: None) -> None:
    naive = dt.datetime(2026, 12, 4, 12, 0, 0)
    assert _aware(naive) == T and _aware(naive).tzinfo is dt.UTC
    plus5 = dt.datetime(2026, 12, 4, 17, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=5)))
    assert _aware(plus5) == T and _aware(plus5).tzinfo is dt.UTC and _aware(plus5).hour == 12


def test_a_lease_binds_until_the_moment_it_expires_and_not_at_it() -> None:
    lease = {"token": "tok-a", "expires_at": T}
    assert is_live(lease, T - dt.timedelta(microseconds=1))
    assert not is_live(lease, T)
    assert not is_live({"token": "", "expires_at": T}, T - dt.timedelta(hours=1))  # an unclaimed row
    assert not is_live(None) and not is_live({})
    assert not is_live(lease, T - dt.timedelta(hours=1), holder_gone=lambda row: row["token"] == "tok-a")
    assert is_live(lease, T - dt.timedelta(hours=1), holder_gone=lambda row: False)
    assert is_live({"token": "x", "expires_at": dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30)})


def test_the_refusal_names_the_holder_and_the_end_of_its_lease_in_utc() -> None:
    plus5 = dt.datetime(2026, 12, 4, 17, 30, 5, tzinfo=dt.timezone(dt.timedelta(hours=5)))
    err = LeaseHeld("sw", {"holder": "pid 11 on node-a", "expires_at": plus5})
    assert str(err) == ("sweep 'sw' is being run by pid 11 on node-a (its lease runs until 2026-12-04 12:30:05 UTC "
                        "and is renewed while that driver lives); wait for it to end, or stop it first: `clowncar sweep "
                        "stop sw` on its machine, or with --address http://HEAD:8265 for a submitted sweep")
    assert isinstance(err, StoreError) and err.sweep == "sw" and err.lease["holder"] == "pid 11 on node-a"


@pytest.mark.parametrize("ttl", [0, -1.5])
def test_a_lease_needs_a_positive_duration(store, ttl: float) -> None:
    with pytest.raises(StoreError) as err:
        store.acquire_lease("sw", A, ttl_s=ttl)
    assert str(err.value) == f"a lease needs a positive duration, not {ttl}"
    assert store.get_lease("sw") is None


def test_a_taken_lease_is_returned_as_stored(store) -> None:
    got = store.acquire_lease("sw", A, ttl_s=60)
    stored = store.get_lease("sw")
    assert got == stored
    assert set(got) == {"sweep", "token", "holder", "machine", "pid", "pid_started", "acquired_at", "renewed_at",
                        "expires_at"}
    assert (got["sweep"], got["token"], got["holder"]) == ("sw", "tok-a", "pid 11 on node-a")


def test_one_token_renews_and_releases_each_of_its_sweeps_apart(store) -> None:
    store.acquire_lease("sw", A, ttl_s=60)
    store.acquire_lease("other", A, ttl_s=60)
    assert store.release_lease("sw", "tok-a")
    assert store.get_lease("sw") is None and store.get_lease("other")["token"] == "tok-a"
    assert not store.renew_lease("sw", "tok-a", 60)  # released: nothing to renew there
    assert store.get_lease("sw") is None
    assert store.renew_lease("other", "tok-a", 60)


def test_every_time_of_a_lease_is_utc_under_any_local_zone(store, eastern_clock: None) -> None:
    before = dt.datetime.now(dt.UTC)
    store.acquire_lease("sw", A, ttl_s=60)
    assert store.renew_lease("sw", "tok-a", 120)
    lease = store.get_lease("sw")
    after = dt.datetime.now(dt.UTC)
    assert before <= lease["acquired_at"] <= lease["renewed_at"] <= after
    assert dt.timedelta(seconds=120) <= lease["expires_at"] - before <= after - before + dt.timedelta(seconds=120)
    assert is_live(lease)
    with pytest.raises(LeaseHeld):
        store.acquire_lease("sw", B, ttl_s=60)
