"""Capability matching: method + path template, with 404 and 405 told apart."""

from __future__ import annotations

import pytest

from facade.routing import CapabilityMatcher, NoRoute
from tests.builders import shipped_rules


@pytest.fixture
def matcher() -> CapabilityMatcher:
    return CapabilityMatcher(shipped_rules().capabilities)


def test_matches_capability_and_path_parameters(matcher: CapabilityMatcher) -> None:
    match = matcher.match("GET", "/v1/accounts/42/balance")
    assert (match.capability, dict(match.params)) == ("accounts.balance", {"account_id": "42"})
    assert matcher.match("POST", "/v1/payments").capability == "payments.create"
    assert matcher.match("GET", "/v1/payments/pay_1").params == {"payment_id": "pay_1"}


def test_unknown_path_has_no_allowed_methods(matcher: CapabilityMatcher) -> None:
    with pytest.raises(NoRoute) as info:
        matcher.match("GET", "/v1/loans/1")
    assert info.value.allowed == ()


def test_known_path_with_wrong_method_lists_the_allowed_ones(matcher: CapabilityMatcher) -> None:
    with pytest.raises(NoRoute) as info:
        matcher.match("DELETE", "/v1/payments")
    assert info.value.allowed == ("POST",)
