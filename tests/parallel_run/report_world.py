"""A realistic parallel run written straight into the comparison tables, with every expected figure known.

payments.create, legacy primary vs cloud shadow, 38 comparisons half an hour apart from BASE + 1h:
20 plain matches; 5 recorded mismatches whose only difference is the noise path $.created_at (matches at
report time); 4 mismatches on $.fee (one also noisy on $.created_at); 2 critical mismatches on $.amount; one
critical difference on $.status, which is also a noise path (still counted); one status difference (201 vs
500); one pair of 503s (a match, an error on each side); one mismatch on $.creditor.iban and $.memo (masked
IBAN, a value that would be markup in HTML); 2 shadow timeouts and 1 shadow error. Around it, rows that must
not be counted: before the window, at its exclusive end, and of another capability.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from core.db import comparison_diffs, comparison_noise, comparisons, shadow_skips

CAP = "payments.create"
BASE = datetime(2025, 3, 3, tzinfo=UTC)
SINCE, UNTIL = BASE, BASE + timedelta(hours=30)
MASKED_IBAN_PRIMARY = '"GB** **** **** **** **12 34"'
MASKED_IBAN_SHADOW = '"GB** **** **** **** **56 78"'
MARKUP = '"<script>alert(1)</script>"'


@dataclass(frozen=True)
class Diff:
    path: str
    kind: str = "value"
    primary: str | None = None
    shadow: str | None = None
    critical: bool = False


@dataclass
class Row:
    request_id: str
    verdict: str
    diffs: tuple[Diff, ...] = ()
    primary_status: int = 201
    shadow_status: int | None = 201
    shadow_ms: float | None = None  # None: the default timing for an answered shadow
    capability: str = CAP
    critical: bool = field(init=False)

    def __post_init__(self) -> None:
        self.critical = any(d.critical for d in self.diffs)


CREATED = Diff("$.created_at", primary='"2025-03-03T01:00:00Z"', shadow='"2025-03-03T01:00:01Z"')


def fee(n: int, noisy: bool = False) -> Row:
    diffs = (Diff("$.fee", primary='"0.50"', shadow=f'"0.0{n}"'),) + ((CREATED,) if noisy else ())
    return Row(f"fee-{n}", "mismatch", diffs)


def amount(n: int) -> Row:
    return Row(f"amount-{n}", "mismatch", (Diff("$.amount", primary="125.0", shadow=f"12500{n}", critical=True),))


IN_WINDOW: tuple[Row, ...] = (
    *(Row(f"m-{i}", "match") for i in range(10)),
    fee(1, noisy=True),
    fee(2),
    amount(1),
    *(Row(f"noise-{i}", "mismatch", (CREATED,)) for i in range(1, 6)),
    *(Row(f"m-{i}", "match") for i in range(10, 20)),
    fee(3),
    Row("status-crit", "mismatch", (Diff("$.status", primary='"BOOKED"', shadow='"PENDING"', critical=True),)),
    Row("http-500", "mismatch", (Diff("status", "status", "201", "500"),), shadow_status=500),
    Row("both-503", "match", primary_status=503, shadow_status=503),
    fee(4),
    Row(
        "iban-memo",
        "mismatch",
        (
            Diff("$.creditor.iban", primary=MASKED_IBAN_PRIMARY, shadow=MASKED_IBAN_SHADOW),
            Diff("$.memo", "missing_in_primary", None, MARKUP),
        ),
    ),
    amount(2),
    Row("timeout-1", "shadow_timeout", shadow_status=None),
    Row("timeout-2", "shadow_timeout", shadow_status=None),
    Row("error-1", "shadow_error", shadow_status=None, shadow_ms=1.5),
)

AT = {row.request_id: BASE + timedelta(hours=1, minutes=30 * i) for i, row in enumerate(IN_WINDOW)}
PRIMARY_MS = [10.0 + i for i in range(len(IN_WINDOW))]
SHADOW_MS: list[float | None] = [
    None if row.verdict == "shadow_timeout" else row.shadow_ms if row.shadow_ms is not None else 15.0 + 2 * i
    for i, row in enumerate(IN_WINDOW)
]

# Rows that must not count: too early, at the exclusive end, and another capability's.
OUTSIDE: tuple[tuple[datetime, Row], ...] = (
    (SINCE - timedelta(hours=1), Row("early", "mismatch", (Diff("$.amount", primary="1", shadow="2", critical=True),))),
    (UNTIL, Row("at-until", "mismatch", (Diff("$.fee", primary='"1"', shadow='"2"'),))),
    *(
        (BASE + timedelta(hours=h), Row(f"bal-{h}", "mismatch", (Diff("$.balance"),), capability="accounts.balance"))
        for h in (2, 3, 4)
    ),
)

NOISE = (
    (CAP, "$.created_at", 40, BASE - timedelta(days=2), BASE + timedelta(hours=20)),
    (CAP, "$.status", 2, BASE - timedelta(days=1), BASE - timedelta(hours=5)),
    ("accounts.balance", "$.fee", 9, BASE, BASE),  # another capability's noise hides nothing here
)

SKIPS = (
    (CAP, BASE + timedelta(hours=2), "queue_full", 3),
    (CAP, BASE + timedelta(hours=2, minutes=1), "queue_full", 4),
    (CAP, BASE + timedelta(hours=3), "not_sampled", 11),
    (CAP, SINCE - timedelta(minutes=1), "queue_full", 100),
    ("accounts.balance", BASE + timedelta(hours=2), "queue_full", 50),
)


def insert(conn: sa.Connection, at: datetime, row: Row, primary_ms: float, shadow_ms: float | None) -> None:
    """Insert one comparison and its differences as the comparison store would."""
    comparison_id = conn.execute(
        sa.insert(comparisons).returning(comparisons.c.id),
        dict(
            at=at, capability=row.capability, request_id=row.request_id, primary_side="legacy", shadow_side="cloud",
            primary_status=row.primary_status, shadow_status=row.shadow_status, primary_ms=primary_ms,
            shadow_ms=shadow_ms, verdict=row.verdict, critical=row.critical,
        ),
    ).scalar_one()  # fmt: skip
    for d in row.diffs:
        conn.execute(
            sa.insert(comparison_diffs),
            dict(comparison_id=comparison_id, path=d.path, kind=d.kind, primary_value=d.primary,
                 shadow_value=d.shadow, critical=d.critical),
        )  # fmt: skip


def seed(engine: sa.Engine) -> None:
    """Write the whole world: the window's rows, the rows around it, noise and skipped shadows."""
    with engine.begin() as conn:
        for row, primary_ms, shadow_ms in zip(IN_WINDOW, PRIMARY_MS, SHADOW_MS, strict=True):
            insert(conn, AT[row.request_id], row, primary_ms, shadow_ms)
        for at, row in OUTSIDE:
            insert(conn, at, row, 1.0, 1.0)
        for capability, path, seen, first, last in NOISE:
            conn.execute(
                sa.insert(comparison_noise),
                dict(capability=capability, path=path, seen=seen, first_seen=first, last_seen=last),
            )
        for capability, minute, reason, count in SKIPS:
            conn.execute(
                sa.insert(shadow_skips), dict(capability=capability, minute=minute, reason=reason, count=count)
            )


def percentile_cont(values: list[float], p: float) -> float:
    """PostgreSQL's percentile_cont: linear interpolation at position p * (n - 1) of the sorted values."""
    ordered = sorted(values)
    pos = p * (len(ordered) - 1)
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)
