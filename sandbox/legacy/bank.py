"""The legacy core's business operations (balances, double-entry payments, customer profiles) over SQLAlchemy Core."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, RowMapping, text

from sandbox.legacy.wire import (
    PROFILE_FIELDS,
    RC_DUPLICATE_REFERENCE,
    RC_INSUFFICIENT_FUNDS,
    RC_INVALID_TRANSACTION,
    RC_NO_SUCH_ACCOUNT,
    RC_OK,
    RC_RECORD_NOT_FOUND,
    PaymentOrder,
    ProfileUpdate,
    Refusal,
    customer_record,
    payment_record,
    refusal_body,
    stamp,
)

_BALANCE = text("SELECT curbal, ccy FROM cbs.acctmast WHERE acctno = :acctno")
# ORDER BY puts the row locks in ascending ACCTNO order (LockRows runs above the sort), so two payments over
# the same pair of accounts, in either direction, queue on the same first row instead of deadlocking.
_LOCK_ACCOUNTS = text(
    "SELECT acctno, ccy, curbal FROM cbs.acctmast WHERE acctno IN (:a, :b) ORDER BY acctno FOR UPDATE"
)
_PAYMENT_BY_REF = text("SELECT * FROM cbs.payments WHERE refno = :refno")
# ON CONFLICT DO NOTHING waits for a concurrent insert of the same REFNO; if that one commits, we get no row back.
_INSERT_PAYMENT = text(
    "INSERT INTO cbs.payments (payid, refno, dracct, cracct, amtcents, ccy, stat, rc, postdt, posttm, narr) "
    "VALUES ('P' || lpad(nextval('cbs.payid_seq')::text, 12, '0'), :refno, :dracct, :cracct, :amtcents, :ccy, "
    ":stat, :rc, :postdt, :posttm, :narr) ON CONFLICT (refno) DO NOTHING RETURNING *"
)
_INSERT_LEDGER = text(
    "INSERT INTO cbs.ledger (payid, acctno, amtcents, postdt) "
    "VALUES (:payid, :dracct, :debit, :postdt), (:payid, :cracct, :credit, :postdt)"
)
_MOVE_FUNDS = text(
    "UPDATE cbs.acctmast SET curbal = curbal + CASE acctno WHEN :dracct THEN :debit ELSE :credit END "
    "WHERE acctno IN (:dracct, :cracct)"
)
_CUSTOMER = text("SELECT * FROM cbs.custmast WHERE custno = :custno")
_LOCK_CUSTOMER = text("SELECT * FROM cbs.custmast WHERE custno = :custno FOR UPDATE")
_LOG_UPDATE = text(
    "INSERT INTO cbs.profupd_log (updref, custno, upddt, updtm) VALUES (:updref, :custno, :upddt, :updtm) "
    "ON CONFLICT (updref) DO NOTHING RETURNING updref"
)
_UPDATE_OWNER = text("SELECT custno FROM cbs.profupd_log WHERE updref = :updref")
_NO_SUCH_CUSTOMER = "NO SUCH CUSTOMER"


class _LostRace(Exception):
    """A concurrent request with the same reference committed first."""


class LegacyBank:
    """The legacy core-banking operations; every method returns the API body (RC and fields) of its outcome."""

    def __init__(self, engine: Engine, clock: Callable[[], datetime] = datetime.now) -> None:
        """Use `engine`, which must be in AUTOCOMMIT mode: reads are single statements, writes use `_transaction`."""
        self.engine = engine
        self._clock = clock

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        # The engine autocommits so the hot balance read costs one round trip (no BEGIN/ROLLBACK);
        # writes switch their connection to a real READ COMMITTED transaction for its lifetime.
        with self.engine.connect() as conn:
            conn.execution_options(isolation_level="READ COMMITTED")
            with conn.begin():
                yield conn

    def balance(self, acctno: str) -> dict[str, Any]:
        """Return the current and available balance of account `acctno`, or RC 14."""
        with self.engine.connect() as conn:
            row = conn.execute(_BALANCE, {"acctno": acctno}).first()
        if row is None:
            return refusal_body(RC_NO_SUCH_ACCOUNT)
        curbal, ccy = row
        return {
            "RC": RC_OK,
            "ACCTNO": acctno,
            "CURBAL": curbal,
            "AVLBAL": curbal,
            "CCY": ccy,
            "ASOFDT": self._clock().strftime("%Y%m%d"),
        }

    def post_payment(self, order: PaymentOrder) -> dict[str, Any]:
        """Post `order` at most once per REFNO (double entry, one transaction) and return the payment record.

        Raises Refusal for outcomes that record nothing (unknown account, currency mismatch).
        """
        existing = self._payment(order.refno)
        if existing is not None:
            return self._replay(order, existing)
        try:
            with self._transaction() as conn:
                row = self._post(conn, order)
        except _LostRace:
            winner = self._payment(order.refno)
            if winner is None:
                raise RuntimeError(f"payment {order.refno!r} conflicted but cannot be read back") from None
            return self._replay(order, winner)
        record = payment_record(row)
        record["DUPFLG"] = "N"
        return record

    def _post(self, conn: Connection, order: PaymentOrder) -> RowMapping:
        accounts = {
            r["acctno"]: r for r in conn.execute(_LOCK_ACCOUNTS, {"a": order.dracct, "b": order.cracct}).mappings()
        }
        if len(accounts) != 2:
            raise Refusal(RC_NO_SUCH_ACCOUNT)
        if any(account["ccy"] != order.ccy for account in accounts.values()):
            raise Refusal(RC_INVALID_TRANSACTION)
        funded = accounts[order.dracct]["curbal"] >= order.amtcents
        postdt, posttm = stamp(self._clock())
        row = (
            conn.execute(
                _INSERT_PAYMENT,
                {
                    "refno": order.refno,
                    "dracct": order.dracct,
                    "cracct": order.cracct,
                    "amtcents": order.amtcents,
                    "ccy": order.ccy,
                    "stat": "PSTD" if funded else "RJCT",
                    "rc": RC_OK if funded else RC_INSUFFICIENT_FUNDS,
                    "postdt": postdt,
                    "posttm": posttm,
                    "narr": order.narr,
                },
            )
            .mappings()
            .first()
        )
        if row is None:
            raise _LostRace
        if funded:
            moves = {
                "payid": row["payid"],
                "dracct": order.dracct,
                "cracct": order.cracct,
                "debit": -order.amtcents,
                "credit": order.amtcents,
                "postdt": postdt,
            }
            conn.execute(_INSERT_LEDGER, moves)
            conn.execute(_MOVE_FUNDS, moves)
        return row

    @staticmethod
    def _replay(order: PaymentOrder, row: RowMapping) -> dict[str, Any]:
        record = payment_record(row)
        if not order.same_details(record):
            return refusal_body(RC_DUPLICATE_REFERENCE)
        record["DUPFLG"] = "Y"
        return record

    def _payment(self, refno: str) -> RowMapping | None:
        with self.engine.connect() as conn:
            return conn.execute(_PAYMENT_BY_REF, {"refno": refno}).mappings().first()

    def payment_inquiry(self, refno: str) -> dict[str, Any]:
        """Return the stored payment record for `refno` (posted or rejected), or RC 25."""
        row = self._payment(refno)
        return refusal_body(RC_RECORD_NOT_FOUND) if row is None else payment_record(row)

    def customer_inquiry(self, custno: str) -> dict[str, Any]:
        """Return the customer record for `custno`, or RC 14."""
        with self.engine.connect() as conn:
            row = conn.execute(_CUSTOMER, {"custno": custno}).mappings().first()
        return refusal_body(RC_NO_SUCH_ACCOUNT, _NO_SUCH_CUSTOMER) if row is None else customer_record(row)

    def update_profile(self, update: ProfileUpdate) -> dict[str, Any]:
        """Apply `update` once per UPDREF and return the customer record with DUPFLG; RC 14 or 94 refuse it."""
        upddt, updtm = stamp(self._clock())
        with self._transaction() as conn:
            current = conn.execute(_LOCK_CUSTOMER, {"custno": update.custno}).mappings().first()
            if current is None:
                return refusal_body(RC_NO_SUCH_ACCOUNT, _NO_SUCH_CUSTOMER)
            if update.updref is not None:
                params = {"updref": update.updref, "custno": update.custno, "upddt": upddt, "updtm": updtm}
                if conn.execute(_LOG_UPDATE, params).first() is None:
                    # Already applied (possibly by a concurrent request that held this customer's lock first).
                    owner = conn.execute(_UPDATE_OWNER, {"updref": update.updref}).scalar_one()
                    if owner != update.custno:
                        return refusal_body(RC_DUPLICATE_REFERENCE)
                    return {**customer_record(current), "DUPFLG": "Y"}
            # Column names come from the fixed PROFILE_FIELDS table, never from the request.
            columns = [field.lower() for field in PROFILE_FIELDS if field in update.changes]
            assignments = ", ".join(f"{col} = :{col}" for col in columns)
            statement = text(
                f"UPDATE cbs.custmast SET {assignments}, lstupddt = :upddt WHERE custno = :custno RETURNING *"
            )
            values = {field.lower(): value for field, value in update.changes.items()}
            row = conn.execute(statement, {**values, "upddt": upddt, "custno": update.custno}).mappings().one()
        return {**customer_record(row), "DUPFLG": "N"}
