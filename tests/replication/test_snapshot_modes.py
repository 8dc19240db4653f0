"""Snapshot modes: `never` streams into a target already in step, `when_needed` copies again when the slot is lost."""

from __future__ import annotations

from collections.abc import Callable

from click.testing import CliRunner

from cli.replicate import replicate
from replication.config import MappingConfig, load_mapping
from replication.source import SetupError
from sandbox.cloud.schema import init_db as init_cloud
from tests.replication.support import Pair, ThreadedReplicator, assert_target_equals_source


def test_never_streams_into_a_target_seeded_otherwise(make_pair: Callable[..., Pair]) -> None:
    shipped = load_mapping().tables
    pair = make_pair(customers=30, mapping=MappingConfig({k: shipped[k] for k in ("cbs.custmast", "cbs.acctmast")}))
    init_cloud(pair.target_url, 30)  # the cloud service's own seed: the same customers, deterministically
    replicator = ThreadedReplicator(pair.options(snapshot="never"))
    try:
        replicator.wait_for(lambda: pair.applied_lsn() > 0, "the slot")
        pair.sql("source", "UPDATE cbs.acctmast SET curbal = curbal + 500 WHERE acctno <= '0000000005'")
        pair.wait_caught_up(alive=replicator.alive)
    finally:
        replicator.stop()
    assert assert_target_equals_source(pair) == {"cloud.customers": 30, "cloud.accounts": 30}


def test_a_lost_slot_is_refused_in_initial_mode_and_copied_again_when_needed(make_pair: Callable[..., Pair]) -> None:
    pair = make_pair(customers=20)
    first = ThreadedReplicator(pair.options())
    first.wait_for(lambda: pair.applied_lsn() > 0, "the snapshot")
    first.stop()
    pair.drop_slot()
    pair.sql("source", "UPDATE cbs.custmast SET city = 'Lost While Down' WHERE custno = '0000000002'")
    refused = ThreadedReplicator(pair.options())
    error = refused.wait_failed()
    assert isinstance(error, SetupError) and "is missing but the target applied changes" in str(error)
    assert "--snapshot when_needed" in str(error)
    again = ThreadedReplicator(pair.options(snapshot="when_needed"))
    try:
        again.wait_for(lambda: bool(pair.sql("target", "SELECT 1 FROM cloud.customers WHERE city = 'Lost While Down'")),
                       "the new snapshot")  # fmt: skip
        pair.wait_caught_up(alive=again.alive)
    finally:
        again.stop()
    assert_target_equals_source(pair)


def test_an_unknown_mode_is_refused_by_the_command() -> None:
    result = CliRunner().invoke(replicate, ["run", "--snapshot", "sometimes"])
    assert result.exit_code == 2 and "sometimes" in result.output
