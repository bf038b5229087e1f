"""playbook: senders, sender messages and events, drafts, counsel forwards

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "senders",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("address", sa.String(320), nullable=False),
        sa.Column("display_name", sa.String(255), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("warned_type", sa.String(16), nullable=True),
        sa.Column("will_candidate", sa.Boolean(), nullable=False),
        sa.Column("state_changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reset_at", sa.DateTime(timezone=True), nullable=True),
        *_timestamps(),
        sa.UniqueConstraint("address", name="uq_senders_address"),
    )
    op.create_table(
        "sender_messages",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("sender_id", sa.Integer(), sa.ForeignKey("senders.id"), nullable=False),
        sa.Column("mailbox", sa.String(64), nullable=False),
        sa.Column("message_key", sa.String(512), nullable=False),
        sa.Column("message_id", sa.String(512), nullable=True),
        sa.Column("record_id", sa.Integer(), nullable=True),
        sa.Column("opens_conversation", sa.Boolean(), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("scores", sa.JSON(), nullable=True),
        sa.Column("evidence", sa.JSON(), nullable=True),
        sa.Column("plan", sa.JSON(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("mailbox", "message_key", name="uq_sender_messages_key"),
    )
    op.create_index("ix_sender_messages_sender", "sender_messages", ["sender_id", "received_at"])
    op.create_index("ix_sender_messages_message_id", "sender_messages", ["message_id"])
    op.create_table(
        "sender_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("sender_id", sa.Integer(), sa.ForeignKey("senders.id"), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("message_key", sa.String(512), nullable=True),
        sa.Column("draft_id", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(255), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_sender_events_sender", "sender_events", ["sender_id", "id"])
    op.create_table(
        "drafts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("sender_id", sa.Integer(), sa.ForeignKey("senders.id"), nullable=False),
        sa.Column("mailbox", sa.String(64), nullable=False),
        sa.Column("source_key", sa.String(512), nullable=False),
        sa.Column("source_message_id", sa.String(512), nullable=True),
        sa.Column("record_id", sa.Integer(), nullable=True),
        sa.Column("template", sa.String(64), nullable=False),
        sa.Column("language", sa.String(16), nullable=False),
        sa.Column("direction", sa.String(3), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("message_id", sa.String(512), nullable=True),
        sa.Column("from_address", sa.String(320), nullable=True),
        sa.Column("from_name", sa.String(255), nullable=True),
        sa.Column("to_address", sa.String(320), nullable=False),
        sa.Column("to_name", sa.String(255), nullable=True),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("in_reply_to", sa.String(512), nullable=True),
        sa.Column("references", sa.JSON(), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("raw", sa.LargeBinary(), nullable=True),
        sa.Column("note", sa.JSON(), nullable=True),
        sa.Column("litmus", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("edited", sa.Boolean(), nullable=False),
        sa.Column("send_attempts", sa.Integer(), nullable=False),
        sa.Column("approved_by", sa.String(255), nullable=True),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rejected_by", sa.String(255), nullable=True),
        sa.Column("rejected_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reject_reason", sa.Text(), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        *_timestamps(),
        sa.UniqueConstraint("mailbox", "source_key", name="uq_drafts_source"),
    )
    op.create_index("ix_drafts_state", "drafts", ["state"])
    op.create_index("ix_drafts_message_id", "drafts", ["message_id"])
    op.create_table(
        "counsel_forwards",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("sender_id", sa.Integer(), sa.ForeignKey("senders.id"), nullable=False),
        sa.Column("mailbox", sa.String(64), nullable=False),
        sa.Column("message_key", sa.String(512), nullable=False),
        sa.Column("address", sa.String(320), nullable=False),
        sa.Column("message_id", sa.String(512), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("raw", sa.LargeBinary(), nullable=True),
        *_timestamps(),
        sa.UniqueConstraint("mailbox", "message_key", name="uq_counsel_forwards_key"),
    )


def downgrade() -> None:
    op.drop_table("counsel_forwards")
    op.drop_index("ix_drafts_message_id", "drafts")
    op.drop_index("ix_drafts_state", "drafts")
    op.drop_table("drafts")
    op.drop_index("ix_sender_events_sender", "sender_events")
    op.drop_table("sender_events")
    op.drop_index("ix_sender_messages_message_id", "sender_messages")
    op.drop_index("ix_sender_messages_sender", "sender_messages")
    op.drop_table("sender_messages")
    op.drop_table("senders")
