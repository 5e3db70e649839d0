"""Shared Dash components: pure functions that return components.

Every id is passed in by the caller; parts a component needs internally
(a grid's "Export CSV" button, a confirm dialog's input) get dict ids derived
from the caller's id, so one pattern-matching *clientside* callback (defined at
the bottom of this module, code in ``assets/30-ui.js``) serves every instance
with no per-page code.

Toasts, from any server callback::

    from dashapp.ui.components import push_toast

    @callback(Output("cache-table", "rowData"), Input("cache-clear", "n_clicks"),
              prevent_initial_call=True)
    def clear(_):
        ...
        push_toast("Cleared 12 keys", kind="success")
        return rows

``push_toast`` uses ``dash.set_props`` on the shell's ``TOAST_STORE``, so the
callback declares no extra Output. (Declaring ``Output(TOAST_STORE, "data",
allow_duplicate=True)`` instead is a trap: the store lives in the shell, so
Dash fires such a callback when its page loads, whatever
``prevent_initial_call`` says.) A clientside callback does the same with
``dash_clientside.set_props("shell-toast-store", {data: {message, kind}})``.
The shell renders the value as a toast in its bottom-right container
(``toast_container``); a list of ``toast_message`` dicts shows several.

Confirm dialogs::

    ids = confirm_ids("backups-restore")
    confirm_dialog("backups-restore", "Restore backup?", "This replaces ...",
                   confirm_label="Restore", typed_confirmation="restore")
    # open it:   Output(ids.modal, "is_open")
    # act on it: Input(ids.confirm, "n_clicks")
    # Cancel/Confirm close it clientside; the typed text gates the button.
"""
from __future__ import annotations

import json
import logging
import uuid
from typing import Any, Iterable, Literal, NamedTuple, Sequence

import dash
import dash_ag_grid as dag
import dash_bootstrap_components as dbc
import pandas as pd
import plotly.graph_objects as go
from dash import MATCH, ClientsideFunction, Input, Output, State, clientside_callback, dcc, html
from dash.development.base_component import Component

from dashapp.modules import Module
from dashapp.ui import theme as _theme  # noqa: F401  (registers the ops_* Plotly templates)

logger = logging.getLogger(__name__)

Status = Literal["ok", "warn", "error", "muted"]
ToastKind = Literal["success", "danger", "info", "warning"]
Id = str | dict

STATUSES: tuple[str, ...] = ("ok", "warn", "error", "muted")
STATUS_LABELS = {"ok": "OK", "warn": "Warning", "error": "Error", "muted": ""}
TOAST_KINDS: tuple[str, ...] = ("success", "danger", "info", "warning")
TOAST_ICONS = {
    "success": "bi bi-check-circle-fill",
    "danger": "bi bi-x-octagon-fill",
    "warning": "bi bi-exclamation-triangle-fill",
    "info": "bi bi-info-circle-fill",
}
TOAST_TITLES = {"success": "Done", "danger": "Failed", "warning": "Warning", "info": "Notice"}

# Ids owned by the shell: the store any callback writes a toast into, and
# the container the toasts are rendered in.
TOAST_STORE = "shell-toast-store"
TOAST_CONTAINER = "shell-toasts"

# "type" keys of the dict ids that the generic clientside callbacks match.
GRID_EXPORT = "ops-grid-export"
GRID_SEARCH = "ops-grid-search"
CONFIRM_MODAL = "ops-confirm-modal"
CONFIRM_BUTTON = "ops-confirm-button"
CONFIRM_CANCEL = "ops-confirm-cancel"
CONFIRM_INPUT = "ops-confirm-input"
CONFIRM_EXPECTED = "ops-confirm-expected"

# AG Grid's Quartz theme, coloured from the page's --ops-* CSS variables so
# the grid follows light/dark mode with no JavaScript of its own.
GRID_THEME = (
    "themeQuartz.withParams({"
    "fontFamily: 'inherit', fontSize: 13, headerFontSize: 12, headerFontWeight: 600, "
    "backgroundColor: 'var(--ops-surface)', foregroundColor: 'var(--ops-text)', "
    "textColor: 'var(--ops-text)', "
    "headerBackgroundColor: 'var(--ops-surface-2)', headerTextColor: 'var(--ops-text-muted)', "
    "borderColor: 'var(--ops-border)', accentColor: 'var(--ops-primary)', "
    "chromeBackgroundColor: 'var(--ops-surface-2)', rowHoverColor: 'var(--ops-hover)', "
    "oddRowBackgroundColor: 'var(--ops-surface)', "
    "selectedRowBackgroundColor: 'var(--ops-primary-soft)', "
    "inputBackgroundColor: 'var(--ops-surface)', inputBorder: {color: 'var(--ops-border-strong)'}, "
    "wrapperBorderRadius: 10, borderRadius: 6, spacing: 6, "
    "rowHeight: 38, headerHeight: 40, browserColorScheme: 'inherit'"
    "})"
)


# --------------------------------------------------------------- helpers

def _id_kwargs(id: Id | None) -> dict:
    return {} if id is None else {"id": id}


def _id_key(id: Id) -> str:
    """A grid/dialog id as the string value of a derived dict id."""
    if isinstance(id, str):
        return id
    if isinstance(id, dict):
        return json.dumps(id, sort_keys=True, separators=(",", ":"))
    raise TypeError(f"component id must be a str or dict, not {type(id).__name__}")


def _format_value(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != value:  # NaN
            return "—"
        text = f"{value:,.2f}"
        return text.rstrip("0").rstrip(".") if "." in text else text
    return str(value)


def _format_delta(delta: Any) -> tuple[str, str | None]:
    """Text and arrow icon for a delta; numbers get a sign."""
    if isinstance(delta, (int, float)) and not isinstance(delta, bool):
        text = f"{delta:+,.2f}".rstrip("0").rstrip(".")
        sign = (delta > 0) - (delta < 0)
    else:
        text = str(delta)
        sign = 1 if text.startswith("+") else -1 if text.startswith(("-", "−")) else 0
    icon = {1: "bi bi-arrow-up-right", -1: "bi bi-arrow-down-right", 0: None}[sign]
    return text, icon


# ---------------------------------------------------------------- layout

# Time ranges every page offers: (minutes, label), shortest first.
RANGES: tuple[tuple[int, str], ...] = (
    (15, "15 min"), (60, "1 h"), (360, "6 h"), (1440, "24 h"), (10080, "7 d"),
    (43200, "30 d"))
RANGE_LABELS = dict(RANGES)


def range_picker(id: Id, value: int, ranges: Sequence[tuple[int, str]] = RANGES):
    """A row of toggle buttons choosing a time window (minutes)."""
    return dbc.RadioItems(
        id=id, value=value,
        options=[{"label": label, "value": minutes} for minutes, label in ranges],
        className="btn-group btn-group-sm flex-wrap", inputClassName="btn-check",
        labelClassName="btn btn-outline-secondary", labelCheckedClassName="active")


def page_header(title: str, subtitle: str | None = None,
                actions: Component | Sequence[Component] | None = None) -> html.Div:
    """The title block at the top of a page, with optional action buttons."""
    text = [html.H1(title, className="ops-page-title")]
    if subtitle:
        text.append(html.P(subtitle, className="ops-page-subtitle"))
    children: list = [html.Div(text, className="ops-page-header__text")]
    if actions is not None:
        children.append(html.Div(actions, className="ops-page-actions"))
    return html.Div(children, className="ops-page-header")


def panel(children: Any, *, title: str | None = None, subtitle: str | None = None,
          actions: Any = None, id: Id | None = None, flush: bool = False,
          className: str = "") -> html.Section:
    """A card that holds a chart, grid or form, with an optional header."""
    parts: list = []
    if title or actions is not None:
        head_text = []
        if title:
            head_text.append(html.H2(title, className="ops-panel__title"))
        if subtitle:
            head_text.append(html.P(subtitle, className="ops-panel__subtitle"))
        head = [html.Div(head_text)]
        if actions is not None:
            head.append(html.Div(actions, className="ops-panel__actions"))
        parts.append(html.Div(head, className="ops-panel__header"))
    body_class = "ops-panel__body" + (" ops-panel__body--flush" if flush else "")
    parts.append(html.Div(children, className=body_class))
    return html.Section(parts, className=f"ops-panel {className}".strip(), **_id_kwargs(id))


def metric_grid(cards: Iterable[Component], *, id: Id | None = None) -> html.Div:
    """Lay metric cards out in a responsive grid (1 column on phones)."""
    return html.Div(list(cards), className="ops-metric-grid", **_id_kwargs(id))


def metric_card(title: str, value: Any, *, id: Id | None = None, unit: str | None = None,
                delta: Any = None, status: Status = "ok", icon: str | None = None,
                footnote: str | None = None, href: str | None = None) -> Component:
    """A single number with its status.

    ``status`` colours the accent bar, icon and status dot: "ok", "warn",
    "error" or "muted" (no data / not applicable). ``icon`` is a Bootstrap
    Icons name without "bi-". With ``href`` the card is a link. To update a
    card, re-render it into its container: it is a pure function.
    """
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, not {status!r}")
    head: list = []
    if icon:
        head.append(html.Span(html.I(className=f"bi bi-{icon}"), className="ops-metric__icon",
                              **{"aria-hidden": "true"}))
    head.append(html.Span(title, className="ops-metric__title"))
    if STATUS_LABELS[status]:
        head.append(html.Span(STATUS_LABELS[status], className="ops-metric__status"))
    value_children: list = [_format_value(value)]
    if unit and value is not None:
        value_children.append(html.Span(unit, className="ops-metric__unit"))
    body: list = [html.Span(value_children, className="ops-metric__value")]
    if delta is not None:
        text, arrow = _format_delta(delta)
        delta_children: list = [html.I(className=arrow)] if arrow else []
        delta_children.append(text)
        body.append(html.Span(delta_children, className="ops-metric__delta"))
    children: list = [html.Div(head, className="ops-metric__head"),
                      html.Div(body, className="ops-metric__body")]
    if footnote:
        children.append(html.P(footnote, className="ops-metric__footnote"))
    class_name = f"ops-metric ops-metric--{status}"
    if href:
        return dcc.Link(children, href=href, className=class_name, **_id_kwargs(id))
    return html.Div(children, className=class_name, **_id_kwargs(id))


# ------------------------------------------------------------------ grid

def _records_and_columns(data: Any) -> tuple[list[dict], list[str], dict[str, str]]:
    """Rows as JSON-ready records, column order and a kind per column
    ("int", "float", "datetime", "bool" or "text")."""
    if data is None:
        return [], [], {}
    if isinstance(data, pd.DataFrame):
        df = data
        if not isinstance(df.index, pd.RangeIndex) or df.index.name is not None:
            df = df.reset_index()
        df = df.copy()
        df.columns = [str(c) for c in df.columns]
        kinds: dict[str, str] = {}
        for col in df.columns:
            series = df[col]
            if pd.api.types.is_bool_dtype(series):
                kinds[col] = "bool"
            elif pd.api.types.is_integer_dtype(series):
                kinds[col] = "int"
            elif pd.api.types.is_float_dtype(series):
                kinds[col] = "float"
            elif pd.api.types.is_datetime64_any_dtype(series):
                kinds[col] = "datetime"
                df[col] = series.map(
                    lambda t: None if pd.isna(t) else t.isoformat(sep=" ", timespec="seconds"))
            else:
                kinds[col] = "text"
        records = json.loads(df.to_json(orient="records", date_format="iso"))
        return records, list(df.columns), kinds
    records = [dict(r) for r in data]
    columns: list[str] = []
    for row in records:
        for key in row:
            if key not in columns:
                columns.append(key)
    kinds = {}
    for col in columns:
        values = [r.get(col) for r in records[:200] if r.get(col) is not None]
        if values and all(isinstance(v, bool) for v in values):
            kinds[col] = "bool"
        elif values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            kinds[col] = "int"
        elif values and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            kinds[col] = "float"
        else:
            kinds[col] = "text"
    return records, columns, kinds


def _header_name(field: str) -> str:
    text = field.replace("_", " ").strip()
    return text[:1].upper() + text[1:] if text else field


def _column_def(field: str, kind: str) -> dict:
    col: dict = {"field": field, "headerName": _header_name(field)}
    if kind in ("int", "float"):
        col["type"] = "rightAligned"
        col["filter"] = "agNumberColumnFilter"
        if kind == "float":
            # display only; CSV export keeps full precision
            col["valueFormatter"] = {"function": (
                "params.value == null ? '' : Math.abs(params.value) >= 1000 ? "
                "d3.format(',.0f')(params.value) : Math.abs(params.value) >= 1 ? "
                "d3.format(',.2~f')(params.value) : d3.format('.3~g')(params.value)")}
    elif kind == "bool":
        col["filter"] = "agTextColumnFilter"
    else:
        col["filter"] = "agTextColumnFilter"
    if kind == "datetime":
        col["minWidth"] = 170
    return col


def data_grid(id: Id, df_or_records: Any, columns: Sequence[str | dict] | None = None, *,
              page_size: int = 25, height: int | None = None,
              csv_filename: str | None = None, search: bool = True,
              row_count: bool = True, pagination: bool = True) -> html.Div:
    """A sortable, filterable, paginated AG Grid with an "Export CSV" button.

    ``df_or_records``: a DataFrame or a list of dicts. ``columns``: field
    names (in order) or AG Grid column definitions; default: every column.
    ``height``: pixels; ``None`` lets the grid grow with the page of rows.
    The Export CSV button exports the filtered, sorted rows (all pages) with
    the grid's built-in CSV export, named ``csv_filename``.
    ``pagination=False`` shows every row in one scrolling grid (give a
    ``height``), e.g. for rows a page appends as the user scrolls.

    Cells always render as text: no HTML/markdown renderer is set and
    ``dangerously_allow_code`` is off, so user-supplied strings cannot inject
    markup. Dots in field names are not treated as nested paths.
    """
    records, found_columns, kinds = _records_and_columns(df_or_records)
    column_defs: list[dict] = []
    for col in (columns if columns is not None else found_columns):
        if isinstance(col, dict):
            column_defs.append({"headerName": _header_name(str(col.get("field", ""))), **col})
        else:
            column_defs.append(_column_def(str(col), kinds.get(str(col), "text")))
    if csv_filename is None:
        csv_filename = f"{id}.csv" if isinstance(id, str) else "export.csv"
    if not csv_filename.lower().endswith(".csv"):
        csv_filename += ".csv"
    sizes = sorted({10, 25, 50, 100, page_size})
    grid_options: dict = {
        "theme": {"function": GRID_THEME},
        "pagination": pagination,
        "paginationPageSize": page_size,
        "paginationPageSizeSelector": sizes,
        "animateRows": False,
        "enableCellTextSelection": True,
        "ensureDomOrder": True,
        "suppressFieldDotNotation": True,
        "defaultCsvExportParams": {"fileName": csv_filename},
        "localeText": {"noRowsToShow": "No rows"},
    }
    style: dict = {"width": "100%"}
    if height is None:
        grid_options["domLayout"] = "autoHeight"
        style["height"] = None
    else:
        style["height"] = f"{height}px"
    grid = dag.AgGrid(
        id=id,
        rowData=records,
        columnDefs=column_defs,
        defaultColDef={"sortable": True, "filter": True, "resizable": True,
                       "flex": 1, "minWidth": 110},
        dashGridOptions=grid_options,
        csvExportParams={"fileName": csv_filename},
        dangerously_allow_code=False,
        style=style,
    )
    key = _id_key(id)
    toolbar: list = []
    if search:
        toolbar.append(html.Label([
            html.Span("Search rows", className="visually-hidden"),
            html.I(className="bi bi-search", **{"aria-hidden": "true"}),
            dcc.Input(id={"type": GRID_SEARCH, "grid": key}, type="search", debounce=False,
                      placeholder="Search rows…", autoComplete="off"),
        ], className="ops-datagrid__search mb-0"))
    if row_count:
        n = len(records)
        # The total; the pager shows how many a search or filter leaves.
        toolbar.append(html.Span(f"{n:,} row{'s' if n != 1 else ''} in total",
                                 className="ops-datagrid__count"))
    else:
        toolbar.append(html.Span(className="ops-datagrid__spacer"))
    toolbar.append(html.Button(
        [html.I(className="bi bi-download", **{"aria-hidden": "true"}), "Export CSV"],
        id={"type": GRID_EXPORT, "grid": key}, n_clicks=0, type="button",
        className="btn btn-sm btn-outline-secondary", title=f"Download {csv_filename}",
    ))
    return html.Div([html.Div(toolbar, className="ops-datagrid__toolbar"), grid],
                    className="ops-datagrid")


# ----------------------------------------------------------------- chart

def chart(id: Id, figure: go.Figure | dict | None = None, *, height: int = 320,
          filename: str | None = None, config: dict | None = None) -> dcc.Graph:
    """A responsive dcc.Graph with the modebar's "Download plot as PNG".

    Draw ``figure`` with the ``ops_light`` template (the default); the page
    re-themes it in dark mode (see dashapp.ui.theme).
    """
    if figure is None:
        figure = go.Figure(layout={"template": "ops_light"})
    if filename is None:
        filename = id if isinstance(id, str) else "chart"
    graph_config = {
        "displaylogo": False,
        # plotly.js 4 defaults to a "Share chart" button that uploads the
        # figure's data to Plotly Cloud: never offer that.
        "showSendToCloud": False,
        "showEditInChartStudio": False,
        "responsive": True,
        "toImageButtonOptions": {"format": "png", "filename": filename, "scale": 2},
        "modeBarButtonsToRemove": ["lasso2d", "select2d", "autoScale2d"],
    }
    if config:
        graph_config.update(config)
    return dcc.Graph(id=id, figure=figure, config=graph_config, responsive=True,
                     className="ops-chart", style={"height": f"{height}px"})


# ------------------------------------------------------- modals & toasts

def empty_message(fig: go.Figure, message: str) -> go.Figure:
    """`fig` with no axes and `message` in its middle: what a chart shows
    when there is nothing to draw (yet)."""
    fig.add_annotation(text=message, showarrow=False, xref="paper", yref="paper",
                       x=0.5, y=0.5)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(margin={"l": 10, "r": 10, "t": 10, "b": 10})
    return fig


def modal(id: Id, title: Any, body: Any, footer: Any = None, size: str = "md", *,
          is_open: bool = False) -> dbc.Modal:
    """A centred modal; open/close it with ``Output(id, "is_open")``.
    ``size``: "sm", "md", "lg" or "xl"."""
    if size not in ("sm", "md", "lg", "xl"):
        raise ValueError(f"size must be sm, md, lg or xl, not {size!r}")
    children: list = [dbc.ModalHeader(dbc.ModalTitle(title), close_button=True),
                      dbc.ModalBody(body)]
    if footer is not None:
        children.append(dbc.ModalFooter(footer))
    return dbc.Modal(children, id=id, is_open=is_open, centered=True, scrollable=True,
                     size=None if size == "md" else size)


class ConfirmIds(NamedTuple):
    """The ids inside a confirm dialog: open with ``modal``'s ``is_open``,
    act on ``confirm``'s ``n_clicks``."""
    modal: dict
    confirm: dict
    cancel: dict
    input: dict
    expected: dict


def confirm_ids(id: str) -> ConfirmIds:
    """The component ids of the confirm dialog named ``id``."""
    if not isinstance(id, str) or not id:
        raise TypeError("a confirm dialog id must be a non-empty str")
    return ConfirmIds(*({"type": kind, "dialog": id} for kind in (
        CONFIRM_MODAL, CONFIRM_BUTTON, CONFIRM_CANCEL, CONFIRM_INPUT, CONFIRM_EXPECTED)))


def confirm_dialog(id: str, title: str, message: Any, confirm_label: str = "Confirm",
                   danger: bool = True, typed_confirmation: str | None = None, *,
                   cancel_label: str = "Cancel") -> dbc.Modal:
    """A "are you sure?" dialog for a destructive or important action.

    With ``typed_confirmation`` the confirm button stays disabled until the
    user types that exact text. Cancel and Confirm both close the dialog
    (clientside); the page's own callback on ``confirm_ids(id).confirm``
    does the work and reports back with a toast.
    """
    ids = confirm_ids(id)
    body: list = [html.P(message, className="ops-confirm__message")
                  if isinstance(message, str) else message]
    if typed_confirmation is not None:
        if not typed_confirmation:
            raise ValueError("typed_confirmation must be a non-empty string")
        body.append(html.Div([
            html.Label([
                html.Span(["Type ", html.Code(typed_confirmation), " to confirm."],
                          className="form-label d-block"),
                dcc.Input(id=ids.input, type="text", value="", autoComplete="off",
                          placeholder=typed_confirmation, debounce=False),
            ], className="d-block mb-0"),
            dcc.Store(id=ids.expected, data=typed_confirmation),
        ], className="ops-confirm__typed"))
    icon_class = "ops-confirm__icon" + ("" if danger else " ops-confirm__icon--neutral")
    icon = "bi bi-exclamation-triangle" if danger else "bi bi-question-circle"
    header = dbc.ModalHeader(dbc.ModalTitle([
        html.Span(html.I(className=icon), className=icon_class, **{"aria-hidden": "true"}),
        title,
    ]), close_button=True)
    footer = dbc.ModalFooter([
        html.Button(cancel_label, id=ids.cancel, n_clicks=0, type="button",
                    className="btn btn-outline-secondary"),
        html.Button(confirm_label, id=ids.confirm, n_clicks=0, type="button",
                    disabled=typed_confirmation is not None,
                    className=f"btn {'btn-danger' if danger else 'btn-primary'}"),
    ])
    return dbc.Modal([header, dbc.ModalBody(body), footer], id=ids.modal, is_open=False,
                     centered=True, class_name="ops-confirm")


def toast(id: Id, message: str, kind: ToastKind = "success", *, title: str | None = None,
          duration: int | None = 5000, is_open: bool = True) -> dbc.Toast:
    """One toast (the same markup the shell renders for ``toast_message``)."""
    if kind not in TOAST_KINDS:
        raise ValueError(f"kind must be one of {TOAST_KINDS}, not {kind!r}")
    header = [html.I(className=f"{TOAST_ICONS[kind]} ops-toast__icon", **{"aria-hidden": "true"}),
              html.Strong(title or TOAST_TITLES[kind])]
    extra = {} if duration is None else {"duration": duration}
    return dbc.Toast(message, id=id, header=header, is_open=is_open, dismissable=True,
                     class_name=f"ops-toast ops-toast--{kind}", **extra)


def toast_message(message: str, kind: ToastKind = "success", *, title: str | None = None,
                  duration: int | None = 0) -> dict:
    """The value a callback writes to ``TOAST_STORE`` to show a toast.

    ``duration``: milliseconds; 0 picks the default (5 s, 8 s for "danger"),
    ``None`` keeps the toast until dismissed.
    """
    if kind not in TOAST_KINDS:
        raise ValueError(f"kind must be one of {TOAST_KINDS}, not {kind!r}")
    return {"id": uuid.uuid4().hex[:12], "message": str(message), "kind": kind,
            "title": title, "duration": duration}


def push_toast(message: str, kind: ToastKind = "success", *, title: str | None = None,
               duration: int | None = 0) -> dict:
    """Show a toast from inside a server callback (via ``dash.set_props``).

    One toast per callback run: a second call replaces the first; for
    several, ``dash.set_props(TOAST_STORE, {"data": [toast_message(...), ...]})``.
    Returns the message dict.
    """
    value = toast_message(message, kind, title=title, duration=duration)
    dash.set_props(TOAST_STORE, {"data": value})
    return value


def toast_container() -> html.Div:
    """The store callbacks write toasts into, and where they appear."""
    return html.Div([
        dcc.Store(id=TOAST_STORE, data=None),
        html.Div(id=TOAST_CONTAINER, children=[], className="ops-toasts",
                 **{"aria-live": "polite", "aria-atomic": "false"}),
    ])


# ------------------------------------------------------ status cards

def unavailable_card(service_name: str, message: str, *, hint: str | None = None) -> html.Div:
    """What a page shows instead of data when a service it needs is down."""
    if hint is None:
        hint = (f"Other pages keep working. Reload this page once {service_name} "
                "is reachable again.")
    return html.Div([
        html.Span(html.I(className="bi bi-plug"), className="ops-alert-card__icon",
                  **{"aria-hidden": "true"}),
        html.Div([
            html.H2(f"{service_name} is unavailable", className="ops-alert-card__title"),
            html.P(message, className="ops-alert-card__text"),
            html.P(hint, className="ops-alert-card__hint"),
        ]),
    ], className="ops-alert-card", role="alert")


def not_built_card(module: Module) -> html.Div:
    """The honest placeholder for a module whose page is not built yet."""
    where = (f"Built in issue #{module.issue}" if module.issue is not None
             else "Built by the foundation")
    return html.Div([
        html.Span(html.I(className=f"bi bi-{module.icon}"), className="ops-empty__icon",
                  **{"aria-hidden": "true"}),
        html.H2(f"{module.title} is not built yet", className="ops-empty__title"),
        html.P(["What it will do: ", module.summary], className="ops-empty__text"),
        html.P("Until then this page shows no data.", className="ops-empty__text"),
        html.Span([html.I(className="bi bi-kanban", **{"aria-hidden": "true"}), where],
                  className="ops-empty__meta"),
    ], className="ops-empty")


# ------------------------------------------------- clientside callbacks

clientside_callback(
    ClientsideFunction("ops_ui", "gridExport"),
    Output({"type": GRID_EXPORT, "grid": MATCH}, "title"),
    Input({"type": GRID_EXPORT, "grid": MATCH}, "n_clicks"),
    prevent_initial_call=True,
)
clientside_callback(
    ClientsideFunction("ops_ui", "gridSearch"),
    Output({"type": GRID_SEARCH, "grid": MATCH}, "title"),
    Input({"type": GRID_SEARCH, "grid": MATCH}, "value"),
    prevent_initial_call=True,
)
clientside_callback(
    ClientsideFunction("ops_ui", "confirmTyped"),
    Output({"type": CONFIRM_BUTTON, "dialog": MATCH}, "disabled"),
    Input({"type": CONFIRM_INPUT, "dialog": MATCH}, "value"),
    State({"type": CONFIRM_EXPECTED, "dialog": MATCH}, "data"),
)
clientside_callback(
    ClientsideFunction("ops_ui", "confirmClose"),
    Output({"type": CONFIRM_MODAL, "dialog": MATCH}, "is_open", allow_duplicate=True),
    Input({"type": CONFIRM_CANCEL, "dialog": MATCH}, "n_clicks"),
    Input({"type": CONFIRM_BUTTON, "dialog": MATCH}, "n_clicks"),
    prevent_initial_call=True,
)
clientside_callback(
    ClientsideFunction("ops_ui", "confirmReset"),
    Output({"type": CONFIRM_INPUT, "dialog": MATCH}, "value"),
    Input({"type": CONFIRM_MODAL, "dialog": MATCH}, "is_open"),
    prevent_initial_call=True,
)
clientside_callback(
    ClientsideFunction("ops_ui", "toastRender"),
    Output(TOAST_CONTAINER, "children"),
    Input(TOAST_STORE, "data"),
    State(TOAST_CONTAINER, "children"),
    prevent_initial_call=True,
)

__all__ = [
    "TOAST_STORE", "TOAST_CONTAINER", "STATUSES", "TOAST_KINDS", "ConfirmIds",
    "chart", "confirm_dialog", "confirm_ids", "data_grid", "metric_card", "metric_grid",
    "modal", "not_built_card", "page_header", "panel", "toast", "toast_container",
    "push_toast", "toast_message", "unavailable_card",
]
