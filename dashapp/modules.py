"""The console's modules: one registry that the sidebar, the overview and the
placeholder pages all read, so a module cannot appear in one and not another."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Module:
    key: str          # short id, used in component ids and API prefixes
    title: str        # shown in the sidebar and page headers
    path: str         # the page's URL path
    icon: str         # Bootstrap Icons class name (without the "bi-" prefix)
    summary: str      # one line: what the page is for
    issue: int | None  # the issue that builds it (None: built by the foundation)
    built: bool = False
    role: str = "viewer"  # the least role that sees the page in the sidebar


MODULES: tuple[Module, ...] = (
    Module("overview", "Overview", "/", "speedometer2",
           "Health of every module at a glance.", None, built=True),
    Module("cache", "Cache", "/cache", "lightning-charge",
           "Hit rates per namespace, browse, inspect and clear keys.", 4, built=True),
    Module("queries", "SQL queries", "/queries", "database",
           "Slow and frequent SQL, plans and index suggestions.", 3, built=True),
    Module("endpoints", "API metrics", "/endpoints", "graph-up",
           "Throughput, latency percentiles and errors per endpoint.", 3, built=True),
    Module("jobs", "Background jobs", "/jobs", "gear-wide-connected",
           "Running, scheduled and failed jobs; retry and cancel.", 5, built=True),
    Module("redis", "Redis server", "/redis", "hdd-stack",
           "Memory, clients, keyspace, slowlog and advice.", 4, built=True),
    Module("models", "ML models", "/models", "cpu",
           "Model metrics over time, feature importance and drift.", 6, built=True),
    Module("logs", "Logs", "/logs", "journal-text",
           "Live log stream with filters and search.", 6, built=True),
    Module("backups", "Backups", "/backups", "archive",
           "Database backups, restores and restore drills.", 5, built=True),
    Module("config", "Configuration", "/config", "sliders",
           "Edit, validate and roll back configuration files.", 5, built=True),
    Module("profiler", "Profiler", "/profiler", "stopwatch",
           "CPU and memory profiles with hotspots.", 6, built=True),
)

# Pages around the modules (issue 7): shown in the sidebar's "Administration"
# group to the roles allowed, never as overview cards.
ADMIN_MODULES: tuple[Module, ...] = (
    Module("alerts", "Alerts", "/alerts", "bell",
           "Alert rules, firing and resolved alerts, webhook deliveries.", 7,
           built=True),
    Module("audit", "Audit trail", "/audit", "shield-check",
           "Who did what, when, from where; filters and CSV export.", 7,
           built=True, role="admin"),
    Module("users", "Users", "/users", "people",
           "Accounts, roles, password resets and API tokens.", 7,
           built=True, role="admin"),
    Module("ingest_keys", "Ingest keys", "/admin/ingest-keys", "key",
           "One key per application for its agent's batches: create, revoke.", None,
           built=True, role="admin"),
)

BY_KEY = {m.key: m for m in MODULES + ADMIN_MODULES}
