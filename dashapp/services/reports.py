"""Exports of a page's current view and scheduled reports (issue 7). Being built."""
from __future__ import annotations


def write_scheduled(ops) -> None:
    """Write one scheduled report into settings.reports_folder."""
    return None
