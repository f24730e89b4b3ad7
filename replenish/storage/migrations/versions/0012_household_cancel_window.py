"""each household may choose how long its `auto` orders are held before release (none: the service's default)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-08 01:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("households") as batch_op:
        batch_op.add_column(sa.Column("cancel_window_hours", sa.Float(), nullable=True))


def downgrade() -> None:
    # In place: households is referenced by other tables' foreign keys (a copy could not replace it on SQLite).
    with op.batch_alter_table("households", recreate="never") as batch_op:
        batch_op.drop_column("cancel_window_hours")
