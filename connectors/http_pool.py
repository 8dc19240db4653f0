"""The keep-alive connection pool to one upstream: urllib3 with no retries, no redirects, no cookies, no env proxies.

urllib3's pool keeps no cookie jar and reads no proxy, netrc or CA settings from the environment, so each call sends
exactly the headers it is given. TLS settings are loaded into one SSL context when the pool is built: a missing CA
bundle or client certificate is refused there, not on every call.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import urllib3
from urllib3.util import Retry, Timeout, parse_url
from urllib3.util.ssl_ import create_urllib3_context

# Retry(False): urllib3 raises the first error as it is (no MaxRetryError wrapping) and returns redirects as answers.
NO_RETRY = Retry(total=False, redirect=False)
# What requests sent by default, so the upstream sees the same request as before the client moved to urllib3.
DEFAULT_HEADERS: Mapping[str, str] = {"Accept-Encoding": "gzip, deflate", "Accept": "*/*"}


@dataclass(frozen=True)
class TlsConfig:
    """How to reach an upstream over TLS: a CA bundle (or bool) to verify it, an optional client certificate (mTLS)."""

    verify: bool | str = True
    client_cert: str | None = None
    client_key: str | None = None


def tls_context(tls: TlsConfig) -> ssl.SSLContext:
    """Return the SSL context for this TLS config: verify against the CA bundle given (certifi's when True)."""
    if tls.verify is False:
        context = create_urllib3_context(cert_reqs=ssl.CERT_NONE)
    else:
        context = create_urllib3_context(cert_reqs=ssl.CERT_REQUIRED)
        if tls.verify is True:
            context.load_verify_locations(cafile=_default_ca_bundle())
        elif os.path.isdir(tls.verify):
            context.load_verify_locations(capath=tls.verify)
        else:
            context.load_verify_locations(cafile=tls.verify)
    if tls.client_cert is not None:
        context.load_cert_chain(tls.client_cert, tls.client_key)
    return context


def _default_ca_bundle() -> str | None:
    """Return certifi's CA bundle (what requests verified against), or None for the system's if certifi is absent."""
    try:
        import certifi
    except ImportError:  # pragma: no cover - certifi comes with requests
        return None
    return str(certifi.where())


def make_pool(
    base_url: str, *, maxsize: int, connect_timeout: float, read_timeout: float, tls: TlsConfig
) -> tuple[urllib3.HTTPConnectionPool, str]:
    """Return a non-blocking keep-alive pool for the base URL's host and the URL's path prefix (no trailing slash)."""
    url = parse_url(base_url)
    if url.host is None:
        raise ValueError(f"no host in {base_url!r}")
    options = {
        "maxsize": maxsize,
        "block": False,  # beyond maxsize, open a connection and drop it afterwards (the client bounds concurrency)
        "retries": NO_RETRY,
        "timeout": Timeout(connect=connect_timeout, read=read_timeout),
    }
    pool: urllib3.HTTPConnectionPool
    if url.scheme == "https":
        try:
            context = tls_context(tls)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"TLS settings for {base_url} cannot be loaded: {exc}") from exc
        pool = urllib3.HTTPSConnectionPool(url.host, url.port, ssl_context=context, **options)  # type: ignore[arg-type]
    else:
        pool = urllib3.HTTPConnectionPool(url.host, url.port, **options)  # type: ignore[arg-type]
    return pool, (url.path or "").rstrip("/")


class ResponseHeaders(Mapping[str, str]):
    """A read-only, case-insensitive view of an answer's headers; a repeated header reads as one comma-joined value."""

    __slots__ = ("_raw",)

    def __init__(self, raw: urllib3.HTTPHeaderDict) -> None:
        self._raw = raw

    def __getitem__(self, name: str) -> str:
        return self._raw[name]

    def __contains__(self, name: object) -> bool:
        return name in self._raw

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)

    def __repr__(self) -> str:
        return f"ResponseHeaders({dict(self.items())!r})"
