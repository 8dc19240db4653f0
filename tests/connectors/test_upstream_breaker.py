"""Unit tests of UpstreamClient's circuit breaker, probe and configuration, against a scripted upstream on loopback."""

from __future__ import annotations

import time

import pytest

from connectors.upstream import UpstreamClient, UpstreamConfig, UpstreamNotSent, UpstreamUnavailable
from tests.connectors.upstream_fakes import (
    FakeClock,
    Reply,
    ScriptedUpstream,
    Stall,
    get,
    make_client,
    post,
    scripted,
)


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
    upstream: ScriptedUpstream, sleeps: list[float], clock: FakeClock
) -> None:
    upstream.script("GET", "/accounts/1", Reply(503))
    client = make_client(upstream.url, sleeps, clock, retry_attempts=3, breaker_fail_max=2, breaker_reset_s=5.0)

    assert client.send(get()).attempts == 3
    assert client.breaker_state == "closed"  # three failed attempts, one failed call
    client.send(get())
    assert client.breaker_state == "open"
    calls_before = len(upstream.calls)

    with pytest.raises(UpstreamUnavailable) as caught:
        client.send(get())

    assert caught.value.reason == "breaker open"
    assert not isinstance(caught.value, UpstreamNotSent)
    assert caught.value.retry_after == 5.0
    assert len(upstream.calls) == calls_before
    clock.now += 4.5
    with pytest.raises(UpstreamUnavailable) as again:
        client.send(get())
    assert again.value.retry_after == 1.0  # never below one second
    assert len(upstream.calls) == calls_before


def test_breaker_half_opens_after_reset_and_closes_on_success(
    sleeps: list[float], clock: FakeClock, changes: list[tuple[str, str]]
) -> None:
    with scripted(listen=False) as late:
        late.script("POST", "/payments", Reply(201))
        client = make_client(
            late.url, sleeps, clock, changes, retry_attempts=1, breaker_fail_max=3, breaker_reset_s=5.0
        )
        for _ in range(3):
            with pytest.raises(UpstreamNotSent):
                client.send(post())
        assert client.breaker_state == "open"

        clock.now += 4.9
        assert client.breaker_state == "open"
        clock.now += 0.1
        assert client.breaker_state == "half-open"

        late.start()
        assert client.send(post()).status == 201
        assert client.breaker_state == "closed"
        assert changes == [("closed", "open"), ("open", "half-open"), ("half-open", "closed")]
        client.close()


def test_failed_trial_reopens_the_breaker(
    upstream: ScriptedUpstream, sleeps: list[float], clock: FakeClock, changes: list[tuple[str, str]]
) -> None:
    upstream.script("GET", "/accounts/1", Reply(500))
    client = make_client(upstream.url, sleeps, clock, changes, breaker_fail_max=1, breaker_reset_s=2.0)
    client.send(get())
    assert client.breaker_state == "open"
    clock.now += 2.0

    assert client.send(get()).status == 500  # the trial goes out ...

    assert client.breaker_state == "open"  # ... and its failure re-opens for a full reset period
    assert changes == [("closed", "open"), ("open", "half-open"), ("half-open", "open")]
    with pytest.raises(UpstreamUnavailable, match="breaker open"):
        client.send(get())


def test_4xx_is_success_for_the_breaker(upstream: ScriptedUpstream, sleeps: list[float]) -> None:
    upstream.script("GET", "/accounts/1", Reply(500), Reply(404), Reply(500))
    client = make_client(upstream.url, sleeps, breaker_fail_max=2)

    assert [client.send(get()).status for _ in range(3)] == [500, 404, 500]

    assert client.breaker_state == "closed"  # the 404 reset the consecutive-failure count


def test_failing_breaker_listener_does_not_break_calls(upstream: ScriptedUpstream, sleeps: list[float]) -> None:
    upstream.script("GET", "/accounts/1", Reply(500))

    def explode(old: str, new: str) -> None:
        raise RuntimeError("metrics down")

    config = UpstreamConfig(name="legacy", base_url=upstream.url, breaker_fail_max=1)
    client = UpstreamClient(config, sleep=sleeps.append, on_breaker_change=explode)

    assert client.send(get()).status == 500
    assert client.breaker_state == "open"
    client.close()


def test_probe_reports_reachability_without_touching_the_breaker(
    upstream: ScriptedUpstream, sleeps: list[float]
) -> None:
    upstream.script("GET", "/accounts/1", Reply(503))
    upstream.script("GET", "/healthz", Reply(200))
    upstream.script("GET", "/down", Reply(503))
    upstream.script("GET", "/moved", Reply(302, headers={"Location": "/healthz"}))
    client = make_client(upstream.url, sleeps, retry_attempts=1, breaker_fail_max=1)
    client.send(get())
    assert client.breaker_state == "open"

    assert client.probe() is True
    assert client.probe("/down") is False
    assert client.probe("/moved") is True  # answered below 500, not followed
    assert client.breaker_state == "open"
    assert upstream.seen("GET", "/healthz") == 1
    with scripted(listen=False) as refusing:
        assert make_client(refusing.url, []).probe() is False


def test_probe_timeout_is_capped_at_one_second(upstream: ScriptedUpstream) -> None:
    upstream.script("GET", "/healthz", Stall())
    client = make_client(upstream.url, [], read_timeout=30.0)

    started = time.monotonic()
    assert client.probe() is False
    assert 0.9 <= time.monotonic() - started < 5.0


def test_probe_does_not_retry(upstream: ScriptedUpstream) -> None:
    upstream.script("GET", "/healthz", Reply(503))
    client = make_client(upstream.url, [], retry_attempts=3)

    assert client.probe() is False
    assert upstream.seen("GET", "/healthz") == 1


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
    values: dict[str, object] = {"name": "legacy", "base_url": "http://legacy.test:8001", **overrides}
    with pytest.raises(ValueError, match=message):
        UpstreamConfig(**values)  # type: ignore[arg-type]
