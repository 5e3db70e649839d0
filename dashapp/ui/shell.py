"""The console's frame around every page: sidebar, top bar, toasts.

The sidebar is drawn from ``dashapp.modules.MODULES``, so a module cannot be
missing from it. All shell interactions are clientside callbacks (code in
``assets/30-ui.js``), registered when this module is imported:

* the active page is highlighted by ``dbc.NavLink(active=...)``, which
  watches the URL in the browser; the top bar's title follows
  ``dcc.Location`` (``shell-location``);
* the dark-mode toggle sets ``data-bs-theme`` on ``<html>`` and remembers the
  choice in ``localStorage["ops-theme"]``; ``assets/00-theme-boot.js``
  applies it before the first paint, so there is no flash of the wrong
  theme; charts follow (see ``dashapp.ui.theme``);
* on desktop the sidebar collapses to icons (remembered in
  ``localStorage["ops-sidebar"]``, also applied before first paint); tablets
  default to icons only; on phones (< 768 px) it is an overlay opened by the
  hamburger button and closed by the backdrop, the close button or
  navigating.

Component ids are prefixed ``shell-``.
"""
from __future__ import annotations

import functools
import logging

import dash
import dash_bootstrap_components as dbc
from dash import ClientsideFunction, Input, Output, State, clientside_callback, dcc, html
from dash.development.base_component import Component

from dashapp.modules import ADMIN_MODULES, MODULES, Module
from dashapp.ui.components import toast_container
from dashapp.ui.theme import templates_json

logger = logging.getLogger(__name__)

APP_NAME = "Ops Console"
LOGOUT_PATH = "/logout"

ROOT = "shell-root"
SIDEBAR = "shell-sidebar"
LOCATION = "shell-location"
NAV_MAP = "shell-nav-map"
NAV_OPEN = "shell-nav-open"
NAV_CLOSE = "shell-nav-close"
BACKDROP = "shell-backdrop"
COLLAPSE = "shell-sidebar-collapse"
THEME_TOGGLE = "shell-theme-toggle"
PAGE_TITLE = "shell-page-title"
CONTENT = "shell-content"
CHART_TEMPLATES = "shell-chart-templates"
EXPORT = "shell-export"
EXPORT_MENU = "shell-export-menu"


_INDEX_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
    <head>
        {%metas%}
        <title>{%title%}</title>
        {%favicon%}
        <script src="BOOT_SCRIPT_URL"></script>
        {%css%}
    </head>
    <body>
        {%app_entry%}
        <footer>
            {%config%}
            {%scripts%}
            {%renderer%}
        </footer>
    </body>
</html>"""


def index_string(boot_script_url: str) -> str:
    """Dash's page template with ``assets/00-theme-boot.js`` loaded in
    ``<head>``, so even the "Loading..." screen is painted in the remembered
    theme. (Dash itself loads asset scripts at the end of ``<body>``, after
    React; on a slow load the browser can paint before they run.) Usage::

        app.index_string = index_string(app.get_asset_url("00-theme-boot.js"))

    A plain external script, so a CSP of ``script-src 'self'`` allows it.
    The copy Dash also loads at the end of ``<body>`` then finds nothing to do.
    """
    if any(c in boot_script_url for c in '"<>'):
        raise ValueError("boot_script_url must be a plain URL")
    return _INDEX_TEMPLATE.replace("BOOT_SCRIPT_URL", boot_script_url)


def _href(path: str) -> str:
    """``path`` under the app's URL prefix (when an app is configured)."""
    try:
        return dash.get_relative_path(path)
    except Exception:  # no Dash app yet (e.g. unit tests): plain path
        return path


@functools.lru_cache(maxsize=1)
def _templates_json() -> str:
    return templates_json()


def _nav_link(module: Module) -> dbc.NavLink:
    children: list = [
        html.I(className=f"bi bi-{module.icon}", **{"aria-hidden": "true"}),
        html.Span(module.title, className="ops-nav__label"),
    ]
    if not module.built:
        children.append(html.Span("Soon", className="ops-nav__soon",
                                  title="Not built yet"))
    return dbc.NavLink(
        # the inner span fills the link and carries the tooltip (NavLink has
        # no title), which matters when the sidebar shows icons only
        html.Span(children, className="ops-nav__inner", title=module.title),
        id={"type": "shell-nav-link", "key": module.key},
        href=_href(module.path),
        active="exact" if module.path == "/" else "partial",
    )


def _admin_nav(role: str | None) -> list:
    """The "Administration" group: only the pages the role may open."""
    from dashapp.security.roles import role_allows
    allowed = [m for m in ADMIN_MODULES if role and role_allows(role, m.role)]
    if not allowed:
        return []
    return [html.Div("Administration", className="ops-sidebar__section"),
            html.Nav([_nav_link(m) for m in allowed], className="ops-nav nav",
                     **{"aria-label": "Administration"})]


def _sidebar(role: str | None = None) -> html.Aside:
    return html.Aside([
        html.Div([
            dcc.Link([
                html.Span(html.I(className="bi bi-activity"), className="ops-logo",
                          **{"aria-hidden": "true"}),
                html.Span(APP_NAME, className="ops-sidebar__label"),
            ], href=_href("/"), className="ops-sidebar__brand", title=APP_NAME),
            html.Button(html.I(className="bi bi-x-lg"), id=NAV_CLOSE, n_clicks=0,
                        type="button", className="btn ops-btn-icon ops-sidebar__close",
                        title="Close menu", **{"aria-label": "Close menu"}),
        ], className="ops-sidebar__head"),
        html.Div("Modules", className="ops-sidebar__section"),
        html.Nav([_nav_link(m) for m in MODULES], className="ops-nav nav",
                 **{"aria-label": "Modules"}),
        *_admin_nav(role),
        html.Div(
            html.Button([
                html.I(className="bi bi-chevron-double-left", **{"aria-hidden": "true"}),
                html.Span("Collapse", className="ops-sidebar__label"),
            ], id=COLLAPSE, n_clicks=0, type="button", className="ops-sidebar__collapse",
                title="Collapse sidebar"),
            className="ops-sidebar__footer",
        ),
    ], id=SIDEBAR, className="ops-sidebar")


def _user_area(username: str | None, role: str | None) -> list:
    if not username:
        return []
    text = [html.Span(username, className="ops-user__name")]
    if role:
        text.append(html.Span(role, className="ops-user__role"))
    return [
        html.Span(className="ops-topbar__divider"),
        html.Div([
            html.Span(username[:1], className="ops-avatar", title=username,
                      **{"aria-hidden": "true"}),
            html.Div(text, className="ops-user__text"),
        ], className="ops-user", title=f"{username} ({role})" if role else username),
        html.A([
            html.I(className="bi bi-box-arrow-right", **{"aria-hidden": "true"}),
            html.Span("Sign out", className="ops-signout__label"),
        ], href=LOGOUT_PATH, className="btn btn-sm btn-outline-secondary ops-signout",
            title="Sign out", **{"aria-label": "Sign out"}),
    ]


def _export_control(username: str | None) -> list:
    """The top bar's "Export" menu: the page's current view as one ZIP (CSV +
    PNG) or one HTML report. Plain buttons; ``assets/50-export.js`` opens
    the menu, collects the view and posts it to /api/reports/export."""
    if not username:
        return []
    item = "ops-export__item"
    return [html.Div([
        html.Button([
            html.I(className="bi bi-box-arrow-down", **{"aria-hidden": "true"}),
            html.Span("Export", className="ops-export__label"),
        ], id=EXPORT, type="button",
            className="btn btn-sm btn-outline-secondary ops-export__toggle",
            title="Export this page", **{"aria-haspopup": "menu", "aria-expanded": "false",
                                         "aria-controls": EXPORT_MENU}),
        html.Div([
            html.Button([
                html.I(className="bi bi-file-earmark-zip", **{"aria-hidden": "true"}),
                html.Span([html.Span("ZIP (CSV + PNG)", className="ops-export__name"),
                           html.Span("CSV tables, PNG charts, a cover",
                                     className="ops-export__hint")]),
            ], type="button", className=item, role="menuitem", **{"data-format": "zip"}),
            html.Button([
                html.I(className="bi bi-file-earmark-richtext", **{"aria-hidden": "true"}),
                html.Span([html.Span("HTML report", className="ops-export__name"),
                           html.Span("One file to share or print",
                                     className="ops-export__hint")]),
            ], type="button", className=item, role="menuitem", **{"data-format": "html"}),
        ], id=EXPORT_MENU, className="ops-export__menu", role="menu", hidden=True,
            **{"aria-label": "Export this page"}),
    ], className="ops-export")]


def _topbar(username: str | None, role: str | None) -> html.Header:
    return html.Header([
        html.Button(html.I(className="bi bi-list"), id=NAV_OPEN, n_clicks=0, type="button",
                    className="btn ops-btn-icon ops-topbar__menu", title="Open menu",
                    **{"aria-label": "Open menu", "aria-controls": SIDEBAR}),
        html.Div([
            html.Span(APP_NAME, className="ops-crumbs__root"),
            html.I(className="bi bi-chevron-right ops-crumbs__sep", **{"aria-hidden": "true"}),
            html.Span(id=PAGE_TITLE, className="ops-crumbs__current"),
        ], className="ops-crumbs"),
        html.Div(className="ops-topbar__spacer"),
        html.Div([
            *_export_control(username),
            html.Button([
                html.I(className="bi bi-moon-stars ops-theme-icon-light", **{"aria-hidden": "true"}),
                html.I(className="bi bi-sun ops-theme-icon-dark", **{"aria-hidden": "true"}),
            ], id=THEME_TOGGLE, n_clicks=0, type="button", className="btn ops-btn-icon",
                title="Toggle dark mode", **{"aria-label": "Toggle dark mode"}),
            *_user_area(username, role),
        ], className="ops-topbar__actions"),
    ], className="ops-topbar")


def _title_entries() -> list[list[str]]:
    """[href, title] for the top bar: every module, then any other
    registered page (login, detail pages) under its page name."""
    entries = [[_href(m.path), m.title] for m in MODULES + ADMIN_MODULES]
    known = {m.path for m in MODULES + ADMIN_MODULES}
    for page in dash.page_registry.values():
        path = page.get("path")
        if path and path not in known and not page.get("path_template"):
            entries.append([page.get("relative_path") or _href(path), str(page.get("name", ""))])
    return entries


def build_shell(page_container: Component, *, username: str | None,
                role: str | None) -> html.Div:
    """The frame around ``page_container`` (usually ``dash.page_container``)."""
    nav = {"entries": _title_entries(), "home": _href("/"), "fallback": ""}
    return html.Div([
        html.A("Skip to content", href=f"#{CONTENT}",
               className="visually-hidden-focusable btn btn-primary position-absolute m-2"),
        dcc.Location(id=LOCATION, refresh=False),
        dcc.Store(id=NAV_MAP, data=nav),
        html.Div(id=CHART_TEMPLATES, hidden=True, **{"data-templates": _templates_json()}),
        _sidebar(role),
        html.Div(id=BACKDROP, n_clicks=0, className="ops-backdrop"),
        html.Div([
            _topbar(username, role),
            html.Main(page_container, id=CONTENT, className="ops-content"),
        ], className="ops-main"),
        toast_container(),
    ], id=ROOT, className="ops-shell")


# ------------------------------------------------- clientside callbacks

clientside_callback(
    ClientsideFunction("ops_ui", "themeToggle"),
    Output(THEME_TOGGLE, "title"),
    Input(THEME_TOGGLE, "n_clicks"),
)
clientside_callback(
    ClientsideFunction("ops_ui", "sidebarCollapse"),
    Output(COLLAPSE, "title"),
    Input(COLLAPSE, "n_clicks"),
)
clientside_callback(
    ClientsideFunction("ops_ui", "mobileNav"),
    Output(ROOT, "className"),
    Input(NAV_OPEN, "n_clicks"),
    Input(NAV_CLOSE, "n_clicks"),
    Input(BACKDROP, "n_clicks"),
    Input(LOCATION, "pathname"),
    State(ROOT, "className"),
    prevent_initial_call=True,
)
clientside_callback(
    ClientsideFunction("ops_ui", "pageTitle"),
    Output(PAGE_TITLE, "children"),
    Input(LOCATION, "pathname"),
    State(NAV_MAP, "data"),
)
