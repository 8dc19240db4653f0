"""Match a method and path to a capability with werkzeug's router (pure: built from rules, no I/O)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, RequestRedirect, Rule

from core.rules import CapabilitySpec


@dataclass(frozen=True)
class Match:
    capability: str
    params: Mapping[str, str]


class NoRoute(Exception):
    """No capability answers this path (allowed is empty) or this method (allowed lists the methods that would)."""

    def __init__(self, allowed: tuple[str, ...] = ()) -> None:
        super().__init__(allowed)
        self.allowed = allowed


class CapabilityMatcher:
    """Find the capability for (method, path); raise NoRoute when there is none."""

    def __init__(self, capabilities: Mapping[str, CapabilitySpec]) -> None:
        rules = [Rule(cap.path, methods=[cap.method], endpoint=cap.name) for cap in capabilities.values()]
        self._adapter = Map(rules, strict_slashes=False, merge_slashes=False).bind("facade")

    def match(self, method: str, path: str) -> Match:
        try:
            endpoint, params = self._adapter.match(path, method)
        except MethodNotAllowed as exc:
            raise NoRoute(tuple(sorted(m for m in exc.valid_methods or () if m != "HEAD"))) from None
        except (NotFound, RequestRedirect):
            raise NoRoute() from None
        return Match(str(endpoint), {k: str(v) for k, v in params.items()})
