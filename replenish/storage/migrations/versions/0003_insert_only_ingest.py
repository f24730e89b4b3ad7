"""insert-only ingest: readings remember `replaced`; a cursor for folding them into slot state

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("gw_readings") as batch_op:
        batch_op.add_column(sa.Column("replaced", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        "gw_cursors",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    # Readings stored before this revision were already folded into their slots by ingest itself.
    op.execute("INSERT INTO gw_cursors (name, position) SELECT 'settle', COALESCE(MAX(id), 0) FROM gw_readings")


def downgrade() -> None:
    op.drop_table("gw_cursors")
    with op.batch_alter_table("gw_readings") as batch_op:
        batch_op.drop_column("replaced")
