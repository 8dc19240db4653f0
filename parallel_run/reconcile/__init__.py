"""Table-level data reconciliation: legacy tables against their cloud copies through the replication mapping.

Checksums over key ranges are computed inside each database (the mapping's transforms as SQL on the legacy side),
mismatching ranges are bisected down to rows, and differences seen while the replicator is still applying are
re-checked before they are reported. `spec` and `bisect` are pure; `engine` does the I/O.
"""
