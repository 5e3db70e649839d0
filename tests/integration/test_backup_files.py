"""The files the console keeps on disk are owner-only, and a restore that
fails leaves nothing extra behind.

What a user would notice: the store (and its WAL), every backup and every
temporary file of a backup or restore are readable by the console's own
user only (0600) whatever the process umask; a failed restore leaves the
backup folder and the backup list exactly as they were.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import sqlite3
import stat
import threading
from pathlib import Path

import pytest
from sqlalchemy import text, update

from dashapp.services import backups as svc
from dashapp.store import Store
from dashapp.store.models import BackupHistory
from tests.integration.test_backups import (headers, pg_app, pg_rows, pg_target,  # noqa: F401
                                            restore, settings, shop_db)


@pytest.fixture
def open_umask():
    """A permissive umask, as a service manager may leave it: the console
    must not rely on the umask for its files' modes."""
    old = os.umask(0o002)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def folder_files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


class ModeWatcher:
    """Polls a folder (and its subfolders) while an operation runs and
    records the mode of every file it sees, temporary ones included."""

    def __init__(self, folder: Path):
        self.folder, self.seen, self._stop = folder, {}, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            # os.walk skips a folder that vanishes while it looks (the
            # restore's scratch folder does).
            for current, _dirs, names in os.walk(self.folder):
                for name in names:
                    try:
                        st = os.lstat(os.path.join(current, name))
                    except FileNotFoundError:
                        continue
                    if stat.S_ISREG(st.st_mode):
                        self.seen.setdefault(name, stat.S_IMODE(st.st_mode))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *_exc):
        self._stop.set()
        self._thread.join()


# -------------------------------------------------------------- the store

def test_the_sqlite_store_and_its_wal_are_owner_only(tmp_path, open_umask):
    path = tmp_path / "instance" / "ops.db"
    store = Store(f"sqlite:///{path}")
    try:
        store.upgrade()
        with store.engine.begin() as conn:      # a write: the WAL and its index exist
            conn.execute(text("CREATE TABLE probe (x)"))
            conn.execute(text("INSERT INTO probe VALUES (1)"))
        files = [path, path.with_name("ops.db-wal"), path.with_name("ops.db-shm")]
        assert all(f.exists() for f in files), files
        assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}
    finally:
        store.close()


# ----------------------------------------------------------------- backups

def test_backup_files_and_their_temporary_files_are_owner_only(app, client, headers,  # noqa: F811
                                                               shop_db, open_umask):
    path, conn = shop_db
    conn.executemany("INSERT INTO item VALUES (?, ?, ?)",
                     [(i, os.urandom(300).hex(), 0) for i in range(10_000, 30_000)])
    conn.commit()                                # big enough to watch its temporary files
    ops = app.extensions["ops"]
    folder = Path(ops.settings.backups_folder)
    with ModeWatcher(folder) as watcher:
        made = svc.create_backup(ops.store, ops.settings, "shop", actor="op")
        result = restore(client, headers, made["id"])
        assert result.status_code == 200, result.get_json()
        drill = svc.verify_backup(ops.store, ops.settings, made["id"])
        assert drill["ok"], drill
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    assert len(files) == 2                        # the backup and the restore's safety copy
    assert {p.name: mode(p) for p in files} == {p.name: 0o600 for p in files}
    assert made["file"] in watcher.seen
    assert {".partial", ".snapshot", "restore.db"} <= {  # temporary files were watched
        "restore.db" if n == "restore.db" else os.path.splitext(n)[1] for n in watcher.seen}
    assert {n: m for n, m in watcher.seen.items() if m != 0o600} == {}, watcher.seen


# ---------------------------------------------------------- failed restore

def _wreck(app, made) -> None:
    """A backup whose gzip (and recorded sha256) are fine but whose database
    is damaged: the restore gets past the checksum and the safety backup."""
    file = Path(app.extensions["ops"].settings.backups_folder) / made["file"]
    with gzip.open(file) as gz:
        content = bytearray(gz.read())
    content[5000:9000] = os.urandom(4000)
    with gzip.open(file, "wb") as gz:
        gz.write(bytes(content))
    with app.extensions["ops"].store.session() as sess:
        sess.execute(update(BackupHistory).where(BackupHistory.id == made["id"])
                     .values(sha256=hashlib.sha256(file.read_bytes()).hexdigest()))


def test_a_failed_restore_leaves_no_safety_backup_behind(app, client, headers,  # noqa: F811
                                                        shop_db):
    _path, conn = shop_db
    resp = client.post("/api/backup/create", json={"target": "shop"},
                       headers=headers["operator"])
    made = resp.get_json()
    _wreck(app, made)
    folder = Path(app.extensions["ops"].settings.backups_folder)
    files_before = folder_files(folder)
    listed_before = client.get("/api/backup/list", headers=headers["viewer"]).get_json()
    rows_before = conn.execute("SELECT count(*) FROM item").fetchone()[0]

    resp = restore(client, headers, made["id"])
    assert resp.status_code == 422, resp.get_json()
    assert "safety backup" in resp.get_json()["error"]["message"]

    assert folder_files(folder) == files_before
    listed = client.get("/api/backup/list", headers=headers["viewer"]).get_json()
    assert [b["id"] for b in listed["backups"]] == [b["id"] for b in listed_before["backups"]]
    assert listed["total"] == listed_before["total"] == 1
    assert conn.execute("SELECT count(*) FROM item").fetchone()[0] == rows_before
    record = client.get("/api/backup/restores", headers=headers["viewer"]).get_json()
    assert record["restores"][0]["status"] == "failed"
    # A restore that works still keeps its safety backup.
    good = svc.create_backup(app.extensions["ops"].store, app.extensions["ops"].settings,
                             "shop", actor="op")
    assert restore(client, headers, good["id"]).status_code == 200
    kinds = sorted(b["kind"] for b in client.get(
        "/api/backup/list", headers=headers["viewer"]).get_json()["backups"])
    assert kinds == ["manual", "manual", "safety"]


def test_postgres_failed_restore_leaves_no_safety_dump_and_dumps_are_owner_only(
        pg_app, pg_target, open_umask):  # noqa: F811
    _url, engine = pg_target
    ops = pg_app.extensions["ops"]
    folder = Path(ops.settings.backups_folder)
    made = svc.create_backup(ops.store, ops.settings, "crm", actor="op")
    with engine.begin() as conn:          # a view the dump's DROP TABLE cannot pass
        conn.execute(text("CREATE VIEW cheap AS SELECT * FROM item WHERE id < 5"))
    before, files_before = pg_rows(engine), folder_files(folder)
    with pytest.raises(svc.RestoreFailed):
        svc.restore_backup(ops.store, ops.settings, made["id"], actor="admin")
    assert pg_rows(engine) == before
    assert folder_files(folder) == files_before
    assert [b["kind"] for b in svc.list_backups(ops.store)["backups"]] == ["manual"]
    assert mode(folder / made["file"]) == 0o600


def test_sqlite_temp_copy_of_a_restore_is_owner_only(tmp_path, open_umask):
    """The decompressed scratch copy a restore checks before copying in."""
    db = tmp_path / "src.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    packed = tmp_path / "src.sqlite.gz"
    with gzip.open(packed, "wb") as gz:
        gz.write(db.read_bytes())
    out = tmp_path / "scratch.db"
    svc._decompress(packed, out)
    assert mode(out) == 0o600
