"""Rate limits counted per group as documented, and an audit trail that is
complete or the change did not happen, as a client of the real app sees them."""
from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dash
import pytest
from sqlalchemy import func, select, text

from dashapp.store.models import (ApiToken, BackupHistory, JobCommand,
                                  ProfileSession, User)
from tests.conftest import ADMIN_PASSWORD
from tests.api.test_security import audit_rows
from tests.helpers import sign_in, token_for
from tests.integration.test_jobs import host  # noqa: F401 (fixture)


@pytest.fixture
def settings(settings, tmp_path):
    """The suite's settings with a small SQLite database to back up."""
    path = tmp_path / "app" / "shop.db"
    path.parent.mkdir()
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT)")
        conn.executemany("INSERT INTO item VALUES (?, ?)", [(i, f"item {i}") for i in range(50)])
    return settings.model_copy(update={"backup_targets": f"shop=sqlite:///{path}"})


@pytest.fixture
def make_app(settings, redis_client):
    """Build apps with the rate limits on (and settings overrides)."""
    from dashapp import create_app
    built = []

    def build(**update):
        dash_app = create_app(settings.model_copy(update={"rate_limit_enabled": True,
                                                          **update}))
        built.append(dash_app.server)
        return dash_app.server
    yield build
    for server in built:
        server.extensions["ops"].close()


def page(path: str):
    """A page's module as Dash imported it (its component id constants)."""
    return sys.modules[next(p["module"] for p in dash.page_registry.values()
                            if p["path"] == path)]


def from_addr(app, address: str):
    """A test client whose requests come from `address`."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def form_sign_in(client, username: str, password: str):
    page_html = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page_html).group(1)
    return client.post("/login", data={"username": username, "password": password,
                                       "csrf_token": csrf})


def api_sign_in(client, username: str, password: str):
    return client.post("/api/auth/token", json={"username": username, "password": password})


def dash_call(client, changed: str, inputs: list[dict], output: str = "nothing.children",
              state: list[dict] | None = None):
    """POST one Dash callback request, as the browser sends it."""
    component, _, prop = output.rpartition(".")
    body = {"output": output, "outputs": {"id": component, "property": prop},
            "inputs": inputs, "state": state or [], "changedPropIds": [changed]}
    return client.post("/_dash-update-component", json=body,
                       headers={"X-CSRF-Token": client.get_cookie("ops_csrf").value})


def dash_id(component) -> str:
    """A component id as Dash writes it in changedPropIds."""
    if isinstance(component, dict):
        return json.dumps(component, sort_keys=True, separators=(",", ":"))
    return component


# ------------------------------------------------------------ rate limits

def test_sign_in_form_and_token_creation_share_one_counter(make_app):
    app = make_app(rate_limit_login="3/minute")
    client = app.test_client()
    assert form_sign_in(client, "admin", "wrong-password").status_code == 401
    assert api_sign_in(client, "admin", "wrong-password").status_code == 401
    assert form_sign_in(client, "admin", "wrong-password").status_code == 401
    resp = api_sign_in(client, "admin", ADMIN_PASSWORD)
    assert resp.status_code == 429, "three attempts over both routes use up one budget"
    assert resp.get_json()["error"]["code"] == "rate_limited"
    assert form_sign_in(client, "admin", ADMIN_PASSWORD).status_code == 429


def test_a_flood_on_one_account_never_locks_the_right_password_out_elsewhere(make_app):
    app = make_app(rate_limit_login="4/minute")
    app.extensions["ops"].users.create_user("vera", "viewer-pass-1234", "viewer")
    flood = from_addr(app, "10.0.0.66")
    codes = [api_sign_in(flood, "admin", f"guess-{i}").status_code for i in range(6)]
    assert codes == [401] * 4 + [429] * 2

    # Another client that also guesses wrong gets one guess, then is refused
    # for this account (its own address budget is far from used up) ...
    second = from_addr(app, "10.0.0.67")
    assert form_sign_in(second, "Admin", "guess-again").status_code == 401
    resp = api_sign_in(second, "admin", "guess-more")
    assert resp.status_code == 429
    assert "account" in resp.get_json()["error"]["message"]
    assert 1 <= int(resp.headers["Retry-After"]) <= 60
    refused = form_sign_in(second, "admin", "guess-more")
    assert refused.status_code == 429 and "<form" in refused.get_data(as_text=True)
    # ... but may still sign in to another account.
    assert api_sign_in(second, "vera", "viewer-pass-1234").status_code == 200

    # The owner, from a client without failures, signs in with the right password.
    owner = from_addr(app, "192.168.1.20")
    assert api_sign_in(owner, "admin", ADMIN_PASSWORD).status_code == 200
    assert form_sign_in(owner, "admin", ADMIN_PASSWORD).status_code == 302
    refusals = {(e.actor, e.details["per"]) for e in audit_rows(app, "rate_limited")}
    assert refusals == {("10.0.0.66", "ip"), ("admin", "account")}


def test_sensitive_actions_share_one_counter_over_api_and_pages(make_app):
    app = make_app(rate_limit_sensitive="3/minute")
    client = app.test_client()
    admin = token_for(client, app)
    sign_in(client)
    client.get("/")
    backups = page("/backups")
    codes = [
        client.post("/api/queries/explain", json={"sql": "SELECT 1"}, headers=admin).status_code,
        client.post("/api/profiler/start", json={"duration": 60}, headers=admin).status_code,
        client.post("/api/backup/create", json={"target": "nope"}, headers=admin).status_code,
    ]
    assert 429 not in codes, codes
    click = dash_call(client, f"{backups.CREATE_GO}.n_clicks",
                      [{"id": backups.CREATE_GO, "property": "n_clicks", "value": 1}],
                      output=f"{backups.CREATE_BUSY}.children",
                      state=[{"id": backups.CREATE_TARGET, "property": "value", "value": "shop"},
                             {"id": backups.CREATE_NOTE, "property": "value", "value": ""}])
    assert click.status_code == 429, "the page's backup button counts with the API's"
    assert click.get_json()["error"]["code"] == "rate_limited"
    with app.extensions["ops"].store.session() as sess:
        assert sess.scalar(select(func.count(BackupHistory.id))) == 0
    # Reading is not limited by it, nor are other page callbacks.
    assert client.get("/api/queries/stats", headers=admin).status_code == 200
    other = dash_call(client, f"{backups.REFRESH_NOW}.n_clicks",
                      [{"id": backups.REFRESH_NOW, "property": "n_clicks", "value": 1}])
    assert other.status_code != 429


@pytest.mark.parametrize("path, control", [
    ("/backups", lambda p: (p.CREATE_GO, "n_clicks")),
    ("/backups", lambda p: (p.RESTORE_DIALOG.confirm, "n_clicks")),
    ("/profiler", lambda p: (p.START, "n_clicks")),
    ("/queries", lambda p: ("queries-table", "cellClicked")),
])
def test_each_sensitive_page_control_counts_with_the_api(make_app, path, control):
    app = make_app(rate_limit_sensitive="1/minute")
    client = app.test_client()
    admin = token_for(client, app)
    sign_in(client)
    client.get("/")
    component, prop = control(page(path))
    assert client.post("/api/queries/explain", json={"sql": "SELECT 1"},
                       headers=admin).status_code != 429
    resp = dash_call(client, f"{dash_id(component)}.{prop}",
                     [{"id": component, "property": prop, "value": 1}])
    assert resp.status_code == 429


def test_retry_after_only_on_429(make_app):
    app = make_app(rate_limit_login="2/minute")
    client = app.test_client()
    ok = api_sign_in(client, "admin", ADMIN_PASSWORD)
    assert ok.status_code == 200 and "Retry-After" not in ok.headers
    me = client.get("/api/auth/me", headers={"Authorization": f"Bearer {ok.get_json()['token']}"})
    assert me.status_code == 200 and "Retry-After" not in me.headers
    wrong = api_sign_in(client, "admin", "wrong-password")
    assert wrong.status_code == 401 and "Retry-After" not in wrong.headers
    refused = api_sign_in(client, "admin", "wrong-password")
    assert refused.status_code == 429 and 1 <= int(refused.headers["Retry-After"]) <= 60


# ------------------------------------------------------------ audit trail

def break_audit_table(app) -> None:
    """Make every new audit row fail while the rest of the store works."""
    engine = app.extensions["ops"].store.engine
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(text(
                "CREATE TRIGGER audit_read_only BEFORE INSERT ON ops_audit_event "
                "BEGIN SELECT RAISE(ABORT, 'audit trail is read-only'); END"))
        else:
            conn.execute(text(
                "CREATE FUNCTION audit_read_only() RETURNS trigger AS $$ BEGIN "
                "RAISE EXCEPTION 'audit trail is read-only'; END $$ LANGUAGE plpgsql"))
            conn.execute(text(
                "CREATE TRIGGER audit_read_only BEFORE INSERT ON ops_audit_event "
                "FOR EACH ROW EXECUTE FUNCTION audit_read_only()"))


def assert_refused(resp) -> None:
    assert resp.status_code == 503, resp.get_json()
    error = resp.get_json()["error"]
    assert error["code"] == "audit_unavailable"
    assert "audit trail" in error["message"] and "nothing was done" in error["message"]
    assert "Retry-After" not in resp.headers


def count(app, column) -> int:
    with app.extensions["ops"].store.session() as sess:
        return sess.scalar(select(func.count(column)))


def test_changes_are_refused_when_their_audit_row_cannot_be_written(
        app, client, admin, redis_client, host):  # noqa: F811
    ops = app.extensions["ops"]
    redis_client.set("cart:42", "three items")
    folder = ops.settings.config_folder
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "shop.yaml"
    config.write_text("max_cart_items: 20\n")
    version = hashlib.sha256(config.read_bytes()).hexdigest()
    scheduler, mon = host()
    scheduler.add_job(print, "interval", hours=1, id="jobs/cleanup", name="Cleanup",
                      next_run_time=datetime.now(timezone.utc) + timedelta(hours=1))
    scheduler.start()
    mon.flush()
    users, tokens = count(app, User.id), count(app, ApiToken.id)
    break_audit_table(app)

    assert_refused(client.delete("/api/cache/key", query_string={"key": "cart:42"},
                                 headers=admin))
    assert redis_client.get("cart:42") == b"three items"

    assert_refused(client.put("/api/config/file/shop.yaml",
                              json={"content": "max_cart_items: 5\n", "reason": "smaller"},
                              headers={**admin, "If-Match": f'"{version}"'}))
    assert config.read_text() == "max_cart_items: 20\n"

    assert_refused(client.post("/api/backup/create", json={"target": "shop"}, headers=admin))
    assert count(app, BackupHistory.id) == 0
    backups = Path(ops.settings.backups_folder)
    assert not backups.exists() or not any(backups.iterdir())

    assert_refused(client.post("/api/users", json={"username": "newbie", "role": "viewer"},
                               headers=admin))
    assert count(app, User.id) == users

    assert_refused(client.post("/api/jobs/scheduled/jobs/cleanup/pause", headers=admin))
    assert count(app, JobCommand.id) == 0
    assert scheduler.get_job("jobs/cleanup").next_run_time is not None

    assert_refused(api_sign_in(client, "admin", ADMIN_PASSWORD))
    assert count(app, ApiToken.id) == tokens

    assert_refused(client.post("/api/profiler/start", json={"duration": 60}, headers=admin))
    assert count(app, ProfileSession.id) == 0
    # Reading still works, and a wrong password is still just a 401.
    assert client.get("/api/auth/me", headers=admin).status_code == 200
    assert api_sign_in(client, "admin", "wrong-password").status_code == 401


def test_a_page_action_is_refused_with_a_toast_when_it_cannot_be_audited(app, client):
    backups = page("/backups")
    sign_in(client)
    client.get("/")
    break_audit_table(app)
    resp = dash_call(client, f"{backups.CREATE_GO}.n_clicks",
                     [{"id": backups.CREATE_GO, "property": "n_clicks", "value": 1}],
                     output=f"{backups.CREATE_BUSY}.children",
                     state=[{"id": backups.CREATE_TARGET, "property": "value", "value": "shop"},
                            {"id": backups.CREATE_NOTE, "property": "value", "value": ""}])
    assert resp.status_code == 200
    toast = json.dumps(resp.get_json().get("sideUpdate"))
    assert "audit trail cannot be written" in toast and "nothing was done" in toast
    assert count(app, BackupHistory.id) == 0


def test_a_change_whose_outcome_cannot_be_recorded_stays_pending(app, client, admin,
                                                                 redis_client):
    """The row is written before the change: if setting its outcome fails
    afterwards, the trail still says the change was attempted."""
    engine = app.extensions["ops"].store.engine
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(text(
                "CREATE TRIGGER audit_frozen BEFORE UPDATE ON ops_audit_event "
                "BEGIN SELECT RAISE(ABORT, 'audit rows are frozen'); END"))
        else:
            conn.execute(text(
                "CREATE FUNCTION audit_frozen() RETURNS trigger AS $$ BEGIN "
                "RAISE EXCEPTION 'audit rows are frozen'; END $$ LANGUAGE plpgsql"))
            conn.execute(text(
                "CREATE TRIGGER audit_frozen BEFORE UPDATE ON ops_audit_event "
                "FOR EACH ROW EXECUTE FUNCTION audit_frozen()"))
    redis_client.set("cart:7", "x")
    resp = client.delete("/api/cache/key", query_string={"key": "cart:7"}, headers=admin)
    assert resp.status_code == 200 and redis_client.get("cart:7") is None
    rows = audit_rows(app, "cache_key_delete")
    assert [(e.outcome, e.actor, e.target) for e in rows] == [
        ("pending", "admin", "redis:default:cart:7")]
    found = client.get("/api/audit", query_string={"outcome": "pending"}, headers=admin)
    assert [e["action"] for e in found.get_json()["events"]] == ["cache_key_delete"]


def test_a_refused_name_with_a_nul_byte_is_still_audited(app, client, admin):
    """PostgreSQL refuses NUL bytes in text: the row keeps them as \\x00
    rather than failing (which would turn the 400 into a 503)."""
    folder = app.extensions["ops"].settings.config_folder
    folder.mkdir(parents=True, exist_ok=True)
    resp = client.put("/api/config/file/shop.yaml%00.txt", headers=admin,
                      json={"content": "a: 1\n", "reason": "x", "version": "0" * 64})
    assert resp.status_code == 400
    rows = audit_rows(app, "config_save")
    assert [(e.outcome, e.target) for e in rows] == [("failure", "config:shop.yaml\\x00.txt")]
