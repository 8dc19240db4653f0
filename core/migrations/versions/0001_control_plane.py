"""The control plane as of 7 Dec 2026: routes and their audit, idempotency, in-doubt payments, the events outbox and
its publication log, dead letters, comparisons and replication status.

Revision ID: 0001
Revises: none (the first revision; tables created before migrations are adopted as this one)
Created: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(sa.schema.CreateSequence(sa.Sequence("route_version_seq", schema="strangler")))
    op.create_table(
        "comparison_noise",
        sa.Column("capability", sa.Text(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("seen", sa.BigInteger(), nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("capability", "path"),
        schema="strangler",
    )
    op.create_table(
        "comparisons",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("capability", sa.Text(), nullable=False),
        sa.Column("request_id", sa.Text(), nullable=False),
        sa.Column("primary_side", sa.Text(), nullable=False),
        sa.Column("shadow_side", sa.Text(), nullable=False),
        sa.Column("primary_status", sa.Integer(), nullable=False),
        sa.Column("shadow_status", sa.Integer(), nullable=True),
        sa.Column("primary_ms", sa.Float(), nullable=False),
        sa.Column("shadow_ms", sa.Float(), nullable=True),
        sa.Column("verdict", sa.Text(), nullable=False),
        sa.Column("critical", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        schema="strangler",
    )
    op.create_index("comparisons_capability_at", "comparisons", ["capability", "at"], unique=False, schema="strangler")
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=True),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=True),
        sa.Column("offset", sa.BigInteger(), nullable=True),
        sa.Column("key", sa.Text(), nullable=True),
        sa.Column("value", sa.LargeBinary(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("failed_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("replayed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        schema="strangler",
    )
    op.create_table(
        "event_key_sequences",
        sa.Column("capability", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("accepted", sa.BigInteger(), nullable=False),
        sa.Column("applied", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("capability", "key"),
        schema="strangler",
    )
    op.create_table(
        "event_outbox",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column(
            "txid", sa.BigInteger(), server_default=sa.text("(pg_current_xact_id()::text)::bigint"), nullable=False
        ),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("generation", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("id"),
        schema="strangler",
    )
    op.create_index("event_outbox_event_id", "event_outbox", ["event_id"], unique=False, schema="strangler")
    op.create_index("event_outbox_position", "event_outbox", ["txid", "id"], unique=False, schema="strangler")
    op.create_table(
        "event_publications",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("upto_txid", sa.BigInteger(), nullable=False),
        sa.Column("upto_id", sa.BigInteger(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        schema="strangler",
    )
    op.create_index(
        "event_publications_upto", "event_publications", ["upto_txid", "upto_id"], unique=False, schema="strangler"
    )
    op.create_table(
        "event_requests",
        sa.Column("request_id", sa.Text(), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("client_id", sa.Text(), nullable=False),
        sa.Column("capability", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("error", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("request_id"),
        sa.UniqueConstraint("capability", "key", "sequence", name="event_requests_key_sequence"),
        sa.UniqueConstraint("event_id"),
        schema="strangler",
        postgresql_with={"fillfactor": 60},
    )
    op.create_index(
        "event_requests_open",
        "event_requests",
        ["capability", "key", "sequence"],
        unique=False,
        schema="strangler",
        postgresql_where=sa.text("state = 'accepted'"),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("client_id", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("capability", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("resource_id", sa.Text(), nullable=True),
        sa.Column("request_id", sa.Text(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("response_body", sa.LargeBinary(), nullable=True),
        sa.Column("response_headers", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("client_id", "key"),
        schema="strangler",
    )
    op.create_index(
        op.f("ix_strangler_idempotency_keys_expires_at"),
        "idempotency_keys",
        ["expires_at"],
        unique=False,
        schema="strangler",
    )
    op.create_table(
        "in_doubt",
        sa.Column("resource_id", sa.Text(), nullable=False),
        sa.Column("capability", sa.Text(), nullable=False),
        sa.Column("client_id", sa.Text(), nullable=False),
        sa.Column("idempotency_key", sa.Text(), nullable=True),
        sa.Column("request_id", sa.Text(), nullable=False),
        sa.Column("upstream", sa.Text(), nullable=False),
        sa.Column("request_body", sa.LargeBinary(), nullable=False),
        sa.Column("path_params", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("response_body", sa.LargeBinary(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("next_check_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("give_up_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("resource_id"),
        schema="strangler",
    )
    op.create_index(
        "in_doubt_pending",
        "in_doubt",
        ["next_check_at"],
        unique=False,
        schema="strangler",
        postgresql_where=sa.text("state = 'in_doubt'"),
    )
    op.create_table(
        "replication_status",
        sa.Column("slot", sa.Text(), nullable=False),
        sa.Column("applied_lsn", sa.Text(), nullable=True),
        sa.Column("source_lsn", sa.Text(), nullable=True),
        sa.Column("lag_bytes", sa.BigInteger(), nullable=True),
        sa.Column("lag_seconds", sa.Float(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("slot"),
        schema="strangler",
    )
    op.create_table(
        "route_audit",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("capability", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("from_mode", sa.Text(), nullable=True),
        sa.Column("from_percent", sa.Float(), nullable=True),
        sa.Column("to_mode", sa.Text(), nullable=False),
        sa.Column("to_percent", sa.Float(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        schema="strangler",
    )
    op.create_index(
        op.f("ix_strangler_route_audit_capability"), "route_audit", ["capability"], unique=False, schema="strangler"
    )
    op.create_table(
        "routes",
        sa.Column("capability", sa.Text(), nullable=False),
        sa.Column("mode", sa.Text(), nullable=False),
        sa.Column("percent", sa.Float(), server_default="0", nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_by", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("capability"),
        schema="strangler",
    )
    op.create_table(
        "shadow_skips",
        sa.Column("capability", sa.Text(), nullable=False),
        sa.Column("minute", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("capability", "minute", "reason"),
        schema="strangler",
    )
    op.create_table(
        "comparison_diffs",
        sa.Column("comparison_id", sa.BigInteger(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("primary_value", sa.Text(), nullable=True),
        sa.Column("shadow_value", sa.Text(), nullable=True),
        sa.Column("critical", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["comparison_id"], ["strangler.comparisons.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("comparison_id", "path"),
        schema="strangler",
    )


def downgrade() -> None:
    op.drop_table("comparison_diffs", schema="strangler")
    op.drop_table("shadow_skips", schema="strangler")
    op.drop_table("routes", schema="strangler")
    op.drop_index(op.f("ix_strangler_route_audit_capability"), table_name="route_audit", schema="strangler")
    op.drop_table("route_audit", schema="strangler")
    op.drop_table("replication_status", schema="strangler")
    op.drop_index(
        "in_doubt_pending", table_name="in_doubt", schema="strangler", postgresql_where=sa.text("state = 'in_doubt'")
    )
    op.drop_table("in_doubt", schema="strangler")
    op.drop_index(op.f("ix_strangler_idempotency_keys_expires_at"), table_name="idempotency_keys", schema="strangler")
    op.drop_table("idempotency_keys", schema="strangler")
    op.drop_index(
        "event_requests_open",
        table_name="event_requests",
        schema="strangler",
        postgresql_where=sa.text("state = 'accepted'"),
    )
    op.drop_table("event_requests", schema="strangler")
    op.drop_index("event_publications_upto", table_name="event_publications", schema="strangler")
    op.drop_table("event_publications", schema="strangler")
    op.drop_index("event_outbox_position", table_name="event_outbox", schema="strangler")
    op.drop_index("event_outbox_event_id", table_name="event_outbox", schema="strangler")
    op.drop_table("event_outbox", schema="strangler")
    op.drop_table("event_key_sequences", schema="strangler")
    op.drop_table("dead_letters", schema="strangler")
    op.drop_index("comparisons_capability_at", table_name="comparisons", schema="strangler")
    op.drop_table("comparisons", schema="strangler")
    op.drop_table("comparison_noise", schema="strangler")
    op.execute(sa.schema.DropSequence(sa.Sequence("route_version_seq", schema="strangler")))
