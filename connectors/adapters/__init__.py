"""Per-capability adapters (the anti-corruption layer): portal call ⇄ upstream request, by name from a registry."""

from __future__ import annotations

from connectors.adapters.base import Adapter, AdapterInputError, LookupUnknown, Passthrough
from connectors.adapters.cloud import CloudPaymentCreate
from connectors.adapters.legacy_core import LegacyBalance, LegacyPaymentCreate, LegacyPaymentGet, LegacyProfileUpdate


def adapter_registry() -> dict[str, Adapter]:
    """Return every adapter by the name routing_rules.yaml uses for it."""
    return {
        "legacy.balance": LegacyBalance(),
        "legacy.payment_create": LegacyPaymentCreate(),
        "legacy.payment_get": LegacyPaymentGet(),
        "legacy.profile_update": LegacyProfileUpdate(),
        "cloud.payment_create": CloudPaymentCreate(),
    }


__all__ = ["Adapter", "AdapterInputError", "LookupUnknown", "Passthrough", "adapter_registry"]
