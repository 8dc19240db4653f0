"""RFC 9457 problem details as outcomes: one shape for every error the portal sees."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.calls import Outcome

PROBLEM_TYPE_BASE = "https://strangler.dev/problems/"
PROBLEM_JSON = "application/problem+json"


RESERVED = frozenset({"type", "title", "status", "detail", "instance"})


def problem(
    status: int, slug: str, title: str, detail: str = "", /, headers: Mapping[str, str] | None = None, **extra: Any
) -> Outcome:
    """Return an Outcome carrying an application/problem+json body; extensions may not shadow RFC 9457 members."""
    clash = RESERVED & extra.keys()
    if clash:
        raise ValueError(f"problem extensions may not use {sorted(clash)}")
    body: dict[str, Any] = {"type": PROBLEM_TYPE_BASE + slug, "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    return Outcome(status=status, body=body, headers={"Content-Type": PROBLEM_JSON, **(headers or {})})
