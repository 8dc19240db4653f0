"""The stack's probe of a started applier reads its owned partitions off /metrics, and reads 0 when it cannot."""

from __future__ import annotations

import requests
import responses

from cli.stack import assigned_partitions

URL = "http://applier.test:9400"
PAGE = """\
# HELP strangler_applier_queued_events Records waiting in the per-key queues
# TYPE strangler_applier_queued_events gauge
strangler_applier_queued_events 7.0
# HELP strangler_applier_assigned_partitions Partitions this applier owns
# TYPE strangler_applier_assigned_partitions gauge
strangler_applier_assigned_partitions {owned}
"""


@responses.activate
def test_the_probe_reads_the_owned_partitions_from_the_metrics_page() -> None:
    responses.get(URL + "/metrics", body=PAGE.format(owned="6.0"))
    assert assigned_partitions(URL) == 6


@responses.activate
def test_an_applier_still_joining_its_group_owns_nothing() -> None:
    responses.get(URL + "/metrics", body=PAGE.format(owned="0.0"))
    assert assigned_partitions(URL) == 0


@responses.activate
def test_a_page_without_the_gauge_reads_as_nothing_owned() -> None:
    responses.get(URL + "/metrics", body="# HELP up Up\n# TYPE up gauge\nup 1.0\n")
    assert assigned_partitions(URL) == 0


@responses.activate
def test_an_unreachable_applier_reads_as_nothing_owned() -> None:
    responses.get(URL + "/metrics", body=requests.ConnectionError("connection refused"))
    assert assigned_partitions(URL) == 0


@responses.activate
def test_an_error_page_reads_as_nothing_owned() -> None:
    responses.get(URL + "/metrics", status=503, body="<html>Service Unavailable</html>")
    assert assigned_partitions(URL) == 0
    responses.replace(responses.GET, URL + "/metrics", body="<html>not a metrics page</html>")
    assert assigned_partitions(URL) == 0
