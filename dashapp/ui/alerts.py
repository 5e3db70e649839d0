"""Pure builders for the Alerts page and the overview's alerts strip:
dashapp.services.alerts results in, components out. Rule names, targets
and messages are user or host text: always rendered as text (escaped by
React), never as HTML or markdown."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import dash_bootstrap_components as dbc
from dash import dcc, html

from dashapp.services.alerts import COMPARISONS, KINDS, SEVERITIES
from dashapp.ui.components import data_grid, metric_card, metric_grid
from dashapp.ui.jobs import fmt_duration, fmt_time

RESOLVED_GRID = "alerts-resolved-grid"
DELIVERIES_GRID = "alerts-deliveries-grid"
RULE_EDIT = "alerts-rule-edit"
RULE_TOGGLE = "alerts-rule-toggle"
RULE_TEST = "alerts-rule-test"
RULE_DELETE = "alerts-rule-delete"

SEVERITY_BADGE = {"critical": "text-bg-danger", "warning": "text-bg-warning",
                  "info": "text-bg-info"}
STATE_BADGE = {"firing": "text-bg-danger", "pending": "text-bg-warning",
               "ok": "text-bg-success", "disabled": "text-bg-secondary",
               "resolved": "text-bg-success"}
DELIVERY_BADGE = {"delivered": "text-bg-success", "retry": "text-bg-warning",
                  "failed": "text-bg-danger"}
KIND_OPTIONS = [{"label": k.label, "value": k.key} for k in KINDS.values()]
COMPARISON_OPTIONS = [{"label": f"{op}  ({words})", "value": op}
                      for op, words in COMPARISONS.items()]
SEVERITY_OPTIONS = [{"label": s.capitalize(), "value": s} for s in SEVERITIES]


def badge(text: str, classes: dict[str, str], extra: str = "") -> html.Span:
    return html.Span(text, className=f"badge {classes.get(text, 'text-bg-light')} "
                                     f"ops-alerts-badge {extra}".strip())


def _since(iso: str | None, now: datetime | None = None) -> str:
    if not iso:
        return "—"
    when = datetime.fromisoformat(iso)
    seconds = max(0, int(((now or datetime.now(timezone.utc)) - when).total_seconds()))
    return f"{seconds} s" if seconds < 60 else fmt_duration(seconds * 1000)


# ----------------------------------------------------------------- cards

def summary_cards(rules: list[dict], firing: list[dict], resolved: list[dict]) -> html.Div:
    enabled = sum(1 for r in rules if r["enabled"])
    pending = sum(1 for r in rules if r["state"] == "pending")
    critical = sum(1 for e in firing if e["severity"] == "critical")
    return metric_grid([
        metric_card("Firing", len(firing), id="alerts-card-firing", icon="bell-fill",
                    status="error" if firing else "ok",
                    footnote=f"{critical} critical" if critical else "now"),
        metric_card("Pending", pending, id="alerts-card-pending", icon="hourglass-split",
                    status="warn" if pending else "muted",
                    footnote="past the threshold, waiting out their minutes"),
        metric_card("Rules", enabled, id="alerts-card-rules", icon="sliders",
                    status="ok" if enabled else "muted",
                    footnote=f"enabled of {len(rules)}"),
        metric_card("Resolved", len(resolved), id="alerts-card-resolved",
                    icon="check-circle", status="muted", footnote="in the last 24 h"),
    ], id="alerts-cards")


# ---------------------------------------------------------------- firing

def by_severity(events: list[dict]) -> list[dict]:
    """Critical first, then warning, then info; oldest first within each."""
    rank = {s: i for i, s in enumerate(reversed(SEVERITIES))}
    return sorted(events, key=lambda e: (rank.get(e["severity"], 9), e["started_at"] or ""))


def firing_list(events: list[dict], *, id: str = "alerts-firing-list",
                now: datetime | None = None) -> html.Div:
    if not events:
        return html.P([html.I(className="bi bi-check-circle me-2 text-success",
                              **{"aria-hidden": "true"}), "Nothing is firing."],
                      className="text-body-secondary mb-0", id=f"{id}-none")
    items = []
    for e in by_severity(events):
        items.append(html.Li([
            html.Div([
                badge(e["severity"], SEVERITY_BADGE),
                html.Strong(e["rule_name"], className="ops-alerts-item__name"),
                html.Span(e["target"], className="ops-alerts-item__target")
                if e["target"] else None,
            ], className="ops-alerts-item__head"),
            html.Div(e["message"], className="ops-alerts-item__message"),
            html.Div([
                html.Span(f"{e['kind_label']} {e['comparison']} "
                          f"{_threshold(e['threshold'], e['unit'])}"),
                html.Span(f"value {e['value_text']}") if e["value"] is not None else None,
                html.Span(f"firing for {_since(e['started_at'], now)}",
                          title=e["started_at"] or ""),
                badge(f"webhook {e['delivery']}", {f"webhook {k}": v for k, v in
                                                   DELIVERY_BADGE.items()})
                if e.get("delivery") else None,
            ], className="ops-alerts-item__meta"),
        ], className=f"ops-alerts-item ops-alerts-item--{e['severity']}",
            **{"data-event": str(e["id"])}))
    return html.Ul(items, className="ops-alerts-list", id=id)


def _threshold(value: float, unit: str) -> str:
    from dashapp.services.alerts import fmt_value
    return fmt_value(value, unit)


# ----------------------------------------------------------------- rules

def _last(rule: dict) -> str:
    """'last 812 ms at 14:03:05', 'no figure at 14:03:05', 'not evaluated yet'."""
    if not rule["last_evaluated_at"]:
        return "not evaluated yet"
    when = fmt_time(rule["last_evaluated_at"])
    if rule["last_value"] is None:
        return f"no figure at {when}"
    return f"last {rule['last_value_text']} at {when}"


def rules_list(rules: list[dict], can_admin: bool) -> html.Div:
    if not rules:
        return html.P("No alert rules yet." + (" Create one with “New rule”." if can_admin
                                                else ""),
                      className="text-body-secondary mb-0", id="alerts-rules-none")
    items = []
    for r in rules:
        rid = r["id"]
        detail = [html.Span(f"window {r['window_minutes']} min"),
                  html.Span(_last(r), title=r["last_message"] or "")]
        if r["state"] == "pending" and r["pending_since"]:
            detail.append(html.Span(f"pending for {_since(r['pending_since'])}"))
        if r["has_webhook"]:
            detail.append(html.Span([html.I(className="bi bi-broadcast me-1",
                                            **{"aria-hidden": "true"}), r["webhook_url"]],
                                    className="ops-alerts-rule__hook"))
        actions = []
        if can_admin:
            actions = [
                html.Button([html.I(className="bi bi-pencil me-1", **{"aria-hidden": "true"}),
                             "Edit"], id={"type": RULE_EDIT, "rule": rid}, n_clicks=0,
                            type="button", className="btn btn-sm btn-outline-secondary"),
                html.Button("Disable" if r["enabled"] else "Enable",
                            id={"type": RULE_TOGGLE, "rule": rid}, n_clicks=0, type="button",
                            className="btn btn-sm btn-outline-secondary"),
                html.Button([html.I(className="bi bi-send me-1", **{"aria-hidden": "true"}),
                             "Test webhook"], id={"type": RULE_TEST, "rule": rid},
                            n_clicks=0, type="button", disabled=not r["has_webhook"],
                            title="POST a sample payload to the webhook"
                            if r["has_webhook"] else "This rule has no webhook",
                            className="btn btn-sm btn-outline-secondary"),
                html.Button([html.I(className="bi bi-trash me-1", **{"aria-hidden": "true"}),
                             "Delete…"], id={"type": RULE_DELETE, "rule": rid}, n_clicks=0,
                            type="button", className="btn btn-sm btn-outline-danger"),
            ]
        items.append(html.Li([
            html.Div([
                html.Div([
                    badge(r["state"], STATE_BADGE),
                    html.Strong(r["name"], className="ops-alerts-rule__name"),
                    badge(r["severity"], SEVERITY_BADGE, "ops-alerts-badge--quiet"),
                ], className="ops-alerts-rule__title"),
                html.Div(r["condition"], className="ops-alerts-rule__condition"),
                html.Div(detail, className="ops-alerts-rule__meta"),
                html.Div(r["last_message"], className="ops-alerts-rule__why")
                if r["last_value"] is None and r["last_message"] else None,
            ], className="ops-alerts-rule__text"),
            html.Div(actions, className="ops-alerts-rule__actions") if actions else None,
        ], className="ops-alerts-rule", **{"data-rule": str(rid)}))
    return html.Ul(items, className="ops-alerts-rules", id="alerts-rules-list")


# ----------------------------------------------------------------- grids

RESOLVED_COLUMNS = [
    {"field": "resolved", "headerName": "Resolved", "minWidth": 120},
    {"field": "rule", "headerName": "Rule", "minWidth": 160},
    {"field": "severity", "headerName": "Severity", "minWidth": 100},
    {"field": "value", "headerName": "Fired at", "minWidth": 100},
    {"field": "lasted", "headerName": "Lasted", "minWidth": 100},
    {"field": "message", "headerName": "Message", "minWidth": 260, "flex": 2},
]
DELIVERY_COLUMNS = [
    {"field": "time", "headerName": "Time", "minWidth": 110},
    {"field": "rule", "headerName": "Rule", "minWidth": 140},
    {"field": "state", "headerName": "Alert", "minWidth": 90},
    {"field": "attempt", "headerName": "Attempt", "minWidth": 90},
    {"field": "outcome", "headerName": "Outcome", "minWidth": 100},
    {"field": "status", "headerName": "Status / error", "minWidth": 160, "flex": 2},
    {"field": "url", "headerName": "URL (masked)", "minWidth": 200, "flex": 2},
]


def resolved_rows(events: list[dict]) -> list[dict]:
    return [{"id": e["id"], "resolved": fmt_time(e["resolved_at"]), "rule": e["rule_name"],
             "severity": e["severity"], "value": e["value_text"],
             "lasted": fmt_duration(e["duration_s"] * 1000), "message": e["message"]}
            for e in events]


def delivery_rows(deliveries: list[dict]) -> list[dict]:
    return [{"id": d["id"], "time": fmt_time(d["time"]), "rule": d["rule_name"],
             "state": d["state"], "attempt": d["attempt"], "outcome": d["outcome"],
             "status": (f"HTTP {d['status_code']}" if d["status_code"] is not None
                        else d["error"] or ""),
             "url": d["url"]} for d in deliveries]


def resolved_grid(rows: list[dict]) -> html.Div:
    grid = data_grid(RESOLVED_GRID, rows, RESOLVED_COLUMNS, page_size=10,
                     csv_filename="resolved-alerts")
    ag = grid.children[1]
    ag.dashGridOptions = {**ag.dashGridOptions,
                          "localeText": {"noRowsToShow": "Nothing resolved lately"}}
    return grid


def deliveries_grid(rows: list[dict]) -> html.Div:
    grid = data_grid(DELIVERIES_GRID, rows, DELIVERY_COLUMNS, page_size=10,
                     csv_filename="webhook-deliveries")
    ag = grid.children[1]
    ag.dashGridOptions = {**ag.dashGridOptions,
                          "localeText": {"noRowsToShow": "No webhook deliveries yet"}}
    return grid


# ------------------------------------------------------------------ form

def _field(label: str, control, *, id: str | None = None, help: Any = None,
           className: str = "") -> html.Div:
    label_kwargs = {"id": id} if id else {}
    return html.Div([
        html.Label(label, htmlFor=getattr(control, "id", None), className="form-label",
                   **label_kwargs),
        control,
        html.Div(help, className="form-text") if help is not None else None,
    ], className=f"ops-alerts-field {className}".strip())


def rule_form(ids: dict[str, str]) -> html.Div:
    """The create/edit form; `ids` names each control (see pages/alerts.py)."""
    first = next(iter(KINDS.values()))
    return html.Div([
        html.Div(className="ops-alerts-form", children=[
            _field("Name", dbc.Input(id=ids["name"], type="text", maxLength=100,
                                     placeholder="e.g. Checkout is slow"),
                   className="ops-alerts-field--wide"),
            _field("Measure", dbc.Select(id=ids["kind"], options=KIND_OPTIONS,
                                         value=first.key),
                   help=html.Span(first.help, id=ids["kind_help"]),
                   className="ops-alerts-field--wide"),
            html.Div([
                html.Label(first.target_label, htmlFor=ids["target"], className="form-label",
                           id=ids["target_label"]),
                dbc.Input(id=ids["target"], type="text", maxLength=255),
            ], className="ops-alerts-field ops-alerts-field--wide", id=ids["target_wrap"]),
            _field("Fires when the figure is", dbc.Select(
                id=ids["comparison"], options=COMPARISON_OPTIONS, value=first.comparison)),
            html.Div([
                html.Label("Threshold", htmlFor=ids["threshold"], className="form-label"),
                dbc.InputGroup([
                    dbc.Input(id=ids["threshold"], type="number", value=first.threshold,
                              step="any"),
                    dbc.InputGroupText(first.unit, id=ids["unit"]),
                ]),
            ], className="ops-alerts-field"),
            _field("For (minutes)", dbc.Input(id=ids["for_minutes"], type="number", min=0,
                                              max=1440, step=1, value=5),
                   help="How long it must stay past the threshold; 0 fires at once."),
            _field("Window (minutes)", dbc.Input(id=ids["window"], type="number", min=1,
                                                 max=1440, step=1, value=5),
                   help="The figure is measured over this window."),
            _field("Severity", dbc.Select(id=ids["severity"], options=SEVERITY_OPTIONS,
                                          value="warning")),
            html.Div([dbc.Switch(id=ids["enabled"], value=True, label="Enabled")],
                     className="ops-alerts-field ops-alerts-field--switch"),
            _field("Webhook URL (optional)", dbc.Input(
                id=ids["webhook"], type="url", maxLength=2000,
                placeholder="https://hooks.example.com/…"),
                help="http(s) only. Receives a JSON POST when the alert fires and "
                     "resolves. Credentials and query strings are kept but only shown "
                     "masked; to change a masked URL, type it again in full.", className="ops-alerts-field--wide"),
        ]),
        html.Div(id=ids["error"], className="ops-alerts-form__error", role="alert"),
    ])


def kind_help(kind: str) -> tuple[str, str, str, bool]:
    """(target label, help text, unit, target shown) for the form."""
    k = KINDS.get(kind) or next(iter(KINDS.values()))
    return k.target_label or "Target", k.help, k.unit, bool(k.target_label)


# -------------------------------------------------------------- overview

OVERVIEW_FIRING = 5  # firing alerts the overview lists


def overview_strip(data: dict[str, Any] | None) -> Any:
    """Firing alerts (count and list) and those resolved lately, for the
    overview; None when the store could not be read."""
    if data is None:
        return None
    firing, resolved = data["firing"], data["resolved"]
    count = data["firing_count"]
    head = html.Div([
        html.Span(html.I(className="bi bi-bell-fill" if count else "bi bi-bell"),
                  className="ops-alerts-strip__icon", **{"aria-hidden": "true"}),
        html.Strong(f"{count} alert{'s' if count != 1 else ''} firing" if count
                    else "No alerts firing", id="overview-alerts-count"),
        html.Span(f"{len(resolved)} resolved in the last {data['resolved_hours']} h"
                  if resolved else
                  (f"{data['rules']} rule{'s' if data['rules'] != 1 else ''} watching"
                   if data["rules"] else "No alert rules yet"),
                  className="ops-alerts-strip__sub"),
        dcc.Link("Alerts →", href="/alerts", className="ops-alerts-strip__link"),
    ], className="ops-alerts-strip__head")
    body = []
    if firing:
        body.append(firing_list(by_severity(firing)[:OVERVIEW_FIRING],
                                id="overview-alerts-firing"))
        if count > OVERVIEW_FIRING:
            body.append(html.P(dcc.Link(f"and {count - OVERVIEW_FIRING} more on the Alerts "
                                        "page", href="/alerts"),
                               className="ops-alerts-strip__more"))
    if resolved:
        body.append(html.Ul([
            html.Li([badge("resolved", STATE_BADGE), html.Span(e["rule_name"],
                                                              className="fw-semibold"),
                     html.Span(f"{fmt_time(e['resolved_at'])} · lasted "
                               f"{fmt_duration(e['duration_s'] * 1000)}",
                               className="text-body-secondary")],
                    className="ops-alerts-strip__resolved-item")
            for e in resolved[:5]], className="ops-alerts-strip__resolved",
            id="overview-alerts-resolved"))
    state = "firing" if count else "quiet"
    return html.Section([head, *body],
                        className=f"ops-panel ops-alerts-strip ops-alerts-strip--{state}",
                        id="overview-alerts-strip")
