"""The chart renderer never fetches: figures are drawn with no network and no
file access, whatever image sources a figure (or its template) names.

What a user would notice: exporting a page whose figure points images at an
internal address or a local file makes no request to that address and shows
nothing of that file; the HTML report references no URL; `data:` images are
still drawn.
"""
from __future__ import annotations

import base64
import http.server
import io
import re
import struct
import threading
import zipfile
import zlib

import pytest

from dashapp.services import reports as svc

CHROMIUM = "/usr/bin/chromium"

pytestmark = pytest.mark.skipif(
    not __import__("shutil").which("chromium") and not __import__("os").path.exists(CHROMIUM),
    reason="Chromium is needed to render charts")

WIDTH, HEIGHT = 400, 300


# ---------------------------------------------------------------- helpers

def solid_png(rgb: tuple[int, int, int], size: int = 4) -> bytes:
    """A small opaque PNG of one colour."""
    raw = b"".join(b"\x00" + bytes(rgb) * size for _ in range(size))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 2,
                                                             0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def pixel(png: bytes, x: int, y: int) -> tuple[int, int, int]:
    """The RGB of one pixel of an 8-bit RGB/RGBA, non-interlaced PNG."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    while pos < len(png):
        (n,), kind = struct.unpack(">I", png[pos:pos + 4]), png[pos + 4:pos + 8]
        body = png[pos + 8:pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            width, height, _depth, colour = struct.unpack(">IIBB", body[:10])
        elif kind == b"IDAT":
            idat += body
    bpp = {2: 3, 6: 4}[colour]
    raw, stride = zlib.decompress(idat), width * bpp
    prev = bytearray(stride)
    for row in range(y + 1):
        start = row * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], (prev[i - bpp] if i >= bpp else 0)
            if kind == 1:
                line[i] = (line[i] + a) & 255
            elif kind == 2:
                line[i] = (line[i] + b) & 255
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        prev = line
    return tuple(prev[x * bpp:x * bpp + 3])


def is_red(rgb) -> bool:
    return rgb[0] > 200 and rgb[1] < 60 and rgb[2] < 60


def centre(png: bytes) -> tuple[int, int, int]:
    width, height = struct.unpack(">II", png[16:24])
    return pixel(png, width // 2, height // 2)


@pytest.fixture
def recorder():
    """A web server on 127.0.0.1 that records every request it receives."""
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the stdlib's name
            hits.append(self.path)
            body = solid_png((255, 0, 0))
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Access-Control-Allow-Origin", "*")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.hits = hits
    server.base = f"http://127.0.0.1:{server.server_address[1]}"
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def red_file(tmp_path):
    """A local image file whose content must never reach a report."""
    path = tmp_path / "private.png"
    path.write_bytes(solid_png((255, 0, 0)))
    return path


def cover(source: str, **extra) -> dict:
    """A layout image stretched over the whole plot, drawn above it."""
    return {"source": source, "xref": "paper", "yref": "paper", "x": 0, "y": 1,
            "sizex": 1, "sizey": 1, "sizing": "stretch", "layer": "above", **extra}


def hostile_figure(base: str, private) -> dict:
    local = private.as_uri()
    return {
        "data": [{"type": "bar", "x": ["a", "b"], "y": [2, 5]},
                 {"type": "image", "source": f"{base}/image-trace.png"}],
        "layout": {
            "images": [cover(f"{base}/layout.png"), cover(local)],
            "template": {
                "layout": {"images": [cover(f"{base}/template.png", name="watermark"),
                                      cover(local, name="private")],
                           "mapbox": {"style": f"{base}/style.json"}},
                "data": {"bar": [{"marker": {"color": "#1f77b4"}}]}},
        }}


# ------------------------------------------------------------------ tests

def test_an_export_fetches_no_url_and_reads_no_file(client, viewer, recorder, red_file):
    figure = hostile_figure(recorder.base, red_file)
    body = {"format": "zip", "page": "API metrics", "path": "/endpoints",
            "figures": [{"title": "Hostile", "figure": figure,
                         "width": WIDTH, "height": HEIGHT}]}
    resp = client.post("/api/reports/export", json=body, headers=viewer)
    assert resp.status_code == 200, resp.get_json()
    zf = zipfile.ZipFile(io.BytesIO(resp.data))
    pngs = [n for n in zf.namelist() if n.endswith(".png")]
    assert len(pngs) == 1, zf.read("cover.txt").decode()
    png = zf.read(pngs[0])
    assert recorder.hits == []                      # nothing asked the internal address
    assert not is_red(centre(png))                  # the local file is not in the chart

    body["format"] = "html"
    page = client.post("/api/reports/export", json=body, headers=viewer).get_data(as_text=True)
    assert recorder.hits == []
    sources = re.findall(r'\b(?:src|href)\s*=\s*"([^"]*)"', page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert recorder.base not in page and "file:" not in page


def test_the_browser_itself_has_no_network_nor_files(recorder, red_file):
    """Even a figure the sanitizer never saw (a field it might miss) fetches
    nothing: the browser runs with networking off and no file reads."""
    figure = {"data": [{"type": "bar", "x": ["a"], "y": [1]}],
              "layout": {"images": [cover(f"{recorder.base}/direct.png"),
                                    cover(red_file.as_uri())]}}
    png = svc._renderer.render(figure, chromium=CHROMIUM, width=WIDTH, height=HEIGHT, scale=1)
    assert recorder.hits == []
    assert not is_red(centre(png))
    hostname = {"data": [], "layout": {"images": [
        cover(recorder.base.replace("127.0.0.1", "localhost") + "/by-name.png")]}}
    svc._renderer.render(hostname, chromium=CHROMIUM, width=WIDTH, height=HEIGHT, scale=1)
    assert recorder.hits == []


def test_data_images_are_still_drawn():
    red = "data:image/png;base64," + base64.b64encode(solid_png((255, 0, 0))).decode()
    figure = {"data": [{"type": "bar", "x": ["a"], "y": [1]}],
              "layout": {"template": {"layout": {"images": [cover(red, name="logo")]}}}}
    chart = svc.render_chart("Logo", figure, CHROMIUM, width=WIDTH, height=HEIGHT)
    assert chart.png, chart.error
    assert is_red(centre(chart.png))


def test_sanitize_keeps_only_data_sources_anywhere_in_the_figure():
    data_uri = "data:image/png;base64,AAAA"
    figure = {
        "data": [{"type": "image", "source": "https://example.com/x.png"},
                 {"type": "scatter", "marker": {"color": "red"}, "name": "http://not-a-fetch"}],
        "layout": {
            "title": {"text": "see https://example.com"},
            "images": [{"source": data_uri}, {"source": "file:///etc/passwd"},
                       {"source": "//evil.example/x.png"}, "junk"],
            "template": {"layout": {
                "images": [{"source": "http://127.0.0.1/x", "name": "w"},
                           {"source": data_uri, "name": "ok"}],
                "mapbox": {"style": "http://127.0.0.1/style.json"},
                "geo": {"showland": True}},
                "data": {"image": [{"source": "ftp://x/y.png"}],
                         "scattermapbox": [{"below": ""}]}}}}
    clean = svc.sanitize_figure(figure)
    layout = clean["layout"]
    assert [i["source"] for i in layout["images"]] == [data_uri]
    assert [i["source"] for i in layout["template"]["layout"]["images"]] == [data_uri]
    assert "mapbox" not in layout["template"]["layout"]
    assert "geo" not in layout["template"]["layout"]
    assert "source" not in clean["data"][0]
    assert "source" not in layout["template"]["data"]["image"][0]
    assert "scattermapbox" not in layout["template"]["data"]
    # text that merely mentions a URL is text, not a fetch: left alone
    assert layout["title"]["text"] == "see https://example.com"
    assert clean["data"][1]["name"] == "http://not-a-fetch"
    assert figure["layout"]["images"][1]["source"] == "file:///etc/passwd"  # input untouched
