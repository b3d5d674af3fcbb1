"""personal data retention and erasure

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23 15:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import app.models.types

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('edition', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('retention_days', sa.Integer(), nullable=False, server_default=sa.text('365'))
        )

    with op.batch_alter_table('application', schema=None) as batch_op:
        batch_op.add_column(sa.Column('erased_at', app.models.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column('optional_data_erased_at', app.models.types.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.create_index(batch_op.f('ix_application_erased_at'), ['erased_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('application', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_application_erased_at'))
        batch_op.drop_column('optional_data_erased_at')
        batch_op.drop_column('erased_at')

    with op.batch_alter_table('edition', schema=None) as batch_op:
        batch_op.drop_column('retention_days')
