"""Cache: @cached namespace stats, browsing and inspecting keys, clearing.

Callbacks are thin: read the inputs, call dashapp.services.cache (the same
functions /api/cache calls), hand the result to the builders in
dashapp.ui.cache. The Dash endpoint only needs a sign-in, so every change
checks the role here as its REST twin does (operator: delete a key, change a
TTL, warm or invalidate a namespace; admin: clear by pattern) and is audited
the same way. The Redis instance is `?instance=<name>` in the URL.
"""
from __future__ import annotations

import logging
import time
from typing import Any

import dash
import dash_bootstrap_components as dbc
import redis as redis_lib
from dash import ALL, Input, Output, State, callback, clientside_callback, ctx, dcc, html, no_update
from flask import current_app
from ops_agent.cache import keys as layout_keys
from sqlalchemy.exc import SQLAlchemyError

from dashapp.security.auth import action_allowed, current_principal
from dashapp.security.roles import role_allows
from dashapp.services import cache as svc
from dashapp.store import _short_error
from dashapp.ui import cache as ui
from dashapp.ui.components import (chart, confirm_dialog, confirm_ids, modal, page_header,
                                   range_picker,
                                   panel, push_toast, unavailable_card)
from dashapp.ui.placeholder import page_options

logger = logging.getLogger(__name__)

dash.register_page(__name__, **page_options("cache"))

REFRESH_MS = 5_000
PAGE_KEYS = 100
PAGE_BUDGET_S = 0.5      # the page may scan a little longer than the API to fill a page
MAX_LOADED = 10_000      # keys the grid keeps; beyond that, narrow the pattern
NEAR_END_ROWS = 20       # a scroll this close to the last loaded row loads the next page
DEFAULT_MINUTES = 60
CLEAR_TYPED = "delete"
CLEAR_ALL_TYPED = "delete all keys"

# Component ids (the grids' ids live in dashapp.ui.cache).
LOCATION = "cache-location"
INSTANCE = "cache-instance"
PICKER = "cache-instance-picker"
LIVE = "cache-live"
REFRESH = "cache-refresh"
REFRESH_NOW = "cache-refresh-now"
BUMP = "cache-stats-bump"
STATUS = "cache-status"
TABS = "cache-tabs"
STATS_BODY = "cache-stats-body"
CARDS = "cache-cards-wrap"
NS_CHART = "cache-ns-chart"
WARMERS = "cache-warmers"
NS_EMPTY = "cache-ns-empty"
NS_DRAWER = "cache-ns-drawer"
NS_BODY = "cache-ns-body"
NS_SELECTED = "cache-ns-selected"
NS_WARM = "cache-ns-warm"
NS_BROWSE = "cache-ns-browse"
NS_INVALIDATE = "cache-ns-invalidate-open"
PATTERN = "cache-pattern"
TYPE = "cache-type"
SEARCH = "cache-search"
SEARCH_REQUEST = "cache-search-request"
KEYS_STATE = "cache-keys-state"
SCROLL_MORE = "cache-keys-scroll-more"
KEYS_INFO = "cache-keys-info"
KEYS_MORE = "cache-keys-more"
KEYS_ERROR = "cache-keys-error"
KEY_DRAWER = "cache-key-drawer"
KEY_VIEW = "cache-key-view"
KEY_META = "cache-key-meta"
KEY_VALUE = "cache-key-value"
KEY_MORE = "cache-key-more"
KEY_REFRESH = "cache-key-refresh"
KEY_TTL = "cache-key-ttl"
KEY_TTL_SET = "cache-key-ttl-set"
KEY_PERSIST = "cache-key-persist"
KEY_DELETE = "cache-key-delete-open"
CLEAR_OPEN = "cache-clear-open"
CLEAR_MODAL = "cache-clear-modal"
CLEAR_PATTERN = "cache-clear-pattern"
CLEAR_COUNT = "cache-clear-count"
CLEAR_RESULT = "cache-clear-result"
CLEAR_GO = "cache-clear-go"
CLEAR_PENDING = "cache-clear-pending"
METRICS_RANGE = "cache-metrics-range"
METRICS_NOTICE = "cache-metrics-notice"
METRICS_BODY = "cache-metrics-body"
METRIC_CHARTS = ("cache-metrics-hit", "cache-metrics-ops", "cache-metrics-memory",
                 "cache-metrics-keys")

KEY_DELETE_DIALOG = confirm_ids("cache-key-delete")
CLEAR_DIALOG = confirm_ids("cache-clear-confirm")
CLEAR_ALL_DIALOG = confirm_ids("cache-clear-all-confirm")
INVALIDATE_DIALOG = confirm_ids("cache-ns-invalidate")
HIDDEN = {"display": "none"}


# ----------------------------------------------------------------- helpers

def _ops():
    return current_app.extensions["ops"]


def _prefix() -> str:
    return _ops().settings.cache_prefix


def _client(instance: str) -> redis_lib.Redis:
    return _ops().redis_named(instance).client


def _instance(value: Any) -> str:
    """A known instance name (unknown or missing: "default")."""
    return value if isinstance(value, str) and value in _ops().redis_instances else "default"


def _role() -> str | None:
    principal = current_principal()
    return principal.role if principal else None


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:200]}"


def _allowed(required: str, what: str) -> str | None:
    """The caller's name when their role allows `what`; else a toast, an audit
    entry (as the API's guard writes), and None."""
    actor, refusal = action_allowed(required, what, f"cache page: {what}")
    if actor is None:
        push_toast(f"{what}: {refusal}", "danger", title="Not allowed")
    return actor


def _failed(exc: BaseException, instance: str, what: str) -> None:
    """A failed action as a toast the user can read."""
    if svc.is_unavailable(exc):
        extra = (f" {exc.deleted:,} keys were deleted before it stopped."
                 if isinstance(exc, svc.ClearInterrupted) else "")
        cause = exc.cause if isinstance(exc, svc.ClearInterrupted) else exc
        message = f"Redis ({instance}) is unavailable: {_error_text(cause)}.{extra}"
    elif isinstance(exc, svc.KeyNotFound):
        message = "The key no longer exists: it expired or was deleted."
    elif isinstance(exc, (svc.CacheError, ValueError)):
        message = str(exc)
    else:
        message = f"Redis ({instance}) refused it: {_error_text(exc)}"
    logger.info("cache page: %s failed: %s", what, message)
    push_toast(f"{what} failed. {message}", "danger")


ACTION_ERRORS = (redis_lib.RedisError, OSError, svc.CacheError, ValueError)


# ------------------------------------------------------------------ stats

def render_stats(instance: str) -> tuple:
    """(status, body style, cards, namespace rows, chart, warmers, empty notice)."""
    try:
        stats = svc.cache_stats(_client(instance), _prefix())
    except (redis_lib.RedisError, OSError) as exc:
        logger.warning("cache page: Redis %s: %s", instance, _error_text(exc))
        text = (_error_text(exc) if svc.is_unavailable(exc)
                else f"Redis refused a command: {_error_text(exc)}")
        return (ui.unavailable(instance, text), HIDDEN, None, [], ui.namespace_figure(None),
                html.Div(), None)
    can_operate = role_allows(_role(), "operator")
    return (None, {}, ui.stats_cards(stats), ui.namespace_rows(stats),
            ui.namespace_figure(stats), ui.warmers_list(stats, can_operate),
            ui.namespace_empty(stats))


def render_metrics(instance: str, minutes: int) -> tuple:
    """(notice, body style, hit-rate, ops, memory and keys figures)."""
    try:
        data = svc.metrics(_ops().store, instance, minutes)
    except SQLAlchemyError as exc:
        empty = ui.hit_rate_figure([])
        return (unavailable_card("The console's store", _short_error(exc)), HIDDEN,
                empty, empty, empty, empty)
    series = data["series"]
    notice = None if series else ui.metrics_notice(svc.metrics_note(_ops().settings.scheduler))
    return (notice, {} if series else HIDDEN, ui.hit_rate_figure(series),
            ui.ops_figure(series), ui.memory_figure(series), ui.keys_figure(series))


# ------------------------------------------------------------------- keys

def search_keys(instance: str, pattern: str | None, type_: str | None,
                state: dict | None = None, rows: list | None = None) -> tuple:
    """(rows, state, info line, Load more disabled, error) for a new search
    (`state` None) or the next page of the current one."""
    pattern = (pattern or "").strip() or "*"
    if len(pattern) > svc.MAX_PATTERN:
        return (no_update, no_update, no_update, no_update,
                html.P(f"The pattern is longer than {svc.MAX_PATTERN} characters.",
                       className="text-danger small mb-0"))
    cursor = 0 if state is None else int(state.get("cursor") or 0)
    type_ = type_ if type_ in svc.TYPES else None
    try:
        page = svc.scan_keys(_client(instance), pattern, cursor, PAGE_KEYS, type_,
                             budget_s=PAGE_BUDGET_S)
    except (redis_lib.RedisError, OSError) as exc:
        return (no_update, no_update, no_update, no_update,
                ui.unavailable(instance, _error_text(exc)) if svc.is_unavailable(exc)
                else html.P(f"Redis refused the SCAN: {_error_text(exc)}",
                            className="text-danger small mb-0"))
    merged: dict[str, dict] = {}
    for row in (rows or []) if state is not None else []:
        merged.setdefault(row.get("key_b64"), row)
    for row in ui.key_rows(page["keys"]):
        merged.setdefault(row["key_b64"], row)  # a page read twice adds nothing twice
    new = list(merged.values())
    capped = len(new) >= MAX_LOADED and not page["done"]
    new = new[:MAX_LOADED]
    state = {"instance": instance, "pattern": pattern, "type": type_,
             "cursor": page["cursor"], "done": page["done"], "loaded": len(new),
             "capped": capped}
    return new, state, ui.keys_info(state), page["done"] or capped, None


def _near_end(event: dict | None) -> bool:
    data = (event or {}).get("data") or {}
    try:
        return int(data.get("last", -1)) >= int(data.get("rows", 0)) - NEAR_END_ROWS
    except (TypeError, ValueError):
        return False


# ----------------------------------------------------------- key drawer

def open_key(instance: str, key_b64: str) -> dict:
    """The drawer's view of a key: its details and the first page of its value."""
    detail = svc.key_detail(_client(instance), svc.key_from(key_b64=key_b64),
                            "0", PAGE_KEYS)
    return _view(instance, detail)


def _view(instance: str, detail: dict, previous: dict | None = None) -> dict:
    items = detail.pop("items", None)
    text = detail.pop("value", None)
    view = {"instance": instance, "key_b64": detail["key_b64"], "detail": detail,
            "next_cursor": detail.get("next_cursor"),
            "items": (previous or {}).get("items", []) + (items or []),
            "text": (previous or {}).get("text", "") + (text or "")}
    view["loaded_bytes"] = len(view["text"].encode("utf-8", "replace"))
    return view


def more_of_key(view: dict) -> dict:
    """The view with the value's next page appended."""
    detail = svc.key_detail(_client(view["instance"]), svc.key_from(key_b64=view["key_b64"]),
                            view["next_cursor"], PAGE_KEYS)
    if detail["type"] != view["detail"]["type"]:
        raise svc.KeyChanged("the key changed type; it was reloaded")
    return _view(view["instance"], detail, view)


def _drawer(view: dict, is_open: Any = True) -> tuple:
    more = view.get("next_cursor") is not None and (
        view["detail"]["type"] != "string" or view["loaded_bytes"] < ui.MAX_STRING_SHOWN)
    return (is_open, view, ui.key_meta(view), ui.key_value(view), {} if more else HIDDEN,
            view["detail"].get("ttl"))


def _gone(message: str) -> tuple:
    return (True, None, html.P(message, className="text-body-secondary", id="cache-key-gone"),
            None, HIDDEN, None)


# ------------------------------------------------------------------ layout

def _tabs_stats(stats: tuple, can_operate: bool) -> html.Div:
    _status, style, cards, rows, figure, warmers, empty = stats
    return html.Div(id=STATS_BODY, style=style, className="ops-stack mt-3", children=[
        html.Div([html.Div(cards, id=CARDS), html.Div(empty, id=NS_EMPTY)]),
        panel(ui.namespace_grid(rows), title="Namespaces",
              subtitle="Per @cached namespace. Click a namespace to warm, invalidate or "
                       "browse its keys."),
        html.Div(className="ops-cols", children=[
            panel(chart(NS_CHART, figure, height=280, filename="cache-hits-misses"),
                  title="Hits and misses", subtitle="By namespace (busiest 15)"),
            panel(html.Div(warmers, id=WARMERS), title="Warmers",
                  subtitle="Namespaces a host process can refill on request"
                           + ("" if can_operate else " (warming needs the operator role)")),
        ]),
    ])


def _tabs_keys(instance: str, can_admin: bool, redis_up: bool) -> html.Div:
    rows, state, info, more_disabled, error = (
        search_keys(instance, "*", None) if redis_up else (no_update,) * 5)
    if rows is no_update:
        rows, state, info, more_disabled = [], None, "Press Search to list keys.", True
        error = error if redis_up else None
    form = html.Div([
        html.Label([html.Span("Pattern", className="form-label d-block mb-1"),
                    dcc.Input(id=PATTERN, type="text", value="*", debounce=False,
                              maxLength=svc.MAX_PATTERN, autoComplete="off",
                              spellCheck=False, placeholder="e.g. cache:products:*",
                              className="ops-cache-pattern")],
                   className="ops-cache-form__pattern mb-0"),
        html.Label([html.Span("Type", className="form-label d-block mb-1"),
                    dbc.Select(id=TYPE, options=ui.TYPE_OPTIONS, value=ui.ALL_TYPES)],
                   className="ops-cache-form__type mb-0"),
        html.Button([html.I(className="bi bi-search me-1", **{"aria-hidden": "true"}),
                     "Search"], id=SEARCH, n_clicks=0, type="button",
                    className="btn btn-primary ops-cache-form__go"),
        html.Button([html.I(className="bi bi-trash3 me-1", **{"aria-hidden": "true"}),
                     "Clear by pattern…"], id=CLEAR_OPEN, n_clicks=0, type="button",
                    disabled=not can_admin,
                    title=("Count, then delete the keys matching a pattern" if can_admin
                           else "Needs the admin role"),
                    className="btn btn-outline-danger ops-cache-form__clear"),
    ], className="ops-cache-form")
    return html.Div(className="mt-3", children=panel([
        form,
        html.P(["Glob syntax: ", html.Code("*"), " any characters, ", html.Code("?"),
                " one, ", html.Code("[abc]"), " one of a set, ", html.Code("\\"),
                " escapes. Keys come from SCAN, 100 at a time; click a key to inspect it."],
               className="small text-body-secondary mt-2 mb-2"),
        html.Div(error, id=KEYS_ERROR),
        ui.keys_grid(rows, info, html.Button(
            [html.I(className="bi bi-chevron-double-down me-1", **{"aria-hidden": "true"}),
             "Load more"], id=KEYS_MORE, n_clicks=0, type="button", disabled=more_disabled,
            className="btn btn-sm btn-outline-secondary")),
        dcc.Store(id=KEYS_STATE, data=state),
        dcc.Store(id=SEARCH_REQUEST, data=None),
        dcc.Store(id=SCROLL_MORE, data=None),
    ], title="Keys"))


def _tabs_metrics() -> html.Div:
    picker = range_picker(METRICS_RANGE, DEFAULT_MINUTES, ui.RANGES)
    charts = [("Hit rate", "@cached and Redis keyspace, between samples", METRIC_CHARTS[0]),
              ("Operations", "Commands per second", METRIC_CHARTS[1]),
              ("Memory", "used_memory", METRIC_CHARTS[2]),
              ("Keys", "All keys in this Redis", METRIC_CHARTS[3])]
    return html.Div(className="ops-stack mt-3", children=[
        html.Div([html.Span("Range", className="small text-body-secondary me-2"), picker],
                 className="d-flex align-items-center flex-wrap gap-1", role="group",
                 **{"aria-label": "Time range"}),
        html.Div([
            html.Div(id=METRICS_NOTICE),
            html.Div(id=METRICS_BODY, style=HIDDEN, className="ops-cols", children=[
                panel(chart(cid, ui.hit_rate_figure([]), height=240, filename=cid),
                      title=title, subtitle=subtitle) for title, subtitle, cid in charts]),
        ]),
    ])


def _key_drawer(can_operate: bool) -> dbc.Offcanvas:
    need = None if can_operate else "Needs the operator role"
    return dbc.Offcanvas(id=KEY_DRAWER, title="Key", placement="end", is_open=False,
                         scrollable=True, class_name="ops-cache-drawer", children=[
        dcc.Loading(html.Div(id=KEY_META), delay_show=300),
        html.Div([
            html.Label([html.Span("TTL (seconds)", className="visually-hidden"),
                        dcc.Input(id=KEY_TTL, type="number", min=1, step=1,
                                  placeholder="seconds", disabled=not can_operate,
                                  className="ops-cache-ttl")], className="mb-0"),
            html.Button("Set TTL", id=KEY_TTL_SET, n_clicks=0, type="button",
                        disabled=not can_operate, title=need or "Expire the key in N seconds",
                        className="btn btn-sm btn-outline-primary"),
            html.Button("Remove expiry", id=KEY_PERSIST, n_clicks=0, type="button",
                        disabled=not can_operate, title=need or "PERSIST: keep the key",
                        className="btn btn-sm btn-outline-secondary"),
            html.Button([html.I(className="bi bi-arrow-clockwise", **{"aria-hidden": "true"})],
                        id=KEY_REFRESH, n_clicks=0, type="button", title="Reload this key",
                        className="btn btn-sm btn-outline-secondary",
                        **{"aria-label": "Reload this key"}),
            html.Button([html.I(className="bi bi-trash3 me-1", **{"aria-hidden": "true"}),
                         "Delete…"], id=KEY_DELETE, n_clicks=0, type="button",
                        disabled=not can_operate, title=need or "Delete this key",
                        className="btn btn-sm btn-outline-danger ms-auto"),
        ], className="ops-cache-keyactions"),
        html.H3("Value", className="h6 mt-3"),
        dcc.Loading(html.Div(id=KEY_VALUE), delay_show=300),
        html.Button("Load more", id=KEY_MORE, n_clicks=0, type="button", style=HIDDEN,
                    className="btn btn-sm btn-outline-secondary mt-2"),
        dcc.Store(id=KEY_VIEW, data=None),
    ])


def _ns_drawer(can_operate: bool) -> dbc.Offcanvas:
    need = None if can_operate else "Needs the operator role"
    return dbc.Offcanvas(id=NS_DRAWER, title="Namespace", placement="end", is_open=False,
                         scrollable=True, class_name="ops-cache-drawer", children=[
        html.Div(id=NS_BODY),
        html.Div([
            html.Button([html.I(className="bi bi-fire me-1", **{"aria-hidden": "true"}),
                         "Warm now"], id=NS_WARM, n_clicks=0, type="button",
                        disabled=not can_operate, title=need or "Queue a warm run",
                        className="btn btn-sm btn-outline-primary"),
            html.Button([html.I(className="bi bi-search me-1", **{"aria-hidden": "true"}),
                         "Browse keys"], id=NS_BROWSE, n_clicks=0, type="button",
                        className="btn btn-sm btn-outline-secondary"),
            html.Button([html.I(className="bi bi-x-circle me-1", **{"aria-hidden": "true"}),
                         "Invalidate namespace…"], id=NS_INVALIDATE, n_clicks=0,
                        type="button", disabled=not can_operate,
                        title=need or "Delete every entry of this namespace",
                        className="btn btn-sm btn-outline-danger"),
        ], className="ops-cache-keyactions mt-3"),
        dcc.Store(id=NS_SELECTED, data=None),
    ])


def _clear_modal() -> dbc.Modal:
    body = html.Div([
        html.P("Counts the matching keys first (a dry run); nothing is deleted until you "
               "confirm. The delete walks SCAN and UNLINKs 500 keys at a time, so Redis "
               "is never blocked. Clearing every key takes the pattern * and a typed "
               "confirmation.", className="small text-body-secondary"),
        html.Label([html.Span("Pattern", className="form-label d-block mb-1"),
                    dcc.Input(id=CLEAR_PATTERN, type="text", value="", debounce=False,
                              maxLength=svc.MAX_PATTERN, autoComplete="off",
                              spellCheck=False, className="w-100")],
                   className="d-block mb-2"),
        dcc.Loading(html.Div(ui.clear_result(None), id=CLEAR_RESULT), delay_show=200),
        dcc.Store(id=CLEAR_PENDING, data=None),
    ])
    footer = [
        html.Button("Count matching keys", id=CLEAR_COUNT, n_clicks=0, type="button",
                    className="btn btn-outline-primary"),
        html.Button("Delete matching keys…", id=CLEAR_GO, n_clicks=0, type="button",
                    disabled=True, className="btn btn-danger"),
    ]
    return modal(CLEAR_MODAL, "Clear keys by pattern", body, footer)


def _dialogs() -> list:
    return [
        confirm_dialog("cache-key-delete", "Delete this key?",
                       html.P(["The key ", html.Code(id="cache-key-delete-name"),
                               " is deleted from Redis. This cannot be undone."],
                              className="ops-confirm__message"),
                       confirm_label="Delete key"),
        confirm_dialog("cache-clear-confirm", "Delete the matching keys?",
                       html.Div(id="cache-clear-confirm-text", className="ops-confirm__message"),
                       confirm_label="Delete keys", typed_confirmation=CLEAR_TYPED),
        confirm_dialog("cache-clear-all-confirm", "Delete every key in this Redis?",
                       html.Div(id="cache-clear-all-text", className="ops-confirm__message"),
                       confirm_label="Delete every key", typed_confirmation=CLEAR_ALL_TYPED),
        confirm_dialog("cache-ns-invalidate", "Invalidate this namespace?",
                       html.Div(id="cache-ns-invalidate-text",
                                className="ops-confirm__message"),
                       confirm_label="Invalidate"),
    ]


def layout(instance: str | None = None, **_query):
    ops = _ops()
    names = list(ops.redis_instances)
    current = _instance(instance)
    role = _role()
    can_operate, can_admin = role_allows(role, "operator"), role_allows(role, "admin")
    stats = render_stats(current)
    notice = None
    if instance and instance != current:
        notice = html.Div([html.I(className="bi bi-exclamation-triangle me-2",
                                  **{"aria-hidden": "true"}),
                           f"No Redis instance called {instance!r}; showing {current!r}."],
                          className="alert alert-warning py-2", role="alert")
    actions = [
        ui.instance_picker(PICKER, names, current),
        dbc.Switch(id=LIVE, value=True, label="Live", class_name="ops-cache-live mb-0"),
        html.Button([html.I(className="bi bi-arrow-clockwise", **{"aria-hidden": "true"}),
                     html.Span("Refresh", className="ops-cache-refresh__label")],
                    id=REFRESH_NOW, n_clicks=0, type="button", title="Refresh now",
                    className="btn btn-sm btn-outline-secondary"),
    ]
    return html.Div([
        dcc.Location(id=LOCATION, refresh="callback-nav"),
        dcc.Store(id=INSTANCE, data=current),
        dcc.Store(id=BUMP, data=None),
        page_header("Cache", "Hit rates per @cached namespace; browse, inspect and clear "
                    "keys. Live figures refresh every 5 seconds.", actions=actions),
        notice,
        html.Div(stats[0], id=STATUS),
        dbc.Tabs(id=TABS, active_tab="stats", class_name="ops-cache-tabs", children=[
            dbc.Tab(_tabs_stats(stats, can_operate), label="Stats", tab_id="stats"),
            dbc.Tab(_tabs_keys(current, can_admin, stats[0] is None), label="Keys",
                    tab_id="keys"),
            dbc.Tab(_tabs_metrics(), label="Metrics", tab_id="metrics"),
        ]),
        _key_drawer(can_operate),
        _ns_drawer(can_operate),
        _clear_modal(),
        *_dialogs(),
        dcc.Interval(id=REFRESH, interval=REFRESH_MS),
    ], className="ops-cache")


# --------------------------------------------------------------- callbacks

clientside_callback(
    """function (name) {
        if (!name) { return window.dash_clientside.no_update; }
        return name === "default" ? "" : "?instance=" + encodeURIComponent(name);
    }""",
    Output(LOCATION, "search"), Input(PICKER, "value"), prevent_initial_call=True)

clientside_callback("function (on) { return !on; }",
                    Output(REFRESH, "disabled"), Input(LIVE, "value"))


@callback(Output(STATUS, "children"), Output(STATS_BODY, "style"), Output(CARDS, "children"),
          Output(ui.NS_GRID, "rowData"), Output(NS_CHART, "figure"),
          Output(WARMERS, "children"), Output(NS_EMPTY, "children"),
          Input(REFRESH, "n_intervals"), Input(REFRESH_NOW, "n_clicks"), Input(BUMP, "data"),
          State(INSTANCE, "data"), prevent_initial_call=True)
def refresh_stats(_n, _clicks, _bump, instance):
    """Live refresh: also what shows an outage, and clears it when Redis is back."""
    return render_stats(_instance(instance))


@callback(Output(METRICS_NOTICE, "children"), Output(METRICS_BODY, "style"),
          *(Output(cid, "figure") for cid in METRIC_CHARTS),
          Input(TABS, "active_tab"), Input(METRICS_RANGE, "value"),
          Input(REFRESH, "n_intervals"), Input(REFRESH_NOW, "n_clicks"),
          State(INSTANCE, "data"), prevent_initial_call=True)
def refresh_metrics(tab, minutes, _n, _clicks, instance):
    if tab != "metrics":
        return (no_update,) * 6
    minutes = minutes if minutes in ui.RANGE_LABELS else DEFAULT_MINUTES
    return render_metrics(_instance(instance), minutes)


# The grid reports every end of a scroll, including the ones it makes itself
# when it is shown or its rows are replaced. Only a scroll near the end of a
# search with more to scan asks the server for the next page: a needless
# request of keys_page while a search runs makes Dash drop that search's
# answer (it keeps only the newest call of a callback), and the search was
# lost, e.g. "Browse keys" showed the previous keys.
clientside_callback(
    """function (event, state) {
        const d = (event || {}).data || {};
        const last = Number(d.last), rows = Number(d.rows);
        if (!state || state.done || state.capped || !(last >= rows - %d)) {
            return window.dash_clientside.no_update;
        }
        return {data: {last: last, rows: rows}, at: Date.now()};
    }""" % NEAR_END_ROWS,
    Output(SCROLL_MORE, "data"), Input(ui.KEYS_GRID, "eventData"), State(KEYS_STATE, "data"),
    prevent_initial_call=True)


@callback(Output(ui.KEYS_GRID, "rowData"), Output(KEYS_STATE, "data"),
          Output(KEYS_INFO, "children"), Output(KEYS_MORE, "disabled"),
          Output(KEYS_ERROR, "children"),
          Input(SEARCH, "n_clicks"), Input(PATTERN, "n_submit"), Input(TYPE, "value"),
          Input(SEARCH_REQUEST, "data"), Input(REFRESH_NOW, "n_clicks"),
          Input(KEYS_MORE, "n_clicks"), Input(SCROLL_MORE, "data"),
          State(PATTERN, "value"), State(KEYS_STATE, "data"), State(ui.KEYS_GRID, "rowData"),
          State(INSTANCE, "data"), State(TABS, "active_tab"), prevent_initial_call=True)
def keys_page(_search, _submit, type_, _request, _refresh, _more, event, pattern, state, rows,
              instance, tab):
    """A new search (button, Enter, type, a namespace's "Browse keys", after a
    clear, Refresh on this tab), or the next page (Load more, or the grid
    scrolled to its end)."""
    instance = _instance(instance)
    trigger = ctx.triggered_id
    if not any(t.get("value") for t in ctx.triggered):
        # The call Dash makes when the page's content arrives (no click, no
        # request yet): the layout already lists the first page of keys.
        return (no_update,) * 5
    if trigger == REFRESH_NOW and tab != "keys":
        return (no_update,) * 5
    if trigger in (KEYS_MORE, SCROLL_MORE):
        if not state or state.get("done") or state.get("capped"):
            return (no_update,) * 5
        if trigger == SCROLL_MORE and not _near_end(event):
            return (no_update,) * 5
        return search_keys(instance, state["pattern"], state.get("type"), state, rows)
    return search_keys(instance, pattern, type_)


@callback(Output(KEY_DRAWER, "is_open"), Output(KEY_VIEW, "data"), Output(KEY_META, "children"),
          Output(KEY_VALUE, "children"), Output(KEY_MORE, "style"), Output(KEY_TTL, "value"),
          Input(ui.KEYS_GRID, "cellClicked"), Input(KEY_MORE, "n_clicks"),
          Input(KEY_REFRESH, "n_clicks"), Input(KEY_TTL_SET, "n_clicks"),
          Input(KEY_PERSIST, "n_clicks"),
          State(KEY_VIEW, "data"), State(KEY_TTL, "value"), State(INSTANCE, "data"),
          prevent_initial_call=True)
def key_drawer(clicked, _more, _refresh, _ttl_set, _persist, view, ttl, instance):
    """Open a key; page through its value; reload it; change its TTL."""
    trigger = ctx.triggered_id
    instance = _instance(instance)
    if trigger == ui.KEYS_GRID:
        key_b64 = (clicked or {}).get("rowId")
        if not key_b64:
            return (no_update,) * 6
        try:
            return _drawer(open_key(instance, key_b64))
        except svc.KeyNotFound:
            return _gone("This key no longer exists: it expired or was deleted.")
        except ACTION_ERRORS as exc:
            _failed(exc, instance, "Reading the key")
            return (no_update,) * 6
    if not view:
        return (no_update,) * 6
    instance = view["instance"]
    try:
        if trigger == KEY_MORE:
            return _drawer(more_of_key(view), no_update)
        if trigger in (KEY_TTL_SET, KEY_PERSIST):
            new_ttl = None if trigger == KEY_PERSIST else ttl
            if trigger == KEY_TTL_SET and (not isinstance(new_ttl, (int, float))
                                          or new_ttl < 1 or new_ttl != int(new_ttl)):
                push_toast("Enter the TTL as a whole number of seconds, 1 or more.",
                           "warning")
                return (no_update,) * 6
            change_ttl(view, None if new_ttl is None else int(new_ttl))
        return _drawer(open_key(instance, view["key_b64"]), no_update)
    except svc.KeyNotFound:
        return _gone("This key no longer exists: it expired or was deleted.")
    except ACTION_ERRORS as exc:
        _failed(exc, instance, "Reading the key" if trigger in (KEY_MORE, KEY_REFRESH)
                else "Changing the TTL")
        return (no_update,) * 6


def change_ttl(view: dict, ttl: int | None) -> int | None:
    """Set (or with None remove) the TTL of the drawer's key: operator, audited.
    Returns the new TTL, or raises; on a refused role returns no_update."""
    actor = _allowed("operator", "Changing a TTL")
    if actor is None:
        return no_update
    instance, key = view["instance"], svc.key_from(key_b64=view["key_b64"])
    with svc.audited(_ops().store, actor=actor, action="cache_key_ttl",
                     target=svc.audit_target(instance, key),
                     details={"instance": instance, "ttl": ttl, "via": "page"}) as info:
        info["ttl_now"] = svc.set_ttl(_client(instance), key, ttl)
    push_toast("Expiry removed." if info["ttl_now"] is None
               else f"The key now expires in {ui.fmt_ttl(info['ttl_now'])}.")
    return info["ttl_now"]


@callback(Output(KEY_DELETE_DIALOG.modal, "is_open"), Output("cache-key-delete-name", "children"),
          Input(KEY_DELETE, "n_clicks"), State(KEY_VIEW, "data"), prevent_initial_call=True)
def ask_delete(n_clicks, view):
    if not n_clicks or not view:
        return no_update, no_update
    return True, ui.shown(view["detail"]["key"])


@callback(Input(KEY_DELETE_DIALOG.confirm, "n_clicks"), State(KEY_VIEW, "data"),
          State(ui.KEYS_GRID, "rowData"), State(KEYS_STATE, "data"),
          prevent_initial_call=True)
def delete_confirmed(n_clicks, view, rows, state):
    """Delete the drawer's key (operator, audited), close the drawer, drop its row."""
    if not n_clicks or not view:
        return
    delete_from_view(view, rows, state)


def delete_from_view(view: dict, rows: list | None, state: dict | None) -> bool:
    actor = _allowed("operator", "Deleting a key")
    if actor is None:
        return False
    instance, key = view["instance"], svc.key_from(key_b64=view["key_b64"])
    try:
        with svc.audited(_ops().store, actor=actor, action="cache_key_delete",
                         target=svc.audit_target(instance, key),
                         details={"instance": instance, "via": "page"}) as info:
            info["deleted"] = svc.delete_key(_client(instance), key)
    except ACTION_ERRORS as exc:
        _failed(exc, instance, "Deleting the key")
        return False
    push_toast(f"Deleted {ui.shown(view['detail']['key'])}.")
    dash.set_props(KEY_DRAWER, {"is_open": False})
    if rows:
        left = [r for r in rows if r.get("key_b64") != view["key_b64"]]
        dash.set_props(ui.KEYS_GRID, {"rowData": left})
        if state:
            state = {**state, "loaded": len(left)}
            dash.set_props(KEYS_STATE, {"data": state})
            dash.set_props(KEYS_INFO, {"children": ui.keys_info(state)})
    return True


# ------------------------------------------------------ clear by pattern

def count_for_clear(instance: str, pattern: str) -> tuple[dict | None, Any]:
    """(pending clear, what to show) for a dry run of `pattern`."""
    pattern = (pattern or "").strip()
    try:
        svc.check_clear(pattern, dry_run=True)
        result = svc.count_matching(_client(instance), pattern)
    except svc.PatternRefused as exc:
        return None, html.P(str(exc), className="text-danger mb-0", id="cache-clear-refused")
    except (redis_lib.RedisError, OSError) as exc:
        return None, (ui.unavailable(instance, _error_text(exc)) if svc.is_unavailable(exc)
                      else html.P(f"Redis refused the SCAN: {_error_text(exc)}",
                                  className="text-danger mb-0"))
    pending = {"instance": instance, "pattern": pattern, "matched": result["matched"]}
    return pending, ui.clear_result(result)


@callback(Output(CLEAR_MODAL, "is_open"), Output(CLEAR_PATTERN, "value"),
          Output(CLEAR_RESULT, "children"), Output(CLEAR_GO, "disabled"),
          Output(CLEAR_GO, "children"), Output(CLEAR_PENDING, "data"),
          Output(CLEAR_DIALOG.modal, "is_open"), Output(CLEAR_ALL_DIALOG.modal, "is_open"),
          Output("cache-clear-confirm-text", "children"),
          Output("cache-clear-all-text", "children"),
          Input(CLEAR_OPEN, "n_clicks"), Input(CLEAR_COUNT, "n_clicks"),
          Input(CLEAR_PATTERN, "value"), Input(CLEAR_GO, "n_clicks"),
          State(PATTERN, "value"), State(CLEAR_PENDING, "data"), State(INSTANCE, "data"),
          prevent_initial_call=True)
def clear_flow(_open, _count, clear_pattern, _go, keys_pattern, pending, instance):
    """Open the dialog with the search pattern, count (dry run), then ask for
    the typed confirmation ("delete", or "delete all keys" for *)."""
    instance = _instance(instance)
    trigger = ctx.triggered_id
    keep = (no_update,) * 10
    idle = ("Delete matching keys…", None)
    if trigger == CLEAR_OPEN:
        if _allowed("admin", "Clearing keys") is None:
            return keep
        return (True, (keys_pattern or "*").strip() or "*", ui.clear_result(None), True,
                *idle, False, False, no_update, no_update)
    if trigger == CLEAR_PATTERN:
        if pending and pending.get("pattern") == (clear_pattern or "").strip():
            return keep
        return (no_update, no_update, ui.clear_result(None), True, *idle,
                no_update, no_update, no_update, no_update)
    if trigger == CLEAR_COUNT:
        found, shown = count_for_clear(instance, clear_pattern)
        go = bool(found and found["matched"])
        label = (f"Delete {found['matched']:,} key{'s' if found['matched'] != 1 else ''}…"
                 if go else "Delete matching keys…")
        return (no_update, no_update, shown, not go, label, found,
                no_update, no_update, no_update, no_update)
    if trigger == CLEAR_GO:
        if not pending or _allowed("admin", "Clearing keys") is None:
            return keep
        text = [html.P([f"{pending['matched']:,} keys matched ", html.Code(pending["pattern"]),
                        f" on Redis ({pending['instance']}) a moment ago. Every key matching "
                        "it now is deleted; this cannot be undone."], className="mb-0")]
        everything = pending["pattern"] == "*"
        return (False, no_update, no_update, no_update, no_update, no_update,
                not everything, everything,
                no_update if everything else text, text if everything else no_update)
    return keep


@callback(Input(CLEAR_DIALOG.confirm, "n_clicks"), Input(CLEAR_ALL_DIALOG.confirm, "n_clicks"),
          State(CLEAR_PENDING, "data"), prevent_initial_call=True)
def clear_confirmed(n_some, n_all, pending):
    """Run the confirmed clear (admin, audited), report it, reload the keys."""
    if not pending or not (n_some or n_all):
        return
    everything = ctx.triggered_id == CLEAR_ALL_DIALOG.confirm
    run_clear(pending, confirm="*" if everything else None)


def run_clear(pending: dict, confirm: str | None = None) -> dict | None:
    actor = _allowed("admin", "Clearing keys")
    if actor is None:
        return None
    instance, pattern = _instance(pending.get("instance")), pending["pattern"]
    try:
        svc.check_clear(pattern, dry_run=False, confirm=confirm)
        with svc.audited(_ops().store, actor=actor, action="cache_clear",
                         target=f"redis:{instance}:{pattern}"[:255],
                         details={"instance": instance, "pattern": pattern,
                                  "via": "page"}) as info:
            try:
                result = svc.clear_pattern(_client(instance), pattern)
            except svc.ClearInterrupted as exc:
                info["deleted"] = exc.deleted
                raise
            info["deleted"] = result["deleted"]
    except ACTION_ERRORS as exc:
        _failed(exc, instance, "Clearing keys")
        return None
    n = result["deleted"]
    push_toast(f"Deleted {n:,} key{'s' if n != 1 else ''} matching {pattern} "
               f"in {result['seconds']:.1f} s.")
    dash.set_props(CLEAR_PENDING, {"data": None})
    dash.set_props(SEARCH_REQUEST, {"data": time.time()})
    dash.set_props(BUMP, {"data": time.time()})
    return result


# ------------------------------------------------------------- namespaces

def namespace_view(instance: str, namespace: str) -> tuple[dict | None, Any]:
    """(row, drawer body) of one namespace, fresh from Redis."""
    try:
        stats = svc.cache_stats(_client(instance), _prefix())
    except (redis_lib.RedisError, OSError) as exc:
        return None, ui.unavailable(instance, _error_text(exc))
    row = next((r for r in stats["namespaces"] if r["namespace"] == namespace), None)
    return row, ui.namespace_detail(row, _prefix())


@callback(Output(NS_DRAWER, "is_open"), Output(NS_SELECTED, "data"), Output(NS_BODY, "children"),
          Output(NS_WARM, "disabled"), Output(NS_WARM, "title"),
          Input(ui.NS_GRID, "cellClicked"), State(INSTANCE, "data"), prevent_initial_call=True)
def open_namespace(clicked, instance):
    namespace = (clicked or {}).get("rowId")
    if not namespace:
        return (no_update,) * 5
    row, body = namespace_view(_instance(instance), namespace)
    can = role_allows(_role(), "operator")
    has_warmer = bool(row and row.get("warmer"))
    title = ("Needs the operator role" if not can else "Queue a warm run" if has_warmer
             else "No warmer is registered for this namespace")
    return True, namespace, body, not (can and has_warmer), title


@callback(Input({"type": "cache-warm", "ns": ALL}, "n_clicks"), Input(NS_WARM, "n_clicks"),
          State(NS_SELECTED, "data"), State(INSTANCE, "data"), prevent_initial_call=True)
def warm_clicked(_list_clicks, _drawer_click, selected, instance):
    """"Warm now", from the warmers list or the namespace drawer."""
    trigger = ctx.triggered_id
    if not ctx.triggered or not ctx.triggered[0].get("value"):
        return  # buttons re-drawn by the live refresh, not clicked
    namespace = trigger["ns"] if isinstance(trigger, dict) else selected
    if namespace:
        warm(_instance(instance), namespace)


def warm(instance: str, namespace: str) -> dict | None:
    """Queue a warm request (operator, audited) and say so."""
    actor = _allowed("operator", "Warming a namespace")
    if actor is None:
        return None
    try:
        with svc.audited(_ops().store, actor=actor, action="cache_warm",
                         target=f"redis:{instance}:{namespace}"[:255],
                         details={"instance": instance, "via": "page"}) as info:
            result = svc.request_warm(_client(instance), _prefix(), namespace, actor)
            info["request_id"] = result["id"]
    except ACTION_ERRORS as exc:
        _failed(exc, instance, f"Warming {namespace}")
        return None
    push_toast(f"Warm run of {namespace} requested (request {result['id'][:8]}); its "
               "result shows under Warmers once a host process has run it.", "info",
               title="Queued")
    dash.set_props(BUMP, {"data": time.time()})
    return result


@callback(Output(INVALIDATE_DIALOG.modal, "is_open"),
          Output("cache-ns-invalidate-text", "children"),
          Input(NS_INVALIDATE, "n_clicks"), State(NS_SELECTED, "data"),
          prevent_initial_call=True)
def ask_invalidate(n_clicks, namespace):
    if not n_clicks or not namespace:
        return no_update, no_update
    return True, html.P(["Every entry of ", html.Code(namespace), " and its index are "
                         "deleted (in batches, Redis is not blocked); the application "
                         "recomputes values on its next misses."], className="mb-0")


@callback(Input(INVALIDATE_DIALOG.confirm, "n_clicks"), State(NS_SELECTED, "data"),
          State(INSTANCE, "data"), prevent_initial_call=True)
def invalidate_confirmed(n_clicks, namespace, instance):
    if n_clicks and namespace:
        invalidate(_instance(instance), namespace)


def invalidate(instance: str, namespace: str) -> dict | None:
    """Invalidate a namespace (operator, audited) and say how many entries went."""
    actor = _allowed("operator", "Invalidating a namespace")
    if actor is None:
        return None
    try:
        with svc.audited(_ops().store, actor=actor, action="cache_invalidate",
                         target=f"redis:{instance}:{namespace}"[:255],
                         details={"instance": instance, "via": "page"}) as info:
            result = svc.invalidate_namespace(_client(instance), _prefix(), namespace)
            info["deleted"] = result["deleted"]
    except ACTION_ERRORS as exc:
        _failed(exc, instance, f"Invalidating {namespace}")
        return None
    push_toast(f"Invalidated {namespace}: {result['deleted']:,} entries deleted.")
    dash.set_props(NS_DRAWER, {"is_open": False})
    dash.set_props(BUMP, {"data": time.time()})
    return result


@callback(Input(NS_BROWSE, "n_clicks"), State(NS_SELECTED, "data"), prevent_initial_call=True)
def browse_namespace(n_clicks, namespace):
    """Show the namespace's keys in the Keys tab."""
    if not n_clicks or not namespace:
        return
    dash.set_props(PATTERN, {"value": layout_keys.namespace_pattern(_prefix(), namespace)})
    dash.set_props(TYPE, {"value": ui.ALL_TYPES})
    dash.set_props(TABS, {"active_tab": "keys"})
    dash.set_props(NS_DRAWER, {"is_open": False})
    dash.set_props(SEARCH_REQUEST, {"data": time.time()})
