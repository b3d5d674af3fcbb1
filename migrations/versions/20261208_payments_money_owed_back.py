"""payments voided and flagged for what they overpaid; refunds for overpayments, to whoever paid; bank statements uploaded through the API

Revision ID: payments_1
Revises: 0013
Create Date: 2026-12-08 02:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.models.types

revision: str = "payments_1"
down_revision: str | None = "messages_1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AMOUNT = app.models.types.Amount(precision=12, scale=2)


def upgrade() -> None:
    op.create_table(
        "bank_statement",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("format", sa.String(length=12), nullable=False),
        sa.Column("filename", sa.String(length=200), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("uploaded_by", sa.String(length=254), nullable=False),
        sa.Column("uploaded_at", app.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", app.models.types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("payment", schema=None) as batch_op:
        batch_op.add_column(sa.Column("overpaid", AMOUNT, server_default="0", nullable=False))
        batch_op.add_column(
            sa.Column("payer", sa.String(length=200), server_default="", nullable=False)
        )
        batch_op.add_column(
            sa.Column("voided_at", app.models.types.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("voided_by", sa.String(length=254), server_default="", nullable=False)
        )
        batch_op.add_column(
            sa.Column("void_reason", sa.String(length=500), server_default="", nullable=False)
        )
    with op.batch_alter_table("stripe_event", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("problem", sa.String(length=500), server_default="", nullable=False)
        )
    with op.batch_alter_table("refund", schema=None) as batch_op:
        batch_op.alter_column("application_id", existing_type=sa.Integer(), nullable=True)
        batch_op.alter_column("cancellation_id", existing_type=sa.Integer(), nullable=True)
        batch_op.add_column(
            sa.Column(
                "reason", sa.String(length=16), server_default="cancellation", nullable=False
            )
        )
        batch_op.add_column(sa.Column("payment_id", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("payee_kind", sa.String(length=16), server_default="person", nullable=False)
        )
        batch_op.add_column(
            sa.Column("payee_name", sa.String(length=200), server_default="", nullable=False)
        )
        batch_op.add_column(
            sa.Column("sent_at", app.models.types.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("kept_reason", sa.String(length=500), server_default="", nullable=False)
        )
        batch_op.create_foreign_key("fk_refund_payment_id_payment", "payment", ["payment_id"], ["id"])
        batch_op.create_unique_constraint("uq_refund_payment_id", ["payment_id"])


def downgrade() -> None:
    with op.batch_alter_table("refund", schema=None) as batch_op:
        batch_op.drop_constraint("uq_refund_payment_id", type_="unique")
        batch_op.drop_constraint("fk_refund_payment_id_payment", type_="foreignkey")
        for column in ("kept_reason", "sent_at", "payee_name", "payee_kind", "payment_id", "reason"):
            batch_op.drop_column(column)
        batch_op.alter_column("cancellation_id", existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column("application_id", existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table("payment", schema=None) as batch_op:
        for column in ("void_reason", "voided_by", "voided_at", "payer", "overpaid"):
            batch_op.drop_column(column)
    with op.batch_alter_table("stripe_event", schema=None) as batch_op:
        batch_op.drop_column("problem")
    op.drop_table("bank_statement")
