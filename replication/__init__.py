"""CDC from the legacy PostgreSQL into the cloud store without Debezium: pgoutput over psycopg2, exactly once.

Pure core (no I/O): `pgoutput` (decoder), `pgtypes` (values), `transforms`, `config` (mapping YAML), `plan`
(source relation -> target table, drift refusals), `stream` (transactions, skipping what is applied).
Around it: `source` and `wal` (the legacy side), `applier` (the port) with `pg_applier` (its adapter),
`snapshot`, `startup`, `lock`, `replicator` (the loop), and the observers in `sinks`, `status`, `progress`,
`metrics` and `events`. The command is `strangler replicate` (cli/replicate.py).
"""
