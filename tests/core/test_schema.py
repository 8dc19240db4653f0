"""Creating the control-plane schema: idempotent on a current database, a clear refusal on an older layout."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa

from core.db import SchemaMismatch, create_schema, make_engine


def test_creating_the_schema_twice_is_harmless_and_an_older_table_layout_is_refused_by_name(
    new_database: Callable[[str], str],
) -> None:
    engine = make_engine(new_database("schema"), pool_size=1)
    try:
        create_schema(engine)
        create_schema(engine)  # every process does it at start
        with engine.begin() as conn:  # the outbox as it was before the relay read by transaction position
            conn.execute(sa.text("ALTER TABLE strangler.event_outbox DROP COLUMN txid"))
        with pytest.raises(SchemaMismatch, match=r"missing event_outbox\.txid\)"):
            create_schema(engine)
    finally:
        engine.dispose()
