"""The event envelope on Kafka (pure): what the facade accepts, the relay publishes and the applier applies."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

SCHEMA_VERSION = 1
REQUIRED = ("id", "type", "capability", "key", "occurred_at", "request_id", "payload", "schema_version", "sequence")


class EnvelopeError(ValueError):
    """Bytes that are not a valid envelope; the message says what is wrong."""


@dataclass(frozen=True)
class Envelope:
    """One accepted update: `sequence` orders the updates of one key (1, 2, 3, … per capability and key)."""

    id: str
    type: str
    capability: str
    key: str
    occurred_at: str  # ISO-8601 UTC, when the facade accepted it
    request_id: str
    payload: Mapping[str, Any]  # {"path_params": {...}, "body": {...}, "client_id": "..."}
    sequence: int
    schema_version: int = SCHEMA_VERSION
    headers: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> bytes:
        """Serialise as compact JSON (the Kafka record value)."""
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes | None) -> Envelope:
        """Parse a Kafka record value, or raise EnvelopeError naming the problem."""
        if not raw:
            raise EnvelopeError("empty record")
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise EnvelopeError(f"not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise EnvelopeError("not a JSON object")
        missing = [name for name in REQUIRED if name not in data]
        if missing:
            raise EnvelopeError(f"missing fields: {', '.join(missing)}")
        if data["schema_version"] != SCHEMA_VERSION:
            raise EnvelopeError(f"unsupported schema_version {data['schema_version']!r}")
        if not isinstance(data["sequence"], int) or data["sequence"] < 1:
            raise EnvelopeError("sequence must be a positive integer")
        if not isinstance(data["payload"], dict):
            raise EnvelopeError("payload must be an object")
        known = {k: data[k] for k in (*REQUIRED, "headers") if k in data}
        return cls(**known)
