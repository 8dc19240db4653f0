"""Reconciliation reports of a parallel run and the cutover-readiness verdict (see parallel_run/README.md)."""
