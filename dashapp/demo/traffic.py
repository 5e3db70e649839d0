"""A traffic generator that drives the demo shop over real HTTP.

One background thread sends a realistic mix of requests at a steady rate:
mostly product reads, some orders and predictions, the odd 404 and bad
order, and the slow and flaky endpoints. It never raises; it counts.
Counters are kept locally and mirrored into the Redis hash ``demo:traffic``
(HINCRBY) so other processes, such as console workers, can read them.
"""
from __future__ import annotations

import logging
import random
import threading
import time
from datetime import datetime, timezone
from typing import Any, Callable

import redis
import requests

logger = logging.getLogger("demo.traffic")

REDIS_KEY = "demo:traffic"
COUNTERS = ("sent", "ok", "client_errors", "server_errors", "failed_to_connect")
SEARCH_TERMS = ("mug", "lamp", "oak", "steel", "linen", "teapot", "wool", "bag",
                "lantern", "copper", "vintage", "xyzzy")
ORDER_STATUSES = ("pending", "paid", "shipped", "delivered", "cancelled")
REDIS_RETRY_AFTER = 5.0
N_PRODUCTS = 200
N_CUSTOMERS = 1_000

Request = tuple[str, str, Any]  # method, path, JSON body (or None)


class TrafficGenerator:
    """Send requests to ``base_url`` at ``rps`` per second until stopped."""

    def __init__(self, base_url: str, *, rps: float = 3.0,
                 redis_client: redis.Redis | None = None, seed: int | None = None,
                 timeout: float = 5.0) -> None:
        if rps <= 0:
            raise ValueError("rps must be positive")
        self.base_url = base_url.rstrip("/")
        self.rps = rps
        self.redis = redis_client
        self.timeout = timeout
        self._rng = random.Random(seed)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(COUNTERS, 0)
        self._last_latency_ms: float | None = None
        self._started_at: datetime | None = None
        self._examples: dict[str, list[float]] = {}
        self._unreachable = False
        self._redis_down_until = 0.0
        self._mirror_stale = False  # True after a Redis error: resend every counter
        # Popular products get most of the reads, so the cache has hits.
        self._product_weights = [1.0 / (rank ** 0.9) for rank in range(1, N_PRODUCTS + 1)]
        self._mix: list[tuple[Callable[[], Request], int]] = [
            (self._list_products, 15), (self._get_product, 30),
            (self._customer_orders, 8), (self._orders_by_status, 7),
            (self._place_order, 9), (self._search, 8), (self._slow_report, 2),
            (self._flaky, 5), (self._predict_churn, 6), (self._predict_price, 6),
            (self._health, 3), (self._missing_page, 1),
        ]

    # ----- lifecycle --------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.running:
            return
        self._stop.clear()
        self._started_at = datetime.now(timezone.utc)
        self._thread = threading.Thread(target=self._run, name="demo-traffic", daemon=True)
        self._thread.start()
        logger.info("traffic generator started: %.1f req/s against %s",
                    self.rps, self.base_url)

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the thread to stop and wait for it (at most one request's time)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                logger.warning("traffic generator did not stop within %.1f s", timeout)
            else:
                logger.info("traffic generator stopped: %s", self.counters())

    def counters(self) -> dict:
        """A snapshot of the local counters."""
        with self._lock:
            snapshot: dict[str, Any] = dict(self._counts)
            snapshot["last_latency_ms"] = self._last_latency_ms
        snapshot["started_at"] = (self._started_at.isoformat(timespec="seconds")
                                  if self._started_at else None)
        snapshot["rps"] = self.rps
        return snapshot

    def _run(self) -> None:
        interval = 1.0 / self.rps
        self._mirror_reset()
        next_at = time.monotonic()
        with requests.Session() as http:
            while not self._stop.is_set():
                self._send_one(http)
                next_at += interval
                delay = next_at - time.monotonic()
                if delay < -1.0:
                    next_at = time.monotonic()  # fell behind: resume, don't burst
                if self._stop.wait(max(0.0, delay)):
                    break

    # ----- one request ------------------------------------------------------
    def _send_one(self, http: requests.Session) -> None:
        try:
            make = self._rng.choices([m for m, _ in self._mix], [w for _, w in self._mix])[0]
            method, path, body = make()
            started = time.perf_counter()
            response = http.request(method, self.base_url + path, json=body,
                                    timeout=(1.0, self.timeout))
            latency_ms = (time.perf_counter() - started) * 1000
        except requests.RequestException as exc:
            self._record("failed_to_connect", None)
            if not self._unreachable:
                self._unreachable = True
                logger.warning("demo shop unreachable at %s: %s; will keep trying",
                               self.base_url, exc)
            return
        except Exception:  # noqa: BLE001 - the generator must never die
            logger.exception("traffic generator hit an unexpected error")
            return
        if self._unreachable:
            self._unreachable = False
            logger.info("demo shop reachable again at %s", self.base_url)
        status = response.status_code
        bucket = "ok" if status < 400 else "client_errors" if status < 500 else "server_errors"
        self._record(bucket, latency_ms)
        if path == "/models" and response.ok:
            try:
                # Several example rows when the shop gives them: live inputs
                # then look like the evaluation data (no false drift).
                self._examples = {m["name"]: m.get("examples") or [m["example"]]
                                  for m in response.json()["models"]}
            except (ValueError, KeyError, TypeError):
                logger.warning("GET /models returned an unexpected body; "
                               "predictions will retry it")

    def _record(self, bucket: str, latency_ms: float | None) -> None:
        with self._lock:
            self._counts["sent"] += 1
            self._counts[bucket] += 1
            if latency_ms is not None:
                self._last_latency_ms = round(latency_ms, 2)
            snapshot = dict(self._counts)
        if self.redis is None or time.monotonic() < self._redis_down_until:
            return
        try:
            pipe = self.redis.pipeline(transaction=False)
            if self._mirror_stale:
                pipe.hset(REDIS_KEY, mapping=snapshot)  # catch up after an outage
            else:
                pipe.hincrby(REDIS_KEY, "sent", 1)
                pipe.hincrby(REDIS_KEY, bucket, 1)
            if latency_ms is not None:
                pipe.hset(REDIS_KEY, "last_latency_ms", round(latency_ms, 2))
            pipe.execute()
            self._mirror_stale = False
        except redis.RedisError:
            self._mirror_failed()

    def _mirror_failed(self) -> None:
        """Skip the mirror for a while rather than stall requests on a dead Redis;
        the local counters stay exact and are resent when Redis is back."""
        self._redis_down_until = time.monotonic() + REDIS_RETRY_AFTER
        self._mirror_stale = True

    def _mirror_reset(self) -> None:
        if self.redis is None:
            return
        try:
            pipe = self.redis.pipeline(transaction=True)
            pipe.delete(REDIS_KEY)
            pipe.hset(REDIS_KEY, mapping={
                **dict.fromkeys(COUNTERS, 0),
                "started_at": self._started_at.isoformat(timespec="seconds"),
                "rps": self.rps})
            pipe.execute()
        except redis.RedisError:
            self._mirror_failed()

    # ----- the request mix ----------------------------------------------------
    def _product_id(self) -> int:
        if self._rng.random() < 0.03:
            return self._rng.randint(N_PRODUCTS + 1, N_PRODUCTS + 5000)  # a 404
        return self._rng.choices(range(1, N_PRODUCTS + 1), self._product_weights)[0]

    def _list_products(self) -> Request:
        category = self._rng.choice([None, "kitchen", "home", "office", "outdoor", "apparel"])
        offset = self._rng.choice([0, 0, 0, 20, 40])
        path = f"/products?offset={offset}" + (f"&category={category}" if category else "")
        return "GET", path, None

    def _get_product(self) -> Request:
        return "GET", f"/products/{self._product_id()}", None

    def _customer_orders(self) -> Request:
        customer = self._rng.randint(1, N_CUSTOMERS + (20 if self._rng.random() < 0.05 else 0))
        return "GET", f"/customers/{customer}/orders", None

    def _orders_by_status(self) -> Request:
        return "GET", f"/orders?status={self._rng.choice(ORDER_STATUSES)}", None

    def _place_order(self) -> Request:
        if self._rng.random() < 0.1:  # a broken client
            return "POST", "/orders", {"customer_id": "abc", "items": []}
        items = [{"product_id": self._rng.randint(1, N_PRODUCTS),
                  "quantity": self._rng.choice([1, 1, 1, 2, 3])}
                 for _ in range(self._rng.randint(1, 4))]
        return "POST", "/orders", {"customer_id": self._rng.randint(1, N_CUSTOMERS),
                                   "items": items}

    def _search(self) -> Request:
        return "GET", f"/search?q={self._rng.choice(SEARCH_TERMS)}", None

    def _slow_report(self) -> Request:
        return "GET", "/reports/slow", None

    def _flaky(self) -> Request:
        return "GET", "/flaky", None

    def _health(self) -> Request:
        return "GET", "/health", None

    def _missing_page(self) -> Request:
        return "GET", self._rng.choice(["/admin", "/wp-login.php", "/products/abc"]), None

    def _prediction(self, name: str) -> Request:
        example = self._examples.get(name)
        if example is None:
            return "GET", "/models", None  # learn the feature names first, like a client
        features = [v * self._rng.uniform(0.9, 1.1) for v in self._rng.choice(example)]
        return "POST", f"/predict/{name}", {"features": features}

    def _predict_churn(self) -> Request:
        return self._prediction("churn")

    def _predict_price(self) -> Request:
        return self._prediction("price")
