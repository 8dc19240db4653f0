"""JSON paths: parsing rule paths, walking a document's leaves, and matching rules against concrete paths."""

from __future__ import annotations

import pytest

from parallel_run.jsonpath import (
    WILD,
    Leaf,
    PathSyntaxError,
    covers,
    leaves,
    matches,
    overlaps,
    parse,
    path_matches,
    render,
    within,
)


def test_parse_keys_indexes_and_wildcards() -> None:
    assert parse("$") == ()
    assert parse("$.items[*].amount") == ("items", WILD, "amount")
    assert parse("$.a_1[0][12].B") == ("a_1", 0, 12, "B")
    assert parse("$[*]") == (WILD,)


@pytest.mark.parametrize("bad", ["", "a.b", "$.", "$..a", "$.1a", "$[x]", "$[-1]", "$.a[*", "$.a b", "$['a']"])
def test_parse_refuses_what_the_schema_refuses(bad: str) -> None:
    with pytest.raises(PathSyntaxError):
        parse(bad)


def test_render_round_trips_and_generalises() -> None:
    assert render(("items", 3, "amount")) == "$.items[3].amount"
    assert render(("items", 3, "amount"), general=True) == "$.items[*].amount"
    assert render((WILD, 0), general=False) == "$[*][0]"
    assert render(()) == "$"
    assert render(("odd key",)) == "$['odd key']"  # not nameable by a rule, but unambiguous


def test_leaves_walk_scalars_and_empty_containers_in_document_order() -> None:
    doc = {"a": 1, "items": [{"amount": "1.00"}, {"amount": None, "tags": []}], "meta": {}}
    assert list(leaves(doc)) == [
        Leaf("$.a", "$.a", 1),
        Leaf("$.items[0].amount", "$.items[*].amount", "1.00"),
        Leaf("$.items[1].amount", "$.items[*].amount", None),
        Leaf("$.items[1].tags", "$.items[*].tags", []),
        Leaf("$.meta", "$.meta", {}),
    ]
    assert list(leaves(5)) == [Leaf("$", "$", 5)]
    assert list(leaves([[1], [2]])) == [Leaf("$[0][0]", "$[*][*]", 1), Leaf("$[1][0]", "$[*][*]", 2)]


def test_matches_needs_the_whole_path() -> None:
    assert matches(parse("$.items[*].amount"), ("items", 7, "amount"))
    assert matches(parse("$.items[7].amount"), ("items", 7, "amount"))
    assert not matches(parse("$.items[6].amount"), ("items", 7, "amount"))
    assert not matches(parse("$.items[*]"), ("items", 7, "amount"))
    assert not matches(parse("$.items[*]"), ("items", "7"))  # a key that looks like a number is still a key
    assert not matches(parse("$.items.x"), ("items", 0))
    assert path_matches("$.a[*].b", "$.a[2].b") and not path_matches("$.a[*].b", "$.a[2].c")


def test_covers_is_a_rule_over_its_subtree_and_overlaps_goes_both_ways() -> None:
    assert covers((), ("a", 1))
    assert covers(parse("$.a"), ("a", 1, "b")) and covers(parse("$.a"), ("a",))
    assert not covers(parse("$.a.b"), ("a",))
    assert not covers(parse("$.ab"), ("a",))
    assert overlaps(parse("$.a.b"), ("a",)) and overlaps(parse("$.a"), ("a", "b"))
    assert overlaps(parse("$.a[*].b"), ("a", 3)) and not overlaps(parse("$.a[*].b"), ("a", 3, "c"))


def test_within_compares_rendered_paths_at_segment_boundaries() -> None:
    assert within("$.a", "$.a") and within("$.a.b", "$.a") and within("$.a[*].b", "$.a")
    assert not within("$.ab", "$.a") and not within("$.a", "$.a.b")
