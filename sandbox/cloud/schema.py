"""Create the cloud store schema `cloud` and seed it from the same deterministic customers as the legacy core."""

from __future__ import annotations

from datetime import UTC, datetime, time
from decimal import Decimal

from sqlalchemy import Connection, create_engine
from sqlalchemy.pool import NullPool

from sandbox.seed import customers

SCHEMA = "cloud"

# customers and accounts will later be filled by CDC from the legacy core, so they carry no foreign keys
# (CDC applies rows table by table); payments and ledger entries are written only by the cloud service.
DDL = """
DROP SCHEMA IF EXISTS cloud CASCADE;
CREATE SCHEMA cloud;
CREATE TABLE cloud.customers (
    id            bigint      PRIMARY KEY,
    name          text        NOT NULL,
    email         text        NOT NULL DEFAULT '',
    phone         text        NOT NULL DEFAULT '',
    address_line1 text        NOT NULL DEFAULT '',
    city          text        NOT NULL DEFAULT '',
    postcode      text        NOT NULL DEFAULT '',
    updated_at    timestamptz NOT NULL
);
CREATE TABLE cloud.accounts (
    id          bigint        PRIMARY KEY,
    customer_id bigint        NOT NULL,
    currency    char(3)       NOT NULL,
    balance     numeric(18,2) NOT NULL CHECK (balance >= 0),
    updated_at  timestamptz   NOT NULL
);
CREATE INDEX accounts_customer_id ON cloud.accounts (customer_id);
CREATE TABLE cloud.payments (
    payment_id   text          PRIMARY KEY CHECK (length(payment_id) BETWEEN 1 AND 64),
    from_account bigint        NOT NULL,
    to_account   bigint        NOT NULL,
    amount       numeric(18,2) NOT NULL CHECK (amount > 0),
    currency     char(3)       NOT NULL,
    status       text          NOT NULL CHECK (status IN ('posted', 'rejected')),
    reason       text,
    created_at   timestamptz   NOT NULL,
    description  text          NOT NULL DEFAULT ''
);
CREATE TABLE cloud.ledger_entries (
    id         bigserial     PRIMARY KEY,
    payment_id text          NOT NULL REFERENCES cloud.payments (payment_id),
    account_id bigint        NOT NULL,
    amount     numeric(18,2) NOT NULL
);
CREATE INDEX ledger_entries_payment_id ON cloud.ledger_entries (payment_id);
CREATE INDEX ledger_entries_account_id ON cloud.ledger_entries (account_id);
"""


def create_schema(conn: Connection) -> None:
    """Drop and recreate schema `cloud` with empty tables inside the caller's transaction."""
    conn.exec_driver_sql(DDL)


def seed(conn: Connection, count: int) -> None:
    """Load customers 1..count and their accounts (same ids, balances and profiles as legacy) by COPY."""
    raw = conn.connection.driver_connection
    with raw.cursor() as cur:  # type: ignore[union-attr]
        with cur.copy(
            "COPY cloud.customers (id, name, email, phone, address_line1, city, postcode, updated_at) FROM STDIN"
        ) as copy:
            for c in customers(count):
                # The opening date stands in for the last update so that seeding stays deterministic.
                updated = datetime.combine(c.open_date, time(), tzinfo=UTC)
                copy.write_row((c.number, c.name, c.email, c.phone, c.address_line1, c.city, c.postcode, updated))
        with cur.copy("COPY cloud.accounts (id, customer_id, currency, balance, updated_at) FROM STDIN") as copy:
            for c in customers(count):
                updated = datetime.combine(c.open_date, time(), tzinfo=UTC)
                copy.write_row((c.number, c.number, c.currency, Decimal(c.balance_cents).scaleb(-2), updated))
    conn.exec_driver_sql("ANALYZE cloud.customers; ANALYZE cloud.accounts")


def init_db(database_url: str, count: int) -> None:
    """Recreate schema `cloud` in the database at `database_url` and seed `count` customers, in one transaction."""
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            create_schema(conn)
            seed(conn, count)
    finally:
        engine.dispose()
