"""index for the organisation menu of an edition's review list

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-23 22:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("application", schema=None) as batch_op:
        batch_op.create_index(
            "ix_application_edition_organisation", ["edition_id", "organisation_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("application", schema=None) as batch_op:
        batch_op.drop_index("ix_application_edition_organisation")
