"""Redis server: health, memory over time, key distribution, clients, slowlog,
command statistics and advice, for each watched Redis instance.

The instance is kept in the URL (`/redis?instance=<name>`, the Cache page's
convention); switching it in the dropdown changes the URL, and Dash renders
the page again for that instance. Callbacks are thin: they call
dashapp.services.redis_monitor (the same functions /api/redis calls) and hand
the results to dashapp.ui.redis_monitor. Killing a client and resetting the
slowlog need the admin role (checked here, on the server), are confirmed in
a dialog and audited.
"""
from __future__ import annotations

import logging
from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, callback, dcc, html, no_update
from flask import current_app
from sqlalchemy.exc import SQLAlchemyError

from dashapp.security import audit
from dashapp.security.auth import action_allowed, current_principal
from dashapp.security.roles import role_allows
from dashapp.services import redis_collector
from dashapp.services import redis_monitor as svc
from dashapp.ui import redis_monitor as ui
from dashapp.ui.components import (chart, confirm_dialog, confirm_ids, page_header, panel,
                                   RANGE_LABELS, range_picker,
                                   push_toast, unavailable_card)
from dashapp.ui.placeholder import page_options

logger = logging.getLogger(__name__)

dash.register_page(__name__, **page_options("redis"))

REFRESH_MS = 10_000
DEFAULT_MINUTES = 60
SLOWLOG_LIMIT = 128
KILL = "redis-kill"
RESET = "redis-slowlog-reset"
KILL_WORD = "kill"
ADMIN_ONLY = "Needs the admin role"

# The live part of the page, in the order render() returns it.
LIVE = (("redis-status", "children"), ("redis-main", "style"),
        ("redis-cards-wrap", "children"), ("redis-advice", "children"),
        ("redis-memory-chart", "figure"), ("redis-memory-note", "children"),
        ("redis-memory-breakdown", "children"), ("redis-clients", "rowData"),
        ("redis-slowlog", "rowData"), ("redis-slowlog-summary", "children"),
        ("redis-commands", "rowData"))
KEYS = (("redis-keys-note", "children"), ("redis-keys-bar", "figure"),
        ("redis-keys-treemap", "figure"), ("redis-namespaces", "rowData"),
        ("redis-bigkeys", "rowData"), ("redis-dbs-wrap", "children"))


def _ops():
    return current_app.extensions["ops"]


def _instance(name: Any) -> tuple[str, str | None]:
    """(a known instance name, a notice when the asked-for one is unknown)."""
    names = list(_ops().redis_instances)
    if not name or name == "default" or not isinstance(name, str):
        return "default", None
    if name in names:
        return name, None
    return "default", (f"There is no Redis instance called “{name[:40]}”; showing "
                       f"“default”. Known: {', '.join(names)}.")


def _minutes(value: Any) -> int:
    try:
        minutes = int(value)
    except (TypeError, ValueError):
        return DEFAULT_MINUTES
    return minutes if minutes in RANGE_LABELS else DEFAULT_MINUTES


def _is_admin() -> bool:
    principal = current_principal()
    return principal is not None and role_allows(principal.role, "admin")


def _client(instance: str):
    return _ops().redis_named(instance).client


def _outage(instance: str, exc: Exception) -> html.Div:
    logger.warning("Redis page: %s unavailable: %s", instance, exc)
    kind = "refused a command" if isinstance(exc, svc.redis_lib.ResponseError) else ""
    message = f"{type(exc).__name__}: {str(exc)[:200]}"
    if kind:
        message = f"Redis {kind}: {message}"
    return unavailable_card(
        f"Redis ({instance})", message,
        hint=f"This page tries again every {REFRESH_MS // 1000} seconds and shows the "
             "figures as soon as Redis answers. Other pages keep working.")


def _history(instance: str, minutes: int) -> tuple[list[dict], str | None]:
    """The collector's samples for the window and, when there are none, why."""
    ops = _ops()
    try:
        df = redis_collector.history(ops.store, instance, minutes)
    except SQLAlchemyError as exc:
        from dashapp.store import _short_error
        return [], f"The console's store cannot be read, so there is no history: " \
                   f"{_short_error(exc)}"
    if len(df):
        return svc.history_records(df), None
    running = ops.scheduler is not None and getattr(ops.scheduler, "running", False)
    return [], svc.history_note(running)


def render(instance: str, minutes: int) -> dict[str, Any]:
    """Every live figure of the page for one instance, keyed like LIVE."""
    client = _client(instance)
    try:
        stat = svc.status(client)
        mem = svc.memory(client)
        clients = svc.clients(client)
        slow = svc.slowlog(client, SLOWLOG_LIMIT)
        commands = svc.commandstats(client)
    except (svc.redis_lib.RedisError, OSError) as exc:
        return _down(instance, exc)
    history, note = _history(instance, minutes)
    return {
        "up": True,
        "redis-status": None,
        "redis-main": {},
        "redis-cards-wrap": ui.health_cards(stat, mem),
        "redis-advice": ui.advice_cards(svc.evaluate(stat, mem, slow, clients["clients"])),
        "redis-memory-chart": ui.memory_figure(history, note),
        "redis-memory-note": note,
        "redis-memory-breakdown": ui.memory_breakdown(mem),
        "redis-clients": ui.client_rows(clients),
        "redis-slowlog": slow["entries"],
        "redis-slowlog-summary": ui.slowlog_summary(slow),
        "redis-commands": commands["commands"],
    }


def _down(instance: str, exc: Exception) -> dict[str, Any]:
    return {
        "up": False,
        "redis-status": _outage(instance, exc),
        "redis-main": {"display": "none"},
        "redis-cards-wrap": None,
        "redis-advice": None,
        "redis-memory-chart": ui.memory_figure([], "Redis is unavailable"),
        "redis-memory-note": None,
        "redis-memory-breakdown": None,
        "redis-clients": [],
        "redis-slowlog": [],
        "redis-slowlog-summary": "",
        "redis-commands": [],
    }


def render_keys(instance: str, sample: int = svc.DEFAULT_SAMPLE, separator: str = ":",
                depth: int = 1) -> dict[str, Any]:
    """The key distribution panel's parts, keyed like KEYS."""
    try:
        report = svc.keys_report(_client(instance), sample=sample, separator=separator,
                                 depth=depth)
    except ValueError as exc:
        return _keys_message(str(exc))
    except (svc.redis_lib.RedisError, OSError) as exc:
        return _keys_message(f"Redis ({instance}) is unavailable: {type(exc).__name__}: "
                             f"{str(exc)[:200]}")
    return {
        "redis-keys-note": ui.keys_note(report),
        "redis-keys-bar": ui.namespace_figure(report),
        "redis-keys-treemap": ui.namespace_treemap(report),
        "redis-namespaces": ui.namespace_rows(report),
        "redis-bigkeys": report["biggest"],
        "redis-dbs-wrap": ui.db_table(report["keyspace"]),
    }


def _keys_message(text: str) -> dict[str, Any]:
    return {"redis-keys-note": html.P(text, className="ops-redis-note text-danger-emphasis",
                                      id="redis-keys-sample-note"),
            "redis-keys-bar": ui.namespace_figure(None),
            "redis-keys-treemap": ui.namespace_treemap(None),
            "redis-namespaces": [], "redis-bigkeys": [], "redis-dbs-wrap": None}


def _select(options: list, value: Any, id: str, label: str) -> html.Label:
    return html.Label([
        html.Span(label, className="ops-redis-control__label"),
        dbc.Select(id=id, options=options, value=value, size="sm"),
    ], className="ops-redis-control mb-0")


def layout(instance: str | None = None, **_query):
    name, notice = _instance(instance)
    admin = _is_admin()
    live = render(name, DEFAULT_MINUTES)
    instances = list(_ops().redis_instances)
    switcher = _select([{"label": n, "value": n} for n in instances], name,
                       "redis-instance", "Instance")
    picker = range_picker("redis-range", DEFAULT_MINUTES)
    key_controls = html.Div([
        html.Label([html.Span("Separator", className="ops-redis-control__label"),
                    dcc.Input(id="redis-keys-separator", value=":", type="text",
                              maxLength=8, debounce=True, autoComplete="off",
                              className="ops-redis-control__input")],
                   className="ops-redis-control mb-0"),
        _select([{"label": str(d), "value": d} for d in ui.DEPTHS], 1, "redis-keys-depth",
                "Depth"),
        _select([{"label": f"{s:,} keys", "value": s} for s in ui.SAMPLE_SIZES],
                svc.DEFAULT_SAMPLE, "redis-keys-sample", "Sample"),
        html.Button([html.I(className="bi bi-arrow-clockwise", **{"aria-hidden": "true"}),
                     " Sample again"], id="redis-keys-run", n_clicks=0, type="button",
                    className="btn btn-sm btn-outline-secondary"),
    ], className="ops-redis-controls")
    kill_button = html.Button(
        [html.I(className="bi bi-x-circle", **{"aria-hidden": "true"}), " Kill client…"],
        id="redis-kill-open", n_clicks=0, type="button", disabled=True,
        className="btn btn-sm btn-outline-danger",
        title="Select a client first" if admin else ADMIN_ONLY)
    reset_button = html.Button(
        [html.I(className="bi bi-eraser", **{"aria-hidden": "true"}), " Reset slowlog…"],
        id="redis-slowlog-reset-open", n_clicks=0, type="button", disabled=not admin,
        className="btn btn-sm btn-outline-danger",
        title="Empty the slowlog (SLOWLOG RESET)" if admin else ADMIN_ONLY)
    return html.Div([
        dcc.Location(id="redis-url", refresh="callback-nav"),
        dcc.Store(id="redis-instance-name", data=name),
        dcc.Store(id="redis-up", data=live["up"]),
        dcc.Store(id="redis-kill-target", data=None),
        page_header("Redis server", "Health, memory, keys, clients and slow commands, "
                    f"refreshed every {REFRESH_MS // 1000} seconds.",
                    actions=switcher),
        html.Div(dbc.Alert(notice, color="warning", className="mb-4") if notice else None,
                 id="redis-notice"),
        html.Div(live["redis-status"], id="redis-status"),
        html.Div(id="redis-main", style=live["redis-main"], className="ops-stack", children=[
            html.Div(live["redis-cards-wrap"], id="redis-cards-wrap"),
            panel(html.Div(live["redis-advice"], id="redis-advice"), title="Advice",
                  subtitle="Plain-language warnings, each naming the figure behind it"),
            panel(html.Div(className="ops-redis-memory", children=[
                html.Div([
                    chart("redis-memory-chart", live["redis-memory-chart"], height=280,
                          filename="redis-memory"),
                    html.P(live["redis-memory-note"], id="redis-memory-note",
                           className="ops-redis-note"),
                ], className="ops-redis-memory__chart"),
                html.Div(live["redis-memory-breakdown"], id="redis-memory-breakdown",
                         className="ops-redis-memory__facts"),
            ]), title="Memory", subtitle="Used, RSS and peak over time, from the console's "
                                         f"samples every {redis_collector.SAMPLE_SECONDS} s",
                actions=html.Div(picker, role="group", **{"aria-label": "Time range"})),
            panel(html.Div([
                key_controls,
                dcc.Loading(html.Div([
                    html.Div(id="redis-keys-note"),
                    html.Div(className="ops-cols", children=[
                        html.Div([html.H3("Keys by namespace", className="ops-redis-h3"),
                                  chart("redis-keys-bar", ui.namespace_figure(None),
                                        height=320, filename="redis-keys-by-namespace")]),
                        html.Div([html.H3("Memory by namespace", className="ops-redis-h3"),
                                  chart("redis-keys-treemap", ui.namespace_treemap(None),
                                        height=320, filename="redis-memory-by-namespace")]),
                    ]),
                    html.H3("Namespaces", className="ops-redis-h3"),
                    ui.namespace_grid([]),
                    html.H3("Biggest keys in the sample", className="ops-redis-h3"),
                    ui.bigkey_grid([]),
                    html.H3("Keys per database", className="ops-redis-h3"),
                    html.Div(ui.db_table(None), id="redis-dbs-wrap"),
                ]), delay_show=300, type="dot"),
            ]), title="Keys", subtitle="Namespaces (the key's prefix up to the separator) "
                                       "from a bounded SCAN sample; never a full scan",
                id="redis-keys-panel"),
            panel(ui.clients_grid(live["redis-clients"]), title="Clients",
                  subtitle="Every connection, with its address, age, idle time and last "
                           "command. Click a row to select it.",
                  actions=html.Div([html.Span(id="redis-kill-selected",
                                              className="ops-redis-selected"), kill_button],
                                   className="ops-redis-actions")),
            panel(ui.slowlog_grid(live["redis-slowlog"]), title="Slowlog",
                  subtitle=html.Span(live["redis-slowlog-summary"],
                                     id="redis-slowlog-summary"),
                  actions=reset_button),
            panel(ui.commands_grid(live["redis-commands"]), title="Command statistics",
                  subtitle="INFO commandstats since the server started (or its last "
                           "CONFIG RESETSTAT)"),
        ]),
        confirm_dialog(KILL, "Kill this client?",
                       html.Div(id="redis-kill-message", className="ops-confirm__message"),
                       confirm_label="Kill client", typed_confirmation=KILL_WORD),
        confirm_dialog(RESET, "Reset the slowlog?",
                       html.Div(id="redis-reset-message", className="ops-confirm__message"),
                       confirm_label="Reset slowlog"),
        dcc.Interval(id="redis-refresh", interval=REFRESH_MS),
    ], className="ops-redis-page")


# ---------------------------------------------------------------- callbacks

@callback(Output("redis-url", "search"), Input("redis-instance", "value"),
          State("redis-instance-name", "data"), prevent_initial_call=True)
def switch_instance(value, current):
    """A new instance in the dropdown becomes ?instance= in the URL; Dash's
    router then renders the page again for it."""
    if not value or value == current:
        return no_update
    name, _notice = _instance(value)
    return "" if name == "default" else f"?instance={name}"


@callback(*(Output(i, p) for i, p in LIVE), Output("redis-up", "data"),
          Input("redis-refresh", "n_intervals"), Input("redis-range", "value"),
          State("redis-instance-name", "data"), State("redis-up", "data"),
          prevent_initial_call=True)
def refresh(_n, minutes, instance, was_up):
    name, _notice = _instance(instance)
    live = render(name, _minutes(minutes))
    # redis-up changes only when Redis goes down or comes back: that resamples keys.
    up = live["up"] if live["up"] != was_up else no_update
    return (*(live[i] for i, _p in LIVE), up)


@callback(*(Output(i, p) for i, p in KEYS),
          Input("redis-keys-run", "n_clicks"), Input("redis-up", "data"),
          State("redis-instance-name", "data"), State("redis-keys-sample", "value"),
          State("redis-keys-separator", "value"), State("redis-keys-depth", "value"))
def sample_keys(_n, up, instance, sample, separator, depth):
    """Sample the keyspace: on load, on "Sample again", and when Redis returns."""
    name, _notice = _instance(instance)
    if up is False:
        return tuple(_keys_message(f"Redis ({name}) is unavailable; the keys are sampled "
                                   "again when it answers.")[i] for i, _p in KEYS)
    try:
        sample = int(sample)
        depth = int(depth)
    except (TypeError, ValueError):
        sample, depth = svc.DEFAULT_SAMPLE, 1
    parts = render_keys(name, sample, separator or ":", depth)
    return tuple(parts[i] for i, _p in KEYS)


@callback(Output("redis-kill-target", "data"), Output("redis-kill-open", "disabled"),
          Output("redis-kill-selected", "children"),
          Input("redis-clients", "selectedRows"), prevent_initial_call=True)
def select_client(rows):
    """The selected client is the one the Kill button acts on (admins only)."""
    row = (rows or [None])[0]
    if not row:
        return None, True, ""
    target = {"id": row.get("id"), "addr": row.get("addr"), "name": row.get("name"),
              "own": bool(row.get("own"))}
    label = f"Selected: client {target['id']} ({target['addr']})"
    if not _is_admin():
        return target, True, f"{label} · {ADMIN_ONLY.lower()} to kill it"
    return target, False, label


@callback(Output(confirm_ids(KILL).modal, "is_open"), Output("redis-kill-message", "children"),
          Input("redis-kill-open", "n_clicks"), State("redis-kill-target", "data"),
          State("redis-instance-name", "data"), prevent_initial_call=True)
def open_kill(_n, target, instance):
    if not target:
        return no_update, no_update
    who = f"client {target['id']} at {target['addr']}"
    if target.get("name"):
        who += f" (name “{target['name']}”)"
    message = [html.P(f"This disconnects {who} from Redis ({instance}) now. The "
                      "application behind it sees a dropped connection; most client "
                      "libraries reconnect.", className="mb-2"),
               html.P("The action is recorded in the audit trail.",
                      className="text-body-secondary small mb-0")]
    if target.get("own"):
        message.insert(0, html.P("This is the console's own connection: Redis will refuse "
                                 "to kill it.", className="text-warning-emphasis mb-2"))
    return True, message


def kill(target: dict | None, instance: str) -> tuple[str, str]:
    """Kill the target client for the page: (toast message, toast kind). Checks
    the role on the server and audits every outcome."""
    ops = _ops()
    client_id = (target or {}).get("id")
    audit_target = f"redis:{instance}:client:{client_id}"
    actor, refusal = action_allowed("admin", "redis_client_kill", audit_target)
    if actor is None:
        return f"Killing a client: {refusal}", "danger"
    if not isinstance(client_id, int) or client_id < 1:
        return "Select a client in the table first.", "warning"

    # Audited before the kill: AuditUnavailable (a toast) and no kill otherwise.
    entry = audit.begin(ops.store, actor=actor, action="redis_client_kill",
                        target=audit_target)

    def record(outcome: str, **details) -> None:
        entry.finish(outcome, details or None)
    try:
        killed = svc.kill_client(_client(instance), client_id)
    except svc.ClientNotFound:
        record("failure", reason="not found")
        return f"Client {client_id} is no longer connected; nothing was killed.", "warning"
    except svc.OwnConnection:
        record("failure", reason="own connection")
        return f"Client {client_id} is the console's own connection; it was not killed.", \
            "warning"
    except (svc.redis_lib.RedisError, OSError) as exc:
        record("failure", reason=type(exc).__name__)
        return f"Redis ({instance}) did not kill client {client_id}: " \
               f"{type(exc).__name__}: {str(exc)[:200]}", "danger"
    record("success", addr=killed.get("addr"), name=killed.get("name"),
           last_command=killed.get("cmd"))
    return f"Killed client {client_id} ({killed.get('addr')}).", "success"


@callback(Output("redis-clients", "rowData", allow_duplicate=True),
          Output("redis-kill-target", "data", allow_duplicate=True),
          Output("redis-kill-open", "disabled", allow_duplicate=True),
          Output("redis-kill-selected", "children", allow_duplicate=True),
          Input(confirm_ids(KILL).confirm, "n_clicks"),
          State("redis-kill-target", "data"), State("redis-instance-name", "data"),
          prevent_initial_call=True)
def confirm_kill(n, target, instance):
    if not n:
        return no_update, no_update, no_update, no_update
    name, _notice = _instance(instance)
    message, kind = kill(target, name)
    push_toast(message, kind=kind)
    try:
        rows = ui.client_rows(svc.clients(_client(name)))
    except (svc.redis_lib.RedisError, OSError):
        rows = no_update
    return rows, None, True, ""


@callback(Output(confirm_ids(RESET).modal, "is_open"), Output("redis-reset-message", "children"),
          Input("redis-slowlog-reset-open", "n_clicks"), State("redis-instance-name", "data"),
          prevent_initial_call=True)
def open_reset(n, instance):
    if not n:
        return no_update, no_update
    return True, [html.P(f"This empties the slowlog of Redis ({instance}): the entries shown "
                         "are gone for good, for every tool that reads them.",
                         className="mb-2"),
                  html.P("The action is recorded in the audit trail.",
                         className="text-body-secondary small mb-0")]


def reset(instance: str) -> tuple[str, str]:
    """Reset the slowlog for the page: (toast message, kind); admin only, audited."""
    ops = _ops()
    target = f"redis:{instance}:slowlog"
    actor, refusal = action_allowed("admin", "redis_slowlog_reset", target)
    if actor is None:
        return f"Resetting the slowlog: {refusal}", "danger"
    entry = audit.begin(ops.store, actor=actor, action="redis_slowlog_reset", target=target)
    try:
        removed = svc.reset_slowlog(_client(instance))
    except (svc.redis_lib.RedisError, OSError) as exc:
        entry.finish("failure", {"reason": type(exc).__name__})
        return f"Redis ({instance}) did not reset its slowlog: {type(exc).__name__}: " \
               f"{str(exc)[:200]}", "danger"
    entry.finish("success", {"entries_removed": removed})
    return f"Slowlog reset: {removed:,} entr{'y' if removed == 1 else 'ies'} removed.", \
        "success"


@callback(Output("redis-slowlog", "rowData", allow_duplicate=True),
          Output("redis-slowlog-summary", "children", allow_duplicate=True),
          Input(confirm_ids(RESET).confirm, "n_clicks"),
          State("redis-instance-name", "data"), prevent_initial_call=True)
def confirm_reset(n, instance):
    if not n:
        return no_update, no_update
    name, _notice = _instance(instance)
    message, kind = reset(name)
    push_toast(message, kind=kind)
    try:
        slow = svc.slowlog(_client(name), SLOWLOG_LIMIT)
    except (svc.redis_lib.RedisError, OSError):
        return no_update, no_update
    return slow["entries"], ui.slowlog_summary(slow)
