"""Money-conservation figures of the cloud store (amounts as decimal strings), for tests and `/__admin/ledger`."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, text

from sandbox.cloud.wire import money

_SUMMARY = text(
    """
    SELECT
        (SELECT coalesce(sum(balance), 0) FROM cloud.accounts) AS total_balance,
        (SELECT count(*) FROM cloud.accounts) AS accounts,
        (SELECT count(*) FROM cloud.payments WHERE status = 'posted') AS posted_payments,
        (SELECT count(*) FROM cloud.payments WHERE status = 'rejected') AS rejected_payments,
        (SELECT count(*) FROM cloud.ledger_entries) AS ledger_entries,
        (SELECT coalesce(sum(amount), 0) FROM cloud.ledger_entries) AS ledger_sum,
        (SELECT count(*) FROM cloud.payments p
          WHERE p.status = 'posted'
            AND (SELECT count(*) <> 2 OR coalesce(sum(e.amount), 0) <> 0
                   FROM cloud.ledger_entries e WHERE e.payment_id = p.payment_id)) AS unbalanced_payments,
        (SELECT count(*) FROM cloud.ledger_entries e JOIN cloud.payments p USING (payment_id)
          WHERE p.status <> 'posted') AS stray_ledger_entries,
        (SELECT coalesce(max(n), 0) FROM (
            SELECT count(e.id) FILTER (WHERE e.amount < 0) AS n
              FROM cloud.payments p LEFT JOIN cloud.ledger_entries e USING (payment_id)
             GROUP BY p.payment_id) per_id) AS max_postings_per_payment_id
    """
)


def ledger_summary(conn: Connection) -> dict[str, Any]:
    """Return the conservation figures: ledger_sum must be "0.00", unbalanced and stray counts must be 0."""
    row = conn.execute(_SUMMARY).mappings().one()
    return {key: money(value) if isinstance(value, Decimal) else int(value) for key, value in row.items()}
