"""Create the legacy core-banking schema `cbs` and seed it from the deterministic sample customers."""

from __future__ import annotations

from sqlalchemy import Connection, create_engine
from sqlalchemy.pool import NullPool

from sandbox.seed import customers

SCHEMA = "cbs"

# Column widths are the legacy record layout; the API refuses longer values instead of truncating them.
DDL = """
DROP SCHEMA IF EXISTS cbs CASCADE;
CREATE SCHEMA cbs;
CREATE TABLE cbs.custmast (
    custno   char(10)    PRIMARY KEY CHECK (custno ~ '^[0-9]{10}$'),
    name     varchar(60) NOT NULL,
    email    varchar(60) NOT NULL DEFAULT '',
    phone    varchar(20) NOT NULL DEFAULT '',
    addr1    varchar(60) NOT NULL DEFAULT '',
    city     varchar(40) NOT NULL DEFAULT '',
    postcd   varchar(10) NOT NULL DEFAULT '',
    opendt   char(8)     NOT NULL,
    lstupddt char(8)     NOT NULL
);
CREATE TABLE cbs.acctmast (
    acctno char(10) PRIMARY KEY CHECK (acctno ~ '^[0-9]{10}$'),
    custno char(10) NOT NULL REFERENCES cbs.custmast (custno),
    ccy    char(3)  NOT NULL,
    curbal bigint   NOT NULL CHECK (curbal >= 0),
    status char(1)  NOT NULL DEFAULT 'A',
    opendt char(8)  NOT NULL
);
CREATE INDEX acctmast_custno ON cbs.acctmast (custno);
CREATE SEQUENCE cbs.payid_seq;
CREATE TABLE cbs.payments (
    payid    text     PRIMARY KEY,
    refno    text     NOT NULL UNIQUE CHECK (length(refno) BETWEEN 1 AND 64),
    dracct   char(10) NOT NULL,
    cracct   char(10) NOT NULL,
    amtcents bigint   NOT NULL CHECK (amtcents > 0),
    ccy      char(3)  NOT NULL,
    stat     char(4)  NOT NULL CHECK (stat IN ('PSTD', 'RJCT')),
    rc       char(2)  NOT NULL,
    postdt   char(8)  NOT NULL,
    posttm   char(6)  NOT NULL,
    narr     text     NOT NULL DEFAULT ''
);
CREATE TABLE cbs.ledger (
    entryid  bigserial PRIMARY KEY,
    payid    text      NOT NULL REFERENCES cbs.payments (payid),
    acctno   char(10)  NOT NULL REFERENCES cbs.acctmast (acctno),
    amtcents bigint    NOT NULL,
    postdt   char(8)   NOT NULL
);
CREATE INDEX ledger_payid ON cbs.ledger (payid);
CREATE INDEX ledger_acctno ON cbs.ledger (acctno);
CREATE TABLE cbs.profupd_log (
    logno  bigserial UNIQUE,  -- the order in which legacy applied updates
    updref text     PRIMARY KEY CHECK (length(updref) BETWEEN 1 AND 64),
    custno char(10) NOT NULL REFERENCES cbs.custmast (custno),
    upddt  char(8)  NOT NULL,
    updtm  char(6)  NOT NULL
);
"""


def create_schema(conn: Connection) -> None:
    """Drop and recreate schema `cbs` with empty tables inside the caller's transaction."""
    conn.exec_driver_sql(DDL)


def seed(conn: Connection, count: int) -> None:
    """Load customers 1..count, each with one EUR account of the same number, by COPY in the caller's transaction."""
    raw = conn.connection.driver_connection
    with raw.cursor() as cur:  # type: ignore[union-attr]
        with cur.copy(
            "COPY cbs.custmast (custno, name, email, phone, addr1, city, postcd, opendt, lstupddt) FROM STDIN"
        ) as copy:
            for c in customers(count):
                opened = c.open_date.strftime("%Y%m%d")
                copy.write_row(
                    (f"{c.number:010d}", c.name, c.email, c.phone, c.address_line1, c.city, c.postcode, opened, opened)
                )
        with cur.copy("COPY cbs.acctmast (acctno, custno, ccy, curbal, status, opendt) FROM STDIN") as copy:
            for c in customers(count):
                number = f"{c.number:010d}"
                copy.write_row((number, number, c.currency, c.balance_cents, "A", c.open_date.strftime("%Y%m%d")))
    conn.exec_driver_sql("ANALYZE cbs.custmast; ANALYZE cbs.acctmast")


def init_db(database_url: str, count: int) -> None:
    """Recreate schema `cbs` in the database at `database_url` and seed `count` customers, all in one transaction."""
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            create_schema(conn)
            seed(conn, count)
    finally:
        engine.dispose()
