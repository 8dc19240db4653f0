"""The comparator: status classes, every compare rule, unordered lists, critical paths, noise and classification."""

from __future__ import annotations

import json
from typing import Any

import pytest

from core.rules import CompareSpec
from parallel_run.compare import classify, compare_outcomes, noise_between
from parallel_run.model import Difference


def diffs(
    primary: Any, shadow: Any, spec: CompareSpec | None = None, status: tuple[int, int] = (200, 200)
) -> dict[str, Difference]:
    found = compare_outcomes(status[0], primary, status[1], shadow, spec or CompareSpec())
    by_path = {d.path: d for d in found}
    assert len(by_path) == len(found), "one difference per generalised path"
    return by_path


# --- status -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("p", "s"), [(200, 201), (204, 200), (500, 503), (302, 301)])
def test_statuses_of_one_class_match(p: int, s: int) -> None:
    assert compare_outcomes(p, {"a": 1}, s, {"a": 1}, CompareSpec()) == ()


@pytest.mark.parametrize(("p", "s"), [(200, 500), (200, 404), (404, 500), (201, 302)])
def test_a_different_status_class_is_a_critical_status_difference_and_bodies_are_not_diffed(p: int, s: int) -> None:
    found = compare_outcomes(p, {"balance": "10.00"}, s, {"error": "boom"}, CompareSpec())
    assert found == (Difference("status", "status", str(p), str(s), critical=True),)


def test_two_different_refusals_are_a_critical_value_difference_on_status_and_bodies_are_diffed() -> None:
    found = compare_outcomes(404, {"error": "not_found"}, 422, {"error": "invalid"}, CompareSpec())
    assert found == (
        Difference("status", "value", "404", "422", critical=True),
        Difference("$.error", "value", '"not_found"', '"invalid"', critical=False),
    )


# --- plain structure ------------------------------------------------------------------------------------------------


def test_identical_nested_documents_match() -> None:
    doc = {"a": [1, {"b": [None, True, "x", 1.5]}], "c": {}, "d": []}
    assert diffs(doc, json.loads(json.dumps(doc))) == {}


def test_value_type_and_missing_members_are_told_apart() -> None:
    found = diffs(
        {"a": 1, "b": "1", "c": {"x": 1}, "only_p": 1, "n": None, "t": True},
        {"a": 2, "b": 1, "c": [1], "only_s": 2, "n": 0, "t": 1},
    )
    assert {p: d.kind for p, d in found.items()} == {
        "$.a": "value", "$.b": "type", "$.c": "type", "$.only_p": "missing_in_shadow",
        "$.only_s": "missing_in_primary", "$.n": "value", "$.t": "type",
    }  # fmt: skip
    assert (found["$.only_p"].primary, found["$.only_p"].shadow) == ("1", None)
    assert (found["$.only_s"].primary, found["$.only_s"].shadow) == (None, "2")
    assert (found["$.n"].primary, found["$.n"].shadow) == ("null", "0")  # JSON null is not an absent member
    assert found["$.c"].primary == '{"x": 1}' and found["$.c"].shadow == "[1]"


def test_numbers_compare_by_value_not_by_spelling() -> None:
    assert diffs({"a": 100, "b": 0.1, "c": 2.50}, {"a": 100.0, "b": 0.1, "c": 2.5}) == {}
    assert set(diffs({"a": 100}, {"a": 100.01})) == {"$.a"}


def test_numeric_strings_are_not_numbers_without_a_rule() -> None:
    assert diffs({"a": "123.45"}, {"a": 123.45})["$.a"].kind == "type"


def test_ordered_lists_pair_by_position_and_report_extra_items_on_generalised_paths() -> None:
    found = diffs(
        {"items": [{"amount": 1}, {"amount": 2}, {"amount": 3}]},
        {"items": [{"amount": 1}, {"amount": 5}]},
    )
    assert set(found) == {"$.items[*].amount", "$.items[*]"}
    assert found["$.items[*].amount"].primary == "2" and found["$.items[*].amount"].shadow == "5"
    assert found["$.items[*]"].kind == "missing_in_shadow" and found["$.items[*]"].primary == '{"amount": 3}'


def test_nested_lists_generalise_every_index() -> None:
    found = diffs({"a": [[1, 2], [3, {"b": 4}]]}, {"a": [[1, 2], [3, {"b": 5}]]})
    assert list(found) == ["$.a[*][*].b"]


def test_many_differences_on_one_path_collapse_to_the_first() -> None:
    found = diffs({"xs": [{"v": 1}, {"v": 2}]}, {"xs": [{"v": 9}, {"v": 8}]})
    assert found == {"$.xs[*].v": Difference("$.xs[*].v", "value", "1", "9")}


def test_bodies_that_are_not_objects_are_compared_at_the_root() -> None:
    assert list(diffs("ok", "OK")) == ["$"]
    assert diffs(None, None) == {}
    assert diffs([1, 2], {"a": 1})["$"].kind == "type"


# --- ignore and critical --------------------------------------------------------------------------------------------


def test_ignore_drops_a_whole_subtree_including_missing_members() -> None:
    spec = CompareSpec(ignore=("$.meta", "$.items[*].trace"))
    found = diffs(
        {"meta": {"id": 1, "at": "x"}, "items": [{"trace": 1, "v": 1}], "gone": 1},
        {"meta": {"id": 2}, "items": [{"trace": 2, "v": 1}]},
        spec,
    )
    assert list(found) == ["$.gone"]
    assert diffs({"x": 1}, {"x": 1, "meta": {"a": 1}}, spec) == {}


def test_ignore_by_index_touches_only_that_item() -> None:
    spec = CompareSpec(ignore=("$.xs[0]",))
    assert diffs({"xs": [1, 2]}, {"xs": [9, 2]}, spec) == {}
    assert list(diffs({"xs": [1, 2]}, {"xs": [1, 3]}, spec)) == ["$.xs[*]"]


def test_critical_paths_mark_their_differences_and_only_theirs() -> None:
    spec = CompareSpec(critical=("$.amount", "$.items[*].amount"))
    found = diffs(
        {"amount": "1.00", "note": "a", "items": [{"amount": 1, "memo": "x"}]},
        {"amount": "1.01", "note": "b", "items": [{"amount": 2, "memo": "y"}]},
        spec,
    )
    assert {p: d.critical for p, d in found.items()} == {
        "$.amount": True, "$.note": False, "$.items[*].amount": True, "$.items[*].memo": False
    }  # fmt: skip


def test_a_difference_above_a_critical_path_is_critical_too() -> None:
    spec = CompareSpec(critical=("$.payment.amount",))
    assert diffs({"payment": {"amount": 1}}, {}, spec)["$.payment"].critical  # the amount vanished with its parent
    assert diffs({"payment": {"amount": 1}}, {"payment": [1]}, spec)["$.payment"].critical
    assert not diffs({"payment": {"amount": 1}, "x": 1}, {"payment": {"amount": 1}}, spec)["$.x"].critical


def test_a_critical_path_is_never_ignored_even_under_an_ignored_subtree() -> None:
    spec = CompareSpec(ignore=("$",), critical=("$.amount", "$.legs[*].amount"))
    found = diffs(
        {"amount": 10, "noise": 1, "legs": [{"amount": 1, "id": "a"}]},
        {"amount": 11, "noise": 2, "legs": [{"amount": 2, "id": "b"}]},
        spec,
    )
    assert {p: d.critical for p, d in found.items()} == {"$.amount": True, "$.legs[*].amount": True}
    assert diffs({"amount": 10}, {}, spec)["$.amount"].kind == "missing_in_shadow"


# --- value rules ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("p", "s", "equal"),
    [
        ("100.00", "100.01", True),  # exactly at the tolerance
        ("100.00", "100.011", False),  # just past it
        ("100.00", 100.01, True),  # a numeric string against a number
        (100, "99.99", True),
        (-0.005, 0.005, True),
        ("1e2", "100.005", True),
        ("100.00", "abc", False),  # not a number: compared as is, and they differ
        ("abc", "abc", True),
        (None, 0, False),
    ],
)
def test_numeric_tolerance_is_absolute_and_inclusive(p: Any, s: Any, equal: bool) -> None:
    spec = CompareSpec(tolerance={"$.amount": 0.01})
    assert (diffs({"amount": p}, {"amount": s}, spec) == {}) is equal


def test_tolerance_applies_beneath_its_path_and_the_nearest_rule_wins() -> None:
    spec = CompareSpec(tolerance={"$.legs": 1.0, "$.legs[*].fee": 0.0})
    assert diffs({"legs": [{"amount": 10, "fee": 1}]}, {"legs": [{"amount": 10.9, "fee": 1}]}, spec) == {}
    assert list(diffs({"legs": [{"amount": 10, "fee": 1}]}, {"legs": [{"amount": 10, "fee": 1.5}]}, spec)) == [
        "$.legs[*].fee"
    ]


def test_float_tolerance_is_read_as_its_decimal_text() -> None:
    # 0.1 as a binary float is 0.1000000000000000055...; a difference of exactly 0.1 must still be within it.
    assert diffs({"a": "0.3"}, {"a": "0.2"}, CompareSpec(tolerance={"$.a": 0.1})) == {}


def test_fold_case_and_whitespace_separately_and_together() -> None:
    p, s = {"n": "  John   SMITH "}, {"n": "john smith"}
    assert set(diffs(p, s, CompareSpec(fold={"$.n": ("case",)}))) == {"$.n"}
    assert set(diffs(p, s, CompareSpec(fold={"$.n": ("whitespace",)}))) == {"$.n"}
    assert diffs(p, s, CompareSpec(fold={"$.n": ("case", "whitespace")})) == {}
    assert diffs({"n": "Straße"}, {"n": "STRASSE"}, CompareSpec(fold={"$.n": ("case",)})) == {}  # full case folding


def test_fold_leaves_non_strings_alone() -> None:
    assert set(diffs({"n": 1}, {"n": "1"}, CompareSpec(fold={"$.n": ("case", "whitespace")}))) == {"$.n"}


@pytest.mark.parametrize(
    ("unit", "p", "s", "equal"),
    [
        ("second", "2024-01-02T10:00:00.123Z", "2024-01-02T10:00:00.999+00:00", True),
        ("second", "2024-01-02T10:00:00Z", "2024-01-02T10:00:01Z", False),
        ("minute", "2024-01-02T10:00:59Z", "2024-01-02T11:00:01+01:00", True),  # the same minute in UTC
        ("minute", "2024-01-02T10:00:59Z", "2024-01-02T10:00:01+01:00", False),  # an hour apart once in UTC
        ("hour", "2024-01-02T10:59:59-05:30", "2024-01-02T16:29:00Z", True),
        ("hour", "2024-01-02T10:00:00", "2024-01-02T10:30:00Z", True),  # naive is taken as UTC
        ("day", "2024-01-02T23:30:00-02:00", "2024-01-03", True),  # 01:30 UTC on the 3rd
        ("day", "2024-01-02T23:30:00-02:00", "2024-01-02", False),
        ("day", "2024-01-02", "2024-01-02T00:00:00Z", True),
        ("hour", "2024-01-02", "2024-01-02T00:00:00Z", False),  # a date says nothing about the hour
        ("second", "not a time", "not a time", True),
        ("second", "not a time", "2024-01-02T00:00:00Z", False),
    ],
)
def test_timestamps_truncate_in_utc(unit: str, p: str, s: str, equal: bool) -> None:
    spec = CompareSpec(timestamps={"$.at": unit})
    assert (diffs({"at": p}, {"at": s}, spec) == {}) is equal


def test_named_normalisers_apply_at_and_beneath_their_path() -> None:
    spec = CompareSpec(normalise={"$.phones": "digits_only", "$.amount": "decimal", "$.booked": "iso_date"})
    assert (
        diffs(
            {"phones": ["+44 20 7946 0018", "(020) 7946-0019"], "amount": "100.50", "booked": "20240102"},
            {"phones": ["442079460018", "02079460019"], "amount": 100.5, "booked": "2024-01-02T09:00:00Z"},
            spec,
        )
        == {}
    )
    assert set(diffs({"amount": "100.50"}, {"amount": "100.51"}, spec)) == {"$.amount"}


def test_differences_show_the_raw_values_masked_not_the_normalised_ones() -> None:
    spec = CompareSpec(fold={"$.name": ("case",)})
    found = diffs({"name": "Ann Lee", "note": "x"}, {"name": "Ann Leigh", "note": "y"}, spec)
    assert found["$.name"].primary == '"A*** L***"' and found["$.name"].shadow == '"A*** L***"'


# --- unordered lists ------------------------------------------------------------------------------------------------


def test_unordered_lists_pair_items_by_their_member() -> None:
    spec = CompareSpec(unordered={"$.entries": "id"})
    p = {"entries": [{"id": 1, "amount": 5}, {"id": 2, "amount": 6}]}
    assert diffs(p, {"entries": [{"id": 2, "amount": 6}, {"id": 1, "amount": 5}]}, spec) == {}
    assert diffs(p, {"entries": [{"id": 2, "amount": 6}, {"id": 1, "amount": 5}]}) != {}  # without the rule


def test_unordered_items_on_one_side_only_are_missing_on_the_other() -> None:
    spec = CompareSpec(unordered={"$.entries": "id"}, critical=("$.entries[*].amount",))
    found = diffs(
        {"entries": [{"id": "a", "amount": 1}, {"id": "b", "amount": 2}, {"id": "c", "amount": 3}]},
        {"entries": [{"id": "c", "amount": 3}, {"id": "b", "amount": 20}]},
        spec,
    )
    assert set(found) == {"$.entries[*]", "$.entries[*].amount"}
    assert found["$.entries[*]"].kind == "missing_in_shadow" and found["$.entries[*]"].critical
    assert json.loads(found["$.entries[*]"].primary or "") == {"id": "a", "amount": 1}
    assert (found["$.entries[*].amount"].primary, found["$.entries[*].amount"].shadow) == ("2", "20")
    only_shadow = diffs({"entries": []}, {"entries": [{"id": "z", "amount": 1}]}, spec)
    assert only_shadow["$.entries[*]"].kind == "missing_in_primary" and only_shadow["$.entries[*]"].primary is None


def test_unordered_keys_are_normalised_and_duplicates_pair_in_order() -> None:
    spec = CompareSpec(unordered={"$.xs": "code"}, fold={"$.xs[*].code": ("case",)})
    assert (
        diffs({"xs": [{"code": "A", "v": 1}, {"code": "b"}]}, {"xs": [{"code": "B"}, {"code": "a", "v": 1}]}, spec)
        == {}
    )
    dup = diffs({"xs": [{"code": "a", "v": 1}, {"code": "a", "v": 2}]}, {"xs": [{"code": "a", "v": 1}]}, spec)
    assert dup["$.xs[*]"].kind == "missing_in_shadow" and json.loads(dup["$.xs[*]"].primary or "")["v"] == 2


def test_unordered_items_without_the_member_pair_only_with_identical_items() -> None:
    spec = CompareSpec(unordered={"$.xs": "id"})
    assert diffs({"xs": [1, "a", {"x": 1}]}, {"xs": [{"x": 1}, 1, "a"]}, spec) == {}
    assert {d.kind for d in diffs({"xs": [1]}, {"xs": [2]}, spec).values()} == {"missing_in_shadow"}


def test_unordered_lists_nested_in_lists() -> None:
    spec = CompareSpec(unordered={"$.days[*].entries": "id"})
    p = {"days": [{"entries": [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}]}]}
    s = {"days": [{"entries": [{"id": 2, "v": "b"}, {"id": 1, "v": "c"}]}]}
    found = diffs(p, s, spec)
    assert list(found) == ["$.days[*].entries[*].v"] and found["$.days[*].entries[*].v"].shadow == '"c"'


# --- masking in differences -----------------------------------------------------------------------------------------


def test_no_raw_personal_data_ever_reaches_a_difference() -> None:
    raw = {
        "email": "john.smith@example.com", "iban": "DE89370400440532013000", "card": "4111111111111111",
        "phone": "+447700900189", "note": "call +44 7700 900123 or mail ann@bank.co.uk, IBAN GB82WEST12345698765432",
        "legs": [{"pan": "5555555555554444", "amount": "10.00", "account_id": "ACC-991"}],
    }  # fmt: skip
    other = {"legs": [{"amount": "10.01", "account_id": "ACC-992"}], "extra": {"owner_email": "x.y@z.org"}}
    found = compare_outcomes(200, raw, 200, other, CompareSpec(critical=("$.legs[*].amount",)))
    text = json.dumps([d.__dict__ for d in found])
    for secret in ("john.smith", "example.com", "370400440532", "4111111111111111", "7700900189", "900123",
                   "ann@bank", "12345698765432", "5555555555554444", "x.y@z.org"):  # fmt: skip
        assert secret not in text, secret
    shown = {d.path: d for d in found}
    assert shown["$.email"].primary == '"j***@e***.com"'
    assert shown["$.iban"].primary == '"DE89********3000"'
    assert shown["$.card"].primary == '"****1111"'
    assert shown["$.phone"].primary == '"+44******89"'
    # The evidence stays readable.
    assert (shown["$.legs[*].amount"].primary, shown["$.legs[*].amount"].shadow) == ('"10.00"', '"10.01"')
    assert shown["$.legs[*].account_id"].shadow == '"ACC-992"'
    assert shown["$.extra"].shadow == '{"owner_email": "x***@z***.org"}'


# --- noise ----------------------------------------------------------------------------------------------------------


def test_noise_is_where_two_primary_answers_differ_after_normalisation() -> None:
    spec = CompareSpec(ignore=("$.debug",), timestamps={"$.as_of": "minute"})
    first = {"as_of": "2024-01-02T10:00:01Z", "fetched_at": "10:00:01.5", "trace_id": "t1", "balance": "10.00",
             "debug": 1, "recent": [{"id": "p1", "ref": "r1"}, {"id": "p2", "ref": "r2"}]}  # fmt: skip
    second = {"as_of": "2024-01-02T10:00:02Z", "fetched_at": "10:00:01.9", "trace_id": "t2", "balance": "10.00",
              "debug": 2, "recent": [{"id": "p1", "ref": "r9"}, {"id": "p2", "ref": "r8"}]}  # fmt: skip
    assert noise_between(first, second, spec) == frozenset({"$.fetched_at", "$.trace_id", "$.recent[*].ref"})
    assert noise_between(first, first, spec) == frozenset()


def test_a_critical_path_is_never_learnt_as_noise() -> None:
    spec = CompareSpec(critical=("$.balance",))
    assert noise_between({"balance": 1, "t": 1}, {"balance": 2, "t": 2}, spec) == frozenset({"$.t"})


def test_classify_matches_only_when_every_difference_is_non_critical_noise() -> None:
    trace = Difference("$.trace_id", "value", '"a"', '"b"')
    nested = Difference("$.recent[*].ref", "value", '"a"', '"b"')
    real = Difference("$.currency", "value", '"EUR"', '"GBP"')
    critical = Difference("$.trace_id", "value", '"a"', '"b"', critical=True)
    noise = frozenset({"$.trace_id", "$.recent"})
    assert classify((), noise) == "match"
    assert classify([trace, nested], noise) == "match"  # beneath a noise path counts as noise
    assert classify([trace, real], noise) == "mismatch"
    assert classify([critical], noise) == "mismatch"  # noise never hides a critical path
    assert classify([trace], frozenset()) == "mismatch"
    assert classify([Difference("$.trace_id_v2", "value", "1", "2")], noise) == "mismatch"  # not a prefix by letters


def test_noise_learnt_from_the_primary_turns_a_shadow_mismatch_into_a_match() -> None:
    spec = CompareSpec(critical=("$.balance",))
    first, again = {"balance": "5.00", "request_id": "a1"}, {"balance": "5.00", "request_id": "a2"}
    shadow = {"balance": "5.00", "request_id": "c7"}
    noise = noise_between(first, again, spec)
    assert classify(compare_outcomes(200, first, 200, shadow, spec), noise) == "match"
    wrong = {"balance": "5.01", "request_id": "c8"}
    assert classify(compare_outcomes(200, first, 200, wrong, spec), noise) == "mismatch"
