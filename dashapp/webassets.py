"""Static assets served minified and cache-busted.

Dash already busts caches: every asset URL it writes carries `?m=<mtime>`.
This wraps Dash's asset route so that
- our own CSS and JS (the readable sources in assets/) are served minified
  (rcssmin / rjsmin, once per file version, kept in memory); vendored files
  that are already minified (`*.min.*`) go out as they are;
- a versioned URL (`?m=`) may be cached for a year (`immutable`): a changed
  file gets a new URL; an unversioned one is revalidated every time.
Compression (gzip/brotli) is flask-compress's, in security/web.py.
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path

from flask import Flask, Response, request

logger = logging.getLogger(__name__)

ASSETS_ENDPOINT = "_dash_assets.static"
YEAR = 365 * 24 * 3600


class _Minified:
    """(path, mtime, size) -> minified bytes; rebuilt when the file changes."""

    def __init__(self, folder: Path):
        self.folder = folder.resolve()
        self._cache: dict[str, tuple[tuple[float, int], bytes]] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> bytes | None:
        suffix = Path(name).suffix
        if suffix not in (".css", ".js") or ".min." in name:
            return None
        path = (self.folder / name).resolve()
        if not path.is_relative_to(self.folder) or not path.is_file():
            return None
        stat = path.stat()
        version = (stat.st_mtime, stat.st_size)
        cached = self._cache.get(name)
        if cached and cached[0] == version:
            return cached[1]
        text = path.read_text(encoding="utf-8")
        try:
            if suffix == ".css":
                import rcssmin
                small = rcssmin.cssmin(text)
            else:
                import rjsmin
                small = rjsmin.jsmin(text)
        except Exception:  # noqa: BLE001 - serve the source rather than nothing
            logger.exception("could not minify %s; serving it as written", name)
            small = text
        data = small.encode("utf-8")
        with self._lock:
            self._cache[name] = (version, data)
        return data


def init_assets(app: Flask, folder: Path) -> None:
    original = app.view_functions.get(ASSETS_ENDPOINT)
    if original is None:
        logger.warning("Dash's asset route %s not found; assets served as written",
                       ASSETS_ENDPOINT)
        return
    minified = _Minified(folder)

    def serve_asset(filename: str):
        data = minified.get(filename)
        if data is None:
            response = original(filename=filename)
        else:
            mimetype = "text/css" if filename.endswith(".css") else "text/javascript"
            response = Response(data, mimetype=mimetype)
            response.add_etag()
            response = response.make_conditional(request)
        if request.args.get("m"):
            response.cache_control.public = True
            response.cache_control.max_age = YEAR
            response.cache_control.immutable = True
        else:
            response.cache_control.no_cache = True
        return response

    app.view_functions[ASSETS_ENDPOINT] = serve_asset
