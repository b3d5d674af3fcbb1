"""indexes for the review list of one edition

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-23 19:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('application', schema=None) as batch_op:
        batch_op.create_index(
            'ix_application_edition_submitted', ['edition_id', 'submitted_at', 'id'], unique=False
        )
        batch_op.create_index('ix_application_edition_status', ['edition_id', 'status'], unique=False)
        batch_op.create_index(
            'ix_application_edition_country', ['edition_id', 'country'], unique=False
        )
        # The three above begin with the edition: they serve its look-ups too.
        batch_op.drop_index('ix_application_edition_id')


def downgrade() -> None:
    with op.batch_alter_table('application', schema=None) as batch_op:
        batch_op.create_index('ix_application_edition_id', ['edition_id'], unique=False)
        batch_op.drop_index('ix_application_edition_country')
        batch_op.drop_index('ix_application_edition_status')
        batch_op.drop_index('ix_application_edition_submitted')
