"""The bundled demo shop: seed data, endpoints, models, jobs, traffic, lifecycle.

Everything runs against a real SQLite file and the real Redis from conftest;
the live test serves the shop over HTTP on a free port.
"""
from __future__ import annotations

import json
import logging
import random
import shutil
import socket
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
import redis as redis_lib
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import event, inspect, text
from sqlalchemy.orm import Session, sessionmaker

from dashapp.demo import DemoApp
from dashapp.demo.data import (
    N_CUSTOMERS, N_ORDERS, N_PRODUCTS, Order, Product, SalesReport, open_shop_database,
    seed_database, utcnow,
)
from dashapp.demo.jobs import (cleanup, nightly_sales_report, reconcile_payments,
                               refresh_product_cache, restock)
from dashapp.demo.ml import train_models
from dashapp.demo.shop import Catalog, create_shop_app, product_key
from dashapp.demo.traffic import REDIS_KEY, TrafficGenerator
from tests.helpers import free_port


def _wait_until(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.fixture(scope="module")
def models():
    return train_models()


@pytest.fixture(scope="module")
def seeded_db(tmp_path_factory) -> Path:
    """One seeded shop database per module; each test gets its own copy."""
    path = tmp_path_factory.mktemp("seeded") / "shop.db"
    open_shop_database(path).dispose()  # closing the last connection folds in the WAL
    return path


@pytest.fixture
def engine(tmp_path, seeded_db):
    shutil.copyfile(seeded_db, tmp_path / "shop.db")
    engine = open_shop_database(tmp_path / "shop.db")
    yield engine
    engine.dispose()


@pytest.fixture
def shop(engine, redis_client, models):
    return create_shop_app(engine, redis_client, models).test_client()


@pytest.fixture
def dead_redis():
    """A real client pointed at a port where no Redis listens: an outage."""
    client = redis_lib.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.5,
                             retry=Retry(NoBackoff(), 0))  # fail fast, no retries
    yield client
    client.close()


# ----- data ------------------------------------------------------------------
def _first_rows(engine) -> dict:
    with engine.connect() as conn:
        return {table: conn.execute(text(f"SELECT * FROM {table} ORDER BY id LIMIT 3")).all()
                for table in ("products", "customers", "orders", "order_items")}


def _counts(engine) -> dict:
    with engine.connect() as conn:
        return {table: conn.execute(text(f"SELECT count(*) FROM {table}")).scalar()
                for table in ("products", "customers", "orders", "order_items")}


def test_seeding_is_deterministic(tmp_path):
    first = open_shop_database(tmp_path / "a" / "shop.db")
    second = open_shop_database(tmp_path / "b" / "shop.db")
    try:
        assert _counts(first) == _counts(second)
        assert _first_rows(first) == _first_rows(second)
        counts = _counts(first)
        assert counts["products"] == N_PRODUCTS
        assert counts["customers"] == N_CUSTOMERS
        assert counts["orders"] == N_ORDERS
        assert 7_000 <= counts["order_items"] <= 9_000
    finally:
        first.dispose()
        second.dispose()


def test_seeding_only_happens_once(engine):
    before = _counts(engine)
    with Session(engine) as session, session.begin():
        session.execute(text("DELETE FROM order_items WHERE order_id = 1"))
    assert seed_database(engine) is False
    after = _counts(engine)
    assert after["order_items"] < before["order_items"]  # nothing re-inserted
    assert after["products"] == before["products"]


def test_order_totals_match_their_items(engine):
    with engine.connect() as conn:
        mismatched = conn.execute(text(
            "SELECT count(*) FROM orders o WHERE o.total_cents != "
            "(SELECT sum(quantity * unit_price_cents) FROM order_items i "
            "WHERE i.order_id = o.id)")).scalar()
    assert mismatched == 0


def test_orders_status_is_deliberately_unindexed(engine):
    indexed = {col for ix in inspect(engine).get_indexes("orders") for col in ix["column_names"]}
    assert "customer_id" in indexed
    assert "status" not in indexed


# ----- endpoints -----------------------------------------------------------------
@pytest.mark.parametrize("path", [
    "/", "/health", "/products", "/products?category=kitchen&limit=5", "/products/1",
    "/customers/1/orders", "/orders", "/orders?status=delivered", "/search?q=oak", "/models",
])
def test_read_endpoints_answer_json(shop, path):
    response = shop.get(path)
    assert response.status_code == 200, response.get_json()
    assert response.is_json


def test_product_detail_is_cached_in_redis(shop, engine, redis_client):
    assert redis_client.get(product_key(7)) is None
    first = shop.get("/products/7").get_json()
    cached = redis_client.get(product_key(7))
    assert cached is not None and json.loads(cached) == first
    assert 0 < redis_client.ttl(product_key(7)) <= 300

    with Session(engine) as session, session.begin():
        session.get(Product, 7).name = "Renamed In The Database"
    second = shop.get("/products/7").get_json()
    assert second["name"] == first["name"]  # served from Redis, not the database


def test_redis_outage_falls_back_to_database(engine, models, dead_redis, caplog):
    shop = create_shop_app(engine, dead_redis, models).test_client()
    with caplog.at_level(logging.WARNING, logger="demo.shop"):
        responses = [shop.get(f"/products/{pid}") for pid in (3, 4, 3)]
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert responses[0].get_json()["id"] == 3
    warnings = [r for r in caplog.records if "cache read failed" in r.getMessage()]
    assert len(warnings) == 1  # then the cache is bypassed for a while
    health = shop.get("/health").get_json()
    assert health["status"] == "degraded" and health["checks"]["redis"] is False


@pytest.mark.parametrize("path", ["/products/99999", "/customers/99999/orders", "/no-such-page"])
def test_not_found_is_json(shop, path):
    response = shop.get(path)
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


def test_place_order_writes_order_items_and_stock(shop, engine, redis_client):
    shop.get("/products/5")  # cache it, so the order must invalidate it
    with Session(engine) as session:
        stock_before = session.get(Product, 5).stock
    response = shop.post("/orders", json={"customer_id": 12, "items": [
        {"product_id": 5, "quantity": 2}, {"product_id": 9}]})
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["status"] == "pending" and len(body["items"]) == 2

    with Session(engine) as session:
        order = session.get(Order, body["id"])
        assert order.customer_id == 12
        assert sum(i.quantity * i.unit_price_cents for i in order.items) == order.total_cents
        assert session.get(Product, 5).stock == stock_before - 2
    assert redis_client.get(product_key(5)) is None
    assert shop.get("/products/5").get_json()["stock"] == stock_before - 2


@pytest.mark.parametrize("body", [
    None,
    {"items": [{"product_id": 1}]},
    {"customer_id": "12", "items": [{"product_id": 1}]},
    {"customer_id": 12, "items": []},
    {"customer_id": 12, "items": [{"product_id": 1, "quantity": 0}]},
    {"customer_id": 12, "items": [{"product_id": 99999}]},
    {"customer_id": 99999, "items": [{"product_id": 1}]},
])
def test_bad_order_is_rejected_with_400(shop, engine, body):
    orders_before = _counts(engine)["orders"]
    if body is None:
        response = shop.post("/orders", data="{not json", content_type="application/json")
    else:
        response = shop.post("/orders", json=body)
    assert response.status_code == 400
    assert response.get_json()["error"]["message"]
    assert _counts(engine)["orders"] == orders_before


def test_order_beyond_stock_changes_nothing(shop, engine):
    with Session(engine) as session:
        stock = {pid: session.get(Product, pid).stock for pid in (1, 2)}
    too_many = [{"product_id": 1, "quantity": 1}] + [
        {"product_id": 2, "quantity": 50}] * 11  # 550 > any seeded stock
    response = shop.post("/orders", json={"customer_id": 1, "items": too_many})
    assert response.status_code == 409
    with Session(engine) as session:
        assert {pid: session.get(Product, pid).stock for pid in (1, 2)} == stock


def test_orders_filter_by_status(shop):
    body = shop.get("/orders?status=cancelled&limit=500").get_json()
    assert body["count"] > 0
    assert {o["status"] for o in body["orders"]} == {"cancelled"}
    assert shop.get("/orders?status=lost").status_code == 400


def test_search_matches_substrings_and_escapes_wildcards(shop):
    body = shop.get("/search?q=Teapot").get_json()
    assert body["count"] > 0
    assert all("teapot" in (r["name"] + r["description"]).lower() for r in body["results"])
    assert shop.get("/search?q=%25%25").get_json()["count"] == 0  # "%%" is literal
    assert shop.get("/search?q=x").status_code == 400


def test_customer_orders_runs_one_query_per_order(shop, engine):
    """The deliberate N+1: 1 customer + 1 orders + 1 items query per order."""
    statements: list[str] = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        body = shop.get("/customers/1/orders").get_json()
    finally:
        event.remove(engine, "before_cursor_execute", count)
    n_orders = len(body["orders"])
    assert n_orders >= 1
    assert all(o["items"] for o in body["orders"])
    item_queries = [s for s in statements if "FROM order_items" in s]
    assert len(item_queries) == n_orders
    assert len(statements) == 2 + n_orders


def test_flaky_fails_about_one_time_in_five(shop, caplog):
    with caplog.at_level(logging.ERROR, logger="demo.shop"):
        codes = [shop.get("/flaky").status_code for _ in range(200)]
    assert set(codes) == {200, 500}
    assert 10 <= codes.count(500) <= 80
    failure = next(r for r in caplog.records if r.levelno == logging.ERROR)
    assert failure.exc_info is not None


def test_flaky_failure_body_is_json(shop):
    for _ in range(200):
        response = shop.get("/flaky")
        if response.status_code == 500:
            assert response.get_json()["error"]["code"] == "internal_error"
            return
    pytest.fail("/flaky never failed in 200 calls")


def test_slow_report_aggregates_and_is_slow(shop):
    body = shop.get("/reports/slow").get_json()
    assert body["elapsed_ms"] >= 300
    categories = {row["category"] for row in body["rows"]}
    assert categories == {"kitchen", "home", "office", "outdoor", "apparel"}


def test_predictions_accept_lists_and_named_features(shop, models):
    churn = models.churn
    named = dict(zip(churn.feature_names, map(float, churn.X_eval[0])))
    body = shop.post("/predict/churn", json={"features": named}).get_json()
    assert body["prediction"] in (0, 1)
    assert body["prediction"] == int(churn.model.predict(churn.X_eval[:1])[0])
    assert 0.5 <= body["probability"] <= 1

    price = models.price
    response = shop.post("/predict/price", json={"features": price.X_eval[0].tolist()})
    assert response.status_code == 200
    assert response.get_json()["prediction"] == pytest.approx(
        float(price.model.predict(price.X_eval[:1])[0]), abs=1e-3)


@pytest.mark.parametrize("body", [None, {}, {"features": [1, 2]},
                                  {"features": ["a"] * 10}, {"features": {"age": 1}}])
def test_bad_prediction_input_is_400(shop, body):
    if body is None:
        response = shop.post("/predict/price", data="nope", content_type="text/plain")
    else:
        response = shop.post("/predict/price", json=body)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] in ("invalid_json", "invalid_features")


# ----- models ------------------------------------------------------------------
def test_models_score_well_on_their_held_out_split(models):
    assert models.names == ["churn", "price"]
    assert models.churn.task == "classification" and models.churn.eval_score > 0.9
    assert models.price.task == "regression" and models.price.eval_score > 0.3
    for model in models:
        assert model.X_eval.shape == (len(model.y_eval), len(model.feature_names))
        assert model.evaluate() == model.eval_score
        assert model.version


def test_training_is_deterministic(models):
    again = train_models()
    assert [m.eval_score for m in again] == [m.eval_score for m in models]


# ----- jobs ----------------------------------------------------------------------
def test_cache_refresh_warms_best_sellers(engine, redis_client):
    catalog = Catalog(sessionmaker(engine), redis_client)
    catalog.register_warmers()
    try:
        with Session(engine) as session:
            best = session.scalar(text(
                "SELECT product_id FROM order_items GROUP BY product_id "
                "ORDER BY sum(quantity) DESC LIMIT 1"))
        stale = catalog.product(best)
        with Session(engine) as session, session.begin():
            session.get(Product, best).name = "Renamed In The Database"
        assert refresh_product_cache() == 20
        prefix = product_key(best).split(":")[0]
        assert len(redis_client.keys(f"{prefix}:products:*")) == 20
        # The warm refreshed the stale entry instead of reading it back.
        assert json.loads(redis_client.get(product_key(best))) == {
            **stale, "name": "Renamed In The Database"}
    finally:
        catalog.unregister_warmers()


def test_cache_refresh_fails_loudly_when_redis_is_down(engine, dead_redis):
    catalog = Catalog(sessionmaker(engine), dead_redis)
    catalog.register_warmers()
    try:
        with pytest.raises(RuntimeError, match="Redis unavailable"):
            refresh_product_cache()
    finally:
        catalog.unregister_warmers()


def test_report_cleanup_and_restock_jobs(engine):
    Sessions = sessionmaker(engine, expire_on_commit=False)
    report_id = nightly_sales_report(Sessions)
    with Sessions.begin() as session:
        report = session.get(SalesReport, report_id)
        assert report.orders > 0 and report.revenue_cents > 0 and report.top_category
        abandoned = Order(customer_id=1, status="pending", total_cents=100,
                          created_at=utcnow() - timedelta(hours=1))
        fresh = Order(customer_id=1, status="pending", total_cents=100, created_at=utcnow())
        session.add_all([abandoned, fresh])
        session.get(Product, 4).stock = 3
    result = cleanup(Sessions)
    assert result["cancelled_orders"] >= 1
    assert restock(Sessions) >= 1
    with Session(engine) as session:
        assert session.get(Order, abandoned.id).status == "cancelled"
        assert session.get(Order, fresh.id).status == "pending"
        assert session.get(Product, 4).stock == 203


def test_reconcile_payments_fails_sometimes(engine):
    Sessions = sessionmaker(engine)
    rng = random.Random(1)
    outcomes = []
    for _ in range(40):
        try:
            reconcile_payments(Sessions, rng)
            outcomes.append("ok")
        except RuntimeError:
            outcomes.append("failed")
    assert set(outcomes) == {"ok", "failed"}


# ----- traffic and the running demo ------------------------------------------------
def test_traffic_generator_survives_a_dead_shop_and_dead_redis(dead_redis):
    traffic = TrafficGenerator(f"http://127.0.0.1:{free_port()}", rps=50,
                               redis_client=dead_redis)
    traffic.start()
    assert _wait_until(lambda: traffic.counters()["failed_to_connect"] >= 3)
    assert traffic.running
    traffic.stop(timeout=3)
    assert not traffic.running
    counters = traffic.counters()
    assert counters["sent"] == counters["failed_to_connect"]
    assert counters["ok"] == 0


def test_demo_app_serves_traffic_and_stops_cleanly(tmp_path, redis_client):
    from dashapp.config import load_settings
    from tests.helpers import ConsoleServer
    settings = load_settings(instance_dir=tmp_path / "instance", demo=False, scheduler=False)
    console = ConsoleServer(settings)  # the agent sends to it over HTTP
    demo = DemoApp(tmp_path / "demo", redis_client, port=0, rps=20, settings=settings,
                   dsn=console.dsn_for("demo-shop"))
    demo_logger = logging.getLogger("demo")
    handlers_before = list(demo_logger.handlers)
    demo.start()
    try:
        assert demo.running
        assert demo.database_url == f"sqlite:///{tmp_path / 'demo' / 'shop.db'}"
        assert _wait_until(lambda: demo.stats()["traffic"]["sent"] >= 25, timeout=8)
        live = redis_client.hgetall(REDIS_KEY)
        assert int(live[b"sent"]) >= 20 and b"started_at" in live
        assert demo.url.startswith("http://127.0.0.1:")

        stats = demo.stats()
        assert stats["database"]["orders"] >= N_ORDERS
        assert stats["database"]["size_bytes"] > 100_000
        assert stats["log"]["size_bytes"] > 0
        assert {m["name"]: m["metric_name"] for m in stats["models"]} == {
            "churn": "accuracy", "price": "r2"}
        assert all(m["metric_value"] > 0.3 for m in stats["models"])
        json.dumps(stats)  # published to Redis as JSON by the console
        assert {j["id"] for j in stats["jobs"]} >= {
            "cache_refresh", "nightly_report", "cleanup", "reconcile_payments"}
        assert all(j["next_run_time"] for j in stats["jobs"])
    finally:
        demo.stop()

    assert stats["traffic"]["ok"] > 0
    mirrored = {k.decode(): v.decode() for k, v in redis_client.hgetall(REDIS_KEY).items()}
    assert int(mirrored["sent"]) >= 25
    assert int(mirrored["sent"]) == sum(
        int(mirrored[k]) for k in ("ok", "client_errors", "server_errors", "failed_to_connect"))

    names = {"demo-http", "demo-traffic", "APScheduler"}
    assert _wait_until(lambda: not names & {t.name for t in threading.enumerate()}, timeout=3)
    assert not demo.running
    assert demo_logger.handlers == handlers_before
    log_text = demo.log_file.read_text()
    assert "demo shop running at" in log_text and "INFO demo.traffic" in log_text
    demo.stop()  # idempotent

    # The demo is instrumented with the agent: its requests and SQL reached
    # the console over HTTP, by URL rule, with the SQL linked to its request.
    from sqlalchemy import create_engine, text
    console.expand()
    console.close()
    store = create_engine(settings.store_url)
    with store.connect() as conn:
        sent = int(mirrored["sent"]) - int(mirrored["failed_to_connect"])
        recorded = conn.scalar(text("SELECT count(*) FROM ops_request WHERE app = 'demo-shop' "
                                    "AND release <> ''"))
        assert recorded == sent
        endpoints = set(conn.scalars(text("SELECT DISTINCT endpoint FROM ops_request")))
        assert "/products/<int:product_id>" in endpoints or "/products" in endpoints
        assert not any(e.rstrip("/").split("/")[-1].isdigit() for e in endpoints)
        linked = conn.scalar(text(
            "SELECT count(*) FROM ops_query q JOIN ops_request r "
            "ON q.request_id = r.request_id"))
        assert linked > 0
    store.dispose()


def test_demo_app_reports_a_busy_port(tmp_path, redis_client):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        demo = DemoApp(tmp_path / "demo", redis_client, port=port, rps=1, instrument=False)
        with pytest.raises(RuntimeError, match=rf"demo port {port} is in use.*OPS_DEMO_PORT"):
            demo.start()
    assert not demo.running
    assert not (tmp_path / "demo" / "shop.db").exists()  # failed before doing any work
    demo.stop()
