"""models and jobs

Revision ID: 0001
Revises:
Create Date: 2026-11-23 15:13:58.309729
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# JSONB on Postgres, JSON text on SQLite (the embedded default).
JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column(
            "tenant_id", sa.String(length=64), server_default=sa.text("'default'"), nullable=False
        ),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("storage_key", sa.String(length=512), nullable=False),
        sa.Column("format", sa.String(length=16), nullable=False),
        sa.Column("ir_version", sa.Integer(), nullable=False),
        sa.Column("opset", sa.Integer(), nullable=False),
        sa.Column("producer", sa.String(length=255), nullable=True),
        sa.Column("inputs", JSON_TYPE, nullable=False),
        sa.Column("outputs", JSON_TYPE, nullable=False),
        sa.Column("op_counts", JSON_TYPE, nullable=False),
        sa.Column("param_count", sa.BigInteger(), nullable=False),
        sa.Column("parent_id", sa.String(length=36), nullable=True),
        sa.Column("job_id", sa.String(length=36), nullable=True),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["parent_id"], ["models.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_models_job_id"), ["job_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_models_parent_id"), ["parent_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_models_sha256"), ["sha256"], unique=False)
        batch_op.create_index(batch_op.f("ix_models_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "jobs",
        sa.Column(
            "tenant_id", sa.String(length=64), server_default=sa.text("'default'"), nullable=False
        ),
        sa.Column("model_id", sa.String(length=36), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("stage", sa.String(length=64), nullable=True),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("preset", sa.String(length=64), nullable=True),
        sa.Column("recipe", JSON_TYPE, nullable=False),
        sa.Column("input_shapes", JSON_TYPE, nullable=True),
        sa.Column("benchmark_options", JSON_TYPE, nullable=False),
        sa.Column("calibration_dataset_id", sa.String(length=36), nullable=True),
        sa.Column("eval_dataset_id", sa.String(length=36), nullable=True),
        sa.Column("error", JSON_TYPE, nullable=True),
        sa.Column("metrics", JSON_TYPE, nullable=True),
        sa.Column("report", JSON_TYPE, nullable=True),
        sa.Column("output_model_id", sa.String(length=36), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("enqueued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["output_model_id"], ["models.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_jobs_model_id"), ["model_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_jobs_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_jobs_tenant_id"), ["tenant_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_jobs_tenant_id"))
        batch_op.drop_index(batch_op.f("ix_jobs_status"))
        batch_op.drop_index(batch_op.f("ix_jobs_model_id"))

    op.drop_table("jobs")
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_models_tenant_id"))
        batch_op.drop_index(batch_op.f("ix_models_sha256"))
        batch_op.drop_index(batch_op.f("ix_models_parent_id"))
        batch_op.drop_index(batch_op.f("ix_models_job_id"))

    op.drop_table("models")
