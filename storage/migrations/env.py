"""Alembic environment: runs migrations on the connection handed over by `storage.schema`.

lorakom never reads an `alembic.ini`; the composition root passes the URL (or an
open connection, in tests) through `config.attributes`, so that migrations run the
same way from `lorakom db upgrade`, from the demo and from the test suite.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine, pool

import storage.models_codecs  # registers codec_script on Base.metadata (see the next line)
import storage.models_sharing  # registers sharing_grant on Base.metadata
import storage.models_tenancy  # registers reader_role on Base.metadata
import storage.models_usecases  # noqa: F401  (registers its tables on Base.metadata)
from storage.database import sqlalchemy_url
from storage.models import Base

config = context.config
target_metadata = Base.metadata


def run_on(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection: Connection | None = config.attributes.get("connection")
    if connection is not None:
        run_on(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("storage.schema must set sqlalchemy.url or pass a connection")
    engine = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
    with engine.connect() as connection:
        run_on(connection)


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
