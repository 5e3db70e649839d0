"""Exports of a page's current view and scheduled reports (issue 7).

One generic mechanism for every page: the browser (``assets/50-export.js``)
collects what the user sees — each Plotly figure as drawn (zoom included),
each grid's rows after the user's filter and sort, the page's filters — and
posts it as an :class:`ExportRequest`. This module turns it into a bundle:

* ZIP: ``cover.txt`` + ``cover.html`` (page, time range, filters, who,
  when, what is inside), one CSV per table, one PNG per chart;
* HTML: one self-contained file (PNG as ``data:`` URIs, tables as HTML
  tables, every user string escaped, no script).

Charts are rendered to PNG by kaleido driving the system Chromium
(``settings.chromium``; a browser is never downloaded). Chromium takes a
second or two to start, so one renderer is kept per process and renders run
one at a time under a lock. A chart that cannot be rendered is listed in the
bundle as failed, with the reason; it never fails the whole export.

Scheduled reports (``OPS_REPORT_SCHEDULE``) are built from the services, not
from a browser: the overview's cards, requests over the last 24 hours, the
endpoint table, the slowest SQL, failed jobs and the backups' status. They are
written atomically as ``report-<UTC time>.<html|zip>`` into
``settings.reports_folder`` (the last :data:`KEEP_SCHEDULED` are kept), once
per scheduled minute however many console workers fire (claimed in Redis,
else with a claim file in the folder).
"""
from __future__ import annotations

import asyncio
import atexit
import base64
import csv
import html
import io
import json
import logging
import math
import os
import re
import socket
import tempfile
import threading
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from dashapp.core.scrub import scrub_value

logger = logging.getLogger(__name__)

# ------------------------------------------------------------------ bounds

MAX_FIGURES = 30
MAX_TABLES = 30
MAX_ROWS = 50_000           # per table
MAX_COLUMNS = 100           # per table
MAX_FILTERS = 50
MAX_TRACES = 200            # per figure
MAX_BODY_BYTES = 40 * 1024 * 1024   # the whole export request
MAX_TEXT = 200              # titles, labels, column headers
MAX_VALUE = 2_000           # a filter's value, one table cell
KEEP_SCHEDULED = 30         # scheduled reports kept in the folder
RENDER_TIMEOUT = 45         # seconds for one chart
SCHEDULED_WINDOW = 1440     # minutes covered by a scheduled report
SCHEDULED_ROWS = 200        # rows per table in a scheduled report
SCHEDULED_ACTOR = "scheduler"

FORMATS = ("zip", "html")
NAME_RE = re.compile(r"^report-\d{8}T\d{6}Z(?:-\d{1,3})?\.(?:html|zip)$")
# Trace types that load map tiles or styles from the network when drawn.
MAP_TRACES = {"scattermapbox", "choroplethmapbox", "densitymapbox", "scattermap",
              "choroplethmap", "densitymap", "scattergeo", "choropleth"}

Cell = str | int | float | bool | None


class ReportError(Exception):
    """A report cannot be built or found; the message is for a person."""


# ------------------------------------------------------------ the request

class ExportFilter(BaseModel):
    label: str = Field(max_length=MAX_TEXT, description="The control's label as shown")
    value: str = Field(max_length=MAX_VALUE, description="Its current value as shown")


class ExportColumn(BaseModel):
    field: str = Field(max_length=MAX_TEXT, description="The grid's column id")
    header: str = Field("", max_length=MAX_TEXT, description="Its header as shown")


class ExportTable(BaseModel):
    title: str = Field("", max_length=MAX_TEXT)
    columns: list[ExportColumn] = Field(min_length=1, max_length=MAX_COLUMNS)
    rows: list[list[Cell]] = Field(
        default_factory=list, max_length=MAX_ROWS,
        description="Rows after the user's filter and sort, values in column order")

    @field_validator("rows")
    @classmethod
    def _row_widths(cls, rows, info):
        columns = info.data.get("columns") or []
        for i, row in enumerate(rows):
            if len(row) > len(columns):
                raise ValueError(f"row {i} has {len(row)} values for {len(columns)} columns")
            for value in row:
                if isinstance(value, str) and len(value) > MAX_VALUE * 16:
                    raise ValueError(f"row {i} has a value longer than {MAX_VALUE * 16} characters")
        return rows


class ExportFigure(BaseModel):
    title: str = Field("", max_length=MAX_TEXT)
    figure: dict[str, Any] = Field(description="A Plotly figure: {data: [...], layout: {...}}")
    width: int = Field(1100, ge=100, le=4000, description="Pixels")
    height: int = Field(450, ge=100, le=4000, description="Pixels")

    @field_validator("figure")
    @classmethod
    def _plotly_figure(cls, figure):
        data = figure.get("data", [])
        layout = figure.get("layout", {})
        if not isinstance(data, list) or not all(isinstance(t, dict) for t in data):
            raise ValueError("figure.data must be a list of traces (objects)")
        if len(data) > MAX_TRACES:
            raise ValueError(f"at most {MAX_TRACES} traces per figure")
        if not isinstance(layout, dict):
            raise ValueError("figure.layout must be an object")
        return {"data": data, "layout": layout}


class ExportRequest(BaseModel):
    """What the browser saw on a page, to bundle as one ZIP or HTML file."""
    model_config = ConfigDict(json_schema_extra={"example": {
        "format": "html", "page": "API metrics", "path": "/endpoints", "time_range": "1 h",
        "filters": [{"label": "Search rows in Endpoints", "value": "orders"}],
        "figures": [{"title": "Request volume", "width": 900, "height": 320, "figure": {
            "data": [{"type": "bar", "x": ["GET /orders", "POST /orders"], "y": [42, 7]}],
            "layout": {"title": {"text": "Requests"}}}}],
        "tables": [{"title": "Endpoints",
                    "columns": [{"field": "endpoint", "header": "Endpoint"},
                                {"field": "count", "header": "Requests"}],
                    "rows": [["GET /orders", 42], ["POST /orders", 7]]}]}})
    format: Literal["zip", "html"] = Field(description="zip: CSV + PNG files; html: one report")
    page: str = Field(min_length=1, max_length=MAX_TEXT, description="The page's title")
    path: str = Field("", max_length=500, description="The page's URL path")
    time_range: str | None = Field(None, max_length=MAX_TEXT,
                                   description="The page's time range as shown")
    filters: list[ExportFilter] = Field(default_factory=list, max_length=MAX_FILTERS)
    figures: list[ExportFigure] = Field(default_factory=list, max_length=MAX_FIGURES)
    tables: list[ExportTable] = Field(default_factory=list, max_length=MAX_TABLES)


# ------------------------------------------------------------- the bundle

@dataclass
class Chart:
    title: str
    png: bytes | None = None
    error: str | None = None


@dataclass
class Table:
    title: str
    headers: list[str]
    rows: list[list[Any]]
    note: str | None = None


@dataclass
class Report:
    page: str
    actor: str
    generated_at: datetime
    path: str = ""
    time_range: str | None = None
    filters: list[tuple[str, str]] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------- renderer

class ChartRenderer:
    """One kaleido (headless Chromium) per process, started on first use,
    renders serially under a lock; restarted after a browser failure."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._kaleido = None
        self._path: str | None = None
        self._blackhole: socket.socket | None = None

    def _ensure(self, chromium: str) -> None:
        if self._loop is None:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="ops-kaleido", daemon=True)
            thread.start()
            self._loop, self._thread = loop, thread
        if self._kaleido is not None and self._path != chromium:
            self._close_kaleido()
        if self._kaleido is None:
            import kaleido

            if self._blackhole is None:
                self._blackhole = _closed_port()
            browser = _offline_browser(self._blackhole.getsockname()[1])

            async def start():
                # mathjax=False: MathJax would come from a CDN; plotly.js
                # comes from the installed plotly package, so it works offline.
                k = kaleido.Kaleido(path=chromium, mathjax=False, timeout=RENDER_TIMEOUT,
                                    browser_cls=browser)
                await k.open()
                return k

            self._kaleido = self._run(start(), 60)
            self._path = chromium

    def _run(self, coro, timeout: float):
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def _close_kaleido(self) -> None:
        k, self._kaleido = self._kaleido, None
        if k is not None and self._loop is not None:
            try:
                self._run(k.close(), 15)
            except Exception:  # noqa: BLE001 - it is being thrown away anyway
                logger.debug("kaleido did not close cleanly", exc_info=True)

    def render(self, figure: dict, *, chromium: str, width: int, height: int,
               scale: float = 2) -> bytes:
        """PNG bytes of `figure`; raises with a readable message."""
        with self._lock:
            try:
                self._ensure(chromium)
            except Exception as exc:
                self._close_kaleido()
                raise ReportError(f"the chart renderer (Chromium at {chromium}) "
                                  f"did not start: {_short(exc)}") from None
            opts = {"format": "png", "width": width, "height": height, "scale": scale}
            try:
                png = self._run(self._kaleido.calc_fig(figure, opts=opts),
                                RENDER_TIMEOUT + 15)
            except Exception as exc:
                # A timeout or a dead browser leaves kaleido unusable: start
                # afresh next time.
                self._close_kaleido()
                raise ReportError(f"rendering failed: {_short(exc)}") from None
            if not isinstance(png, (bytes, bytearray)) or not png.startswith(b"\x89PNG"):
                raise ReportError("rendering failed: the renderer returned no PNG")
            return bytes(png)

    def close(self) -> None:
        with self._lock:
            self._close_kaleido()
            if self._loop is not None:
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._loop = None
            if self._blackhole is not None:
                self._blackhole.close()
                self._blackhole = None


_renderer = ChartRenderer()
atexit.register(_renderer.close)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__


def _closed_port() -> socket.socket:
    """A loopback TCP port that is bound but never listens: every connection
    to it is refused at once, and no other program can take it while the
    renderer holds it. The browser's proxy points here."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock


# Flags choreographer passes that let a file:// page read other files (and
# draw them on a canvas): the renderer needs neither.
_UNSAFE_FLAGS = ("--disable-web-security", "--allow-file-access-from-files")


def _offline_browser(proxy_port: int):
    """kaleido's Chromium with networking off: every request goes to a proxy
    that refuses it (loopback included: `<-loopback>` removes Chromium's
    implicit bypass), no host name resolves, WebRTC has no UDP, and file://
    pages cannot read other files. A figure field the sanitizer misses still
    fetches nothing."""
    from choreographer.browsers.chromium import Chromium

    class OfflineChromium(Chromium):
        def get_cli(self):
            cli = [arg for arg in super().get_cli()
                   if arg not in _UNSAFE_FLAGS and not arg.startswith("--proxy-")]
            return [*cli, f"--proxy-server=http://127.0.0.1:{proxy_port}",
                    "--proxy-bypass-list=<-loopback>",
                    "--host-resolver-rules=MAP * ~NOTFOUND",
                    "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
                    "--disable-background-networking"]

    return OfflineChromium


# Keys whose string value plotly.js (or a map library) loads as a URL:
# image sources (layout images, the image trace), GeoJSON/TopoJSON.
_URL_KEYS = {"source", "src", "href", "url", "geojson", "topojson"}
# Layout subplots that load tiles, styles or TopoJSON (geo2, mapbox3...).
_MAP_SUBPLOT = re.compile(r"^(?:mapbox|map|geo)\d*$")


def _is_data_image(value: Any) -> bool:
    return isinstance(value, str) and value.lstrip().lower().startswith("data:image/")


def _scrub(value: Any) -> Any:
    """A copy of `value` with every fetchable source dropped, at any depth
    (so templates, template traces and nested arrays are covered)."""
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    if not isinstance(value, dict):
        return value
    clean: dict = {}
    for key, item in value.items():
        if isinstance(key, str) and (_MAP_SUBPLOT.match(key) or key.lower() in MAP_TRACES):
            continue
        if key in _URL_KEYS and isinstance(item, str) and not _is_data_image(item):
            continue
        if key == "images" and isinstance(item, list):
            clean[key] = [_scrub(img) for img in item
                          if isinstance(img, dict) and _is_data_image(img.get("source"))]
            continue
        clean[key] = _scrub(item)
    return clean


def sanitize_figure(figure: dict) -> dict:
    """The figure without anything that makes the renderer fetch a URL or
    read a file: every image source anywhere (templates included) that is
    not a data: image is dropped, and map subplots with it; map charts are
    refused. The browser runs offline too (see `_offline_browser`)."""
    data = figure.get("data") or []
    for trace in data:
        if str(trace.get("type", "")).lower() in MAP_TRACES:
            raise ReportError("map charts cannot be exported (they load tiles from the network)")
    layout = figure.get("layout") or {}
    return {"data": _scrub(data), "layout": _scrub(layout)}


def render_chart(title: str, figure: dict, chromium: str | None, *,
                 width: int = 1100, height: int = 450) -> Chart:
    """One chart of a bundle: its PNG, or why it could not be drawn."""
    if not chromium:
        return Chart(title, error="no Chromium found to render charts "
                                  "(install chromium or set OPS_CHROMIUM_PATH)")
    try:
        # twice the pixels for sharpness, unless the chart is already huge
        scale = 2 if width * height <= 4_000_000 else 1
        png = _renderer.render(sanitize_figure(figure), chromium=chromium,
                               width=width, height=height, scale=scale)
    except ReportError as exc:
        logger.warning("export: chart %r not rendered: %s", title, exc)
        return Chart(title, error=str(exc))
    return Chart(title, png=png)


# ------------------------------------------------------------ CSV / text

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"^-?\d+(\.\d+)?([eE][-+]?\d+)?$")


def safe_cell(value: Any) -> Any:
    """A cell as written to CSV: text starting like a spreadsheet formula
    (= + - @, tab, CR) gets a leading quote so Excel shows it as text;
    plain negative numbers are left alone."""
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _NUMBER.match(value):
        return "'" + value
    if isinstance(value, float) and not math.isfinite(value):
        return ""
    return value


def scrubbed_rows(rows) -> list[list[Any]]:
    """Rows as an export writes them: every text cell through the console's
    one scrubber, so a secret (or a SQL value) in a row recorded before it
    was scrubbed, or typed into a filter, never reaches a file."""
    return [[v if v is None or isinstance(v, (bool, int, float)) else scrub_value(v)
             for v in row] for row in rows]


def table_csv(table: Table) -> bytes:
    """The table as UTF-8 CSV (with a BOM, so Excel reads the accents)."""
    width = len(table.headers)
    rows = [[safe_cell(v) for v in (list(r) + [None] * (width - len(r)))] for r in table.rows]
    df = pd.DataFrame(rows, columns=[safe_cell(h) for h in table.headers], dtype=object)
    return df.to_csv(index=False, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n").encode(
        "utf-8-sig")


def _slug(text: str, fallback: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()[:50]
    return slug or fallback


def _utc(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if not math.isfinite(value):
            return ""
        return f"{value:.6g}" if abs(value) < 1e15 else str(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)
    return str(value)


def _file_names(report: Report) -> tuple[list[str], list[str]]:
    charts = [f"charts/{i:02d}-{_slug(c.title, 'chart')}.png"
              for i, c in enumerate(report.charts, 1)]
    tables = [f"tables/{i:02d}-{_slug(t.title, 'table')}.csv"
              for i, t in enumerate(report.tables, 1)]
    return charts, tables


def cover_text(report: Report, contents: list[str] | None = None) -> str:
    lines = [f"Ops Console report: {report.page}", ""]
    if report.path:
        lines.append(f"Page:        {report.path}")
    lines.append(f"Time range:  {report.time_range or 'not set on this page'}")
    lines.append(f"Generated:   {_utc(report.generated_at)}")
    lines.append(f"By:          {report.actor}")
    lines.append("")
    lines.append("Filters:" if report.filters else "Filters:    none")
    lines += [f"  {label}: {value}" for label, value in report.filters]
    if report.notes:
        lines += ["", "Notes:"] + [f"  {n}" for n in report.notes]
    failed = [c for c in report.charts if c.error]
    if failed:
        lines += ["", "Charts that could not be rendered:"]
        lines += [f"  {c.title or 'Untitled chart'}: {c.error}" for c in failed]
    if contents:
        lines += ["", "Contents:"] + [f"  {name}" for name in contents]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------- HTML

_CSS = """
body{font-family:Inter,system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2937;
margin:0;background:#f5f7fa;line-height:1.45}
main{max-width:1200px;margin:0 auto;padding:32px 24px}
h1{font-size:1.6rem;margin:0 0 4px}h2{font-size:1.15rem;margin:0 0 12px}
.cover,.section{background:#fff;border:1px solid #e3e7ee;border-radius:10px;padding:20px 24px;
margin-bottom:20px}
.muted{color:#6b7280}.facts{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px;
margin:16px 0 0}.facts dt{color:#6b7280}.facts dd{margin:0;overflow-wrap:anywhere}
img{max-width:100%;height:auto;display:block;border:1px solid #eef1f5;border-radius:6px}
.failed{color:#b42318;background:#fef3f2;border:1px solid #fecdca;border-radius:6px;
padding:10px 12px}
.table-wrap{overflow-x:auto}
table{border-collapse:collapse;font-size:.82rem;width:100%}
th,td{border-bottom:1px solid #e3e7ee;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#f0f3f7;white-space:nowrap}
td{min-width:4ch;max-width:60ch;overflow-wrap:anywhere}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
ul{margin:8px 0 0;padding-left:20px}
@media (max-width:640px){main{padding:16px 10px}.cover,.section{padding:16px}
.facts{grid-template-columns:1fr;gap:0}.facts dd{margin-bottom:8px}}
@media print{body{background:#fff}.cover,.section{border:0;padding:0;break-inside:avoid}}
"""


def _e(value: Any) -> str:
    return html.escape(_cell_text(value), quote=True)


def report_html(report: Report) -> str:
    """One self-contained HTML file; every user string is escaped."""
    facts = [("Page", report.page)]
    if report.path:
        facts.append(("Path", report.path))
    facts += [("Time range", report.time_range or "not set on this page"),
              ("Generated", _utc(report.generated_at)), ("By", report.actor)]
    if report.filters:
        facts += [(f"Filter: {label}", value) for label, value in report.filters]
    else:
        facts.append(("Filters", "none"))
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        # No script may run in a report, whatever it contains.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        "img-src data:; style-src 'unsafe-inline'\">",
        f"<title>{_e(report.page)} — Ops Console report</title>",
        f"<style>{_CSS}</style></head><body><main>",
        '<section class="cover" id="cover">',
        f"<h1>{_e(report.page)}</h1>",
        '<p class="muted">Ops Console report</p><dl class="facts">',
    ]
    parts += [f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts]
    parts.append("</dl>")
    if report.notes:
        parts.append("<ul>" + "".join(f"<li>{_e(n)}</li>" for n in report.notes) + "</ul>")
    parts.append("</section>")
    for chart in report.charts:
        parts.append(f'<section class="section chart"><h2>{_e(chart.title or "Chart")}</h2>')
        if chart.png:
            data = base64.b64encode(chart.png).decode("ascii")
            parts.append(f'<img alt="{_e(chart.title or "chart")}" '
                         f'src="data:image/png;base64,{data}">')
        else:
            parts.append(f'<p class="failed">This chart could not be rendered: '
                         f"{_e(chart.error)}</p>")
        parts.append("</section>")
    for table in report.tables:
        n = len(table.rows)
        parts.append(f'<section class="section table"><h2>{_e(table.title or "Table")}</h2>'
                     f'<p class="muted">{n:,} row{"s" if n != 1 else ""}'
                     f'{" — " + _e(table.note) if table.note else ""}</p>')
        if n:
            parts.append('<div class="table-wrap"><table><thead><tr>')
            parts += [f"<th>{_e(h)}</th>" for h in table.headers]
            parts.append("</tr></thead><tbody>")
            for row in table.rows:
                cells = []
                for value in row:
                    num = isinstance(value, (int, float)) and not isinstance(value, bool)
                    cells.append(f'<td class="num">{_e(value)}</td>' if num
                                 else f"<td>{_e(value)}</td>")
                parts.append("<tr>" + "".join(cells) + "</tr>")
            parts.append("</tbody></table></div>")
        parts.append("</section>")
    parts.append("</main></body></html>")
    return "\n".join(parts)


def report_zip(report: Report) -> bytes:
    """cover.txt, cover.html, one CSV per table, one PNG per rendered chart."""
    chart_names, table_names = _file_names(report)
    contents = [n for n, c in zip(chart_names, report.charts) if c.png] + table_names
    cover = Report(**{**report.__dict__, "charts": [
        Chart(c.title, error=c.error) for c in report.charts], "tables": []})
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("cover.txt", cover_text(report, contents))
        zf.writestr("cover.html", report_html(cover))
        for name, chart in zip(chart_names, report.charts):
            if chart.png:
                zf.writestr(name, chart.png)
        for name, table in zip(table_names, report.tables):
            zf.writestr(name, table_csv(table))
    return buf.getvalue()


def bundle(report: Report, fmt: str) -> tuple[str, str, bytes]:
    """(file name, MIME type, bytes) of the report as ZIP or HTML."""
    stamp = report.generated_at.astimezone(timezone.utc).strftime("%Y%m%d-%H%M%SZ")
    base = f"{_slug(report.page, 'report')}-{stamp}"
    if fmt == "zip":
        return f"{base}.zip", "application/zip", report_zip(report)
    if fmt == "html":
        return f"{base}.html", "text/html; charset=utf-8", report_html(report).encode("utf-8")
    raise ReportError(f"format must be one of {', '.join(FORMATS)}")


# ---------------------------------------------------------------- exports

def build_export(request: ExportRequest, *, actor: str, chromium: str | None,
                 now: datetime | None = None) -> Report:
    """The report of one page's current view (charts rendered)."""
    report = Report(page=request.page, path=request.path, actor=actor,
                    generated_at=now or datetime.now(timezone.utc),
                    time_range=request.time_range,
                    filters=[(f.label, f.value) for f in request.filters])
    for fig in request.figures:
        report.charts.append(render_chart(fig.title, fig.figure, chromium,
                                          width=fig.width, height=fig.height))
    for tbl in request.tables:
        report.tables.append(Table(title=tbl.title,
                                   headers=[c.header or c.field for c in tbl.columns],
                                   rows=scrubbed_rows(tbl.rows)))
    return report


def export(request: ExportRequest, *, actor: str, chromium: str | None) -> tuple[str, str, bytes]:
    """(file name, MIME type, bytes) of one page's current view."""
    return bundle(build_export(request, actor=actor, chromium=chromium), request.format)


# ------------------------------------------------------ scheduled reports

def _records_table(title: str, records: list[dict], columns: list[tuple[str, str]],
                   limit: int = SCHEDULED_ROWS) -> Table:
    rows = scrubbed_rows([r.get(key) for key, _ in columns] for r in records[:limit])
    note = f"first {limit:,} of {len(records):,}" if len(records) > limit else None
    return Table(title=title, headers=[h for _, h in columns], rows=rows, note=note)


def build_scheduled(ops, *, now: datetime | None = None,
                    actor: str = SCHEDULED_ACTOR) -> Report:
    """A report of the last 24 hours built from the services (no browser).
    A section whose source is unavailable becomes a note, not a failure."""
    from dashapp.services import api_metrics, backups, jobs, overview, queries
    from dashapp.ui import api_metrics as metrics_ui

    now = now or datetime.now(timezone.utc)
    minutes = SCHEDULED_WINDOW
    report = Report(page="Scheduled report", path="/", actor=actor, generated_at=now,
                    time_range="Last 24 hours (until " + _utc(now) + ")")
    chromium = ops.settings.chromium

    def section(name: str, build) -> None:
        try:
            build()
        except Exception as exc:  # noqa: BLE001 - one section must not sink the report
            logger.warning("scheduled report: %s unavailable: %s", name, _short(exc))
            report.notes.append(f"{name}: unavailable ({_short(exc)})")

    def cards():
        data = overview.overview(ops)
        rows = [{"title": c["title"], "value": c.get("value"), "label": c.get("label"),
                 "detail": c.get("detail"), "status": c.get("status")}
                for c in data["cards"] if c.get("built", True)]
        report.tables.append(_records_table("Overview", rows, [
            ("title", "Module"), ("value", "Value"), ("label", "Measure"),
            ("detail", "Detail"), ("status", "Status")]))

    def requests():
        perf = api_metrics.performance(ops.store, minutes)
        series = perf["series"]
        report.charts.append(render_chart("Response time (p50, p95, p99)",
                                          metrics_ui.latency_figure(series).to_dict(), chromium))
        report.charts.append(render_chart(
            "Request volume", metrics_ui.volume_figure(series, perf["bucket_seconds"]).to_dict(),
            chromium))
        report.charts.append(render_chart("Error rate (5xx)",
                                          metrics_ui.error_rate_figure(series).to_dict(), chromium))

    def endpoints():
        df = api_metrics.endpoint_summary(ops.store, minutes)
        records = api_metrics.summary_records(df) if len(df) else []
        report.tables.append(_records_table("Endpoints (last 24 h)", records, [
            ("method", "Method"), ("endpoint", "Endpoint"), ("count", "Requests"),
            ("errors", "5xx"), ("client_errors", "4xx"), ("error_rate", "Error rate"),
            ("p50_ms", "p50 ms"), ("p95_ms", "p95 ms"), ("p99_ms", "p99 ms"),
            ("max_ms", "Max ms"), ("health", "Health")]))

    def slow_sql():
        stats = sorted(queries.stats(ops.store, minutes),
                       key=lambda q: q.get("p95_ms") or 0, reverse=True)
        report.tables.append(_records_table("Slowest SQL (by p95, last 24 h)", stats, [
            ("sql", "Query"), ("calls", "Calls"), ("mean_ms", "Mean ms"),
            ("p95_ms", "p95 ms"), ("max_ms", "Max ms"), ("total_ms", "Total ms"),
            ("rows", "Rows")], limit=20))

    def failed_jobs():
        runs = jobs.list_runs(ops.store, "failed", since=now - timedelta(minutes=minutes),
                              per_page=100)["runs"]
        report.tables.append(_records_table("Failed jobs (last 24 h)", runs, [
            ("id", "Run"), ("job_id", "Job"), ("status", "Status"),
            ("started_at", "Started (UTC)"), ("duration_ms", "Duration ms"),
            ("error_type", "Error"), ("error_message", "Message"), ("process", "Process")]))

    def backup_status():
        rows = []
        for t in backups.target_overview(ops.store, ops.settings):
            schedule = t.get("schedule") or {}
            rows.append({"target": t.get("name"), "engine": t.get("engine"),
                         "schedule": schedule.get("cron") if schedule else "none",
                         "newest": t.get("newest_good_at") or "never",
                         "status": "stale" if t.get("stale") else "ok"})
        report.tables.append(_records_table("Backups", rows, [
            ("target", "Target"), ("engine", "Engine"), ("schedule", "Schedule"),
            ("newest", "Newest good backup (UTC)"), ("status", "Status")]))

    section("Overview", cards)
    section("Requests", requests)
    section("Endpoints", endpoints)
    section("Slow SQL", slow_sql)
    section("Failed jobs", failed_jobs)
    section("Backups", backup_status)
    return report


def _claim(ops, folder: Path, slot: datetime) -> bool:
    """True for the one worker that writes the report of this minute."""
    key = f"ops:reports:claim:{slot:%Y%m%dT%H%M}"
    try:
        return bool(ops.redis.client.set(key, os.getpid(), nx=True, ex=6 * 3600))
    except Exception as exc:  # noqa: BLE001 - Redis down: claim with a file instead
        logger.info("scheduled report: Redis unavailable (%s); claiming with a file",
                    _short(exc))
    claim = folder / f".claim-{slot:%Y%m%dT%H%M}"
    try:
        fd = os.open(claim, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    os.close(fd)
    for old in folder.glob(".claim-*"):
        if old != claim:
            try:
                old.unlink()
            except OSError:
                pass
    return True


def _write_atomic(folder: Path, name: str, data: bytes) -> Path:
    target = folder / name
    fd, tmp = tempfile.mkstemp(prefix=".report-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o640)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return target


def _prune(folder: Path, keep: int = KEEP_SCHEDULED) -> list[str]:
    files = sorted((p for p in folder.iterdir() if p.is_file() and NAME_RE.match(p.name)),
                   key=lambda p: p.name, reverse=True)
    removed = []
    for old in files[keep:]:
        try:
            old.unlink()
            removed.append(old.name)
        except OSError as exc:
            logger.warning("scheduled report: cannot remove %s: %s", old.name, exc)
    return removed


def write_report(ops, *, fmt: str | None = None, actor: str = SCHEDULED_ACTOR,
                 now: datetime | None = None) -> Path:
    """Build a scheduled-style report now and write it into the folder."""
    settings = ops.settings
    fmt = fmt or settings.report_format
    if fmt not in FORMATS:
        raise ReportError(f"format must be one of {', '.join(FORMATS)}")
    now = now or datetime.now(timezone.utc)
    folder = settings.reports_folder
    folder.mkdir(parents=True, exist_ok=True)
    report = build_scheduled(ops, now=now, actor=actor)
    _, _, data = bundle(report, fmt)
    stem = f"report-{now.astimezone(timezone.utc):%Y%m%dT%H%M%SZ}"
    name = f"{stem}.{fmt}"
    n = 1
    while (folder / name).exists() and n < 1000:
        name = f"{stem}-{n}.{fmt}"
        n += 1
    path = _write_atomic(folder, name, data)
    _prune(folder)
    logger.info("report written: %s (%d bytes)", path, len(data))
    return path


def write_scheduled(ops, now: datetime | None = None) -> Path | None:
    """Write one scheduled report into settings.reports_folder, unless
    another worker already claimed this minute. Never raises."""
    from dashapp.security import audit
    now = now or datetime.now(timezone.utc)
    entry = None
    try:
        folder = ops.settings.reports_folder
        folder.mkdir(parents=True, exist_ok=True)
        if not _claim(ops, folder, now.replace(second=0, microsecond=0)):
            logger.debug("scheduled report: another worker writes this one")
            return None
        # Audited before writing: no report without its audit row.
        entry = audit.begin(ops.store, actor=SCHEDULED_ACTOR, action="report_scheduled",
                            target="reports", details={"format": ops.settings.report_format})
        path = write_report(ops, now=now)
    except Exception as exc:  # noqa: BLE001 - a scheduler job must not raise
        logger.exception("scheduled report failed")
        if entry is not None:
            entry.finish("failure", {"error": _short(exc)})
        elif not isinstance(exc, audit.AuditUnavailable):
            audit.record(ops.store, actor=SCHEDULED_ACTOR, action="report_scheduled",
                         outcome="failure", target="reports",
                         details={"error": _short(exc)})
        return None
    entry.finish("success", {"format": ops.settings.report_format,
                             "bytes": path.stat().st_size}, target=f"report:{path.name}")
    return path


def list_scheduled(settings) -> list[dict[str, Any]]:
    """Written reports, newest first: name, format, size, written time."""
    folder = settings.reports_folder
    if not folder.is_dir():
        return []
    found = []
    for p in folder.iterdir():
        if p.is_file() and NAME_RE.match(p.name):
            st = p.stat()
            found.append({"name": p.name, "format": p.suffix.lstrip("."), "bytes": st.st_size,
                          "written_at": datetime.fromtimestamp(st.st_mtime, timezone.utc)
                          .isoformat(timespec="seconds")})
    return sorted(found, key=lambda r: r["name"], reverse=True)


def scheduled_path(settings, name: str) -> Path:
    """The file of a written report; ReportError when the name is not a
    report's or it is not (or no longer) in the folder."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ReportError("not a report file name (report-YYYYMMDDTHHMMSSZ.html|zip)")
    folder = settings.reports_folder.resolve()
    path = (folder / name).resolve()
    if path.parent != folder or not path.is_file():
        raise ReportError(f"no report called {name}")
    return path
