"""The demo shop: an ordinary Flask JSON API over SQLAlchemy, Redis and two models.

It is written the way a user would write their own app, including a few
habits the console exists to catch:

* ``GET /customers/<id>/orders`` has an N+1 query loop (lazy ``order.items``);
* ``GET /orders?status=`` filters on the unindexed ``orders.status`` column;
* ``GET /search`` runs ``LIKE '%q%'``, which no index can serve;
* ``GET /reports/slow`` is slow and ``GET /flaky`` fails ~20% of the time.

Product reads are cached with the agent's toolkit (``ops_agent.cache``): the
``Catalog`` below decorates them with ``@cached`` (namespaces ``products`` and
``product-lists``), an order ``invalidate()``s the products it changed, and
warmers keep the best sellers and the first listing pages fresh (see
``Catalog.register_warmers``). When Redis is down the toolkit calls the
functions directly, so the shop serves from the database and logs a warning.
"""
from __future__ import annotations

import logging
import math
import random
import time
from typing import TYPE_CHECKING, Any

import redis
from flask import Flask, jsonify, request
from ops_agent.cache import (cache_key, cached, invalidate, ping, register_warmer,
                             unregister_warmer)
from sqlalchemy import Engine, func, select, text, update
from sqlalchemy.orm import sessionmaker
from werkzeug.exceptions import HTTPException

from .data import ORDER_STATUSES, Customer, Order, OrderItem, Product, utcnow

if TYPE_CHECKING:
    from .ml import DemoModels

logger = logging.getLogger("demo.shop")

PRODUCTS = "products"            # @cached namespace of product details
PRODUCT_LISTS = "product-lists"  # @cached namespace of product listings
PRODUCT_TTL = 300      # seconds a product detail stays cached
PRODUCT_LIST_TTL = 60  # seconds a product listing stays cached
LIST_WARM_EVERY = 30   # seconds between warms of the first listing pages
TOP_PRODUCTS = 20      # best sellers the "products" warmer keeps cached
PAGE_SIZE = 20
FLAKY_FAILURE_RATE = 0.2
MAX_ITEMS_PER_ORDER = 20
MAX_QUANTITY = 50


class ApiError(Exception):
    """An error the client caused; rendered as ``{"error": {...}}``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error_body(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


def product_key(product_id: int) -> str:
    """The Redis key of a cached product detail (once a Catalog exists)."""
    return cache_key(PRODUCTS, product_id)


def product_to_dict(product: Product) -> dict:
    return {"id": product.id, "sku": product.sku, "name": product.name,
            "description": product.description, "category": product.category,
            "price": product.price_cents / 100, "stock": product.stock}


def order_to_dict(order: Order, items: list[OrderItem] | None = None) -> dict:
    body = {"id": order.id, "customer_id": order.customer_id, "status": order.status,
            "total": order.total_cents / 100,
            "created_at": order.created_at.isoformat(timespec="seconds")}
    if items is not None:
        body["items"] = [{"product_id": i.product_id, "quantity": i.quantity,
                          "unit_price": i.unit_price_cents / 100} for i in items]
    return body


# ----- cache: the @cached toolkit, as a user's app would use it -------------------
class Catalog:
    """The shop's product reads, cached in Redis with ``@cached``.

    Without a Redis client the reads go straight to the database. Redis
    trouble never reaches a request: the toolkit runs the function instead.
    """

    def __init__(self, Sessions: sessionmaker, redis_client: redis.Redis | None) -> None:
        self.Sessions = Sessions
        self.enabled = redis_client is not None

        def product(product_id: int) -> dict | None:
            with Sessions() as session:
                found = session.get(Product, product_id)
                return None if found is None else product_to_dict(found)

        def product_list(category: str | None, limit: int, offset: int) -> dict:
            query = select(Product).order_by(Product.id).limit(limit).offset(offset)
            if category:
                query = query.where(Product.category == category)
            with Sessions() as session:
                return {"products": [product_to_dict(p) for p in session.scalars(query)],
                        "limit": limit, "offset": offset}

        if self.enabled:  # None is cached too: unknown ids do not hit the database
            product = cached(PRODUCTS, ttl=PRODUCT_TTL, client=redis_client)(product)
            product_list = cached(PRODUCT_LISTS, ttl=PRODUCT_LIST_TTL,
                                  client=redis_client)(product_list)
        self.product = product
        self.product_list = product_list

    def forget(self, product_ids) -> None:
        """Drop the cached details of products whose stock or price changed."""
        if self.enabled:
            for product_id in product_ids:
                invalidate(PRODUCTS, product_id)

    def warm_best_sellers(self) -> None:
        """Warmer of "products": (re)load the best sellers' details."""
        sold = func.sum(OrderItem.quantity)
        with self.Sessions() as session:
            top = session.scalars(
                select(Product.id).join(OrderItem, OrderItem.product_id == Product.id)
                .group_by(Product.id).order_by(sold.desc()).limit(TOP_PRODUCTS)).all()
        for product_id in top:
            self.product(product_id)

    def warm_first_pages(self) -> None:
        """Warmer of "product-lists": the first page, overall and per category."""
        with self.Sessions() as session:
            categories = session.scalars(
                select(Product.category).distinct().order_by(Product.category)).all()
        for category in [None, *categories]:
            self.product_list(category, PAGE_SIZE, 0)

    def register_warmers(self) -> None:
        """Best sellers on demand (the shop's "cache_refresh" job calls
        warm()), listings on the toolkit's own schedule."""
        if not self.enabled:
            return
        register_warmer(PRODUCTS, self.warm_best_sellers,
                        description=f"details of the {TOP_PRODUCTS} best sellers")
        register_warmer(PRODUCT_LISTS, self.warm_first_pages, every=LIST_WARM_EVERY,
                        description="first listing page, overall and per category")

    def unregister_warmers(self) -> None:
        if self.enabled:
            unregister_warmer(PRODUCTS)
            unregister_warmer(PRODUCT_LISTS)


# ----- request parsing -----------------------------------------------------
def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "invalid_parameter", f"{name} must be an integer") from None
    if not low <= value <= high:
        raise ApiError(400, "invalid_parameter", f"{name} must be between {low} and {high}")
    return value


def _json_object() -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "request body must be a JSON object")
    return body


def _positive_int(value: Any, field: str, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise ApiError(400, "invalid_order", f"{field} must be an integer from 1 to {maximum}")
    return value


def _parse_order(body: dict) -> tuple[int, dict[int, int]]:
    """Validate a new order: customer id and {product_id: quantity}."""
    customer_id = _positive_int(body.get("customer_id"), "customer_id", 2**31 - 1)
    items = body.get("items")
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_ITEMS_PER_ORDER:
        raise ApiError(400, "invalid_order",
                       f"items must be a list of 1 to {MAX_ITEMS_PER_ORDER} entries")
    wanted: dict[int, int] = {}
    for n, item in enumerate(items):
        if not isinstance(item, dict):
            raise ApiError(400, "invalid_order", f"items[{n}] must be an object")
        product_id = _positive_int(item.get("product_id"), f"items[{n}].product_id", 2**31 - 1)
        quantity = _positive_int(item.get("quantity", 1), f"items[{n}].quantity", MAX_QUANTITY)
        wanted[product_id] = wanted.get(product_id, 0) + quantity
    return customer_id, wanted


def _feature_vector(body: dict, feature_names: list[str]) -> list[float]:
    """Features as a list in model order, from a list or a {name: value} object."""
    features = body.get("features")
    if isinstance(features, dict):
        missing = [name for name in feature_names if name not in features]
        if missing:
            raise ApiError(400, "invalid_features",
                           f"missing {len(missing)} features, e.g. {missing[0]!r}")
        features = [features[name] for name in feature_names]
    if not isinstance(features, list) or len(features) != len(feature_names):
        raise ApiError(400, "invalid_features",
                       f"features must be a list of {len(feature_names)} numbers "
                       "or an object keyed by feature name")
    values = []
    for value in features:
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value):
            raise ApiError(400, "invalid_features", "every feature must be a finite number")
        values.append(float(value))
    return values


def create_shop_app(engine: Engine, redis_client: redis.Redis | None,
                    models: DemoModels) -> Flask:
    """Build the shop's Flask app on the given database, Redis and models."""
    app = Flask(__name__, static_folder=None)
    app.json.sort_keys = False
    Sessions = sessionmaker(engine, expire_on_commit=False)
    catalog = Catalog(Sessions, redis_client)
    app.extensions["shop_catalog"] = catalog
    rng = random.Random()

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        logger.warning("%s %s rejected (%d %s): %s", request.method, request.path,
                       exc.status, exc.code, exc.message)
        return jsonify(error_body(exc.code, exc.message)), exc.status

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        code = (exc.name or "error").lower().replace(" ", "_")
        return jsonify(error_body(code, exc.description or exc.name)), exc.code

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        logger.error("%s %s failed: %s", request.method, request.path, exc, exc_info=exc)
        return jsonify(error_body("internal_error", "internal server error")), 500

    @app.get("/")
    def index():
        return jsonify({"app": "demo shop", "endpoints": sorted(
            {str(rule) for rule in app.url_map.iter_rules()})})

    @app.get("/health")
    def health():
        checks = {"database": True,
                  "redis": ping(redis_client) if redis_client is not None else None}
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:  # noqa: BLE001 - any DB failure means unhealthy
            logger.error("health check: database unavailable: %s", exc)
            checks["database"] = False
        if not checks["database"]:
            status = "down"
        else:
            status = "degraded" if checks["redis"] is False else "ok"
        return jsonify({"status": status, "checks": checks}), (503 if status == "down" else 200)

    @app.get("/products")
    def list_products():
        category = request.args.get("category") or None
        limit = _int_arg("limit", PAGE_SIZE, 1, 100)
        offset = _int_arg("offset", 0, 0, 1_000_000)
        return jsonify(catalog.product_list(category, limit, offset))

    @app.get("/products/<int:product_id>")
    def get_product(product_id: int):
        body = catalog.product(product_id)
        if body is None:
            raise ApiError(404, "not_found", f"product {product_id} does not exist")
        return jsonify(body)

    @app.get("/customers/<int:customer_id>/orders")
    def customer_orders(customer_id: int):
        with Sessions() as session:
            customer = session.get(Customer, customer_id)
            if customer is None:
                raise ApiError(404, "not_found", f"customer {customer_id} does not exist")
            orders = session.scalars(select(Order).where(Order.customer_id == customer_id)
                                     .order_by(Order.created_at.desc())).all()
            # N+1 on purpose: each order.items access lazily runs its own query.
            # selectinload(Order.items) would fetch them all in one.
            body = [order_to_dict(order, order.items) for order in orders]
        return jsonify({"customer_id": customer_id, "name": customer.name, "orders": body})

    @app.get("/orders")
    def list_orders():
        status = request.args.get("status") or None
        if status is not None and status not in ORDER_STATUSES:
            raise ApiError(400, "invalid_parameter",
                           f"status must be one of {', '.join(ORDER_STATUSES)}")
        limit = _int_arg("limit", 50, 1, 500)
        query = select(Order).order_by(Order.id.desc()).limit(limit)
        if status:
            query = query.where(Order.status == status)  # full scan: status has no index
        with Sessions() as session:
            orders = [order_to_dict(o) for o in session.scalars(query)]
        return jsonify({"status": status, "count": len(orders), "orders": orders})

    @app.post("/orders")
    def create_order():
        customer_id, wanted = _parse_order(_json_object())
        # One transaction: any error below rolls back every stock change.
        with Sessions.begin() as session:
            if session.get(Customer, customer_id) is None:
                raise ApiError(400, "invalid_order", f"customer {customer_id} does not exist")
            products = {p.id: p for p in session.scalars(
                select(Product).where(Product.id.in_(wanted)))}
            unknown = sorted(set(wanted) - set(products))
            if unknown:
                raise ApiError(400, "invalid_order", f"product {unknown[0]} does not exist")
            for product_id, quantity in wanted.items():
                # The stock check lives in the UPDATE so concurrent orders
                # cannot oversell.
                result = session.execute(
                    update(Product)
                    .where(Product.id == product_id, Product.stock >= quantity)
                    .values(stock=Product.stock - quantity)
                    .execution_options(synchronize_session=False))
                if result.rowcount != 1:
                    raise ApiError(409, "out_of_stock",
                                   f"not enough stock for product {product_id}")
            order = Order(customer_id=customer_id, status="pending", created_at=utcnow(),
                          total_cents=sum(products[pid].price_cents * qty
                                          for pid, qty in wanted.items()))
            order.items = [OrderItem(product_id=pid, quantity=qty,
                                     unit_price_cents=products[pid].price_cents)
                           for pid, qty in wanted.items()]
            session.add(order)
            session.flush()
            body = order_to_dict(order, order.items)
        catalog.forget(wanted)
        logger.info("order %d placed by customer %d: %d product(s), total %.2f",
                    body["id"], customer_id, len(wanted), body["total"])
        return jsonify(body), 201

    @app.get("/search")
    def search():
        q = (request.args.get("q") or "").strip()
        if len(q) < 2:
            raise ApiError(400, "invalid_parameter", "q must be at least 2 characters")
        pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = (select(Product)
                 .where(Product.name.like(pattern, escape="\\")
                        | Product.description.like(pattern, escape="\\"))
                 .order_by(Product.name).limit(50))
        with Sessions() as session:
            results = [product_to_dict(p) for p in session.scalars(query)]
        return jsonify({"q": q, "count": len(results), "results": results})

    @app.get("/reports/slow")
    def slow_report():
        """Revenue per category and month; padded to feel like a cold warehouse query."""
        started = time.perf_counter()
        target = rng.uniform(0.3, 0.8)
        month = func.strftime("%Y-%m", Order.created_at)
        revenue = func.sum(OrderItem.quantity * OrderItem.unit_price_cents)
        query = (select(Product.category, month.label("month"), revenue.label("revenue"),
                        func.count(func.distinct(Order.id)).label("orders"))
                 .join(OrderItem, OrderItem.order_id == Order.id)
                 .join(Product, Product.id == OrderItem.product_id)
                 .where(Order.status.in_(("paid", "shipped", "delivered")))
                 .group_by(Product.category, month)
                 .order_by(month, Product.category))
        with Sessions() as session:
            rows = session.execute(query).all()
        remaining = target - (time.perf_counter() - started)
        if remaining > 0:
            time.sleep(remaining)  # stands in for a cold disk / remote warehouse
        elapsed_ms = (time.perf_counter() - started) * 1000
        if elapsed_ms > 500:
            logger.warning("sales report took %.0f ms (%d rows); consider "
                           "precomputing it", elapsed_ms, len(rows))
        else:
            logger.info("sales report generated in %.0f ms (%d rows)", elapsed_ms, len(rows))
        return jsonify({"elapsed_ms": round(elapsed_ms, 1), "rows": [
            {"category": r.category, "month": r.month, "revenue": (r.revenue or 0) / 100,
             "orders": r.orders} for r in rows]})

    @app.get("/flaky")
    def flaky():
        if rng.random() < FLAKY_FAILURE_RATE:
            raise RuntimeError("payment gateway timed out after 2000 ms")
        return jsonify({"status": "ok", "gateway": "payments"})

    @app.get("/models")
    def list_models():
        """What a client needs to call /predict: feature names and an example row."""
        return jsonify({"models": [
            {**m.summary(), "feature_names": m.feature_names,
             "example": [float(v) for v in m.X_eval[0]],
             "examples": [[float(v) for v in row] for row in m.X_eval[:200]]}
            for m in models]})

    def _predict(name: str):
        started = time.perf_counter()
        model = models.get(name)
        features = _feature_vector(_json_object(), model.feature_names)
        row = [features]
        body: dict[str, Any] = {"model": model.name, "version": model.version}
        if model.task == "classification":
            probabilities = model.model.predict_proba(row)[0]
            best = int(probabilities.argmax())
            label = model.target_names[best] if model.target_names else str(best)
            body.update(prediction=best, label=label,
                        probability=round(float(probabilities[best]), 4))
        else:
            body["prediction"] = round(float(model.model.predict(row)[0]), 3)
        logger.debug("model %s predicted %s", name, body["prediction"])
        ops_monitor = app.extensions.get("ops_monitor")  # set by dashapp.monitor()
        if ops_monitor is not None:
            models.observe(ops_monitor.ml, model, row, body["prediction"],
                           (time.perf_counter() - started) * 1000.0)
        return jsonify(body)

    @app.post("/predict/churn")
    def predict_churn():
        return _predict("churn")

    @app.post("/predict/price")
    def predict_price():
        return _predict("price")

    return app
