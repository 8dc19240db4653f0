"""The route store against real PostgreSQL: seeded from the file, every change versioned and audited."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from core.db import make_engine
from core.migrate import create_schema
from core.routestore import PostgresRouteStore, RouteChangeError
from core.rules import parse_rules
from tests.builders import shipped_rules, shipped_rules_text


@pytest.fixture
def store(new_database: Callable[[str], str]) -> PostgresRouteStore:
    engine = make_engine(new_database("routes"), pool_size=2)
    create_schema(engine)
    return PostgresRouteStore(engine)


def test_seed_takes_modes_from_the_file_once(store: PostgresRouteStore) -> None:
    rules = shipped_rules()
    assert sorted(store.seed(rules, "ops")) == sorted(rules.capabilities)
    assert store.seed(rules, "ops") == []
    assert {n: s.mode for n, s in store.current().items()} == {n: c.mode for n, c in rules.capabilities.items()}
    assert len(store.history()) == len(rules.capabilities)


def test_set_versions_and_audits_every_change(store: PostgresRouteStore) -> None:
    rules = shipped_rules()
    store.seed(rules, "ops")
    before = store.version()
    cap = rules.capabilities["accounts.balance"]
    state = store.set(cap, "canary", 10, "alice", "start canary")
    assert (state.mode, state.percent, state.updated_by) == ("canary", 10, "alice")
    assert state.version > before and store.version() == state.version
    store.set(cap, "canary", None, "bob", "keep percent")
    assert store.current()["accounts.balance"].percent == 10
    store.set(cap, "legacy", None, "bob", "rollback")
    entries = store.history("accounts.balance")
    assert [(e.from_mode, e.to_mode, e.actor, e.reason) for e in entries[:3]] == [
        ("canary", "legacy", "bob", "rollback"),
        ("canary", "canary", "bob", "keep percent"),
        ("legacy", "canary", "alice", "start canary"),
    ]


@pytest.mark.parametrize(
    ("mode", "percent", "reason", "message"),
    [
        ("sideways", None, "x", "unknown mode"),
        ("events", None, "x", "critical"),
        ("canary", 150, "x", "between 0 and 100"),
        ("cloud", 50, "x", "only applies to canary"),
        ("cloud", None, "  ", "reason is required"),
    ],
)
def test_bad_changes_are_refused_and_nothing_is_written(
    store: PostgresRouteStore, mode: str, percent: float | None, reason: str, message: str
) -> None:
    rules = shipped_rules()
    store.seed(rules, "ops")
    version = store.version()
    with pytest.raises(RouteChangeError, match=message):
        store.set(rules.capabilities["payments.create"], mode, percent, "eve", reason)
    assert store.version() == version and store.current()["payments.create"].mode == "legacy"


def test_critical_capability_cannot_go_to_events_even_when_events_exists(store: PostgresRouteStore) -> None:
    rules = shipped_rules()
    store.seed(rules, "ops")
    modes = {"legacy", "cloud", "canary", "events"}
    with pytest.raises(RouteChangeError, match="critical"):
        store.set(rules.capabilities["payments.create"], "events", None, "eve", "oops", modes)


def test_plan_lists_only_what_would_change(store: PostgresRouteStore) -> None:
    store.seed(shipped_rules(), "ops")
    wanted = parse_rules(
        shipped_rules_text().replace(
            "mode: legacy\n    adapters: {legacy: legacy.balance}",
            "mode: cloud\n    adapters: {legacy: legacy.balance}",
        )
    )
    plan = store.plan(wanted)
    assert [(c.capability, c.from_mode, c.to_mode) for c in plan] == [("accounts.balance", "legacy", "cloud")]
