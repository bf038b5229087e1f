"""admin API: threshold overrides, audit log, feedback; indexes on messages for the queue and preview

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The preview's score index catches up on the rows written since it last looked.
    op.create_index("ix_messages_updated", "messages", ["updated_at"])
    # The review queue filtered by language or by state, newest first, without scanning all mail.
    op.create_index("ix_messages_language_received", "messages", ["language", "received_at"])
    op.create_index("ix_messages_state_received", "messages", ["state", "received_at"])
    op.create_table(
        "threshold_overrides",
        sa.Column("label", sa.String(32), primary_key=True),
        sa.Column("language", sa.String(16), primary_key=True),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("updated_by", sa.String(64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(320), nullable=True),
        sa.Column("old", sa.JSON(), nullable=True),
        sa.Column("new", sa.JSON(), nullable=True),
    )
    op.create_index("ix_audit_action", "audit_log", ["action", "id"])
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "message_id", sa.Integer(), sa.ForeignKey("messages.id", ondelete="CASCADE"), nullable=False, unique=True
        ),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("model_labels", sa.JSON(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("feedback")
    op.drop_index("ix_audit_action", "audit_log")
    op.drop_table("audit_log")
    op.drop_table("threshold_overrides")
    op.drop_index("ix_messages_state_received", "messages")
    op.drop_index("ix_messages_language_received", "messages")
    op.drop_index("ix_messages_updated", "messages")
