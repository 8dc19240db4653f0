"""The call and outcome that travel between the facade, the modes, the adapters and the comparator."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any


@dataclass(frozen=True)
class Call:
    """One portal request, matched to a capability, as every mode and adapter sees it."""

    capability: str
    method: str
    path: str
    path_params: Mapping[str, str]
    query: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    request_id: str = ""
    client_id: str = ""
    resource_id: str | None = None  # set by the facade for creates it names (e.g. the payment id)
    headers: Mapping[str, str] = field(default_factory=dict)

    @cached_property
    def json(self) -> Any:
        """The body parsed as JSON (None when empty); the facade has already refused malformed JSON."""
        return json.loads(self.body) if self.body else None

    def field(self, name: str) -> str | None:
        """Return a path parameter or top-level body field by name, as a string, or None."""
        if name in self.path_params:
            return self.path_params[name]
        body = self.json
        if isinstance(body, dict) and body.get(name) is not None:
            return str(body[name])
        return None


@dataclass(frozen=True)
class Outcome:
    """What the caller gets: an HTTP status, a JSON body (or raw bytes) and extra headers."""

    status: int
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    raw: bytes | None = None
    upstream: str = ""
    latency_ms: float = 0.0

    def payload(self) -> bytes:
        """Return the body as bytes: raw when passed through, else compact JSON."""
        if self.raw is not None:
            return self.raw
        return b"" if self.body is None else json.dumps(self.body, separators=(",", ":")).encode()
