"""Deterministic seeding: the same customers, ids and balances in the legacy core and the cloud store, every time."""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from sandbox.cloud import schema as cloud_schema
from sandbox.legacy import schema as legacy_schema
from sandbox.seed import MAX_BALANCE_CENTS, MIN_BALANCE_CENTS, customer, customers

N = 40


def rows(url: str, sql: str) -> list[tuple[object, ...]]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql))]
    finally:
        engine.dispose()


LEGACY_CUSTOMERS = (
    "SELECT c.custno, c.name, c.email, c.phone, c.addr1, c.city, c.postcd, c.opendt, c.lstupddt, "
    "a.acctno, a.ccy, a.curbal, a.status FROM cbs.custmast c JOIN cbs.acctmast a USING (custno) ORDER BY c.custno"
)
CLOUD_CUSTOMERS = (
    "SELECT c.id, c.name, c.email, c.phone, c.address_line1, c.city, c.postcode, a.id, a.currency, a.balance "
    "FROM cloud.customers c JOIN cloud.accounts a ON a.customer_id = c.id ORDER BY c.id"
)


def test_customer_i_is_always_the_same_person_whatever_n() -> None:
    assert list(customers(5)) == list(customers(5))
    assert list(customers(10))[:5] == list(customers(5))
    assert customer(3) == list(customers(3))[2]
    assert len({c.email for c in customers(500)}) == 500
    assert all(MIN_BALANCE_CENTS <= c.balance_cents <= MAX_BALANCE_CENTS for c in customers(500))
    assert len({c.balance_cents for c in customers(50)}) > 45  # not one constant balance


def test_legacy_seeding_is_deterministic_and_uses_legacy_layouts(new_database: Callable[[str], str]) -> None:
    first, second = new_database("seed_legacy"), new_database("seed_legacy")
    legacy_schema.init_db(first, N)
    legacy_schema.init_db(second, N)
    seeded = rows(first, LEGACY_CUSTOMERS)
    assert seeded == rows(second, LEGACY_CUSTOMERS) and len(seeded) == N
    c7 = customer(7)
    opened = c7.open_date.strftime("%Y%m%d")
    assert seeded[6] == (
        "0000000007", c7.name, c7.email, c7.phone, c7.address_line1, c7.city, c7.postcode, opened, opened,
        "0000000007", "EUR", c7.balance_cents, "A",
    )  # fmt: skip


def test_reseeding_drops_what_was_there(new_database: Callable[[str], str]) -> None:
    url = new_database("seed_again")
    legacy_schema.init_db(url, 30)
    legacy_schema.init_db(url, 10)
    assert rows(url, "SELECT count(*) FROM cbs.acctmast") == [(10,)]
    cloud_schema.init_db(url, 30)
    cloud_schema.init_db(url, 10)
    assert rows(url, "SELECT count(*) FROM cloud.accounts") == [(10,)]


def test_cloud_holds_the_same_customers_and_balances_as_legacy(new_database: Callable[[str], str]) -> None:
    legacy_url, cloud_url = new_database("seed_pair_legacy"), new_database("seed_pair_cloud")
    legacy_schema.init_db(legacy_url, N)
    cloud_schema.init_db(cloud_url, N)
    legacy_rows, cloud_rows = rows(legacy_url, LEGACY_CUSTOMERS), rows(cloud_url, CLOUD_CUSTOMERS)
    assert len(cloud_rows) == N
    for old, new in zip(legacy_rows, cloud_rows, strict=True):
        assert int(str(old[0])) == new[0] == int(str(old[9])) == new[7]
        assert old[1:7] == new[1:7]  # name, email, phone, address, city, postcode
        assert (old[10], Decimal(int(str(old[11]))) / 100) == (new[8], new[9])


def test_ten_thousand_customers_seed_quickly(new_database: Callable[[str], str]) -> None:
    url = new_database("seed_big")
    started = time.monotonic()
    legacy_schema.init_db(url, 10_000)
    elapsed = time.monotonic() - started
    assert rows(url, "SELECT count(*), sum(curbal) FROM cbs.acctmast") == [
        (10_000, sum(c.balance_cents for c in customers(10_000)))
    ]
    assert elapsed < 15, f"seeding 10,000 customers took {elapsed:.1f}s"
