"""VERI*FACTU invoice records (append-only, refused by triggers) and their submissions

Revision ID: verifactu_1
Revises: 0013
Create Date: 2026-12-08 02:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.models.types

revision: str = "verifactu_1"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REFUSAL = "tax records are never changed or deleted: record a new one"


def upgrade() -> None:
    op.create_table(
        "tax_record",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("invoice_id", sa.Integer(), nullable=False),
        sa.Column("issuer_tax_id", sa.String(length=9), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("previous_id", sa.Integer(), nullable=True),
        sa.Column("record_type", sa.String(length=10), nullable=False),
        sa.Column("issuer_name", sa.String(length=120), nullable=False),
        sa.Column("invoice_number", sa.String(length=60), nullable=False),
        sa.Column("issue_date", sa.Date(), nullable=False),
        sa.Column("invoice_type", sa.String(length=2), nullable=False),
        sa.Column("corrective_type", sa.String(length=1), nullable=False),
        sa.Column("corrected", sa.JSON(), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("recipients", sa.JSON(), nullable=False),
        sa.Column("without_recipient", sa.Boolean(), nullable=False),
        sa.Column("breakdown", sa.JSON(), nullable=False),
        sa.Column("tax_total", app.models.types.Amount(precision=12, scale=2), nullable=True),
        sa.Column("total", app.models.types.Amount(precision=12, scale=2), nullable=True),
        sa.Column("previous_number", sa.String(length=60), nullable=False),
        sa.Column("previous_issue_date", sa.Date(), nullable=True),
        sa.Column("previous_hash", sa.String(length=64), nullable=False),
        sa.Column("generated_at", sa.String(length=25), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("qr_url", sa.String(length=300), nullable=False),
        sa.Column("system", sa.JSON(), nullable=False),
        sa.Column("created_at", app.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["invoice_id"], ["invoice.id"]),
        sa.ForeignKeyConstraint(["previous_id"], ["tax_record.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("issuer_tax_id", "sequence", name="uq_tax_record_issuer_sequence"),
        sa.UniqueConstraint("previous_id"),
    )
    op.create_index(op.f("ix_tax_record_invoice_id"), "tax_record", ["invoice_id"])
    op.create_index(op.f("ix_tax_record_hash"), "tax_record", ["hash"])
    op.create_table(
        "tax_record_submission",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("record_id", sa.Integer(), nullable=False),
        sa.Column("issuer_tax_id", sa.String(length=9), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", app.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", app.models.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("error_code", sa.String(length=20), nullable=False),
        sa.Column("error_text", sa.Text(), nullable=False),
        sa.Column("csv", sa.String(length=100), nullable=False),
        sa.Column("last_problem", sa.Text(), nullable=False),
        sa.Column("wait_until", app.models.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["record_id"], ["tax_record.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("record_id"),
    )
    op.create_index(
        op.f("ix_tax_record_submission_status"), "tax_record_submission", ["status"]
    )
    # Legal records (RD 1007/2023, art. 8): the database itself refuses to change them.
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"""
            CREATE FUNCTION tax_record_refuse_change() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION '{REFUSAL}';
            END;
            $$ LANGUAGE plpgsql
            """
        )
        op.execute(
            "CREATE TRIGGER tax_record_append_only BEFORE UPDATE OR DELETE ON tax_record "
            "FOR EACH ROW EXECUTE FUNCTION tax_record_refuse_change()"
        )
        op.execute(
            "CREATE TRIGGER tax_record_no_truncate BEFORE TRUNCATE ON tax_record "
            "FOR EACH STATEMENT EXECUTE FUNCTION tax_record_refuse_change()"
        )
    else:
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER tax_record_no_{event.lower()} BEFORE {event} ON tax_record "
                f"BEGIN SELECT RAISE(ABORT, '{REFUSAL}'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS tax_record_no_truncate ON tax_record")
        op.execute("DROP TRIGGER IF EXISTS tax_record_append_only ON tax_record")
        op.execute("DROP FUNCTION IF EXISTS tax_record_refuse_change()")
    else:
        op.execute("DROP TRIGGER IF EXISTS tax_record_no_update")
        op.execute("DROP TRIGGER IF EXISTS tax_record_no_delete")
    op.drop_index(op.f("ix_tax_record_submission_status"), table_name="tax_record_submission")
    op.drop_table("tax_record_submission")
    op.drop_index(op.f("ix_tax_record_hash"), table_name="tax_record")
    op.drop_index(op.f("ix_tax_record_invoice_id"), table_name="tax_record")
    op.drop_table("tax_record")
