"""Alembic environment: run with the connection Store.migrate() hands over."""

from alembic import context

import service.store.playbook_tables  # noqa: F401 - registers the playbook's tables on Base
from service.store.tables import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
