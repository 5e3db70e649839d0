"""Small helpers the tests share (no fakes: they drive the real app)."""
from __future__ import annotations

from tests.conftest import ADMIN_PASSWORD


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
