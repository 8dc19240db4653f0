"""Who is calling: the request id a caller may bring, and the client its bearer key names."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping

from werkzeug.datastructures import Authorization

REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def request_id_of(incoming: str) -> str:
    """Return the caller's X-Request-ID when it is well formed (1-128 of ``A-Za-z0-9._:-``), else a fresh one."""
    return incoming if REQUEST_ID.match(incoming) else uuid.uuid4().hex


def client_of(authorization: str, api_keys: Mapping[str, str]) -> str | None:
    """Return the client that an ``Authorization: Bearer <key>`` header names, or None for anything else."""
    scheme, _, token = authorization.partition(" ")
    return api_keys.get(token) if scheme.lower() == "bearer" else None


def admin_of(authorization: Authorization | None, admin_keys: Mapping[str, str]) -> str | None:
    """Return the admin a Bearer key names, or a Basic password (a browser's prompt; the user name is ignored)."""
    if authorization is None:
        return None
    token = authorization.password if authorization.type == "basic" else authorization.token
    return admin_keys.get(token or "")
