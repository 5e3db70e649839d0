"""Backups of a real SQLite database (WAL, with an application connection
open the whole time) and a real PostgreSQL database: /api/backup, its
service, the scheduler's runs and retention, and the Backups page's actions.

What a user would notice: a backup then a restore brings the data back; a
damaged backup is refused and the database is untouched; a restore that
fails part-way leaves every row as it was; roles are enforced everywhere.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import secrets
import sqlite3
import sys
import threading
from datetime import timedelta
from pathlib import Path

import dash
import pytest
from sqlalchemy import create_engine, select, text, update
from sqlalchemy.engine import make_url

from dashapp.config import load_settings, parse_backup_targets
from dashapp.services import backups as svc
from dashapp.store.models import BackupHistory, BackupSchedule, utcnow
from tests.conftest import PG_URL
from tests.helpers import token_for
from tests.integration.test_cache_api import as_user, toast_of

ROWS = 2000


# ----------------------------------------------------------------- fixtures

@pytest.fixture
def shop_db(tmp_path):
    """The monitored application's SQLite database (WAL) and its own open
    connection, as a running application holds one."""
    path = tmp_path / "app" / "shop.db"
    path.parent.mkdir()
    conn = sqlite3.connect(path, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                 "price REAL NOT NULL)")
    conn.executemany("INSERT INTO item VALUES (?, ?, ?)",
                     [(i, f"item {i} " + "x" * 200, i * 1.5) for i in range(ROWS)])
    conn.commit()
    yield path, conn
    conn.close()


@pytest.fixture
def settings(settings, shop_db):
    """The suite's settings with the shop as the backup target."""
    return settings.model_copy(update={"backup_targets": f"shop=sqlite:///{shop_db[0]}"})


@pytest.fixture
def headers(app, client):
    return {"admin": token_for(client, app),
            "operator": token_for(client, app, "op", "operator-pass-1", role="operator"),
            "viewer": token_for(client, app, "view", "viewer-pass-12", role="viewer")}


def dump(conn: sqlite3.Connection) -> list[str]:
    """Every schema statement and row of a SQLite database, in order."""
    return list(conn.iterdump())


def page_module():
    return sys.modules[next(p["module"] for p in dash.page_registry.values()
                            if p["path"] == "/backups")]


def create(client, headers, note="before the test"):
    resp = client.post("/api/backup/create", json={"target": "shop", "note": note},
                       headers=headers["operator"])
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


def restore(client, headers, backup_id, confirm="shop"):
    return client.post(f"/api/backup/{backup_id}/restore", headers=headers["admin"],
                       json={"confirm": confirm, "note": "roll back the bad deploy"})


def ops_of(app):
    return app.extensions["ops"]


def set_sha(app, backup_id: int, digest: str) -> None:
    with ops_of(app).store.session() as sess:
        sess.execute(update(BackupHistory).where(BackupHistory.id == backup_id)
                     .values(sha256=digest))


# ------------------------------------------------------------- round trip

def test_backup_change_restore_brings_the_data_back(app, client, headers, shop_db):
    path, conn = shop_db
    before = dump(conn)
    made = create(client, headers)
    assert made["status"] == "succeeded" and made["kind"] == "manual"
    assert made["created_by"] == "op" and made["note"] == "before the test"
    file = Path(ops_of(app).settings.backups_folder) / made["file"]
    assert file.stat().st_size == made["size"]
    assert hashlib.sha256(file.read_bytes()).hexdigest() == made["sha256"]
    with gzip.open(file) as gz:                     # a gzip of a SQLite database
        assert gz.read(16) == b"SQLite format 3\x00"

    conn.execute("DELETE FROM item WHERE id >= 10")
    conn.execute("UPDATE item SET price = -1")
    conn.commit()
    changed = dump(conn)

    resp = restore(client, headers, made["id"])
    assert resp.status_code == 200, resp.get_json()
    result = resp.get_json()
    assert result["status"] == "succeeded" and result["requested_by"] == "admin"
    # The application's own connection, open throughout, sees the data back.
    assert dump(conn) == before
    assert conn.execute("SELECT count(*) FROM item").fetchone()[0] == ROWS
    conn.execute("INSERT INTO item VALUES (99999, 'after', 1)")   # and can still write
    conn.commit()

    # The safety backup holds what was there before the restore: restoring it undoes it.
    safety = client.get(f"/api/backup/{result['safety_backup_id']}",
                        headers=headers["viewer"]).get_json()
    assert safety["kind"] == "safety" and safety["status"] == "succeeded"
    assert f"#{made['id']}" in safety["note"]
    assert restore(client, headers, safety["id"]).status_code == 200
    assert dump(conn) == changed

    detail = client.get(f"/api/backup/{made['id']}", headers=headers["viewer"]).get_json()
    assert [r["status"] for r in detail["restores"]] == ["succeeded"]
    events = client.get("/api/audit", headers=headers["admin"],
                        query_string={"limit": 100}).get_json()["events"]
    done = {(e["action"], e["actor"], e["outcome"]) for e in events}
    assert {("backup_create", "op", "success"),
            ("backup_restore", "admin", "success")} <= done


def test_list_download_and_delete(app, client, headers):
    first, second = create(client, headers, "one"), create(client, headers, "two")
    listed = client.get("/api/backup/list", headers=headers["viewer"]).get_json()
    assert [b["id"] for b in listed["backups"]] == [second["id"], first["id"]]
    assert listed["total"] == 2

    resp = client.get(f"/api/backup/{first['id']}/download", headers=headers["viewer"])
    assert resp.status_code == 200
    assert resp.is_streamed or resp.direct_passthrough   # sent from the file, not memory
    body = resp.get_data()
    assert hashlib.sha256(body).hexdigest() == first["sha256"]
    assert first["file"] in resp.headers["Content-Disposition"]
    again = client.get(f"/api/backup/{first['id']}/download", headers={
        **headers["viewer"], "If-None-Match": resp.headers["ETag"]})
    assert again.status_code == 304
    resp.close()

    url = f"/api/backup/{first['id']}"
    assert client.delete(url, headers=headers["operator"]).status_code == 403
    resp = client.delete(url, headers=headers["admin"])
    assert resp.status_code == 200 and resp.get_json()["status"] == "deleted"
    assert resp.get_json()["deleted_by"] == "admin"
    assert not (Path(ops_of(app).settings.backups_folder) / first["file"]).exists()
    assert client.get(f"{url}/download", headers=headers["viewer"]).status_code == 409
    assert client.delete(url, headers=headers["admin"]).status_code == 404
    listed = client.get("/api/backup/list", headers=headers["viewer"]).get_json()
    assert [b["id"] for b in listed["backups"]] == [second["id"]]

    # A file that vanished from the folder: 404, said plainly.
    (Path(ops_of(app).settings.backups_folder) / second["file"]).unlink()
    resp = client.get(f"/api/backup/{second['id']}/download", headers=headers["viewer"])
    assert resp.status_code == 404 and resp.get_json()["error"]["code"] == "file_missing"
    assert client.get("/api/backup/99999", headers=headers["viewer"]).status_code == 404


def test_a_stored_file_name_that_leaves_the_folder_is_never_used(app, client, headers,
                                                                  tmp_path):
    outside = tmp_path / "precious.txt"
    outside.write_text("keep me")
    made = create(client, headers)
    for name in ("../precious.txt", str(outside), "..", "a/../../precious.txt"):
        with ops_of(app).store.session() as sess:
            sess.execute(update(BackupHistory).where(BackupHistory.id == made["id"])
                         .values(file=name))
        resp = client.get(f"/api/backup/{made['id']}/download", headers=headers["viewer"])
        assert resp.status_code == 404, name
        assert "precious" not in resp.get_data(as_text=True) or name in resp.get_json()[
            "error"]["message"]
        assert restore(client, headers, made["id"]).status_code == 404
    assert client.delete(f"/api/backup/{made['id']}", headers=headers["admin"]) \
        .status_code == 404
    assert outside.read_text() == "keep me"


# ---------------------------------------------------------- never lose data

def test_a_corrupted_backup_is_refused_by_checksum_and_nothing_changes(app, client, headers,
                                                                       shop_db):
    _path, conn = shop_db
    made = create(client, headers)
    file = Path(ops_of(app).settings.backups_folder) / made["file"]
    raw = bytearray(file.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    file.write_bytes(bytes(raw))
    conn.execute("DELETE FROM item WHERE id < 100")
    conn.commit()
    before = dump(conn)

    resp = restore(client, headers, made["id"])
    assert resp.status_code == 409
    error = resp.get_json()["error"]
    assert error["code"] == "checksum_mismatch" and "damaged" in error["message"]
    assert dump(conn) == before
    kinds = [b["kind"] for b in client.get("/api/backup/list", headers=headers["viewer"])
             .get_json()["backups"]]
    assert kinds == ["manual"]          # refused before anything was done, not even a safety copy
    events = client.get("/api/audit", headers=headers["admin"],
                        query_string={"limit": 50}).get_json()["events"]
    assert any(e["action"] == "backup_restore" and e["outcome"] == "failure"
               for e in events)

    # A restore drill reports it too, and the result is kept on the backup.
    drill = client.post(f"/api/backup/{made['id']}/verify", headers=headers["operator"])
    assert drill.status_code == 200 and drill.get_json()["ok"] is False
    kept = client.get(f"/api/backup/{made['id']}", headers=headers["viewer"]).get_json()
    assert kept["verify"]["ok"] is False and "sha256" in kept["verify"]["message"]


def test_a_backup_holding_a_broken_database_is_refused_before_the_swap(app, client,
                                                                       headers, shop_db):
    """Checksum-correct gzip, but the database inside is damaged: the restore
    gets past the checksum and the safety backup, then refuses."""
    _path, conn = shop_db
    made = create(client, headers)
    file = Path(ops_of(app).settings.backups_folder) / made["file"]
    with gzip.open(file) as gz:
        content = bytearray(gz.read())
    content[5000:9000] = os.urandom(4000)          # wreck pages of the table's b-tree
    with gzip.open(file, "wb") as gz:
        gz.write(bytes(content))
    set_sha(app, made["id"], hashlib.sha256(file.read_bytes()).hexdigest())
    conn.execute("UPDATE item SET name = 'changed since'")
    conn.commit()
    before = dump(conn)

    resp = restore(client, headers, made["id"])
    assert resp.status_code == 422, resp.get_json()
    assert resp.get_json()["error"]["code"] == "restore_failed"
    assert "integrity" in resp.get_json()["error"]["message"] or \
        "usable" in resp.get_json()["error"]["message"]
    assert dump(conn) == before
    failed = client.get("/api/backup/restores", headers=headers["viewer"]).get_json()
    assert failed["restores"][0]["status"] == "failed"
    assert failed["restores"][0]["safety_backup_id"] is not None


def test_a_restore_that_fails_midway_leaves_every_row_as_it_was(app, shop_db):
    """The copy into the live file starts, copies pages, then fails (here:
    its time limit): SQLite rolls the whole copy back."""
    path, conn = shop_db
    conn.executemany("INSERT INTO item VALUES (?, ?, ?)",
                     [(i, "y" * 300, 0) for i in range(ROWS, 6 * ROWS)])
    conn.commit()                       # several copy steps' worth of pages
    ops = ops_of(app)
    made = svc.create_backup(ops.store, ops.settings, "shop", actor="op")
    conn.execute("DELETE FROM item WHERE id % 2 = 0")
    conn.execute("CREATE TABLE added_later (x)")
    conn.commit()
    before = dump(conn)
    with pytest.raises(svc.RestoreFailed) as failure:
        svc.restore_backup(ops.store, ops.settings, made["id"], actor="admin", timeout_s=0)
    message = str(failure.value)
    assert "exactly as it was" in message
    copied, total = (int(n.replace(",", "")) for n in
                     re.search(r"([\d,]+) of ([\d,]+) pages copied", message).groups())
    assert 0 < copied < total               # it really stopped part-way through
    assert dump(conn) == before
    other = sqlite3.connect(path)
    assert dump(other) == before and other.execute("PRAGMA integrity_check").fetchone() == \
        ("ok",)
    other.close()
    record = svc.list_restores(ops.store)[0]
    assert record["status"] == "failed" and "rolled" in record["error"]
    # The same backup restores fine without the limit.
    svc.restore_backup(ops.store, ops.settings, made["id"], actor="admin")
    assert conn.execute("SELECT count(*) FROM item").fetchone()[0] == 6 * ROWS


def test_restore_needs_the_typed_target_name_and_one_operation_at_a_time(app, client,
                                                                          headers):
    made = create(client, headers)
    resp = restore(client, headers, made["id"], confirm="sho")
    assert resp.status_code == 400 and "confirm" in resp.get_json()["error"]["message"]
    with svc.target_lock(ops_of(app).store, "shop", "backup", "someone"):
        busy = client.post("/api/backup/create", json={"target": "shop"},
                           headers=headers["operator"])
        assert busy.status_code == 409 and "someone" in busy.get_json()["error"]["message"]
        assert restore(client, headers, made["id"]).status_code == 409
    assert create(client, headers)["status"] == "succeeded"   # the lock was released
    resp = client.post("/api/backup/create", json={"target": "nope"},
                       headers=headers["operator"])
    assert resp.status_code == 404 and "shop" in resp.get_json()["error"]["message"]


def test_drill_restores_into_a_scratch_copy_and_records_counts(app, client, headers,
                                                               shop_db):
    _path, conn = shop_db
    made = create(client, headers)
    conn.execute("DELETE FROM item")
    conn.commit()
    resp = client.post(f"/api/backup/{made['id']}/verify", headers=headers["operator"])
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["ok"] is True and body["tables"] == 1 and body["rows"] == ROWS
    assert conn.execute("SELECT count(*) FROM item").fetchone()[0] == 0   # target untouched
    kept = client.get(f"/api/backup/{made['id']}", headers=headers["viewer"]).get_json()
    assert kept["verify"]["rows"] == ROWS and kept["verify"]["at"]


# -------------------------------------------------------------------- roles

def test_every_route_checks_its_role(app, client, headers):
    made = create(client, headers)
    reads = ["/api/backup/targets", "/api/backup/list", "/api/backup/restores",
             "/api/backup/schedule", f"/api/backup/{made['id']}",
             f"/api/backup/{made['id']}/download"]
    for url in reads:
        assert client.get(url).status_code == 401, url
        resp = client.get(url, headers=headers["viewer"])
        assert resp.status_code == 200, (url, resp.get_json)
        resp.close()
    changes = [
        ("POST", "/api/backup/create", {"target": "shop"}, "operator"),
        ("POST", f"/api/backup/{made['id']}/verify", None, "operator"),
        ("POST", "/api/backup/schedule", {"target": "shop", "cron": "0 3 * * *"}, "admin"),
        ("POST", f"/api/backup/{made['id']}/restore", {"confirm": "shop"}, "admin"),
        ("DELETE", f"/api/backup/{made['id']}", None, "admin"),
    ]
    order = ["viewer", "operator", "admin"]
    for method, url, body, needed in changes:
        assert client.open(url, method=method, json=body).status_code == 401
        for role in order[:order.index(needed)]:
            resp = client.open(url, method=method, json=body, headers=headers[role])
            assert resp.status_code == 403, (method, url, role)
        resp = client.open(url, method=method, json=body, headers=headers[needed])
        assert resp.status_code in (200, 201), (method, url, resp.get_json())
    events = client.get("/api/audit", headers=headers["admin"],
                        query_string={"limit": 200}).get_json()["events"]
    done = {(e["action"], e["actor"], e["outcome"]) for e in events}
    assert {("backup_verify", "op", "success"), ("backup_schedule", "admin", "success"),
            ("backup_delete", "admin", "success"), ("permission_denied", "view", "denied"),
            ("permission_denied", "op", "denied")} <= done


def test_page_actions_check_roles_and_audit(app, shop_db):
    _path, conn = shop_db
    page = page_module()
    with as_user(app, "viewer", "view") as props:
        assert page.create("shop", "x") is None
        assert "needs the operator role; you are viewer" in toast_of(props)
    with as_user(app, "operator", "op") as props:
        made = page.create("shop", "from the page")
        assert made["created_by"] == "op" and "created" in toast_of(props)
        assert page.verify(made["id"])["ok"] is True
        conn.execute("DELETE FROM item")
        conn.commit()
        assert page.restore(made["id"]) is None
        assert "needs the admin role; you are operator" in toast_of(props)
        assert page.delete(made["id"]) is None
        assert page.save_schedule("shop", "0 3 * * *", 7, None, True) is None
        assert page.ask_restore(1, made["id"]) is dash.no_update
    assert conn.execute("SELECT count(*) FROM item").fetchone()[0] == 0
    with as_user(app, "admin", "boss") as props:
        dialog = page.ask_restore(1, made["id"])
        assert dialog.is_open and "shop" in str(dialog)   # the name to type
        result = page.restore(made["id"])
        assert result["status"] == "succeeded" and "restored" in toast_of(props)
        assert page.save_schedule("shop", "61 * * * *", None, None, True) is None
        assert "cron" in toast_of(props)
        saved = page.save_schedule("shop", "30 2 * * 1", 3, None, True)
        assert saved["cron"] == "30 2 * * 1" and "saved" in toast_of(props)
    assert conn.execute("SELECT count(*) FROM item").fetchone()[0] == ROWS
    events = svc.list_backups(ops_of(app).store)["backups"]
    assert {b["kind"] for b in events} == {"manual", "safety"}


# ---------------------------------------------------------------- schedules

def test_schedule_validation_and_next_runs(client, headers):
    bad = client.post("/api/backup/schedule", headers=headers["admin"],
                      json={"target": "shop", "cron": "61 * * * *"})
    assert bad.status_code == 400 and bad.get_json()["error"]["message"].startswith("cron")
    bad = client.post("/api/backup/schedule", headers=headers["admin"],
                      json={"target": "shop", "cron": "0 3 * * *", "keep_last": 0})
    assert bad.status_code == 400 and "keep_last" in bad.get_json()["error"]["message"]
    resp = client.post("/api/backup/schedule", headers=headers["admin"],
                       json={"target": "shop", "cron": "0  3 * * *", "keep_last": 5})
    assert resp.status_code == 200, resp.get_json()
    saved = resp.get_json()
    assert saved["cron"] == "0 3 * * *" and len(saved["next_runs"]) == 3
    assert all(r.endswith("03:00:00+00:00") for r in saved["next_runs"])
    listed = client.get("/api/backup/schedule", headers=headers["viewer"]).get_json()
    assert [s["target"] for s in listed["schedules"]] == ["shop"]


def test_due_schedules_run_once_across_workers_then_retention(app):
    ops = ops_of(app)
    store, settings = ops.store, ops.settings
    svc.save_schedule(store, settings, target="shop", cron="*/5 * * * *", keep_last=2,
                      keep_days=None, enabled=True, actor="admin")
    manual = svc.create_backup(store, settings, "shop", actor="op", note="keep me")
    with store.session() as sess:
        nxt = sess.scalar(select(BackupSchedule.next_run_at))
    ran = []
    for round_ in range(4):
        now = as_aware(nxt) + timedelta(minutes=5 * round_, seconds=1)
        # Two workers wake up at the same moment: the schedule runs once.
        results: list = []
        workers = [threading.Thread(target=lambda: results.extend(
            svc.run_due_schedules(store, settings, now=now))) for _ in range(2)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        assert len(results) == 1, results
        ran.append(results[0]["backup_id"])
        assert svc.run_due_schedules(store, settings, now=now) == []   # not due again
    backups = svc.list_backups(store, include_deleted=True)["backups"]
    alive = {b["id"] for b in backups if b["status"] == "succeeded"}
    assert alive == {manual["id"], ran[-1], ran[-2]}          # keep_last=2, manual kept
    gone = [b for b in backups if b["status"] == "deleted"]
    assert {b["id"] for b in gone} == set(ran[:2])
    assert all(b["deleted_by"] == "scheduler" for b in gone)
    folder = Path(settings.backups_folder)
    assert not any((folder / b["file"]).exists() for b in gone)
    assert all(b["created_by"] == "scheduler" and b["kind"] == "scheduled"
               for b in backups if b["id"] in ran)


def as_aware(value):
    from dashapp.store.models import as_utc
    return as_utc(value)


def test_stale_warning_when_backups_are_older_than_the_schedule_promises(app, client,
                                                                         headers):
    store = ops_of(app).store
    svc.save_schedule(store, ops_of(app).settings, target="shop", cron="0 * * * *",
                      keep_last=None, keep_days=None, enabled=True, actor="admin")
    with store.session() as sess:
        sess.execute(update(BackupSchedule).values(updated_at=utcnow() - timedelta(hours=3)))
    target = client.get("/api/backup/targets", headers=headers["viewer"]).get_json()[
        "targets"][0]
    assert target["stale"] is True and target["newest_good_at"] is None
    create(client, headers)
    target = client.get("/api/backup/targets", headers=headers["viewer"]).get_json()[
        "targets"][0]
    assert target["stale"] is False and target["newest_good_age_s"] < 60
    assert target["location"].endswith("shop.db") and target["engine"] == "sqlite"


def test_retention_rules():
    now = utcnow()

    def row(id_, kind, days, status="succeeded"):
        return BackupHistory(id=id_, kind=kind, status=status,
                             started_at=now - timedelta(days=days))
    rows = [row(1, "scheduled", 1), row(2, "scheduled", 2), row(3, "scheduled", 3),
            row(4, "scheduled", 10), row(5, "manual", 30), row(6, "safety", 8),
            row(7, "safety", 2)]
    assert svc.retention_victims(rows, 2, None, now) == [3, 4, 6]
    assert svc.retention_victims(rows, None, 5, now) == [4, 6]
    assert svc.retention_victims(rows, 1, 5, now) == [4, 6]    # either rule keeps
    assert svc.retention_victims(rows, None, None, now) == [6]
    # The newest good backup survives whatever the rules say.
    assert svc.retention_victims([row(9, "scheduled", 40)], 1, 1, now) == []
    assert svc.retention_victims([row(8, "scheduled", 1), row(9, "scheduled", 40)],
                                 None, 1, now) == [9]


def test_backup_targets_setting(tmp_path, monkeypatch):
    assert parse_backup_targets("a=sqlite:////x/a.db, b=postgresql://u:p@h/db") == {
        "a": "sqlite:////x/a.db", "b": "postgresql://u:p@h/db"}
    for bad in ("a", "A=sqlite:////x", "a=mysql://h/db", "a=sqlite://",
                "a=sqlite:////x,a=sqlite:////y"):
        with pytest.raises(ValueError):
            parse_backup_targets(bad)
    from dashapp.config import SettingsError
    monkeypatch.setenv("OPS_BACKUP_TARGETS", "x=mysql://u:pw-s3cret@h/db")
    with pytest.raises(SettingsError) as bad:
        load_settings(instance_dir=tmp_path)
    assert str(bad.value).startswith("OPS_BACKUP_TARGETS: x:")
    assert "pw-s3cret" not in str(bad.value)
    monkeypatch.delenv("OPS_BACKUP_TARGETS")
    demo = load_settings(instance_dir=tmp_path, demo=True)
    assert demo.backup_target_urls == {"shop": f"sqlite:///{tmp_path / 'demo' / 'shop.db'}"}
    assert load_settings(instance_dir=tmp_path, demo=False).backup_target_urls == {}


# --------------------------------------------------------------- PostgreSQL

@pytest.fixture
def pg_target(pg_url):
    """A database of this test's own on the test server, named test_backups_…
    when the test server's database is test_backups; dropped afterwards."""
    base = make_url(PG_URL)
    name = f"{base.database}_t_{secrets.token_hex(4)}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = base.set(database=name).render_as_string(hide_password=False)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE item (id int PRIMARY KEY, name text NOT NULL)"))
        conn.execute(text("INSERT INTO item SELECT g, 'item ' || g "
                          "FROM generate_series(1, 500) g"))
    yield url, engine
    engine.dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        left = conn.execute(text("SELECT datname FROM pg_database WHERE datname LIKE :p"),
                            {"p": f"{name}%"}).scalars().all()
    admin.dispose()
    assert left == [], f"scratch databases left behind: {left}"


@pytest.fixture
def pg_app(tmp_path, redis_url, redis_client, pg_url, pg_target):
    from dashapp import create_app
    from tests.conftest import ADMIN_PASSWORD
    settings = load_settings(
        instance_dir=tmp_path / "instance", database_url=pg_url, redis_url=redis_url,
        demo=False, admin_password=ADMIN_PASSWORD, secret_key="test-secret-key",
        scheduler=False, backup_targets=f"crm={pg_target[0]}")
    dash_app = create_app(settings)
    yield dash_app.server
    dash_app.server.extensions["ops"].close()


def pg_rows(engine) -> list:
    with engine.connect() as conn:
        return conn.execute(text("SELECT id, name FROM item ORDER BY id")).all()


def test_postgres_backup_restore_and_drill(pg_app, pg_target):
    _url, engine = pg_target
    client = pg_app.test_client()
    admin = token_for(client, pg_app)
    before = pg_rows(engine)
    resp = client.post("/api/backup/create", json={"target": "crm", "note": "pg"},
                       headers=admin)
    assert resp.status_code == 201, resp.get_json()
    made = resp.get_json()
    assert made["engine"] == "postgresql" and made["file"].endswith(".dump")
    file = Path(pg_app.extensions["ops"].settings.backups_folder) / made["file"]
    assert file.read_bytes()[:5] == b"PGDMP"          # pg_dump's custom format

    with engine.begin() as conn:
        conn.execute(text("DELETE FROM item WHERE id > 10"))
        conn.execute(text("UPDATE item SET name = 'changed'"))
    resp = client.post(f"/api/backup/{made['id']}/restore", headers=admin,
                       json={"confirm": "crm"})
    assert resp.status_code == 200, resp.get_json()
    assert pg_rows(engine) == before

    drill = client.post(f"/api/backup/{made['id']}/verify", headers=admin).get_json()
    assert drill["ok"] is True and drill["tables"] == 1 and drill["rows"] == 500


def test_postgres_restore_that_fails_midway_rolls_back(pg_app, pg_target):
    """pg_restore drops and recreates inside one transaction; here a view
    created after the backup makes DROP TABLE fail part-way: nothing changes."""
    _url, engine = pg_target
    ops = pg_app.extensions["ops"]
    made = svc.create_backup(ops.store, ops.settings, "crm", actor="op")
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM item WHERE id > 100"))
        conn.execute(text("CREATE TABLE extra (x int)"))
        conn.execute(text("INSERT INTO extra VALUES (1)"))
        conn.execute(text("CREATE VIEW cheap AS SELECT * FROM item WHERE id < 5"))
    before = pg_rows(engine)
    with pytest.raises(svc.RestoreFailed) as failure:
        svc.restore_backup(ops.store, ops.settings, made["id"], actor="admin")
    assert "rolled back" in str(failure.value) and "depend" in str(failure.value)
    assert pg_rows(engine) == before
    with engine.connect() as conn:
        assert conn.execute(text("SELECT x FROM extra")).scalar_one() == 1
        assert conn.execute(text("SELECT count(*) FROM cheap")).scalar_one() == 4

    # A damaged dump (checksum-correct) never reaches the database either.
    file = svc.file_path(ops.settings, made["file"])
    file.write_bytes(b"PGDMP" + os.urandom(2000))
    with ops.store.session() as sess:
        sess.execute(update(BackupHistory).where(BackupHistory.id == made["id"])
                     .values(sha256=svc.sha256_of(file)))
    with pytest.raises(svc.RestoreFailed):
        svc.restore_backup(ops.store, ops.settings, made["id"], actor="admin")
    assert pg_rows(engine) == before
    assert svc.verify_backup(ops.store, ops.settings, made["id"])["ok"] is False


def test_postgres_password_never_shows(pg_app, tmp_path):
    """A wrong password in the target URL: the error says why, without it."""
    ops = pg_app.extensions["ops"]
    url = make_url(PG_URL).set(username="nobody_here", password="s3cret-Pa55",
                               database="test_backups_none")
    settings = ops.settings.model_copy(update={
        "backup_targets": f"bad={url.render_as_string(hide_password=False)}"})
    with pytest.raises(svc.BackupFailed) as failure:
        svc.create_backup(ops.store, settings, "bad", actor="op")
    assert "s3cret-Pa55" not in str(failure.value)
    assert "pg_dump" in str(failure.value)
    row = svc.list_backups(ops.store, target="bad")["backups"][0]
    assert row["status"] == "failed" and "s3cret-Pa55" not in row["error"]
    assert "s3cret-Pa55" not in svc.target_overview(ops.store, settings)[0]["location"]


def test_runs_left_running_by_a_dead_worker_are_marked_failed(app):
    store = ops_of(app).store
    with store.session() as sess:
        sess.add(BackupHistory(target="shop", engine="sqlite", kind="manual",
                               status="running", created_by="op", note="",
                               started_at=utcnow() - timedelta(days=1)))
        sess.add(BackupHistory(target="shop", engine="sqlite", kind="manual",
                               status="running", created_by="op", note="",
                               started_at=utcnow()))
    assert svc.mark_interrupted(store) == 1
    statuses = sorted(b["status"] for b in svc.list_backups(store)["backups"])
    assert statuses == ["failed", "running"]


def test_missing_pg_dump_is_a_clear_503(app, client, headers, monkeypatch):
    ops = ops_of(app)
    ops.settings = ops.settings.model_copy(update={
        "backup_targets": "crm=postgresql+psycopg://app:pw-s3cret@127.0.0.1:1/crm"})
    monkeypatch.setenv("PATH", "/nonexistent")
    resp = client.post("/api/backup/create", json={"target": "crm"},
                       headers=headers["operator"])
    assert resp.status_code == 503
    error = resp.get_json()["error"]
    assert error["code"] == "tool_missing" and "postgresql-client" in error["message"]
    assert "pw-s3cret" not in resp.get_data(as_text=True)
    target = client.get("/api/backup/targets", headers=headers["viewer"]).get_json()
    crm = target["targets"][0]
    assert crm["tools_ok"] is False and crm["location"] == "app@127.0.0.1:1/crm"
    assert "pw-s3cret" not in json.dumps(target)
