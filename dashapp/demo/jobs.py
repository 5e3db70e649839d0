"""The demo shop's background jobs on an APScheduler 3 ``BackgroundScheduler``.

Intervals are compressed so the console sees activity within minutes:
the "nightly" report runs every two minutes. One job, payment
reconciliation, fails about a quarter of the time so failed runs show up.
"Refresh product cache" runs the toolkit's ``products`` warmer with
``warm()``; the listing warmer has a schedule of its own (``every=``).
"Rebuild search index" takes about half a minute, reports its progress with
``dashapp.jobs.report_progress`` and stops when cancelled from the console
(``dashapp.jobs.cancelled()``), so the Jobs page has live progress bars and
a run worth cancelling.
"""
from __future__ import annotations

import logging
import random
import time
from datetime import datetime, timedelta, timezone

import redis
from apscheduler.schedulers.background import BackgroundScheduler
from ops_agent.cache import warm
from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.orm import sessionmaker

from dashapp.jobs import JobCancelled, cancelled, report_progress

from .data import Order, OrderItem, Product, SalesReport, utcnow
from .shop import PRODUCTS, Catalog

logger = logging.getLogger("demo.jobs")

CACHE_REFRESH_SECONDS = 30
REPORT_SECONDS = 120
CLEANUP_SECONDS = 60
RESTOCK_SECONDS = 90
RECONCILE_SECONDS = 45
RECONCILE_FAILURE_RATE = 0.25
INDEX_SECONDS = 180
INDEX_BATCHES = 50
INDEX_BATCH_PAUSE = 0.5  # seconds: a run takes about INDEX_BATCHES * this
ABANDONED_AFTER = timedelta(minutes=30)
KEEP_REPORTS = 50
RESTOCK_BELOW = 20
RESTOCK_AMOUNT = 200
REVENUE_STATUSES = ("paid", "shipped", "delivered")


def refresh_product_cache() -> int:
    """Re-warm the best sellers' details; returns the entries written.

    Raises when the warm failed, so the failed run shows on the Jobs page."""
    result = warm(PRODUCTS)
    if result["error"]:
        logger.error("cache refresh failed: %s", result["error"])
        raise RuntimeError(f"cache refresh failed: {result['error']}")
    logger.info("cache refresh: warmed %d product entries in %.0f ms",
                result["entries"], result["duration_ms"])
    return result["entries"]


def nightly_sales_report(Sessions: sessionmaker) -> int:
    """Aggregate revenue and the top category into a ``sales_reports`` row."""
    started = time.perf_counter()
    revenue = func.sum(OrderItem.quantity * OrderItem.unit_price_cents)
    with Sessions.begin() as session:
        orders, total = session.execute(
            select(func.count(Order.id), func.coalesce(func.sum(Order.total_cents), 0))
            .where(Order.status.in_(REVENUE_STATUSES))).one()
        top_category = session.scalar(
            select(Product.category)
            .join(OrderItem, OrderItem.product_id == Product.id)
            .join(Order, Order.id == OrderItem.order_id)
            .where(Order.status.in_(REVENUE_STATUSES))
            .group_by(Product.category).order_by(revenue.desc()).limit(1))
        report = SalesReport(generated_at=utcnow(), orders=orders, revenue_cents=total,
                             top_category=top_category)
        session.add(report)
        session.flush()
        report_id = report.id
    logger.info("nightly report #%d: %d orders, revenue %.2f, top category %s (%.0f ms)",
                report_id, orders, total / 100, top_category,
                (time.perf_counter() - started) * 1000)
    return report_id


def cleanup(Sessions: sessionmaker) -> dict:
    """Cancel abandoned pending orders and keep only the latest reports."""
    cutoff = utcnow() - ABANDONED_AFTER
    with Sessions.begin() as session:
        abandoned = session.execute(
            update(Order).where(Order.status == "pending", Order.created_at < cutoff)
            .values(status="cancelled")).rowcount
        report_progress(0.5, "abandoned orders cancelled")
        keep = select(SalesReport.id).order_by(SalesReport.id.desc()).limit(KEEP_REPORTS)
        pruned = session.execute(
            delete(SalesReport).where(SalesReport.id.not_in(keep.scalar_subquery()))
        ).rowcount
    if abandoned or pruned:
        logger.info("cleanup: cancelled %d abandoned orders, pruned %d old reports",
                    abandoned, pruned)
    else:
        logger.info("cleanup: nothing to do")
    return {"cancelled_orders": abandoned, "pruned_reports": pruned}


def restock(Sessions: sessionmaker, catalog: Catalog | None = None) -> int:
    """A supplier delivery for every product running low; their cached
    details are invalidated."""
    with Sessions.begin() as session:
        low = session.scalars(select(Product.id).where(Product.stock < RESTOCK_BELOW)).all()
        restocked = session.execute(
            update(Product).where(Product.id.in_(low))
            .values(stock=Product.stock + RESTOCK_AMOUNT)).rowcount if low else 0
    if catalog is not None:
        catalog.forget(low)
    if restocked:
        logger.warning("restock: %d products were below %d units; ordered %d each",
                       restocked, RESTOCK_BELOW, RESTOCK_AMOUNT)
    return restocked


def reconcile_payments(Sessions: sessionmaker, rng: random.Random) -> int:
    """Compare paid orders with the payment provider; the provider is unreliable."""
    with Sessions() as session:
        paid = session.scalar(select(func.count()).select_from(Order)
                              .where(Order.status == "paid")) or 0
    report_progress(0.5, f"comparing {paid} paid orders with the provider")
    if rng.random() < RECONCILE_FAILURE_RATE:
        logger.error("payment reconciliation failed: provider returned HTTP 502 "
                     "for batch of %d paid orders", paid)
        raise RuntimeError("payment provider returned HTTP 502")
    logger.info("payment reconciliation: %d paid orders match the provider", paid)
    return paid


def rebuild_search_index(Sessions: sessionmaker, batches: int = INDEX_BATCHES,
                         pause: float = INDEX_BATCH_PAUSE) -> int:
    """Re-tokenise every product name and category in batches, reporting
    progress; stops between batches when the console cancels the run."""
    with Sessions() as session:
        products = session.execute(select(Product.id, Product.name, Product.category)).all()
    per_batch = max(1, -(-len(products) // batches))
    terms: set[str] = set()
    for batch in range(batches):
        if cancelled():
            logger.warning("search index rebuild cancelled after %d of %d batches",
                           batch, batches)
            raise JobCancelled(f"stopped after {batch} of {batches} batches")
        for _id, name, category in products[batch * per_batch:(batch + 1) * per_batch]:
            terms.update(f"{name} {category}".lower().split())
        report_progress((batch + 1) / batches,
                        f"batch {batch + 1} of {batches}: {len(terms):,} terms")
        time.sleep(pause)
    logger.info("search index rebuilt: %d terms from %d products", len(terms), len(products))
    return len(terms)


def create_scheduler(engine: Engine, redis_client: redis.Redis | None,
                     catalog: Catalog | None = None) -> BackgroundScheduler:
    """A scheduler with the shop's jobs added; the caller starts it. The
    cache job needs `catalog` with its warmers registered."""
    Sessions = sessionmaker(engine, expire_on_commit=False)
    scheduler = BackgroundScheduler(
        daemon=True, timezone=timezone.utc,
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30})
    now = datetime.now(timezone.utc)
    if redis_client is not None and catalog is not None and catalog.enabled:
        scheduler.add_job(refresh_product_cache, "interval", seconds=CACHE_REFRESH_SECONDS,
                          id="cache_refresh", name="Refresh product cache",
                          next_run_time=now + timedelta(seconds=2))
    scheduler.add_job(nightly_sales_report, "interval", seconds=REPORT_SECONDS,
                      args=[Sessions], id="nightly_report", name="Nightly sales report",
                      next_run_time=now + timedelta(seconds=10))
    scheduler.add_job(cleanup, "interval", seconds=CLEANUP_SECONDS, args=[Sessions],
                      id="cleanup", name="Cancel abandoned orders, prune reports")
    scheduler.add_job(restock, "interval", seconds=RESTOCK_SECONDS, args=[Sessions, catalog],
                      id="restock", name="Restock low inventory")
    scheduler.add_job(reconcile_payments, "interval", seconds=RECONCILE_SECONDS,
                      args=[Sessions, random.Random()], id="reconcile_payments",
                      name="Reconcile payments", next_run_time=now + timedelta(seconds=15))
    scheduler.add_job(rebuild_search_index, "interval", seconds=INDEX_SECONDS, args=[Sessions],
                      id="search_index", name="Rebuild search index",
                      next_run_time=now + timedelta(seconds=20))
    return scheduler
