"""a cancellation keeps its reason's message id and values

Revision ID: messages_1
Revises: 0013
Create Date: 2026-12-08 02:50:00

Rows recorded before keep a NULL here and are shown from their English `reason`.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "messages_1"
down_revision: str | None = "einvoice_1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("cancellation", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reason_message", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("cancellation", schema=None) as batch_op:
        batch_op.drop_column("reason_message")
