"""auto compression: parent jobs, objectives, verdicts, model analysis

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 03:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("parent_job_id", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("objective", JSON_TYPE, nullable=True))
        batch_op.add_column(sa.Column("verdict", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("verdict_detail", JSON_TYPE, nullable=True))
        batch_op.add_column(sa.Column("recommendation_reason", sa.String(length=64), nullable=True))
        batch_op.create_index("ix_jobs_parent_job_id", ["parent_job_id"])
        batch_op.create_foreign_key(
            "fk_jobs_parent_job_id_jobs", "jobs", ["parent_job_id"], ["id"], ondelete="CASCADE"
        )
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.add_column(sa.Column("analysis", JSON_TYPE, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.drop_column("analysis")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_constraint("fk_jobs_parent_job_id_jobs", type_="foreignkey")
        batch_op.drop_index("ix_jobs_parent_job_id")
        batch_op.drop_column("recommendation_reason")
        batch_op.drop_column("verdict_detail")
        batch_op.drop_column("verdict")
        batch_op.drop_column("objective")
        batch_op.drop_column("parent_job_id")
