"""Fixtures of the replication tests: source/target database pairs whose slots are dropped afterwards."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from replication.config import MappingConfig, load_mapping
from tests.replication.support import Pair, seed_sandbox


@pytest.fixture
def make_pair(new_database: Callable[[str], str]) -> Iterator[Callable[..., Pair]]:
    """Return a function making a source/target pair (seeded as the sandbox when `customers` is given)."""
    made: list[Pair] = []

    def make(customers: int | None = None, mapping: MappingConfig | None = None) -> Pair:
        pair = Pair(new_database("src"), new_database("dst"), mapping or load_mapping())
        made.append(pair)
        return seed_sandbox(pair, customers) if customers is not None else pair

    yield make
    for pair in made:
        pair.drop_slot()
