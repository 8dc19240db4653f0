"""Money-conservation figures of the legacy core, for tests and the `/__admin/ledger` endpoint."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, text

_SUMMARY = text(
    """
    SELECT
        (SELECT coalesce(sum(curbal), 0)::bigint FROM cbs.acctmast) AS total_cents,
        (SELECT count(*) FROM cbs.acctmast) AS accounts,
        (SELECT count(*) FROM cbs.payments WHERE stat = 'PSTD') AS posted_payments,
        (SELECT count(*) FROM cbs.payments WHERE stat = 'RJCT') AS rejected_payments,
        (SELECT count(*) FROM cbs.ledger) AS ledger_entries,
        (SELECT coalesce(sum(amtcents), 0)::bigint FROM cbs.ledger) AS ledger_sum_cents,
        (SELECT count(*) FROM cbs.payments p
          WHERE p.stat = 'PSTD'
            AND (SELECT count(*) <> 2 OR coalesce(sum(l.amtcents), 0) <> 0
                   FROM cbs.ledger l WHERE l.payid = p.payid)) AS unbalanced_payments,
        (SELECT count(*) FROM cbs.ledger l JOIN cbs.payments p USING (payid)
          WHERE p.stat <> 'PSTD') AS stray_ledger_entries,
        (SELECT coalesce(max(n), 0) FROM (
            SELECT count(l.entryid) FILTER (WHERE l.amtcents < 0) AS n
              FROM cbs.payments p LEFT JOIN cbs.ledger l USING (payid)
             GROUP BY p.refno) per_ref) AS max_postings_per_refno
    """
)


def ledger_summary(conn: Connection) -> dict[str, Any]:
    """Return the conservation figures: ledger_sum_cents, unbalanced_payments and stray entries must be 0.

    `max_postings_per_refno` counts debit postings per caller reference; above 1 means a double payment.
    """
    row = conn.execute(_SUMMARY).mappings().one()
    return {key: int(value) for key, value in row.items()}
