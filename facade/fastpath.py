"""The portal's reads without Flask: a GET of a capability is answered straight from the WSGI environ.

Reads are most of the portal's traffic, and Flask's request context, URL map and hooks cost a fifth of the facade's
CPU per read (py-spy, `make bench`). This layer answers them through the same portal (`Portal.read`: the route's mode,
the in-doubt answer for a created resource) with the same caller checks, metrics, access log and headers; whatever
it does not recognise exactly (another method, a body, a path no capability serves, a caller without a valid key,
a path that is not ASCII) goes to the Flask app untouched, which answers it as before.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

from core.calls import Call, Outcome
from core.problems import problem
from facade.callers import client_of, request_id_of
from facade.portal import Answered, Portal, outcome_headers
from facade.routing import NoRoute

log = logging.getLogger("strangler.facade")

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class PortalReads:
    """WSGI middleware: answers capability GETs itself and hands every other request to `inner` (the Flask app)."""

    def __init__(self, inner: WsgiApp, portal: Portal, api_keys: Mapping[str, str]) -> None:
        self.inner, self.portal, self.api_keys = inner, portal, api_keys

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path: str = environ.get("PATH_INFO", "")
        if (
            environ.get("REQUEST_METHOD") != "GET"
            or not path.startswith("/v1/")
            or not path.isascii()  # WSGI hands over latin-1; Flask decodes UTF-8 paths properly
            or environ.get("CONTENT_LENGTH") not in (None, "", "0")
            or "HTTP_TRANSFER_ENCODING" in environ
        ):
            return self.inner(environ, start_response)
        snapshot = self.portal.routes.snapshot
        try:
            match = snapshot.matcher.match("GET", path)
        except NoRoute:
            return self.inner(environ, start_response)
        cap = snapshot.capability(match.capability)
        client = client_of(environ.get("HTTP_AUTHORIZATION", ""), self.api_keys)
        if cap.is_write or client is None:
            return self.inner(environ, start_response)
        route = snapshot.states[cap.name]
        request_id = request_id_of(environ.get("HTTP_X_REQUEST_ID", ""))
        started = time.perf_counter()
        call = Call(
            capability=cap.name, method="GET", path=path, path_params=match.params, query=_query(environ),
            request_id=request_id, client_id=client,
            headers={"content-type": environ.get("CONTENT_TYPE") or "application/json"},
        )  # fmt: skip
        try:
            outcome = self.portal.read(cap, route, call)
        except Exception:
            log.exception("unhandled error", extra={"request_id": request_id})
            outcome = problem(500, "internal-error", "Internal error", f"request id {request_id}")
        answered = Answered(request_id, client, "GET", path, cap.name, route.mode, time.perf_counter() - started)
        return _respond(start_response, outcome, self.portal.record(outcome, answered), request_id)


def _query(environ: Mapping[str, Any]) -> dict[str, str]:
    # The first value of a repeated name wins, as with Flask's `request.args.to_dict()`.
    query: dict[str, str] = {}
    for name, value in parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True):
        query.setdefault(name, value)
    return query


def _respond(start_response: StartResponse, outcome: Outcome, upstream: str, request_id: str) -> list[bytes]:
    body = outcome.payload()
    headers = outcome_headers(outcome, upstream)
    headers["Content-Length"] = str(len(body))
    headers["X-Request-ID"] = request_id
    try:
        reason = HTTPStatus(outcome.status).phrase
    except ValueError:
        reason = "Unknown"
    start_response(f"{outcome.status} {reason}", list(headers.items()))
    return [body]
