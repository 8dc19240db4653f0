"""Alembic revisions of the control-plane schema (`strangler db upgrade`); `core.migrate` runs them."""
