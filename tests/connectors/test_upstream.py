"""Unit tests of UpstreamClient's calls and retries, against a scripted upstream on loopback."""

from __future__ import annotations

import json

import pytest

from connectors.upstream import UpstreamRequest, UpstreamTimeout
from tests.connectors.upstream_fakes import Reply, ScriptedUpstream, get, make_client, post


@pytest.fixture
def sleeps() -> list[float]:
    return []


def test_success_returns_json_headers_and_one_attempt(upstream: ScriptedUpstream, sleeps: list[float]) -> None:
    upstream.script("GET", "/accounts/1", Reply(json={"balance": "12.50"}, headers={"X-Legacy": "yes"}))
    client = make_client(upstream.url, sleeps)

    response = client.send(get(params={"ccy": "EUR"}, headers={"X-Request-ID": "req-1"}))

    assert response.status == 200
    assert response.json() == {"balance": "12.50"}
    assert response.headers["x-legacy"] == "yes"
    assert response.headers.get("X-LEGACY") == "yes"
    assert response.attempts == 1
    assert response.elapsed_ms >= 0
    (sent,) = upstream.calls
    assert sent.headers["X-Request-ID"] == "req-1"
    assert (sent.method, sent.path, sent.query) == ("GET", "/accounts/1", {"ccy": "EUR"})
    assert sleeps == []


def test_repeated_answer_headers_read_as_one_joined_value(upstream: ScriptedUpstream) -> None:
    upstream.script("GET", "/accounts/1", Reply(headers=[("Vary", "Accept"), ("Vary", "Origin")]))
    response = make_client(upstream.url, []).send(get())

    assert response.headers["vary"] == "Accept, Origin"
    assert dict(response.headers.items())["Vary"] == "Accept, Origin"


def test_base_url_path_prefix_and_query_in_path_are_kept(upstream: ScriptedUpstream) -> None:
    upstream.script("GET", "/api/accounts/1", Reply(json={}))
    client = make_client(upstream.url + "/api/", [])

    client.send(get("/accounts/1?x=1", params={"y": "2 3"}))

    assert (upstream.calls[0].path, upstream.calls[0].query) == ("/api/accounts/1", {"x": "1", "y": "2 3"})


def test_json_body_and_raw_body_are_sent_as_given(upstream: ScriptedUpstream, sleeps: list[float]) -> None:
    upstream.script("POST", "/payments", Reply(201))
    client = make_client(upstream.url, sleeps)

    client.send(post())
    client.send(UpstreamRequest("POST", "/payments", body=b"<xml/>", headers={"Content-Type": "application/xml"}))
    client.send(UpstreamRequest("POST", "/payments", json={"a": 1}, headers={"content-type": "application/x+json"}))
    client.send(UpstreamRequest("POST", "/payments"))

    first, second, third, empty = upstream.calls
    assert json.loads(first.body) == {"amount": "10.00"}
    assert first.headers["Content-Type"] == "application/json"
    assert second.body == b"<xml/>"
    assert second.headers["Content-Type"] == "application/xml"
    assert third.headers.get_all("Content-Type") == ["application/x+json"]  # the caller's, not a second one
    assert (empty.body, empty.headers["Content-Length"]) == (b"", "0")


def test_default_headers_are_sent_once_and_the_callers_win(upstream: ScriptedUpstream) -> None:
    upstream.script("GET", "/accounts/1", Reply(json={}))
    client = make_client(upstream.url, [])

    client.send(get())
    client.send(get(headers={"accept": "application/json"}))

    assert upstream.calls[0].headers["Accept"] == "*/*"
    assert upstream.calls[0].headers["Accept-Encoding"] == "gzip, deflate"
    assert upstream.calls[1].headers.get_all("Accept") == ["application/json"]


def test_request_refuses_json_and_body_together() -> None:
    with pytest.raises(ValueError, match="not both"):
        UpstreamRequest("POST", "/x", json={"a": 1}, body=b"{}")


def test_per_request_timeout_overrides_the_default(upstream: ScriptedUpstream, sleeps: list[float]) -> None:
    upstream.script("GET", "/accounts/1", Reply(json={}, delay=0.3))
    patient = make_client(upstream.url, sleeps, read_timeout=5.0, retry_attempts=1)
    hasty = make_client(upstream.url, sleeps, read_timeout=0.1, retry_attempts=1)

    assert patient.send(get()).status == 200  # the default read timeout is the client's
    with pytest.raises(UpstreamTimeout):
        patient.send(get(timeout=(1.0, 0.1)))
    assert hasty.send(get(timeout=(1.0, 5.0))).status == 200
    with pytest.raises(UpstreamTimeout):
        hasty.send(get())


def test_read_timeout_on_safe_get_is_retried_then_raised(upstream: ScriptedUpstream, sleeps: list[float]) -> None:
    upstream.script("GET", "/accounts/1", Reply(json={}, delay=0.5))
    client = make_client(upstream.url, sleeps, read_timeout=0.1, retry_attempts=3)

    with pytest.raises(UpstreamTimeout) as caught:
        client.send(get())

    assert caught.value.sent is True
    assert upstream.seen("GET", "/accounts/1") == 3
    assert len(sleeps) == 2


def test_read_timeout_on_safe_get_then_success(upstream: ScriptedUpstream, sleeps: list[float]) -> None:
    upstream.script("GET", "/accounts/1", Reply(json={}, delay=0.5), Reply(json={"balance": "1"}))
    client = make_client(upstream.url, sleeps, read_timeout=0.1)

    response = client.send(get())

    assert (response.status, response.attempts) == (200, 2)


def test_read_timeout_on_unsafe_post_is_not_retried(upstream: ScriptedUpstream, sleeps: list[float]) -> None:
    upstream.script("POST", "/payments", Reply(201, delay=0.5), Reply(201))
    client = make_client(upstream.url, sleeps, read_timeout=0.1, retry_attempts=3)

    with pytest.raises(UpstreamTimeout) as caught:
        client.send(post())

    assert caught.value.sent is True
    assert upstream.seen("POST", "/payments") == 1
    assert sleeps == []


def test_503_on_safe_get_is_retried_and_the_last_answer_returned(
    upstream: ScriptedUpstream, sleeps: list[float]
) -> None:
    upstream.script("GET", "/accounts/1", *(Reply(503, body=f"busy {n}".encode()) for n in range(3)))
    client = make_client(upstream.url, sleeps, retry_attempts=3)

    response = client.send(get())

    assert response.status == 503
    assert response.body == b"busy 2"
    assert response.attempts == 3
    assert upstream.seen("GET", "/accounts/1") == 3


def test_502_then_200_on_safe_get(upstream: ScriptedUpstream, sleeps: list[float]) -> None:
    upstream.script("GET", "/accounts/1", Reply(502), Reply(json={"ok": True}))
    client = make_client(upstream.url, sleeps)

    response = client.send(get())

    assert (response.status, response.attempts) == (200, 2)


def test_attempts_are_counted_per_call_not_per_client(upstream: ScriptedUpstream, sleeps: list[float]) -> None:
    upstream.script("GET", "/accounts/1", Reply(504), Reply(json={}), Reply(json={}))
    client = make_client(upstream.url, sleeps)

    assert [client.send(get()).attempts for _ in range(2)] == [2, 1]


def test_503_on_unsafe_post_is_returned_without_retry(upstream: ScriptedUpstream, sleeps: list[float]) -> None:
    upstream.script("POST", "/payments", Reply(503), Reply(201))
    client = make_client(upstream.url, sleeps)

    response = client.send(post())

    assert (response.status, response.attempts) == (503, 1)
    assert upstream.seen("POST", "/payments") == 1


def test_500_is_not_retried_even_when_safe(upstream: ScriptedUpstream, sleeps: list[float]) -> None:
    upstream.script("GET", "/accounts/1", Reply(500), Reply(200))
    client = make_client(upstream.url, sleeps)

    assert client.send(get()).status == 500
    assert upstream.seen("GET", "/accounts/1") == 1


def test_small_retry_after_is_respected(upstream: ScriptedUpstream, sleeps: list[float]) -> None:
    upstream.script("GET", "/accounts/1", Reply(503, headers={"Retry-After": "1"}), Reply(json={}))
    client = make_client(upstream.url, sleeps, retry_backoff=0.05)

    assert client.send(get()).status == 200
    assert sleeps == [1.0]


@pytest.mark.parametrize("retry_after", ["30", "-1", "Wed, 21 Oct 2015 07:28:00 GMT"])
def test_long_or_dated_retry_after_is_not_retried(
    upstream: ScriptedUpstream, sleeps: list[float], retry_after: str
) -> None:
    upstream.script("GET", "/accounts/1", Reply(503, headers={"Retry-After": retry_after}), Reply(json={}))
    client = make_client(upstream.url, sleeps)

    response = client.send(get())

    assert (response.status, response.attempts) == (503, 1)
    assert sleeps == []


def test_redirects_are_returned_not_followed(upstream: ScriptedUpstream, sleeps: list[float]) -> None:
    upstream.script("POST", "/payments", Reply(307, headers={"Location": f"{upstream.url}/elsewhere"}))
    upstream.script("POST", "/elsewhere", Reply(201))
    client = make_client(upstream.url, sleeps)

    response = client.send(post())

    assert response.status == 307
    assert response.headers["Location"] == f"{upstream.url}/elsewhere"
    assert [c.path for c in upstream.calls] == ["/payments"]


def test_keep_alive_reuses_one_connection(upstream: ScriptedUpstream) -> None:
    upstream.script("GET", "/accounts/1", Reply(json={}))
    client = make_client(upstream.url, [])

    for _ in range(5):
        client.send(get())

    # Each connection is accepted before its first answer is sent, so by now every one the client opened counts.
    assert upstream.accepted == 1 and len(upstream.calls) == 5
