"""Alembic's environment: run the revisions on the connection `core.migrate` hands over, in its transaction."""

from __future__ import annotations

from alembic import context

from core.db import SCHEMA, metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table_schema=SCHEMA,
    # Compare only the control plane's own schema (the same cluster may hold the sandbox's or replicas' schemas).
    include_schemas=True,
    include_name=lambda name, type_, parents: type_ != "schema" or name == SCHEMA,
)
context.run_migrations()
