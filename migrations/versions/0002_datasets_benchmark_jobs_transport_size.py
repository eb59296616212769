"""datasets, benchmark jobs, transport size

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 15:29:18.483076
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
FOREIGN_KEYS = [
    ("fk_jobs_baseline_model_id", "models", "baseline_model_id"),
    ("fk_jobs_calibration_dataset_id", "datasets", "calibration_dataset_id"),
    ("fk_jobs_eval_dataset_id", "datasets", "eval_dataset_id"),
]


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column(
            "tenant_id", sa.String(length=64), server_default=sa.text("'default'"), nullable=False
        ),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("storage_key", sa.String(length=512), nullable=False),
        sa.Column("num_samples", sa.Integer(), nullable=False),
        sa.Column("arrays", JSON_TYPE, nullable=False),
        sa.Column("has_labels", sa.Boolean(), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_datasets_tenant_id"), ["tenant_id"], unique=False)

    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "kind", sa.String(length=16), server_default=sa.text("'compress'"), nullable=False
            )
        )
        batch_op.add_column(sa.Column("baseline_model_id", sa.String(length=36), nullable=True))
        # Named, so SQLite's batch mode can create them and downgrade can drop them.
        for name, target, column in FOREIGN_KEYS:
            batch_op.create_foreign_key(name, target, [column], ["id"], ondelete="SET NULL")

    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.add_column(sa.Column("transport_size_bytes", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.drop_column("transport_size_bytes")

    with op.batch_alter_table("jobs", schema=None) as batch_op:
        for name, _, _ in FOREIGN_KEYS:
            batch_op.drop_constraint(name, type_="foreignkey")
        batch_op.drop_column("baseline_model_id")
        batch_op.drop_column("kind")

    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_datasets_tenant_id"))

    op.drop_table("datasets")
