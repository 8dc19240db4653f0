"""The live route table each worker answers from: rules file plus control-plane modes, refreshed in the background."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from core.routestore import PostgresRouteStore, RouteState, states_by_name
from core.rules import CapabilitySpec, RulesError, RuleSet, load_rules
from facade.routing import CapabilityMatcher

log = logging.getLogger("strangler.routes")


@dataclass(frozen=True)
class RouteSnapshot:
    """One consistent view: the rules, their matcher and every capability's live state."""

    rules: RuleSet
    matcher: CapabilityMatcher
    states: Mapping[str, RouteState]
    version: int

    def capability(self, name: str) -> CapabilitySpec:
        return self.rules.capabilities[name]


class LiveRoutes:
    """Hold the current snapshot; `refresh()` swaps in a new one when the store's version or the rules file changed."""

    def __init__(
        self,
        store: PostgresRouteStore,
        rules: RuleSet,
        rules_path: Path | None,
        on_change: Callable[[RouteSnapshot], None] = lambda snap: None,
        validate: Callable[[RuleSet], None] = lambda rules: None,
    ) -> None:
        self.store, self.rules_path, self.on_change, self.validate = store, rules_path, on_change, validate
        self._mtime = rules_path.stat().st_mtime_ns if rules_path and rules_path.exists() else 0
        self.rules_error: str | None = None
        self.store_error: str | None = None
        version = store.version()
        self.snapshot = RouteSnapshot(rules, CapabilityMatcher(rules.capabilities), self._states(rules), version)

    def _states(self, rules: RuleSet) -> dict[str, RouteState]:
        return states_by_name(self.store.current(), rules)

    def refresh(self) -> bool:
        """Reload what changed; keep the last good table when the file is invalid or the store unreachable."""
        rules = self.snapshot.rules
        file_changed = False
        if self.rules_path is not None:
            try:
                mtime = self.rules_path.stat().st_mtime_ns
            except OSError:
                mtime = self._mtime
            if mtime != self._mtime:
                self._mtime = mtime
                try:
                    rules = load_rules(self.rules_path)
                    self.validate(rules)  # what the app checked at start (adapters, normalisers) holds for reloads
                    file_changed, self.rules_error = True, None
                    log.info("rules file reloaded", extra={"path": str(self.rules_path)})
                except RulesError as exc:
                    self.rules_error = str(exc)
                    log.error("rules file refused; keeping the last good table", extra={"error": str(exc)})
        try:
            version = self.store.version()
            if version == self.snapshot.version and not file_changed:
                self.store_error = None
                return False
            states = self._states(rules)
            self.store_error = None
        except Exception as exc:  # the control plane is down: keep answering from the last table
            if self.store_error is None:
                log.error("control plane unreachable; keeping the last route table", extra={"error": str(exc)})
            self.store_error = str(exc)
            return False
        matcher = CapabilityMatcher(rules.capabilities) if file_changed else self.snapshot.matcher
        self.snapshot = RouteSnapshot(rules, matcher, states, version)
        self.on_change(self.snapshot)
        return True
