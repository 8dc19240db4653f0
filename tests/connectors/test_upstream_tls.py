"""UpstreamClient's link set-up: TLS verification and client certificates, pool sizing, no cookies, no env proxies."""

from __future__ import annotations

import shutil
import ssl
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.http_pool import tls_context
from connectors.upstream import TlsConfig, UpstreamClient, UpstreamConfig, UpstreamError, UpstreamNotSent
from tests.connectors.upstream_fakes import Pki, Reply, ScriptedUpstream, get, make_client, make_pki, scripted

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI for certificates")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def serve_tls(pki: Pki, require_client_cert: bool = False) -> ScriptedUpstream:
    server = ScriptedUpstream(listen=False)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    if require_client_cert:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(pki.ca)
    server.tls = context
    server.script("GET", "/accounts/1", Reply(json={"ok": True}))
    server.start()
    return server


@pytest.fixture
def tls_upstream(pki: Pki) -> Iterator[ScriptedUpstream]:
    server = serve_tls(pki)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def mtls_upstream(pki: Pki) -> Iterator[ScriptedUpstream]:
    server = serve_tls(pki, require_client_cert=True)
    try:
        yield server
    finally:
        server.close()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_tls_verified_against_the_configured_ca_bundle(tls_upstream: ScriptedUpstream, pki: Pki, host: str) -> None:
    url = f"https://{host}:{tls_upstream.port}"
    client = make_client(url, [], tls=TlsConfig(verify=str(pki.ca)))

    assert client.send(get()).json() == {"ok": True}
    client.close()


def test_untrusted_certificate_is_never_sent_and_retried(tls_upstream: ScriptedUpstream) -> None:
    sleeps: list[float] = []
    client = make_client(tls_upstream.url, sleeps, retry_attempts=3)  # default: verify against certifi's CAs

    with pytest.raises(UpstreamNotSent):
        client.send(get())

    assert len(sleeps) == 2
    assert tls_upstream.calls == []


def test_certificate_for_another_host_is_refused(pki: Pki, tmp_path: Path) -> None:
    with scripted(listen=False) as server:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(pki.client_cert, pki.client_key)  # valid, from our CA, but not for 127.0.0.1
        server.tls = context
        server.start()
        client = make_client(server.url, [], retry_attempts=1, tls=TlsConfig(verify=str(pki.ca)))

        with pytest.raises(UpstreamNotSent):
            client.send(get())

        assert server.calls == []


def test_verify_false_skips_verification(tls_upstream: ScriptedUpstream) -> None:
    client = make_client(tls_upstream.url, [], tls=TlsConfig(verify=False))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert client.send(get()).status == 200
    client.close()


def test_client_certificate_is_presented_for_mtls(mtls_upstream: ScriptedUpstream, pki: Pki) -> None:
    tls = TlsConfig(verify=str(pki.ca), client_cert=str(pki.client_cert), client_key=str(pki.client_key))
    client = make_client(mtls_upstream.url, [], tls=tls)

    assert client.send(get()).status == 200
    client.close()


def test_without_client_certificate_mtls_fails_and_nothing_is_served(mtls_upstream: ScriptedUpstream, pki: Pki) -> None:
    client = make_client(mtls_upstream.url, [], retry_attempts=1, tls=TlsConfig(verify=str(pki.ca)))

    with pytest.raises(UpstreamError):
        client.send(get())

    assert mtls_upstream.calls == []


def test_missing_tls_files_are_refused_when_the_client_is_built(pki: Pki) -> None:
    for tls in (TlsConfig(verify="/nonexistent/ca.pem"), TlsConfig(verify=str(pki.ca), client_cert="/nonexistent.pem")):
        with pytest.raises(ValueError, match="legacy"):
            UpstreamClient(UpstreamConfig(name="legacy", base_url="https://legacy.test", tls=tls))
    # Plain HTTP has no use for TLS settings, as before.
    UpstreamClient(UpstreamConfig(name="legacy", base_url="http://legacy.test", tls=TlsConfig(verify="/nonexistent")))


def test_default_tls_verifies_without_client_cert() -> None:
    context = tls_context(TlsConfig())

    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.cert_store_stats()["x509_ca"] > 0  # certifi's bundle, as requests used


def test_pool_keeps_pool_size_connections_and_never_blocks() -> None:
    config = UpstreamConfig(name="legacy", base_url="http://legacy.test", pool_size=7)
    client = UpstreamClient(config)

    assert client._pool.pool is not None
    assert client._pool.pool.maxsize == 7
    assert client._pool.block is False


def test_cookies_from_one_answer_never_reach_the_next_request() -> None:
    with scripted() as upstream:
        upstream.script("GET", "/accounts/1", Reply(json={}, headers={"Set-Cookie": "session=alice; Path=/"}))
        client = make_client(upstream.url, [])

        client.send(get())
        client.send(get())

        assert "Cookie" not in upstream.calls[1].headers


def test_proxies_from_the_environment_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # the discard port: nothing listens there
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with scripted() as upstream:
        upstream.script("GET", "/accounts/1", Reply(json={}))

        assert make_client(upstream.url, []).send(get()).status == 200
        assert upstream.seen("GET", "/accounts/1") == 1
