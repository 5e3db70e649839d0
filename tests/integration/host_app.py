"""A small host application instrumented the way the README says, for tests
that run it under gunicorn. Settings come from the environment."""
from __future__ import annotations

import os
import time

from flask import Flask
from sqlalchemy import create_engine, text

from dashapp import monitor

app = Flask("host")
engine = create_engine(os.environ["HOST_DATABASE_URL"])
with engine.begin() as conn:
    conn.execute(text("CREATE TABLE IF NOT EXISTS item (id INTEGER PRIMARY KEY, name TEXT)"))

mon = monitor(app, engine=engine)


@app.get("/items/<int:item_id>")
def item(item_id: int):
    with engine.connect() as conn:
        conn.execute(text("SELECT id, name FROM item WHERE id = :id"), {"id": item_id}).all()
    # A few ms of work, so concurrent clients keep one sync worker busy and
    # the others accept connections too (with instant replies one worker
    # can serve them all on a loaded machine).
    time.sleep(0.005)
    return {"id": item_id}
