"""Alembic environment: runs on the connection the Store hands it."""
from alembic import context
from sqlalchemy import create_engine

from dashapp.store.models import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    """`alembic -x url=...`, else the console's own store (OPS_DATABASE_URL,
    else the SQLite file in OPS_INSTANCE_DIR), as the console itself uses."""
    given = context.get_x_argument(as_dictionary=True).get("url")
    if given:
        return given
    from dashapp.config import load_settings
    return load_settings().store_url


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata,
                          render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(_url())
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=target_metadata,
                          render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    context.configure(url=_url(),
                      target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
