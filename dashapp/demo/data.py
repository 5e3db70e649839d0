"""The demo shop's database: schema, engine and deterministic seed data.

The shop keeps its own SQLite file (``<data_dir>/shop.db``), separate from the
console's store, exactly as a user's application would.

Indexes cover the columns the shop joins and filters on, with one deliberate
exception: ``orders.status`` is filtered by ``GET /orders?status=`` (and by
the report and cleanup jobs) but has **no index**, so the SQL analyzer has a
real missing-index suggestion to make.

Money is stored as integer cents so totals are exact.
"""
from __future__ import annotations

import itertools
import logging
import random
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import (
    DateTime, Engine, ForeignKey, Integer, String, Text, create_engine,
    event, func, insert, inspect, select,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

logger = logging.getLogger("demo.data")

SEED = 42
N_PRODUCTS = 200
N_CUSTOMERS = 1_000
N_ORDERS = 3_000
# Seed data is dated inside a fixed year so two seeds are identical.
SEED_EPOCH = datetime(2025, 1, 1)

ORDER_STATUSES = ("pending", "paid", "shipped", "delivered", "cancelled", "refunded")


class Base(DeclarativeBase):
    pass


class Product(Base):
    __tablename__ = "products"

    id: Mapped[int] = mapped_column(primary_key=True)
    sku: Mapped[str] = mapped_column(String(16), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    description: Mapped[str] = mapped_column(Text)
    category: Mapped[str] = mapped_column(String(40), index=True)
    price_cents: Mapped[int] = mapped_column(Integer)
    stock: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    email: Mapped[str] = mapped_column(String(200), unique=True)
    country: Mapped[str] = mapped_column(String(2))
    created_at: Mapped[datetime] = mapped_column(DateTime)

    orders: Mapped[list[Order]] = relationship(back_populates="customer")


class Order(Base):
    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    # Deliberately NOT indexed: see the module docstring.
    status: Mapped[str] = mapped_column(String(16))
    total_cents: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime, index=True)

    customer: Mapped[Customer] = relationship(back_populates="orders")
    # Lazy ("select") loading: touching order.items issues one query per order.
    items: Mapped[list[OrderItem]] = relationship(back_populates="order")


class OrderItem(Base):
    __tablename__ = "order_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True)
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price_cents: Mapped[int] = mapped_column(Integer)

    order: Mapped[Order] = relationship(back_populates="items")
    product: Mapped[Product] = relationship()


class SalesReport(Base):
    """One row per run of the nightly report job."""

    __tablename__ = "sales_reports"

    id: Mapped[int] = mapped_column(primary_key=True)
    generated_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    orders: Mapped[int] = mapped_column(Integer)
    revenue_cents: Mapped[int] = mapped_column(Integer)
    top_category: Mapped[str | None] = mapped_column(String(40))


def utcnow() -> datetime:
    """Naive UTC now: every timestamp in the shop database is naive UTC."""
    return datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)


def create_shop_engine(db_path: Path) -> Engine:
    """An engine on the shop's SQLite file, safe for a threaded web server.

    WAL lets readers proceed while an order is being written; the busy
    timeout makes concurrent writers wait instead of failing.
    """
    db_path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        f"sqlite:///{db_path}",
        connect_args={"check_same_thread": False, "timeout": 15},
    )

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_conn, _record) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return engine


# ----- deterministic data generation -------------------------------------
_ADJECTIVES = ["Classic", "Compact", "Deluxe", "Everyday", "Handmade", "Modern",
               "Rustic", "Vintage", "Premium", "Eco", "Travel", "Nordic",
               "Urban", "Soft", "Sturdy"]
_MATERIALS = ["Oak", "Ceramic", "Cotton", "Steel", "Linen", "Bamboo", "Glass",
              "Leather", "Wool", "Copper"]
_CATEGORY_NOUNS = {
    "kitchen": ["Mug", "Teapot", "Cutting Board", "Bowl", "Knife Set"],
    "home": ["Lamp", "Vase", "Cushion", "Blanket", "Clock"],
    "office": ["Notebook", "Desk Organizer", "Pen Holder", "Monitor Stand"],
    "outdoor": ["Water Bottle", "Backpack", "Camping Chair", "Lantern"],
    "apparel": ["Scarf", "Beanie", "Apron", "Tote Bag"],
}
_FIRST = ["Alex", "Sam", "Maria", "John", "Aiko", "Lena", "Omar", "Priya",
          "Chen", "Lucas", "Emma", "Noah", "Sofia", "Mateo", "Zara", "Ivan",
          "Fatima", "Kofi", "Hannah", "Diego", "Mia", "Yusuf", "Elena", "Ravi"]
_LAST = ["Smith", "Garcia", "Müller", "Kim", "Rossi", "Silva", "Novak",
         "Tanaka", "Okafor", "Dubois", "Jensen", "Kowalski", "Haddad", "Singh",
         "Lopez", "Brown", "Ivanova", "Nguyen", "Cohen", "Larsen"]
_COUNTRIES = ["US", "GB", "DE", "FR", "ES", "IT", "NL", "SE", "PL", "JP", "BR", "IN"]
_STATUS_WEIGHTS = [5, 8, 10, 70, 5, 2]  # aligned with ORDER_STATUSES
_ITEMS_PER_ORDER = [1, 2, 3, 4, 5]
_ITEMS_WEIGHTS = [20, 25, 25, 18, 12]  # mean ~2.8 items -> ~8,000 order items


def _article(word: str) -> str:
    return "An" if word[0].lower() in "aeiou" else "A"


def generate_rows(seed: int = SEED) -> dict[str, list[dict]]:
    """All seed rows, as plain dicts per table, from one seeded RNG."""
    rng = random.Random(seed)

    combos = [(adj, mat, cat, noun)
              for cat, nouns in _CATEGORY_NOUNS.items()
              for adj, mat, noun in itertools.product(_ADJECTIVES, _MATERIALS, nouns)]
    products = []
    for pid, (adj, mat, cat, noun) in enumerate(rng.sample(combos, N_PRODUCTS), start=1):
        products.append({
            "id": pid,
            "sku": f"SKU-{pid:05d}",
            "name": f"{adj} {mat} {noun}",
            "description": f"{_article(adj)} {adj.lower()} {noun.lower()} "
                           f"made of {mat.lower()}.",
            "category": cat,
            "price_cents": rng.randint(4, 250) * 100 - rng.choice([1, 5, 51, 100]),
            "stock": rng.randint(20, 500),
            "created_at": SEED_EPOCH - timedelta(days=rng.randint(30, 700)),
        })

    customers = []
    for cid in range(1, N_CUSTOMERS + 1):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        customers.append({
            "id": cid,
            "name": f"{first} {last}",
            "email": f"{first.lower()}.{last.lower()}{cid}@example.com",
            "country": rng.choice(_COUNTRIES),
            "created_at": SEED_EPOCH - timedelta(days=rng.randint(1, 900),
                                                 seconds=rng.randint(0, 86_399)),
        })

    # A few products sell far more than the rest, as in a real shop.
    popularity = [1.0 / (rank ** 0.8) for rank in range(1, N_PRODUCTS + 1)]
    product_order = list(range(1, N_PRODUCTS + 1))
    rng.shuffle(product_order)
    price = {p["id"]: p["price_cents"] for p in products}

    order_dates = sorted(SEED_EPOCH + timedelta(seconds=rng.randint(0, 365 * 86_400))
                         for _ in range(N_ORDERS))
    orders, items = [], []
    for oid, created in enumerate(order_dates, start=1):
        n_items = rng.choices(_ITEMS_PER_ORDER, _ITEMS_WEIGHTS)[0]
        chosen: list[int] = []
        while len(chosen) < n_items:
            pid = rng.choices(product_order, popularity)[0]
            if pid not in chosen:
                chosen.append(pid)
        total = 0
        for pid in chosen:
            qty = rng.choices([1, 2, 3, 4], [70, 20, 7, 3])[0]
            total += qty * price[pid]
            items.append({"id": len(items) + 1, "order_id": oid, "product_id": pid,
                          "quantity": qty, "unit_price_cents": price[pid]})
        orders.append({
            "id": oid,
            "customer_id": rng.randint(1, N_CUSTOMERS),
            "status": rng.choices(ORDER_STATUSES, _STATUS_WEIGHTS)[0],
            "total_cents": total,
            "created_at": created,
        })
    return {"products": products, "customers": customers,
            "orders": orders, "order_items": items}


def is_seeded(engine: Engine) -> bool:
    """True when the schema exists and holds products."""
    if not inspect(engine).has_table(Product.__tablename__):
        return False
    with Session(engine) as session:
        return (session.scalar(select(func.count()).select_from(Product)) or 0) > 0


def seed_database(engine: Engine, seed: int = SEED) -> bool:
    """Create the schema and load the seed rows unless already there.

    Idempotent: returns False (and changes nothing) on an already seeded
    database. All rows go in one transaction, so a crash cannot leave a
    half-seeded shop behind.
    """
    Base.metadata.create_all(engine)
    if is_seeded(engine):
        return False
    started = time.perf_counter()
    rows = generate_rows(seed)
    with Session(engine) as session, session.begin():
        session.execute(insert(Product), rows["products"])
        session.execute(insert(Customer), rows["customers"])
        session.execute(insert(Order), rows["orders"])
        session.execute(insert(OrderItem), rows["order_items"])
    logger.info("seeded demo shop: %d products, %d customers, %d orders, "
                "%d order items in %.2f s", len(rows["products"]),
                len(rows["customers"]), len(rows["orders"]),
                len(rows["order_items"]), time.perf_counter() - started)
    return True


def open_shop_database(db_path: Path, seed: int = SEED) -> Engine:
    """Engine on ``db_path``, seeding it first when the file is missing or empty."""
    engine = create_shop_engine(db_path)
    seed_database(engine, seed)
    return engine
