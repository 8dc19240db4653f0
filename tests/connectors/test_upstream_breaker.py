"""Unit tests of UpstreamClient's circuit breaker, probe and session set-up, with HTTP faked by `responses`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
import responses
from requests.adapters import HTTPAdapter

from connectors.upstream import TlsConfig, UpstreamClient, UpstreamConfig, UpstreamNotSent, UpstreamUnavailable
from tests.connectors.upstream_fakes import BASE, FakeClock, get, make_client, post, refused, timeout_of


@pytest.fixture
def mock() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def changes() -> list[tuple[str, str]]:
    return []


def test_breaker_counts_each_logical_call_once_then_refuses_without_network(
    mock: responses.RequestsMock, sleeps: list[float], clock: FakeClock
) -> None:
    mock.get(f"{BASE}/accounts/1", status=503)
    client = make_client(sleeps, clock, retry_attempts=3, breaker_fail_max=2, breaker_reset_s=5.0)

    assert client.send(get()).attempts == 3
    assert client.breaker_state == "closed"  # three failed attempts, one failed call
    client.send(get())
    assert client.breaker_state == "open"
    calls_before = len(mock.calls)

    with pytest.raises(UpstreamUnavailable) as caught:
        client.send(get())

    assert caught.value.reason == "breaker open"
    assert not isinstance(caught.value, UpstreamNotSent)
    assert caught.value.retry_after == 5.0
    assert len(mock.calls) == calls_before
    clock.now += 4.5
    with pytest.raises(UpstreamUnavailable) as again:
        client.send(get())
    assert again.value.retry_after == 1.0  # never below one second


def test_breaker_half_opens_after_reset_and_closes_on_success(
    mock: responses.RequestsMock, sleeps: list[float], clock: FakeClock, changes: list[tuple[str, str]]
) -> None:
    mock.post(f"{BASE}/payments", body=refused())
    client = make_client(sleeps, clock, changes, retry_attempts=1, breaker_fail_max=3, breaker_reset_s=5.0)
    for _ in range(3):
        with pytest.raises(UpstreamNotSent):
            client.send(post())
    assert client.breaker_state == "open"

    clock.now += 4.9
    assert client.breaker_state == "open"
    clock.now += 0.1
    assert client.breaker_state == "half-open"

    mock.replace(responses.POST, f"{BASE}/payments", status=201)
    assert client.send(post()).status == 201
    assert client.breaker_state == "closed"
    assert changes == [("closed", "open"), ("open", "half-open"), ("half-open", "closed")]


def test_failed_trial_reopens_the_breaker(
    mock: responses.RequestsMock, sleeps: list[float], clock: FakeClock, changes: list[tuple[str, str]]
) -> None:
    mock.get(f"{BASE}/accounts/1", status=500)
    client = make_client(sleeps, clock, changes, breaker_fail_max=1, breaker_reset_s=2.0)
    client.send(get())
    assert client.breaker_state == "open"
    clock.now += 2.0

    assert client.send(get()).status == 500  # the trial goes out ...

    assert client.breaker_state == "open"  # ... and its failure re-opens for a full reset period
    assert changes == [("closed", "open"), ("open", "half-open"), ("half-open", "open")]
    with pytest.raises(UpstreamUnavailable, match="breaker open"):
        client.send(get())


def test_4xx_is_success_for_the_breaker(mock: responses.RequestsMock, sleeps: list[float]) -> None:
    mock.get(f"{BASE}/accounts/1", status=500)
    mock.get(f"{BASE}/accounts/1", status=404)
    mock.get(f"{BASE}/accounts/1", status=500)
    client = make_client(sleeps, breaker_fail_max=2)

    assert [client.send(get()).status for _ in range(3)] == [500, 404, 500]

    assert client.breaker_state == "closed"  # the 404 reset the consecutive-failure count


def test_failing_breaker_listener_does_not_break_calls(mock: responses.RequestsMock, sleeps: list[float]) -> None:
    mock.get(f"{BASE}/accounts/1", status=500)

    def explode(old: str, new: str) -> None:
        raise RuntimeError("metrics down")

    config = UpstreamConfig(name="legacy", base_url=BASE, breaker_fail_max=1)
    client = UpstreamClient(config, sleep=sleeps.append, on_breaker_change=explode)

    assert client.send(get()).status == 500
    assert client.breaker_state == "open"


def test_probe_reports_reachability_without_touching_the_breaker(
    mock: responses.RequestsMock, sleeps: list[float]
) -> None:
    mock.get(f"{BASE}/accounts/1", status=503)
    mock.get(f"{BASE}/healthz", status=200)
    mock.get(f"{BASE}/down", status=503)
    mock.get(f"{BASE}/refused", body=refused())
    client = make_client(sleeps, retry_attempts=1, breaker_fail_max=1)
    client.send(get())
    assert client.breaker_state == "open"

    assert client.probe() is True
    assert client.probe("/down") is False
    assert client.probe("/refused") is False
    assert client.breaker_state == "open"
    assert timeout_of(mock.calls[1]) == (1.0, 1.0)


def test_session_is_pooled_cookieless_and_uses_the_tls_config(mock: responses.RequestsMock) -> None:
    session = requests.Session()
    tls = TlsConfig(verify="/etc/strangler/legacy-ca.pem", client_cert="/etc/strangler/c.pem", client_key="/k.pem")
    config = UpstreamConfig(name="legacy", base_url="https://legacy.test", pool_size=7, tls=tls)

    UpstreamClient(config, session=session)

    assert session.verify == "/etc/strangler/legacy-ca.pem"
    assert session.cert == ("/etc/strangler/c.pem", "/k.pem")
    assert session.trust_env is False
    adapter = session.get_adapter("https://legacy.test/x")
    assert isinstance(adapter, HTTPAdapter)
    assert adapter is session.get_adapter("http://legacy.test/x")
    assert adapter.poolmanager.connection_pool_kw["maxsize"] == 7
    assert adapter.poolmanager.connection_pool_kw["block"] is False
    assert adapter.max_retries.total == 0


def test_default_tls_verifies_without_client_cert() -> None:
    session = requests.Session()
    session.cert = "/stale.pem"
    UpstreamClient(UpstreamConfig(name="cloud", base_url="http://cloud.test"), session=session)

    assert session.verify is True
    assert session.cert is None


def test_cookies_from_one_answer_never_reach_the_next_request(
    mock: responses.RequestsMock, sleeps: list[float]
) -> None:
    mock.get(f"{BASE}/accounts/1", json={}, headers={"Set-Cookie": "session=alice; Path=/"})
    client = make_client(sleeps)

    client.send(get())
    client.send(get())

    assert "Cookie" not in mock.calls[1].request.headers


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"base_url": "legacy:8001"}, "base_url"),
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"retry_attempts": 0}, "retry_attempts"),
        ({"read_timeout": 0}, "read_timeout"),
        ({"queue_timeout": -1}, "queue_timeout"),
    ],
)
def test_config_refuses_values_that_cannot_work(overrides: dict[str, object], message: str) -> None:
    values: dict[str, object] = {"name": "legacy", "base_url": BASE, **overrides}
    with pytest.raises(ValueError, match=message):
        UpstreamConfig(**values)  # type: ignore[arg-type]
