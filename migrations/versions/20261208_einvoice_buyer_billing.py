"""structured buyer data for e-invoices, a VAT category per invoice line, an edition's exemption

Revision ID: einvoice_1
Revises: 0013
Create Date: 2026-12-08 02:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

import app.models.types
from alembic import op


revision: str = "einvoice_1"
down_revision: str | None = "verifactu_1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TRAINING = "VATEX-EU-132-1I"
TRAINING_WORDS = (
    "Exempt from VAT: vocational training (art. 20.1.9 Ley 37/1992; "
    "art. 132(1)(i) Directive 2006/112/EC)"
)


def upgrade() -> None:
    op.create_table(
        "buyer_billing",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=True),
        sa.Column("group_id", sa.Integer(), nullable=True),
        sa.Column("legal_name", sa.String(length=200), nullable=False),
        sa.Column("tax_id", sa.String(length=40), nullable=False),
        sa.Column("address_line", sa.String(length=300), nullable=False),
        sa.Column("city", sa.String(length=100), nullable=False),
        sa.Column("postcode", sa.String(length=20), nullable=False),
        sa.Column("country", sa.String(length=3), nullable=False),
        sa.Column("buyer_reference", sa.String(length=100), nullable=False),
        sa.Column("purchase_order", sa.String(length=100), nullable=False),
        sa.Column("dir3_accounting_office", sa.String(length=20), nullable=False),
        sa.Column("dir3_managing_body", sa.String(length=20), nullable=False),
        sa.Column("dir3_processing_unit", sa.String(length=20), nullable=False),
        sa.Column("leitweg_id", sa.String(length=50), nullable=False),
        sa.Column("peppol_id", sa.String(length=100), nullable=False),
        sa.Column("wants_e_invoice", sa.Boolean(), nullable=False),
        sa.Column("updated_by", sa.String(length=254), nullable=False),
        sa.Column("updated_at", app.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["application_id"], ["application.id"]),
        sa.ForeignKeyConstraint(["group_id"], ["applicant_group.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("application_id"),
        sa.UniqueConstraint("group_id"),
    )
    with op.batch_alter_table("edition", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("vat_exemption", sa.String(length=30), server_default=TRAINING, nullable=False)
        )
    with op.batch_alter_table("invoice_line", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("vat_category", sa.String(length=2), server_default="S", nullable=False)
        )
        batch_op.add_column(
            sa.Column("vat_exemption_code", sa.String(length=30), server_default="", nullable=False)
        )
        batch_op.add_column(
            sa.Column(
                "vat_exemption_reason", sa.String(length=300), server_default="", nullable=False
            )
        )
    # Lines issued at 0 % before this change were the exempt training fee: say so on them.
    op.execute(
        sa.text(
            "UPDATE invoice_line SET vat_category = 'E', vat_exemption_code = :code, "
            "vat_exemption_reason = :words WHERE invoice_id IN "
            "(SELECT id FROM invoice WHERE tax_rate = 0)"
        ).bindparams(code=TRAINING, words=TRAINING_WORDS)
    )


def downgrade() -> None:
    with op.batch_alter_table("invoice_line", schema=None) as batch_op:
        batch_op.drop_column("vat_exemption_reason")
        batch_op.drop_column("vat_exemption_code")
        batch_op.drop_column("vat_category")
    with op.batch_alter_table("edition", schema=None) as batch_op:
        batch_op.drop_column("vat_exemption")
    op.drop_table("buyer_billing")
