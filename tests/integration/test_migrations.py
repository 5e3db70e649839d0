"""Alembic owns the schema: upgrade and downgrade on SQLite and PostgreSQL.

Written over the revision graph (ScriptDirectory.walk_revisions), not a
list of revision numbers, so a new migration is covered the day it lands:
from an empty database up to head and back to nothing; every revision
down and up one step at a time, each step restoring the exact schema it
had before; and the upgrade of a database at the previous release's head
(head's down_revision) that holds data: the rows survive, the console
starts on it and serves them, and one step back down keeps them too.
"""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, Table, inspect, select, text

from dashapp.store import Store, alembic_config

TABLES = {"ops_user", "ops_api_token", "ops_audit_event", "ops_request_minute",
          "ops_request", "ops_query", "ops_monitor_process"}


def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config("sqlite://"))


def _revisions() -> list[str]:
    """Every revision, oldest first."""
    return [rev.revision for rev in reversed(list(_script().walk_revisions()))]


def _previous_release() -> str:
    """The previous release's head: the revision head was written on top of."""
    script = _script()
    down = script.get_revision(script.get_current_head()).down_revision
    assert isinstance(down, str), "head must have exactly one parent revision"
    return down


def _current(store: Store) -> str | None:
    with store.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _schema(store: Store) -> dict:
    """Tables with their columns (name, nullability), indexes, unique and
    foreign keys: what a migration's downgrade must put back exactly."""
    insp = inspect(store.engine)
    shape = {}
    for table in sorted(insp.get_table_names()):
        if table == "alembic_version":
            continue
        shape[table] = {
            "columns": sorted((c["name"], bool(c["nullable"])) for c in insp.get_columns(table)),
            "indexes": sorted((ix["name"], tuple(ix["column_names"]), bool(ix["unique"]))
                              for ix in insp.get_indexes(table)),
            "foreign_keys": sorted((tuple(fk["constrained_columns"]), fk["referred_table"])
                                   for fk in insp.get_foreign_keys(table)),
            "primary_key": tuple(insp.get_pk_constraint(table)["constrained_columns"]),
        }
    return shape


def _leftovers(store: Store) -> list[str]:
    """Anything the migrations created that is still there at base."""
    found = [f"table {t}" for t in inspect(store.engine).get_table_names()
             if t != "alembic_version"]
    with store.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            found += [f"{kind} {name}" for kind, name in conn.execute(text(
                "SELECT CASE c.relkind WHEN 'S' THEN 'sequence' WHEN 'v' THEN 'view' "
                "WHEN 'i' THEN 'index' ELSE 'relation' END, c.relname FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' "
                "AND c.relname NOT LIKE 'alembic_version%'"))]
            found += [f"type {name}" for (name,) in conn.execute(text(
                "SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
                "WHERE n.nspname = 'public' AND t.typtype IN ('e', 'd')"))]
        else:
            found += [f"{kind} {name}" for kind, name in conn.execute(text(
                "SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' "
                "AND tbl_name != 'alembic_version'"))]
    return found


@pytest.fixture
def store(store_url):
    store = Store(store_url)
    yield store
    store.close()


def test_the_revisions_form_one_line():
    """One base, one head, no branches: upgrades have one order everywhere."""
    script = _script()
    revisions = list(script.walk_revisions())
    assert len(script.get_heads()) == 1 and len(script.get_bases()) == 1
    assert all(not rev.is_merge_point and not rev.is_branch_point for rev in revisions)
    assert len(revisions) >= 2, "a previous release exists"


def test_upgrade_then_downgrade(store):
    store.upgrade()
    assert _current(store) == _script().get_current_head()
    insp = inspect(store.engine)
    assert TABLES <= set(insp.get_table_names())
    index_names = {ix["name"] for ix in insp.get_indexes("ops_audit_event")}
    assert {"ix_audit_time", "ix_audit_actor_time", "ix_audit_action_time"} <= index_names
    at_head = _schema(store)

    store.downgrade("base")
    assert _current(store) is None
    assert _leftovers(store) == []

    store.upgrade()  # and back up again: the downgrade really was complete
    assert _schema(store) == at_head


def test_every_revision_steps_down_and_up(store):
    """Each downgrade restores exactly the schema its upgrade started from,
    and upgrading again one step at a time rebuilds the same schema."""
    snapshots = {None: {}}
    for revision in _revisions():
        store.upgrade(revision)
        assert _current(store) == revision
        snapshots[revision] = _schema(store)

    for revision in reversed(_revisions()):
        parent = _script().get_revision(revision).down_revision
        store.downgrade("-1")
        assert _current(store) == parent, f"downgrade of {revision}"
        assert _schema(store) == snapshots[parent], f"downgrade of {revision} left changes"

    for revision in _revisions():
        store.upgrade("+1")
        assert _current(store) == revision
        assert _schema(store) == snapshots[revision], f"re-upgrade to {revision} differs"


def test_models_match_migrations(store):
    """autogenerate finds nothing to do: the models and migrations agree."""
    from alembic.autogenerate import compare_metadata
    from dashapp.store.models import Base
    store.upgrade()
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


# ----- from the previous release's schema, with data ------------------------
OLD_PASSWORD = "old-release-pass-1234"
OLD_TOKEN = "ops_token-made-by-the-previous-release-0123456789"


def _old_rows() -> dict[str, dict]:
    """One representative row per table, as the previous release wrote it
    (only columns that release had; ids far from anything the app makes)."""
    from werkzeug.security import generate_password_hash
    from dashapp.security.auth import hash_token
    now = datetime.now(timezone.utc).replace(microsecond=0)
    process = "old-host:4242"
    return {
        "ops_user": dict(id=900, username="old-admin", role="admin", active=True,
                         password_hash=generate_password_hash(OLD_PASSWORD), created_at=now),
        "ops_api_token": dict(id=900, user_id=900, name="ci", token_hash=hash_token(OLD_TOKEN),
                              prefix=OLD_TOKEN[:12], created_at=now),
        "ops_audit_event": dict(id=900, time=now, actor="old-admin", action="cache_clear",
                                target="cache:products:*", outcome="success", ip="10.0.0.9"),
        "ops_request": dict(id=900, time=now, endpoint="/orders/<int:id>", method="GET",
                            status=500, duration_ms=12.5, request_id="req-old-1",
                            exception_type="KeyError", process=process),
        "ops_query": dict(id=900, time=now, fingerprint="0123456789abcdef",
                          sql="SELECT * FROM orders WHERE id = ?", duration_ms=3.25, rows=1,
                          request_id="req-old-1", endpoint="/orders/<int:id>", process=process),
        "ops_monitor_process": dict(id=900, process=process, app_name="shop", started_at=now,
                                    last_seen=now, recorded_requests=10, recorded_queries=20,
                                    dropped=0),
        "ops_job_run": dict(id=900, job_id="nightly-report", name="Nightly report",
                            func="shop.jobs:nightly", status="failed", origin="schedule",
                            process=process, time=now, started_at=now, finished_at=now,
                            duration_ms=40.0, error_type="ValueError", error_message="boom",
                            attempt=1, cancel_requested=False),
        "ops_backup": dict(id=900, target="shop", engine="sqlite", kind="manual",
                           status="succeeded", file="shop-old.sqlite.gz", size=1234,
                           sha256="a" * 64, started_at=now, finished_at=now,
                           created_by="old-admin", note="before the upgrade"),
        "ops_config_change": dict(id=900, file="shop.yaml", time=now, actor="old-admin",
                                  kind="baseline", reason="first seen", version_after="b" * 64,
                                  size=5, content=b"a: 1\n", diff=""),
        "ops_log_record": dict(id=900, time=now, level="ERROR", levelno=40, logger="shop.orders",
                               message="payment failed", request_id="req-old-1",
                               process=process),
        "ops_profile_session": dict(id=900, status="done", requested_by="old-admin",
                                    created_at=now, started_at=now, ended_at=now,
                                    interval_s=0.001, memory=False),
    }


def _insert(store: Store, rows: dict[str, dict]) -> dict[str, dict]:
    """Insert through the tables as they are now (reflected, not the models,
    which describe head). Returns what was inserted, per table."""
    inserted = {}
    with store.engine.begin() as conn:
        present = set(inspect(conn).get_table_names())
        for name, row in rows.items():
            if name not in present:
                continue
            table = Table(name, MetaData(), autoload_with=conn)
            missing = set(row) - set(table.c.keys())
            assert not missing, f"{name} lacks {missing} at the previous release"
            conn.execute(table.insert(), row)
            inserted[name] = row
    if store.engine.dialect.name == "postgresql":  # explicit ids: move sequences past them
        with store.engine.begin() as conn:
            for name in inserted:
                conn.execute(text(
                    f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                    f"(SELECT max(id) FROM {name}))"))
    return inserted


def _assert_rows_survive(store: Store, inserted: dict[str, dict]) -> None:
    with store.engine.connect() as conn:
        for name, row in inserted.items():
            table = Table(name, MetaData(), autoload_with=conn)
            found = conn.execute(select(table).where(table.c.id == row["id"])).mappings().one_or_none()
            assert found is not None, f"the {name} row was lost"
            for column, value in row.items():
                if isinstance(value, datetime):
                    continue  # SQLite hands back naive times; presence is enough
                got = found[column]
                got = bytes(got) if isinstance(got, memoryview) else got
                assert got == value, f"{name}.{column} changed: {value!r} -> {got!r}"


def test_previous_release_upgrades_with_its_data(store, store_url, redis_url, redis_client,
                                                 tmp_path):
    previous = _previous_release()
    store.upgrade(previous)
    assert _current(store) == previous
    inserted = _insert(store, _old_rows())
    assert {"ops_user", "ops_audit_event", "ops_request", "ops_job_run",
            "ops_backup"} <= set(inserted)

    store.upgrade()
    assert _current(store) == _script().get_current_head()
    _assert_rows_survive(store, inserted)

    # The console starts on the upgraded store and serves the old data.
    from dashapp import create_app
    from dashapp.config import load_settings
    settings = load_settings(
        instance_dir=tmp_path / "instance", database_url=store_url, redis_url=redis_url,
        demo=False, admin_password="admin-pass-1234", secret_key="test-secret-key",
        scheduler=False)
    dash_app = create_app(settings)
    try:
        client = dash_app.server.test_client()
        old_token = {"Authorization": f"Bearer {OLD_TOKEN}"}
        assert client.get("/api/health").status_code == 200
        resp = client.post("/api/auth/token",
                           json={"username": "old-admin", "password": OLD_PASSWORD})
        assert resp.status_code == 200, resp.get_json()
        run = client.get("/api/jobs/900", headers=old_token)
        assert run.status_code == 200, run.get_json()
        assert run.get_json()["job_id"] == "nightly-report"
        backup = client.get("/api/backup/900", headers=old_token)
        assert backup.status_code == 200, backup.get_json()
        assert backup.get_json()["note"] == "before the upgrade"
    finally:
        dash_app.server.extensions["ops"].close()

    # One step back down: the previous release's tables keep their rows.
    store.downgrade("-1")
    assert _current(store) == previous
    _assert_rows_survive(store, inserted)
