"""Small helpers the tests share (no fakes: they drive the real app)."""
from __future__ import annotations

import os
import random
import socket

from tests.conftest import ADMIN_PASSWORD

# Ports for servers the tests start. bind(0) hands out ports from the kernel's
# ephemeral range (32768-60999), the same range outgoing connections draw
# their local port from: another worker's client could hold the port by the
# time the server binds it ("Address already in use", seen once in CI). These
# come from below that range, from a slice of its own per xdist worker, and
# never twice in one process.
_PORT_LOW, _PORT_HIGH = 20000, 32000
_handed_out: set[int] = set()


def free_port() -> int:
    """A free 127.0.0.1 port below the ephemeral range, not given out before."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    width = 1500
    low = _PORT_LOW + (index % ((_PORT_HIGH - _PORT_LOW) // width)) * width
    candidates = [p for p in range(low, low + width) if p not in _handed_out]
    random.shuffle(candidates)
    for port in candidates:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port in {low}-{low + width}")


def token_for(client, app, username: str = "admin", password: str = ADMIN_PASSWORD,
              role: str | None = None) -> dict:
    """Authorization header for `username`, creating the user when role is given."""
    if role is not None:
        users = app.extensions["ops"].users
        if users.by_name(username) is None:
            users.create_user(username, password, role)
    resp = client.post("/api/auth/token", json={"username": username, "password": password})
    assert resp.status_code == 200, resp.get_json()
    return {"Authorization": f"Bearer {resp.get_json()['token']}"}


def sign_in(client, username: str = "admin", password: str = ADMIN_PASSWORD):
    """Sign in through the real form, CSRF token included."""
    import re
    page = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    return client.post("/login", data={"username": username, "password": password,
                                       "csrf_token": csrf, "next": "/"})


class ConsoleServer:
    """The console (create_app) served over real HTTP from a thread of this
    test process, for agents to send to: `dsn_for(app)` makes an ingest key."""

    def __init__(self, settings):
        from werkzeug.serving import make_server

        from dashapp import create_app
        self.server_app = create_app(settings).server
        self.ops = self.server_app.extensions["ops"]
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._http = make_server("127.0.0.1", self.port, self.server_app, threaded=True)
        import threading
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True,
                                        name="test-console-http")
        self._thread.start()

    def dsn_for(self, app: str) -> str:
        from dashapp.ingest.api import dsn_for
        from dashapp.ingest.keys import create_key
        key = create_key(self.ops.store, actor="test", app=app)["key"]
        return dsn_for(key, app, self.url)

    def expand(self) -> int:
        """Expand what agents sent (the console's scheduler does it every 2 s)."""
        from dashapp.services.ingest import ingest
        return ingest(self.ops.store)

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._thread.join(5)
        self.ops.close()
