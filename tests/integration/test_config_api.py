"""The configuration editor through its REST API, against a real store and a
real config folder: traversal attempts refused, masking for non-admins,
optimistic locking (409), exact-byte rollback, history and role rules."""
from __future__ import annotations

import hashlib
import os
import stat
import threading

import pytest
from sqlalchemy import select

from dashapp.services import config_files as svc
from dashapp.store.models import AuditEvent

SHOP = """\
shop:
  name: Demo
  max_cart_items: 50
database:
  url: postgresql://shop:db-url-secret@db:5432/shop
  password: hunter2-real
payments:
  api_token: tok_live_123
"""
SCHEMA = """\
{"type": "object", "required": ["shop"],
 "properties": {"shop": {"type": "object",
   "properties": {"max_cart_items": {"type": "integer", "minimum": 1}}}}}
"""
SECRETS = ("db-url-secret", "hunter2-real", "tok_live_123")


@pytest.fixture
def folder(app):
    path = app.extensions["ops"].settings.config_folder
    path.mkdir(parents=True, exist_ok=True)
    (path / "shop.yaml").write_text(SHOP)
    (path / "shop.schema.json").write_text(SCHEMA)
    (path / "app.env").write_text("DEBUG=1\nSECRET_KEY=env-secret-9\n")
    return path


def _read(client, headers, name="shop.yaml"):
    resp = client.get(f"/api/config/file/{name}", headers=headers)
    assert resp.status_code == 200, resp.get_json()
    return resp


def _put(client, headers, content, version, name="shop.yaml", reason="test change"):
    return client.put(f"/api/config/file/{name}", json={"content": content, "reason": reason},
                      headers={**headers, "If-Match": f'"{version}"'})


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------ reading

def test_list_files_only_allowed_extensions_and_no_symlinks(client, admin, folder, tmp_path):
    (folder / "notes.txt").write_text("not config")
    (folder / "sub").mkdir()
    (folder / "sub" / "worker.toml").write_text("a = 1\n")
    outside = tmp_path / "outside.yaml"
    outside.write_text("x: 1\n")
    os.symlink(outside, folder / "link.yaml")
    body = client.get("/api/config/files", headers=admin).get_json()
    names = [f["name"] for f in body["files"]]
    assert names == ["app.env", "shop.schema.json", "shop.yaml", "sub/worker.toml"]
    shop = next(f for f in body["files"] if f["name"] == "shop.yaml")
    assert shop["schema"] == "shop.schema.json" and shop["format"] == "yaml"
    assert shop["version"] == _sha(folder / "shop.yaml")


def test_secrets_masked_for_viewers_and_operators_not_admins(client, admin, viewer, operator,
                                                             folder):
    for headers in (viewer, operator):
        body = _read(client, headers).get_json()
        assert body["masked"] is True and body["editable"] is False
        assert all(s not in body["content"] for s in SECRETS), body["content"]
        assert "password: ********" in body["content"]
        assert "name: Demo" in body["content"]          # the rest is untouched
        env = _read(client, headers, "app.env").get_json()
        assert "env-secret-9" not in env["content"] and "DEBUG=1" in env["content"]
    resp = _read(client, admin)
    body = resp.get_json()
    assert body["masked"] is False and body["editable"] is True
    assert body["content"] == SHOP
    assert resp.headers["ETag"] == f'"{_sha(folder / "shop.yaml")}"'


# --------------------------------------------------------------- traversal

def _escape_names(folder, tmp_path):
    """Names that try to leave the folder, or are not editable files."""
    secret = tmp_path / "secret.yaml"
    secret.write_text("outside: true\n")
    os.symlink(secret, folder / "escape.yaml")
    os.symlink(tmp_path, folder / "linkdir")
    (folder / "adir.yaml").mkdir()
    (folder / "notes.txt").write_text("x")
    return secret, [
        "../secret.yaml",                 # plain ..
        "%2e%2e/secret.yaml",             # percent-encoded ..
        "%2E%2E%2Fsecret.yaml",           # .. and / both encoded
        "sub/../../secret.yaml",
        "%2Ftmp%2Fsecret.yaml",           # absolute, encoded
        "/" + str(secret).lstrip("/"),    # absolute: /api/config/file//tmp/...
        "escape.yaml",                    # a symlink inside pointing outside
        "linkdir/secret.yaml",            # through a symlinked folder
        "shop.yaml%00.txt",               # NUL byte
        "notes.txt",                      # extension not allowed
        "adir.yaml",                      # a directory
        "..%5Csecret.yaml",               # backslash
    ]


def test_path_traversal_refused_with_400_on_every_route(client, admin, folder, tmp_path):
    secret, names = _escape_names(folder, tmp_path)
    before = secret.read_bytes()
    for name in names:
        url = f"/api/config/file/{name}"
        checks = [("GET", url, None), ("GET", url + "/history", None),
                  ("PUT", url, {"content": "owned: true\n", "reason": "x", "version": "0" * 64}),
                  ("POST", url + "/rollback", {"version": "0" * 64})]
        for method, target, body in checks:
            resp = client.open(target, method=method, json=body, headers=admin)
            assert resp.status_code == 400, (method, target, resp.status_code, resp.get_json())
            assert resp.get_json()["error"]["code"] in ("invalid_name", "invalid_request")
    assert secret.read_bytes() == before
    # The body-named route too.
    for name in ("../secret.yaml", str(secret), "a\x00.yaml", "x.txt", "adir.yaml"):
        resp = client.post("/api/config/validate", json={"name": name, "content": "a: 1"},
                           headers=admin)
        assert resp.status_code == 400, (name, resp.get_json())


def test_service_refuses_escapes_even_when_called_directly(folder, tmp_path):
    _secret, _names = _escape_names(folder, tmp_path)
    for name in ("../secret.yaml", "/etc/passwd.yaml", "escape.yaml", "linkdir/secret.yaml",
                 "a\x00.yaml", "notes.txt", "adir.yaml", "a\\..\\b.yaml", "./shop.yaml",
                 "sub//shop.yaml", "bad\nname.yaml"):
        with pytest.raises(svc.PathRefused):
            svc.resolve(folder, name)


# ----------------------------------------------------------------- writing

def test_save_validates_writes_atomically_and_records_history(client, app, admin, folder):
    path = folder / "shop.yaml"
    os.chmod(path, 0o640)
    version = _read(client, admin).get_json()["version"]
    new = SHOP.replace("max_cart_items: 50", "max_cart_items: 60")
    resp = _put(client, admin, new, version, reason="bigger carts")
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["changed"] is True and body["version_before"] == version
    assert path.read_text() == new and body["version"] == _sha(path)
    assert resp.headers["ETag"] == f'"{body["version"]}"'
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640          # mode kept
    assert not [p for p in os.listdir(folder) if p.endswith(".tmp")]  # no temp file left

    history = client.get("/api/config/file/shop.yaml/history", headers=admin).get_json()
    kinds = [(c["kind"], c["actor"], c["reason"]) for c in history["changes"]]
    assert kinds[0] == ("edit", "admin", "bigger carts")
    assert kinds[1][0] == "baseline" and history["changes"][1]["version_after"] == version
    assert "-  max_cart_items: 50" in history["changes"][0]["diff"]
    assert "+  max_cart_items: 60" in history["changes"][0]["diff"]
    assert history["changes"][0]["current"] is True

    with app.extensions["ops"].store.session() as sess:
        events = sess.scalars(select(AuditEvent).where(AuditEvent.action == "config_save")).all()
    assert [e.outcome for e in events] == ["success"]
    assert events[0].target == "config:shop.yaml"
    assert all(s not in str(events[0].details) for s in SECRETS)


def test_invalid_content_is_refused_with_the_line(client, admin, folder):
    version = _read(client, admin).get_json()["version"]
    resp = _put(client, admin, "shop:\n  name: [unclosed\n", version)
    assert resp.status_code == 422
    error = resp.get_json()["error"]
    assert error["code"] == "invalid_content" and error["errors"][0]["line"] == 3
    resp = _put(client, admin, SHOP.replace("max_cart_items: 50", "max_cart_items: 0"), version)
    assert resp.status_code == 422
    schema_error = resp.get_json()["error"]["errors"][0]
    assert schema_error["source"] == "schema" and schema_error["line"] == 3
    assert (folder / "shop.yaml").read_text() == SHOP


def test_validate_reports_line_and_column_per_format(client, viewer, folder):
    cases = [("shop.yaml", "a: 1\nb: [\n", 3), ("x.json", '{\n  "a": 1,\n  "b": \n}', 4),
             ("x.toml", "a = 1\nb = = 2\n", 2), ("x.ini", "[s]\na = 1\nthis is bad\n", 3),
             ("x.env", "A=1\n2BAD=3\n", 2)]
    for name, content, line in cases:
        resp = client.post("/api/config/validate", json={"name": name, "content": content},
                           headers=viewer)
        assert resp.status_code == 200
        body = resp.get_json()
        assert body["valid"] is False and body["errors"][0]["line"] == line, (name, body)
    ok = client.post("/api/config/validate", json={"name": "shop.yaml", "content": SHOP},
                     headers=viewer).get_json()
    assert ok == {"valid": True, "format": "yaml", "schema": "shop.schema.json", "errors": []}


def test_save_needs_version_and_reason_and_refuses_the_mask(client, admin, folder):
    resp = client.put("/api/config/file/shop.yaml", json={"content": SHOP, "reason": "x"},
                      headers=admin)
    assert resp.status_code == 428
    version = _read(client, admin).get_json()["version"]
    assert _put(client, admin, SHOP + "# x\n", version, reason="  ").status_code == 400
    masked = svc.mask_secrets(SHOP, "yaml")[0]
    resp = _put(client, admin, masked, version)
    assert resp.status_code == 400 and resp.get_json()["error"]["code"] == "masked_secret"
    assert (folder / "shop.yaml").read_text() == SHOP
    # The version may come in the body instead of If-Match.
    resp = client.put("/api/config/file/shop.yaml", headers=admin,
                      json={"content": SHOP + "# x\n", "reason": "x", "version": version})
    assert resp.status_code == 200


def test_concurrent_edits_get_409(client, app, admin, folder):
    version = _read(client, admin).get_json()["version"]
    first = _put(client, admin, SHOP.replace("Demo", "First"), version)
    assert first.status_code == 200
    second = _put(client, admin, SHOP.replace("Demo", "Second"), version)
    assert second.status_code == 409
    assert second.get_json()["error"]["current_version"] == first.get_json()["version"]
    assert "First" in (folder / "shop.yaml").read_text()

    # Many writers racing from the same version: exactly one wins.
    version = first.get_json()["version"]
    store, where = app.extensions["ops"].store, folder
    results: list = []

    def writer(i):
        try:
            svc.save_file(store, where, "shop.yaml", SHOP.replace("Demo", f"Racer {i}"),
                          expected_version=version, actor=f"racer{i}", reason="race")
            results.append("ok")
        except svc.VersionConflict:
            results.append("conflict")
    threads = [threading.Thread(target=writer, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["conflict"] * 5 + ["ok"]
    assert "Racer" in (folder / "shop.yaml").read_text()


def test_change_on_disk_since_the_read_is_a_conflict_and_recorded(client, admin, folder):
    version = _read(client, admin).get_json()["version"]
    (folder / "shop.yaml").write_text(SHOP.replace("Demo", "Edited by hand"))
    assert _put(client, admin, SHOP.replace("Demo", "Mine"), version).status_code == 409
    fresh = _read(client, admin).get_json()["version"]
    assert _put(client, admin, SHOP.replace("Demo", "Mine"), fresh).status_code == 200
    changes = client.get("/api/config/file/shop.yaml/history",
                         headers=admin).get_json()["changes"]
    assert [c["kind"] for c in changes] == ["edit", "baseline"]
    assert changes[1]["version_after"] == fresh      # the hand edit is a version too


# ---------------------------------------------------------------- rollback

def test_rollback_restores_the_exact_earlier_bytes(client, admin, folder):
    path = folder / "shop.yaml"
    original = b"shop:\r\n  name: Caf\xc3\xa9  \r\n  max_cart_items: 5\r\n# no newline at end"
    path.write_bytes(original)
    v0 = _read(client, admin).get_json()["version"]
    assert v0 == hashlib.sha256(original).hexdigest()
    v1 = _put(client, admin, "shop:\n  name: One\n", v0).get_json()["version"]
    v2 = _put(client, admin, "shop:\n  name: Two\n", v1).get_json()["version"]

    resp = client.post("/api/config/file/shop.yaml/rollback", headers=admin,
                       json={"version": v0, "reason": "back to the original"})
    assert resp.status_code == 200, resp.get_json()
    assert path.read_bytes() == original
    assert resp.get_json()["version"] == v0 == _sha(path)

    # Rolling back is itself a change, and can be rolled back in turn.
    changes = client.get("/api/config/file/shop.yaml/history",
                         headers=admin).get_json()["changes"]
    assert [c["kind"] for c in changes] == ["rollback", "edit", "edit", "baseline"]
    assert changes[0]["reason"] == "back to the original" and changes[0]["current"]
    again = client.post("/api/config/file/shop.yaml/rollback", headers=admin,
                        json={"version": v2})
    assert again.status_code == 200 and path.read_text() == "shop:\n  name: Two\n"
    assert "Roll back to version" in client.get(
        "/api/config/file/shop.yaml/history", headers=admin).get_json()["changes"][0]["reason"]

    unknown = client.post("/api/config/file/shop.yaml/rollback", headers=admin,
                          json={"version": "a" * 64})
    assert unknown.status_code == 404
    stale = client.post("/api/config/file/shop.yaml/rollback", json={"version": v1},
                        headers={**admin, "If-Match": f'"{v0}"'})
    assert stale.status_code == 409 and path.read_text() == "shop:\n  name: Two\n"


def test_history_diffs_mask_secrets_for_non_admins(client, admin, viewer, folder):
    version = _read(client, admin).get_json()["version"]
    new = SHOP.replace("hunter2-real", "new-password-77").replace("Demo", "Shop")
    assert _put(client, admin, new, version).status_code == 200
    seen = client.get("/api/config/file/shop.yaml/history", headers=viewer).get_json()
    text = str(seen)
    assert "hunter2-real" not in text and "new-password-77" not in text
    assert "+  name: Shop" in seen["changes"][0]["diff"]
    full = str(client.get("/api/config/file/shop.yaml/history", headers=admin).get_json())
    assert "hunter2-real" in full and "new-password-77" in full


# ------------------------------------------------------------------ roles

def test_every_write_route_refused_to_viewers_and_operators(client, app, admin, viewer,
                                                            operator, folder):
    version = _read(client, admin).get_json()["version"]
    for headers in (viewer, operator):
        put = _put(client, headers, SHOP.replace("Demo", "Nope"), version)
        assert put.status_code == 403
        back = client.post("/api/config/file/shop.yaml/rollback", headers=headers,
                           json={"version": version})
        assert back.status_code == 403
    assert (folder / "shop.yaml").read_text() == SHOP
    with app.extensions["ops"].store.session() as sess:
        denied = sess.scalars(select(AuditEvent)
                              .where(AuditEvent.action == "permission_denied")).all()
    assert len(denied) == 4


def test_failed_write_is_audited(client, app, admin, folder):
    _put(client, admin, SHOP, "0" * 64)
    with app.extensions["ops"].store.session() as sess:
        events = sess.scalars(select(AuditEvent).where(AuditEvent.action == "config_save")).all()
    assert [e.outcome for e in events] == ["failure"]
    assert "VersionConflict" in events[0].details["error"]


# ---------------------------------------------------------------- hard links

def _refused_as_hard_link(resp):
    assert resp.status_code == 400, (resp.status_code, resp.get_json())
    error = resp.get_json()["error"]
    assert error["code"] == "invalid_name" and "hard link" in error["message"], error


def test_hard_linked_files_are_refused_on_every_route(client, admin, folder, tmp_path):
    """A second name for a file outside the folder (a hard link) would make
    that file readable and writable through the editor: refused, like a
    symlink, and left out of the listing."""
    outside = tmp_path / "outside.yaml"
    outside.write_text("db_password: from-outside-42\n")
    os.link(outside, folder / "linked.yaml")
    # A file the console already edited, later given a second name elsewhere.
    version = _read(client, admin).get_json()["version"]
    edited = _put(client, admin, SHOP.replace("Demo", "Edited"), version).get_json()["version"]
    os.link(folder / "shop.yaml", tmp_path / "elsewhere.yaml")
    before = {p: p.read_bytes() for p in (outside, tmp_path / "elsewhere.yaml")}

    for name in ("linked.yaml", "shop.yaml"):
        url = f"/api/config/file/{name}"
        _refused_as_hard_link(client.get(url, headers=admin))
        _refused_as_hard_link(client.get(url + "/history", headers=admin))
        _refused_as_hard_link(_put(client, admin, "owned: true\n", edited, name=name))
        _refused_as_hard_link(client.post(url + "/rollback", headers=admin,
                                          json={"version": version, "reason": "undo"}))
    assert {p: p.read_bytes() for p in before} == before
    names = [f["name"] for f in client.get("/api/config/files", headers=admin)
             .get_json()["files"]]
    assert "linked.yaml" not in names and "shop.yaml" not in names and "app.env" in names
    body = str(client.get("/api/config/files", headers=admin).get_json())
    assert "from-outside-42" not in body


def test_a_hard_link_made_after_the_name_was_checked_is_refused(folder, tmp_path):
    """The check holds on the open file too, not only on the name."""
    path = svc.resolve(folder, "app.env")
    os.link(path, tmp_path / "second-name.env")
    with pytest.raises(svc.PathRefused, match="hard link"):
        svc._read_bytes(path)
