"""Idempotency keys in the control plane: replay a finished write, refuse a changed or concurrent one."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from core.calls import Call, Outcome
from core.db import idempotency_keys as keys

KEPT_HEADERS = ("content-type", "location", "retry-after")


def fingerprint(call: Call) -> str:
    """Return a digest of what makes two requests 'the same': capability, path and the body's JSON value."""
    body: Any = call.json if call.body else None
    canonical = json.dumps([call.capability, call.path, body], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Decision:
    """What to do with a write: proceed (with its resource id), replay, in_doubt, conflict or mismatch."""

    kind: str
    resource_id: str | None = None
    outcome: Outcome | None = None


def _stored_outcome(row: Any) -> Outcome:
    headers = dict(row.response_headers or {})
    headers["Idempotent-Replayed"] = "true"
    return Outcome(status=row.status_code, raw=bytes(row.response_body or b""), headers=headers)


class PostgresIdempotencyStore:
    """Idempotency records shared by every worker and facade instance through the control-plane database."""

    def __init__(self, engine: sa.Engine, ttl_s: int, lease_s: float) -> None:
        self.engine, self.ttl, self.lease = engine, timedelta(seconds=ttl_s), timedelta(seconds=lease_s)

    def begin(self, call: Call, key: str, new_resource_id: str, resolvable: bool) -> Decision:
        """Claim `key` for this call, or say why not; `resolvable` writes turn a stale claim into in_doubt."""
        digest = fingerprint(call)
        now = sa.func.now()
        with self.engine.begin() as conn:
            inserted = conn.execute(
                insert(keys)
                .values(
                    client_id=call.client_id, key=key, capability=call.capability, fingerprint=digest,
                    state="in_flight", resource_id=new_resource_id, request_id=call.request_id,
                    lease_until=now + self.lease, expires_at=now + self.ttl,
                )
                .on_conflict_do_nothing()
                .returning(keys.c.resource_id)
            ).scalar_one_or_none()  # fmt: skip
            if inserted is not None:
                return Decision("proceed", inserted)
            row = conn.execute(
                sa.select(keys, (keys.c.expires_at < now).label("expired"), (keys.c.lease_until < now).label("stale"))
                .where(keys.c.client_id == call.client_id, keys.c.key == key)
                .with_for_update()
            ).one()
            where = (keys.c.client_id == call.client_id) & (keys.c.key == key)
            if row.expired:
                conn.execute(
                    keys.update().where(where).values(
                        capability=call.capability, fingerprint=digest, state="in_flight",
                        resource_id=new_resource_id, request_id=call.request_id, status_code=None,
                        response_body=None, response_headers=None, created_at=now,
                        lease_until=now + self.lease, expires_at=now + self.ttl,
                    )
                )  # fmt: skip
                return Decision("proceed", new_resource_id)
            if row.capability != call.capability or row.fingerprint != digest:
                return Decision("mismatch", row.resource_id)
            if row.state == "done":
                return Decision("replay", row.resource_id, _stored_outcome(row))
            if row.state == "in_doubt" or (row.state == "in_flight" and row.stale and resolvable):
                conn.execute(keys.update().where(where).values(state="in_doubt"))
                return Decision("in_doubt", row.resource_id)
            if row.state == "in_flight" and not row.stale:
                return Decision("conflict", row.resource_id)
            # retryable, or a stale claim of a write the upstream dedups by reference: run it again, same reference.
            conn.execute(keys.update().where(where).values(state="in_flight", lease_until=now + self.lease))
            return Decision("proceed", row.resource_id)

    def finish(self, client_id: str, key: str, outcome: Outcome, state: str = "done") -> None:
        """Record the write's outcome under its key: `done` replays it, `retryable` lets the same key run again."""
        headers = {k: v for k, v in outcome.headers.items() if k.lower() in KEPT_HEADERS}
        with self.engine.begin() as conn:
            finish_key(conn, client_id, key, outcome.status, outcome.payload(), headers, state)

    def purge_expired(self, limit: int = 1000) -> int:
        """Delete up to `limit` expired keys; return how many."""
        with self.engine.begin() as conn:
            victims = sa.select(keys.c.client_id, keys.c.key).where(keys.c.expires_at < sa.func.now()).limit(limit)
            result = conn.execute(keys.delete().where(sa.tuple_(keys.c.client_id, keys.c.key).in_(victims)))
            return result.rowcount


def finish_key(
    conn: sa.Connection, client_id: str, key: str, status: int, body: bytes, headers: dict[str, str], state: str
) -> None:
    """Store an outcome under a key inside the caller's transaction (the in-doubt watchdog shares it)."""
    conn.execute(
        keys.update()
        .where(keys.c.client_id == client_id, keys.c.key == key)
        .values(state=state, status_code=status, response_body=body, response_headers=headers)
    )
