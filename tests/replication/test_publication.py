"""Publication set-up is safe when several replicators start at the same moment."""

from __future__ import annotations

import threading
from collections.abc import Callable

from replication.source import connect, ensure_publication
from tests.replication.support import Pair


def test_replicators_starting_together_all_find_the_publication(make_pair: Callable[..., Pair]) -> None:
    pair = make_pair(customers=5)
    tables = list(pair.options().mapping.tables.values())
    start, errors = threading.Barrier(6), []

    def ensure() -> None:
        with connect(pair.source) as conn:
            start.wait()
            try:
                ensure_publication(conn, "p_race", tables)
            except Exception as exc:
                errors.append(exc)

    racers = [threading.Thread(target=ensure) for _ in range(6)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(30)
    assert errors == []
    published = pair.sql("source", "SELECT count(*) FROM pg_publication_tables WHERE pubname = 'p_race'")[0][0]
    assert published == len(tables)
