"""Alembic environment: run with the connection Store.migrate() hands over."""

from alembic import context

# Imported for their tables on Base (the schema itself comes from the revisions).
import service.store.api_tables  # noqa: F401
import service.store.correction_tables  # noqa: F401
import service.store.playbook_tables  # noqa: F401
from service.store.tables import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
