"""UpstreamClient's failures at the socket level: refusals, connect timeouts, hang-ups, resets, garbage, saturation."""

from __future__ import annotations

import gzip
from concurrent.futures import ThreadPoolExecutor

import pytest

from connectors.upstream import (
    UpstreamError,
    UpstreamNotSent,
    UpstreamProtocolError,
    UpstreamRequest,
    UpstreamResponse,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from tests.connectors.upstream_fakes import (
    WAIT,
    HangUp,
    Raw,
    Reply,
    Reset,
    ScriptedUpstream,
    Stall,
    get,
    make_client,
    post,
    scripted,
    unaccepting_port,
)


def test_never_sent_post_is_retried_and_attempts_counted() -> None:
    with scripted(listen=False) as late:
        late.script("POST", "/payments", Reply(201, json={"ref": "P1"}))
        sleeps: list[float] = []
        # Connections are refused until the second backoff, when the upstream starts listening.
        client = make_client(
            late.url, sleeps, sleep=lambda s: late.start() if len(sleeps) == 2 else None, retry_attempts=3
        )

        response = client.send(post())
        client.close()

    assert response.status == 201
    assert response.attempts == 3
    assert late.seen("POST", "/payments") == 1  # the two refused attempts never reached it
    # exponential backoff with jitter: first wait in [0.05, 0.10], second in [0.10, 0.15]
    assert len(sleeps) == 2
    assert 0.05 <= sleeps[0] <= 0.10
    assert 0.10 <= sleeps[1] <= 0.15


def test_never_sent_after_all_attempts_raises_not_sent() -> None:
    with scripted(listen=False) as refusing:
        sleeps: list[float] = []
        client = make_client(refusing.url, sleeps, retry_attempts=3)

        with pytest.raises(UpstreamNotSent) as caught:
            client.send(post())

        assert client.probe() is False

    assert isinstance(caught.value, UpstreamUnavailable)
    assert caught.value.upstream == "legacy"
    assert caught.value.reason == "unreachable"
    assert caught.value.retry_after >= 1
    assert len(sleeps) == 2  # three attempts


def test_connect_timeout_counts_as_never_sent() -> None:
    with unaccepting_port() as port:
        sleeps: list[float] = []
        client = make_client(f"http://127.0.0.1:{port}", sleeps, connect_timeout=0.1, retry_attempts=2)

        with pytest.raises(UpstreamNotSent):
            client.send(post())

    assert len(sleeps) == 1  # two attempts


def test_a_closed_client_sends_nothing(upstream: ScriptedUpstream) -> None:
    client = make_client(upstream.url, [], retry_attempts=2)
    client.close()

    with pytest.raises(UpstreamNotSent):
        client.send(post())

    assert upstream.calls == []


def test_unresolvable_host_counts_as_never_sent() -> None:
    client = make_client("http://no-such-host.invalid", [], retry_attempts=2)

    with pytest.raises(UpstreamNotSent):
        client.send(post())


@pytest.mark.parametrize("answer", [HangUp(), Reset()], ids=["hangup", "reset"])
def test_dropped_connection_after_send_on_unsafe_post_is_in_doubt_and_not_repeated(
    upstream: ScriptedUpstream, answer: HangUp | Reset
) -> None:
    upstream.script("POST", "/payments", answer, Reply(201))
    sleeps: list[float] = []
    client = make_client(upstream.url, sleeps, retry_attempts=3)

    with pytest.raises(UpstreamTimeout) as caught:
        client.send(post())

    assert caught.value.sent is True
    assert upstream.seen("POST", "/payments") == 1
    assert sleeps == []


def test_read_timeout_after_send_on_unsafe_post_is_in_doubt(upstream: ScriptedUpstream) -> None:
    upstream.script("POST", "/slow", Stall())
    client = make_client(upstream.url, [], read_timeout=0.2, retry_attempts=3)

    with pytest.raises(UpstreamTimeout) as caught:
        client.send(UpstreamRequest("POST", "/slow", json={"amount": "10.00"}))

    assert caught.value.sent is True
    assert upstream.seen("POST", "/slow") == 1


@pytest.mark.parametrize("answer", [HangUp(), Reset()], ids=["hangup", "reset"])
def test_dropped_connection_on_safe_get_is_repeated(upstream: ScriptedUpstream, answer: HangUp | Reset) -> None:
    upstream.script("GET", "/accounts/1", answer)
    sleeps: list[float] = []
    client = make_client(upstream.url, sleeps, retry_attempts=3)

    with pytest.raises(UpstreamTimeout):
        client.send(get())

    assert upstream.seen("GET", "/accounts/1") == 3
    assert len(sleeps) == 2


def test_truncated_body_is_a_hangup_not_garbage(upstream: ScriptedUpstream) -> None:
    upstream.script("POST", "/payments", Raw(b'HTTP/1.1 201 Created\r\nContent-Length: 100\r\n\r\n{"ref":'))
    client = make_client(upstream.url, [])

    with pytest.raises(UpstreamTimeout) as caught:
        client.send(post())

    assert caught.value.sent is True
    assert upstream.seen("POST", "/payments") == 1


def test_garbage_answer_is_a_protocol_error_repeated_only_when_safe(upstream: ScriptedUpstream) -> None:
    upstream.script("GET", "/accounts/1", Raw(b"SPROCKETS 42\r\n\r\n"))
    upstream.script("POST", "/payments", Raw(b"SPROCKETS 42\r\n\r\n"))
    client = make_client(upstream.url, [], retry_attempts=2)

    with pytest.raises(UpstreamProtocolError) as caught:
        client.send(get())
    with pytest.raises(UpstreamProtocolError):
        client.send(post())

    assert isinstance(caught.value, UpstreamError)
    assert not isinstance(caught.value, UpstreamUnavailable)
    assert (upstream.seen("GET", "/accounts/1"), upstream.seen("POST", "/payments")) == (2, 1)


def test_undecodable_body_is_a_protocol_error(upstream: ScriptedUpstream) -> None:
    upstream.script("GET", "/accounts/1", Reply(body=b"not gzip at all", headers={"Content-Encoding": "gzip"}))
    client = make_client(upstream.url, [], retry_attempts=1)

    with pytest.raises(UpstreamProtocolError) as caught:
        client.send(get())

    assert not isinstance(caught.value, UpstreamUnavailable)


def test_compressed_body_is_decoded(upstream: ScriptedUpstream) -> None:
    upstream.script("GET", "/accounts/1", Reply(body=gzip.compress(b'{"ok": 1}'), headers={"Content-Encoding": "gzip"}))

    assert make_client(upstream.url, []).send(get()).json() == {"ok": 1}


def test_saturated_client_refuses_quickly_and_frees_the_slot_after(upstream: ScriptedUpstream) -> None:
    upstream.script("GET", "/slow", Stall())
    upstream.script("GET", "/fast", Reply(json={}))
    client = make_client(upstream.url, [], max_concurrency=1, queue_timeout=0.05)
    with ThreadPoolExecutor(max_workers=1) as pool:
        in_flight = pool.submit(client.send, get("/slow"))
        assert upstream.arrived.wait(WAIT)

        with pytest.raises(UpstreamUnavailable) as caught:
            client.send(get("/fast"))

        upstream.release.set()
        first: UpstreamResponse = in_flight.result(WAIT)
    after = client.send(get("/fast"))

    assert caught.value.reason == "saturated"
    assert caught.value.retry_after == 1
    assert not isinstance(caught.value, UpstreamNotSent)
    assert first.status == 200
    assert after.status == 200
    assert upstream.seen("GET", "/fast") == 1  # the refused call never went out
    assert client.breaker_state == "closed"  # saturation is ours, not the upstream's failure


def test_calls_are_concurrent_not_serialised_by_the_breaker(upstream: ScriptedUpstream) -> None:
    upstream.script("GET", "/slow", Stall())
    client = make_client(upstream.url, [], max_concurrency=2)
    with ThreadPoolExecutor(max_workers=2) as pool:
        calls = [pool.submit(client.send, get("/slow")) for _ in range(2)]
        both_in_flight = upstream.arrivals.acquire(timeout=WAIT) and upstream.arrivals.acquire(timeout=WAIT)
        upstream.release.set()
        statuses = [call.result(WAIT).status for call in calls]

    assert both_in_flight
    assert statuses == [200, 200]


def test_more_callers_than_the_pool_keeps_all_get_through(upstream: ScriptedUpstream) -> None:
    upstream.script("GET", "/slow", Stall())
    client = make_client(upstream.url, [], max_concurrency=4, pool_size=1)
    with ThreadPoolExecutor(max_workers=4) as pool:
        calls = [pool.submit(client.send, get("/slow")) for _ in range(4)]
        all_in_flight = all(upstream.arrivals.acquire(timeout=WAIT) for _ in range(4))
        upstream.release.set()
        statuses = [call.result(WAIT).status for call in calls]

    assert all_in_flight  # the pool does not block: its size is what it keeps, not a second bound
    assert statuses == [200] * 4
