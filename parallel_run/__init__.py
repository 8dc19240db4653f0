"""Shadow traffic, outcome comparison and reconciliation reports (arrives with the parallel-run issue)."""
