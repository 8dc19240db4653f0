"""Compare two outcomes of one call under a capability's compare rules; learn noise from two primary answers (pure).

Rules are keyed by JSON path (`$.items[*].amount`; `[*]` is any index, `[3]` one index). `ignore` drops a whole
subtree; `tolerance`, `fold`, `timestamps` and `normalise` apply to every scalar at or beneath their path (the most
specific rule wins); `unordered` names a list whose items are paired by a member instead of by position.
A `critical` path is never hidden: not by an ignore rule above it, and not by learnt noise (see `classify`).
Bodies are compared only when both statuses are of one class; otherwise the status difference is the whole story.
A document yields at most one Difference per generalised path: the first seen, or the first critical one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Final

from core.rules import CompareSpec
from parallel_run import jsonpath
from parallel_run.jsonpath import Token
from parallel_run.mask import mask_value
from parallel_run.model import Difference
from parallel_run.normalisers import Normaliser, normalisers, parse_instant, to_decimal

Path = tuple[Token, ...]
Rule = tuple[Token, ...]
_ABSENT: Final = object()  # a member or item one side does not have (distinct from JSON null)
_TRUNCATE: Final[Mapping[str, str]] = MappingProxyType(
    {"day": "", "hour": "T%H", "minute": "T%H:%M", "second": "T%H:%M:%S"}
)


def compare_outcomes(
    primary_status: int, primary_body: Any, shadow_status: int, shadow_body: Any, spec: CompareSpec
) -> tuple[Difference, ...]:
    """Return the differences between the primary's and the shadow's outcome under `spec`; empty means a match."""
    if primary_status // 100 != shadow_status // 100:
        return (Difference("status", "status", str(primary_status), str(shadow_status), critical=True),)
    diffs: list[Difference] = []
    if primary_status != shadow_status and primary_status // 100 == 4:
        # 404 vs 422 are both refusals, but different ones: a caller branches on them.
        diffs.append(Difference("status", "value", str(primary_status), str(shadow_status), critical=True))
    diffs.extend(_body_differences(primary_body, shadow_body, spec))
    return tuple(diffs)


def noise_between(first_body: Any, second_body: Any, spec: CompareSpec) -> frozenset[str]:
    """Return the generalised paths where two primary answers to one call differ: noise, never a critical path."""
    return frozenset(d.path for d in _body_differences(first_body, second_body, spec) if not d.critical)


def classify(diffs: Iterable[Difference], noise: frozenset[str]) -> str:
    """Return "match" when every difference lies on (or beneath) a noise path and none is critical, else "mismatch".

    Noise never hides a critical path: a critical difference is a mismatch even if its path was learnt as noise.
    """
    for diff in diffs:
        if diff.critical or not any(jsonpath.within(diff.path, n) for n in noise):
            return "mismatch"
    return "match"


@dataclass(frozen=True)
class _Rules:
    """A CompareSpec with its paths parsed once per comparison."""

    ignore: tuple[Rule, ...]
    critical: tuple[Rule, ...]
    tolerance: tuple[tuple[Rule, Decimal], ...]
    fold: tuple[tuple[Rule, tuple[str, ...]], ...]
    timestamps: tuple[tuple[Rule, str], ...]
    unordered: tuple[tuple[Rule, str], ...]
    normalise: tuple[tuple[Rule, Normaliser], ...]

    @classmethod
    def of(cls, spec: CompareSpec) -> _Rules:
        known = normalisers()
        parse = jsonpath.parse
        return cls(
            ignore=tuple(parse(p) for p in spec.ignore),
            critical=tuple(parse(p) for p in spec.critical),
            tolerance=tuple((parse(p), Decimal(repr(t))) for p, t in spec.tolerance.items()),
            fold=tuple((parse(p), tuple(f)) for p, f in spec.fold.items()),
            timestamps=tuple((parse(p), u) for p, u in spec.timestamps.items()),
            unordered=tuple((parse(p), m) for p, m in spec.unordered.items()),
            # The loader refuses unknown names (check_compare_rules); a name missing here is a programming error.
            normalise=tuple((parse(p), known[n]) for p, n in spec.normalise.items()),
        )

    def is_critical(self, at: Path) -> bool:
        return any(jsonpath.overlaps(rule, at) for rule in self.critical)

    def skip(self, at: Path) -> bool:
        """True when `at` is ignored and nothing critical lies at, above or beneath it."""
        return any(jsonpath.covers(rule, at) for rule in self.ignore) and not self.is_critical(at)


def _nearest(rules: tuple[tuple[Rule, Any], ...], at: Path) -> Any:
    """The value of the most specific rule whose path covers `at`, or None."""
    best: tuple[int, Any] | None = None
    for rule, value in rules:
        if jsonpath.covers(rule, at) and (best is None or len(rule) > best[0]):
            best = (len(rule), value)
    return None if best is None else best[1]


def _body_differences(primary: Any, shadow: Any, spec: CompareSpec) -> list[Difference]:
    rules = _Rules.of(spec)
    found: dict[str, Difference] = {}
    _walk(primary, shadow, (), rules, found)
    return list(found.values())


def _walk(p: Any, s: Any, at: Path, rules: _Rules, found: dict[str, Difference]) -> None:
    if rules.skip(at):
        return
    if p is _ABSENT or s is _ABSENT:
        _record(found, rules, at, "missing_in_shadow" if s is _ABSENT else "missing_in_primary", p, s)
    elif isinstance(p, dict) and isinstance(s, dict):
        for key in [*p, *(k for k in s if k not in p)]:
            _walk(p.get(key, _ABSENT), s.get(key, _ABSENT), (*at, str(key)), rules, found)
    elif isinstance(p, list) and isinstance(s, list):
        member = next((m for rule, m in rules.unordered if jsonpath.matches(rule, at)), None)
        pairs = _pair_by_member(p, s, at, member, rules) if member else _pair_by_index(p, s)
        for index, pv, sv in pairs:
            _walk(pv, sv, (*at, index), rules, found)
    elif isinstance(p, dict | list) or isinstance(s, dict | list):
        _record(found, rules, at, "type", p, s)
    else:
        kind = _leaf_difference(p, s, at, rules)
        if kind:
            _record(found, rules, at, kind, p, s)


def _record(found: dict[str, Difference], rules: _Rules, at: Path, kind: str, p: Any, s: Any) -> None:
    path = jsonpath.render(at, general=True)
    critical = rules.is_critical(at)
    if path in found and (found[path].critical or not critical):
        return
    # An absent side reads None; JSON null reads "null", so the two never look alike.
    shown_p = None if p is _ABSENT else mask_value(path, p)
    shown_s = None if s is _ABSENT else mask_value(path, s)
    found[path] = Difference(path, kind, shown_p, shown_s, critical)


def _pair_by_index(p: list[Any], s: list[Any]) -> list[tuple[int, Any, Any]]:
    n = max(len(p), len(s))
    return [(i, p[i] if i < len(p) else _ABSENT, s[i] if i < len(s) else _ABSENT) for i in range(n)]


def _pair_by_member(p: list[Any], s: list[Any], at: Path, member: str, rules: _Rules) -> list[tuple[int, Any, Any]]:
    """Pair items whose (normalised) member values are equal; duplicates pair in order; index is the primary's."""

    def keyed(items: list[Any]) -> dict[tuple[str, int], tuple[int, Any]]:
        out: dict[tuple[str, int], tuple[int, Any]] = {}
        seen: dict[str, int] = {}
        for index, item in enumerate(items):
            if isinstance(item, dict) and member in item:
                raw = _normalise(item[member], (*at, index, member), rules)
            else:
                raw = item  # an item without the member can only pair with an identical item
            key = json.dumps(raw, sort_keys=True, default=str)
            occurrence = seen.get(key, 0)
            seen[key] = occurrence + 1
            out[(key, occurrence)] = (index, item)
        return out

    left, right = keyed(p), keyed(s)
    pairs = [(i, item, right[k][1] if k in right else _ABSENT) for k, (i, item) in left.items()]
    pairs.extend((i, _ABSENT, item) for k, (i, item) in right.items() if k not in left)
    return pairs


def _normalise(value: Any, at: Path, rules: _Rules) -> Any:
    named = _nearest(rules.normalise, at)
    if named is not None:
        value = named(value)
    unit = _nearest(rules.timestamps, at)
    if unit is not None and isinstance(value, str):
        value = _truncate(value, unit)
    folds = _nearest(rules.fold, at)
    if folds and isinstance(value, str):
        if "whitespace" in folds:
            value = " ".join(value.split())
        if "case" in folds:
            value = value.casefold()
    return value


def _truncate(value: str, unit: str) -> str:
    moment = parse_instant(value)
    if moment is None:
        return value
    if not isinstance(moment, datetime):
        return moment.isoformat()  # a plain date is already as coarse as a day; it stays a date
    return moment.strftime("%Y-%m-%d" + _TRUNCATE[unit]) + ("Z" if unit != "day" else "")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float | Decimal):
        return "number"
    if isinstance(value, str | date):
        return "string"
    return type(value).__name__


def _leaf_difference(p: Any, s: Any, at: Path, rules: _Rules) -> str | None:
    """The kind of difference between two scalars after normalisation, or None when they are equal."""
    np, ns = _normalise(p, at, rules), _normalise(s, at, rules)
    tolerance = _nearest(rules.tolerance, at)
    if tolerance is not None:
        dp, ds = to_decimal(np), to_decimal(ns)
        if _is_number(dp) and _is_number(ds):
            return None if abs(dp - ds) <= tolerance else "value"
    tp, ts = _json_type(np), _json_type(ns)
    if tp != ts:
        return "value" if "null" in (tp, ts) else "type"
    if tp == "number":
        return None if to_decimal(np) == to_decimal(ns) else "value"
    return None if np == ns else "value"


def _is_number(value: Any) -> bool:
    return isinstance(value, Decimal) and value.is_finite()
