"""The Logs page's callbacks, called directly as Dash would, against real
files and a real store: the stream URL carries the filters, a bad regex is
named, export and stats answer for the chosen filters."""
from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlparse

import dash
from dash._callback_context import context_value
from dash._utils import AttributeDict

from tests.integration.test_logs import _plain, _write  # noqa: F401
from tests.integration.test_logs import logdir, settings  # noqa: F401 (fixtures)

ALL = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


def page_module():
    return sys.modules[next(p["module"] for p in dash.page_registry.values()
                            if p["path"] == "/logs")]


def _call(app, fn, *args, triggered=None):
    token = context_value.set(AttributeDict(
        updated_props={}, triggered_inputs=[{"prop_id": f"{triggered}.n_clicks", "value": 1}]
        if triggered else []))
    try:
        with app.test_request_context("/logs"):
            return fn(*args), context_value.get().updated_props
    finally:
        context_value.reset(token)


def test_configure_builds_the_stream_url_and_names_a_bad_regex(app, logdir):
    page = page_module()
    _write(logdir / "app.log", [_plain(1)])
    (config, error), _ = _call(app, page.configure, "app.log",
                               ["ERROR", "WARNING"], "time(out|d)", ["on"], "shop", "r-1")
    assert error is None
    url = urlparse(config["url"])
    assert url.path == "/api/logs/stream"
    query = parse_qs(url.query)
    assert query["source"] == [str(logdir / "app.log")]
    assert query["level"] == ["ERROR,WARNING"] and query["q"] == ["time(out|d)"]
    assert query["regex"] == ["true"] and query["logger"] == ["shop"]
    assert query["request_id"] == ["r-1"]
    assert config["highlight"] == {"pattern": "time(out|d)", "flags": "gi"}
    # all levels chosen: no level filter, so lines that are no record (tracebacks) stay
    (config, _), _ = _call(app, page.configure, "app.log", ALL, "", [],
                           "", "")
    assert "level" not in parse_qs(urlparse(config["url"]).query)
    (config, error), _ = _call(app, page.configure, "app.log", ALL,
                               "(broken", ["on"], "", "")
    assert config is dash.no_update
    assert "not a valid regular expression" in json.dumps(error.to_plotly_json(), default=str)
    (config, _), _ = _call(app, page.configure, "app.log", [], "", [], "", "")
    assert config == {"url": None, "message": "Choose at least one level."}


def test_export_and_stats_follow_the_filters(app, logdir):
    page = page_module()
    now = datetime.now(timezone.utc)
    _write(logdir / "app.log", [_plain(i, "ERROR" if i % 3 == 0 else "INFO",
                                       msg=f"event {i}", when=now - timedelta(seconds=90 - i))
                                for i in range(30)])
    download, props = _call(app, page.export, 0, 1, "app.log", ["ERROR"],
                            "", [], "", "", triggered="logs-export-txt")
    assert download["filename"].endswith(".txt")
    assert [ln.rsplit(": ", 1)[1] for ln in download["content"].splitlines()] == [
        f"event {i}" for i in range(0, 30, 3)]
    assert "Exported" in props["shell-toast-store"]["data"]["message"]
    (figure, totals, top, status), _ = _call(app, page.refresh_stats, 0, 60,
                                             "app.log", ["ERROR"], "", [], "", "")
    assert status is None
    assert sum(sum(trace.y) for trace in figure.data) == 10
    assert "Error 10" in json.dumps(totals.to_plotly_json(), default=str)
