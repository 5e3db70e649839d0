"""A host application instrumented exactly as the README's "Instrumenting
your app" says (one setting, OPS_DSN, and one line), run as a process of its
own by the end-to-end tests: `python agent_host.py <port> <database file>`."""
from __future__ import annotations

import logging
import sys

from flask import Flask
from sqlalchemy import create_engine, text
from werkzeug.serving import make_server

import ops_agent

app = Flask("agent_host")
engine = create_engine(f"sqlite:///{sys.argv[2]}")
with engine.begin() as conn:
    conn.execute(text("CREATE TABLE IF NOT EXISTS item (id INTEGER PRIMARY KEY, name TEXT)"))

ops_agent.monitor(app, engine=engine)
log = logging.getLogger("agent_host")
log.setLevel(logging.INFO)


@app.get("/items/<int:item_id>")
def item(item_id: int):
    with engine.connect() as conn:
        conn.execute(text("SELECT id, name FROM item WHERE id = :id"), {"id": item_id}).all()
    log.info("item %s served", item_id)
    return {"id": item_id}


@app.get("/broken")
def broken():
    with engine.connect() as conn:  # the statement behind this 500 is recorded too
        conn.execute(text("SELECT * FROM no_such_table WHERE id = :id"), {"id": 7}).all()
    return {}


if __name__ == "__main__":
    server = make_server("127.0.0.1", int(sys.argv[1]), app, threaded=True)
    print("ready", flush=True)
    server.serve_forever()
