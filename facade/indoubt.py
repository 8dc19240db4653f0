"""In-doubt writes: a write whose answer was lost is resolved by looking it up by reference, never by resending it."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from connectors.adapters import LookupUnknown
from core.calls import Call, Outcome
from core.db import idempotency_keys, in_doubt
from core.problems import problem
from core.rules import CapabilitySpec
from facade.dispatch import Dispatcher
from facade.idempotency import KEPT_HEADERS, finish_key
from facade.metrics import FacadeMetrics

log = logging.getLogger("strangler.in_doubt")


def status_url(cap: CapabilitySpec, resource_id: str) -> str:
    """Return where the caller can ask about a created resource: the collection path plus its id."""
    return f"{cap.path.rstrip('/')}/{resource_id}"


def pending_outcome(cap: CapabilitySpec, resource_id: str) -> Outcome:
    url = status_url(cap, resource_id)
    body = {
        "id": resource_id,
        "status": "in_doubt",
        "detail": "the core system has not confirmed this request yet; it will not be executed twice",
        "status_url": url,
    }
    return Outcome(202, body, headers={"Location": url, "Retry-After": "2"})


def failed_outcome(cap: CapabilitySpec, resource_id: str) -> Outcome:
    return problem(
        502, "not-executed", "Not executed",
        "the core system never received this request; it was not executed and will not be",
        id=resource_id, state="failed",
    )  # fmt: skip


@dataclass(frozen=True)
class Pending:
    resource_id: str
    capability: str
    client_id: str
    idempotency_key: str | None
    request_id: str
    upstream: str
    request_body: bytes
    path_params: Mapping[str, str]
    expired: bool


class InDoubtResolver:
    """Record writes in doubt, resolve them by lookup now and later (watchdog), and answer status questions."""

    def __init__(
        self,
        engine: sa.Engine,
        dispatcher: Dispatcher,
        capabilities: Mapping[str, CapabilitySpec],
        metrics: FacadeMetrics,
        grace_s: float,
        interval_s: float,
    ) -> None:
        self.engine, self.dispatcher, self.metrics = engine, dispatcher, metrics
        self.capabilities = capabilities  # replaced by the app when the rules file is reloaded
        self.grace, self.interval = timedelta(seconds=grace_s), interval_s

    def open(self, cap: CapabilitySpec, call: Call, upstream: str, key: str | None) -> Outcome:
        """Record the write as in doubt (once), try one lookup now, and return the real outcome or 202 in_doubt."""
        assert call.resource_id is not None
        with self.engine.begin() as conn:
            opened = conn.execute(
                insert(in_doubt)
                .values(
                    resource_id=call.resource_id, capability=cap.name, client_id=call.client_id,
                    idempotency_key=key, request_id=call.request_id, upstream=upstream, request_body=call.body,
                    path_params=dict(call.path_params), state="in_doubt",
                    next_check_at=sa.func.now() + timedelta(seconds=self.interval),
                    give_up_at=sa.func.now() + self.grace,
                )
                .on_conflict_do_nothing()
            ).rowcount  # fmt: skip
            if key is not None:
                # Same transaction: a retry with this key must find it in doubt, never free to run again.
                conn.execute(
                    idempotency_keys.update()
                    .where(idempotency_keys.c.client_id == call.client_id, idempotency_keys.c.key == key)
                    .values(state="in_doubt")
                )
        if opened:
            self.metrics.in_doubt.labels(cap.name, "opened").inc()
        return self.check(call.resource_id) or pending_outcome(cap, call.resource_id)

    def check(self, resource_id: str) -> Outcome | None:
        """Try to resolve one in-doubt write now; return its final outcome, or None while it stays in doubt."""
        with self.engine.begin() as conn:
            row = conn.execute(
                sa.select(in_doubt, (in_doubt.c.give_up_at < sa.func.now()).label("expired"))
                .where(in_doubt.c.resource_id == resource_id)
                .with_for_update(skip_locked=True)
            ).first()
            if row is None:
                return None
            if row.state != "in_doubt":
                return Outcome(
                    row.status_code, raw=bytes(row.response_body), headers={"Content-Type": "application/json"}
                )
            return self._resolve(conn, self._pending(row))

    def _pending(self, row: sa.Row[tuple[object, ...]]) -> Pending:
        m = row._mapping
        return Pending(
            m["resource_id"], m["capability"], m["client_id"], m["idempotency_key"], m["request_id"],
            m["upstream"], bytes(m["request_body"]), m["path_params"], bool(m["expired"]),
        )  # fmt: skip

    def _resolve(self, conn: sa.Connection, pending: Pending) -> Outcome | None:
        cap = self.capabilities.get(pending.capability)
        if cap is None:
            return None
        call = Call(
            capability=cap.name, method=cap.method, path=cap.path, path_params=pending.path_params,
            body=pending.request_body, request_id=pending.request_id, client_id=pending.client_id,
            resource_id=pending.resource_id,
        )  # fmt: skip
        where = in_doubt.c.resource_id == pending.resource_id
        try:
            outcome = self.dispatcher.lookup(pending.upstream, cap, call)
            unknown = False
        except LookupUnknown:
            # No answer is not 'not found': while the upstream cannot tell, the write stays in doubt, however long.
            outcome, unknown = None, True
        if unknown or (outcome is None and not pending.expired):
            conn.execute(
                in_doubt.update()
                .where(where)
                .values(
                    attempts=in_doubt.c.attempts + 1, next_check_at=sa.func.now() + timedelta(seconds=self.interval)
                )
            )
            return None
        state, result = ("resolved", outcome) if outcome else ("failed", failed_outcome(cap, pending.resource_id))
        assert result is not None
        body = result.payload()
        conn.execute(
            in_doubt.update()
            .where(where)
            .values(state=state, status_code=result.status, response_body=body, resolved_at=sa.func.now(),
                    attempts=in_doubt.c.attempts + 1)
        )  # fmt: skip
        if pending.idempotency_key:
            headers = {k: v for k, v in result.headers.items() if k.lower() in KEPT_HEADERS}
            finish_key(conn, pending.client_id, pending.idempotency_key, result.status, body, headers, "done")
        self.metrics.in_doubt.labels(cap.name, state).inc()
        log.info("in-doubt write settled", extra={"resource_id": pending.resource_id, "state": state})
        return result

    def status(self, resource_id: str) -> Outcome | None:
        """Return what the facade knows of a write it has not seen confirmed (202 in_doubt or failed), else None."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(in_doubt).where(in_doubt.c.resource_id == resource_id)).first()
        if row is None or row.state == "resolved":
            return None
        cap = self.capabilities.get(row.capability)
        if cap is None:
            return None
        if row.state == "failed":
            return Outcome(
                200, {"id": resource_id, "status": "failed", "detail": json.loads(row.response_body)["detail"]}
            )
        return Outcome(200, {**json.loads(pending_outcome(cap, resource_id).payload()), "status": "in_doubt"})

    def sweep(self, limit: int = 20) -> int:
        """Resolve up to `limit` due in-doubt writes (safe to run in every worker); return how many settled."""
        settled = 0
        with self.engine.begin() as conn:
            rows = conn.execute(
                sa.select(in_doubt, (in_doubt.c.give_up_at < sa.func.now()).label("expired"))
                .where(in_doubt.c.state == "in_doubt", in_doubt.c.next_check_at <= sa.func.now())
                .order_by(in_doubt.c.next_check_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            ).all()
            for row in rows:
                if self._resolve(conn, self._pending(row)) is not None:
                    settled += 1
        return settled
