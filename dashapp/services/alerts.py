"""Alert rules: evaluation on a schedule, firing/resolved alerts, webhook
delivery (issue 7). Being built."""
from __future__ import annotations


def evaluate(ops) -> None:
    """Evaluate every enabled rule once (the scheduler calls this)."""
    return None
