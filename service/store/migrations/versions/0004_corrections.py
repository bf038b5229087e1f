"""corrections from the mail client: feedback source and text, folder sync state, keyword sightings

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("feedback") as batch:
        batch.add_column(sa.Column("source", sa.String(16), nullable=False, server_default="api"))
        batch.add_column(sa.Column("subject", sa.Text(), nullable=True))
        batch.add_column(sa.Column("text", sa.Text(), nullable=True))
    op.create_table(
        "folder_sync",
        sa.Column("mailbox", sa.String(64), primary_key=True),
        sa.Column("folder", sa.String(255), primary_key=True),
        sa.Column("uidvalidity", sa.Integer(), nullable=False),
        sa.Column("highest_modseq", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "keyword_sightings",
        sa.Column("mailbox", sa.String(64), primary_key=True),
        sa.Column("folder", sa.String(255), primary_key=True),
        sa.Column("uidvalidity", sa.Integer(), primary_key=True),
        sa.Column("uid", sa.Integer(), primary_key=True),
        sa.Column("record_id", sa.Integer(), nullable=True),
        sa.Column("keywords", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("keyword_sightings")
    op.drop_table("folder_sync")
    with op.batch_alter_table("feedback") as batch:
        batch.drop_column("text")
        batch.drop_column("subject")
        batch.drop_column("source")
