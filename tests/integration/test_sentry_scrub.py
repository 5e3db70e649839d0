"""What a monitored host sends to Sentry passes the same scrubber: a 5xx
from a database error reaches Sentry with its statement but without the
values the app tried to insert (in the exception message, the logged error
or the frames' local variables). A real HTTP server plays Sentry's ingest."""
from __future__ import annotations

from tests.integration.test_sentry import run, sentry_sink  # noqa: F401 - fixture

HOST = """
from flask import Flask
from sqlalchemy import create_engine, text
from dashapp import monitor
from dashapp.config import load_settings
import sentry_sdk
engine = create_engine("sqlite:///host.db")
with engine.begin() as conn:
    conn.execute(text("CREATE TABLE account (id INTEGER PRIMARY KEY, email TEXT UNIQUE, "
                      "password_hash TEXT)"))
    conn.execute(text("INSERT INTO account VALUES (1, 'ann.h2@example.com', 'x')"))
host = Flask("host")

@host.get("/signup")
def signup():
    email, password_hash = "ann.h2@example.com", "scrypt:32768:8:1$h2hash$beef"
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO account (email, password_hash) VALUES (:e, :p)"),
                     {"e": email, "p": password_hash})
    return "ok"

mon = monitor(host, engine=engine, settings=load_settings(instance_dir=INSTANCE, demo=False))
assert host.test_client().get("/signup").status_code == 500
sentry_sdk.flush(10)
mon.close()
print("sentry", sentry_sdk.get_client().is_active())
print("done")
"""


def test_database_errors_reach_sentry_without_their_values(tmp_path, redis_url, store_url,
                                                          sentry_sink):  # noqa: F811
    dsn, received = sentry_sink
    assert "sentry True" in run(HOST, tmp_path, redis_url, store_url, dsn)
    events = b"".join(received)
    assert b"IntegrityError" in events and b"INSERT INTO account" in events
    assert b"[parameters: ***]" in events
    assert b"ann.h2@example.com" not in events and b"h2hash" not in events
