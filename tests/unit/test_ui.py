"""The shared UI: chart themes, components, the shell, the placeholder pages
and the vendored assets. Pure Python: components are inspected as the
component trees Dash would send to the browser."""
from __future__ import annotations

import json
import re
from pathlib import Path

import dash
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
import pytest
from dash import dcc

from dashapp.modules import ADMIN_MODULES, BY_KEY, MODULES
from dashapp.ui import components as ui
from dashapp.ui import shell, theme

ROOT = Path(__file__).resolve().parents[2]
ASSETS = ROOT / "assets"


def walk(component):
    """Every component in a tree (depth first), including props that hold
    components (e.g. a Toast header)."""
    if isinstance(component, (list, tuple)):
        for item in component:
            yield from walk(item)
        return
    if not hasattr(component, "to_plotly_json"):
        return
    yield component
    for name in ("children", "header"):
        value = getattr(component, name, None)
        if value is not None:
            yield from walk(value)


def text_of(component) -> str:
    parts = []

    def collect(node):
        if isinstance(node, (str, int, float)):
            parts.append(str(node))
        elif isinstance(node, (list, tuple)):
            for item in node:
                collect(item)
        elif hasattr(node, "to_plotly_json"):
            collect(getattr(node, "children", None))

    collect(component)
    return " ".join(parts)


def class_of(component) -> str:
    return getattr(component, "className", None) or getattr(component, "class_name", None) or ""


# ------------------------------------------------------------------ theme

def test_templates_registered_and_distinct():
    theme.register_templates()
    theme.register_templates()  # idempotent
    assert "ops_light" in pio.templates and "ops_dark" in pio.templates
    assert pio.templates.default == "ops_light"
    light, dark = pio.templates["ops_light"].layout, pio.templates["ops_dark"].layout
    assert light.paper_bgcolor == theme.PALETTES["light"]["surface"]
    assert dark.paper_bgcolor == theme.PALETTES["dark"]["surface"]
    assert list(light.colorway) == theme.PALETTES["light"]["colorway"]
    assert light.font.color != dark.font.color


def test_new_figures_default_to_light_template():
    fig = go.Figure(go.Bar(x=[1], y=[2]))
    assert fig.layout.template.layout.paper_bgcolor == theme.PALETTES["light"]["surface"]


def test_apply_theme_switches_template():
    fig = theme.apply_theme(go.Figure(), "dark")
    assert fig.layout.template.layout.paper_bgcolor == theme.PALETTES["dark"]["surface"]
    with pytest.raises(ValueError):
        theme.apply_theme(go.Figure(), "sepia")


def test_templates_json_is_what_the_browser_compares():
    """20-theme.js tells templates apart by font colour + paper colour."""
    data = json.loads(theme.templates_json())
    sigs = {mode: (t["layout"]["font"]["color"], t["layout"]["paper_bgcolor"])
            for mode, t in data.items()}
    assert set(sigs) == {"light", "dark"}
    assert sigs["light"] != sigs["dark"]


def _css_block(css: str, selector_regex: str) -> dict[str, str]:
    match = re.search(selector_regex + r"\s*\{(.*?)\n\}", css, re.S)
    assert match, selector_regex
    return dict(re.findall(r"(--ops-[\w-]+):\s*([^;]+);", match.group(1)))


@pytest.mark.parametrize("mode,selector", [
    ("light", r':root,\s*\[data-bs-theme="light"\]'),
    ("dark", r'\n\[data-bs-theme="dark"\]'),
])
def test_css_chart_colours_match_python_palette(mode, selector):
    css = (ASSETS / "10-theme.css").read_text()
    tokens = _css_block(css, selector)
    palette = theme.PALETTES[mode]
    assert tokens["--ops-chart-surface"].lower() == palette["surface"]
    assert tokens["--ops-surface"].lower() == palette["surface"]
    assert tokens["--ops-chart-grid"].lower() == palette["grid"]
    assert [tokens[f"--ops-chart-{i}"].lower() for i in range(1, 9)] == palette["colorway"]


# ------------------------------------------------------------- components

def test_not_built_card_says_what_and_which_issue():
    for module in MODULES:
        if module.built:
            continue
        text = text_of(ui.not_built_card(module))
        assert f"{module.title} is not built yet" in text
        assert module.summary in text
        assert f"issue #{module.issue}" in text


def test_not_built_card_shows_no_data_components():
    card = ui.not_built_card(BY_KEY["cache"])
    kinds = {type(c).__name__ for c in walk(card)}
    assert not kinds & {"Graph", "AgGrid", "Store"}


@pytest.mark.parametrize("status", ["ok", "warn", "error", "muted"])
def test_metric_card_status_class(status):
    card = ui.metric_card("Requests", 1234, status=status, icon="graph-up")
    assert f"ops-metric--{status}" in class_of(card).split()
    assert "1,234" in text_of(card)


def test_metric_card_rejects_unknown_status():
    with pytest.raises(ValueError):
        ui.metric_card("x", 1, status="great")


def test_metric_card_without_value_and_as_link():
    card = ui.metric_card("Hit rate", None, unit="%", status="muted", href="/cache", id="m1")
    assert isinstance(card, dcc.Link) and card.href == "/cache" and card.id == "m1"
    text = text_of(card)
    assert "—" in text and "%" not in text  # no unit without a value


def test_metric_card_delta_gets_sign():
    assert "+38.25" in text_of(ui.metric_card("p95", 412.5, delta=38.25))
    assert "-2" in text_of(ui.metric_card("jobs", 7, delta=-2))


def _grid(container):
    return next(c for c in walk(container) if type(c).__name__ == "AgGrid")


def test_data_grid_renders_text_never_html():
    rows = [{"agent": "<img src=x onerror=alert(1)>", "a.b": 1}]
    container = ui.data_grid("g", rows)
    grid = _grid(container)
    assert grid.dangerously_allow_code is False
    assert grid.rowData[0]["agent"] == "<img src=x onerror=alert(1)>"  # raw, shown as text
    for col in grid.columnDefs:
        assert "cellRenderer" not in col
    assert grid.dashGridOptions["suppressFieldDotNotation"] is True


def test_data_grid_export_button_and_filename():
    container = ui.data_grid("req-grid", pd.DataFrame({"x": [1, 2]}), csv_filename="requests")
    grid = _grid(container)
    assert grid.csvExportParams == {"fileName": "requests.csv"}
    assert grid.dashGridOptions["defaultCsvExportParams"] == {"fileName": "requests.csv"}
    buttons = [c for c in walk(container) if getattr(c, "id", None) == {
        "type": ui.GRID_EXPORT, "grid": "req-grid"}]
    assert len(buttons) == 1 and "Export CSV" in text_of(buttons[0])


def test_data_grid_dict_id_becomes_json_key():
    gid = {"type": "jobs-grid", "queue": "default"}
    container = ui.data_grid(gid, [{"a": 1}])
    assert _grid(container).id == gid
    ids = [c.id for c in walk(container) if isinstance(getattr(c, "id", None), dict)]
    assert {"type": ui.GRID_EXPORT, "grid": json.dumps(gid, sort_keys=True,
                                                       separators=(",", ":"))} in ids


def test_data_grid_dataframe_types():
    df = pd.DataFrame({
        "at": pd.to_datetime(["2025-01-01 09:00:00", None]),
        "ms": [1.5, float("nan")],
        "n": [1, 2],
        "name": ["a", "b"],
    })
    grid = _grid(ui.data_grid("g", df, page_size=10))
    assert grid.rowData[0] == {"at": "2025-01-01 09:00:00", "ms": 1.5, "n": 1, "name": "a"}
    assert grid.rowData[1]["at"] is None and grid.rowData[1]["ms"] is None
    cols = {c["field"]: c for c in grid.columnDefs}
    assert cols["n"]["filter"] == "agNumberColumnFilter" and cols["n"]["type"] == "rightAligned"
    assert cols["name"]["filter"] == "agTextColumnFilter"
    assert grid.dashGridOptions["pagination"] is True
    assert grid.dashGridOptions["paginationPageSize"] == 10
    assert grid.defaultColDef["sortable"] and grid.defaultColDef["filter"]


def test_data_grid_columns_subset_in_order():
    grid = _grid(ui.data_grid("g", [{"a": 1, "b": 2, "c": 3}], columns=["c", "a"]))
    assert [c["field"] for c in grid.columnDefs] == ["c", "a"]


def test_chart_has_png_download_and_no_logo():
    graph = ui.chart("lat", go.Figure(), height=300)
    assert graph.config["toImageButtonOptions"]["format"] == "png"
    assert graph.config["toImageButtonOptions"]["filename"] == "lat"
    assert graph.config["displaylogo"] is False
    assert graph.responsive is True and graph.style["height"] == "300px"


def test_confirm_dialog_typed_confirmation_starts_disabled():
    dialog = ui.confirm_dialog("restore", "Restore?", "Replaces the database.",
                               typed_confirmation="restore")
    ids = ui.confirm_ids("restore")
    by_id = {json.dumps(c.id, sort_keys=True): c for c in walk(dialog)
             if isinstance(getattr(c, "id", None), dict)}
    assert dialog.id == ids.modal and dialog.is_open is False
    assert by_id[json.dumps(ids.confirm, sort_keys=True)].disabled is True
    assert by_id[json.dumps(ids.expected, sort_keys=True)].data == "restore"
    assert json.dumps(ids.input, sort_keys=True) in by_id


def test_confirm_dialog_without_typing_is_enabled():
    dialog = ui.confirm_dialog("retry", "Retry?", "Runs again.", danger=False)
    ids = ui.confirm_ids("retry")
    found = {json.dumps(c.id, sort_keys=True): c for c in walk(dialog)
             if isinstance(getattr(c, "id", None), dict)}
    assert found[json.dumps(ids.confirm, sort_keys=True)].disabled is False
    assert json.dumps(ids.input, sort_keys=True) not in found
    assert "btn-primary" in found[json.dumps(ids.confirm, sort_keys=True)].className


def test_toast_message_and_kinds():
    msg = ui.toast_message("Saved", kind="info")
    assert msg["message"] == "Saved" and msg["kind"] == "info" and msg["id"]
    assert ui.toast_message("x")["id"] != ui.toast_message("x")["id"]
    with pytest.raises(ValueError):
        ui.toast_message("x", kind="boom")
    toast = ui.toast("t1", "Saved", kind="danger")
    assert "ops-toast--danger" in toast.class_name


def test_unavailable_card_names_service():
    text = text_of(ui.unavailable_card("Redis", "Connection refused"))
    assert "Redis is unavailable" in text and "Connection refused" in text


def test_page_header():
    header = ui.page_header("Cache", "Hit rates", actions=[dash.html.Button("Clear")])
    text = text_of(header)
    assert "Cache" in text and "Hit rates" in text and "Clear" in text


# ------------------------------------------------------------------ shell

def test_shell_has_every_module_user_and_toasts():
    tree = shell.build_shell(dash.html.Div("page", id="content"), username="alice",
                             role="operator")
    links = [c for c in walk(tree) if type(c).__name__ == "NavLink"]
    # an operator sees every module, then the administration pages open to
    # operators (Alerts), never the admin-only ones (Audit trail, Users)
    visible = list(MODULES) + [m for m in ADMIN_MODULES if m.role != "admin"]
    assert [link.href for link in links] == [m.path for m in visible]
    assert [text_of(link).split(" Soon")[0] for link in links] == [m.title for m in visible]
    admin_tree = shell.build_shell(dash.html.Div(), username="root", role="admin")
    admin_links = [c.href for c in walk(admin_tree) if type(c).__name__ == "NavLink"]
    assert admin_links == [m.path for m in MODULES + ADMIN_MODULES]
    text = text_of(tree)
    assert "alice" in text and "operator" in text and "Sign out" in text
    signout = [c for c in walk(tree) if getattr(c, "href", None) == "/logout"]
    assert len(signout) == 1
    ids = {c.id for c in walk(tree) if isinstance(getattr(c, "id", None), str)}
    assert ui.TOAST_STORE in ids and ui.TOAST_CONTAINER in ids and "content" in ids
    assert all(i.startswith("shell-") for i in ids - {"content"})


def test_shell_without_user_has_no_sign_out():
    tree = shell.build_shell(dash.html.Div(), username=None, role=None)
    assert not [c for c in walk(tree) if getattr(c, "href", None) == "/logout"]


def test_shell_ships_both_chart_templates():
    tree = shell.build_shell(dash.html.Div(), username=None, role=None)
    holder = next(c for c in walk(tree) if getattr(c, "id", None) == shell.CHART_TEMPLATES)
    data = json.loads(holder.to_plotly_json()["props"]["data-templates"])
    assert set(data) == {"light", "dark"}


def test_index_string_loads_boot_script_in_head():
    page = shell.index_string("/assets/00-theme-boot.js")
    head = page.split("</head>")[0]
    assert '<script src="/assets/00-theme-boot.js"></script>' in head
    assert head.index("00-theme-boot.js") < head.index("{%css%}")
    for placeholder in ("{%metas%}", "{%app_entry%}", "{%config%}", "{%scripts%}", "{%renderer%}"):
        assert placeholder in page
    with pytest.raises(ValueError):
        shell.index_string('x"><script>')


def test_clientside_functions_exist_in_assets():
    js = (ASSETS / "30-ui.js").read_text()
    source = ((ROOT / "dashapp/ui/shell.py").read_text()
              + (ROOT / "dashapp/ui/components.py").read_text())
    names = re.findall(r'ClientsideFunction\("ops_ui", "(\w+)"\)', source)
    assert len(names) >= 10
    for name in names:
        assert re.search(rf"\b{name}: function", js), name


# ------------------------------------------------------ placeholder pages
# (every module page is built now; tests/unit/test_factory.py checks that each
# one is registered at its path)


def test_placeholder_layout_says_the_module_is_not_built():
    from dashapp.ui.placeholder import placeholder_layout
    module = BY_KEY["profiler"]
    text = text_of(placeholder_layout("profiler"))
    assert f"{module.title} is not built yet" in text
    assert f"issue #{module.issue}" in text
    layout = placeholder_layout("profiler")
    assert not {type(c).__name__ for c in walk(layout)} & {"Graph", "AgGrid"}


# ----------------------------------------------------------------- assets

def test_assets_load_nothing_from_the_network():
    for path in list(ASSETS.glob("*.css")) + list(ASSETS.glob("*.js")):
        text = path.read_text(encoding="utf-8")
        assert "@import" not in text, path.name
        for url in re.findall(r"url\(\s*['\"]?([^'\")]+)", text):
            assert not re.match(r"^(https?:)?//", url), (path.name, url)


@pytest.mark.parametrize("css", ["01-bootstrap-icons.min.css", "02-inter.css"])
def test_font_urls_resolve_to_vendored_files(css):
    text = (ASSETS / css).read_text(encoding="utf-8")
    urls = re.findall(r"url\(\s*['\"]?([^'\")?#]+)", text)
    assert urls
    for url in urls:
        assert url.endswith(".woff2")
        assert (ASSETS / url).is_file(), url


def test_vendored_packages_are_listed_with_licenses():
    text = (ASSETS / "vendor" / "LICENSES.md").read_text(encoding="utf-8")
    for package in ("bootstrap", "bootstrap-icons", "@fontsource/inter"):
        assert package in text
    assert "MIT" in text and "OFL" in text


def test_template_leaves_horizontal_anchors_auto():
    """A figure that puts its legend at x=0 must not inherit xanchor="right"
    (the legend would hang off the left edge and Plotly would push the plot
    area far to the right); the legend needs an explicit "auto" because
    Plotly's legend default is "left"."""
    for name in ("ops_light", "ops_dark"):
        layout = pio.templates[name].layout
        assert layout.legend.xanchor == "auto"
        assert layout.title.xanchor in (None, "auto")


def test_endpoint_detail_says_when_figures_come_from_rollups():
    from dashapp.ui import api_metrics as ui
    detail = {"method": "GET", "methods": ["GET"], "endpoint": "/a", "minutes": 1440,
              "bucket_seconds": 300, "count": 10, "errors": 0, "error_rate": 0.0,
              "client_errors": 0, "p50_ms": 1.0, "p95_ms": 2.0, "p99_ms": 3.0, "max_ms": 4.0}
    assert "roll-ups" not in str(ui.detail_summary({**detail, "percentiles": "exact"}))
    assert "±9.5 %" in str(ui.detail_summary({**detail, "percentiles": "histogram"}))
