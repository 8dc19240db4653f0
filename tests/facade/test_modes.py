"""Canary placement is sticky per key and only ever moves keys from legacy to cloud as the percentage grows."""

from __future__ import annotations

from facade.modes import canary_bucket, canary_side
from tests.builders import shipped_rules


def test_a_key_always_lands_on_the_same_side() -> None:
    cap = shipped_rules().capabilities["accounts.balance"]
    assert {canary_side(cap, 30, "1234") for _ in range(20)} == {canary_side(cap, 30, "1234")}


def test_raising_the_percentage_never_moves_a_key_back_to_legacy() -> None:
    cap = shipped_rules().capabilities["accounts.balance"]
    keys = [str(i) for i in range(2000)]
    previous: set[str] = set()
    for percent in (0, 1, 5, 10, 25, 50, 75, 100):
        on_cloud = {k for k in keys if canary_side(cap, percent, k) == "cloud"}
        assert previous <= on_cloud
        previous = on_cloud
    assert len(previous) == len(keys)


def test_share_on_cloud_tracks_the_percentage() -> None:
    cap = shipped_rules().capabilities["accounts.balance"]
    share = sum(canary_side(cap, 20, str(i)) == "cloud" for i in range(10_000)) / 10_000
    assert 0.18 < share < 0.22


def test_buckets_differ_per_capability_and_without_a_key_legacy_answers() -> None:
    cap = shipped_rules().capabilities["accounts.balance"]
    assert canary_side(cap, 99.99, None) == "legacy"
    assert [canary_bucket("a.b", str(i)) for i in range(50)] != [canary_bucket("c.d", str(i)) for i in range(50)]
