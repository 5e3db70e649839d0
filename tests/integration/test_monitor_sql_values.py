"""SQL values never leave the host: a monitored app whose insert violates a
unique constraint answers 500, and what the console stores and shows of it
(the request's exception message, the captured log record with its
traceback) names the statement and the constraint but holds neither the
e-mail address nor the password hash the app tried to insert. Run against
SQLite and, with TEST_POSTGRES_URL, PostgreSQL (whose error echoes the
duplicate key in a DETAIL line)."""
from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import create_engine, text

from dashapp import monitor

EMAIL = "ann.h2@example.com"
PASSWORD_HASH = "scrypt:32768:8:1$Qm9vbXRvd24$5f1e9c0ffee"


@pytest.fixture
def host(settings, tmp_path):
    """A host app on its own database (the run's PostgreSQL when there is
    one, else a SQLite file) whose /signup inserts an existing e-mail."""
    url = settings.store_url if settings.store_url.startswith("postgresql") \
        else f"sqlite:///{tmp_path / 'host.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS h2_account"))
        conn.execute(text("CREATE TABLE h2_account (id INTEGER PRIMARY KEY, "
                          "email VARCHAR(200) NOT NULL UNIQUE, password_hash VARCHAR(200))"))
        conn.execute(text("INSERT INTO h2_account (id, email, password_hash) "
                          "VALUES (1, :e, :p)"), {"e": EMAIL, "p": PASSWORD_HASH})
    app = Flask("signup_host")

    @app.post("/signup")
    def signup():
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO h2_account (id, email, password_hash) "
                              "VALUES (2, :email, :password_hash)"),
                         {"email": EMAIL, "password_hash": PASSWORD_HASH})
        return {"ok": True}

    mon = monitor(app, engine=engine, settings=settings)
    yield app.test_client(), mon
    mon.close()
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS h2_account"))
    engine.dispose()


def _stored_text(settings) -> str:
    """Everything the console's store holds about requests and log records."""
    engine = create_engine(settings.store_url)
    try:
        with engine.connect() as conn:
            rows = [*conn.execute(text("SELECT exception_type, exception_message "
                                       "FROM ops_request")),
                    *conn.execute(text("SELECT message, extras FROM ops_log_record")),
                    *conn.execute(text("SELECT payload FROM ops_ingest"))]
    finally:
        engine.dispose()
    return "\n".join(str(value) for row in rows for value in row)


def test_a_5xx_from_a_database_error_keeps_the_statement_not_the_values(
        host, client, viewer, settings):
    host_client, mon = host
    assert host_client.post("/signup").status_code == 500
    mon.flush()

    errors = client.get("/api/metrics/errors?minutes=60&kind=server",
                        headers=viewer).get_json()["errors"]
    assert [e["exception_type"] for e in errors] == ["IntegrityError"]
    message = errors[0]["exception_message"]
    assert "INSERT INTO h2_account (id, email, password_hash)" in message
    assert "[parameters: ***]" in message
    assert EMAIL not in message and PASSWORD_HASH not in message
    if settings.store_url.startswith("postgresql"):
        assert "Key (email)=(***) already exists" in message

    # The traceback the host logged (captured by monitor) is scrubbed too, and
    # nothing the store holds carries the values.
    tail = client.get("/api/logs/tail?source=captured&lines=50", headers=viewer).get_json()
    logged = "\n".join(r["message"] for r in tail["records"])
    assert "IntegrityError" in logged and "[parameters: ***]" in logged
    stored = _stored_text(settings)
    assert "IntegrityError" in stored
    assert EMAIL not in stored and PASSWORD_HASH not in stored


def test_a_batch_from_an_older_host_is_scrubbed_when_expanded(settings):
    """A host on the previous release sent the raw message: the console
    strips the values before the row is stored (and so before it is shown)."""
    import json
    import time

    from sqlalchemy import insert, select

    from dashapp.services import ingest
    from dashapp.store import Store
    from dashapp.store.models import IngestBatch, RequestLog, utcnow

    raw = ("(psycopg.errors.UniqueViolation) duplicate key value violates unique constraint "
           "\"account_email_key\"\nDETAIL:  Key (email)=(ann.h2@example.com) already exists.\n"
           "[SQL: INSERT INTO account (email, password_hash) VALUES (%(email)s, "
           "%(password_hash)s)]\n[parameters: {'email': 'ann.h2@example.com', "
           f"'password_hash': '{PASSWORD_HASH}'}}]")
    store = Store(settings.store_url)
    store.upgrade()
    try:
        with store.engine.begin() as conn:
            conn.execute(insert(IngestBatch), [{
                "created_at": utcnow(), "process": "old:1", "events": 1,
                "payload": json.dumps({"format": 2, "queries": [], "requests": [
                    [0, time.time(), "/signup", "POST", 500, 3.0, "old-1",
                     "IntegrityError", raw]]})}])
        assert ingest.ingest(store) == 1
        with store.engine.connect() as conn:
            message = conn.execute(select(RequestLog.exception_message)).scalar_one()
    finally:
        store.close()
    assert EMAIL not in message and PASSWORD_HASH not in message
    assert "Key (email)=(***) already exists" in message and "[parameters: ***]" in message
    assert "INSERT INTO account (email, password_hash)" in message


def test_rows_stored_before_the_scrubber_are_scrubbed_when_shown(settings, client, viewer):
    """An exception message and a captured log record stored raw by an
    earlier release: the errors grid and the Logs page's captured source
    show them scrubbed all the same."""
    from datetime import datetime, timezone

    from sqlalchemy import insert

    from dashapp.store import Store
    from dashapp.store.models import LogRecord, RequestLog

    raw = ("(sqlite3.IntegrityError) UNIQUE constraint failed: account.email\n"
           "[SQL: INSERT INTO account (email, password_hash) VALUES (?, ?)]\n"
           f"[parameters: ('{EMAIL}', '{PASSWORD_HASH}')]")
    now = datetime.now(timezone.utc)
    store = Store(settings.store_url)
    try:
        with store.engine.begin() as conn:
            conn.execute(insert(RequestLog), [{
                "time": now, "endpoint": "/signup", "method": "POST", "status": 500,
                "duration_ms": 3.0, "request_id": "old-2", "exception_type": "IntegrityError",
                "exception_message": raw, "process": "old:1"}])
            conn.execute(insert(LogRecord), [{
                "time": now, "level": "ERROR", "levelno": 40, "logger": "shop",
                "message": "signup failed: " + raw, "request_id": "old-2",
                "process": "old:1", "extras": {"db_password": "hunter2-old"}}])
    finally:
        store.close()
    errors = client.get("/api/metrics/errors?minutes=60&kind=server",
                        headers=viewer).get_json()["errors"]
    message = errors[0]["exception_message"]
    assert "[parameters: ***]" in message and "INSERT INTO account" in message
    records = client.get("/api/logs/filter?source=captured&request_id=old-2",
                         headers=viewer).get_json()["records"]
    shown = str(records)
    assert records and "[parameters: ***]" in shown
    for secret in (EMAIL, PASSWORD_HASH, "hunter2-old"):
        assert secret not in message and secret not in shown
