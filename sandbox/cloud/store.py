"""The cloud service's operations on the cloud store: balances, double-entry payments (with dry run), profiles."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, RowMapping, text
from sqlalchemy.exc import ProgrammingError

from sandbox.cloud.wire import (
    PaymentInstruction,
    Problem,
    Row,
    iso_utc,
    legacy_payment_record,
    money,
    payment_record,
    profile_record,
)

_BALANCE = text("SELECT currency, balance FROM cloud.accounts WHERE id = :id")
# Ascending-id lock order: concurrent payments over the same two accounts queue instead of deadlocking.
_LOCK_ACCOUNTS = text("SELECT id, currency, balance FROM cloud.accounts WHERE id IN (:a, :b) ORDER BY id FOR UPDATE")
# A dry run is read-only (Postgres refuses FOR UPDATE there), so it reads without locks.
_READ_ACCOUNTS = text("SELECT id, currency, balance FROM cloud.accounts WHERE id IN (:a, :b) ORDER BY id")
_PAYMENT = text("SELECT * FROM cloud.payments WHERE payment_id = :payment_id")
_INSERT_PAYMENT = text(
    "INSERT INTO cloud.payments "
    "(payment_id, from_account, to_account, amount, currency, status, reason, created_at, description) "
    "VALUES (:payment_id, :from_account, :to_account, :amount, :currency, :status, :reason, :created_at, "
    ":description) ON CONFLICT (payment_id) DO NOTHING RETURNING *"
)
_INSERT_ENTRIES = text(
    "INSERT INTO cloud.ledger_entries (payment_id, account_id, amount) "
    "VALUES (:payment_id, :from_account, -CAST(:amount AS numeric)), (:payment_id, :to_account, :amount)"
)
_MOVE_FUNDS = text(
    "UPDATE cloud.accounts SET updated_at = :created_at, balance = balance + CASE id WHEN :from_account "
    "THEN -CAST(:amount AS numeric) ELSE CAST(:amount AS numeric) END WHERE id IN (:from_account, :to_account)"
)
_CUSTOMER = text("SELECT * FROM cloud.customers WHERE id = :id")
# Payments made before the cutover live in legacy; CDC copies them here (the table exists once replication ran).
_LEGACY_PAYMENT = text("SELECT * FROM cloud.legacy_payments WHERE reference = :payment_id")


class _LostRace(Exception):
    """A concurrent request with the same payment_id committed first."""


def _customer_not_found(customer_id: int) -> Problem:
    return Problem(404, "customer-not-found", "Customer not found", f"no customer {customer_id}")


class CloudStore:
    """Cloud-native operations; each returns its API body or raises the Problem that answers the request."""

    def __init__(self, engine: Engine, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        """Use `engine`, which must be in AUTOCOMMIT mode: reads are single statements, writes use `_transaction`."""
        self.engine = engine
        self._clock = clock

    @contextmanager
    def _transaction(self, dry_run: bool = False) -> Iterator[Connection]:
        # The engine autocommits so single reads cost one round trip; writes get a real transaction here.
        # A dry run is READ ONLY and always rolled back: the server itself refuses any write it might attempt.
        with self.engine.connect() as conn:
            conn.execution_options(isolation_level="READ COMMITTED")
            tx = conn.begin()
            try:
                if dry_run:
                    conn.exec_driver_sql("SET TRANSACTION READ ONLY")
                yield conn
            except BaseException:
                tx.rollback()
                raise
            if dry_run:
                tx.rollback()
            else:
                tx.commit()

    def balance(self, account_id: int) -> dict[str, Any]:
        """Return the balance of `account_id`, or raise the 404 problem."""
        with self.engine.connect() as conn:
            row = conn.execute(_BALANCE, {"id": account_id}).first()
        if row is None:
            raise Problem(404, "account-not-found", "Account not found", f"no account {account_id}")
        currency, balance = row
        return {
            "account_id": str(account_id),
            "currency": currency,
            "balance": money(balance),
            "available": money(balance),
            "as_of": iso_utc(self._clock()),
        }

    def submit_payment(
        self, instruction: PaymentInstruction, dry_run: bool = False
    ) -> tuple[int, dict[str, Any], bool]:
        """Post `instruction` at most once per payment_id; return (HTTP status, body, replayed).

        Raises Problem for 404 (unknown account), 409 (payment_id reused with other details) and 422 (currency
        mismatch). With `dry_run` the outcome is computed exactly the same way but nothing is written.
        """
        existing = self._payment_row(instruction.payment_id)
        if existing is not None:
            return self._replay(instruction, existing)
        try:
            with self._transaction(dry_run) as conn:
                row = self._post(conn, instruction, dry_run)
        except _LostRace:
            winner = self._payment_row(instruction.payment_id)
            if winner is None:
                raise RuntimeError(f"payment {instruction.payment_id!r} conflicted but cannot be read back") from None
            return self._replay(instruction, winner)
        status, body = self._outcome(row)
        return status, body, False

    def _post(self, conn: Connection, instruction: PaymentInstruction, dry_run: bool) -> dict[str, Any]:
        params = {"a": instruction.from_account, "b": instruction.to_account}
        accounts = {r["id"]: r for r in conn.execute(_READ_ACCOUNTS if dry_run else _LOCK_ACCOUNTS, params).mappings()}
        for account_id in (instruction.from_account, instruction.to_account):
            if account_id not in accounts:
                raise Problem(404, "account-not-found", "Account not found", f"no account {account_id}")
        mismatched = [str(i) for i, acc in accounts.items() if acc["currency"] != instruction.currency]
        if mismatched:
            raise Problem(
                422,
                "currency-mismatch",
                "Currency mismatch",
                f"account(s) {', '.join(mismatched)} do not hold {instruction.currency}",
                payment_id=instruction.payment_id,
                reason="currency_mismatch",
            )
        funded = accounts[instruction.from_account]["balance"] >= instruction.amount
        row: dict[str, Any] = {
            "payment_id": instruction.payment_id,
            "from_account": instruction.from_account,
            "to_account": instruction.to_account,
            "amount": instruction.amount,
            "currency": instruction.currency,
            "status": "posted" if funded else "rejected",
            "reason": None if funded else "insufficient_funds",
            "created_at": self._clock(),
            "description": instruction.description,
        }
        if dry_run:
            return row
        stored = conn.execute(_INSERT_PAYMENT, row).mappings().first()
        if stored is None:
            raise _LostRace
        if funded:
            conn.execute(_INSERT_ENTRIES, row)
            conn.execute(_MOVE_FUNDS, row)
        return dict(stored)

    @staticmethod
    def _outcome(row: Row) -> tuple[int, dict[str, Any]]:
        if row["status"] == "posted":
            return 201, payment_record(row)
        problem = Problem(
            422,
            "insufficient-funds",
            "Insufficient funds",
            f"account {row['from_account']} cannot cover {money(row['amount'])} {row['currency']}",
            payment_id=row["payment_id"],
            payment_status=row["status"],
            reason=row["reason"],
        )
        return 422, problem.body()

    def _replay(self, instruction: PaymentInstruction, row: RowMapping) -> tuple[int, dict[str, Any], bool]:
        if not instruction.same_details(row):
            raise Problem(
                409,
                "idempotency-conflict",
                "Payment id already used",
                f"payment {instruction.payment_id} exists with different accounts, amount or currency",
                payment_id=instruction.payment_id,
            )
        status, body = self._outcome(row)
        return status, body, True

    def _payment_row(self, payment_id: str) -> RowMapping | None:
        with self.engine.connect() as conn:
            return conn.execute(_PAYMENT, {"payment_id": payment_id}).mappings().first()

    def payment(self, payment_id: str) -> dict[str, Any]:
        """Return the stored payment (posted or rejected; one of ours, else one replicated from legacy), or 404."""
        row = self._payment_row(payment_id)
        if row is not None:
            return payment_record(row)
        legacy = self._legacy_payment_row(payment_id)
        if legacy is None:
            raise Problem(404, "payment-not-found", "Payment not found", f"no payment {payment_id!r}")
        return legacy_payment_record(legacy)

    def _legacy_payment_row(self, payment_id: str) -> RowMapping | None:
        try:
            with self.engine.connect() as conn:
                return conn.execute(_LEGACY_PAYMENT, {"payment_id": payment_id}).mappings().first()
        except ProgrammingError:
            return None  # no replication into this store: legacy's payments are not here

    def profile(self, customer_id: int) -> dict[str, Any]:
        """Return the profile of `customer_id`, or raise the 404 problem."""
        with self.engine.connect() as conn:
            row = conn.execute(_CUSTOMER, {"id": customer_id}).mappings().first()
        if row is None:
            raise _customer_not_found(customer_id)
        return profile_record(row)

    def update_profile(self, customer_id: int, changes: dict[str, str]) -> dict[str, Any]:
        """Apply column changes to `customer_id` and return the updated profile, or raise the 404 problem."""
        # Column names come from the fixed PROFILE_COLUMNS table in wire.py, never from the request.
        assignments = ", ".join(f"{column} = :{column}" for column in changes)
        statement = text(f"UPDATE cloud.customers SET {assignments}, updated_at = :now WHERE id = :id RETURNING *")
        with self._transaction() as conn:
            row = conn.execute(statement, {**changes, "now": self._clock(), "id": customer_id}).mappings().first()
        if row is None:
            raise _customer_not_found(customer_id)
        return profile_record(row)
