"""The fault switch on its own: parsing, path matching, dice, and sharing one file between worker processes."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

from sandbox.faults import Faults, FaultSpecError, FaultSwitch, Injection, parse_faults

DEFAULTS = Faults(paths=("/CBS/",))


class FixedDice(random.Random):
    """A Random whose random() returns scripted values, so each roll's outcome is chosen by the test."""

    def __init__(self, *values: float) -> None:
        super().__init__(0)
        self.values = list(values)

    def random(self) -> float:
        return self.values.pop(0)


def switch(tmp_path: Path, *dice: float, sleeps: list[float] | None = None) -> FaultSwitch:
    log = sleeps if sleeps is not None else []
    return FaultSwitch(tmp_path / "faults.json", DEFAULTS, sleep=log.append, rng=FixedDice(*dice))


def test_parse_merges_over_the_defaults() -> None:
    faults = parse_faults({"error_rate": 0.5, "paths": ["/a", "/b"]}, DEFAULTS)
    assert faults == Faults(error_rate=0.5, paths=("/a", "/b"))
    assert parse_faults({}, DEFAULTS) == DEFAULTS


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"error_rate": 1.5}, "error_rate"),
        ({"timeout_rate": "0.1"}, "timeout_rate"),
        ({"commit_timeout_rate": True}, "commit_timeout_rate"),
        ({"error_status": 200}, "error_status"),
        ({"hang_s": 301}, "hang_s"),
        ({"latency_ms": float("nan")}, "latency_ms"),
        ({"paths": ["CBS"]}, "paths"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_parse_refuses_bad_fields_naming_them(spec: dict[str, object], field: str) -> None:
    with pytest.raises(FaultSpecError, match=field):
        parse_faults(spec, DEFAULTS)


def test_path_matching_prefix_exact_and_exempt() -> None:
    faults = Faults(paths=("/CBS/ACCT", "/CBS/PAYMT$", "/"))
    assert faults.applies_to("/CBS/ACCT/BAL") and faults.applies_to("/CBS/PAYMT") and faults.applies_to("/x")
    assert not faults.applies_to("/healthz") and not faults.applies_to("/__admin/faults")
    exact = Faults(paths=("/CBS/PAYMT$",))
    assert exact.applies_to("/CBS/PAYMT") and not exact.applies_to("/CBS/PAYMT/INQ")
    assert not Faults(paths=()).applies_to("/CBS/PAYMT")


def test_no_faults_roll_no_dice_and_sleep_nothing(tmp_path: Path) -> None:
    sleeps: list[float] = []
    s = switch(tmp_path, sleeps=sleeps)  # an empty dice list would raise if rolled
    assert s.on_request("/CBS/ACCT/BAL")[0] is Injection.NONE
    assert s.after_commit("/CBS/PAYMT") is None and sleeps == []


def test_latency_then_error_then_timeout_each_by_its_own_roll(tmp_path: Path) -> None:
    sleeps: list[float] = []
    s = switch(tmp_path, 0.1, 0.9, 0.2, 0.9, 0.4, sleeps=sleeps)
    s.set(Faults(latency_ms=250, error_rate=0.5, timeout_rate=0.3, paths=("/CBS/",)))
    assert s.on_request("/CBS/PAYMT")[0] is Injection.ERROR  # 0.1 < 0.5
    assert s.on_request("/CBS/PAYMT")[0] is Injection.TIMEOUT  # 0.9 >= 0.5, then 0.2 < 0.3
    assert s.on_request("/CBS/PAYMT")[0] is Injection.NONE  # 0.9, then 0.4 >= 0.3
    assert sleeps == [0.25, 0.25, 0.25]
    assert s.on_request("/healthz")[0] is Injection.NONE and len(sleeps) == 3


def test_commit_timeout_rolls_after_the_work_and_hangs_for_hang_s(tmp_path: Path) -> None:
    sleeps: list[float] = []
    s = switch(tmp_path, 0.7, 0.2, sleeps=sleeps)
    s.set(Faults(commit_timeout_rate=0.5, hang_s=2.5, paths=("/CBS/",)))
    assert s.after_commit("/CBS/PAYMT") is None
    hit = s.after_commit("/CBS/PAYMT")
    assert hit is not None
    s.hang(hit)
    assert sleeps == [2.5]


def test_two_switches_on_one_file_see_each_others_changes(tmp_path: Path) -> None:
    worker_a, worker_b = switch(tmp_path), switch(tmp_path)
    assert worker_b.current() == DEFAULTS  # no file yet
    worker_a.set(Faults(error_rate=1.0, paths=("/CBS/",)))
    assert worker_b.current().error_rate == 1.0
    worker_b.set(Faults(latency_ms=7, paths=("/CBS/",)))
    assert worker_a.current() == Faults(latency_ms=7, paths=("/CBS/",))
    worker_a.reset()
    assert worker_b.current() == DEFAULTS


def test_the_file_is_reread_only_when_it_changed(tmp_path: Path) -> None:
    s = switch(tmp_path)
    s.set(Faults(error_rate=0.5, paths=("/CBS/",)))
    path = tmp_path / "faults.json"
    stat = path.stat()
    # Same size and mtime, different content: an unchanged identity means the cached setting is used.
    path.write_text(path.read_text().replace("0.5", "0.7"))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert s.current().error_rate == 0.5
    path.write_text(json.dumps({"error_rate": 0.25}))
    assert s.current().error_rate == 0.25


def test_an_unreadable_file_keeps_the_last_good_setting(tmp_path: Path) -> None:
    s = switch(tmp_path)
    s.set(Faults(error_rate=0.5, paths=("/CBS/",)))
    (tmp_path / "faults.json").write_text("{not json at all")
    assert s.current().error_rate == 0.5
    (tmp_path / "faults.json").write_text(json.dumps({"error_rate": 2}))
    assert s.current().error_rate == 0.5


def test_without_a_file_the_setting_stays_in_process(tmp_path: Path) -> None:
    s = FaultSwitch(None, DEFAULTS)
    s.set(Faults(error_rate=1.0, paths=("/CBS/",)))
    assert s.current().error_rate == 1.0 and list(tmp_path.iterdir()) == []
