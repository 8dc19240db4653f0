"""The cutover gate as the CLI reports it: a NOT READY refusal with its failing criteria and the way past it."""

from __future__ import annotations

import click

from parallel_run.gate import NotReady


def refusal(exc: NotReady) -> click.ClickException:
    """Return the CLI's error for a change the cutover gate refused (`parallel_run.gate.gated_reason`)."""
    lines = "\n".join(f"  - {item}" for item in exc.failing)
    return click.ClickException(
        f"refused: {exc.capability} is NOT READY for more cloud traffic; failing criteria:\n{lines}\n"
        "(strangler report shows the evidence; --force --reason '...' overrides, and the audit trail says so)"
    )
