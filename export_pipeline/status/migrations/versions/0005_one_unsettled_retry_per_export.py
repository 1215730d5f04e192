"""one unsettled retry per export

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNSETTLED = sa.text("status IN ('pending', 'processing')")


def upgrade() -> None:
    # No batch mode, as in 0004: SQLite adds the column in place.
    op.add_column("exports", sa.Column("retry_of", sa.String(length=36), nullable=True))
    op.create_index(
        "ux_exports_unsettled_retry",
        "exports",
        ["retry_of"],
        unique=True,
        sqlite_where=UNSETTLED,
        postgresql_where=UNSETTLED,
    )


def downgrade() -> None:
    op.drop_index("ux_exports_unsettled_retry", table_name="exports")
    op.drop_column("exports", "retry_of")
