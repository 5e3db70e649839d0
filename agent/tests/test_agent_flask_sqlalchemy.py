"""Flask-SQLAlchemy as its users write it: the engine exists only inside an
application context, so the README's line is
`with app.app_context(): mon.watch_engine(db.engine)`."""
from __future__ import annotations

from flask import Flask

import ops_agent
from conftest import require


def _shop(tmp_path, console, monitors, *, factory: bool):
    flask_sqlalchemy = require("flask_sqlalchemy")
    db = flask_sqlalchemy.SQLAlchemy()

    class Product(db.Model):
        __tablename__ = "products"
        id = db.Column(db.Integer, primary_key=True)
        name = db.Column(db.String(80), nullable=False)

    app = Flask("shop")
    app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{tmp_path / 'shop.db'}"
    db.init_app(app)

    @app.route("/products/<int:pid>")
    def product(pid):
        found = db.session.get(Product, pid)
        return {"name": found.name if found else None}

    @app.route("/products", methods=["POST"])
    def add():
        db.session.add(Product(name="confidential-gadget"))
        db.session.commit()
        return {"ok": True}, 201

    mon = ops_agent.monitor(app, dsn=console.dsn(), release="1.4.2")
    monitors.append(mon)
    with app.app_context():
        db.create_all()
        if factory:
            mon.watch_engine(db.engine)
        else:
            assert ops_agent.monitor(app, engine=db.engine) is mon
    return app, mon


def test_watch_engine_inside_app_context(tmp_path, console, monitors):
    app, mon = _shop(tmp_path, console, monitors, factory=True)
    client = app.test_client()
    created = client.post("/products")
    assert created.status_code == 201
    got = client.get("/products/1")
    assert got.get_json() == {"name": "confidential-gadget"}
    queries = console.wait_for(lambda: len(console.events("queries")) >= 2 and
                               console.events("queries"), timeout=2.5)
    by_request = {}
    for q in queries:
        by_request.setdefault(q[5], []).append(q[2])
    inserts = by_request[created.headers["X-Request-ID"]]
    assert any(sql.startswith("INSERT INTO products (name) VALUES") for sql in inserts)
    selects = by_request[got.headers["X-Request-ID"]]
    assert any(sql.startswith("SELECT products.id") and
               sql.endswith("FROM products WHERE products.id = ?") for sql in selects)
    assert {q[6] for q in queries if q[5] == got.headers["X-Request-ID"]} == {
        "/products/<int:pid>"}
    assert "confidential-gadget" not in "".join(a.raw for a in console.attempts)


def test_engine_passed_to_monitor_again_inside_app_context(tmp_path, console, monitors):
    app, mon = _shop(tmp_path, console, monitors, factory=False)
    got = app.test_client().get("/products/7")
    assert got.get_json() == {"name": None}
    assert mon.flush() is True
    assert [q[5] for q in console.events("queries")] == [got.headers["X-Request-ID"]]
    assert len(mon.engines) == 1


def test_passing_the_extension_instead_of_its_engine(tmp_path, console, monitors, caplog):
    """`engine=db` is an easy slip: the agent says what it needs and the
    application runs on."""
    flask_sqlalchemy = require("flask_sqlalchemy")
    db = flask_sqlalchemy.SQLAlchemy()
    app = Flask("shop")
    app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{tmp_path / 'shop.db'}"
    db.init_app(app)
    app.add_url_rule("/", "index", lambda: "ok")
    mon = ops_agent.monitor(app, dsn=console.dsn(), engine=db)
    monitors.append(mon)
    assert mon.enabled and mon.engines == []
    assert "db.engine inside app.app_context()" in caplog.text
    assert app.test_client().get("/").status_code == 200
    assert mon.flush() is True
