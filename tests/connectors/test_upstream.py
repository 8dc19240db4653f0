"""Unit tests of UpstreamClient's calls and retries, with HTTP faked by `responses`."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import requests
import responses

from connectors.upstream import (
    UpstreamError,
    UpstreamNotSent,
    UpstreamProtocolError,
    UpstreamRequest,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from tests.connectors.upstream_fakes import BASE, get, make_client, post, refused, timeout_of


@pytest.fixture
def mock() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


@pytest.fixture
def sleeps() -> list[float]:
    return []


def test_success_returns_json_headers_and_one_attempt(mock: responses.RequestsMock, sleeps: list[float]) -> None:
    mock.get(f"{BASE}/accounts/1", json={"balance": "12.50"}, headers={"X-Legacy": "yes"})
    client = make_client(sleeps)

    response = client.send(get(params={"ccy": "EUR"}, headers={"X-Request-ID": "req-1"}))

    assert response.status == 200
    assert response.json() == {"balance": "12.50"}
    assert response.headers["x-legacy"] == "yes"
    assert response.attempts == 1
    assert response.elapsed_ms >= 0
    sent = mock.calls[0].request
    assert sent.headers["X-Request-ID"] == "req-1"
    assert sent.url == f"{BASE}/accounts/1?ccy=EUR"
    assert sleeps == []


def test_json_body_and_raw_body_are_sent_as_given(mock: responses.RequestsMock, sleeps: list[float]) -> None:
    mock.post(f"{BASE}/payments", status=201)
    client = make_client(sleeps)

    client.send(post())
    client.send(UpstreamRequest("POST", "/payments", body=b"<xml/>", headers={"Content-Type": "application/xml"}))

    assert json.loads(mock.calls[0].request.body or b"") == {"amount": "10.00"}
    assert mock.calls[1].request.body == b"<xml/>"
    assert mock.calls[1].request.headers["Content-Type"] == "application/xml"


def test_request_refuses_json_and_body_together() -> None:
    with pytest.raises(ValueError, match="not both"):
        UpstreamRequest("POST", "/x", json={"a": 1}, body=b"{}")


def test_per_request_timeout_overrides_the_default(mock: responses.RequestsMock, sleeps: list[float]) -> None:
    mock.get(f"{BASE}/accounts/1", json={})
    client = make_client(sleeps, connect_timeout=1.0, read_timeout=5.0)

    client.send(get())
    client.send(get(timeout=(0.2, 0.7)))

    assert timeout_of(mock.calls[0]) == (1.0, 5.0)
    assert timeout_of(mock.calls[1]) == (0.2, 0.7)


def test_never_sent_post_is_retried_and_attempts_counted(mock: responses.RequestsMock, sleeps: list[float]) -> None:
    mock.post(f"{BASE}/payments", body=refused())
    mock.post(f"{BASE}/payments", body=refused())
    mock.post(f"{BASE}/payments", status=201, json={"ref": "P1"})
    client = make_client(sleeps, retry_attempts=3, retry_backoff=0.05)

    response = client.send(post())

    assert response.status == 201
    assert response.attempts == 3
    assert len(mock.calls) == 3
    # exponential backoff with jitter: first wait in [0.05, 0.10], second in [0.10, 0.15]
    assert len(sleeps) == 2
    assert 0.05 <= sleeps[0] <= 0.10
    assert 0.10 <= sleeps[1] <= 0.15


def test_never_sent_after_all_attempts_raises_not_sent(mock: responses.RequestsMock, sleeps: list[float]) -> None:
    mock.post(f"{BASE}/payments", body=refused())
    client = make_client(sleeps, retry_attempts=3)

    with pytest.raises(UpstreamNotSent) as caught:
        client.send(post())

    assert isinstance(caught.value, UpstreamUnavailable)
    assert caught.value.upstream == "legacy"
    assert caught.value.reason == "unreachable"
    assert caught.value.retry_after >= 1
    assert len(mock.calls) == 3
    assert len(sleeps) == 2


def test_connect_timeout_counts_as_never_sent(mock: responses.RequestsMock, sleeps: list[float]) -> None:
    mock.post(f"{BASE}/payments", body=requests.ConnectTimeout("connect timed out"))
    client = make_client(sleeps, retry_attempts=2)

    with pytest.raises(UpstreamNotSent):
        client.send(post())

    assert len(mock.calls) == 2


def test_read_timeout_on_unsafe_post_is_not_retried(mock: responses.RequestsMock, sleeps: list[float]) -> None:
    mock.post(f"{BASE}/payments", body=requests.ReadTimeout("read timed out"))
    mock.post(f"{BASE}/payments", status=201)
    client = make_client(sleeps, retry_attempts=3)

    with pytest.raises(UpstreamTimeout) as caught:
        client.send(post())

    assert caught.value.sent is True
    assert len(mock.calls) == 1
    assert sleeps == []


def test_dropped_connection_on_unsafe_post_is_not_retried(mock: responses.RequestsMock, sleeps: list[float]) -> None:
    mock.post(f"{BASE}/payments", body=requests.ConnectionError("('Connection aborted.', RemoteDisconnected())"))
    client = make_client(sleeps)

    with pytest.raises(UpstreamTimeout) as caught:
        client.send(post())

    assert caught.value.sent is True
    assert len(mock.calls) == 1


def test_read_timeout_on_safe_get_is_retried_then_raised(mock: responses.RequestsMock, sleeps: list[float]) -> None:
    mock.get(f"{BASE}/accounts/1", body=requests.ReadTimeout("read timed out"))
    client = make_client(sleeps, retry_attempts=3)

    with pytest.raises(UpstreamTimeout) as caught:
        client.send(get())

    assert caught.value.sent is True
    assert len(mock.calls) == 3


def test_read_timeout_on_safe_get_then_success(mock: responses.RequestsMock, sleeps: list[float]) -> None:
    mock.get(f"{BASE}/accounts/1", body=requests.ReadTimeout("read timed out"))
    mock.get(f"{BASE}/accounts/1", json={"balance": "1"})
    client = make_client(sleeps)

    response = client.send(get())

    assert (response.status, response.attempts) == (200, 2)


def test_503_on_safe_get_is_retried_and_the_last_answer_returned(
    mock: responses.RequestsMock, sleeps: list[float]
) -> None:
    for n in range(3):
        mock.get(f"{BASE}/accounts/1", status=503, body=f"busy {n}")
    client = make_client(sleeps, retry_attempts=3)

    response = client.send(get())

    assert response.status == 503
    assert response.body == b"busy 2"
    assert response.attempts == 3
    assert len(mock.calls) == 3


def test_502_then_200_on_safe_get(mock: responses.RequestsMock, sleeps: list[float]) -> None:
    mock.get(f"{BASE}/accounts/1", status=502)
    mock.get(f"{BASE}/accounts/1", json={"ok": True})
    client = make_client(sleeps)

    response = client.send(get())

    assert (response.status, response.attempts) == (200, 2)


def test_503_on_unsafe_post_is_returned_without_retry(mock: responses.RequestsMock, sleeps: list[float]) -> None:
    mock.post(f"{BASE}/payments", status=503)
    mock.post(f"{BASE}/payments", status=201)
    client = make_client(sleeps)

    response = client.send(post())

    assert (response.status, response.attempts) == (503, 1)
    assert len(mock.calls) == 1


def test_500_is_not_retried_even_when_safe(mock: responses.RequestsMock, sleeps: list[float]) -> None:
    mock.get(f"{BASE}/accounts/1", status=500)
    mock.get(f"{BASE}/accounts/1", status=200)
    client = make_client(sleeps)

    assert client.send(get()).status == 500
    assert len(mock.calls) == 1


def test_small_retry_after_is_respected(mock: responses.RequestsMock, sleeps: list[float]) -> None:
    mock.get(f"{BASE}/accounts/1", status=503, headers={"Retry-After": "1"})
    mock.get(f"{BASE}/accounts/1", json={})
    client = make_client(sleeps, retry_backoff=0.05)

    assert client.send(get()).status == 200
    assert sleeps == [1.0]


@pytest.mark.parametrize("retry_after", ["30", "Wed, 21 Oct 2015 07:28:00 GMT"])
def test_long_or_dated_retry_after_is_not_retried(
    mock: responses.RequestsMock, sleeps: list[float], retry_after: str
) -> None:
    mock.get(f"{BASE}/accounts/1", status=503, headers={"Retry-After": retry_after})
    mock.get(f"{BASE}/accounts/1", json={})
    client = make_client(sleeps)

    response = client.send(get())

    assert (response.status, response.attempts) == (503, 1)
    assert sleeps == []


def test_redirects_are_returned_not_followed(mock: responses.RequestsMock, sleeps: list[float]) -> None:
    mock.post(f"{BASE}/payments", status=307, headers={"Location": f"{BASE}/elsewhere"})
    client = make_client(sleeps)

    response = client.send(post())

    assert response.status == 307
    assert len(mock.calls) == 1


def test_undecodable_body_is_a_protocol_error(mock: responses.RequestsMock, sleeps: list[float]) -> None:
    mock.get(f"{BASE}/accounts/1", body=requests.exceptions.ContentDecodingError("bad gzip"))
    client = make_client(sleeps, retry_attempts=1)

    with pytest.raises(UpstreamProtocolError) as caught:
        client.send(get())

    assert isinstance(caught.value, UpstreamError)
    assert not isinstance(caught.value, UpstreamUnavailable)
