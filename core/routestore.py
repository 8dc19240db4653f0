"""The live route table in the control plane: current mode per capability, versioned, with an audit trail."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from core.db import AdvisoryLocks, route_audit, route_version, routes
from core.rules import MODES, CapabilitySpec, RuleSet


class RouteChangeError(ValueError):
    """A route change was refused; the message says why."""


class StaleRoute(RouteChangeError):
    """A compare-and-set route change found another version than the one it was decided on: nothing changed."""


@dataclass(frozen=True)
class RouteState:
    """Who answers one capability right now."""

    capability: str
    mode: str
    percent: float
    version: int
    updated_at: datetime | None = None
    updated_by: str = ""
    reason: str = ""


@dataclass(frozen=True)
class AuditEntry:
    version: int
    capability: str
    at: datetime
    actor: str
    from_mode: str | None
    from_percent: float | None
    to_mode: str
    to_percent: float
    reason: str


@dataclass(frozen=True)
class PlannedChange:
    capability: str
    from_mode: str | None
    from_percent: float | None
    to_mode: str
    to_percent: float


def check_change(cap: CapabilitySpec, mode: str, percent: float, modes: Collection[str] = MODES) -> None:
    """Raise RouteChangeError when `mode`/`percent` is not allowed for this capability."""
    if cap.critical and mode == "events":
        raise RouteChangeError(f"{cap.name}: a critical capability cannot be answered in events mode")
    if mode not in modes:
        raise RouteChangeError(f"{cap.name}: unknown mode {mode!r} (known: {', '.join(sorted(modes))})")
    if not 0 <= percent <= 100:
        raise RouteChangeError(f"{cap.name}: percent must be between 0 and 100, not {percent}")
    if mode == "events" and cap.events is None:
        raise RouteChangeError(f"{cap.name}: events mode needs an events block in the rules file")
    if mode == "canary" and not cap.canary.sticky_by:
        raise RouteChangeError(f"{cap.name}: canary needs canary.sticky_by in the rules file")


def _state(row: sa.Row[tuple[object, ...]]) -> RouteState:
    m = row._mapping
    return RouteState(
        m["capability"], m["mode"], m["percent"], m["version"], m["updated_at"], m["updated_by"], m["reason"]
    )


class PostgresRouteStore:
    """Routes and their audit trail in the control-plane database."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def version(self) -> int:
        """Return the newest route version (0 when empty): a cheap query every worker polls."""
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(routes.c.version), 0))).scalar_one())

    def current(self) -> dict[str, RouteState]:
        """Return every capability's live route."""
        with self.engine.connect() as conn:
            return {row.capability: _state(row) for row in conn.execute(sa.select(routes))}

    def seed(self, rules: RuleSet, actor: str) -> list[str]:
        """Insert routes for capabilities the store does not know yet (mode from the file); return their names."""
        added = []
        with self.engine.begin() as conn:
            # Every worker seeds at start-up; one at a time, so each capability is inserted and audited once.
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(AdvisoryLocks.ROUTE_SEED)))
            known = set(conn.execute(sa.select(routes.c.capability)).scalars())
            for cap in rules.capabilities.values():
                if cap.name not in known:
                    self._write(conn, cap.name, None, cap.mode, cap.canary.percent, actor, "seeded from rules file")
                    added.append(cap.name)
        return added

    def set(
        self,
        cap: CapabilitySpec,
        mode: str,
        percent: float | None,
        actor: str,
        reason: str,
        modes: Collection[str] = MODES,
        expect_version: int | None = None,
    ) -> RouteState:
        """Change one capability's mode (and canary percent) with an audit entry; returns the new state.

        With `expect_version` the change is a compare-and-set: StaleRoute when the route moved on meanwhile, so many
        workers deciding the same change at once make it once.
        """
        if not reason.strip():
            raise RouteChangeError("a reason is required for every route change")
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(routes).where(routes.c.capability == cap.name).with_for_update()).first()
            old = _state(row) if row else None
            if expect_version is not None and (old.version if old else 0) != expect_version:
                raise StaleRoute(f"{cap.name}: route changed since version {expect_version}")
            if mode != "canary" and percent:
                raise RouteChangeError(f"{cap.name}: --percent only applies to canary mode")
            if mode != "canary":
                new_percent = 0.0
            elif percent is not None:
                new_percent = percent
            else:
                new_percent = old.percent if old and old.mode == "canary" else 0.0
            check_change(cap, mode, new_percent, modes)
            return self._write(conn, cap.name, old, mode, new_percent, actor, reason)

    def _write(
        self,
        conn: sa.Connection,
        capability: str,
        old: RouteState | None,
        mode: str,
        percent: float,
        actor: str,
        reason: str,
    ) -> RouteState:
        version = int(conn.execute(route_version.next_value()).scalar_one())
        values = {"mode": mode, "percent": percent, "version": version, "updated_by": actor, "reason": reason}
        if old is None:
            conn.execute(routes.insert().values(capability=capability, **values))
        else:
            conn.execute(
                routes.update().where(routes.c.capability == capability).values(updated_at=sa.func.now(), **values)
            )
        conn.execute(
            route_audit.insert().values(
                version=version,
                capability=capability,
                actor=actor,
                from_mode=old.mode if old else None,
                from_percent=old.percent if old else None,
                to_mode=mode,
                to_percent=percent,
                reason=reason,
            )
        )
        row = conn.execute(sa.select(routes).where(routes.c.capability == capability)).one()
        return _state(row)

    def plan(self, rules: RuleSet) -> list[PlannedChange]:
        """Return the changes that applying `rules`' modes would make, without making them."""
        current = self.current()
        changes = []
        for cap in rules.capabilities.values():
            old = current.get(cap.name)
            percent = cap.canary.percent if cap.mode == "canary" else 0.0
            if old is None or (old.mode, old.percent) != (cap.mode, percent):
                changes.append(
                    PlannedChange(cap.name, old.mode if old else None, old.percent if old else None, cap.mode, percent)
                )
        return changes

    def history(self, capability: str | None = None, limit: int = 50) -> list[AuditEntry]:
        """Return audit entries, newest first."""
        query = sa.select(route_audit).order_by(route_audit.c.version.desc()).limit(limit)
        if capability:
            query = query.where(route_audit.c.capability == capability)
        with self.engine.connect() as conn:
            return [AuditEntry(**{k: v for k, v in row._mapping.items() if k != "id"}) for row in conn.execute(query)]


def states_by_name(states: Mapping[str, RouteState], rules: RuleSet) -> dict[str, RouteState]:
    """Return a live state for every capability in `rules`, falling back to the file's mode where none is stored."""
    return {
        name: states.get(name) or RouteState(name, cap.mode, cap.canary.percent if cap.mode == "canary" else 0.0, 0)
        for name, cap in rules.capabilities.items()
    }
