"""JSON paths as the comparator uses them: parse `$.items[*].amount`, walk a document's leaves, match rules (pure)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

# A concrete path is a tuple of object keys (str) and list indexes (int); a rule path may also hold WILD ([*]).
Token = str | int
WILD: Final = "[*]"
_TOKEN = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\*|[0-9]+)\]")
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class PathSyntaxError(ValueError):
    """A rule path is not of the form `$`, `$.key`, `$[*]` or `$[3]`, chained."""


@dataclass(frozen=True)
class Leaf:
    """One scalar (or empty container) of a document: where it is, where it is with indexes generalised, and it."""

    concrete: str
    general: str
    value: Any


def parse(path: str) -> tuple[Token, ...]:
    """Parse a rule path into tokens (keys, indexes, WILD) or raise PathSyntaxError."""
    if not path.startswith("$"):
        raise PathSyntaxError(f"{path!r} does not start with $")
    tokens: list[Token] = []
    pos = 1
    while pos < len(path):
        m = _TOKEN.match(path, pos)
        if m is None:
            raise PathSyntaxError(f"{path!r} is not a JSON path at column {pos + 1}")
        key, index = m.group(1), m.group(2)
        if key is not None:
            tokens.append(key)
        else:
            tokens.append(WILD if index == "*" else int(index))
        pos = m.end()
    return tuple(tokens)


def render(tokens: tuple[Token, ...], general: bool = False) -> str:
    """Render tokens as a path; with `general`, every list index reads [*]."""
    parts = ["$"]
    for tok in tokens:
        if isinstance(tok, int):
            parts.append("[*]" if general else f"[{tok}]")
        elif tok == WILD:
            parts.append("[*]")
        elif _PLAIN_KEY.match(tok):
            parts.append(f".{tok}")
        else:
            # Keys that are not identifiers cannot be named by a rule, but must still read unambiguously.
            parts.append("[" + repr(tok) + "]")
    return "".join(parts)


def leaves(doc: Any) -> Iterator[Leaf]:
    """Yield every scalar of `doc` (and every empty object or list) with its concrete and generalised path."""
    yield from _leaves(doc, ())


def _leaves(doc: Any, at: tuple[Token, ...]) -> Iterator[Leaf]:
    if isinstance(doc, dict) and doc:
        for key, value in doc.items():
            yield from _leaves(value, (*at, str(key)))
    elif isinstance(doc, list) and doc:
        for index, value in enumerate(doc):
            yield from _leaves(value, (*at, index))
    else:
        yield Leaf(render(at), render(at, general=True), doc)


def _token_matches(rule: Token, concrete: Token) -> bool:
    if rule == WILD:
        return isinstance(concrete, int)
    return rule == concrete and type(rule) is type(concrete)


def matches(rule: tuple[Token, ...], concrete: tuple[Token, ...]) -> bool:
    """True when the rule path names exactly this concrete path ([*] stands for any index)."""
    return len(rule) == len(concrete) and all(map(_token_matches, rule, concrete))


def covers(rule: tuple[Token, ...], concrete: tuple[Token, ...]) -> bool:
    """True when the concrete path is the rule path or lies beneath it (a rule governs its subtree)."""
    return len(rule) <= len(concrete) and all(map(_token_matches, rule, concrete[: len(rule)]))


def overlaps(rule: tuple[Token, ...], concrete: tuple[Token, ...]) -> bool:
    """True when one path lies within the other: a difference here touches what the rule names."""
    n = min(len(rule), len(concrete))
    return all(map(_token_matches, rule[:n], concrete[:n]))


def path_matches(rule: str, concrete: str) -> bool:
    """String form of `matches`: does rule path `rule` name the concrete path `concrete`?"""
    return matches(parse(rule), parse(concrete))


def within(path: str, prefix: str) -> bool:
    """True when generalised path `path` is `prefix` or lies beneath it (compares rendered paths)."""
    return path == prefix or path.startswith(prefix + ".") or path.startswith(prefix + "[")
