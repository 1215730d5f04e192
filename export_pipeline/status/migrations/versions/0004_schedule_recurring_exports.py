"""schedule recurring exports

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "export_schedules",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("cron", sa.String(length=100), nullable=False),
        sa.Column("time_zone", sa.String(length=64), nullable=False),
        sa.Column("filters", sa.JSON(), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_tick_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_tick_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_export_id", sa.String(length=36), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_error_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_export_schedules_due", "export_schedules", ["enabled", "next_tick_at"], unique=False
    )
    op.create_index(
        "ix_export_schedules_source", "export_schedules", ["source_id", "created_at"], unique=False
    )
    # No foreign key on the new column, and no batch mode: SQLite adds it in place
    # instead of copying the exports table (see `downgrade`).
    op.add_column("exports", sa.Column("schedule_id", sa.String(length=36), nullable=True))
    op.create_index("ix_exports_schedule_id", "exports", ["schedule_id"], unique=False)


def downgrade() -> None:
    # Not in batch mode: on SQLite that copies the exports table, and dropping the old
    # copy deletes the download links that cascade from it. SQLite 3.35+ drops a column
    # in place.
    op.drop_index("ix_exports_schedule_id", table_name="exports")
    op.drop_column("exports", "schedule_id")

    op.drop_index("ix_export_schedules_source", table_name="export_schedules")
    op.drop_index("ix_export_schedules_due", table_name="export_schedules")
    op.drop_table("export_schedules")
