"""Alembic owns the schema: upgrade and downgrade on SQLite and PostgreSQL."""
from __future__ import annotations

from sqlalchemy import inspect

from dashapp.store import Store

TABLES = {"ops_user", "ops_api_token", "ops_audit_event", "ops_request_minute",
          "ops_request", "ops_query", "ops_monitor_process"}


def test_upgrade_then_downgrade(store_url):
    store = Store(store_url)
    try:
        store.upgrade()
        insp = inspect(store.engine)
        assert TABLES <= set(insp.get_table_names())
        index_names = {ix["name"] for ix in insp.get_indexes("ops_audit_event")}
        assert {"ix_audit_time", "ix_audit_actor_time", "ix_audit_action_time"} <= index_names
        store.downgrade("base")
        assert not TABLES & set(inspect(store.engine).get_table_names())
        store.upgrade()  # and back up again: downgrade really was complete
        assert TABLES <= set(inspect(store.engine).get_table_names())
    finally:
        store.close()


def test_models_match_migrations(store_url):
    """autogenerate finds nothing to do: the models and migrations agree."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from dashapp.store.models import Base
    store = Store(store_url)
    try:
        store.upgrade()
        with store.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == []
    finally:
        store.close()
