"""Deterministic sample customers shared by the legacy and cloud seeders: customer i is always the same person."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta

FIRST_NAMES = (
    "Anna", "Bram", "Chloe", "Daan", "Eva", "Finn", "Greta", "Hugo", "Ines", "Jonas", "Katja", "Lars",
    "Maria", "Niels", "Olga", "Pieter", "Rosa", "Sven", "Tessa", "Umberto", "Vera", "Willem", "Yara", "Zoe",
)  # fmt: skip
LAST_NAMES = (
    "Bakker", "de Vries", "Jansen", "Visser", "Smit", "Meijer", "Mulder", "Bos", "Vos", "Peters", "Hendriks",
    "Dekker", "Brouwer", "Dijkstra", "Koster", "Schouten", "Muller", "Schmidt", "Rossi", "Garcia", "Dubois",
)  # fmt: skip
STREETS = (
    "Kerkstraat", "Dorpsstraat", "Stationsweg", "Molenweg", "Schoolstraat", "Hoofdstraat", "Lindenlaan",
    "Marktplein", "Havenkade", "Parkweg", "Bahnhofstrasse", "Rue de la Paix", "Via Roma",
)  # fmt: skip
CITIES = (
    "Amsterdam", "Rotterdam", "Utrecht", "Den Haag", "Eindhoven", "Groningen", "Berlin", "Hamburg",
    "Antwerpen", "Brussel", "Paris", "Lyon", "Milano",
)  # fmt: skip

POSTCODE_LETTERS = "ABCDEFGHJKLMNPRSTUVWXZ"
MIN_BALANCE_CENTS = 100_000  # 1,000.00
MAX_BALANCE_CENTS = 10_000_000  # 100,000.00
_FIRST_OPEN_DATE = date(1985, 1, 2)


@dataclass(frozen=True)
class SeedCustomer:
    """One generated customer with one EUR account carrying the same number."""

    number: int
    name: str
    email: str
    phone: str
    address_line1: str
    city: str
    postcode: str
    balance_cents: int
    currency: str
    open_date: date


def customer(number: int) -> SeedCustomer:
    """Return customer `number` (1-based); the same number always yields the same customer."""
    if number < 1:
        raise ValueError(f"customer numbers start at 1, got {number}")
    # One private generator per customer: customer i does not depend on how many came before it.
    rng = random.Random(42 + number)
    first = rng.choice(FIRST_NAMES)
    last = rng.choice(LAST_NAMES)
    mailbox = f"{first}.{last}".lower().replace(" ", "")
    return SeedCustomer(
        number=number,
        name=f"{first} {last}",
        email=f"{mailbox}{number}@example.com",
        phone=f"+31 6 {rng.randint(10_000_000, 99_999_999)}",
        address_line1=f"{rng.choice(STREETS)} {rng.randint(1, 250)}",
        city=rng.choice(CITIES),
        postcode=f"{rng.randint(1000, 9999)} {rng.choice(POSTCODE_LETTERS)}{rng.choice(POSTCODE_LETTERS)}",
        balance_cents=rng.randint(MIN_BALANCE_CENTS, MAX_BALANCE_CENTS),
        currency="EUR",
        open_date=_FIRST_OPEN_DATE + timedelta(days=rng.randint(0, 14_000)),
    )


def customers(count: int) -> Iterator[SeedCustomer]:
    """Yield customers 1..count in order."""
    if count < 0:
        raise ValueError(f"customer count must be >= 0, got {count}")
    for number in range(1, count + 1):
        yield customer(number)
