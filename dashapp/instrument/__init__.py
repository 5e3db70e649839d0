"""Moved: the host-side code is the agent (`ops_agent`, in agent/). What
remains here re-exports the names old code imported."""
from __future__ import annotations

from ops_agent.flask import NO_ROUTE, current_request_id

__all__ = ["NO_ROUTE", "current_request_id"]
